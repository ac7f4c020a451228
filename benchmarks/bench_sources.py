"""What a dnspython-backend miss costs: next to raw dnspython, and over UDP, TLS and HTTPS.

Two questions (issue 12 item 2, issue 15 item 2):

1. **dnscache's dnspython backend against raw dnspython**, for an A+AAAA miss: the
   reference is what a program would write with dnspython alone (``Resolver.resolve``
   for A then AAAA, no cache); the backend sends both queries at once on one socket
   (``DnspythonBackend.resolve(host, AF_UNSPEC)``); the last row is a whole miss
   through ``Resolver.getaddrinfo`` (``invalidate()`` then the call), engine included.
   The server is the embedded DNSServer in a child process pinned to the other CPU.
   Target: the backend within 1.25x of raw dnspython (median of per-round ratios).
2. **Per-miss cost of the encrypted transports** against plain UDP, with Debian's
   unbound on loopback (``tests/unbound.py``, private CA): UDP, DoT and DoH with the
   backend's kept connections, and, for reference, DoT with a new connection per query
   (what dnspython's ``dns.query.tls`` does without a ``sock``): the handshake the kept
   connection saves. Skipped, with a note, when unbound is not installed.

Method (as the other scripts): interleaved rounds, each case runs ``--calls`` lookups per
round in a rotated order; figures are medians over rounds of the per-call time, ratios are
taken within a round. ``--instructions`` adds instructions per call for part 1 from
``valgrind --tool=callgrind`` (two runs per case, 20 and 120 calls, difference / 100),
which is steady on a loaded machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _machine
import _report
from _dnsproc import ServerProcess

import dnscache
from dnscache._sources.dnspython import DnspythonBackend
from dnscache._sources.originals import get_original
from dnscache._sources.system import SystemBackend

TESTS = Path(__file__).resolve().parent.parent / "tests"
NAME = "svc.test"
TARGET = 1.25


def _raw(ip: str, port: int) -> Callable[[], Any]:
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [ip]
    resolver.port = port
    resolver.cache = None

    def lookup() -> Any:
        a = resolver.resolve(NAME + ".", "A", raise_on_no_answer=False)
        aaaa = resolver.resolve(NAME + ".", "AAAA", raise_on_no_answer=False)
        return a, aaaa

    return lookup


def _backend(*nameservers: str, **kw: Any) -> DnspythonBackend:
    fallback = SystemBackend(get_original("getaddrinfo"))
    return DnspythonBackend(fallback, lambda: frozenset(), nameservers, **kw)


def _resolver_miss(nameserver: str) -> tuple[Callable[[], Any], dnscache.Resolver]:
    resolver = dnscache.Resolver(backend="dnspython", nameservers=(nameserver,), refresh=False)

    def lookup() -> Any:
        resolver.invalidate()
        return resolver.getaddrinfo(NAME, 443, 0, socket.SOCK_STREAM)

    return lookup, resolver


def measure(cases: dict[str, Callable[[], Any]], rounds: int, calls: int) -> dict[str, list[float]]:
    """Per-call microseconds for each case, one figure per round, order rotated per round."""
    keys = list(cases)
    for fn in cases.values():
        fn()  # warm: imports, RFC 6724 prefixes, kept connections
    out: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        order = keys[r % len(keys) :] + keys[: r % len(keys)]
        for key in order:
            fn = cases[key]
            started = time.perf_counter()
            for _ in range(calls):
                fn()
            out[key].append((time.perf_counter() - started) / calls * 1e6)
    return out


def summarize(
    samples: dict[str, list[float]], labels: dict[str, str], base: str
) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]]]:
    rows = []
    for key, values in samples.items():
        q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
        rows.append({"label": labels[key], "median_us": q2, "p25_us": q1, "p75_us": q3, "key": key})
    ratios = {}
    for key, values in samples.items():
        if key == base:
            continue
        per_round = [v / b for v, b in zip(values, samples[base], strict=True)]
        q1, q2, q3 = statistics.quantiles(per_round, n=4, method="inclusive")
        ratios[f"{labels[key]} / {labels[base]}"] = {"median": q2, "p25": q1, "p75": q3}
    return rows, ratios


def instructions(case: str, nameserver: str) -> float | None:
    """Instructions per call of ``case`` under callgrind, or None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    counts = []
    for calls in (20, 120):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "cg.out"
            subprocess.run(
                [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}",
                 sys.executable, __file__,
                 "--one", case, "--nameserver", nameserver, "--calls", str(calls)],
                check=True, capture_output=True, timeout=900,
            )  # fmt: skip
            totals = [line for line in out.read_text().splitlines() if line.startswith("summary:")]
            counts.append(int(totals[0].split()[1]))
    return (counts[1] - counts[0]) / 100


def _callgrind_window(fn: Callable[[], Any], calls: int) -> None:
    for _ in range(calls):
        fn()


def one(case: str, nameserver: str, calls: int) -> None:
    """Run one case ``calls`` times (the child of ``instructions``)."""
    ip, port = nameserver.rsplit(":", 1)
    if case == "raw":
        fn = _raw(ip, int(port))
    elif case == "backend":
        backend = _backend(nameserver)
        fn = lambda: backend.resolve(NAME.encode(), 0, 0)  # noqa: E731
    else:
        fn, _ = _resolver_miss(nameserver)
    fn()
    _callgrind_window(fn, calls)


def part_one(args: argparse.Namespace) -> dict[str, Any]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server = ServerProcess(cpu=cpus[0] if len(cpus) > 1 else None)
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[-1]})
    try:
        server._ask("set", NAME, ["127.0.0.1", "127.0.0.2"], 60)
        ip, port = server.nameserver.rsplit(":", 1)
        backend = _backend(server.nameserver)
        miss, resolver = _resolver_miss(server.nameserver)
        cases = {
            "raw": _raw(ip, int(port)),
            "backend": lambda: backend.resolve(NAME.encode(), 0, 0),
            "miss": miss,
        }
        labels = {
            "raw": "raw dnspython, A then AAAA",
            "backend": "dnscache backend, A+AAAA",
            "miss": "Resolver miss (engine + backend)",
        }
        samples = measure(cases, args.rounds, args.calls)
        backend.close()
        resolver.close()
        counts = {k: instructions(k, server.nameserver) for k in cases} if args.instructions else {}
    finally:
        server.stop()
    rows, ratios = summarize(samples, labels, "raw")
    for row in rows:
        row["calls"] = args.calls
        got = counts.get(row["key"])
        row["instructions"] = f"{got:,.0f}" if got is not None else "-"
    return {"rows": rows, "ratios": ratios}


def part_two(args: argparse.Namespace) -> dict[str, Any] | str:
    sys.path.insert(0, str(TESTS))
    import unbound  # tests/unbound.py

    problem = unbound.missing()
    if problem is not None:
        return f"skipped: {problem}"
    ports = [unbound.free_port() for _ in range(3)]
    https = ports[2] if unbound.has_doh() else None
    with unbound.Unbound(
        {NAME: ["127.0.0.1", "::1"]}, port=ports[0], tls_port=ports[1], https_port=https
    ) as srv:
        ca = str(srv.certs["ca"])
        backends = {
            "udp": _backend(srv.nameserver),
            "tls": _backend(srv.tls_nameserver, ca_bundle=ca),
        }
        if https is not None:
            backends["https"] = _backend(srv.https_nameserver, ca_bundle=ca)
        cases: dict[str, Callable[[], Any]] = {
            k: (lambda b=b: b.resolve(NAME.encode(), 0, 0)) for k, b in backends.items()
        }
        cases["tls_new"] = _dot_per_query(ports[1], ca)
        labels = {
            "udp": "UDP (Do53)",
            "tls": "DoT, kept connection",
            "https": "DoH (HTTP/2), kept connection",
            "tls_new": "dns.query.tls (new connection per query)",
        }
        samples = measure(cases, args.rounds, args.calls)
        for backend in backends.values():
            backend.close()
    rows, ratios = summarize(samples, labels, "udp")
    for row in rows:
        row["calls"] = args.calls
    return {"rows": rows, "ratios": ratios}


def _dot_per_query(port: int, ca: str) -> Callable[[], Any]:
    import dns.message
    import dns.query

    def lookup() -> Any:
        out = []
        for rdtype in ("A", "AAAA"):
            query = dns.message.make_query(NAME + ".", rdtype)
            out.append(
                dns.query.tls(
                    query, "127.0.0.1", port=port, server_hostname="dns.test", verify=ca,
                    timeout=5,
                )
            )  # fmt: skip
        return out

    return lookup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="3 rounds x 30 calls")
    parser.add_argument("--instructions", action="store_true", help="callgrind (slow)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--nameserver", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one, args.nameserver, args.calls)
        return
    if args.quick:
        args.rounds, args.calls = 3, 30
    machine = _machine.Machine()
    watch = _machine.Watch(machine)
    watch.start()
    result: dict[str, Any] = {"miss": part_one(args), "transports": part_two(args)}
    machine = watch.stop()
    result["machine"] = _machine.as_dict(machine)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
        return
    print("\n".join(_machine.describe(machine)))
    for title, part in (("A+AAAA miss", result["miss"]), ("per miss, by transport",
                                                          result["transports"])):  # fmt: skip
        print(f"\n== {title} ==")
        if isinstance(part, str):
            print(part)
            continue
        last = ("instr/call", "instructions", 12) if title.startswith("A+") else None
        print("\n".join(_report.cases(part["rows"], unit="us", width=36, digits=0, spread=13,
                                      last=last or ("calls/round", "calls", 12))))  # fmt: skip
        print()
        print("\n".join(_report.ratios(part["ratios"], width=70, digits=2, spread=11)))
    print(f"\ntarget: dnscache backend / raw dnspython <= {TARGET}x")


if __name__ == "__main__":
    main()
