"""What a cached lookup costs under trio and uvloop: their stock paths against dnscache's hits.

* **trio** runs every ``trio.socket.getaddrinfo`` of a name in a worker thread,
  cached or not. dnscache's slot in front of trio's hostname-resolver ``RunVar``
  (``_activation/runtimes/trio_resolver.py``) answers a hit in the task, after
  trio's own steps (the numeric-only attempt, IDNA 2008) and one
  ``trio.lowlevel.checkpoint()``. Cases, in one ``trio.run``:

  - floor: ``await trio.lowlevel.checkpoint()`` alone (what a hit must still cost);
  - stock hop (cached): trio's default path, the thread, around a dnscache hit
    (``socket.getaddrinfo`` is ours; the slot is taken out for the case, so trio
    sees its own ``RunVar``): the cost of the hop itself;
  - patched: ``await trio.socket.getaddrinfo(...)`` as programs write it;
  - stock uncached: trio's default path with ``socket.getaddrinfo`` the original
    too (glibc reads /etc/hosts each time), which is trio without dnscache.

* **uvloop** resolves in C, through a libuv request to its thread pool, for every
  call. dnscache's ``uvloop.Loop.getaddrinfo`` answers a hit in the loop. Cases, in
  one ``uvloop.run``:

  - floor: awaiting a coroutine that returns at once;
  - stock: uvloop's own method (the Cython base class's), i.e. uvloop without
    dnscache: libuv's request, glibc and /etc/hosts each time;
  - patched: ``await loop.getaddrinfo(...)``.

Every call is ``("localhost", 443, type=SOCK_STREAM)``: localhost is in /etc/hosts,
so nothing leaves the machine. The cache runs with ``ttl=3600`` so that no answer
reaches its refresh point during the run.

Method (as ``bench_asyncio.py``): each case awaits its call ``number`` times in a
row, garbage collector off, timed with ``perf_counter_ns``; the per-call mean of a
round is one figure. Rounds are interleaved (each runs every case of a runtime once,
in an order rotated from round to round); each row is the median over rounds with
its p25-p75 spread, and ratios are taken within a round, then their median. The
threads (trio's worker cache, libuv's pool) are started in the warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
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
import trio
import trio._socket
import uvloop
from bench_hit import quartiles
from uvloop.loop import Loop as CythonLoop

import dnscache

HOST = "localhost"
PORT = 443
STREAM = socket.SOCK_STREAM
FULL = {"rounds": 15, "number": 5_000}
QUICK = {"rounds": 5, "number": 500}
SLOW_DIVISOR = 5  # the thread and libuv rows cost tens of microseconds a call


@contextlib.contextmanager
def original_socket_getaddrinfo() -> Iterator[None]:
    saved = socket.getaddrinfo
    socket.getaddrinfo = dnscache.get_original("getaddrinfo")
    try:
        yield
    finally:
        socket.getaddrinfo = saved


@contextlib.contextmanager
def trios_own_slot() -> Iterator[None]:
    """trio's RunVar in place of dnscache's slot until the block ends."""
    slot: Any = trio._socket._resolver
    trio._socket._resolver = slot.__wrapped__
    try:
        yield
    finally:
        trio._socket._resolver = slot


@dataclass
class Case:
    key: str
    label: str
    body: Callable[[int], Awaitable[None]]
    number: int
    context: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext
    per_call: list[float] = field(default_factory=list)  # ns, one per round

    async def run(self, number: int | None = None) -> None:
        n = number or self.number
        with self.context():
            gc.disable()
            try:
                start = time.perf_counter_ns()
                await self.body(n)
                elapsed = time.perf_counter_ns() - start
            finally:
                gc.enable()
        self.per_call.append(elapsed / n)


def _both_stock() -> contextlib.AbstractContextManager[None]:
    stack = contextlib.ExitStack()
    stack.enter_context(trios_own_slot())
    stack.enter_context(original_socket_getaddrinfo())
    return stack


def trio_cases(number: int) -> list[Case]:
    slow = max(50, number // SLOW_DIVISOR)

    async def floor(n: int) -> None:
        for _ in range(n):
            await trio.lowlevel.checkpoint()

    async def lookups(n: int) -> None:
        for _ in range(n):
            await trio.socket.getaddrinfo(HOST, PORT, type=STREAM)

    return [
        Case("floor", "trio: checkpoint() alone (floor)", floor, number),
        Case("stock", "trio: stock, cached (thread hop)", lookups, slow, trios_own_slot),
        Case("patched", "trio: patched hit (no thread)", lookups, number),
        Case("uncached", "trio: stock, uncached (thread, /etc/hosts)", lookups, slow, _both_stock),
    ]


def uvloop_cases(loop: asyncio.AbstractEventLoop, number: int) -> list[Case]:
    slow = max(50, number // SLOW_DIVISOR)
    stock = CythonLoop.getaddrinfo

    async def nothing() -> None:
        return None

    async def floor(n: int) -> None:
        for _ in range(n):
            await nothing()

    async def stock_calls(n: int) -> None:
        for _ in range(n):
            await stock(loop, HOST, PORT, type=STREAM)

    async def patched(n: int) -> None:
        for _ in range(n):
            await loop.getaddrinfo(HOST, PORT, type=STREAM)

    return [
        Case("floor", "uvloop: await of a coroutine (floor)", floor, number),
        Case("stock", "uvloop: stock (libuv request, /etc/hosts)", stock_calls, slow),
        Case("patched", "uvloop: patched hit (in the loop)", patched, number),
    ]


async def interleave(cases: list[Case], rounds: int, quiet: bool, name: str) -> None:
    for case in cases:  # warm-up: threads, the specialiser, the cache's views
        await case.run(max(1, case.number // 10))
        case.per_call.clear()
    for r in range(rounds):
        shift = r % len(cases)
        for case in cases[shift:] + cases[:shift]:
            await case.run()
        if not quiet:
            print(f"  {name}: round {r + 1}/{rounds} done", file=sys.stderr)


def run(rounds: int, number: int, pin: bool, quiet: bool) -> dict[str, Any]:
    machine = _machine.Machine()
    if pin:  # worker threads started later are pinned to the same CPU
        machine.pinned_cpu = _machine.pin(_machine.choose_cpus()[0])
    watch = _machine.Watch(machine)
    want = dnscache.get_original("getaddrinfo")(HOST, PORT, 0, STREAM)
    with dnscache.patched(ttl=3600) as resolver:
        trio_set = trio_cases(number)

        async def trio_main() -> None:
            assert await trio.socket.getaddrinfo(HOST, PORT, type=STREAM) == want
            with trios_own_slot():
                assert await trio.socket.getaddrinfo(HOST, PORT, type=STREAM) == want
            await interleave(trio_set, rounds, quiet, "trio")

        uvloop_set: list[Case] = []

        async def uvloop_main() -> None:
            loop = asyncio.get_running_loop()
            assert await loop.getaddrinfo(HOST, PORT, type=STREAM) == want
            assert await CythonLoop.getaddrinfo(loop, HOST, PORT, type=STREAM) == want
            uvloop_set.extend(uvloop_cases(loop, number))
            await interleave(uvloop_set, rounds, quiet, "uvloop")

        before = resolver.stats()
        watch.start()
        trio.run(trio_main)
        uvloop.run(uvloop_main())
        watch.stop()
        after = resolver.stats()

    def rows(cases: list[Case]) -> list[dict[str, Any]]:
        out = []
        for case in cases:
            p25, med, p75 = quartiles(case.per_call)
            out.append(
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
        return out

    def ratio(cases: list[Case], num: str, den: str) -> dict[str, float]:
        by_key = {c.key: c for c in cases}
        pairs = zip(by_key[num].per_call, by_key[den].per_call, strict=True)
        p25, med, p75 = quartiles([x / y for x, y in pairs])
        return {"median": med, "p25": p25, "p75": p75}

    return {
        "benchmark": "bench_runtimes",
        "machine": _machine.as_dict(machine),
        "settings": {
            "rounds": rounds,
            "calls_per_round": number,
            "call": f"getaddrinfo({HOST!r}, {PORT}, type=socket.SOCK_STREAM)",
            "gc_during_timing": "disabled",
        },
        "rows": rows(trio_set) + rows(uvloop_set),
        "ratios": {
            "trio: stock hop (cached) / patched hit": ratio(trio_set, "stock", "patched"),
            "trio: stock uncached / patched hit": ratio(trio_set, "uncached", "patched"),
            "trio: patched hit / checkpoint floor": ratio(trio_set, "patched", "floor"),
            "uvloop: stock / patched hit": ratio(uvloop_set, "stock", "patched"),
            "uvloop: patched hit / floor": ratio(uvloop_set, "patched", "floor"),
        },
        "resolver_stats": {
            "hits": after.hits - before.hits,
            "misses": after.misses - before.misses,
            "lookups": after.lookups - before.lookups,
        },
    }


def render(result: dict[str, Any]) -> str:
    m = _machine.Machine(**result["machine"])
    s = result["settings"]
    st = result["resolver_stats"]
    return "\n".join(
        [
            f"bench_runtimes: {s['rounds']} rounds, interleaved per runtime; median of"
            f" per-round us/call of {s['call']}",
            *_machine.describe(m),
            "",
            *_report.cases(result["rows"], unit="us", width=46, digits=2, spread=15),
            "",
            *_report.ratios(result["ratios"], width=46, digits=2, spread=15),
            "",
            f"resolver: {st['hits']} hits, {st['misses']} misses, {st['lookups']} upstream"
            " lookups (warm-up included)",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds x 500 calls")
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument("--number", type=int, help="override the hit calls per round")
    parser.add_argument("--no-pin", action="store_true", help="leave the threads unpinned")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    result = run(
        args.rounds or preset["rounds"],
        args.number or preset["number"],
        not args.no_pin,
        quiet=args.json,
    )
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
