"""The embedded loopback DNS server and timing helpers that ``demo`` and ``bench`` share."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .options import Opt, positive_int
from .output import Progress

if TYPE_CHECKING:
    from ..dnsserver import DNSServer

# The demo's and the bench's zone: names under .test (RFC 6761 reserves it, so
# they can never be real), answered with loopback addresses only.
DEMO_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "api.demo.test": (("127.0.0.10",), ("::1",)),
    "db.demo.test": (("127.0.0.11",), ()),
    "cdn.demo.test": (("127.0.0.12", "127.0.0.13"), ("::1",)),
    "auth.demo.test": (("127.0.0.14",), ()),
    "queue.demo.test": (("127.0.0.15",), ("::1",)),
}
DEMO_TTL = 300  # seconds: longer than the demo, so every cached answer stays fresh


def names_count(text: str) -> int:
    """An argument type: how many of the demo names to use."""
    value = positive_int(text)
    if value > len(DEMO_NAMES):
        raise argparse.ArgumentTypeError(f"at most {len(DEMO_NAMES)}")
    return value


NAMES = Opt(("--names",), {"type": names_count, "help": "names used (%(default)s)"})


@contextlib.contextmanager
def demo_server(delay_ms: float) -> Iterator[DNSServer]:
    from ..dnsserver import DNSServer

    server = DNSServer("127.0.0.1", default_ttl=DEMO_TTL)
    for name, (a, aaaa) in DEMO_NAMES.items():
        server.set(name, a=a, aaaa=aaaa, ttl=DEMO_TTL)
    server.delay = delay_ms / 1000
    server.start()
    try:
        yield server
    finally:
        server.stop()


def uncached_options() -> dict[str, Any]:
    """Resolver options that send every call to the backend.

    Not ``disabled=True``: a disabled Resolver passes calls to the *system*
    getaddrinfo, which knows nothing of the embedded server's names. A zero TTL
    (RFC 1035: "do not cache") with no refresh and no stale window makes each
    call an upstream lookup through the same dnspython backend as the cached run.
    """
    return {"max_ttl": 0.0, "stale_ttl": 0.0, "refresh": False, "negative_ttl": 0.0}


def timed_calls(
    call: Callable[[str], object], names: Sequence[str], count: int, progress: Progress
) -> list[int]:
    """Call ``call(name)`` ``count`` times, cycling through ``names``; per-call ns."""
    clock = time.perf_counter_ns
    samples: list[int] = []
    for i in range(count):
        name = names[i % len(names)]
        start = clock()
        call(name)
        samples.append(clock() - start)
        progress.update(i + 1)
    return samples
