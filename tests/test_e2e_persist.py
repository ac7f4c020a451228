"""End to end: the persistent layer carries a restarted program through a DNS outage.

Inside private namespaces (see ``netns.py``) with a real dnsmasq and glibc resolving
through the bind-mounted ``/etc/resolv.conf`` (``options timeout:1 attempts:2``), an
unmodified child program (``PYTHONDNSCACHE=1`` and ``PYTHONDNSCACHE_PERSIST=<file>``,
nothing else) connects to ``svc.test`` and exits. Then dnsmasq goes away, and *fresh*
processes, whose in-memory cache is empty, try again:

* with the persisted file they still connect, to the address the first one used,
  and say so in ``stats().persisted_hits``;
* without it the outage is what it is: ``gaierror`` ``EAI_AGAIN``.

Two kinds of outage, because glibc treats them differently: a *stopped* dnsmasq
answers every query with ICMP port unreachable, so libc fails at once; a *paused*
one (SIGSTOP) never answers, so libc waits its full timeout. In the second case the
persisted answer must come after ``resolve_timeout`` (1.8 s by default, RFC 8767's
client response timer), not after libc gives up. resolv.conf's ``timeout:1
attempts:2`` makes that 2 s, too close to 1.8 s to tell the two apart, so the paused
children get ``RES_OPTIONS`` (glibc's own override of resolv.conf's options) for 4 s.

``svc.test`` lives at 127.0.0.2 and the HTTP server listens on 127.0.0.2 only, so a
connection that succeeds went to the address the name resolved to, not to some
default.
"""

from __future__ import annotations

import json
import socket
import textwrap
from typing import Any

import netns

ADDRESS = "127.0.0.2"
RESOLVE_TIMEOUT = 1.8  # Config.resolve_timeout's default; the children use the default
SLACK = 0.7  # interpreter start-up noise on top of it
# For the paused outage only (see the module docstring): 2 s per try, 2 tries.
LIBC_OPTIONS = "timeout:2 attempts:2"
LIBC_FULL_TIMEOUT = 4.0

# The unmodified program: a plain connect and a plain urllib request by name. Only
# afterwards does it look at dnscache, to report what the cache did.
CHILD = textwrap.dedent(
    """\
    import json, socket, sys, time, urllib.request

    port = int(sys.argv[1])
    out = {}
    started = time.monotonic()
    try:
        with socket.create_connection(("svc.test", port), timeout=5) as sock:
            out["peer"] = sock.getpeername()[0]
        out["first_call_seconds"] = time.monotonic() - started
        with urllib.request.urlopen(f"http://svc.test:{port}/", timeout=5) as response:
            out["http"] = [response.status, response.read().decode()]
    except OSError as exc:
        out["first_call_seconds"] = time.monotonic() - started
        out["error"] = [type(exc).__name__, exc.errno, str(exc)]
    import dnscache

    resolver = dnscache.active_resolver()
    if resolver is not None:
        out["persisted_hits"] = resolver.stats().persisted_hits
        out["persist"] = resolver.config.persist
    print(json.dumps(out))
    """
)

SCRIPT = textwrap.dedent(
    """\
    import json, os, sqlite3, stat, subprocess, sys, time

    import netns

    tmp = os.environ["TMPDIR"]
    db = os.path.join(tmp, "home", "cache", "dnscache", "dns.sqlite3")  # no directory exists yet
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")}
    with_file = dict(base, PYTHONDNSCACHE="1", PYTHONDNSCACHE_PERSIST=db)
    without_file = dict(base, PYTHONDNSCACHE="1")
    # A wide-open umask: the 0600/0700 modes must come from dnscache, not from the umask.
    os.umask(0)

    def child(env, port):
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(port)],
            env=env, capture_output=True, text=True, timeout=30,
        )
        lines = done.stdout.strip().splitlines()
        return {
            "returncode": done.returncode,
            "report": json.loads(lines[-1]) if done.returncode == 0 and lines else None,
            "stderr": done.stderr[-3000:],
            "wall": time.monotonic() - started,
        }

    def modes():
        out = {}
        for path in (db, db + "-wal", db + "-shm", os.path.dirname(db),
                     os.path.dirname(os.path.dirname(db)), os.path.join(tmp, "home")):
            try:
                out[path[len(tmp):]] = oct(stat.S_IMODE(os.stat(path).st_mode))
            except FileNotFoundError:
                pass
        return out

    def rows():
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return conn.execute(
                "SELECT CAST(host AS TEXT), ip, last_seen IS NOT NULL, last_connected IS NOT NULL"
                " FROM addresses WHERE typeof(host) = 'blob' ORDER BY host, ip"
            ).fetchall()
        finally:
            conn.close()

    result = {}
    server, port = netns.start_http_server(ADDRESS)
    with server:
        dns = netns.start_dnsmasq({"svc.test": [ADDRESS]}, ttl=60)
        with dns:
            result["warm"] = child(with_file, port)
            result["queries_warm"] = dns.queries("svc.test")
        result["modes"] = modes()
        result["rows"] = rows()

        # Outage 1: dnsmasq stopped (port unreachable: libc fails fast).
        result["stopped_persist"] = child(with_file, port)
        result["stopped_plain"] = child(without_file, port)

        # Outage 2: dnsmasq paused (no answer at all: libc waits its full timeout, here
        # stretched by RES_OPTIONS so that it is clearly longer than resolve_timeout).
        dns.start()
        dns.pause()
        slow = {"RES_OPTIONS": LIBC_OPTIONS}
        result["paused_persist"] = child(dict(with_file, **slow), port)
        result["paused_plain"] = child(dict(without_file, **slow), port)
        dns.resume()
        dns.stop()
        result["rows_after"] = rows()
    print(json.dumps(result))
    """
)


def _run() -> dict[str, Any]:
    prelude = f"ADDRESS = {ADDRESS!r}\nCHILD = {CHILD!r}\nLIBC_OPTIONS = {LIBC_OPTIONS!r}\n"
    return netns.run_in_netns(prelude + SCRIPT, timeout=60)


def _describe(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=1)[-8000:]


def test_restart_during_outage_connects_from_the_persisted_file() -> None:
    netns.require_e2e()
    result = _run()
    why = _describe(result)

    warm = result["warm"]
    assert warm["returncode"] == 0, why
    assert warm["report"]["peer"] == ADDRESS, why
    assert warm["report"]["http"] == [200, "ok"], why
    assert warm["report"]["persist"].endswith("/home/cache/dnscache/dns.sqlite3"), why
    assert result["queries_warm"] >= 1, "the first answer did not come from dnsmasq\n" + why
    # The first process flushed at exit: the address is in the file, and marked connected.
    assert ["svc.test", ADDRESS, 1, 1] in result["rows"], why

    # Private: the file 0600, every directory dnscache created 0700, despite umask 0.
    modes = result["modes"]
    assert modes["/home/cache/dnscache/dns.sqlite3"] == "0o600", why
    for sidecar in ("-wal", "-shm"):
        assert modes.get(f"/home/cache/dnscache/dns.sqlite3{sidecar}", "0o600") == "0o600", why
    for directory in ("/home/cache/dnscache", "/home/cache", "/home"):
        assert modes[directory] == "0o700", why

    for outage in ("stopped", "paused"):
        fresh = result[f"{outage}_persist"]
        assert (fresh["returncode"], fresh["stderr"]) == (0, ""), why  # no warning either
        report = fresh["report"]
        assert "error" not in report, f"{outage}: the persisted address was not used\n{why}"
        assert report["peer"] == ADDRESS, why
        assert report["http"] == [200, "ok"], why
        assert report["persisted_hits"] >= 1, why
        assert report["first_call_seconds"] < RESOLVE_TIMEOUT + SLACK, f"{outage}: slow\n{why}"

        plain = result[f"{outage}_plain"]
        assert plain["returncode"] == 0, why
        # Without the file the outage shows, as the stdlib shows it.
        assert plain["report"]["error"][:2] == ["gaierror", socket.EAI_AGAIN], why
        assert "peer" not in plain["report"], why

    # The paused case is the one where resolve_timeout matters: libc really waits its
    # full timeout, and the persisted answer came well before it.
    libc = result["paused_plain"]["report"]["first_call_seconds"]
    assert libc > LIBC_FULL_TIMEOUT - 0.5, why
    assert result["paused_persist"]["report"]["first_call_seconds"] < libc - 1.0, why
    # ... and the program did not sit on its exit waiting for libc either.
    assert result["paused_persist"]["wall"] < RESOLVE_TIMEOUT + 2 * SLACK, why
    # The file still holds the address (nothing pruned or lost by the later processes).
    assert ["svc.test", ADDRESS, 1, 1] in result["rows_after"], why
