"""``dnscache bench``: hit and miss latencies against the embedded loopback server."""

from __future__ import annotations

import argparse
import socket
import statistics
from typing import Any

from .embedded import DEMO_NAMES, NAMES, demo_server, timed_calls, uncached_options
from .options import OK, PROG, Command, Opts
from .output import Progress, emit_json, fmt_ns, percentile, table

BENCH_COUNT = 1000


def run(args: argparse.Namespace) -> int:
    from ..._engine.resolver import Resolver
    from ..._sources.originals import get_original

    count, names = args.count, list(DEMO_NAMES)[: args.names]
    progress = Progress(plain=not args.json)
    cases: list[dict[str, Any]] = []

    def add(label: str, samples: list[int], queries: int | None) -> None:
        mean = statistics.fmean(samples)
        cases.append(
            {
                "case": label,
                "calls": len(samples),
                "queries": queries,
                "median_ns": statistics.median(samples),
                "p99_ns": percentile(samples, 0.99),
                "mean_ns": mean,
                "calls_per_s": 1e9 / mean if mean else None,
            }
        )

    with demo_server(args.delay) as server:
        common: dict[str, Any] = {"backend": "dnspython", "nameservers": (server.nameserver,)}
        try:
            server.reset_counts()
            with Resolver(**common, **uncached_options()) as resolver:
                progress.phase("uncached (upstream)", count)
                samples = timed_calls(
                    lambda n: resolver.getaddrinfo(n, 443, 0, socket.SOCK_STREAM),
                    names,
                    count,
                    progress,
                )
            add("uncached (upstream)", samples, server.queries())

            server.reset_counts()
            with Resolver(**common) as resolver:
                progress.phase("first lookups (misses)", len(names))
                misses = timed_calls(
                    lambda n: resolver.getaddrinfo(n, 443, 0, socket.SOCK_STREAM),
                    names,
                    len(names),
                    progress,
                )
                progress.phase("cache hits", count)
                hits = timed_calls(
                    lambda n: resolver.getaddrinfo(n, 443, 0, socket.SOCK_STREAM),
                    names,
                    count,
                    progress,
                )
            add("cached: first lookup", misses, server.queries())
            add("cached: hit", hits, 0)

            original = get_original("getaddrinfo")
            progress.phase("libc: localhost", count)
            libc = timed_calls(
                lambda n: original("localhost", 443, 0, socket.SOCK_STREAM),
                names,
                count,
                progress,
            )
            add("libc, /etc/hosts (reference)", libc, None)
        finally:
            progress.close()
    speedup = statistics.median(samples) / max(statistics.median(hits), 1)
    if args.json:
        emit_json(
            {
                "names": names,
                "delay_ms": args.delay,
                "backend": "dnspython",
                "cases": cases,
                "hit_speedup_median": speedup,
            }
        )
        return OK
    rows = [["", "calls", "DNS queries", "median", "p99", "mean", "calls/s"]]
    for case in cases:
        rows.append(
            [
                case["case"],
                str(case["calls"]),
                "-" if case["queries"] is None else str(case["queries"]),
                fmt_ns(case["median_ns"]),
                fmt_ns(case["p99_ns"]),
                fmt_ns(case["mean_ns"]),
                "-" if case["calls_per_s"] is None else f"{case['calls_per_s']:,.0f}",
            ]
        )
    delay = f"{args.delay:g} ms added delay" if args.delay else "no added delay"
    print(
        f"{PROG} bench: {len(names)} names over the embedded DNS server on loopback "
        f"({delay}); backend dnspython"
    )
    print()
    print(table(rows, right=[False] + [True] * 6))
    print()
    print(f"median hit is {speedup:,.0f}x faster than an upstream lookup over loopback")
    return OK


COMMAND = Command(
    name="bench",
    help="measure hit and miss latency",
    description="Benchmark uncached against cached lookups over the embedded loopback DNS "
    "server: per-call median, p99 and mean (time.perf_counter_ns).",
    run=run,
    options=(
        Opts.count,
        NAMES,
        Opts.delay,
        Opts.json,
    ),
    defaults={"count": BENCH_COUNT, "names": len(DEMO_NAMES), "delay": 0.0},
)
