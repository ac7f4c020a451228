"""What a connect that needs one attempt costs: the stdlib's create_connection against dnscache's.

Issue 12 item 3: an IP literal, a one-address answer, or the first attempt of
several that succeeds before the Happy Eyeballs delay must cost what
``socket.create_connection(("127.0.0.1", port))`` costs, within 15 % in
instructions. Rows, each one ``create_connection((host, P), timeout=5)`` and a
``close()``, P being a loopback listener that accepts everything (in a child
process, so that accepting costs the measured process nothing):

* stdlib, IP literal ``127.0.0.1``: the reference (libc parses the literal);
* stdlib, ``localhost``: the same connect when the stdlib has to look a name up
  (``/etc/hosts``, no DNS), for scale;
* patched, IP literal: inside ``dnscache.patched()``;
* patched, cached one-address name: ``one.test`` -> [127.0.0.1] (``hosts=``);
* patched, cached two-address name, the first answers: ``two.test`` ->
  [127.0.0.1, 127.0.0.2]; the second address is never tried.

Method. Time: interleaved rounds (each round runs every case once, in an order
rotated from round to round), ``--calls`` connects per case per round; the
figure is the median over rounds of the mean time per call, with p25-p75, and
the ratio to the stdlib literal is taken within each round, then its median.
Instructions: ``valgrind --tool=callgrind`` runs a child process that makes
``WARMUP`` calls and then N of one case, once with N = 200 and once with
N = 1200; the difference over 1000 is the cost of one call, start-up and
warm-up cancelling out (``PYTHONHASHSEED=0`` for identical dict layouts). Only
user-space instructions are counted (the kernel's share of a connect is not),
which is what the stdlib and dnscache differ in. Without valgrind (the Debian
package ``valgrind``) the column says so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import _machine
import _report
from bench_hit import quartiles

import dnscache

TIMEOUT = 5.0
WARMUP = 50
CALLGRIND_CALLS = (200, 1200)
DEFAULT_ROUNDS = 15
DEFAULT_CALLS = 200
TARGET = 1.15  # issue 12 item 3: within 15 % of the stdlib's instructions
HOSTS = {"one.test": ["127.0.0.1"], "two.test": ["127.0.0.1", "127.0.0.2"]}
CASES = {
    # key: (label, host, patched)
    "stdlib_literal": ("stdlib, IP literal 127.0.0.1", "127.0.0.1", False),
    "stdlib_localhost": ("stdlib, localhost (/etc/hosts lookup)", "localhost", False),
    "patched_literal": ("patched, IP literal 127.0.0.1", "127.0.0.1", True),
    "patched_one": ("patched, cached one-address name", "one.test", True),
    "patched_two": ("patched, cached two-address name, 1st answers", "two.test", True),
}
BASE = "stdlib_literal"
# The listener: accepts and closes whatever arrives, until its stdin closes.
LISTENER = """
import os, socket, sys, threading
srv = socket.create_server(("127.0.0.1", 0), backlog=4096)
print(srv.getsockname()[1], flush=True)
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
while True:
    conn, _ = srv.accept()
    conn.close()
"""


@contextmanager
def listener(cpu: int | None) -> Iterator[tuple[int, int]]:
    """(port, pid) of a child process accepting connections on 127.0.0.1."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LISTENER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(proc.pid, {cpu})
        yield port, proc.pid
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextmanager
def case_context(key: str) -> Iterator[None]:
    """The stdlib untouched, or dnscache patched with the names cached."""
    _label, _host, patched = CASES[key]
    if not patched:
        yield
        return
    with dnscache.patched(hosts=HOSTS):
        yield


def connect_call(key: str, port: int) -> Callable[[], None]:
    host = CASES[key][1]
    address = (host, port)

    def call() -> None:
        socket.create_connection(address, TIMEOUT).close()

    return call


def child(key: str, port: int, calls: int) -> None:
    """The process callgrind watches: warm up, then ``calls`` connects of one case."""
    with case_context(key):
        call = connect_call(key, port)
        for _ in range(WARMUP):
            call()
        for _ in range(calls):
            call()


def instructions(key: str, port: int) -> float | None:
    """User-space instructions per call of ``key`` under callgrind; None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("PYTHONDNSCACHE", None)  # the stdlib rows must really be the stdlib's
    counts = []
    for calls in CALLGRIND_CALLS:
        proc = subprocess.run(
            [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null",
             sys.executable, __file__, "--child", key, "--port", str(port),
             "--calls", str(calls)],
            capture_output=True, text=True, timeout=1800, env=env,
        )  # fmt: skip
        found = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or found is None:
            raise RuntimeError(f"callgrind run of {key} failed:\n{proc.stderr[-2000:]}")
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / (CALLGRIND_CALLS[1] - CALLGRIND_CALLS[0])


def time_rounds(port: int, rounds: int, calls: int, quiet: bool) -> dict[str, list[float]]:
    """Seconds per call, one figure per round, for every case."""
    keys = list(CASES)
    samples: dict[str, list[float]] = {key: [] for key in keys}
    for r in range(rounds):
        shift = r % len(keys)
        for key in keys[shift:] + keys[:shift]:
            with case_context(key):
                call = connect_call(key, port)
                for _ in range(5):
                    call()
                start = time.perf_counter()
                for _ in range(calls):
                    call()
                samples[key].append((time.perf_counter() - start) / calls)
        if not quiet:
            print(f"  round {r + 1}/{rounds} done", file=sys.stderr)
    return samples


def run(rounds: int, calls: int, callgrind: bool, quiet: bool) -> dict[str, Any]:
    machine = _machine.Machine()
    main_cpu, helper_cpu = _machine.choose_cpus()
    machine.pinned_cpu = _machine.pin(main_cpu)
    watch = _machine.Watch(machine)
    with ExitStack() as stack:
        port, pid = stack.enter_context(listener(helper_cpu))
        watch.add_pids([pid])
        watch.start()
        samples = time_rounds(port, rounds, calls, quiet)
        watch.stop()
        counts: dict[str, float | None] = {}
        for key in CASES:
            if not quiet:
                print(f"  callgrind: {key}", file=sys.stderr)
            counts[key] = instructions(key, port) if callgrind else None
    rows = []
    for key, (label, _host, _patched) in CASES.items():
        p25, med, p75 = quartiles(samples[key])
        count, base = counts[key], counts[BASE]
        rows.append(
            {
                "case": key,
                "label": label,
                "median_us": med * 1e6,
                "p25_us": p25 * 1e6,
                "p75_us": p75 * 1e6,
                "instructions": count,
                "instructions_ratio": None if count is None or not base else count / base,
            }
        )
    ratios = {}
    for key, (label, _host, _patched) in CASES.items():
        if key != BASE:
            pairs = zip(samples[key], samples[BASE], strict=True)
            p25, med, p75 = quartiles([x / y for x, y in pairs])
            ratios[f"{label} / stdlib literal"] = {"median": med, "p25": p25, "p75": p75}
    return {
        "benchmark": "bench_connect_cost",
        "machine": _machine.as_dict(machine),
        "settings": {
            "rounds": rounds,
            "calls_per_round": calls,
            "timeout_s": TIMEOUT,
            "listener_cpu": helper_cpu,
        },
        "valgrind": "ok" if callgrind and shutil.which("valgrind") else "missing",
        "rows": rows,
        "time_ratios": ratios,
    }


def render(result: dict[str, Any]) -> str:
    m = _machine.Machine(**result["machine"])
    s = result["settings"]
    width = 50
    out = [
        f"bench_connect_cost: {s['rounds']} rounds x {s['calls_per_round']} connects per case,"
        f" interleaved; create_connection((host, P), timeout={s['timeout_s']:g}) + close()",
        *_machine.describe(m),
        f"the listener (a child process accepting and closing) on CPU {s['listener_cpu']}",
        "",
        f"{'case':<{width}} {'median us':>10} {'p25-p75 us':>15} {'instr/call':>11}"
        f" {'x stdlib':>9}",
        "-" * (width + 50),
    ]
    for row in result["rows"]:
        count = row["instructions"]
        ratio = row["instructions_ratio"]
        out.append(
            f"{row['label']:<{width}} {row['median_us']:>10.1f}"
            f" {row['p25_us']:>7.1f}-{row['p75_us']:<7.1f}"
            f" {'n/a' if count is None else f'{count:,.0f}':>11}"
            f" {'' if ratio is None else f'{ratio:.2f}x':>9}"
        )
    out += ["", *_report.ratios(result["time_ratios"], width=width + 14, digits=2, spread=15)]
    if result["valgrind"] == "missing":
        out += ["", "valgrind is not installed: no instruction counts (apt-get install valgrind)"]
    else:
        worst = max(
            (r["instructions_ratio"] for r in result["rows"] if r["case"].startswith("patched")),
            default=None,
        )
        if worst is not None:
            verdict = "met" if worst <= TARGET else "NOT met"
            out += ["", f"target: patched rows within {TARGET:.2f}x the stdlib literal's"
                    f" instructions: {verdict} (worst {worst:.2f}x)"]  # fmt: skip
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--calls", type=int, default=DEFAULT_CALLS, help="connects per round")
    parser.add_argument("--no-callgrind", action="store_true", help="skip instruction counts")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--child", choices=list(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.port, args.calls)
        return 0
    if args.rounds < 1 or args.calls < 1:
        parser.error("need --rounds >= 1 and --calls >= 1")
    result = run(args.rounds, args.calls, not args.no_callgrind, quiet=args.json)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
