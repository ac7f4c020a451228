"""Optional OpenTelemetry tracing: the Python counterpart of Go's httptrace DNSStart/DNSDone.

With ``trace=True`` and ``opentelemetry-api`` installed, every upstream lookup
is a span named ``dnscache.lookup`` (a child of whatever span is current, so a
slow request shows where its DNS time went), and an answer served from the
cache adds a ``dnscache.hit`` event to the current span. Without the package,
``trace=True`` logs one warning and does nothing. With ``trace=False`` (the
default) nothing here runs at all: the hit path is not even wrapped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .._cache.entries import Entry
from .._core import addrinfo as ai
from . import callouts
from .stats import Counters

log = logging.getLogger("dnscache")
_warned = False


def get_tracer(enabled: bool) -> Any:
    """An OpenTelemetry tracer, or None when tracing is off or unavailable."""
    global _warned
    if not enabled:
        return None
    try:
        from opentelemetry import trace
    except ImportError:
        if not _warned:
            _warned = True
            log.warning("trace=True but opentelemetry-api is not installed; no spans")
        return None
    from .._core.version import __version__

    return trace.get_tracer("dnscache", __version__)


def _outcome(entry: Entry | None) -> str:
    if entry is None:
        return "kept-old-answer"
    if entry.error is not None:
        return f"error {entry.error[0]}"
    return " ".join(ai.ip_strings(entry.addresses))


def record_lookup(
    tracer: Any,
    name: str,
    family: int,
    background: bool,
    start_ns: int,
    end_ns: int,
    entry: Entry | None,
    failure: BaseException | None,
) -> None:
    """A span for one upstream lookup that already ended (explicit start and end times).

    Made after the lookup rather than around it, so that no flight is held while
    OpenTelemetry's processors and exporters run (they may do I/O, or resolve a
    name themselves: see ``callouts``). Its parent is the context current in
    this thread. Never raises.
    """
    try:
        callouts.call_out(_span, tracer, name, family, background, start_ns, end_ns, entry, failure)
    except Exception:  # telemetry must never break a lookup
        callouts.say(logging.DEBUG, "could not record a span", exc_info=True)


def _span(
    tracer: Any,
    name: str,
    family: int,
    background: bool,
    start_ns: int,
    end_ns: int,
    entry: Entry | None,
    failure: BaseException | None,
) -> None:
    span = tracer.start_span(
        "dnscache.lookup",
        start_time=start_ns,
        attributes={
            "dns.question.name": name,
            "dnscache.family": family,
            "dnscache.background": background,
        },
    )
    if failure is not None:
        span.set_attribute("dnscache.outcome", f"error {type(failure).__name__}")
    else:
        span.set_attribute("dnscache.outcome", _outcome(entry))
    span.end(end_time=end_ns)


def traced_getaddrinfo(getaddrinfo: Callable[..., Any], counters: Counters) -> Callable[..., Any]:
    """Wrap the hit path so that answers served without a lookup add a span event."""
    from opentelemetry import trace

    get_current_span = trace.get_current_span

    def wrapper(
        host: Any, port: Any, family: Any = 0, type: Any = 0, proto: Any = 0, flags: Any = 0
    ) -> Any:
        before = counters.lookups
        try:
            return getaddrinfo(host, port, family, type, proto, flags)
        finally:
            if counters.lookups == before:
                span = get_current_span()
                if span.is_recording():
                    span.add_event("dnscache.hit", {"dns.question.name": str(host)})

    for attr in ("__name__", "__qualname__", "__doc__", "__wrapped__", "__dnscache__"):
        setattr(wrapper, attr, getattr(getaddrinfo, attr, None))
    return wrapper
