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
from typing import TYPE_CHECKING, Any

from .embedded import DEMO_NAMES, NAMES, demo_server, timed_calls, uncached_options
from .options import OK, PROG, Command, Opts
from .output import Progress, emit_json, fmt_ns, percentile, table

if TYPE_CHECKING:
    from ..dnsserver import DNSServer

DEMO_DELAY_MS = 20.0  # a typical round trip to an ISP's or a public resolver
DEMO_COUNT = 200
PATCHED_CALLS = 100


def _summary(samples: Sequence[int], queries: int) -> dict[str, Any]:
    return {
        "lookups": len(samples),
        "queries": queries,
        "median_ns": statistics.median(samples),
        "p99_ns": percentile(samples, 0.99),
        "total_ns": sum(samples),
    }


def _row(label: str, summary: dict[str, Any]) -> list[str]:
    return [
        label,
        str(summary["lookups"]),
        str(summary["queries"]),
        fmt_ns(summary["median_ns"]),
        fmt_ns(summary["p99_ns"]),
        fmt_ns(summary["total_ns"]),
    ]


def _measure(args: argparse.Namespace, server: DNSServer, names: list[str]) -> dict[str, Any]:
    """Both runs and the patched() block; every figure the text and the JSON show."""
    import dnscache

    ns = server.nameserver
    count = args.count
    progress = Progress(plain=False)

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
    hits = s_ca[len(names) :]  # the first round (one call per name) were the misses
    result: dict[str, Any] = {
        "server": ns,
        "delay_ms": args.delay,
        "names": names,
        "uncached": _summary(s_un, q_un),
        "cached": _summary(s_ca, q_ca),
        "hits": _summary(hits, 0) if hits else None,
        "speedup_total": sum(s_un) / max(sum(s_ca), 1),
        "speedup_hit_median": (
            statistics.median(s_un) / max(statistics.median(hits), 1) if hits else None
        ),
    }

    # The same, for code that never heard of dnscache: socket.getaddrinfo itself.
    host = names[0]
    server.reset_counts()
    before = server.queries()
    with dnscache.patched(backend="dnspython", nameservers=(ns,)) as resolver:
        patched_now = bool(getattr(socket.getaddrinfo, "__dnscache__", False))
        for _ in range(PATCHED_CALLS):
            socket.getaddrinfo(host, 443)
        hit_count = resolver.stats().hits
    result["patched"] = {
        "host": host,
        "calls": PATCHED_CALLS,
        "hits": hit_count,
        "queries_before": before,
        "queries_after": server.queries(),
        "patched_inside": patched_now,
        "restored_after": not getattr(socket.getaddrinfo, "__dnscache__", False),
    }
    return result


def run(args: argparse.Namespace) -> int:
    names = list(DEMO_NAMES)[: args.names]
    with demo_server(args.delay) as server:
        if args.json:
            emit_json(_measure(args, server, names))
            return OK
        ns = server.nameserver
        print(
            f"{PROG} demo: {args.count} lookups of {len(names)} names, without and with the cache."
        )
        print()
        print(f"A DNS server on {ns} stands in for your network's resolver: it waits")
        print(f"{args.delay:g} ms before every answer to play the part of network latency.")
        print("Its names are under .test and all point at loopback addresses.")
        print()
        result = _measure(args, server, names)
    rows = [["", "lookups", "DNS queries", "median", "p99", "total"]]
    rows.append(_row("uncached", result["uncached"]))
    rows.append(_row("cached", result["cached"]))
    if result["hits"] is not None:
        rows.append(_row("  of which hits", result["hits"]))
    print(table(rows, right=[False, True, True, True, True, True]))
    print()
    q_un, q_ca = result["uncached"]["queries"], result["cached"]["queries"]
    print(f"DNS queries: {q_un} uncached, {q_ca} cached (A and AAAA once per name).")
    print(f"Speed-up: {result['speedup_total']:,.0f}x in total time", end="")
    if result["hits"] is not None:
        print(
            f"; a hit is {result['speedup_hit_median']:,.0f}x faster than a lookup at the median."
        )
    else:
        print(".")
    print()
    p = result["patched"]
    yes = {True: "yes", False: "no"}
    print(f'with dnscache.patched(backend="dnspython", nameservers=["{ns}"]):')
    print(f'    for _ in range({p["calls"]}): socket.getaddrinfo("{p["host"]}", 443)')
    print(f"  socket.getaddrinfo is dnscache's inside the block: {yes[p['patched_inside']]}")
    print(
        f"  DNS queries: {p['queries_before']} before the block, {p['queries_after']} after it "
        f"({p['calls']} calls, {p['hits']} of them hits)"
    )
    print(f"  socket.getaddrinfo is the original again after it: {yes[p['restored_after']]}")
    print()
    print("Turn it on for any program:  PYTHONDNSCACHE=1 python app.py")
    print(f"                         or:  {PROG} run -- python app.py")
    return OK


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
        Opts.json,
    ),
    defaults={"count": DEMO_COUNT, "names": len(DEMO_NAMES), "delay": DEMO_DELAY_MS},
)
