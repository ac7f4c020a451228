"""A fleet in front of one shared resolver: what PYTHONDNSCACHE=1 changes (issue 15 item 4).

The question a fleet operator asks: N processes on a host share one caching resolver
(unbound, CoreDNS, NodeLocal DNSCache); with ``PYTHONDNSCACHE=1`` set on all of them, how
many queries still reach the resolver, and how long do the programs' lookups take?

Setup, all inside one private network, mount and PID namespace (``tests/netns.py``: only
``lo``, ``/etc/resolv.conf`` naming 127.0.0.1, ``hosts: files dns``), so glibc itself asks:

* Debian's unbound (``tests/unbound.py``) on 127.0.0.1:53 (and :853, DNS over TLS, with
  ``--dot``), serving ``--names`` names (6) from ``local-data`` with a record TTL of
  ``--ttl`` seconds (2); half of them have an A and an AAAA record, half only an A.
  unbound's own counters (``unbound-control stats_noreset``, ``total.num.queries``) are
  the witness of what arrives upstream: nothing the clients say about themselves is.
* N unmodified client processes (``--procs``: 1, 4 and 16), each a paced loop of
  ``socket.getaddrinfo(name, 443, 0, SOCK_STREAM)`` (the call ``http.client`` and
  urllib3 make) at ``--rate`` lookups per second (40), round-robin over the names, each
  process starting at a different name. Only the call is timed.
* A run starts the N processes with one environment (a case below); each looks every
  name up once and says it is ready; when all are, the parent says "go", the processes
  run their loop for a warm-up of two passes over the names (at least 1 s: whatever
  expired while the slowest process started is asked again) and then ``--window``
  measured seconds. unbound's counters are read at the start and after the end of the
  measured window.

Cases (the environment is the only difference; the program is the same):

* ``none``: no ``PYTHONDNSCACHE``: every lookup is glibc's A and AAAA query to unbound.
* ``memo``: the floor, not a product: the client wraps the original ``getaddrinfo`` in
  a dict (no TTL, never asks again). In a loop that sleeps between calls even a dict
  lookup costs tens of microseconds (caches gone cold, the CPU idle), so a hit is to
  be compared with this row, not with ``bench_hit.py``'s hot loop.
* ``system``: ``PYTHONDNSCACHE=1``, the default system backend (glibc), with
  ``PYTHONDNSCACHE_TTL`` set to the records' TTL (glibc reports none; in production the
  fixed ``ttl`` is 60 s), so that its refresh rhythm compares with the next cases.
* ``system-dns``: ``PYTHONDNSCACHE=1`` with ``PYTHONDNSCACHE_TTL_SOURCE=dns``: glibc's
  answers, the records' TTL learned by one more DNS query per family per answer.
* ``dnspython``: ``PYTHONDNSCACHE=1`` with ``PYTHONDNSCACHE_BACKEND=dnspython`` and
  resolv.conf's nameserver (unbound): real record TTLs.
* ``dot`` (with ``--dot``): the dnspython backend over DNS over TLS to unbound's port
  853 (``tls://127.0.0.1:853#dns.test``, the test CA as ``PYTHONDNSCACHE_TLS_CA_BUNDLE``);
  the check line says whether every query arrived over TLS.

Reported for each N and case: upstream queries per second (unbound's counter over the
measured window) against the figure the design predicts (printed with its reasoning),
the lookups per second the clients made, the client-side p50, p99 and max lookup latency
(every call of the window, all processes pooled), failed or wrong answers (must be 0),
and dnscache's own misses and stale answers in the window (0: every lookup a hit).
Figures are medians over ``--rounds`` rounds; each round runs every (N, case) once, in an
order rotated from round to round, in a fresh namespace with a fresh unbound, and the
ratios with/without dnscache are taken within a round. The machine's load is printed
(``_machine.py``; the clients and unbound count as ours).

Then, with ``--outage`` seconds (3 in the full run), once per case in the last round:
``--outage-procs`` (4) processes, and one second into their window unbound is stopped
and started again ``--outage`` seconds later (a resolver restart). Reported: lookups,
failed lookups, latency, and the answers dnscache served stale (RFC 8767).

Reading the upstream figure: with the cache, each process asks each name once per
refresh (A and AAAA), and a refresh starts at the first hit past ``refresh_at`` (0.5)
of the TTL, whatever the lookup rate; without it, every lookup is two queries. So the
cached rate scales as 1/TTL: the short default TTL lets a few seconds show the steady
refresh rhythm, and a record TTL of 60 s gives 30 times fewer queries with the cache
and the same number without it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import _machine

BENCH_DIR = Path(__file__).resolve().parent
TESTS_DIR = BENCH_DIR.parent / "tests"
PORT = 443
TLS_PORT = 853

FULL = {"rounds": 5, "window": 4.0, "procs": "1,4,16", "outage": 3.0}  # ~10 min here
QUICK = {"rounds": 3, "window": 2.0, "procs": "1,16", "outage": 0.0}  # ~3 min
CASES = ("none", "memo", "system", "system-dns", "dnspython")
UNCACHED = ("none", "memo")  # the cases without dnscache
LABELS = {
    "none": "no dnscache",
    "memo": "reference: dict memo in the client",
    "system": "dnscache, system backend (fixed ttl=TTL)",
    "system-dns": "dnscache, system, ttl_source=dns",
    "dnspython": "dnscache, dnspython backend",
    "dot": "dnscache, dnspython over TLS",
}
# Seconds allowed for 16 interpreters with dnscache to start (3 s measured here at a load
# average of 3, so 20x of margin for a busier machine): part of a round's time limit.
READY_TIMEOUT = 60.0


# --------------------------------------------------------------------------------------------
# The client: one process of the fleet (``--child``). It imports nothing of dnscache itself:
# with PYTHONDNSCACHE=1 the .pth hook installs it inside the first ``import socket``.
# --------------------------------------------------------------------------------------------


def child(spec: Mapping[str, Any]) -> None:
    import socket

    names: list[str] = spec["names"]
    expected: dict[str, list[str]] = spec["expected"]
    stream = socket.SOCK_STREAM
    getaddrinfo = _dict_memo(socket.getaddrinfo) if spec["memo"] else socket.getaddrinfo

    def addresses(name: str) -> list[str]:
        return sorted({str(info[4][0]) for info in getaddrinfo(name, PORT, 0, stream)})

    for name in names:  # loads the NSS modules, opens the DoT connection, first misses
        addresses(name)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    resolver = _active_resolver()
    rate, warm, window = spec["rate"], spec["warm"], spec["window"]
    interval = 1.0 / rate
    perf, monotonic, sleep = time.perf_counter_ns, time.monotonic, time.sleep
    begin = monotonic()
    measure_from, end = begin + warm, begin + warm + window
    before = None
    latency: list[int] = []
    lookups = errors = wrong = 0
    failures: dict[str, int] = {}  # errno name -> count
    i = int(spec["offset"])
    step = 0
    while True:
        due = begin + step * interval
        if due >= end:
            break
        ahead = due - monotonic()
        if ahead > 0:
            sleep(ahead)
        measured = due >= measure_from
        if measured and before is None:
            before = _counts(resolver)
        name = names[i % len(names)]
        i += 1
        step += 1
        t0 = perf()
        failure = None
        try:
            got = addresses(name)
        except OSError as exc:
            got, failure = None, _errno_name(exc)
        t1 = perf()
        if not measured:
            continue
        lookups += 1
        latency.append(t1 - t0)
        if failure is not None:
            errors += 1
            failures[failure] = failures.get(failure, 0) + 1
        elif got != expected[name]:
            wrong += 1
    after = _counts(resolver)
    delta = {k: after[k] - before[k] for k in after} if before is not None else {}
    report = {
        "installed": resolver is not None,
        "lookups": lookups,
        "errors": errors,
        "failures": failures,
        "wrong": wrong,
        "latency_ns": latency,
        "dnscache": delta,
    }
    print(json.dumps(report), flush=True)


def _errno_name(exc: OSError) -> str:
    """``EAI_AGAIN`` for a gaierror(-3), ``ECONNREFUSED`` for an OSError(111), ..."""
    import errno
    import socket

    if isinstance(exc, socket.gaierror):
        names = [n for n in dir(socket) if n.startswith("EAI_") and getattr(socket, n) == exc.errno]
        return names[0] if names else f"gaierror({exc.errno})"
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


def _dict_memo(original: Any) -> Any:
    """The floor: what the least possible cache costs in this paced loop (no TTL, no lock)."""
    memo: dict[tuple[Any, ...], list[Any]] = {}

    def getaddrinfo(*args: Any) -> list[Any]:
        try:
            return list(memo[args])
        except KeyError:
            memo[args] = result = original(*args)
            return list(result)

    return getaddrinfo


def _active_resolver() -> Any:
    dnscache = sys.modules.get("dnscache")
    if dnscache is None or not dnscache.is_installed():
        return None
    return dnscache.active_resolver()


def _counts(resolver: Any) -> dict[str, int]:
    if resolver is None:
        return {}
    stats = resolver.stats()
    return {k: getattr(stats, k) for k in ("hits", "misses", "stale_hits", "refreshes")}


# --------------------------------------------------------------------------------------------
# Inside the namespace (``run_in_netns`` runs ``inside(spec)``): unbound and the runs of one
# round.
# --------------------------------------------------------------------------------------------


def records(count: int) -> dict[str, list[str]]:
    """``count`` names: even ones dual-stack (A and AAAA), odd ones IPv4 only."""
    out = {}
    for i in range(count):
        v4 = f"127.0.{1 + i // 250}.{1 + i % 250}"
        out[f"svc{i}.fleet.test"] = [v4, "::1"] if i % 2 == 0 else [v4]
    return out


def case_env(case: str, ttl: int, ca: str) -> dict[str, str]:
    """The environment that makes the difference between the cases."""
    on = {"PYTHONDNSCACHE": "1"}
    envs = {
        "none": {},
        "memo": {},
        "system": on | {"PYTHONDNSCACHE_TTL": str(ttl)},
        "system-dns": on | {"PYTHONDNSCACHE_TTL_SOURCE": "dns"},
        "dnspython": on | {"PYTHONDNSCACHE_BACKEND": "dnspython"},
        "dot": on
        | {
            "PYTHONDNSCACHE_BACKEND": "dnspython",
            "PYTHONDNSCACHE_NAMESERVERS": f"tls://127.0.0.1:{TLS_PORT}#dns.test",
            "PYTHONDNSCACHE_TLS_CA_BUNDLE": ca,
        },
    }
    return envs[case]


def _line(proc: subprocess.Popen[str], err: Path) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        raise RuntimeError(
            f"client exited with {proc.returncode}:\n{err.read_text(errors='replace')[-3000:]}"
        )
    return line


def run_fleet(
    server: Any,
    case: str,
    n: int,
    spec: Mapping[str, Any],
    *,
    window: float,
    outage: float = 0.0,
) -> dict[str, Any]:
    """Start ``n`` clients with ``case``'s environment; unbound's counters around the window.

    With ``outage``, unbound is stopped one second into the window and started again
    ``outage`` seconds later (a new process: its counters start again, so none are read).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")}
    env.update(case_env(case, spec["ttl"], str(server.certs["ca"])))
    logs = Path(tempfile.mkdtemp(prefix=f"fleet-{case}-{n}-"))
    child_spec = {
        "names": list(spec["records"]),
        "expected": {name: sorted(ips) for name, ips in spec["records"].items()},
        "rate": spec["rate"],
        "warm": spec["warm"],
        "window": window,
        "memo": case == "memo",
    }
    procs: list[tuple[subprocess.Popen[str], Path, IO[str]]] = []
    before: Mapping[str, float] = {}
    after: Mapping[str, float] = {}
    try:
        for i in range(n):
            err_path = logs / f"client{i}.stderr"
            err = err_path.open("w")
            procs.append((_client(child_spec | {"offset": i}, env, err), err_path, err))
        for proc, err_path, _ in procs:
            if _line(proc, err_path).strip() != "ready":
                raise RuntimeError(f"client did not get ready: {err_path.read_text()[-3000:]}")
        go = time.monotonic()
        for proc, _, _ in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        time.sleep(max(0.0, go + spec["warm"] - time.monotonic()))
        if outage:
            time.sleep(1.0)
            server.stop()
            time.sleep(outage)
            server.start()
        else:
            before = server.stats()
        reports = [json.loads(_line(proc, err_path)) for proc, err_path, _ in procs]
        if not outage:
            after = server.stats()
        for proc, _, _ in procs:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=30)
    finally:
        for proc, _, stream in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            stream.close()
    return summarize_run(case, n, window, before, after, reports)


def _client(spec: Mapping[str, Any], env: Mapping[str, str], err: IO[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
    )


def summarize_run(
    case: str,
    n: int,
    window: float,
    before: Mapping[str, float],
    after: Mapping[str, float],
    reports: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    def delta(key: str) -> int:
        return int(after.get(key, 0) - before.get(key, 0))

    latency = sorted(ns for r in reports for ns in r["latency_ns"])
    failures: dict[str, int] = {}
    for r in reports:
        for kind, count in r["failures"].items():
            failures[kind] = failures.get(kind, 0) + count
    cache: dict[str, int] = {}
    for r in reports:
        for key, value in r["dnscache"].items():
            cache[key] = cache.get(key, 0) + value
    return {
        "case": case,
        "procs": n,
        "installed": sum(bool(r["installed"]) for r in reports),
        "queries": delta("total.num.queries"),
        "queries_tls": delta("num.query.tls"),
        "window": window,
        "lookups": sum(r["lookups"] for r in reports),
        "qps": delta("total.num.queries") / window,
        "lookups_per_s": sum(r["lookups"] for r in reports) / window,
        "errors": sum(r["errors"] for r in reports),
        "failures": failures,
        "wrong": sum(r["wrong"] for r in reports),
        "p50_us": percentile(latency, 50) / 1e3,
        "p99_us": percentile(latency, 99) / 1e3,
        "max_us": (latency[-1] if latency else 0) / 1e3,
        "dnscache": cache,
    }


def percentile(sorted_values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile (q in 0..100) of an ascending sequence (0 if empty)."""
    if not sorted_values:
        return 0
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


def inside(spec: Mapping[str, Any]) -> None:
    """One round in a fresh unbound: every (N, case) of ``spec["order"]``, then the outage
    runs of ``spec["outage_cases"]``; prints the JSON of every run."""
    import unbound  # tests/unbound.py: run_in_netns puts the tests directory on sys.path

    with unbound.Unbound(
        spec["records"],
        ttl=spec["ttl"],
        port=53,
        tls_port=TLS_PORT if "dot" in spec["cases"] else None,
    ) as server:
        runs = [run_fleet(server, c, n, spec, window=spec["window"]) for n, c in spec["order"]]
        outages = [
            run_fleet(
                server,
                case,
                spec["outage_procs"],
                spec,
                window=spec["outage"] + 2 * spec["ttl"] + 2,
                outage=spec["outage"],
            )
            for case in spec["outage_cases"]
        ]
    print(json.dumps({"runs": runs, "outages": outages}))


# --------------------------------------------------------------------------------------------
# The host side: rounds, medians, ratios, the table.
# --------------------------------------------------------------------------------------------


def round_order(procs: Sequence[int], cases: Sequence[str], r: int) -> list[tuple[int, str]]:
    """Every (N, case) once: N ascending, cases rotated by the round number."""
    k = r % len(cases)
    rotated = [*cases[k:], *cases[:k]]
    return [(n, case) for n in procs for case in rotated]


def expected_qps(case: str, n: int, spec: Mapping[str, Any]) -> tuple[float, str]:
    """Upstream queries per second the design predicts for ``case`` with ``n`` processes."""
    from soak_refresh import expected_rate

    count, rate, ttl = len(spec["records"]), spec["rate"], spec["ttl"]
    families = sum(len({":" in ip for ip in ips}) for ips in spec["records"].values())
    if case == "none":
        return n * rate * 2, f"{n} x {rate:g} lookups/s x 2 queries (A, AAAA)"
    if case == "memo":
        return 0.0, "its answers never expire"
    per_name, _ = expected_rate(count, rate, ttl, "roundrobin")
    queries = count * 2  # every refresh asks A and AAAA (the call is AF_UNSPEC)
    why = f"{n} x {count} names x {{q}} queries per refresh x {per_name:.3f} refreshes/s"
    if case == "system-dns":
        queries += families  # the learner asks only the families libc returned
        why = why.replace("{q}", f"(2 + {families}/{count} learning)")
    else:
        why = why.replace("{q}", "2")
    return n * queries * per_name, why


def summarize(
    runs: Sequence[Mapping[str, Any]], procs: Sequence[int], cases: Sequence[str]
) -> dict[str, Any]:
    from bench_hit import quartiles

    table: dict[str, Any] = {}
    for n in procs:
        by_case = {c: [r for r in runs if r["procs"] == n and r["case"] == c] for c in cases}
        rows = []
        for case, got in by_case.items():
            row: dict[str, Any] = {"case": case, "label": LABELS[case]}
            for key in ("qps", "lookups_per_s", "p50_us", "p99_us", "max_us"):
                p25, med, p75 = quartiles([r[key] for r in got])
                row[key] = med
                row[f"{key}_p25"], row[f"{key}_p75"] = p25, p75
            for key in ("errors", "wrong"):
                row[key] = sum(r[key] for r in got)
            row["installed"] = min(r["installed"] for r in got)
            row["queries_tls"] = sum(r["queries_tls"] for r in got)
            row["queries"] = sum(r["queries"] for r in got)
            row["dnscache"] = {
                k: sum(r["dnscache"].get(k, 0) for r in got)
                for k in ("hits", "misses", "stale_hits", "refreshes")
            }
            rows.append(row)
        ratios: dict[str, dict[str, dict[str, float]]] = {}
        base = by_case.get("none")
        if base:
            for case, got in by_case.items():
                if case == "none":
                    continue
                ratios[case] = {}
                for key in ("qps", "p50_us", "p99_us", "max_us"):
                    per_round = [c[key] / b[key] for c, b in zip(got, base, strict=True) if b[key]]
                    if per_round:
                        p25, med, p75 = quartiles(per_round)
                        ratios[case][key] = {"median": med, "p25": p25, "p75": p75}
        table[str(n)] = {"rows": rows, "ratios": ratios}
    return table


def render(result: Mapping[str, Any]) -> list[str]:
    spec = result["spec"]
    count = len(spec["records"])
    dual = sum(1 for ips in spec["records"].values() if len(ips) > 1)
    lines = [
        f"fleet: N processes, each {spec['rate']:g} getaddrinfo/s round-robin over {count} names"
        f" ({dual} with A+AAAA, {count - dual} A only), record TTL {spec['ttl']} s;",
        f"measured {spec['window']:g} s after {spec['warm']:g} s of warm-up;"
        f" {spec['rounds']} interleaved rounds; upstream = unbound's total.num.queries",
        *_machine.describe(result["machine"]),
    ]
    head = (
        f"{'case':<42} {'upstream q/s':>12} {'p25-p75':>13} {'lookups/s':>9}"
        f" {'p50 us':>8} {'p99 us':>8} {'max us':>8} {'err':>4} {'miss':>5} {'stale':>5}"
    )
    for n, part in result["table"].items():
        lines += ["", f"== {n} process{'es' if n != '1' else ''} ==", head, "-" * len(head)]
        for row in part["rows"]:
            spread = f"{row['qps_p25']:.1f}-{row['qps_p75']:.1f}"
            cache = row["dnscache"]
            miss = "-" if row["case"] in UNCACHED else str(cache["misses"])
            stale = "-" if row["case"] in UNCACHED else str(cache["stale_hits"])
            lines.append(
                f"{row['label'].replace('TTL', str(spec['ttl']) + ' s'):<42}"
                f" {row['qps']:>12.1f} {spread:>13} {row['lookups_per_s']:>9.1f}"
                f" {row['p50_us']:>8.1f} {row['p99_us']:>8.1f} {row['max_us']:>8.0f}"
                f" {row['errors'] + row['wrong']:>4} {miss:>5} {stale:>5}"
            )
        lines.append("")
        lines.append(f"{'ratio with/without (per round)':<42} {'upstream':>9} {'p50':>7}"
                     f" {'p99':>7} {'max':>7}")  # fmt: skip
        for case, r in part["ratios"].items():
            cells = " ".join(
                f"{r[key]['median']:>{w}.3f}x" if key in r else f"{'-':>{w + 1}}"
                for key, w in (("qps", 8), ("p50_us", 6), ("p99_us", 6), ("max_us", 6))
            )
            lines.append(f"{LABELS[case].replace('TTL', str(spec['ttl']) + ' s'):<42} {cells}")
        lines.append("expected upstream q/s:")
        for row in part["rows"]:
            qps, why = expected_qps(row["case"], int(n), spec)
            lines.append(f"  {row['case']:<11} {qps:8.1f}  = {why}")
    if result["outages"]:
        lines += ["", *render_outages(result)]
    lines += ["", *checks(result)]
    return lines


def render_outages(result: Mapping[str, Any]) -> list[str]:
    spec = result["spec"]
    runs = result["outages"]
    head = (
        f"{'case':<42} {'lookups':>8} {'failed':>7} {'p50 us':>8} {'p99 us':>8} {'max us':>8}"
        f" {'stale answers':>13}  failures"
    )
    lines = [
        f"== unbound stopped for {spec['outage']:g} s and started again, 1 s into a"
        f" {runs[0]['window']:g} s window, {runs[0]['procs']} processes (last round) ==",
        head,
        "-" * len(head),
    ]
    for run in runs:
        stale = "-" if run["case"] in UNCACHED else str(run["dnscache"].get("stale_hits", 0))
        lines.append(
            f"{LABELS[run['case']].replace('TTL', str(spec['ttl']) + ' s'):<42}"
            f" {run['lookups']:>8} {run['errors'] + run['wrong']:>7} {run['p50_us']:>8.1f}"
            f" {run['p99_us']:>8.1f} {run['max_us']:>8.0f} {stale:>13}  "
            + (", ".join(f"{k} x{v}" for k, v in sorted(run["failures"].items())) or "-")
        )
    return lines


def checks(result: Mapping[str, Any]) -> list[str]:
    """What must hold for the figures to mean anything; printed, never asserted away."""
    out = []
    for n, part in result["table"].items():
        for row in part["rows"]:
            where = f"N={n} {row['case']}"
            if row["errors"] or row["wrong"]:
                out.append(f"FAILED LOOKUPS: {where}: {row['errors']} errors, {row['wrong']} wrong")
            if row["case"] not in UNCACHED and row["installed"] < int(n):
                out.append(f"NOT MEASURED: {where}: dnscache was not active in every client")
            if row["case"] in UNCACHED and row["installed"]:
                out.append(f"NOT MEASURED: {where}: dnscache was active")
            if row["case"] == "dot" and row["queries_tls"] != row["queries"]:
                out.append(f"PLAIN QUERIES: {where}: {row['queries'] - row['queries_tls']}")
    return out or ["checks: every lookup answered right, dnscache active in every cached client"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", help="comma-separated process counts (default 1,4,16)")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--window", type=float, help="measured seconds per run")
    parser.add_argument("--ttl", type=int, default=2, help="record TTL in seconds (2)")
    parser.add_argument("--names", type=int, default=6, help="names each process looks up (6)")
    parser.add_argument("--rate", type=float, default=40.0, help="lookups/s per process (40)")
    parser.add_argument("--dot", action="store_true", help="add the dnspython-over-TLS case")
    parser.add_argument(
        "--outage", type=float, help="seconds unbound is down in the outage runs (0: none)"
    )
    parser.add_argument("--outage-procs", type=int, default=4, help="processes in them (4)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, 2 s, N=1,16, no outage")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    if args.inside:
        inside(json.loads(args.inside))
        return
    defaults = QUICK if args.quick else FULL
    procs = [int(x) for x in (args.procs or str(defaults["procs"])).split(",")]
    cases = [*CASES, "dot"] if args.dot else list(CASES)
    spec: dict[str, Any] = {
        "records": records(args.names),
        "ttl": args.ttl,
        "rate": args.rate,
        # Two passes over the names: whatever expired while the slowest client started
        # has been asked again, and every name is in its refresh rhythm.
        "warm": max(1.0, 2 * args.names / args.rate),
        "window": args.window or defaults["window"],
        "rounds": args.rounds or defaults["rounds"],
        "cases": cases,
        "outage": defaults["outage"] if args.outage is None else args.outage,
        "outage_procs": args.outage_procs,
    }
    sys.path.insert(0, str(TESTS_DIR))
    import netns
    import unbound

    problem = netns.e2e_requirements() or unbound.missing()
    if problem is not None:
        raise SystemExit(f"fleet.py needs root, unshare and unbound: {problem}")
    machine = _machine.Machine()
    watch = _machine.Watch(machine, children=True)  # the fleet runs in processes we reap
    watch.start()
    runs: list[dict[str, Any]] = []
    outages: list[dict[str, Any]] = []
    per_run = spec["warm"] + spec["window"] + 5.0
    for r in range(spec["rounds"]):
        last = r == spec["rounds"] - 1
        order = round_order(procs, cases, r)
        # The outage runs come once, at the end of the last round.
        outage_cases = [c for c in cases if c != "memo"] if last and spec["outage"] else []
        budget = sum(per_run + READY_TIMEOUT * n / 16 for n, _ in order) + 60
        budget += len(outage_cases) * (spec["outage"] + 2 * spec["ttl"] + 2 + per_run)
        print(f"round {r + 1}/{spec['rounds']}: {len(order)} runs ...", file=sys.stderr)
        round_spec = {**spec, "order": order, "outage_cases": outage_cases}
        script = (
            f"import json, sys; sys.path.insert(0, {str(BENCH_DIR)!r}); import fleet; "
            f"fleet.inside(json.loads({json.dumps(round_spec)!r}))"
        )
        got = netns.run_in_netns(script, timeout=budget)
        runs += got["runs"]
        outages += got["outages"]
    machine = watch.stop()
    result: dict[str, Any] = {
        "spec": spec,
        "table": summarize(runs, procs, cases),
        "runs": runs,
        "outages": outages,
        "machine": _machine.as_dict(machine),
    }
    if args.json:
        print(json.dumps(result, indent=1, default=str))
        return
    result["machine"] = machine
    print("\n".join(render(result)))


if __name__ == "__main__":
    main()
