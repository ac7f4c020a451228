"""Counters a Resolver keeps, the lookup-duration histogram, and their public snapshots.

The counters are bumped on the hit path, so they are plain attributes and take
no lock. The histogram is fed once per upstream lookup (after it ended, by the
executor's ``_after``), never on the hit path, so it can afford a small lock of
its own: a scrape then always sees buckets, count and sum that agree.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

# Upper bounds (seconds) of the lookup-duration buckets: the boundaries
# OpenTelemetry's semantic conventions advise for dns.lookup.duration, so that
# the Prometheus histogram and the OpenTelemetry one can be read side by side.
# From 5 ms (a resolver on the LAN answering from its cache) to 10 s (beyond
# glibc's default 5 s timeout times one retry: a dead nameserver).
DURATION_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


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


class Durations:
    """How long upstream lookups took: a histogram with fixed buckets (read-only by contract).

    ``counts[i]`` lookups took at most ``bounds[i]`` seconds and more than the
    bound before it (not cumulative); ``counts[-1]`` (one more than ``bounds``)
    took longer than the last bound. ``total`` is the sum of all durations.
    A plain class, not a dataclass: it is defined on the start-up path, where
    a dataclass costs a compile of its generated methods.
    """

    __slots__ = ("bounds", "counts", "total")

    def __init__(
        self,
        bounds: tuple[float, ...] = DURATION_BOUNDS,
        counts: tuple[int, ...] = (0,) * (len(DURATION_BOUNDS) + 1),
        total: float = 0.0,
    ) -> None:
        self.bounds = bounds
        self.counts = counts
        self.total = total

    @property
    def count(self) -> int:
        return sum(self.counts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Durations):
            return NotImplemented
        return (self.bounds, self.counts, self.total) == (other.bounds, other.counts, other.total)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Durations(bounds={self.bounds}, counts={self.counts}, total={self.total})"


class DurationHistogram:
    """The running histogram behind :class:`Durations` (thread-safe, off the hit path)."""

    __slots__ = ("_counts", "_lock", "_total")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = [0] * (len(DURATION_BOUNDS) + 1)
        self._total = 0.0

    def observe(self, seconds: float) -> None:
        index = 0  # a duration equal to a bound belongs to that bound's bucket (le)
        for bound in DURATION_BOUNDS:  # fourteen compares once per lookup: no bisect import
            if seconds <= bound:
                break
            index += 1
        with self._lock:
            self._counts[index] += 1
            self._total += seconds

    def snapshot(self) -> Durations:
        with self._lock:
            return Durations(DURATION_BOUNDS, tuple(self._counts), self._total)

    def reset_after_fork(self) -> None:
        """A fresh lock (the parent's may have been held by a thread the child lacks)."""
        self._lock = threading.Lock()


class Counters:
    """The running counts behind :class:`Stats`, and the lookup-duration histogram.

    Plain attributes bumped with ``+=``: exact under the GIL for the hit path's
    single increments, approximate (never corrupt) on a free-threaded build.
    """

    __slots__ = (
        "durations",
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
        self.durations = DurationHistogram()  # of upstream lookups, fed after each one

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
