"""The bounded in-memory store: entries, the views that serve hits, recency and single-flight.

Two levels, so that a hit costs a dict lookup and nothing else:

* **Entries** (``Entry``), one per (host key, family, entry flags), live in a
  ``cachetools.LRUCache`` bounded by ``maxsize``. Only code holding the store's
  lock touches it: cachetools' caches are not thread-safe, as their docs say.
* **Views** (``View``), one per exact argument tuple a caller used, hold the
  finished ``getaddrinfo`` result made from an entry. They live in a plain
  ``dict`` (``front``) that the hit path reads without any lock: a dict lookup
  is atomic under the GIL, and views are only ever replaced, never mutated.
  Each entry keeps at most ``MAX_VIEWS`` views (a crawler trying every port of a
  host must not grow memory without bound); views go when their entry goes.

Recency without a lock on the hit path: a hit appends the entry's key to a
bounded ``deque`` (an atomic C operation), and the writer replays those reads
into the LRU order under the lock before it inserts or evicts. This is the
"read buffer" of Caffeine (Ben Manes' Java cache). The order is exact for the
last ``READ_BUFFER`` hits; older reads are dropped, never blocked on.

Single flight: concurrent misses on one key make exactly one upstream lookup.
The first caller becomes the leader; the others wait on its ``Flight``. If the
leader fails with anything but an answer (KeyboardInterrupt, a bug), the flight
ends empty and each waiter retries, one of them becoming the new leader, so
one caller's interruption never poisons the rest.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import cachetools

from .._core.addrinfo import Address, AddrInfo
from .._core.policy import Lifetime

EntryKey = tuple[bytes, int, int]  # (host key, family, entry flags)
RawKey = tuple[Any, ...]  # the caller's arguments, type-tagged (see Resolver)
MAX_VIEWS = 32
READ_BUFFER = 4096


@dataclass(eq=False, slots=True)
class Entry:
    """One cached answer for a (host, family, flags): addresses or a gaierror."""

    key: EntryKey
    name: str  # the host key as text, for hooks, logs and entries()
    addresses: tuple[Address, ...]
    canonname: str
    error: tuple[int, str] | None  # (errno, strerror) of a cached gaierror
    life: Lifetime
    source: str  # "upstream", "override", ...
    serve_until: float = 0.0  # the hit path serves views while now < serve_until
    retry_after: float = 0.0  # while stale: no upstream retry before this
    views: list[RawKey] = field(default_factory=list)
    hits: int = 0

    def __post_init__(self) -> None:
        self.serve_until = self.life.refresh_at

    @property
    def host(self) -> str:
        """The name without case or final dot: what health and persistence use."""
        return self.name.lower().rstrip(".")

    def same_answer(self, other: Entry) -> bool:
        return (self.addresses, self.canonname, self.error) == (
            other.addresses,
            other.canonname,
            other.error,
        )

    def renew(self, life: Lifetime, source: str) -> None:
        """Give this entry a new life (a refresh that brought the same answer)."""
        self.life = life
        self.source = source
        self.serve_until = life.refresh_at
        self.retry_after = 0.0


@dataclass(eq=False, slots=True)
class View:
    """A finished result for one exact argument tuple, made from ``entry``."""

    entry: Entry
    result: list[AddrInfo] | None
    error: tuple[int, str] | None
    until: float = math.inf  # a health-ordered result must be rebuilt when a penalty ends


class Flight:
    """One upstream lookup in progress; waiters block on ``done``."""

    __slots__ = ("done", "entry", "started")

    def __init__(self, started: float = 0.0) -> None:
        self.done = threading.Event()
        self.entry: Entry | None = None
        self.started = started


class _Entries(cachetools.LRUCache[EntryKey, Entry]):
    """An LRU of entries that tells the store what it evicts."""

    def __init__(self, maxsize: int, on_evict: Callable[[Entry], None]) -> None:
        super().__init__(maxsize)
        self._on_evict = on_evict

    def popitem(self) -> tuple[EntryKey, Entry]:
        key, entry = super().popitem()
        self._on_evict(entry)
        return key, entry


class Store:
    """Entries, views, recency and flights, guarded by one lock (hits take none)."""

    def __init__(self, maxsize: int) -> None:
        self.lock = threading.Lock()
        self.front: dict[RawKey, View] = {}
        self.reads: deque[EntryKey] = deque(maxlen=READ_BUFFER)
        self.evictions = 0
        self._maxsize = maxsize
        self._entries = _Entries(maxsize, self._evicted)
        self._flights: dict[EntryKey, Flight] = {}

    # --- everything below is called with self.lock held ---

    def _evicted(self, entry: Entry) -> None:
        self.evictions += 1
        self.drop_views(entry)

    def drop_views(self, entry: Entry) -> None:
        """Unpublish every view made from ``entry`` (they are rebuilt on the next call)."""
        front = self.front
        for raw in entry.views:
            view = front.get(raw)
            if view is not None and view.entry is entry:
                del front[raw]
        entry.views.clear()

    def _replay_reads(self) -> None:
        entries = self._entries
        reads = self.reads
        while reads:
            key = reads.popleft()
            if key in entries:
                entries[key]  # cachetools moves it to the most recent end

    def get(self, key: EntryKey) -> Entry | None:
        """The entry for ``key`` (a use: it becomes the most recently used)."""
        return self._entries.get(key)

    def put(self, entry: Entry) -> Entry:
        """Store ``entry``; if the current one holds the same answer, renew that instead.

        Returns the entry now in the store (views made from it stay valid).
        """
        current = self.get(entry.key)
        if current is not None:
            if current.same_answer(entry):
                current.renew(entry.life, entry.source)
                self._entries[entry.key] = current
                return current
            self.drop_views(current)
        self._replay_reads()
        self._entries[entry.key] = entry
        return entry

    def remove(self, key: EntryKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.drop_views(entry)

    def add_view(self, raw: RawKey, view: View) -> None:
        """Publish a view for the hit path, if its entry is still the stored one."""
        entry = view.entry
        if self.get(entry.key) is not entry:
            return
        old = self.front.get(raw)
        if old is not None and old.entry is entry:
            return
        if len(entry.views) >= MAX_VIEWS:
            oldest = entry.views.pop(0)
            if (v := self.front.get(oldest)) is not None and v.entry is entry:
                del self.front[oldest]
        entry.views.append(raw)
        self.front[raw] = view

    def begin(self, key: EntryKey, now: float = 0.0) -> tuple[Flight, bool]:
        """The flight for ``key`` and whether the caller leads it (a new one starts ``now``)."""
        flight = self._flights.get(key)
        if flight is not None:
            return flight, False
        flight = self._flights[key] = Flight(now)
        return flight, True

    def end(self, key: EntryKey, flight: Flight, entry: Entry | None) -> Entry | None:
        """Finish a flight: store its entry (if any) and wake the waiters."""
        if self._flights.get(key) is flight:
            del self._flights[key]
        stored = self.put(entry) if entry is not None else None
        flight.entry = stored
        return stored

    def clear(self) -> None:
        # Not self._entries.clear(): that pops item by item, which would count evictions.
        self._entries = _Entries(self._maxsize, self._evicted)
        self.front.clear()
        self.reads.clear()

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries.values()))

    def peek(self, key: EntryKey) -> Entry | None:
        """The entry for ``key`` without the lock or a use: a hint, to confirm under the lock."""
        try:
            return cachetools.Cache.__getitem__(self._entries, key)
        except KeyError:
            return None

    def __len__(self) -> int:
        return len(self._entries)

    def in_flight(self) -> int:
        return len(self._flights)

    def reset_after_fork(self) -> None:
        """In a forked child: a fresh lock and no inherited flights (their leaders are gone)."""
        # The inherited flights' events may hold locks of threads that no longer
        # exist, so they are dropped, not set: nobody in the child waits on them.
        self.lock = threading.Lock()
        self._flights = {}
