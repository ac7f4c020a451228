"""End-to-end: unmodified programs resolving through glibc against a real DNS server.

Each test runs a script inside private namespaces (see ``netns.py``) where dnsmasq on
127.0.0.1 is the only DNS server, and counts the queries dnsmasq actually received. Counting at
the server is the point: it is the one measurement that cannot be fooled by the library
reporting on itself.
"""

from __future__ import annotations

import json
import re
import socket
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import netns

REQUESTS = 50

# The "unmodified program": plain urllib, nothing dnscache-specific until after its requests,
# when it reports whether the cache had been activated in it (by PYTHONDNSCACHE=1 alone).
CHILD_PROGRAM = textwrap.dedent(
    """\
    import json, sys, urllib.request

    port, count = int(sys.argv[1]), int(sys.argv[2])
    ok, errors = 0, []
    for _ in range(count):
        try:
            with urllib.request.urlopen(f"http://svc.test:{port}/", timeout=5) as response:
                body = response.read()
            if response.status == 200 and body == b"ok":
                ok += 1
            else:
                errors.append(f"{response.status} {body!r}")
        except OSError as exc:
            errors.append(repr(exc))
    installed = "dnscache" in sys.modules and __import__("dnscache").is_installed()
    print(json.dumps({"ok": ok, "errors": errors[:5], "installed": installed}))
    """
)


def _urlopen_scenario(*, with_cache: bool) -> dict[str, Any]:
    script = textwrap.dedent(
        f"""\
        import json, os, subprocess, sys

        import netns

        child_env = {{k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")}}
        if {with_cache!r}:
            child_env["PYTHONDNSCACHE"] = "1"

        with netns.start_dnsmasq({{"svc.test": ["127.0.0.1"]}}, ttl=60) as dns:
            server, port = netns.start_http_server()
            with server:
                child = subprocess.run(
                    [sys.executable, "-c", {CHILD_PROGRAM!r}, str(port), "{REQUESTS}"],
                    env=child_env, capture_output=True, text=True, timeout=15,
                )
            counts = {{
                "A": dns.queries("svc.test", "A"),
                "AAAA": dns.queries("svc.test", "AAAA"),
                "all": dns.queries(),
            }}
        lines = child.stdout.strip().splitlines()
        print(json.dumps({{
            "returncode": child.returncode,
            "report": json.loads(lines[-1]) if child.returncode == 0 and lines else None,
            "stderr": child.stderr[-3000:],
            "counts": counts,
        }}))
        """
    )
    return netns.run_in_netns(script, timeout=40)


def _describe(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2)


def test_harness_isolated() -> None:
    netns.require_e2e()
    outer_resolv = Path("/etc/resolv.conf").read_bytes()
    outer_hosts = Path("/etc/hosts").read_bytes()
    script = textwrap.dedent(
        """\
        import json, socket
        from pathlib import Path

        import netns

        with netns.start_dnsmasq({"svc.test": ["127.0.0.1"]}) as dns:
            infos = socket.getaddrinfo("svc.test", 80, type=socket.SOCK_STREAM)
            try:
                socket.getaddrinfo("absent.test", 80, type=socket.SOCK_STREAM)
                absent = "resolved"
            except socket.gaierror as exc:
                absent = exc.errno
            queries_a = dns.queries("svc.test", "A")
        print(json.dumps({
            "addresses": sorted({info[4][0] for info in infos}),
            "absent": absent,
            "queries_a": queries_a,
            "resolv": Path("/etc/resolv.conf").read_text(),
            "hosts": Path("/etc/hosts").read_text(),
        }))
        """
    )
    result = netns.run_in_netns(script, timeout=30)

    assert result["addresses"] == ["127.0.0.1"], _describe(result)
    assert result["queries_a"] >= 1, "the answer did not come from dnsmasq\n" + _describe(result)
    # NXDOMAIN straight from dnsmasq, not a timeout or an answer from some other resolver.
    assert result["absent"] == socket.EAI_NONAME, _describe(result)
    assert result["resolv"].splitlines()[0] == "nameserver 127.0.0.1", _describe(result)
    assert result["hosts"].split() == ["127.0.0.1", "localhost", "::1", "localhost"]
    # The bind mounts lived and died with the namespace: the machine's files are untouched.
    assert Path("/etc/resolv.conf").read_bytes() == outer_resolv
    assert Path("/etc/hosts").read_bytes() == outer_hosts


def test_without_cache_every_request_queries() -> None:
    netns.require_e2e()
    result = _urlopen_scenario(with_cache=False)

    assert result["returncode"] == 0, _describe(result)
    report = result["report"]
    assert report["ok"] == REQUESTS, _describe(result)
    assert report["installed"] is not True, "cache active without PYTHONDNSCACHE=1\n" + (
        _describe(result)
    )
    # The baseline that makes the cached test meaningful: glibc asks the server every time.
    assert result["counts"]["A"] >= REQUESTS, _describe(result)


def test_with_cache_one_query_per_family() -> None:
    netns.require_e2e()
    result = _urlopen_scenario(with_cache=True)

    assert result["returncode"] == 0, _describe(result)
    report = result["report"]
    assert report["ok"] == REQUESTS, _describe(result)
    assert report["installed"] is True, (
        "PYTHONDNSCACHE=1 did not activate dnscache in the child (is the package installed "
        "with its .pth, e.g. `pip install -e .`?)\n" + _describe(result)
    )
    assert result["counts"]["A"] <= 1, _describe(result)
    assert result["counts"]["AAAA"] <= 1, _describe(result)


def test_dnsmasq_helper_controls() -> None:
    """The helper API other end-to-end tests rely on: records, reload, restart, pause."""
    netns.require_e2e()
    script = textwrap.dedent(
        """\
        import json, socket, time

        import netns

        def addrs(name, family=socket.AF_UNSPEC):
            try:
                infos = socket.getaddrinfo(name, 80, family, socket.SOCK_STREAM)
            except socket.gaierror as exc:
                return exc.errno
            return sorted({info[4][0] for info in infos})

        out = {}
        with netns.start_dnsmasq({"dual.test": ["127.0.0.2", "127.0.0.3", "::1"]}) as dns:
            out["dual"] = addrs("dual.test")
            out["dual_counts"] = [dns.queries("dual.test", "A"), dns.queries("dual.test", "AAAA")]
            dns.set_records({"dual.test": ["127.0.0.4"]})
            out["reloaded"] = addrs("dual.test")
            dns.restart({"other.test": ["127.0.0.5"]})
            out["restarted"] = [addrs("other.test"), addrs("dual.test")]
            dns.pause()
            started = time.monotonic()
            out["paused"] = addrs("other.test", socket.AF_INET)
            out["paused_seconds"] = time.monotonic() - started
            dns.resume()
            out["resumed"] = addrs("other.test", socket.AF_INET)
            out["total"] = dns.queries()
            try:
                netns.start_dnsmasq({"bad.test": ["192.0.2.1"]})
                out["non_loopback"] = "accepted"
            except ValueError:
                out["non_loopback"] = "rejected"
        out["stopped"] = not dns.running
        print(json.dumps(out))
        """
    )
    result = netns.run_in_netns(script, timeout=30)

    assert result["dual"] == ["127.0.0.2", "127.0.0.3", "::1"], _describe(result)
    # glibc sends A and AAAA for AF_UNSPEC, and dnsmasq logs both.
    assert result["dual_counts"] == [1, 1], _describe(result)
    assert result["reloaded"] == ["127.0.0.4"], _describe(result)
    assert result["restarted"] == [["127.0.0.5"], socket.EAI_NONAME], _describe(result)
    assert result["paused"] == socket.EAI_AGAIN, _describe(result)
    assert result["resumed"] == ["127.0.0.5"], _describe(result)
    assert result["non_loopback"] == "rejected", _describe(result)
    assert result["stopped"] is True


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (
                    (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except OSError:  # exited while we looked
                continue
            if text in cmdline:
                found.append(f"{proc.name}: {cmdline}")
    return found


def test_timeout_leaves_nothing_behind() -> None:
    """A script killed on timeout takes its dnsmasq with it, though no finally block ran."""
    netns.require_e2e()
    script = textwrap.dedent(
        """\
        import os, time

        import netns

        dns = netns.start_dnsmasq({"svc.test": ["127.0.0.1"]})
        print("tmpdir=" + os.environ["TMPDIR"], flush=True)
        time.sleep(60)
        """
    )
    with pytest.raises(AssertionError, match="timed out") as excinfo:
        netns.run_in_netns(script, timeout=3)
    match = re.search(r"tmpdir=(\S+)", str(excinfo.value))
    assert match, str(excinfo.value)
    tmpdir = match[1]
    # The kernel tears the PID namespace down asynchronously; poll briefly.
    deadline = time.monotonic() + 5
    while (leftovers := _processes_mentioning(tmpdir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers == []
    assert not Path(tmpdir).exists()


@pytest.mark.parametrize(
    ("ci", "expected"),
    [
        ("true", pytest.fail.Exception),
        ("TRUE", pytest.fail.Exception),
        (None, pytest.skip.Exception),
    ],
)
def test_require_e2e_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str | None, expected: type[BaseException]
) -> None:
    """Under CI a missing requirement must fail the test, not quietly skip it."""
    monkeypatch.setattr(netns, "e2e_requirements", lambda: "nope")
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(expected, match="nope"):
        netns.require_e2e()
