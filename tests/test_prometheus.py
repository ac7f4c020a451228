"""The Prometheus collector, scraped the way Prometheus would: generate_latest()."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys

import prometheus_client  # in the dev extra: this file must run, never skip
import pytest
from prometheus_client.parser import text_string_to_metric_families

import dnscache
from dnscache._tools.dnsserver import DNSServer
from dnscache._tools.prometheus import DnscacheCollector, register

FIELDS = [f.name for f in dataclasses.fields(dnscache.Stats)]


def scrape(registry: prometheus_client.CollectorRegistry) -> dict[str, float]:
    """{sample name: value} from the text exposition format."""
    text = prometheus_client.generate_latest(registry).decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def expected_names() -> set[str]:
    return {f"dnscache_{f}" if f == "entries" else f"dnscache_{f}_total" for f in FIELDS}


def test_every_stats_field_is_exported(dns_server: DNSServer) -> None:
    dns_server.set("a.prom.test", a=["127.0.0.1"])
    dns_server.set("b.prom.test", a=["127.0.0.2"])
    registry = prometheus_client.CollectorRegistry()
    with dnscache.Resolver(backend="dnspython", nameservers=(dns_server.nameserver,)) as resolver:
        register(registry, resolver=resolver)
        for _ in range(3):
            resolver.getaddrinfo("a.prom.test", 80, socket.AF_INET)
        resolver.getaddrinfo("b.prom.test", 80, socket.AF_INET)
        with pytest.raises(socket.gaierror):
            resolver.getaddrinfo("nope.prom.test", 80, socket.AF_INET)
        with pytest.raises(socket.gaierror):
            resolver.getaddrinfo("nope.prom.test", 80, socket.AF_INET)
        stats = resolver.stats()
        samples = scrape(registry)
    assert set(samples) == expected_names()
    for field in FIELDS:
        name = f"dnscache_{field}" if field == "entries" else f"dnscache_{field}_total"
        assert samples[name] == float(getattr(stats, field)), field
    assert samples["dnscache_hits_total"] == 2
    assert samples["dnscache_misses_total"] == 3
    assert samples["dnscache_negative_hits_total"] == 1
    assert samples["dnscache_entries"] == 3


def test_types_and_help() -> None:
    registry = prometheus_client.CollectorRegistry()
    with dnscache.Resolver() as resolver:
        register(registry, resolver=resolver)
        text = prometheus_client.generate_latest(registry).decode()
    assert "# TYPE dnscache_hits_total counter" in text
    assert "# TYPE dnscache_entries gauge" in text
    assert "# HELP dnscache_hits_total getaddrinfo calls answered from the cache." in text


def test_follows_the_active_resolver() -> None:
    registry = prometheus_client.CollectorRegistry()
    collector = register(registry)
    assert isinstance(collector, DnscacheCollector)
    assert scrape(registry) == {}  # dnscache is off: nothing to report
    with dnscache.patched(hosts={"pinned.prom.test": ["127.0.0.1"]}):
        socket.getaddrinfo("pinned.prom.test", 80)
        socket.getaddrinfo("pinned.prom.test", 80)
        with dnscache.patched() as inner:
            assert scrape(registry)["dnscache_hits_total"] == 0  # the innermost block's
            assert inner is dnscache.active_resolver()
        samples = scrape(registry)
        assert samples["dnscache_hits_total"] == 2
        assert samples["dnscache_entries"] == 1
    assert scrape(registry) == {}


def test_describe_lets_a_registry_refuse_duplicates() -> None:
    registry = prometheus_client.CollectorRegistry()
    register(registry)
    with pytest.raises(ValueError, match="dnscache_hits"):
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
    assert {m.name for m in collector.describe()} == {f"dnscache_{f}" for f in FIELDS}


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
