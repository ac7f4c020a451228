"""Resolver.stats() as Prometheus metrics (the optional ``prometheus`` extra).

``register()`` adds a collector to a registry (the default one unless told
otherwise); every scrape reads the resolver's counters at that moment, so
nothing is counted twice and the hit path pays nothing for being observed.
Each ``Stats`` field becomes a counter ``dnscache_<field>_total``, except
``entries`` (how many answers are held now), which is the gauge
``dnscache_entries``. A new ``Stats`` field appears without a change here.

Without an explicit resolver the collector follows the active one (the
resolver of ``install()`` or of the innermost ``patched()`` block) and exports
nothing while dnscache is off. The counters start from zero with each new
Resolver; Prometheus' ``rate()`` treats that as the counter reset it is.

``prometheus_client`` is imported only when a scrape or ``register()`` needs it,
so importing this module (and re-exporting its names) costs nothing without it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .._engine.resolver import Resolver, Stats

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = ["DnscacheCollector", "register"]

PREFIX = "dnscache"
GAUGES = frozenset({"entries"})  # Stats fields that are levels, not running totals

HELP = {
    "hits": "getaddrinfo calls answered from the cache.",
    "misses": "getaddrinfo calls that waited for an upstream answer.",
    "negative_hits": "getaddrinfo calls answered with a cached failure (gaierror).",
    "stale_hits": "getaddrinfo calls answered with an expired answer because the upstream "
    "failed (RFC 8767 serve-stale).",
    "refreshes": "Background refreshes of answers close to expiry.",
    "refresh_failures": "Background refreshes that failed; the old answer was kept.",
    "evictions": "Answers evicted because the cache was full (maxsize).",
    "persisted_hits": "getaddrinfo calls answered from the persistent cache.",
    "lookups": "Upstream lookups made (misses and refreshes).",
    "entries": "Answers held in the cache now.",
}


class DnscacheCollector:
    """A Prometheus collector for one Resolver's stats, or for the active one's (None)."""

    def __init__(self, resolver: Resolver | None = None) -> None:
        self._resolver = resolver

    def _current(self) -> Resolver | None:
        if self._resolver is not None:
            return self._resolver
        from .._activation.patch import active_resolver

        return active_resolver()

    def _families(self, stats: Stats | None) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for f in dataclasses.fields(Stats):
            doc = HELP.get(f.name, f"dnscache Stats.{f.name}.")
            value = None if stats is None else float(getattr(stats, f.name))
            if f.name in GAUGES:
                yield GaugeMetricFamily(f"{PREFIX}_{f.name}", doc, value=value)
            else:
                yield CounterMetricFamily(f"{PREFIX}_{f.name}", doc, value=value)

    def describe(self) -> Iterator[Metric]:
        """The metric families without samples, so a registry can check names without a scrape."""
        return self._families(None)

    def collect(self) -> Iterator[Metric]:
        resolver = self._current()
        if resolver is None:
            return iter(())
        return self._families(resolver.stats())


def register(
    registry: CollectorRegistry | None = None, resolver: Resolver | None = None
) -> DnscacheCollector:
    """Register a :class:`DnscacheCollector` with ``registry`` (the default REGISTRY); return it."""
    from prometheus_client import REGISTRY

    collector = DnscacheCollector(resolver)
    (REGISTRY if registry is None else registry).register(collector)
    return collector
