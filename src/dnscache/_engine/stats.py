"""Counters a Resolver keeps, and the public snapshot of them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stats:
    """Counters since the Resolver was created."""

    hits: int = 0
    misses: int = 0
    negative_hits: int = 0
    stale_hits: int = 0
    refreshes: int = 0
    refresh_failures: int = 0
    evictions: int = 0
    persisted_hits: int = 0
    lookups: int = 0  # upstream lookups made (misses and refreshes)
    entries: int = 0  # entries held now


class Counters:
    """The running counts behind :class:`Stats`.

    Plain attributes bumped with ``+=``: exact under the GIL for the hit path's
    single increments, approximate (never corrupt) on a free-threaded build.
    """

    __slots__ = (
        "hits",
        "lookups",
        "misses",
        "negative_hits",
        "persisted_hits",
        "refresh_failures",
        "refreshes",
        "stale_hits",
    )

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.negative_hits = 0
        self.stale_hits = 0
        self.refreshes = 0
        self.refresh_failures = 0
        self.persisted_hits = 0
        self.lookups = 0

    def snapshot(self, evictions: int, entries: int) -> Stats:
        return Stats(
            hits=self.hits,
            misses=self.misses,
            negative_hits=self.negative_hits,
            stale_hits=self.stale_hits,
            refreshes=self.refreshes,
            refresh_failures=self.refresh_failures,
            evictions=evictions,
            persisted_hits=self.persisted_hits,
            lookups=self.lookups,
            entries=entries,
        )
