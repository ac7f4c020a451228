"""What a black-holed first address costs: the stdlib's sequential connect against Happy Eyeballs.

``socket.create_connection`` tries a name's addresses one after another, each with
the full timeout, so a first address that never answers costs the whole timeout
before the second is tried. dnscache races them (RFC 8305, ``_connect``): the
second attempt starts after the Connection Attempt Delay (250 ms), and address
health then orders the dead address last, so the next connect does not wait at
all. This script measures the three on loopback, in one run.

The network (all on one port P, only 127.0.0.0/8), as in ``tests/test_connect.py``:

* 127.0.0.3:P never answers: a listener with ``listen(0)`` whose accept queue is
  filled by one connection nobody accepts; Linux then drops further SYNs. The
  script checks this before it measures and stops if a probe connects;
* 127.0.0.4:P and 127.0.0.5:P accept: listeners with room in their queues (the
  kernel completes the handshake; the script drains the queues between connects).

Rows, each one connect per round, the name's addresses being [127.0.0.3, 127.0.0.4]:

* stdlib: ``socket.create_connection(("bh.test", P), timeout=T)``, the stdlib's own
  function (``dnscache.get_original``), with ``socket.getaddrinfo`` replaced for the
  call by a function returning the two addresses in that order, restored after;
* Happy Eyeballs: ``dnscache._connect.happy_eyeballs.create_connection(infos, timeout=T)`` over the
  same list, with the default delay;
* patched, 1st and 2nd call: ``socket.create_connection(("bh.test", P), timeout=T)``
  inside a fresh ``dnscache.patched(hosts={"bh.test": [...]})`` per round. The first
  call races like the row above; the black hole loses the race, which counts as a
  failure, so the second call tries 127.0.0.4 first;
* sanity, both addresses live ([127.0.0.5, 127.0.0.4]): the stdlib and Happy
  Eyeballs, to show that racing costs nothing when the first address answers.

Method: rounds are interleaved (each round runs every case once, in an order rotated
from round to round); each figure is the median over rounds, with p25-p75; ratios are
taken within a round, then their median. Every connect is checked to reach the
expected address. Expected figures: stdlib about T, Happy Eyeballs about the delay,
the patched second call and the live rows well under a millisecond.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import selectors
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import _machine
import _report
from bench_hit import quartiles

import dnscache
from dnscache._connect import happy_eyeballs as _connect

BLACKHOLE, LIVE, LIVE2 = "127.0.0.3", "127.0.0.4", "127.0.0.5"
NAME = "bh.test"
DEFAULT_TIMEOUT = 2.0
DEFAULT_ROUNDS = 5  # the stdlib row costs the whole timeout every round
# How long a probe to the black hole must stay unanswered for us to believe in it
# (the tests' figure: a loopback handshake completes in microseconds).
PROBE_SECONDS = 0.3


class Loopback:
    """The black hole and two live listeners on one port; owns every socket it made."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.live: list[socket.socket] = []
        for _ in range(20):  # another program may hold the port on one of our addresses
            try:
                self._setup()
                return
            except OSError:
                self.close()
        raise RuntimeError("no port free on 127.0.0.3-5 for the loopback listeners")

    def _listener(self, ip: str, port: int, backlog: int) -> socket.socket:
        sock = socket.socket()
        self.sockets.append(sock)
        sock.bind((ip, port))
        sock.listen(backlog)
        return sock

    def _setup(self) -> None:
        hole = self._listener(BLACKHOLE, 0, 0)
        self.port: int = hole.getsockname()[1]
        self.live = [self._listener(ip, self.port, 64) for ip in (LIVE, LIVE2)]
        for sock in self.live:
            sock.setblocking(False)  # drain() accepts until the queue is empty
        # Fill the black hole's accept queue; nobody ever accepts.
        self.sockets.append(socket.create_connection((BLACKHOLE, self.port), timeout=2))

    def is_black_hole(self) -> bool:
        with socket.socket() as probe:
            probe.setblocking(False)
            probe.connect_ex((BLACKHOLE, self.port))
            with selectors.DefaultSelector() as sel:
                sel.register(probe, selectors.EVENT_WRITE)
                return not sel.select(PROBE_SECONDS)

    def infos(self, *ips: str) -> list[Any]:
        original = dnscache.get_original("getaddrinfo")
        return [i for ip in ips for i in original(ip, self.port, 0, socket.SOCK_STREAM)]

    def drain(self) -> None:
        """Accept and close what the live listeners hold, so their queues never fill."""
        for sock in self.live:
            while True:
                try:
                    conn, _ = sock.accept()
                except (BlockingIOError, InterruptedError):
                    break
                conn.close()

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


@contextlib.contextmanager
def answering(infos: list[Any]) -> Iterator[None]:
    """``socket.getaddrinfo`` returns ``infos`` (a copy) until the block ends."""
    saved = socket.getaddrinfo
    socket.getaddrinfo = lambda *args, **kwargs: list(infos)
    try:
        yield
    finally:
        socket.getaddrinfo = saved


def timed(connect: Callable[[], socket.socket], want: tuple[str, int]) -> float:
    """Seconds ``connect()`` took; the socket it returns must be connected to ``want``."""
    start = time.perf_counter()
    sock = connect()
    elapsed = time.perf_counter() - start
    with sock:
        peer = sock.getpeername()
    if peer != want:
        raise AssertionError(f"connected to {peer}, expected {want}")
    return elapsed


@dataclass
class Case:
    key: str
    label: str
    expected: str
    seconds: list[float] = field(default_factory=list)  # one per round


def build_units(
    net: Loopback, timeout: float, delay: float, health_order: list[list[str]]
) -> list[Callable[[], dict[str, float]]]:
    """The round's units of work: each runs its connects and returns {case key: seconds}."""
    port = net.port
    want = (LIVE, port)
    stdlib_connect = dnscache.get_original("create_connection")
    hole_first = net.infos(BLACKHOLE, LIVE)
    both_live = net.infos(LIVE2, LIVE)

    def stdlib(infos: list[Any], expect: str) -> float:
        with answering(infos):
            return timed(lambda: stdlib_connect((NAME, port), timeout=timeout), (expect, port))

    def happy(infos: list[Any], expect: str) -> float:
        return timed(
            lambda: _connect.create_connection(infos, timeout=timeout, delay=delay),
            (expect, port),
        )

    def patched() -> dict[str, float]:
        hosts = {NAME: [BLACKHOLE, LIVE]}
        with dnscache.patched(hosts=hosts, happy_eyeballs_delay=delay):

            def connect() -> socket.socket:
                return socket.create_connection((NAME, port), timeout=timeout)

            first = timed(connect, want)
            second = timed(connect, want)
            # After both calls, so the check does not warm the second call's view.
            order = socket.getaddrinfo(NAME, port, 0, socket.SOCK_STREAM)
            health_order.append([str(info[4][0]) for info in order])
        return {"patched_1": first, "patched_2": second}

    return [
        lambda: {"stdlib_bh": stdlib(hole_first, LIVE)},
        lambda: {"happy_bh": happy(hole_first, LIVE)},
        patched,
        lambda: {"stdlib_live": stdlib(both_live, LIVE2)},
        lambda: {"happy_live": happy(both_live, LIVE2)},
    ]


def make_cases(timeout: float, delay: float) -> list[Case]:
    t, d = f"{timeout * 1e3:.0f} ms", f"{delay * 1e3:.0f} ms"
    return [
        Case("stdlib_bh", "stdlib socket.create_connection (sequential)", f"~T = {t}"),
        Case(
            "happy_bh",
            "dnscache happy_eyeballs.create_connection (RFC 8305)",
            f"~delay = {d}",
        ),
        Case("patched_1", "patched socket.create_connection, 1st call", f"~delay = {d}"),
        Case("patched_2", "patched socket.create_connection, 2nd call", "< 1 ms"),
        Case("stdlib_live", "sanity, both live: stdlib", "< 1 ms"),
        Case("happy_live", "sanity, both live: dnscache._connect.happy_eyeballs", "< 1 ms"),
    ]


def run(rounds: int, timeout: float, delay: float, quiet: bool) -> dict[str, Any]:
    machine = _machine.Machine()
    main_cpu, _ = _machine.choose_cpus()
    machine.pinned_cpu = _machine.pin(main_cpu)
    watch = _machine.Watch(machine)
    net = Loopback()
    health_order: list[list[str]] = []
    try:
        if not net.is_black_hole():
            raise SystemExit(
                "bench_connect: this kernel answers SYNs to a listener with a full accept "
                "queue, so 127.0.0.3 is not a black hole here; nothing measured"
            )
        cases = make_cases(timeout, delay)
        by_key = {case.key: case for case in cases}
        units = build_units(net, timeout, delay, health_order)
        watch.start()
        for r in range(rounds):
            shift = r % len(units)
            for unit in units[shift:] + units[:shift]:
                for key, seconds in unit().items():
                    by_key[key].seconds.append(seconds)
                net.drain()
            if not quiet:
                print(f"  round {r + 1}/{rounds} done", file=sys.stderr)
        watch.stop()
    finally:
        net.close()

    rows = []
    for case in cases:
        p25, med, p75 = quartiles(case.seconds)
        rows.append(
            {
                "case": case.key,
                "label": case.label,
                "expected": case.expected,
                "median_ms": med * 1e3,
                "p25_ms": p25 * 1e3,
                "p75_ms": p75 * 1e3,
                "rounds": len(case.seconds),
            }
        )

    def ratio(num: str, den: str) -> dict[str, float]:
        pairs = zip(by_key[num].seconds, by_key[den].seconds, strict=True)
        p25, med, p75 = quartiles([x / y for x, y in pairs])
        return {"median": med, "p25": p25, "p75": p75}

    return {
        "benchmark": "bench_connect",
        "machine": _machine.as_dict(machine),
        "settings": {
            "rounds": rounds,
            "timeout_s": timeout,
            "delay_s": delay,
            "port": net.port,
            "addresses": {"black hole": BLACKHOLE, "live": [LIVE, LIVE2]},
        },
        "rows": rows,
        "ratios": {
            "stdlib / Happy Eyeballs (black hole first)": ratio("stdlib_bh", "happy_bh"),
            "stdlib / patched 1st call": ratio("stdlib_bh", "patched_1"),
            "stdlib / patched 2nd call": ratio("stdlib_bh", "patched_2"),
            "sanity, both live: stdlib / Happy Eyeballs": ratio("stdlib_live", "happy_live"),
        },
        "patched_order_after_two_calls": health_order,
    }


def render(result: dict[str, Any]) -> str:
    m = _machine.Machine(**result["machine"])
    s = result["settings"]
    out = [
        f"bench_connect: {s['rounds']} rounds, interleaved; timeout T = {s['timeout_s']:g} s,"
        f" Happy Eyeballs delay = {s['delay_s']:g} s; median of per-round connect time",
        f"name {NAME!r} -> [{BLACKHOLE} (black hole), {LIVE} (live)] port {s['port']};"
        f" sanity rows: [{LIVE2}, {LIVE}] both live",
        *_machine.describe(m),
        "",
        *_report.cases(
            result["rows"],
            unit="ms",
            width=50,
            digits=3,
            spread=19,
            last=("expected", "expected", 16),
        ),
        "",
        *_report.ratios(result["ratios"], width=50, digits=2, spread=19),
    ]
    orders = {tuple(o) for o in result["patched_order_after_two_calls"]}
    shown = "; ".join(", ".join(o) for o in sorted(orders))
    out.append("")
    out.append(f"patched getaddrinfo order after the two calls (every round): {shown}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help=f"default {DEFAULT_ROUNDS}"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"connect timeout T in seconds (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--delay",
        type=float,
        default=_connect.DEFAULT_DELAY,
        help=f"Happy Eyeballs delay in seconds (default {_connect.DEFAULT_DELAY:g})",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    if args.rounds < 1 or not args.timeout > args.delay > 0:
        parser.error("need --rounds >= 1 and --timeout > --delay > 0")
    result = run(args.rounds, args.timeout, args.delay, quiet=args.json)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
