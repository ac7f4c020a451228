"""The Prometheus collector, scraped the way Prometheus would: over HTTP, then parsed.

The metrics are served by prometheus_client's own HTTP handler on loopback, fetched
with an HTTP client, and read back with prometheus_client's text-format parser, so a
family that the client would render differently (a label, a suffix, a bucket) shows.
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import prometheus_client  # in the dev extra: this file must run, never skip
import pytest
from prometheus_client.exposition import MetricsHandler
from prometheus_client.parser import text_string_to_metric_families

import dnscache
from dnscache import Resolver
from dnscache._engine.stats import DURATION_BOUNDS, DurationHistogram
from dnscache._tools.dnsserver import DNSServer
from dnscache._tools.prometheus import DnscacheCollector, register

V4 = socket.AF_INET
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
OLD_NAMES = ("hits", "misses", "negative_hits", "stale_hits", "persisted_hits")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Exporter:
    """prometheus_client's MetricsHandler for ``registry``, on 127.0.0.1, in a thread."""

    def __init__(self, registry: prometheus_client.CollectorRegistry) -> None:
        handler = MetricsHandler.factory(registry)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="test-exporter"
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"

    def text(self) -> str:
        with urllib.request.urlopen(self.url, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            return str(response.read().decode())

    def families(self) -> dict[str, Any]:
        return {f.name: f for f in text_string_to_metric_families(self.text())}

    def samples(self) -> Samples:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(self.text())
            for s in family.samples
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    made = Exporter(prometheus_client.CollectorRegistry())
    yield made
    made.close()


@pytest.fixture
def make(dns_server: DNSServer) -> Iterator[Callable[..., Resolver]]:
    made: list[Resolver] = []

    def make(**options: Any) -> Resolver:
        options.setdefault("backend", "dnspython")
        options.setdefault("nameservers", (dns_server.nameserver,))
        resolver = Resolver(**options)
        made.append(resolver)
        return resolver

    yield make
    for resolver in made:
        resolver.close()


def registry_of(exporter: Exporter) -> prometheus_client.CollectorRegistry:
    registry = exporter.server.RequestHandlerClass.registry  # type: ignore[attr-defined]
    assert isinstance(registry, prometheus_client.CollectorRegistry)
    return registry


def lookups(samples: Samples) -> dict[str, float]:
    return {
        dict(labels)["result"]: value
        for (name, labels), value in samples.items()
        if name == "dnscache_lookups_total"
    }


def test_one_counter_with_a_result_label(
    dns_server: DNSServer, exporter: Exporter, make: Callable[..., Resolver]
) -> None:
    clock = FakeClock()
    dns_server.set("a.prom.test", a=["127.0.0.1"], ttl=10)
    dns_server.nxdomain("nope.prom.test")
    dns_server.servfail("known.prom.test")
    resolver = make(clock=clock, preload={"known.prom.test": ["127.0.0.3"]}, resolve_timeout=2.0)
    register(registry_of(exporter), resolver=resolver)
    for _ in range(3):
        resolver.getaddrinfo("a.prom.test", 80, V4)  # a miss, then hits
    for _ in range(2):
        with pytest.raises(socket.gaierror):
            resolver.getaddrinfo("nope.prom.test", 80, V4)  # a miss, then a negative hit
    resolver.getaddrinfo("known.prom.test", 80, V4)  # the upstream fails: the preload list
    resolver.getaddrinfo("127.0.0.1", 80)  # an IP literal: the system's, not counted
    dns_server.servfail("a.prom.test")
    clock.now += 20  # a.prom.test expired; its upstream fails: served stale
    resolver.getaddrinfo("a.prom.test", 80, V4)

    samples = exporter.samples()
    assert lookups(samples) == {"hit": 2, "miss": 2, "negative": 1, "stale": 1, "persisted": 1}
    stats = resolver.stats()
    assert samples[("dnscache_entries", ())] == stats.entries == len(list(resolver.entries())) > 0
    for name in ("refreshes", "refresh_failures", "evictions"):
        assert samples[(f"dnscache_{name}_total", ())] == getattr(stats, name)
    # The old counters, for one release, say the same.
    for name in OLD_NAMES:
        assert samples[(f"dnscache_{name}_total", ())] == getattr(stats, name), name
    # The old unlabelled dnscache_lookups_total (upstream lookups) is the histogram's count.
    assert ("dnscache_lookups_total", ()) not in samples
    assert samples[("dnscache_lookup_duration_seconds_count", ())] == stats.lookups


def test_upstream_lookup_durations_are_a_histogram(
    dns_server: DNSServer, exporter: Exporter, make: Callable[..., Resolver]
) -> None:
    dns_server.set("slow.prom.test", a=["127.0.0.1"], delay=0.3)
    dns_server.set("fast.prom.test", a=["127.0.0.1"])
    resolver = make()
    register(registry_of(exporter), resolver=resolver)
    empty = exporter.samples()
    assert empty[("dnscache_lookup_duration_seconds_count", ())] == 0
    for _ in range(5):
        resolver.getaddrinfo("slow.prom.test", 80, V4)  # one upstream lookup, then hits
        resolver.getaddrinfo("fast.prom.test", 80, V4)

    family = exporter.families()["dnscache_lookup_duration_seconds"]
    assert family.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    assert list(buckets) == [
        "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75",
        "1.0", "2.5", "5.0", "7.5", "10.0", "+Inf",
    ]  # fmt: skip
    counts = list(buckets.values())
    assert counts == sorted(counts)  # cumulative
    assert buckets["+Inf"] == 2
    assert buckets["0.25"] <= 1  # the slow one took at least its 0.3 s delay
    (total,) = [s.value for s in family.samples if s.name.endswith("_sum")]
    assert total >= 0.3
    durations = resolver.lookup_durations()
    assert durations.count == 2 and durations.total == total


def test_types_and_help(exporter: Exporter, make: Callable[..., Resolver]) -> None:
    register(registry_of(exporter), resolver=make())
    text = exporter.text()
    assert "# TYPE dnscache_lookups_total counter" in text
    assert "# TYPE dnscache_lookup_duration_seconds histogram" in text
    assert "# TYPE dnscache_entries gauge" in text
    assert "# HELP dnscache_lookups_total getaddrinfo calls answered by the cache" in text
    assert '# HELP dnscache_hits_total Deprecated: use dnscache_lookups_total{result="hit"}' in text


def test_follows_the_active_resolver(exporter: Exporter) -> None:
    collector = register(registry_of(exporter))
    assert isinstance(collector, DnscacheCollector)
    assert exporter.samples() == {}  # dnscache is off: nothing to report
    with dnscache.patched(hosts={"pinned.prom.test": ["127.0.0.1"]}):
        socket.getaddrinfo("pinned.prom.test", 80)
        socket.getaddrinfo("pinned.prom.test", 80)
        with dnscache.patched() as inner:
            assert lookups(exporter.samples())["hit"] == 0  # the innermost block's
            assert inner is dnscache.active_resolver()
        # Scraping from inside the block connects to 127.0.0.1: a literal, not counted.
        samples = exporter.samples()
        assert lookups(samples) == {"hit": 2, "miss": 0, "negative": 0, "stale": 0, "persisted": 0}
        assert samples[("dnscache_entries", ())] == 1
    assert exporter.samples() == {}


def test_describe_lets_a_registry_refuse_duplicates() -> None:
    registry = prometheus_client.CollectorRegistry()
    register(registry)
    with pytest.raises(ValueError, match="dnscache_lookups"):
        register(registry)


def test_default_registry() -> None:
    collector = register()
    try:
        with dnscache.patched(hosts={"pinned.prom.test": ["127.0.0.1"]}):
            socket.getaddrinfo("pinned.prom.test", 80)
            text = prometheus_client.generate_latest().decode()
        assert "dnscache_entries 1.0" in text
    finally:
        prometheus_client.REGISTRY.unregister(collector)
    # Family names carry no _total suffix; the client adds it to the samples.
    assert {m.name for m in collector.describe()} == {
        "dnscache_lookups",
        "dnscache_lookup_duration_seconds",
        "dnscache_entries",
        "dnscache_refreshes",
        "dnscache_refresh_failures",
        "dnscache_evictions",
        *(f"dnscache_{name}" for name in OLD_NAMES),
    }


def test_importable_without_prometheus_client() -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "from dnscache._tools.prometheus import DnscacheCollector\n"
        "print(list(DnscacheCollector().collect()))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert proc.stdout == "[]\n"


def test_duration_buckets_are_upper_bounds_inclusive() -> None:
    # Prometheus' `le`: a duration equal to a bound counts in that bound's bucket.
    histogram = DurationHistogram()
    for seconds in (0.0, 0.005, 0.0051, 10.0, 10.5, 3600.0):
        histogram.observe(seconds)
    durations = histogram.snapshot()
    assert durations.bounds == DURATION_BOUNDS
    assert len(durations.counts) == len(DURATION_BOUNDS) + 1
    assert durations.counts[0] == 2  # 0.0 and 0.005
    assert durations.counts[1] == 1  # 0.0051
    assert durations.counts[DURATION_BOUNDS.index(10.0)] == 1
    assert durations.counts[-1] == 2  # beyond the last bound
    assert durations.count == 6
    assert durations.total == pytest.approx(3620.5101)
