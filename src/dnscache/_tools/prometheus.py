"""Resolver.stats() as Prometheus metrics (the optional ``prometheus`` extra).

``register()`` adds a collector to a registry (the default one unless told
otherwise); every scrape reads the resolver's counters at that moment, so
nothing is counted twice and the hit path pays nothing for being observed.
The metrics, named as Prometheus' conventions ask (one counter with a label
rather than a counter per outcome; base units; ``_total`` on counters):

* ``dnscache_lookups_total{result="hit|miss|negative|stale|persisted"}``: every
  ``getaddrinfo`` call the cache took care of, by how it was answered (calls
  it passes straight to the system, such as IP literals, are not counted);
* ``dnscache_lookup_duration_seconds``: a histogram of upstream lookups
  (misses and refreshes; its ``_count`` is the number of upstream lookups);
* ``dnscache_entries``: a gauge, the answers held now;
* ``dnscache_refreshes_total``, ``dnscache_refresh_failures_total``,
  ``dnscache_evictions_total``.

Deprecated, and removed in the next release: ``dnscache_hits_total``,
``dnscache_misses_total``, ``dnscache_negative_hits_total``,
``dnscache_stale_hits_total`` and ``dnscache_persisted_hits_total``, the
counters ``dnscache_lookups_total{result=...}`` replaces. They cost five
series and a table here, so dashboards get one release to move. The old
unlabelled ``dnscache_lookups_total`` (upstream lookups) could not be kept:
its name is the new counter's; ``dnscache_lookup_duration_seconds_count``
counts the same lookups.

Without an explicit resolver the collector follows the active one (the
resolver of ``install()`` or of the innermost ``patched()`` block) and exports
nothing while dnscache is off. The counters start from zero with each new
Resolver; Prometheus' ``rate()`` treats that as the counter reset it is.

One process, one collector: prometheus_client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, for gunicorn and the like) aggregates only the
client's own Counter/Gauge/Histogram objects, through files, and ignores
custom collectors such as this one; see the README's recipes for what to do
instead.

``prometheus_client`` is imported only when a scrape or ``register()`` needs it,
so importing this module (and re-exporting its names) costs nothing without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from .._engine.resolver import Resolver
from .._engine.stats import Durations, Stats

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = ["DnscacheCollector", "register"]

PREFIX = "dnscache"

# result label -> the Stats field that counts it
RESULTS = {
    "hit": "hits",
    "miss": "misses",
    "negative": "negative_hits",
    "stale": "stale_hits",
    "persisted": "persisted_hits",
}
RESULTS_HELP = (
    "getaddrinfo calls answered by the cache, by result: hit (a cached answer), miss "
    "(waited for an upstream answer), negative (a cached failure), stale (an expired "
    "answer served while the upstream fails, RFC 8767), persisted (an answer from the "
    "persistent cache or the preload list)."
)
DURATION_HELP = "Upstream lookups (misses and refreshes) by how long they took."
COUNTERS = {
    "refreshes": "Background refreshes of answers close to expiry.",
    "refresh_failures": "Background refreshes that failed; the old answer was kept.",
    "evictions": "Answers evicted because the cache was full (maxsize).",
}
ENTRIES_HELP = "Answers held in the cache now."
# Deprecated names (one release): Stats field -> the result label that replaces it.
DEPRECATED = {field: result for result, field in RESULTS.items()}


class DnscacheCollector:
    """A Prometheus collector for one Resolver's stats, or for the active one's (None)."""

    def __init__(self, resolver: Resolver | None = None) -> None:
        self._resolver = resolver

    def _current(self) -> Resolver | None:
        if self._resolver is not None:
            return self._resolver
        from .._activation.patch import active_resolver

        return active_resolver()

    def _families(self, stats: Stats | None, durations: Durations | None) -> Iterator[Metric]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        lookups = CounterMetricFamily(f"{PREFIX}_lookups", RESULTS_HELP, labels=["result"])
        if stats is not None:
            for result, field in RESULTS.items():
                lookups.add_metric([result], float(getattr(stats, field)))
        yield lookups

        if durations is None:
            yield HistogramMetricFamily(f"{PREFIX}_lookup_duration_seconds", DURATION_HELP)
        else:
            buckets, running = [], 0
            bounds = [repr(bound) for bound in durations.bounds] + ["+Inf"]  # as the client's
            for bound, count in zip(bounds, durations.counts, strict=True):
                running += count
                buckets.append((bound, float(running)))
            yield HistogramMetricFamily(
                f"{PREFIX}_lookup_duration_seconds",
                DURATION_HELP,
                buckets=buckets,
                sum_value=durations.total,
            )

        entries = None if stats is None else float(stats.entries)
        yield GaugeMetricFamily(f"{PREFIX}_entries", ENTRIES_HELP, value=entries)
        for field, doc in COUNTERS.items():
            value = None if stats is None else float(getattr(stats, field))
            yield CounterMetricFamily(f"{PREFIX}_{field}", doc, value=value)
        for field, result in DEPRECATED.items():
            value = None if stats is None else float(getattr(stats, field))
            doc = f'Deprecated: use {PREFIX}_lookups_total{{result="{result}"}} (to be removed).'
            yield CounterMetricFamily(f"{PREFIX}_{field}", doc, value=value)

    def describe(self) -> Iterator[Metric]:
        """The metric families without samples, so a registry can check names without a scrape."""
        return self._families(None, None)

    def collect(self) -> Iterator[Metric]:
        resolver = self._current()
        if resolver is None:
            return iter(())
        return self._families(resolver.stats(), resolver.lookup_durations())


def register(
    registry: CollectorRegistry | None = None, resolver: Resolver | None = None
) -> DnscacheCollector:
    """Register a :class:`DnscacheCollector` with ``registry`` (the default REGISTRY); return it."""
    from prometheus_client import REGISTRY

    collector = DnscacheCollector(resolver)
    (REGISTRY if registry is None else registry).register(collector)
    return collector
