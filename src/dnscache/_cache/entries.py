"""The three records the store keeps: entries (answers), views (finished results) and flights.

* An :class:`Entry` is one answer for a (host key, family, entry flags): its
  addresses or a cached ``gaierror``, and its life (``_core.policy``).
* A :class:`View` is the finished ``getaddrinfo`` result of one exact argument
  tuple, made from an entry. The hit path reads views without a lock, so a view
  is replaced, never changed, except for ``until``: a float the slow path may
  move (an atomic attribute store) when it re-validates the view.
* A :class:`Flight` is one upstream lookup under way. Its ``Event`` is made
  only when somebody waits: most lookups have no waiter, and an Event (a
  Condition and a lock) costs more to build than the rest of a miss's
  bookkeeping.

Plain classes with ``__slots__`` rather than dataclasses: they are built on
every miss, and a cached host's memory is mostly these objects.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from .._core.addrinfo import Address, AddrInfo, Packed, pack, unpack
from .._core.names import bare
from .._core.policy import Lifetime

EntryKey = tuple[bytes, int, int]  # (host key, family, entry flags)
RawKey = tuple[Any, ...]  # the caller's arguments, type-tagged (see _engine.hitpath)
Error = tuple[int, str]  # (errno, strerror) of a cached gaierror


def _text(host: bytes) -> str:
    """A host key as text, losslessly (as ``_engine.answers.text``)."""
    return host.decode("ascii", "surrogateescape")


class Entry:
    """One cached answer for a (host, family, flags): addresses or a gaierror."""

    __slots__ = (
        "_name",
        "canonname",
        "error",
        "failed",
        "hits",
        "key",
        "life",
        "packed",
        "retry_after",
        "serve_until",
        "source",
        "touched",
        "views",
    )

    def __init__(
        self,
        key: EntryKey,
        name: str,
        addresses: tuple[Address, ...],
        canonname: str,
        error: Error | None,
        life: Lifetime,
        source: str,
    ) -> None:
        self.key = key
        # The host key as text (lossless), for hooks, logs and entries(): kept only
        # when it is not the key's own text, which it always is today (65 bytes a host).
        self._name = None if name == _text(key[0]) else name
        # Packed (``_core.addrinfo.pack``): the answer's ip strings, shared with the
        # views' tuples, without the sockaddrs around them.
        self.packed: tuple[Packed, ...] = pack(addresses)
        self.canonname = canonname
        self.error = error
        self.life = life
        self.source = source  # "upstream", "override", "persisted", "preload"
        self.serve_until = life.refresh_at  # views of this entry serve hits until then
        self.retry_after = 0.0  # while stale: no upstream retry before this
        self.failed = False  # the last upstream attempt for this answer failed
        self.touched = -math.inf  # when the persistent layer last heard this answer was used
        self.views: list[RawKey] = []
        self.hits = 0

    @property
    def name(self) -> str:
        return _text(self.key[0]) if self._name is None else self._name

    @property
    def addresses(self) -> tuple[Address, ...]:
        """The (family, sockaddr) pairs of the answer, in the resolver's order."""
        return unpack(self.packed)

    @property
    def host(self) -> bytes:
        """The host key without case or final dot: what health and persistence use."""
        return bare(self.key[0])

    def same_answer(self, other: Entry) -> bool:
        return (self.packed, self.canonname, self.error) == (
            other.packed,
            other.canonname,
            other.error,
        )

    def renew(self, life: Lifetime, source: str) -> None:
        """Give this entry a new life (an answer that came back the same)."""
        self.life = life
        self.source = source
        self.serve_until = life.refresh_at
        self.retry_after = 0.0
        self.failed = False

    def __repr__(self) -> str:
        what = self.error if self.error is not None else [a[1][0] for a in self.addresses]
        return f"<Entry {self.name!r} family={self.key[1]} {what} {self.source}>"


class View:
    """A finished result for one exact argument tuple, made from ``entry``."""

    __slots__ = ("entry", "error", "health_until", "key", "raw", "result", "until")

    def __init__(
        self,
        entry: Entry,
        result: list[AddrInfo] | None,
        error: Error | None,
        health_until: float = math.inf,
    ) -> None:
        self.entry = entry
        self.key = entry.key  # what the hit path records as a read, one attribute away
        self.result = result
        self.error = error
        # A health-ordered result must be rebuilt when a failure penalty ends.
        self.health_until = health_until
        # The hit path serves this view while clock() < until; the slow path sets it.
        self.until = -math.inf
        self.raw: RawKey = ()  # the argument tuple it is published for (set by the store)


class Flight:
    """One upstream lookup under way for a key; waiters pass through its gate when it ends.

    The gate is a bare lock, held from the moment somebody waits until the flight
    ends, not a ``threading.Event``: an Event's Condition is several Python steps,
    and an exception raised by a signal handler in the middle of a waiter's
    ``wait()`` can leave its internal lock held, so that the leader's ``set()``
    blocks for ever (found by the signal storm in tests/test_unbreakable.py). The
    leader here only ever *releases* the gate, which cannot block; a waiter
    interrupted while it holds the gate makes the others wait at most until the
    flight's deadline, never for ever.
    """

    __slots__ = ("_gate", "deadline", "entry", "finished", "started")

    def __init__(self, deadline: float, started: float | None) -> None:
        self.started = started  # None while queued for a background worker
        self.deadline = deadline  # waiters stop waiting then (the leader's bound plus a margin)
        self.entry: Entry | None = None  # the answer it ended with, if any
        self.finished = False
        self._gate: threading.Lock | None = None

    # Both of these are called with the store's lock held: that is what makes
    # "make the gate only for a waiter" race-free.

    def waiter_gate(self) -> threading.Lock | None:
        """The gate to wait on (made, held, on first need); None if the flight already ended."""
        if self.finished:
            return None
        if self._gate is None:
            gate = threading.Lock()
            gate.acquire()
            self._gate = gate
        return self._gate

    def finish(self) -> threading.Lock | None:
        """Mark the flight ended; returns the gate to open (outside the lock), if any."""
        self.finished = True
        gate, self._gate = self._gate, None
        return gate


def open_gate(gate: threading.Lock | None) -> None:
    """Let the waiters of a finished flight through (never blocks)."""
    if gate is not None:
        try:
            gate.release()
        except RuntimeError:  # already open
            pass


def pass_gate(gate: threading.Lock, timeout: float) -> bool:
    """Wait until ``gate`` opens or ``timeout`` passes; True if it opened.

    Each waiter takes the gate and hands it on at once, so all of them pass.
    """
    if not gate.acquire(timeout=timeout):
        return False
    open_gate(gate)
    return True
