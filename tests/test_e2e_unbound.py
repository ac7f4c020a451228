"""A real shared resolver (issue 15 item 3): unmodified programs with PYTHONDNSCACHE=1 in
front of Debian's unbound, in a private namespace.

unbound is started by :mod:`unbound` inside the namespace (so it may listen on ports 53 and
853 of the namespace's own loopback); its statistics (``unbound-control stats_noreset``)
witness what arrived and over which transport. The child programs only call
``socket.getaddrinfo``: dnscache is activated by the environment alone, with the dnspython
backend pointed at unbound.
"""

from __future__ import annotations

import textwrap
from typing import Any

import netns
import unbound

PRELUDE = textwrap.dedent(
    """\
    import json, os, socket, subprocess, sys, time

    import netns
    import unbound

    CHILD = '''
    import json, socket, sys, time
    import dnscache
    names, seconds, pause = sys.argv[1].split(","), float(sys.argv[2]), float(sys.argv[3])
    calls, errors, wrong = 0, [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for name in names:
            try:
                infos = socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)
                got = sorted({info[4][0] for info in infos})
                calls += 1
                if got != EXPECTED[name]:
                    wrong += 1
            except socket.gaierror as exc:
                errors.append(exc.errno)
        time.sleep(pause)
    print(json.dumps({"installed": dnscache.is_installed(), "calls": calls,
                      "errors": errors, "wrong": wrong}))
    '''
    RECORDS = {"svc.test": ["127.0.0.2", "::1"], "api.test": ["127.0.0.3"]}
    CHILD = "EXPECTED = " + repr(RECORDS) + chr(10) + CHILD

    def children(count, env, names, seconds, pause=0.02):
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")}
        child_env.update(env, PYTHONDNSCACHE="1", PYTHONDNSCACHE_BACKEND="dnspython")
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, ",".join(names), str(seconds), str(pause)],
                env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                stdin=subprocess.DEVNULL,
            )
            for _ in range(count)
        ]
        return procs

    def collect(procs):
        out = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=60)
            if proc.returncode != 0:
                raise SystemExit(f"child failed: {proc.returncode}: {stderr[-3000:]}")
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        return out
    """
)


def run(body: str) -> dict[str, Any]:
    return netns.run_in_netns(PRELUDE + textwrap.dedent(body), timeout=120)


def _require() -> None:
    netns.require_e2e()
    problem = unbound.missing()
    if problem is not None:
        netns.unavailable(problem)


def test_processes_ask_each_name_at_most_once_per_family_per_ttl() -> None:
    _require()
    result = run(
        """\
        with unbound.Unbound(RECORDS, ttl=30, port=53) as ub:
            procs = children(4, {}, ["svc.test", "api.test"], seconds=2.0)
            reports = collect(procs)
            stats = ub.stats()
        print(json.dumps({"reports": reports, "A": stats.get("num.query.type.A", 0),
                          "AAAA": stats.get("num.query.type.AAAA", 0)}))
        """
    )
    reports = result["reports"]
    assert all(r["installed"] for r in reports), reports
    assert all(r["errors"] == [] and r["wrong"] == 0 for r in reports), reports
    assert sum(r["calls"] for r in reports) >= 4 * 2 * 10  # the names were hot in every child
    # Two names x four processes, each asked once per family within the 30 s TTL.
    assert result["A"] == 8, result
    assert result["AAAA"] == 8, result


def test_queries_over_tls_arrive_encrypted() -> None:
    _require()
    result = run(
        """\
        with unbound.Unbound(RECORDS, ttl=30, tls_port=853) as ub:
            env = {
                "PYTHONDNSCACHE_NAMESERVERS": ub.tls_nameserver,
                "PYTHONDNSCACHE_TLS_CA_BUNDLE": str(ub.certs["ca"]),
            }
            reports = collect(children(3, env, ["svc.test", "api.test"], seconds=1.0))
            stats = ub.stats()
            plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            plain.settimeout(1.0)
            plain.connect(("127.0.0.1", 53))
            try:
                plain.send(b"\\x12\\x34" + bytes(10))
                plain.recv(512)
                port53 = "answered"
            except ConnectionRefusedError:
                port53 = "refused"
            except TimeoutError:
                port53 = "silent"
            finally:
                plain.close()
        print(json.dumps({"reports": reports, "stats": stats, "port53": port53}))
        """
    )
    reports, stats = result["reports"], result["stats"]
    assert all(r["installed"] and r["errors"] == [] and r["wrong"] == 0 for r in reports), reports
    assert result["port53"] == "refused"  # nothing listens on plain DNS in this namespace
    total = stats["total.num.queries"]
    assert total == 3 * 4  # per child: svc.test and api.test, A and AAAA each, once
    assert stats["num.query.tls"] == total  # every query arrived over TLS
    assert stats.get("num.query.tcp", 0) == total


def test_an_unbound_restart_and_outage_are_bridged_by_serve_stale() -> None:
    _require()
    result = run(
        """\
        with unbound.Unbound(RECORDS, ttl=1, port=53) as ub:
            env = {"PYTHONDNSCACHE_RESOLVE_TIMEOUT": "0.3"}
            procs = children(2, env, ["svc.test", "api.test"], seconds=8.0, pause=0.05)
            deadline = time.monotonic() + 30  # a loaded machine starts interpreters slowly
            while ub.queries("A") < 4 and time.monotonic() < deadline:
                time.sleep(0.05)  # until both children have their answers
            time.sleep(1.5)   # past the 1 s TTL: every answer is refreshed live
            ub.stop()         # outage: nothing listens on port 53
            time.sleep(2.0)
            ub.start()        # restart (a new process: statistics start again)
            reports = collect(procs)
            after = ub.stats().get("total.num.queries", 0)
        print(json.dumps({"reports": reports, "after": after}))
        """
    )
    reports = result["reports"]
    assert all(r["installed"] for r in reports), reports
    # Not one failed or wrong call across the outage and the restart...
    assert all(r["errors"] == [] and r["wrong"] == 0 for r in reports), reports
    assert all(r["calls"] > 50 for r in reports), reports
    # ...and after the restart the children went back to the live resolver.
    assert result["after"] > 0
