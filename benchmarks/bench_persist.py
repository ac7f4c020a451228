"""What the persistent layer costs a cache hit: ``Resolver(persist=file)`` against ``Resolver()``.

The promise is that turning ``persist`` on costs a hit nothing: the file is read
only on a miss (``_fallback_entry``, and ``_merged`` in merge mode) and written by
a background thread, so the hit path (one closure, the same code for every
Resolver) never touches it. This script checks that, in one run:

* a hit through ``Resolver().getaddrinfo`` (no persistence: the baseline);
* the same hit with ``persist=<temp file>`` (``persist_mode="fallback"``, the default);
* the same hit with ``persist_mode="merge"``;
* ``PersistentStore.touch(host, ips)`` when nothing is due, which is what the engine
  would add to a hit to keep ``last_seen`` as Delta Chat keeps it (context: the
  engine calls it, and decides how often);
* for reference (``--no-miss`` skips them), what a *miss* costs in each: the cache
  is emptied with ``invalidate()`` before every call. With persistence a miss also
  reads the file, and a name the file knows (seeded here, as an earlier run would
  have left it) is looked up by a background worker while the caller waits for it
  (the fallback path: the caller waits at most ``resolve_timeout``), so the miss
  rows show that hand-off too. Misses are rare by design; the figure is context,
  not a target.

The name is ``localhost`` with the system backend: it comes from ``/etc/hosts``, so
a miss never leaves the machine and the hit rows need no DNS server at all.

Method (as ``bench_hit.py``): every case is a ``timeit`` loop (garbage collection
off while it runs, the callable bound to a local in the loop's setup), called as
urllib3 and ``http.client`` call it: ``(host, 443, 0, SOCK_STREAM)``. The cases
are interleaved: each round runs every case once, in an order rotated from round
to round, so drift on a shared machine hits all of them alike. A case's figure is
the median over rounds of its per-call time in that round; a ratio is taken
round by round (both sides from the same round), and its median is reported.

Target: the persist hit at most 1.10x the plain hit (median ratio, the slower of
the two modes): a hit must not pay for persistence.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import _machine
import _report

import dnscache
from dnscache._sources.persist import PersistentStore

HOST = "localhost"  # in /etc/hosts: the system lookup never leaves the machine
PORT = 443
FULL = {"rounds": 15, "number": 200_000}
QUICK = {"rounds": 5, "number": 20_000}
# A miss costs tens of microseconds (a file read, a thread hand-off): fewer calls per
# round keep a round short, and the loop's own cost is negligible next to them.
MISS_DIVISOR = 400
TARGET_RATIO = 1.10


@dataclass
class Case:
    key: str
    label: str
    stmt: str
    namespace: dict[str, Any]
    number: int
    setup: str = "f = F; stream = S"
    per_call: list[float] = field(default_factory=list)  # ns, one per round

    def __post_init__(self) -> None:
        self.timer = timeit.Timer(
            self.stmt, self.setup, timer=time.perf_counter_ns, globals=self.namespace
        )

    def run(self, number: int | None = None) -> None:
        n = number or self.number
        self.per_call.append(self.timer.timeit(n) / n)


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(p25, median, p75); with one value, that value three times."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def seed(path: str) -> None:
    """The file as an earlier run would have left it: HOST's addresses, one connected."""
    original = dnscache.get_original("getaddrinfo")
    ips = list(dict.fromkeys(info[4][0] for info in original(HOST, PORT, 0, socket.SOCK_STREAM)))
    store = PersistentStore(path)
    store.record_seen(HOST, ips)
    store.record_connected(HOST, ips[0])
    store.close()


def touch_case(number: int, path: str) -> tuple[Case, PersistentStore]:
    """``PersistentStore.touch`` as the engine would call it on a hit: nothing due.

    Every row was touched within the minute (the warm-up touches them), so this
    is the path a hot name takes on every call the engine makes.
    """
    original = dnscache.get_original("getaddrinfo")
    ips = list(dict.fromkeys(info[4][0] for info in original(HOST, PORT, 0, socket.SOCK_STREAM)))
    store = PersistentStore(path)
    namespace = {"T": store.touch, "H": HOST.encode(), "A": tuple(ips)}
    label = f"touch(host, {len(ips)} ips): nothing due (the hot path)"
    return Case("touch", label, "t(h, a)", namespace, number, "t = T; h = H; a = A"), store


def build_cases(
    number: int, with_miss: bool, path: str
) -> tuple[list[Case], dict[str, dnscache.Resolver]]:
    resolvers = {
        "plain": dnscache.Resolver(),
        "persist": dnscache.Resolver(persist=path),
        "merge": dnscache.Resolver(persist=path, persist_mode="merge"),
    }
    labels = {
        "plain": "Resolver()",
        "persist": "Resolver(persist=file)",
        "merge": "Resolver(persist=file, persist_mode='merge')",
    }
    call = f"f({HOST!r}, {PORT}, 0, stream)"
    cases = [Case("empty", "empty loop (overhead, included in every row)", "pass", {}, number, "")]
    for key, resolver in resolvers.items():
        namespace = {"F": resolver.getaddrinfo, "S": socket.SOCK_STREAM}
        cases.append(Case(key, f"hit:  {labels[key]}", call, namespace, number))
    if with_miss:
        misses = max(50, number // MISS_DIVISOR)
        for key, resolver in resolvers.items():
            namespace = {
                "F": resolver.getaddrinfo,
                "S": socket.SOCK_STREAM,
                "I": resolver.invalidate,
            }
            cases.append(
                Case(
                    f"{key}_miss",
                    f"miss: {labels[key]} (invalidate()+call)",
                    f"inv(); {call}",
                    namespace,
                    misses,
                    "f = F; stream = S; inv = I",
                )
            )
    return cases, resolvers


def check_answers(resolvers: dict[str, dnscache.Resolver]) -> None:
    """Every resolver must give the original's answer before its speed means anything."""
    want = dnscache.get_original("getaddrinfo")(HOST, PORT, 0, socket.SOCK_STREAM)
    for key, resolver in resolvers.items():
        got = resolver.getaddrinfo(HOST, PORT, 0, socket.SOCK_STREAM)
        if key == "merge":  # merge may add the file's addresses; the live ones come first
            assert got[: len(want)] == want or sorted(got) == sorted(want), (key, got)
        else:
            assert got == want, (key, got)


def file_rows(path: str) -> int:
    conn = sqlite3.connect(path)
    try:
        (count,) = conn.execute("SELECT count(*) FROM addresses").fetchone()
    finally:
        conn.close()
    return int(count)


def run(rounds: int, number: int, with_miss: bool, quiet: bool) -> dict[str, Any]:
    machine = _machine.Machine()
    main_cpu, _ = _machine.choose_cpus()
    # Pinned before the resolvers exist, so their writer and refresh threads share our
    # CPU: the hand-off a persist miss makes is measured as a single-core program sees it.
    machine.pinned_cpu = _machine.pin(main_cpu)
    watch = _machine.Watch(machine)
    resolvers: dict[str, dnscache.Resolver] = {}
    with tempfile.TemporaryDirectory(prefix="bench-persist-") as tmp:
        path = os.path.join(tmp, "dns.sqlite3")
        seed(path)
        store = None
        try:
            cases, resolvers = build_cases(number, with_miss, path)
            touch, store = touch_case(number, path)
            cases.insert(len(resolvers) + 1, touch)
            check_answers(resolvers)
            for case in cases:  # warm-up: fill every cache, open the file, settle the specialiser
                case.run(max(1, case.number // 10))
                case.per_call.clear()
            before = {k: r.stats() for k, r in resolvers.items()}
            watch.start()
            for r in range(rounds):
                shift = r % len(cases)
                for case in cases[shift:] + cases[:shift]:
                    case.run()
                if not quiet:
                    print(f"  round {r + 1}/{rounds} done", file=sys.stderr)
            watch.stop()
            after = {k: r.stats() for k, r in resolvers.items()}
        finally:
            for resolver in resolvers.values():
                resolver.close()  # flushes the writer before the directory goes
            if store is not None:
                store.close()
        rows_in_file = file_rows(path)

    by_key = {c.key: c for c in cases}
    rows = []
    for case in cases:
        p25, med, p75 = quartiles(case.per_call)
        rows.append(
            {
                "case": case.key,
                "label": case.label,
                "median_ns": med,
                "p25_ns": p25,
                "p75_ns": p75,
                "calls_per_round": case.number,
                "rounds": len(case.per_call),
            }
        )

    def ratio(num: str, den: str) -> dict[str, float] | None:
        if num not in by_key or den not in by_key:
            return None
        per_round = [x / y for x, y in zip(by_key[num].per_call, by_key[den].per_call, strict=True)]
        p25, med, p75 = quartiles(per_round)
        return {"median": med, "p25": p25, "p75": p75}

    ratios = {
        "hit: persist / plain": ratio("persist", "plain"),
        "hit: merge / plain": ratio("merge", "plain"),
        "touch / plain hit": ratio("touch", "plain"),
        "miss: persist / plain": ratio("persist_miss", "plain_miss"),
        "miss: merge / plain": ratio("merge_miss", "plain_miss"),
    }
    worst = max(r["median"] for k, r in ratios.items() if k.startswith("hit:") and r is not None)
    stats_delta = {
        k: {
            f: getattr(after[k], f) - getattr(before[k], f)
            for f in ("hits", "misses", "refreshes", "persisted_hits", "stale_hits")
        }
        for k in after
    }
    return {
        "benchmark": "bench_persist",
        "machine": _machine.as_dict(machine),
        "settings": {
            "rounds": rounds,
            "calls_per_round": number,
            "host": HOST,
            "port": PORT,
            "miss_rows": with_miss,
            "gc_during_timing": "disabled (timeit)",
            "loop_overhead_subtracted": False,
        },
        "rows": rows,
        "ratios": {k: v for k, v in ratios.items() if v is not None},
        "target": {
            "persist_hit_over_plain_hit": {
                "target": TARGET_RATIO,
                "value": worst,
                "met": worst <= TARGET_RATIO,
            }
        },
        "resolver_stats_during_timing": stats_delta,
        "rows_in_file_at_end": rows_in_file,
    }


def render(result: dict[str, Any]) -> str:
    m = _machine.Machine(**result["machine"])
    s = result["settings"]
    out = [
        f"bench_persist: {s['rounds']} rounds x {s['calls_per_round']} calls (hits), interleaved;"
        " median of per-round ns/call",
        *_machine.describe(m),
        "",
        *_report.cases(result["rows"], unit="ns", width=70, digits=1, spread=23),
        "",
        *_report.ratios(result["ratios"], width=70, digits=3, spread=23),
    ]
    t = result["target"]["persist_hit_over_plain_hit"]
    out += [
        "",
        f"target: persist hit <= {t['target']:.2f}x plain hit (slower mode): {t['value']:.3f}x"
        f" -> {'MET' if t['met'] else 'MISSED'}",
    ]
    deltas = "; ".join(
        f"{k}: " + ", ".join(f"{v} {f}" for f, v in d.items())
        for k, d in result["resolver_stats_during_timing"].items()
    )
    out.append(f"resolver stats while timing (warm-up excluded): {deltas}")
    out.append(f"rows in the file at the end: {result['rows_in_file_at_end']}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds x 20k calls")
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument("--number", type=int, help="override the calls per round (hits)")
    parser.add_argument("--no-miss", action="store_true", help="skip the miss rows")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    rounds = args.rounds or preset["rounds"]
    number = args.number or preset["number"]
    result = run(rounds, number, not args.no_miss, quiet=args.json)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
