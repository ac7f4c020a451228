"""Every path a program pays for, next to what it would pay without dnscache or with a peer.

Issue 12, in one run: a cold miss on the system backend and on the dnspython
backend, a connect that needs one attempt, the memory a cached host holds, and
a hit. Each dnscache row stands beside its reference:

* **cold miss, system backend**: ``Resolver().getaddrinfo(name, 443, 0,
  SOCK_STREAM)`` for a name never seen, against the raw original
  (``socket.getaddrinfo``, the stdlib's, the same call). libc asks dnsmasq on
  127.0.0.1:53: the whole run happens inside a private network and mount
  namespace (``tests/netns.py``) whose resolv.conf names only that server,
  so glibc itself does the DNS, as in a real program. Every name holds two
  IPv4 addresses and one IPv6 (loopback ones: the harness insists).
* **cold miss, dnspython backend, A+AAAA**: the same call on
  ``Resolver(backend="dnspython", nameservers=("127.0.0.1",))``, against raw
  dnspython (``Resolver.resolve`` for A then AAAA, no cache).
* **connect, one attempt**: ``socket.create_connection(("127.0.0.1", P))``
  and a ``close()``, stdlib against patched (an IP literal, and a cached
  one-address name); P is a listener in a child process.
* **memory per cached host** (``tracemalloc``, after a ``gc.collect()``):
  what N hosts cost in ``Resolver`` against a dict memo holding the same
  results; then what a second (host, port) view of each costs.
* **hit**: ``f(name, 443)`` on a warm name, dnscache's ``Resolver.getaddrinfo``
  against a dict memo returning a copy (``bench_hit.make_dict_memo``) and the
  peers a user would pick instead: aiohttp's ``TCPConnector._resolve_host``
  (warm, awaited in a loop), cachetools ``@cached(TTLCache, lock=Lock())``
  around the original, and dnspython's ``override_system_resolver`` with an
  ``LRUCache``.

Method (as the other scripts): time comes from interleaved rounds, each case
making ``--calls`` calls per round in an order rotated every round; a figure is
the median over rounds of the mean per call, with p25-p75, and time ratios are
taken within a round. Instructions per call come from ``valgrind
--tool=callgrind``: a child process warms up, then makes N calls, for two N;
the difference of the totals over the difference of N is one call, start-up
and warm-up cancelling out (``PYTHONHASHSEED=0``; the child leaves with
``os._exit`` so tearing down what it cached is not counted). They are steady
on a loaded machine, where times are not. Without valgrind (Debian package
``valgrind``) the column says so.

Run it as root (for the namespace); it needs unshare, ip and dnsmasq
(Debian: util-linux, iproute2, dnsmasq-base).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

import _machine
import _paths_cases as cases
from bench_hit import quartiles

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
# Instructions: calls made by the two callgrind children of a case (warm-up first).
COUNTS = {"miss": (100, 300), "dns": (20, 80), "connect": (200, 1200), "hit": (2000, 12000)}
WARMUP = {"miss": 20, "dns": 5, "connect": 50, "hit": 200}
# Targets of issue 12 (reference = 1.0): (measure, bar, goal).
TARGETS = {
    "miss": ("instructions", 1.25, 1.10),
    "dns": ("time", 1.25, None),
    "connect": ("instructions", 1.15, None),
    "memory": ("bytes", 1.50, 1.25),
    "hit": ("instructions", 1.50, None),
}


def callgrind(key: str, port: int) -> float | None:
    """Instructions per call of case ``key``, from two callgrind children; None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    kind = cases.CASES[key].kind
    totals = []
    for n in COUNTS[kind]:
        proc = cases.run_child(
            [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             __file__, "--child", key, "--count", str(n), "--port", str(port)],
            timeout=3600,
        )  # fmt: skip
        totals.append(cases.collected(proc))
    low, high = COUNTS[kind]
    return (totals[1] - totals[0]) / (high - low)


def child(key: str, count: int, port: int) -> None:
    """The process callgrind watches: warm up, then ``count`` calls of one case."""
    case = cases.CASES[key]
    with case.context():
        run = case.make(cases.Env(port=port, names=cases.Names(offset=0)))
        run(WARMUP[case.kind])
        run(count)
        sys.stdout.flush()
        os._exit(0)


def inside(rounds: int, calls: int, with_callgrind: bool, quiet: bool) -> dict[str, Any]:
    """The whole measurement; runs inside the namespace (see the module docstring)."""
    import netns  # tests/netns.py, on the path inside run_in_netns

    machine = _machine.Machine()
    main_cpu, helper_cpu = _machine.choose_cpus()
    dnsmasq = netns.start_dnsmasq(cases.records(), ttl=3600)
    with dnsmasq, cases.listener(helper_cpu) as (port, listener_pid):
        machine.helper_cpu = helper_cpu
        machine.pinned_cpu = _machine.pin(main_cpu)
        watch = _machine.Watch(machine)
        watch.add_pids([listener_pid])
        watch.start()
        samples = cases.time_rounds(port, rounds, calls, quiet)
        memory = cases.memory()
        watch.stop()
        counts: dict[str, float | None] = {}
        for key in cases.CASES:
            if not quiet:
                print(f"  callgrind: {key}", file=sys.stderr)
            counts[key] = callgrind(key, port) if with_callgrind else None
    rows = []
    for key, case in cases.CASES.items():
        p25, med, p75 = quartiles(samples[key])
        ratio = None
        if case.ref is not None:
            pairs = zip(samples[key], samples[case.ref], strict=True)
            ratio = quartiles([x / y for x, y in pairs])[1]
        rows.append(
            {
                "key": key,
                "path": case.kind,
                "label": case.label,
                "ref": case.ref,
                "median_us": med * 1e6,
                "p25_us": p25 * 1e6,
                "p75_us": p75 * 1e6,
                "time_ratio": ratio,
                "instructions": counts[key],
            }
        )
    return {
        "benchmark": "bench_paths",
        "machine": _machine.as_dict(machine),
        "settings": {"rounds": rounds, "calls": calls, "dns": "dnsmasq on 127.0.0.1:53"},
        "valgrind": "missing" if shutil.which("valgrind") is None else "ok",
        "rows": rows,
        "memory": memory,
    }


def verdicts(result: dict[str, Any]) -> list[str]:
    """One line per issue-12 bar: the figure, the bar, met or not."""
    rows = {r["key"]: r for r in result["rows"]}
    out = []
    for path, (measure, bar, goal) in TARGETS.items():
        if path == "memory":
            value = result["memory"]["per_host_ratio"]
            what = "bytes per host / dict memo"
        else:
            ours = [r for r in rows.values() if r["path"] == path and r["key"].startswith("ours")]
            values = []
            for row in ours:
                ref = rows[row["ref"]]
                if measure == "time":
                    values.append(row["time_ratio"])
                elif row["instructions"] is not None and ref["instructions"]:
                    values.append(row["instructions"] / ref["instructions"])
            if not values:
                out.append(f"{path}: no {measure} figure (valgrind missing?)")
                continue
            value = max(values)
            what = f"worst dnscache row / its reference, in {measure}"
        met = "MET" if value <= bar else "NOT met"
        extra = (
            "" if goal is None else f", goal {goal:.2f}x: {'met' if value <= goal else 'not met'}"
        )
        out.append(f"{path}: {what} = {value:.2f}x (bar {bar:.2f}x: {met}{extra})")
    return out


def render(result: dict[str, Any]) -> str:
    m = _machine.Machine(**result["machine"])
    s = result["settings"]
    out = [
        f"bench_paths: {s['rounds']} interleaved rounds, {s['dns']} inside a private network"
        " namespace; medians of per-round means, instructions per call from callgrind",
        *_machine.describe(m),
        "",
        "| path | case | median µs | p25-p75 µs | instructions/call | x reference (time) |"
        " x reference (instructions) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    rows = {r["key"]: r for r in result["rows"]}
    for row in result["rows"]:
        ref = rows.get(row["ref"]) if row["ref"] else None
        count = row["instructions"]
        time_ratio = "" if row["time_ratio"] is None else f"{row['time_ratio']:.2f}x"
        instr_ratio = ""
        if ref is not None and count is not None and ref["instructions"]:
            instr_ratio = f"{count / ref['instructions']:.2f}x"
        out.append(
            f"| {cases.PATHS[row['path']]} | {row['label']} | {row['median_us']:,.2f} |"
            f" {row['p25_us']:,.2f}-{row['p75_us']:,.2f} |"
            f" {'n/a' if count is None else f'{count:,.0f}'} |"
            f" {time_ratio} | {instr_ratio} |"
        )
    mem = result["memory"]
    out.append(
        f"| {cases.PATHS['memory']} | dnscache, per host / per extra (host, port) view |"
        f" | | {mem['ours_per_host']:,.0f} B / {mem['ours_per_view']:,.0f} B | |"
        f" {mem['per_host_ratio']:.2f}x / {mem['per_view_ratio']:.2f}x |"
    )
    out.append(
        f"| {cases.PATHS['memory']} | dict memo of the same results, per host / per view |"
        f" | | {mem['memo_per_host']:,.0f} B / {mem['memo_per_view']:,.0f} B | | |"
    )
    out += ["", *verdicts(result)]
    if result["valgrind"] == "missing":
        out.append("valgrind is not installed: no instruction counts (apt-get install valgrind)")
    return "\n".join(out)


def outside(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`inside` in a fresh namespace (tests/netns.py) and return its result."""
    sys.path.insert(0, str(TESTS))
    import netns

    problem = netns.e2e_requirements()
    if problem is not None:
        raise SystemExit(f"bench_paths needs a private network namespace: {problem}")
    script = textwrap.dedent(
        f"""\
        import json, sys
        sys.path.insert(0, {str(HERE)!r})
        import bench_paths
        print(json.dumps(bench_paths.inside({args.rounds}, {args.calls},
                                            {not args.no_callgrind}, {args.json})))
        """
    )
    return netns.run_in_netns(script, timeout=4 * 3600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=100, help="calls per case per round")
    parser.add_argument("--quick", action="store_true", help="5 rounds x 40 calls")
    parser.add_argument("--no-callgrind", action="store_true", help="skip instruction counts")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--child", choices=list(cases.CASES), help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.count, args.port)
        return 0
    if args.quick:
        args.rounds, args.calls = 5, 40
    if args.rounds < 2 or args.calls < 1:
        parser.error("need --rounds >= 2 and --calls >= 1")
    result = outside(args)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
