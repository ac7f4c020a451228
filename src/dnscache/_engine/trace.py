"""Optional OpenTelemetry tracing: the Python counterpart of Go's httptrace DNSStart/DNSDone.

With ``trace=True`` and ``opentelemetry-api`` installed, every upstream lookup
is a span named ``dnscache.lookup`` (a child of whatever span is current, so a
slow request shows where its DNS time went), and an answer served from the
cache adds a ``dnscache.hit`` event to the current span. Without the package,
``trace=True`` logs one warning and does nothing. With ``trace=False`` (the
default) nothing here runs at all: the hit path is not even wrapped.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._engine.resolver import Resolver

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
            log.warning("dnscache: trace=True but opentelemetry-api is not installed; no spans")
        return None
    from .. import __version__

    return trace.get_tracer("dnscache", __version__)


@contextlib.contextmanager
def lookup_span(tracer: Any, name: str, family: int, background: bool) -> Iterator[Any]:
    """A span around one upstream lookup (a no-op without a tracer)."""
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(
        "dnscache.lookup",
        attributes={
            "dns.question.name": name,
            "dnscache.family": family,
            "dnscache.background": background,
        },
    ) as span:
        yield span


def traced_getaddrinfo(getaddrinfo: Callable[..., Any], resolver: Resolver) -> Callable[..., Any]:
    """Wrap the hit path so that answers served without a lookup add a span event."""
    from opentelemetry import trace

    get_current_span = trace.get_current_span

    def wrapper(
        host: Any, port: Any, family: Any = 0, type: Any = 0, proto: Any = 0, flags: Any = 0
    ) -> Any:
        before = resolver._lookups
        try:
            return getaddrinfo(host, port, family, type, proto, flags)
        finally:
            if resolver._lookups == before:
                span = get_current_span()
                if span.is_recording():
                    span.add_event("dnscache.hit", {"dns.question.name": str(host)})

    for attr in ("__name__", "__qualname__", "__doc__", "__wrapped__", "__dnscache__"):
        setattr(wrapper, attr, getattr(getaddrinfo, attr, None))
    return wrapper
