"""OpenTelemetry: spans for upstream lookups, events for cache answers, a duration histogram.

Captured with the SDK's in-memory span exporter and metric reader: real spans, real
context propagation (threads, asyncio's executor, background workers), real
aggregation. Names come from the loopback :class:`DNSServer` through the dnspython
backend; time, where a test needs an answer to age, is a fake clock.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import dnscache
from dnscache import Resolver
from dnscache._engine import trace as dnstrace
from dnscache._engine.hitpath import make_hit_path
from dnscache._engine.stats import DURATION_BOUNDS, Counters
from dnscache._sources.answer import Answer, Backend
from dnscache._tools.dnsserver import DNSServer

V4 = socket.AF_INET


class Resolving(SpanProcessor):
    """A processor that resolves a name when a span ends (an exporter shipping spans)."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.answers: list[object] = []

    def on_end(self, span: ReadableSpan) -> None:
        if self.name is not None and span.name == dnstrace.SPAN:
            try:
                self.answers.append(socket.getaddrinfo(self.name, 80, V4)[0][4][0])
            except OSError as exc:
                self.answers.append(exc)


# Once per process: OpenTelemetry allows no second provider.
_exporter = InMemorySpanExporter()
_resolving = Resolving()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_exporter))
_provider.add_span_processor(_resolving)
trace.set_tracer_provider(_provider)
_reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[_reader]))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _exporter.clear()
    yield _exporter
    _exporter.clear()


@pytest.fixture
def make(dns_server: DNSServer) -> Iterator[Callable[..., Resolver]]:
    """Traced resolvers asking only the loopback server; closed after the test."""
    made: list[Resolver] = []

    def make(**options: Any) -> Resolver:
        options.setdefault("backend", "dnspython")
        options.setdefault("nameservers", (dns_server.nameserver,))
        options.setdefault("trace", True)
        resolver = Resolver(**options)
        made.append(resolver)
        return resolver

    yield make
    for resolver in made:
        resolver.close()


def lookups(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.name == "dnscache.lookup"
        and s.attributes
        and s.attributes["dns.question.name"] == name
    ]


def only(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def events(span: ReadableSpan) -> list[tuple[str, dict[str, Any]]]:
    return [(e.name, dict(e.attributes or {})) for e in span.events]


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return bool(predicate())
        time.sleep(0.005)
    return True


def test_a_lookup_is_a_child_span_with_the_conventions_attributes(
    dns_server: DNSServer, spans: InMemorySpanExporter, make: Callable[..., Resolver]
) -> None:
    dns_server.set("traced.test", a=["127.0.0.7", "127.0.0.8"], ttl=60)
    resolver = make()
    with trace.get_tracer("test").start_as_current_span("request"):
        resolver.getaddrinfo("traced.test", 80, V4, socket.SOCK_STREAM)
        resolver.getaddrinfo("traced.test", 443, V4, socket.SOCK_STREAM)

    (lookup,) = lookups(spans, "traced.test")
    request = only(spans, "request")
    assert lookup.parent is not None and lookup.parent.span_id == request.context.span_id
    attributes = dict(lookup.attributes or {})
    answers = attributes.pop("dns.answers")
    assert isinstance(answers, tuple)  # an array attribute (the SDK keeps sequences as tuples)
    assert sorted(answers) == ["127.0.0.7", "127.0.0.8"]  # in the order they are served
    assert list(answers) == resolver.lookup("traced.test", V4)
    assert attributes == {
        "dns.question.name": "traced.test",
        "dnscache.family": "inet",
        "dnscache.background": False,
        "dnscache.outcome": "answer",
    }
    assert lookup.status.status_code is StatusCode.UNSET
    # The miss added no event; the second call was a real hit.
    assert events(request) == [
        ("dnscache.hit", {"dns.question.name": "traced.test", "dnscache.result": "hit"})
    ]


@pytest.mark.parametrize(
    ("family", "text"), [(0, "unspec"), (socket.AF_INET, "inet"), (socket.AF_INET6, "inet6")]
)
def test_the_family_is_text(
    dns_server: DNSServer,
    spans: InMemorySpanExporter,
    make: Callable[..., Resolver],
    family: int,
    text: str,
) -> None:
    dns_server.set("family.test", a=["127.0.0.1"], aaaa=["::1"])
    make().getaddrinfo("family.test", 80, family)
    (lookup,) = lookups(spans, "family.test")
    assert lookup.attributes is not None and lookup.attributes["dnscache.family"] == text


def test_a_failure_is_an_error_span_and_a_cached_failure_a_negative_event(
    dns_server: DNSServer, spans: InMemorySpanExporter, make: Callable[..., Resolver]
) -> None:
    dns_server.nxdomain("missing.test")
    resolver = make()
    with trace.get_tracer("test").start_as_current_span("request"):
        for _ in range(2):
            with pytest.raises(socket.gaierror):
                resolver.getaddrinfo("missing.test", 80)
    (lookup,) = lookups(spans, "missing.test")
    assert lookup.status.status_code is StatusCode.ERROR
    assert lookup.status.description == "[Errno -2] Name or service not known"
    assert lookup.attributes is not None
    assert lookup.attributes["error.type"] == "EAI_NONAME"
    assert lookup.attributes["dnscache.outcome"] == "negative"
    assert "dns.answers" not in lookup.attributes
    assert events(only(spans, "request")) == [
        ("dnscache.hit", {"dns.question.name": "missing.test", "dnscache.result": "negative"})
    ]


class Failing:
    """A backend that raises what it is told to (the engine under it is real)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.exc: BaseException | None = None

    def resolve(self, host: bytes, family: int, flags: int, *, background: bool = False) -> Answer:
        if self.exc is not None:
            raise self.exc
        return self.inner.resolve(host, family, flags, background=background)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (socket.gaierror(socket.EAI_MEMORY, "Memory allocation failure"), "EAI_MEMORY"),
        (socket.gaierror(-12345, "made up"), "socket.gaierror"),
        (RuntimeError("boom"), "RuntimeError"),
    ],
)
def test_an_error_that_is_no_answer_names_its_code_or_its_type(
    spans: InMemorySpanExporter,
    make: Callable[..., Resolver],
    exc: BaseException,
    expected: str,
) -> None:
    backends: list[Failing] = []

    def wrap(inner: Backend) -> Backend:
        backends.append(Failing(inner))
        backends[0].exc = exc
        return backends[0]  # type: ignore[return-value]

    resolver = make(_wrap_backend=wrap)
    with pytest.raises(type(exc)):
        resolver.getaddrinfo("broken.test", 80)
    (lookup,) = lookups(spans, "broken.test")
    assert lookup.status.status_code is StatusCode.ERROR
    assert lookup.attributes is not None
    assert lookup.attributes["error.type"] == expected
    assert lookup.attributes["dnscache.outcome"] == "error"


def test_stale_answers_are_marked_and_the_failed_retry_is_an_error(
    dns_server: DNSServer, spans: InMemorySpanExporter, make: Callable[..., Resolver]
) -> None:
    clock = FakeClock()
    dns_server.set("flaky.test", a=["127.0.0.9"], ttl=10)
    resolver = make(clock=clock, stale_ttl=3600)
    resolver.getaddrinfo("flaky.test", 80, V4)
    dns_server.servfail("flaky.test")
    clock.now += 20  # expired, inside the stale window
    with trace.get_tracer("test").start_as_current_span("request"):
        assert resolver.lookup("flaky.test", V4) == ["127.0.0.9"]
        assert resolver.lookup("flaky.test", V4) == ["127.0.0.9"]

    results = [attrs["dnscache.result"] for _, attrs in events(only(spans, "request"))]
    assert results == ["stale", "stale"]
    first, retry = lookups(spans, "flaky.test")
    assert first.attributes is not None and first.attributes["dnscache.outcome"] == "answer"
    # The urgent retry ran in a worker while the caller waited for it: its child.
    request = only(spans, "request")
    assert retry.parent is not None and retry.parent.span_id == request.context.span_id
    assert retry.status.status_code is StatusCode.ERROR
    assert retry.attributes is not None
    assert retry.attributes["error.type"] == "EAI_AGAIN"
    assert retry.attributes["dnscache.outcome"] == "kept"
    assert retry.attributes["dnscache.background"] is True


def test_remembered_answers_are_marked_persisted(
    dns_server: DNSServer, spans: InMemorySpanExporter, make: Callable[..., Resolver]
) -> None:
    dns_server.servfail("known.test")
    resolver = make(preload={"known.test": ["127.0.0.3"]}, resolve_timeout=2.0)
    with trace.get_tracer("test").start_as_current_span("request"):
        assert resolver.lookup("known.test", V4) == ["127.0.0.3"]
    assert [a["dnscache.result"] for _, a in events(only(spans, "request"))] == ["persisted"]


def test_calls_the_cache_does_not_answer_add_no_event(
    dns_server: DNSServer, spans: InMemorySpanExporter, make: Callable[..., Resolver]
) -> None:
    dns_server.set("plain.test", a=["127.0.0.1"])
    resolver = make()
    disabled = make(disabled=True)
    with trace.get_tracer("test").start_as_current_span("request"):
        for _ in range(2):
            resolver.getaddrinfo("127.0.0.1", 80)  # an IP literal
            resolver.getaddrinfo("::1", 80, socket.AF_INET6)
            disabled.getaddrinfo("localhost", 80)  # disabled=True: the original answers
            with pytest.raises(socket.gaierror):
                resolver.getaddrinfo("localhost", 80, flags=socket.AI_NUMERICHOST)
            resolver.getaddrinfo("plain.test", 80, V4)  # a miss, then a hit
    assert [a["dnscache.result"] for _, a in events(only(spans, "request"))] == ["hit"]
    assert [s.name for s in spans.get_finished_spans()] == ["dnscache.lookup", "request"]


def test_refresh_ahead_is_its_own_trace_linked_to_the_call_that_started_it(
    dns_server: DNSServer, spans: InMemorySpanExporter, make: Callable[..., Resolver]
) -> None:
    clock = FakeClock()
    dns_server.set("warm.test", a=["127.0.0.1"], ttl=10)
    resolver = make(clock=clock)
    resolver.getaddrinfo("warm.test", 80, V4)
    clock.now += 6  # past refresh_at, before expiry
    with trace.get_tracer("test").start_as_current_span("request"):
        resolver.getaddrinfo("warm.test", 80, V4)
    assert wait_for(lambda: len(lookups(spans, "warm.test")) == 2)

    refresh = lookups(spans, "warm.test")[1]
    request = only(spans, "request")
    assert refresh.attributes is not None and refresh.attributes["dnscache.background"] is True
    assert refresh.parent is None
    assert refresh.context.trace_id != request.context.trace_id
    assert [link.context.span_id for link in refresh.links] == [request.context.span_id]
    assert events(request) == [
        ("dnscache.hit", {"dns.question.name": "warm.test", "dnscache.result": "hit"})
    ]


def test_asyncio_miss_in_the_executor_is_a_child_of_the_callers_span(
    dns_server: DNSServer, spans: InMemorySpanExporter
) -> None:
    dns_server.set("loop.test", a=["127.0.0.5"])
    tracer = trace.get_tracer("test")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with tracer.start_as_current_span("request"):
            await loop.getaddrinfo("loop.test", 80, family=V4)
            await loop.getaddrinfo("loop.test", 80, family=V4)  # a hit, in the loop's thread

    options = {"backend": "dnspython", "nameservers": (dns_server.nameserver,), "trace": True}
    with dnscache.patched(**options):  # type: ignore[arg-type]
        asyncio.run(main())
    (lookup,) = lookups(spans, "loop.test")
    request = only(spans, "request")
    assert lookup.parent is not None and lookup.parent.span_id == request.context.span_id
    assert lookup.context.trace_id == request.context.trace_id
    assert events(request) == [
        ("dnscache.hit", {"dns.question.name": "loop.test", "dnscache.result": "hit"})
    ]


def test_a_thread_of_its_own_has_no_parent(
    dns_server: DNSServer, spans: InMemorySpanExporter, make: Callable[..., Resolver]
) -> None:
    # The caller's context is carried where we hand work over, not invented elsewhere.
    dns_server.set("thread.test", a=["127.0.0.1"])
    resolver = make()
    with trace.get_tracer("test").start_as_current_span("request"):
        worker = threading.Thread(target=resolver.getaddrinfo, args=("thread.test", 80))
        worker.start()
        worker.join(10)
    (lookup,) = lookups(spans, "thread.test")
    assert lookup.parent is None


Attributes = tuple[tuple[str, Any], ...]


def durations() -> dict[Attributes, HistogramDataPoint]:
    """The dns.lookup.duration points by their attributes, from one collection
    (opentelemetry-sdk 1.20 reports a cumulative point again only if it changed)."""
    data = _reader.get_metrics_data()
    found: dict[Attributes, HistogramDataPoint] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != "dns.lookup.duration":
                    continue
                assert metric.unit == "s"
                for point in metric.data.data_points:
                    assert isinstance(point, HistogramDataPoint)
                    found[tuple(sorted((point.attributes or {}).items()))] = point
    return found


def test_lookup_duration_histogram(dns_server: DNSServer, make: Callable[..., Resolver]) -> None:
    dns_server.set("timed.test", a=["127.0.0.1"], delay=0.03)
    dns_server.nxdomain("nothing.test")
    resolver = make()
    for _ in range(3):
        resolver.getaddrinfo("timed.test", 80, V4)  # one lookup, then hits: not measured
    with pytest.raises(socket.gaierror):
        resolver.getaddrinfo("nothing.test", 80, V4)

    points = durations()
    timed = points[(("dns.question.name", "timed.test"),)]  # exactly these attributes
    assert timed.count == 1
    assert 0.03 <= timed.sum < 10
    failed = points[(("dns.question.name", "nothing.test"), ("error.type", "EAI_NONAME"))]
    assert failed.count == 1
    advised = (
        "explicit_bucket_boundaries_advisory"
        in inspect.signature(metrics.Meter.create_histogram).parameters
    )
    if advised:  # opentelemetry 1.30+: the conventions' buckets, in seconds
        assert tuple(timed.explicit_bounds) == DURATION_BOUNDS
    else:  # older: the SDK's defaults (a View can set them)
        assert tuple(timed.explicit_bounds)[:3] == (0.0, 5.0, 10.0)


def test_untraced_nothing_is_recorded_and_the_hit_path_is_not_wrapped(
    dns_server: DNSServer, spans: InMemorySpanExporter, make: Callable[..., Resolver]
) -> None:
    dns_server.set("quiet.test", a=["127.0.0.8"])
    resolver = make(trace=False)
    with trace.get_tracer("test").start_as_current_span("request"):
        resolver.getaddrinfo("quiet.test", 80)
        resolver.getaddrinfo("quiet.test", 80)
    assert resolver.traced is False
    assert resolver._telemetry is None
    assert type(resolver._counters) is Counters  # no marking
    plain = make_hit_path(resolver._store, time.monotonic, Counters(), lambda *a: None)
    assert resolver.getaddrinfo.__code__ is plain.__code__  # the hit path itself
    assert [s.name for s in spans.get_finished_spans()] == ["request"]
    assert events(only(spans, "request")) == []
    assert not [a for a in durations() if ("dns.question.name", "quiet.test") in a]


def test_traced_getaddrinfo_keeps_the_originals_errors(make: Callable[..., Resolver]) -> None:
    resolver = make()
    assert resolver.traced is True
    with pytest.raises(TypeError) as ours:
        resolver.getaddrinfo("localhost")
    with pytest.raises(TypeError) as theirs:
        dnscache.get_original("getaddrinfo")("localhost")
    assert str(ours.value) == str(theirs.value)


def test_an_exporter_that_resolves_the_same_name_does_not_wait_on_itself(
    dns_server: DNSServer, spans: InMemorySpanExporter
) -> None:
    dns_server.set("ship.test", a=["127.0.0.4"])
    options = {"backend": "dnspython", "nameservers": (dns_server.nameserver,), "trace": True}
    _resolving.name = "ship.test"
    _resolving.answers.clear()
    result: list[object] = []
    try:
        with dnscache.patched(**options):  # type: ignore[arg-type]
            worker = threading.Thread(
                target=lambda: result.append(socket.getaddrinfo("ship.test", 80, V4))
            )
            worker.start()
            worker.join(20)
            assert not worker.is_alive(), "the lookup waited on its own span's exporter"
    finally:
        _resolving.name = None
    assert result and _resolving.answers == ["127.0.0.4"]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"www.example.com", "www.example.com"),
        (b"tab\there", "tab\\009here"),
        (b'q"uote\\d', 'q\\"uote\\\\d'),
        (b"caf\xc3\xa9", "caf\\195\\169"),
    ],
)
def test_names_are_shown_as_the_conventions_say(raw: bytes, shown: str) -> None:
    assert dnstrace.presentation(raw) == shown
