"""The bounded in-memory store: entries, the views that serve hits, recency and flights.

Two levels, so that a hit costs a dict lookup and nothing else:

* **Entries**, one per (host key, family, entry flags), live in a
  ``cachetools.TLRUCache`` whose time-to-use is the end of the entry's stale
  window and whose timer is the injected clock: expiry and the ``maxsize``
  bound come from the library, on the write path, so no sweeper thread is
  needed. Only code holding the store's lock touches it: cachetools' caches
  are not thread-safe, as their docs say.
* **Views**, one per exact argument tuple a caller used, hold the finished
  ``getaddrinfo`` result made from an entry. They live in a plain ``dict``
  (``front``) that the hit path reads without any lock: a dict lookup is atomic
  under the GIL. Views are bounded twice: ``MAX_VIEWS`` per entry (a crawler
  trying every port of a host) and ``max_views`` in all (a client talking to
  many ports of many hosts: without it, 10,000 entries of 32 views each can
  hold gigabytes). Views go when their entry goes.

Recency without a lock on the hit path: a hit appends the entry's key to a
bounded ``deque`` (an atomic C operation), and the writer replays those reads
into the LRU order under the lock before it inserts. This is the "read buffer"
of Caffeine (Ben Manes' Java cache). The order is exact for the last
``READ_BUFFER`` hits; older reads are dropped, never blocked on.

An index by host (the key without case or final dot) makes the two per-host
events, a change in address health and ``invalidate(host)``, cost the host's
entries instead of a walk over the whole store. Most hosts have one entry, so
the index holds that entry's key itself, and a set only from the second (a
set is 216 bytes: a quarter of what a dict memo spends on a whole host).

Flights (lookups under way) are registered here too, under the same lock, so
that "is there an answer or a lookup for this key" is one consistent snapshot.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator

import cachetools

from .._core.names import bare
from .entries import Entry, EntryKey, Flight, RawKey, View

MAX_VIEWS = 32  # per entry
READ_BUFFER = 4096


def _stale_until(_key: EntryKey, entry: Entry, _now: float) -> float:
    return entry.life.stale_until


class _Entries(cachetools.TLRUCache[EntryKey, Entry]):
    """cachetools' TLRU cache, telling the store about every entry it drops."""

    def __init__(
        self, maxsize: int, timer: Callable[[], float], on_drop: Callable[[Entry, bool], None]
    ) -> None:
        super().__init__(maxsize, _stale_until, timer=timer)
        self._on_drop = on_drop

    def expire(self, time: float | None = None) -> list[tuple[EntryKey, Entry]]:
        expired = list(super().expire(time))
        for _key, entry in expired:
            self._on_drop(entry, False)
        return expired

    def popitem(self) -> tuple[EntryKey, Entry]:
        key, entry = super().popitem()
        self._on_drop(entry, True)
        return key, entry


class Store:
    """Entries, views, recency, flights and the host index, guarded by one lock.

    Hits take no lock; every method below, except :meth:`peek`, is called with
    ``lock`` held.
    """

    def __init__(self, maxsize: int, max_views: int, clock: Callable[[], float]) -> None:
        self.lock = threading.Lock()
        self.front: dict[RawKey, View] = {}
        self.reads: deque[EntryKey] = deque(maxlen=READ_BUFFER)
        self.evictions = 0
        self._maxsize = maxsize
        self._max_views = max_views
        self._clock = clock
        self._entries = _Entries(maxsize, clock, self._dropped)
        self._flights: dict[EntryKey, Flight] = {}
        self._by_host: dict[bytes, EntryKey | set[EntryKey]] = {}
        self._view_order: deque[View] = deque()  # oldest published first (each knows its raw)

    # --- entries ---

    def _dropped(self, entry: Entry, evicted: bool) -> None:
        if evicted:
            self.evictions += 1
        self._unindex(entry)
        self.drop_views(entry)

    def _index(self, entry: Entry) -> None:
        key = entry.key
        host = entry.host
        if host == key[0]:
            host = key[0]  # the key's own bytes, not an equal copy
        by_host = self._by_host
        keys = by_host.get(host)
        if keys is None or keys == key:
            by_host[host] = key
        elif isinstance(keys, set):
            keys.add(key)
        else:
            by_host[host] = {keys, key}

    def _unindex(self, entry: Entry) -> None:
        host = entry.host
        by_host = self._by_host
        keys = by_host.get(host)
        if keys is None:
            return
        if isinstance(keys, set):
            keys.discard(entry.key)
            if len(keys) == 1:
                by_host[host] = next(iter(keys))
            elif not keys:
                del by_host[host]
        elif keys == entry.key:
            del by_host[host]

    def _replay_reads(self) -> None:
        entries = self._entries
        reads = self.reads
        while reads:
            key = reads.popleft()
            if key in entries:
                entries[key]  # cachetools moves it to the most recent end

    def get(self, key: EntryKey) -> Entry | None:
        """The live entry for ``key`` (a use: it becomes the most recently used)."""
        return self._entries.get(key)

    def put(self, entry: Entry) -> Entry:
        """Store ``entry``; if the current one holds the same answer, renew that instead.

        Returns the entry now in the store (views made from it stay valid).
        """
        current = self.get(entry.key)
        if current is not None:
            if current.same_answer(entry):
                current.renew(entry.life, entry.source)
                self._entries[entry.key] = current  # a new time-to-use
                return current
            self.drop_views(current)
        self._replay_reads()
        self._entries[entry.key] = entry
        if entry.key in self._entries:  # an answer that is already past its window is not kept
            self._index(entry)
        return entry

    def remove(self, key: EntryKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._unindex(entry)
            self.drop_views(entry)

    def of_host(self, host: bytes) -> list[Entry]:
        """The live entries of ``host`` (a bare key: no case, no final dot)."""
        entries = self._entries
        found = []
        keys = self._by_host.get(bare(host))
        for key in [keys] if isinstance(keys, tuple) else list(keys or ()):
            entry = cachetools.Cache.get(entries, key)  # no use, no expiry check
            if entry is not None:
                found.append(entry)
        return found

    def clear(self) -> None:
        # Not self._entries.clear(): that pops item by item, which would count evictions.
        self._entries = _Entries(self._maxsize, self._clock, self._dropped)
        self._by_host.clear()
        self.front.clear()
        self._view_order.clear()
        self.reads.clear()

    def __iter__(self) -> Iterator[Entry]:
        entries = self._entries
        return iter([cachetools.Cache.__getitem__(entries, key) for key in entries])

    def __len__(self) -> int:
        self._entries.expire()
        return len(self._entries)

    def peek(self, key: EntryKey) -> Entry | None:
        """The entry for ``key`` without the lock or a use: a hint, to confirm under the lock."""
        try:
            return cachetools.Cache.__getitem__(self._entries, key)
        except KeyError:
            return None

    # --- views ---

    def drop_views(self, entry: Entry) -> None:
        """Unpublish every view made from ``entry`` (they are rebuilt on the next call)."""
        front = self.front
        for raw in entry.views:
            view = front.get(raw)
            if view is not None and view.entry is entry:
                del front[raw]
        entry.views.clear()

    def add_view(self, raw: RawKey, view: View) -> bool:
        """Publish (or replace) the view for ``raw`` if its entry is still the stored one."""
        entry = view.entry
        if self.peek(entry.key) is not entry:
            return False
        front = self.front
        view.raw = raw
        old = front.get(raw)
        if old is not None and old.entry is entry:
            front[raw] = view  # a rebuilt view (new health order) replaces the old one
            self._view_order.append(view)
            return True
        if len(entry.views) >= MAX_VIEWS:
            oldest = entry.views.pop(0)
            if (v := front.get(oldest)) is not None and v.entry is entry:
                del front[oldest]
        entry.views.append(raw)
        front[raw] = view
        self._view_order.append(view)
        self._bound_views()
        return True

    def _bound_views(self) -> None:
        """Keep at most max_views views in all, dropping the oldest published."""
        front = self.front
        order = self._view_order
        while len(front) > self._max_views and order:
            view = order.popleft()
            raw = view.raw
            if front.get(raw) is view:
                del front[raw]
                views = view.entry.views
                if raw in views:
                    views.remove(raw)
        # Records of views replaced or dropped since stay behind: compact when they dominate.
        if len(order) > 2 * len(front) + 1024:
            self._view_order = deque(v for v in order if front.get(v.raw) is v)

    # --- flights ---

    def flight(self, key: EntryKey) -> Flight | None:
        """The lookup under way for ``key``, if any (a finished one counts as none)."""
        flight = self._flights.get(key)
        if flight is not None and flight.finished:
            del self._flights[key]  # its leader was interrupted before it could unregister
            return None
        return flight

    def begin(self, key: EntryKey, flight: Flight) -> None:
        """Register ``flight`` as the lookup under way for ``key``."""
        self._flights[key] = flight

    def finish(self, key: EntryKey, flight: Flight, entry: Entry | None) -> Entry | None:
        """End ``flight``: store its entry (if any), unregister it; the caller opens its gate."""
        if self._flights.get(key) is flight:
            del self._flights[key]
        stored = self.put(entry) if entry is not None else None
        if flight.entry is None:
            flight.entry = stored
        return stored

    def flights(self) -> list[tuple[EntryKey, Flight]]:
        return list(self._flights.items())

    def in_flight(self) -> int:
        return len(self._flights)

    def reset_after_fork(self) -> None:
        """In a forked child: a fresh lock and no inherited flights (their leaders are gone)."""
        # The inherited flights' gates belong to threads that no longer exist, so
        # they are dropped, not opened: nobody in the child waits on them.
        self.lock = threading.Lock()
        self._flights = {}
