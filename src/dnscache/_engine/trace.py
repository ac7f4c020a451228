"""Optional OpenTelemetry tracing: the Python counterpart of Go's httptrace DNSStart/DNSDone.

With ``trace=True`` and ``opentelemetry-api`` installed:

* every upstream lookup is a span ``dnscache.lookup`` with the semantic
  conventions' DNS attributes (``dns.question.name``, ``dns.answers`` as an
  array), the family as text (``dnscache.family``: inet, inet6, unspec),
  ``dnscache.background`` and ``dnscache.outcome`` (answer, negative, kept,
  error); a failure sets the span status to ERROR and ``error.type`` to the
  getaddrinfo error's name (``EAI_NONAME``, ``EAI_AGAIN``), or to the
  exception's type when there is no such code (the conventions' rule);
* every upstream lookup is also measured in the ``dns.lookup.duration``
  histogram (seconds; ``dns.question.name``, and ``error.type`` on failure),
  with the buckets the conventions advise where the API takes them (1.30+);
* every call answered from the cache adds an event ``dnscache.hit`` to the
  caller's current span, with ``dnscache.result``: hit, negative (a cached
  failure), stale (served past expiry while the upstream fails) or persisted
  (from the persistent layer or the preload list). Calls the cache does not
  answer (IP literals, ``disabled=True``, arguments it passes through, misses)
  add none.

Whose span is the parent: a lookup made in the caller's thread is a child of
the caller's current span. asyncio's ``loop.getaddrinfo`` runs a miss in the
default executor, which does not carry contexts: the adapter runs it in a copy
of the caller's context (``carry_context``). A background job captures the
context when it is queued (``capture``; ``contextvars.copy_context``, so no
OpenTelemetry code runs under the store's lock): an *urgent* lookup, which a
caller waits for, is a child of that caller's span; a refresh nobody waits for
starts its own trace with a link to the span that triggered it (a follows-from
relation: parenting it would stretch a request's trace by work the request
never waited for).

Spans are made after the lookup ended, with explicit start and end times, so
that no flight is held while OpenTelemetry's processors and exporters run (they
may do I/O, or resolve a name themselves: see ``callouts``).

Without the package, ``trace=True`` logs one warning and does nothing. With
``trace=False`` (the default) nothing here runs at all: the hit path is not even
wrapped, and the counters are the plain ones.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._cache.entries import Entry
from .._core import addrinfo as ai
from . import callouts
from .callouts import DEBUG, WARNING
from .stats import DURATION_BOUNDS, Counters

if TYPE_CHECKING:
    import contextvars

_warned = False
_shared: Telemetry | None = None
_copy_context: Callable[[], contextvars.Context] | None = None

SPAN = "dnscache.lookup"
HIT_EVENT = "dnscache.hit"
DURATION = "dns.lookup.duration"
FAMILIES: dict[int, str] = {
    socket.AF_UNSPEC: "unspec",
    socket.AF_INET: "inet",
    socket.AF_INET6: "inet6",
}


class Telemetry:
    """What ``trace=True`` gives a Resolver: a tracer and the lookup-duration histogram."""

    __slots__ = ("durations", "tracer")

    def __init__(self, tracer: Any, durations: Any) -> None:
        self.tracer = tracer
        self.durations = durations


def get_telemetry(enabled: bool) -> Telemetry | None:
    """The tracer and histogram, or None when tracing is off or opentelemetry-api is missing.

    Made once per process and shared by every traced Resolver: an instrument is
    meant to be created once (opentelemetry-sdk 1.20 warns about a second
    ``dns.lookup.duration``). The API's proxies follow a provider set later
    (start-up activation builds the Resolver before the program configures
    OpenTelemetry).
    """
    global _warned, _shared, _copy_context
    if not enabled:
        return None
    if _shared is not None:
        return _shared
    try:
        from opentelemetry import metrics
        from opentelemetry import trace as otel_trace
    except ImportError:
        if not _warned:
            _warned = True
            callouts.say(WARNING, "trace=True but opentelemetry-api is not installed; no spans")
        return None
    from contextvars import copy_context

    from .._core.version import __version__

    _copy_context = copy_context  # imported here: capture() runs under the store's lock
    meter = metrics.get_meter("dnscache", __version__)
    doc = "Measures the time taken to perform a DNS lookup."
    try:
        histogram = meter.create_histogram(
            DURATION, unit="s", description=doc, explicit_bucket_boundaries_advisory=DURATION_BOUNDS
        )
    except TypeError:  # opentelemetry-api before 1.30: no advice; a View can set buckets
        histogram = meter.create_histogram(DURATION, unit="s", description=doc)
    _shared = Telemetry(otel_trace.get_tracer("dnscache", __version__), histogram)
    return _shared


# --- where a background lookup came from ---


class Origin:
    """The context of the call that queued a background lookup (see the module docstring)."""

    __slots__ = ("context", "waited")

    def __init__(self, context: contextvars.Context, waited: bool) -> None:
        self.context = context
        self.waited = waited  # a caller waits for it: parented, else linked


def capture(waited: bool) -> Origin:
    """The current context, for a job queued now (under the store's lock: no OpenTelemetry
    call, no import; only a traced Resolver calls this, after :func:`get_telemetry`)."""
    assert _copy_context is not None
    return Origin(_copy_context(), waited)


def carry_context(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` to run in another thread in a copy of the current context."""
    from contextvars import copy_context
    from functools import partial

    return partial(copy_context().run, func)


# --- one upstream lookup ---


def record_lookup(
    telemetry: Telemetry,
    name: str,
    family: int,
    background: bool,
    start_ns: int,
    duration_ns: int,
    stored: Entry | None,
    answer: Entry | None,
    failure: BaseException | None,
    origin: Origin | None,
) -> None:
    """A span and a duration for one upstream lookup that already ended. Never raises.

    ``stored`` is the entry the lookup stored (None when it stored nothing:
    a transient failure, or an error that is not an answer); ``answer`` what
    its callers are answered with (the old answer, kept after a transient
    failure); ``failure`` what the backend raised, if anything.
    """
    try:
        callouts.call_out(
            _record,
            telemetry,
            name,
            family,
            background,
            start_ns,
            duration_ns,
            stored,
            answer,
            failure,
            origin,
        )
    except Exception:  # telemetry must never break a lookup
        callouts.say(DEBUG, "could not record a span", exc_info=True)


def _record(
    telemetry: Telemetry,
    name: str,
    family: int,
    background: bool,
    start_ns: int,
    duration_ns: int,
    stored: Entry | None,
    answer: Entry | None,
    failure: BaseException | None,
    origin: Origin | None,
) -> None:
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace import Link, Status, StatusCode

    question = presentation(name.encode("ascii", "surrogateescape"))
    error = None if failure is None else error_type(failure)
    parent = links = None
    if origin is not None:
        captured = origin.context.run(otel_context.get_current)
        if origin.waited:
            parent = captured
        else:
            parent = otel_context.Context()  # a trace of its own ...
            trigger = otel_trace.get_current_span(captured).get_span_context()
            links = [Link(trigger)] if trigger.is_valid else None  # ... linked to its cause
    if stored is not None and stored.error is None:
        outcome = "answer"
    elif stored is not None:
        outcome = "negative"
    else:
        outcome = "kept" if answer is not None else "error"
    attributes: dict[str, Any] = {
        "dns.question.name": question,
        "dnscache.family": FAMILIES.get(family, str(family)),
        "dnscache.background": background,
        "dnscache.outcome": outcome,
    }
    if outcome == "answer":
        assert stored is not None
        attributes["dns.answers"] = ai.ip_strings(stored.addresses)
    if error is not None:
        attributes["error.type"] = error
    span = telemetry.tracer.start_span(
        SPAN, context=parent, links=links, start_time=start_ns, attributes=attributes
    )
    if failure is not None:
        span.set_status(Status(StatusCode.ERROR, str(failure) or error))
    span.end(end_time=start_ns + duration_ns)
    measured = {"dns.question.name": question}
    if error is not None:
        measured["error.type"] = error
    telemetry.durations.record(duration_ns / 1e9, measured)


def error_type(failure: BaseException) -> str:
    """``error.type`` for a failed lookup: the getaddrinfo code's name, else the exception's.

    The conventions: "SHOULD use error code such as one of errors reported by
    getaddrinfo"; "if error code is not available, the full name of exception type".
    """
    if isinstance(failure, socket.gaierror):
        # Only on a traced failure, so no table at import. Sorted: if two names share
        # a code, always the same one.
        for name in sorted(n for n in dir(socket) if n[:4] == "EAI_"):
            if getattr(socket, name) == failure.errno:
                return name
    kind = type(failure)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def presentation(name: bytes) -> str:
    """A name as the conventions want it: bytes outside 32-126 as \\DDD; \\ and \" escaped."""
    if (
        name.isascii()
        and name.decode("ascii").isprintable()
        and b"\\" not in name
        and b'"' not in name
    ):
        return name.decode("ascii")
    out = []
    for byte in name:
        if byte in (0x5C, 0x22):
            out.append("\\" + chr(byte))
        elif 32 <= byte <= 126:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)


# --- answers served from the cache ---


class _Local(threading.local):
    result: str | None = None  # what the current call was answered with, if from the cache


_local = _Local()


class _Marking:
    """A counter attribute that also notes, for this thread, that the cache answered."""

    __slots__ = ("result", "slot")

    def __init__(self, name: str, result: str) -> None:
        self.slot: Any = Counters.__dict__[name]  # the plain slot it stands in front of
        self.result = result

    def __get__(self, obj: Counters | None, owner: type | None = None) -> Any:
        return self if obj is None else self.slot.__get__(obj, owner)

    def __set__(self, obj: Counters, value: int) -> None:
        self.slot.__set__(obj, value)
        _local.result = self.result


class MarkingCounters(Counters):
    """Counters for a traced Resolver: bumping a hit counter marks the call as a hit.

    The hit path and the executor count every answer the cache gives
    (``counters.hits += 1`` and the like) exactly where it is given; these
    counters note that in a thread-local as well, which the traced
    ``getaddrinfo`` reads after the call: so an event is added only for an
    answer the cache really gave, with its kind, and the hit path's code (and,
    with tracing off, its cost) is unchanged.
    """

    __slots__ = ()

    hits = _Marking("hits", "hit")
    negative_hits = _Marking("negative_hits", "negative")
    stale_hits = _Marking("stale_hits", "stale")
    persisted_hits = _Marking("persisted_hits", "persisted")


def traced(getaddrinfo: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a hit path so that an answer from the cache adds an event to the current span.

    The Resolver's counters must be :class:`MarkingCounters`. Nested calls (a
    hook resolving a name inside a call) keep their own marks.
    """
    from opentelemetry.trace import get_current_span

    local = _local
    inside = callouts.inside

    def wrapper(
        host: Any, port: Any, family: Any = 0, type: Any = 0, proto: Any = 0, flags: Any = 0
    ) -> Any:
        outer = local.result
        local.result = None
        try:
            return getaddrinfo(host, port, family, type, proto, flags)
        finally:
            result = local.result
            local.result = outer
            if result is not None and not inside():
                _hit_event(get_current_span, host, result)

    for attr in ("__name__", "__qualname__", "__doc__", "__wrapped__", "__dnscache__"):
        setattr(wrapper, attr, getattr(getaddrinfo, attr, None))
    return wrapper


def _hit_event(get_current_span: Callable[[], Any], host: Any, result: str) -> None:
    try:
        span = get_current_span()
        if span.is_recording():
            name = host.encode("utf-8", "surrogateescape") if isinstance(host, str) else host
            span.add_event(
                HIT_EVENT,
                {"dns.question.name": presentation(bytes(name)), "dnscache.result": result},
            )
    except Exception:  # telemetry must never break a lookup
        callouts.say(DEBUG, "could not record a cache hit", exc_info=True)
