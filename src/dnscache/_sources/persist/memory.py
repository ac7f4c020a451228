"""Rows a process keeps for itself when the file cannot take them (degraded mode).

Used when the location is unusable from the start (memory mode) and for
batches a write failed to store (a full disk): the process still serves what it
saw, for its own lifetime, within a bound.
"""

from __future__ import annotations

from collections import OrderedDict

from .rules import Times, is_alive, newer

__all__ = ["MAX_MEMORY_ROWS", "MemoryRows"]

MAX_MEMORY_ROWS = 10_000  # rows kept in memory when the file cannot take them


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
