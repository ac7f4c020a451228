"""What a cache hit costs: dnscache's hit path against a dict memo, lru_cache and no cache.

The figure dnscache is built around is the price of a hit, because a program that
turns it on pays it on every connection. This script times, in one run:

* a hit through the patched ``socket.getaddrinfo``, called as programs call it
  (``socket.getaddrinfo(host, port)``, a module attribute lookup each time), in the
  two common forms: ``(host, 443)`` and urllib3/http.client's
  ``(host, 443, 0, socket.SOCK_STREAM)``;
* a hit through ``Resolver.getaddrinfo`` bound to a local name (no attribute lookup);
* the baseline: a plain dict-memoised ``getaddrinfo`` (no TTL, no stats, no type
  tagging: see ``make_dict_memo``) that, like dnscache, returns a fresh list;
* ``functools.lru_cache`` around the original, for reference only: it hands every
  caller the *same* list, so one caller's ``.sort()`` changes everybody's answer;
* the original ``socket.getaddrinfo`` (no cache; "localhost" comes from /etc/hosts);
* with the embedded DNS server (in a child process, see ``_dnsproc``) and the
  dnspython backend: a lookup that misses every time (records with TTL 0 and
  ``stale_ttl=0``) against a hit on a cached record.

Method: every case is a ``timeit`` loop (garbage collection off while it runs, the
callable bound to a local in the loop's setup). The cases are interleaved: each
round runs every case once, in an order rotated from round to round, so slow
drift on a shared machine hits all of them alike. Each case's figure is the
median over rounds of the per-call time of a round; ratios are taken round by
round (both sides from the same round) and their median is reported. The empty
loop's cost is shown as a row and is *not* subtracted from the others.

Targets (the foundation's promise): a hit costs at most 1 us (median) and at most
6x the dict memo.
"""

from __future__ import annotations

import argparse
import functools
import json
import socket
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import _machine
import _report
from _dnsproc import ServerProcess

import dnscache

HOST = "localhost"  # in /etc/hosts: the system lookup never leaves the machine
PORT = 443
FULL = {"rounds": 15, "number": 200_000}
QUICK = {"rounds": 5, "number": 20_000}
# Cases that do real work run fewer calls per round so that a round stays short;
# their per-call time is large enough that the loop's cost does not matter.
SYSTEM_DIVISOR = 50  # the uncached system lookup: ~5-10 us each here
DNS_MISSES_PER_ROUND = {"full": 40, "quick": 10}  # an uncached DNS lookup: ~1 ms each
TARGET_HIT_NS = 1000.0
TARGET_RATIO = 6.0


def make_dict_memo(original: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
    """The baseline: the least a correct-looking memo does, and nothing more.

    Keyed on the six arguments as given, never expiring, no lock, no counters; a
    hit is one tuple build, one dict lookup and one list copy (``list(...)``),
    the copy because dnscache returns a copy too (callers may mutate the list).
    """
    cache: dict[tuple[Any, ...], list[Any]] = {}

    def memo(
        host: Any, port: Any, family: Any = 0, type: Any = 0, proto: Any = 0, flags: Any = 0
    ) -> list[Any]:
        key = (host, port, family, type, proto, flags)
        try:
            return list(cache[key])
        except KeyError:
            pass
        result = original(host, port, family, type, proto, flags)
        cache[key] = result
        return list(result)

    return memo


@dataclass
class Case:
    key: str
    label: str
    stmt: str
    namespace: dict[str, Any]
    number: int
    setup: str = "f = F"
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


def build_cases(
    number: int, dns_misses: int, server: ServerProcess | None
) -> tuple[list[Case], dict[str, dnscache.Resolver]]:
    original = dnscache.get_original("getaddrinfo")
    stream = socket.SOCK_STREAM
    direct = dnscache.Resolver()
    resolvers = {"direct": direct}
    memo = make_dict_memo(original)
    lru = functools.lru_cache(maxsize=10_000)(original)  # Config.maxsize's default bound
    sys_number = max(100, number // SYSTEM_DIVISOR)
    a = f"({HOST!r}, {PORT})"
    b = f"({HOST!r}, {PORT}, 0, stream)"  # stream: socket.SOCK_STREAM, as urllib3 passes it
    ns_patched = {"socket": socket, "S": stream}
    cases = [
        Case("empty", "empty loop (overhead, included in every row)", "pass", {}, number, ""),
        Case(
            "patched",
            f"patched socket.getaddrinfo{a}",
            f"socket.getaddrinfo{a}",
            ns_patched,
            number,
            "stream = S",
        ),
        Case(
            "patched_stream",
            f"patched socket.getaddrinfo{b}".replace("stream", "SOCK_STREAM"),
            f"socket.getaddrinfo{b}",
            ns_patched,
            number,
            "stream = S",
        ),
        Case(
            "direct",
            f"Resolver.getaddrinfo{a} (local ref)",
            f"f{a}",
            {"F": direct.getaddrinfo},
            number,
        ),
        Case("memo", f"dict memo{a} (returns a copy)", f"f{a}", {"F": memo}, number),
        Case(
            "memo_stream",
            f"dict memo{b}".replace("stream", "SOCK_STREAM"),
            f"f{b}",
            {"F": memo, "S": stream},
            number,
            "f = F; stream = S",
        ),
        Case("lru", f"lru_cache(original){a} (shared list!)", f"f{a}", {"F": lru}, number),
        Case(
            "original", f"original getaddrinfo{a} (no cache)", f"f{a}", {"F": original}, sys_number
        ),
    ]
    if server is not None:
        server.set("miss.bench.test", ["127.0.0.2"], ttl=0)
        server.set("hit.bench.test", ["127.0.0.3"], ttl=3600)
        nameservers = (server.nameserver,)
        # TTL 0 (min_ttl=0 keeps it 0) and no serve-stale: every call is a miss that
        # goes to the server (A and AAAA in parallel, as for AF_UNSPEC).
        uncached = dnscache.Resolver(backend="dnspython", nameservers=nameservers, stale_ttl=0)
        cached = dnscache.Resolver(backend="dnspython", nameservers=nameservers)
        resolvers |= {"dns_miss": uncached, "dns_hit": cached}
        dm = "('miss.bench.test', 443, 0, stream)"
        dh = "('hit.bench.test', 443, 0, stream)"
        cases += [
            Case(
                "dns_miss",
                "dnspython backend, TTL 0: miss every call",
                f"f{dm}",
                {"F": uncached.getaddrinfo, "S": stream},
                dns_misses,
                "f = F; stream = S",
            ),
            Case(
                "dns_hit",
                "dnspython backend, cached hit",
                f"f{dh}",
                {"F": cached.getaddrinfo, "S": stream},
                number,
                "f = F; stream = S",
            ),
        ]
    return cases, resolvers


def check_answers(cases: list[Case], resolvers: dict[str, dnscache.Resolver]) -> None:
    """Every case must give the right answer before its speed means anything."""
    original = dnscache.get_original("getaddrinfo")
    want_a = original(HOST, PORT)
    want_b = original(HOST, PORT, 0, socket.SOCK_STREAM)
    assert socket.getaddrinfo(HOST, PORT) == want_a
    assert socket.getaddrinfo(HOST, PORT, 0, socket.SOCK_STREAM) == want_b
    for case in cases:
        if case.key in ("direct", "memo", "lru"):
            assert case.namespace["F"](HOST, PORT) == want_a, case.key
    if "dns_hit" in resolvers:
        got = resolvers["dns_hit"].getaddrinfo("hit.bench.test", 443, 0, socket.SOCK_STREAM)
        assert got[0][4][0] == "127.0.0.3", got


def run(rounds: int, number: int, dns_misses: int, with_dns: bool, quiet: bool) -> dict[str, Any]:
    machine = _machine.Machine()
    main_cpu, helper_cpu = _machine.choose_cpus()
    # The server process starts before we pin ourselves, so it does not inherit our CPU.
    server = ServerProcess(cpu=helper_cpu) if with_dns else None
    machine.helper_cpu = helper_cpu if with_dns else None
    machine.pinned_cpu = _machine.pin(main_cpu)
    watch = _machine.Watch(machine)
    watch.add_pids([server.pid if server else None])
    resolvers: dict[str, dnscache.Resolver] = {}
    try:
        with dnscache.patched() as patched_resolver:
            cases, own = build_cases(number, dns_misses, server)
            resolvers = {**own, "patched": patched_resolver}
            check_answers(cases, resolvers)
            for case in cases:  # warm-up: fill every cache, settle the specialiser
                case.run(max(1, case.number // 10))
                case.per_call.clear()
            before = {k: r.stats() for k, r in resolvers.items()}
            queries_before = server.counts() if server else {}
            watch.start()
            for r in range(rounds):
                shift = r % len(cases)
                for case in cases[shift:] + cases[:shift]:
                    case.run()
                if not quiet:
                    print(f"  round {r + 1}/{rounds} done", file=sys.stderr)
            watch.stop()
            after = {k: r.stats() for k, r in resolvers.items()}
            queries_after = server.counts() if server else {}
    finally:
        for resolver in resolvers.values():
            resolver.close()  # idempotent: patched() has closed its own already
        if server is not None:
            server.stop()

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
        "patched / dict memo": ratio("patched", "memo"),
        "patched SOCK_STREAM / dict memo SOCK_STREAM": ratio("patched_stream", "memo_stream"),
        "Resolver.getaddrinfo / dict memo": ratio("direct", "memo"),
        "original / patched": ratio("original", "patched"),
        "dnspython miss / dnspython hit": ratio("dns_miss", "dns_hit"),
    }
    hit = statistics.median(by_key["patched"].per_call)
    hit_stream = statistics.median(by_key["patched_stream"].per_call)
    worst_ratio = max(
        r["median"]
        for r in (
            ratios["patched / dict memo"],
            ratios["patched SOCK_STREAM / dict memo SOCK_STREAM"],
        )
        if r is not None
    )
    stats_delta = {
        k: {
            f: getattr(after[k], f) - getattr(before[k], f) for f in ("hits", "misses", "refreshes")
        }
        for k in after
    }
    dns_queries = {t: queries_after.get(t, 0) - queries_before.get(t, 0) for t in queries_after}
    return {
        "benchmark": "bench_hit",
        "machine": _machine.as_dict(machine),
        "settings": {
            "rounds": rounds,
            "calls_per_round": number,
            "host": HOST,
            "port": PORT,
            "gc_during_timing": "disabled (timeit)",
            "loop_overhead_subtracted": False,
        },
        "rows": rows,
        "ratios": {k: v for k, v in ratios.items() if v is not None},
        "targets": {
            "hit_median_ns": {
                "target": TARGET_HIT_NS,
                "value": max(hit, hit_stream),
                "met": max(hit, hit_stream) <= TARGET_HIT_NS,
            },
            "hit_over_dict_memo": {
                "target": TARGET_RATIO,
                "value": worst_ratio,
                "met": worst_ratio <= TARGET_RATIO,
            },
        },
        "resolver_stats_during_timing": stats_delta,
        "dns_queries_during_timing": dns_queries,
    }


def render(result: dict[str, Any]) -> str:
    m = _machine.Machine(**result["machine"])
    s = result["settings"]
    out = [
        f"bench_hit: {s['rounds']} rounds x {s['calls_per_round']} calls, interleaved;"
        " median of per-round ns/call",
        *_machine.describe(m),
        "",
        *_report.cases(result["rows"], unit="ns", width=58, digits=1, spread=23),
        "",
        *_report.ratios(result["ratios"], width=58, digits=2, spread=23),
    ]
    t = result["targets"]
    hit, rat = t["hit_median_ns"], t["hit_over_dict_memo"]
    out += [
        "",
        f"target: hit <= {hit['target']:.0f} ns median (slower form): {hit['value']:.1f} ns"
        f" -> {'MET' if hit['met'] else 'MISSED'}",
        f"target: hit <= {rat['target']:.0f}x dict memo (worse form):   {rat['value']:.2f}x"
        f" -> {'MET' if rat['met'] else 'MISSED'}",
    ]
    deltas = ", ".join(
        f"{k}: {v['hits']} hits/{v['misses']} misses/{v['refreshes']} refreshes"
        for k, v in result["resolver_stats_during_timing"].items()
    )
    out.append(f"resolver stats while timing (warm-up excluded): {deltas}")
    if result["dns_queries_during_timing"]:
        q = result["dns_queries_during_timing"]
        out.append(f"DNS server queries while timing: {q}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds x 20k calls")
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument("--number", type=int, help="override the calls per round")
    parser.add_argument("--no-dns", action="store_true", help="skip the DNS server cases")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    rounds = args.rounds or preset["rounds"]
    number = args.number or preset["number"]
    dns_misses = DNS_MISSES_PER_ROUND["quick" if args.quick else "full"]
    result = run(rounds, number, dns_misses, not args.no_dns, quiet=args.json)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
