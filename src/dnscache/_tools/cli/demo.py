"""``dnscache demo``: the README's first command.

Starts the embedded loopback DNS server with a 20 ms answer delay standing in
for the network, runs the same lookups without and with the cache, and prints
what reached the server.
"""

from __future__ import annotations

import argparse
import socket
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from .embedded import DEMO_NAMES, NAMES, demo_server, timed_calls, uncached_options
from .options import PROG, Command, Opts
from .output import Progress, fmt_ns, percentile, table

DEMO_DELAY_MS = 20.0  # a typical round trip to an ISP's or a public resolver
DEMO_COUNT = 200
PATCHED_CALLS = 100


def _stats_row(label: str, samples: Sequence[int], queries: int | str) -> list[str]:
    return [
        label,
        str(len(samples)),
        str(queries),
        fmt_ns(statistics.median(samples)),
        fmt_ns(percentile(samples, 0.99)),
        fmt_ns(sum(samples)),
    ]


def run(args: argparse.Namespace) -> int:
    import dnscache

    names = list(DEMO_NAMES)[: args.names]
    count = args.count
    progress = Progress(plain=False)
    with demo_server(args.delay) as server:
        ns = server.nameserver
        print(f"{PROG} demo: {count} lookups of {len(names)} names, without and with the cache.")
        print()
        print(f"A DNS server on {ns} stands in for your network's resolver: it waits")
        print(f"{args.delay:g} ms before every answer to play the part of network latency.")
        print("Its names are under .test and all point at loopback addresses.")
        print()

        def gai(resolver: Any) -> Callable[[str], object]:
            return lambda name: resolver.getaddrinfo(name, 443, 0, socket.SOCK_STREAM)

        common: dict[str, Any] = {"backend": "dnspython", "nameservers": (ns,)}
        runs: dict[str, tuple[int, list[int]]] = {}
        try:
            for label, extra in (("uncached", uncached_options()), ("cached", {})):
                server.reset_counts()
                with dnscache.Resolver(**common, **extra) as resolver:
                    progress.phase(f"{label} lookups", count)
                    samples = timed_calls(gai(resolver), names, count, progress)
                runs[label] = (server.queries(), samples)
        finally:
            progress.close()

        q_un, s_un = runs["uncached"]
        q_ca, s_ca = runs["cached"]
        rows = [["", "lookups", "DNS queries", "median", "p99", "total"]]
        rows.append(_stats_row("uncached", s_un, q_un))
        rows.append(_stats_row("cached", s_ca, q_ca))
        hits = s_ca[len(names) :]  # the first round (one call per name) were the misses
        if hits:
            rows.append(_stats_row("  of which hits", hits, 0))
        print(table(rows, right=[False, True, True, True, True, True]))
        print()
        print(f"DNS queries: {q_un} uncached, {q_ca} cached (A and AAAA once per name).")
        speedup = sum(s_un) / max(sum(s_ca), 1)
        print(f"Speed-up: {speedup:,.0f}x in total time", end="")
        if hits:
            hit_speedup = statistics.median(s_un) / max(statistics.median(hits), 1)
            print(f"; a hit is {hit_speedup:,.0f}x faster than a lookup at the median.")
        else:
            print(".")
        print()

        # The same, for code that never heard of dnscache: socket.getaddrinfo itself.
        host = names[0]
        print(f'with dnscache.patched(backend="dnspython", nameservers=["{ns}"]):')
        print(f'    for _ in range({PATCHED_CALLS}): socket.getaddrinfo("{host}", 443)')
        server.reset_counts()
        before = server.queries()
        with dnscache.patched(backend="dnspython", nameservers=(ns,)) as resolver:
            patched_now = bool(getattr(socket.getaddrinfo, "__dnscache__", False))
            for _ in range(PATCHED_CALLS):
                socket.getaddrinfo(host, 443)
            hit_count = resolver.stats().hits
        after = server.queries()
        restored = not getattr(socket.getaddrinfo, "__dnscache__", False)
        yes = {True: "yes", False: "no"}
        print(f"  socket.getaddrinfo is dnscache's inside the block: {yes[patched_now]}")
        print(
            f"  DNS queries: {before} before the block, {after} after it "
            f"({PATCHED_CALLS} calls, {hit_count} of them hits)"
        )
        print(f"  socket.getaddrinfo is the original again after it: {yes[restored]}")
        print()
        print("Turn it on for any program:  PYTHONDNSCACHE=1 python app.py")
        print(f"                         or:  {PROG} run -- python app.py")
    return 0


COMMAND = Command(
    name="demo",
    help="see the cache at work against a local DNS server (start here)",
    description="Resolve the same names without and with the cache against an embedded "
    "loopback DNS server that adds a delay standing in for the network, and show the "
    "queries it received and the latencies.",
    run=run,
    options=(
        Opts.count,
        NAMES,
        Opts.delay,
    ),
    defaults={"count": DEMO_COUNT, "names": len(DEMO_NAMES), "delay": DEMO_DELAY_MS},
)
