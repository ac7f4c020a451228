"""What a process keeps in memory: rows the file could not take, and when rows were touched.

:class:`MemoryRows` is used when the location is unusable from the start
(memory mode) and for batches a write failed to store (a full disk): the
process still serves what it saw, for its own lifetime, within a bound.
:class:`Touches` remembers when each row was last touched, so that a hot name
costs one write a minute, not one per hit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from .rules import Times, is_alive, newer

__all__ = ["MAX_MEMORY_ROWS", "MAX_TOUCHED", "TOUCH_INTERVAL", "MemoryRows", "Touches"]

MAX_MEMORY_ROWS = 10_000  # rows kept in memory when the file cannot take them

# Delta Chat stamps last_seen each time its in-memory cache returns an address. A hot
# name is returned thousands of times a minute; once a minute per row keeps the row's
# age exact to a minute (against a max_age of days) at a write rate nobody notices.
TOUCH_INTERVAL = 60.0
MAX_TOUCHED = 10_000  # rows whose last touch is remembered; past this the oldest is forgotten


class MemoryRows:
    """Rows this process keeps for itself: bounded, oldest host evicted first. Not thread-safe."""

    def __init__(self, limit: int = MAX_MEMORY_ROWS) -> None:
        self._hosts: OrderedDict[bytes, dict[str, Times]] = OrderedDict()
        self._count = 0
        self._limit = limit

    def __len__(self) -> int:
        return self._count

    def upsert(self, host: bytes, ip: str, times: Times) -> None:
        ips = self._hosts.get(host)
        if ips is None:
            ips = self._hosts[host] = {}
        old = ips.get(ip)
        if old is None:
            self._count += 1
            ips[ip] = times
        else:
            ips[ip] = newer(old, times)
        while self._count > self._limit and self._hosts:
            _, evicted = self._hosts.popitem(last=False)
            self._count -= len(evicted)

    def rows(self, host: bytes) -> dict[str, Times]:
        return dict(self._hosts.get(host, {}))

    def hosts(self) -> dict[bytes, dict[str, Times]]:
        return {host: dict(ips) for host, ips in self._hosts.items()}

    def prune(self, now: float, max_age: float) -> int:
        removed = 0
        for host in list(self._hosts):
            ips = self._hosts[host]
            for ip in [ip for ip, t in ips.items() if not is_alive(t[0], now, max_age)]:
                del ips[ip]
                removed += 1
            if not ips:
                del self._hosts[host]
        self._count -= removed
        return removed

    def clear(self) -> None:
        self._hosts.clear()
        self._count = 0


class Touches:
    """When each (host, ip) row was last touched; bounded, oldest forgotten first.

    :meth:`recent` takes no lock (a dict read, safe under the GIL; a stale answer
    only costs a trip through :meth:`due`); :meth:`due` needs the caller's lock.
    """

    def __init__(self, limit: int | None = None) -> None:
        self._last: dict[tuple[bytes | str, str], float] = {}  # oldest first
        self._limit = limit

    def recent(self, host: bytes | str, ips: Iterable[str], now: float) -> bool:
        """Whether every row of ``ips`` was touched less than TOUCH_INTERVAL before ``now``."""
        last = self._last
        for ip in ips:
            t = last.get((host, ip))
            if t is None or not 0.0 <= now - t < TOUCH_INTERVAL:
                return False
        return True

    def due(
        self, host: bytes | str, ips: Iterable[str], now: float, *, force: bool = False
    ) -> list[str]:
        """The ``ips`` whose row is due for a touch at ``now``, marked touched (hold a lock).

        ``force``: mark them all as touched now (they were just written anyway).
        """
        last = self._last
        due = []
        for ip in ips:
            key = (host, ip)
            t = last.pop(key, None)  # re-inserted below: the dict stays oldest first
            if not force and t is not None and 0.0 <= now - t < TOUCH_INTERVAL:
                last[key] = t
                continue
            last[key] = now
            due.append(ip)
        limit = MAX_TOUCHED if self._limit is None else self._limit
        while len(last) > limit:
            del last[next(iter(last))]
        return due
