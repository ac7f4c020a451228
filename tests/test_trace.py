"""OpenTelemetry: a span per upstream lookup, an event per answer served from the cache.

Captured with the SDK's in-memory exporter: real spans, real context propagation.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import dnscache
from dnscache._tools.dnsserver import DNSServer

_exporter = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_exporter))
trace.set_tracer_provider(_provider)  # once per process: OpenTelemetry allows no override


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _exporter.clear()
    yield _exporter
    _exporter.clear()


def test_upstream_lookup_is_a_child_span_and_a_hit_is_an_event(
    dns_server: DNSServer, spans: InMemorySpanExporter
) -> None:
    dns_server.set("traced.test", a=["127.0.0.7"], ttl=60)
    tracer = trace.get_tracer("test")
    with (
        dnscache.Resolver(
            backend="dnspython", nameservers=(dns_server.nameserver,), trace=True
        ) as resolver,
        tracer.start_as_current_span("request"),
    ):
        resolver.getaddrinfo("traced.test", 80, socket.AF_INET, socket.SOCK_STREAM)
        resolver.getaddrinfo("traced.test", 80, socket.AF_INET, socket.SOCK_STREAM)

    finished = {span.name: span for span in spans.get_finished_spans()}
    assert set(finished) == {"request", "dnscache.lookup"}
    lookup, request = finished["dnscache.lookup"], finished["request"]
    assert lookup.parent is not None
    assert lookup.parent.span_id == request.context.span_id
    assert lookup.attributes is not None
    assert lookup.attributes["dns.question.name"] == "traced.test"
    assert lookup.attributes["dnscache.family"] == socket.AF_INET
    assert lookup.attributes["dnscache.outcome"] == "127.0.0.7"
    assert [event.name for event in request.events] == ["dnscache.hit"]


def test_failed_lookup_span_records_the_error(
    dns_server: DNSServer, spans: InMemorySpanExporter
) -> None:
    dns_server.nxdomain("missing.test")
    with (
        dnscache.Resolver(
            backend="dnspython", nameservers=(dns_server.nameserver,), trace=True
        ) as resolver,
        pytest.raises(socket.gaierror),
    ):
        resolver.getaddrinfo("missing.test", 80)
    (lookup,) = spans.get_finished_spans()
    assert lookup.attributes is not None
    assert lookup.attributes["dnscache.outcome"] == f"error {socket.EAI_NONAME}"


def test_trace_off_adds_nothing(dns_server: DNSServer, spans: InMemorySpanExporter) -> None:
    dns_server.set("quiet.test", a=["127.0.0.8"])
    with dnscache.Resolver(backend="dnspython", nameservers=(dns_server.nameserver,)) as r:
        r.getaddrinfo("quiet.test", 80)
        r.getaddrinfo("quiet.test", 80)
        assert r._tracer is None  # and so the hit path is not wrapped at all
    assert spans.get_finished_spans() == ()


def test_traced_getaddrinfo_keeps_the_originals_errors(dns_server: DNSServer) -> None:
    with (
        dnscache.Resolver(
            backend="dnspython", nameservers=(dns_server.nameserver,), trace=True
        ) as resolver,
        pytest.raises(TypeError) as ours,
    ):
        resolver.getaddrinfo("localhost")
    with pytest.raises(TypeError) as theirs:
        dnscache.get_original("getaddrinfo")("localhost")
    assert str(ours.value) == str(theirs.value)
