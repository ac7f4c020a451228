"""What a cached ``loop.getaddrinfo`` costs: asyncio's executor hop against dnscache's in-loop hit.

asyncio's ``BaseEventLoop.getaddrinfo`` sends every call to the default executor,
so even when ``socket.getaddrinfo`` is a cache hit, the caller pays a thread
hand-off and two trips through the event loop. dnscache replaces the method
(``_adapters.asyncio_getaddrinfo``) so that a hit is answered in the loop's
thread. This script times, in one run and in one event loop:

* stock: asyncio's own method with dnscache patched at the socket level only,
  i.e. ``BaseEventLoop.getaddrinfo.__wrapped__(loop, ...)`` (our replacement keeps
  the method it replaced there): the executor hop around a cache hit;
* patched: ``await loop.getaddrinfo(...)`` as programs write it: the in-loop hit;
* stock, uncached: asyncio's own method with ``socket.getaddrinfo`` put back to the
  original for the duration of the case (the method looks it up on every call),
  so every call goes to glibc; "localhost" is in /etc/hosts, so no network;
* the floor: awaiting a coroutine that returns at once.

Every call is ``(HOST, 443, type=socket.SOCK_STREAM)``. The patched block uses
``ttl=3600`` so that no answer reaches its refresh point during the run (a hit past
it would go to the slow path, and ``peek`` then hands the call to the executor).

Method: each case awaits its call ``number`` times in a row (the garbage collector
off while it does), timed with ``perf_counter_ns``; the per-call mean of a round is
one figure. Rounds are interleaved (each round runs every case once, in an order
rotated from round to round); each row is the median over rounds, and ratios are
taken within a round, then their median. The executor's thread is started in the
warm-up. Target: the patched hit at least 5x faster than the stock hop.
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.base_events
import contextlib
import gc
import json
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import _machine
import _report
from bench_hit import quartiles

import dnscache

HOST = "localhost"  # in /etc/hosts: the uncached row never leaves the machine
PORT = 443
STREAM = socket.SOCK_STREAM
FULL = {"rounds": 15, "number": 20_000}
QUICK = {"rounds": 5, "number": 2_000}
# The executor rows cost tens of microseconds a call: fewer calls keep a round short.
EXECUTOR_DIVISOR = 10
TARGET_RATIO = 5.0


@contextlib.contextmanager
def original_socket_getaddrinfo() -> Iterator[None]:
    """``socket.getaddrinfo`` is the original until the block ends, then what it was."""
    saved = socket.getaddrinfo
    socket.getaddrinfo = dnscache.get_original("getaddrinfo")
    try:
        yield
    finally:
        socket.getaddrinfo = saved


@dataclass
class Case:
    key: str
    label: str
    body: Callable[[int], Awaitable[None]]
    number: int
    uncached: bool = False
    per_call: list[float] = field(default_factory=list)  # ns, one per round

    async def run(self, number: int | None = None) -> None:
        n = number or self.number
        context = original_socket_getaddrinfo() if self.uncached else contextlib.nullcontext()
        with context:
            gc.disable()
            try:
                start = time.perf_counter_ns()
                await self.body(n)
                elapsed = time.perf_counter_ns() - start
            finally:
                gc.enable()
        self.per_call.append(elapsed / n)


def build_cases(loop: asyncio.AbstractEventLoop, number: int) -> list[Case]:
    patched_method: Any = asyncio.base_events.BaseEventLoop.getaddrinfo
    if not getattr(patched_method, "__dnscache__", False):
        raise SystemExit("bench_asyncio: BaseEventLoop.getaddrinfo is not dnscache's")
    stock = patched_method.__wrapped__
    slow = max(100, number // EXECUTOR_DIVISOR)

    async def nothing() -> None:
        return None

    async def floor(n: int) -> None:
        for _ in range(n):
            await nothing()

    async def stock_hop(n: int) -> None:
        for _ in range(n):
            await stock(loop, HOST, PORT, type=STREAM)

    async def patched(n: int) -> None:
        for _ in range(n):
            await loop.getaddrinfo(HOST, PORT, type=STREAM)

    return [
        Case("floor", "await of a coroutine returning at once (floor)", floor, number),
        Case("stock", "stock loop.getaddrinfo, cached (executor hop)", stock_hop, slow),
        Case("patched", "patched loop.getaddrinfo, cached (in the loop)", patched, number),
        Case("uncached", "stock loop.getaddrinfo, uncached (/etc/hosts)", stock_hop, slow, True),
    ]


async def measure(rounds: int, number: int, quiet: bool, watch: _machine.Watch) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    if loop.get_debug():  # debug mode keeps the stock path (it logs each call's duration)
        raise SystemExit("bench_asyncio: asyncio debug mode is on (PYTHONASYNCIODEBUG?)")
    resolver = dnscache.active_resolver()
    assert resolver is not None
    cases = build_cases(loop, number)
    want = dnscache.get_original("getaddrinfo")(HOST, PORT, 0, STREAM)
    # Every path must give the original's answer before its speed means anything (the
    # first call is the cache's one miss).
    method: Any = asyncio.base_events.BaseEventLoop.getaddrinfo
    stock = method.__wrapped__
    assert await stock(loop, HOST, PORT, type=STREAM) == want
    assert await loop.getaddrinfo(HOST, PORT, type=STREAM) == want
    with original_socket_getaddrinfo():
        assert await stock(loop, HOST, PORT, type=STREAM) == want
    for case in cases:  # warm-up: the executor's thread, the specialiser
        await case.run(max(1, case.number // 10))
        case.per_call.clear()
    before = resolver.stats()
    watch.start()
    for r in range(rounds):
        shift = r % len(cases)
        for case in cases[shift:] + cases[:shift]:
            await case.run()
        if not quiet:
            print(f"  round {r + 1}/{rounds} done", file=sys.stderr)
    watch.stop()
    after = resolver.stats()
    by_key = {c.key: c for c in cases}
    expected_hits = rounds * (by_key["stock"].number + by_key["patched"].number)
    return {
        "cases": cases,
        "stats": {
            "hits": after.hits - before.hits,
            "misses": after.misses - before.misses,
            "refreshes": after.refreshes - before.refreshes,
            "expected_hits": expected_hits,
        },
    }


def run(rounds: int, number: int, pin: bool, quiet: bool) -> dict[str, Any]:
    machine = _machine.Machine()
    if pin:  # the executor's thread, started later, is pinned to the same CPU
        machine.pinned_cpu = _machine.pin(_machine.choose_cpus()[0])
    watch = _machine.Watch(machine)
    with dnscache.patched(ttl=3600):
        measured = asyncio.run(measure(rounds, number, quiet, watch))
    cases: list[Case] = measured["cases"]
    by_key = {c.key: c for c in cases}
    rows = []
    for case in cases:
        p25, med, p75 = quartiles(case.per_call)
        rows.append(
            {
                "case": case.key,
                "label": case.label,
                "median_us": med / 1e3,
                "p25_us": p25 / 1e3,
                "p75_us": p75 / 1e3,
                "calls_per_round": case.number,
                "rounds": len(case.per_call),
            }
        )

    def ratio(num: str, den: str) -> dict[str, float]:
        pairs = zip(by_key[num].per_call, by_key[den].per_call, strict=True)
        p25, med, p75 = quartiles([x / y for x, y in pairs])
        return {"median": med, "p25": p25, "p75": p75}

    ratios = {
        "stock hop (cached) / patched (in the loop)": ratio("stock", "patched"),
        "stock uncached / patched (in the loop)": ratio("uncached", "patched"),
        "stock uncached / stock hop (cached)": ratio("uncached", "stock"),
    }
    target = ratios["stock hop (cached) / patched (in the loop)"]["median"]
    return {
        "benchmark": "bench_asyncio",
        "machine": _machine.as_dict(machine),
        "settings": {
            "rounds": rounds,
            "calls_per_round": number,
            "call": f"await loop.getaddrinfo({HOST!r}, {PORT}, type=socket.SOCK_STREAM)",
            "gc_during_timing": "disabled",
        },
        "rows": rows,
        "ratios": ratios,
        "target": {"target": TARGET_RATIO, "value": target, "met": target >= TARGET_RATIO},
        "resolver_stats_during_timing": measured["stats"],
    }


def render(result: dict[str, Any]) -> str:
    m = _machine.Machine(**result["machine"])
    s = result["settings"]
    out = [
        f"bench_asyncio: {s['rounds']} rounds, interleaved; median of per-round us/call of"
        f" {s['call']}",
        *_machine.describe(m),
        "",
        *_report.cases(result["rows"], unit="us", width=50, digits=2, spread=17),
        "",
        *_report.ratios(result["ratios"], width=50, digits=2, spread=17),
    ]
    t = result["target"]
    st = result["resolver_stats_during_timing"]
    out += [
        "",
        f"target: stock hop / patched >= {t['target']:.0f}x: {t['value']:.2f}x"
        f" -> {'MET' if t['met'] else 'MISSED'}",
        f"resolver stats while timing (warm-up excluded): {st['hits']} hits"
        f" (expected {st['expected_hits']}), {st['misses']} misses, {st['refreshes']} refreshes",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds x 2k calls")
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument("--number", type=int, help="override the in-loop calls per round")
    parser.add_argument(
        "--no-pin", action="store_true", help="leave the loop and executor threads unpinned"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    rounds = args.rounds or preset["rounds"]
    number = args.number or preset["number"]
    result = run(rounds, number, not args.no_pin, quiet=args.json)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
