"""The command line, run for real: ``python -m dnscache ...`` in a subprocess.

Names are served by the loopback DNS server (the ``dns_server`` fixture) through
``--backend dnspython --nameserver``, so nothing here depends on the machine's
resolver or network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from dnscache._sources.persist.store import PersistentStore
from dnscache._tools.dnsserver import DNSServer

TIMEOUT = 60


def clean_env(**extra: str) -> dict[str, str]:
    """Our environment without any PYTHONDNSCACHE* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")}
    env.update(extra)
    return env


def cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dnscache", *args],
        capture_output=True,
        text=True,
        env=clean_env() if env is None else dict(env),
        timeout=timeout,
    )


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout


@pytest.fixture
def server(dns_server: DNSServer) -> DNSServer:
    dns_server.set("api.cli.test", a=["127.0.0.10"], aaaa=["::1"], ttl=300)
    dns_server.set("db.cli.test", a=["127.0.0.11"], ttl=120)
    return dns_server


# --- usage ---


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["demo"],
        ["lookup"],
        ["run"],
        ["cache"],
        ["cache", "show"],
        ["cache", "prune"],
        ["cache", "clear"],
        ["bench"],
        ["doctor"],
        ["ps"],
        ["stats"],
        ["dump"],
        ["flush"],
    ],
)
def test_help(command: list[str]) -> None:
    proc = cli(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: {' '.join(['dnscache', *command])}")
    assert proc.stderr == ""
    text = " ".join(proc.stdout.split())  # argparse wraps the epilog
    if command[:1] == ["run"]:
        assert "exit status: COMMAND's own; 127 if it is not found" in text
    elif command != ["cache"]:  # a group: its actions say it
        assert "exit status: 0 ok; 1 not found or failed; 2 bad usage" in text


EVERY_COMMAND = [
    ["demo"],
    ["lookup"],
    ["run"],
    ["cache", "show"],
    ["cache", "prune"],
    ["cache", "clear"],
    ["bench"],
    ["doctor"],
    ["ps"],
    ["stats"],
    ["dump"],
    ["flush"],
]


@pytest.mark.parametrize("command", EVERY_COMMAND)
def test_every_command_takes_json(command: list[str]) -> None:
    proc = cli(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^\s+--json\b", proc.stdout, re.MULTILINE), proc.stdout


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["lookup"],
        ["lookup", "x.test", "--family", "5"],
        ["lookup", "x.test", "-4", "-6"],
        ["lookup", "x.test", "-4", "--family", "6"],
        ["lookup", "x.test", "--nameserver", "not-an-ip"],
        ["run"],
        ["run", "--ttl", "soon", "--", "true"],
        ["run", "--refresh-at", "3", "--", "true"],
        ["bench", "--count", "0"],
        ["demo", "--names", "99"],
        ["cache"],
        ["cache", "show", "--max-age", "-1"],
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args: list[str]) -> None:
    proc = cli(*args)
    assert proc.returncode == 2
    no_traceback(proc)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dnscache"), lines[0]
    assert "error:" in lines[0]


def test_a_failure_is_json_too_with_json(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n")
    proc = cli("cache", "clear", "--path", str(path), "--json")
    assert proc.returncode == 2
    result = json.loads(proc.stdout)
    assert result["status"] == 2
    assert "is not an sqlite database" in result["error"]
    assert proc.stderr.startswith("dnscache cache clear: error:")


def test_version() -> None:
    proc = cli("--version")
    assert proc.returncode == 0
    assert re.fullmatch(r"dnscache \d+\.\d+\.\d+\S*\n", proc.stdout)


# --- lookup ---


def test_lookup_a_known_name(server: DNSServer) -> None:
    proc = cli(
        "lookup", "api.cli.test", "--backend", "dnspython", "--nameserver", server.nameserver
    )
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.splitlines()
    assert header.split() == ["HOST", "SOURCE", "TTL", "TIME", "ADDRESSES"]
    assert row.split()[:3] == ["api.cli.test", "upstream", "300s"]
    assert row.split()[-2:] == ["::1", "127.0.0.10"]
    assert server.queries("api.cli.test") == 2  # A and AAAA, once


def test_lookup_twice_answers_the_second_from_the_cache(server: DNSServer) -> None:
    proc = cli("lookup", "db.cli.test", "DB.cli.test", "--nameserver", server.nameserver)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    assert [r[1] for r in rows] == ["upstream", "cache"]
    assert server.queries() == 2


def test_lookup_an_unknown_name(server: DNSServer) -> None:
    proc = cli(
        "lookup", "api.cli.test", "nope.invalid", "--nameserver", server.nameserver, "--family", "4"
    )
    assert proc.returncode == 1
    no_traceback(proc)
    assert proc.stderr == (
        "dnscache: nope.invalid: [Errno -2] Name or service not known "
        f"(upstream {server.nameserver}: NXDOMAIN, no such name)\n"
    )
    assert "api.cli.test" in proc.stdout  # the names that resolved are still shown


def test_lookup_json(server: DNSServer) -> None:
    proc = cli(
        "lookup",
        "api.cli.test",
        "nope.invalid",
        "127.0.0.1",
        "--json",
        "--family",
        "4",
        "--nameserver",
        server.nameserver,
    )
    assert proc.returncode == 1
    found, missing, literal = json.loads(proc.stdout)
    assert found["host"] == "api.cli.test"
    assert found["addresses"] == ["127.0.0.10"]
    assert found["family"] == 4
    assert found["source"] == "upstream"
    assert 295 < found["ttl"] <= 300
    assert found["time_ms"] > 0
    assert found["canonname"] == "api.cli.test"
    assert missing["host"] == "nope.invalid"
    assert missing["errno"] == -2
    assert "Name or service not known" in missing["error"]
    assert missing["reason"] == "nxdomain"
    assert missing["resolver_finished"] is True
    assert literal["source"] == "literal"
    assert literal["ttl"] is None


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["-4"], (4, ["127.0.0.10"])),
        (["-6"], (6, ["::1"])),
        (["--family", "6"], (6, ["::1"])),  # the older spelling
        ([], (None, ["::1", "127.0.0.10"])),
    ],
)
def test_lookup_family(server: DNSServer, flags: list[str], expected: tuple[object, ...]) -> None:
    proc = cli("lookup", "api.cli.test", *flags, "--json", "--nameserver", server.nameserver)
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert (result["family"], result["addresses"]) == expected


def test_lookup_names_the_source(server: DNSServer) -> None:
    env = clean_env(PYTHONDNSCACHE_HOSTS="pinned.cli.test=127.0.0.42")
    hosts = ("db.cli.test", "db.cli.test", "localhost", "127.0.0.1", "::1", "pinned.cli.test")
    proc = cli("lookup", *hosts, "--json", "--nameserver", server.nameserver, env=env)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert [(r["host"], r["source"], r["origin"]) for r in results] == [
        ("db.cli.test", "upstream", "upstream"),
        ("db.cli.test", "cache", "upstream"),
        ("localhost", "hosts", "hosts"),  # /etc/hosts: libc reads it, never the server
        ("127.0.0.1", "literal", None),
        ("::1", "literal", None),
        ("pinned.cli.test", "override", "override"),
    ]
    assert server.queries("localhost") == 0


def test_lookup_names_a_persisted_answer(server: DNSServer, tmp_path: Path) -> None:
    path = tmp_path / "dns.sqlite3"
    store = PersistentStore(str(path))
    store.record_seen("gone.cli.test", ["192.0.2.50"])
    store.close()
    server.servfail("gone.cli.test")  # the upstream fails: the file bridges the outage
    env = clean_env(PYTHONDNSCACHE_PERSIST=str(path))
    proc = cli(
        "lookup", "gone.cli.test", "-4", "--json", "--nameserver", server.nameserver, env=env
    )
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert (result["source"], result["addresses"]) == ("persisted", ["192.0.2.50"])


def test_lookup_with_the_cache_disabled_says_so() -> None:
    env = clean_env(PYTHONDNSCACHE_DISABLED="1")
    proc = cli("lookup", "localhost", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert result["source"] == "disabled"


def _closed_udp_port() -> int:
    """A loopback UDP port nothing listens on: the kernel answers ICMP port unreachable."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_lookup_says_a_nameserver_refused_without_waiting_out_the_lifetime() -> None:
    # The ICMP error of a refusing server says why at once; 0.1 said only "Temporary
    # failure", after the dnspython lifetime.
    refused = f"127.0.0.1:{_closed_udp_port()}"
    proc = cli("lookup", "api.cli.test", "-4", "--json", "--nameserver", refused)
    assert proc.returncode == 1
    (result,) = json.loads(proc.stdout)
    assert result["errno"] == socket.EAI_AGAIN
    assert result["reason"] == "refused"
    # The dnspython backend itself now fails a refusing server at once, as glibc does, so
    # the resolver may finish first; either way the reason is known within milliseconds.
    assert [(u["server"], u["outcome"], u["detail"]) for u in result["upstream"]] == [
        (refused, "refused", "connection refused")
    ]
    assert proc.stderr.startswith(
        "dnscache: api.cli.test: [Errno -3] Temporary failure in name resolution "
        f"(upstream {refused}: connection refused)"
    )
    assert result["time_ms"] < 2500  # the old engine alone took its whole 5 s lifetime


def test_lookup_says_servfail(server: DNSServer) -> None:
    server.servfail("broken.cli.test")
    proc = cli("lookup", "broken.cli.test", "-4", "--json", "--nameserver", server.nameserver)
    assert proc.returncode == 1
    (result,) = json.loads(proc.stdout)
    assert (result["errno"], result["reason"]) == (socket.EAI_AGAIN, "servfail")
    assert result["resolver_finished"] is True


def test_lookup_says_timeout_after_the_resolvers_own_lifetime(server: DNSServer) -> None:
    server.drop("silent.cli.test")
    proc = cli("lookup", "silent.cli.test", "-4", "--json", "--nameserver", server.nameserver)
    assert proc.returncode == 1
    (result,) = json.loads(proc.stdout)
    assert (result["errno"], result["reason"]) == (socket.EAI_AGAIN, "timeout")
    assert result["resolver_finished"] is True
    assert result["upstream"][0]["detail"].startswith("timeout, no answer in ")


def test_lookup_uses_the_environment() -> None:
    env = clean_env(PYTHONDNSCACHE_HOSTS="pinned.cli.test=127.0.0.42")
    proc = cli("lookup", "pinned.cli.test", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert result["source"] == "override"
    assert result["addresses"] == ["127.0.0.42"]
    assert result["permanent"] is True
    assert result["ttl"] is None


def test_lookup_reports_bad_environment_values_and_goes_on() -> None:
    env = clean_env(PYTHONDNSCACHE_HOSTS="pinned.cli.test=127.0.0.42", PYTHONDNSCACHE_TTL="a while")
    proc = cli("lookup", "pinned.cli.test", env=env)
    assert proc.returncode == 0
    no_traceback(proc)
    assert proc.stderr.startswith("dnscache: ignoring PYTHONDNSCACHE_TTL='a while'")
    assert len(proc.stderr.splitlines()) == 1


# --- run ---


def test_run_activates_the_cache_in_the_child() -> None:
    code = (
        "import dnscache, socket; "
        "print(dnscache.is_installed(), dnscache.active_resolver().config.ttl)"
    )
    proc = cli("run", "--ttl", "5", "--", sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "True 5.0\n"


def test_run_passes_every_option_as_its_variable() -> None:
    code = (
        "import os, socket; "
        "print(os.environ['PYTHONDNSCACHE'], os.environ['PYTHONDNSCACHE_REFRESH_AT'], "
        "socket.getaddrinfo('run.cli.test', 80, socket.AF_INET)[0][4][0])"
    )
    proc = cli(
        "run",
        "--refresh-at",
        "0.25",
        "--hosts",
        "run.cli.test=127.0.0.7",
        sys.executable,
        "-c",
        code,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "0.25", "127.0.0.7"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--disabled"], "1 unset"),
        (["--no-refresh"], "unset 0"),
        (["--disabled", "--no-refresh"], "1 0"),
        (["--disabled", "yes", "--refresh", "off"], "yes off"),  # the older form
        (["--disabled=no"], "no unset"),
        (["--no-disabled", "--refresh"], "0 1"),
    ],
)
def test_run_boolean_options_are_flags(options: list[str], expected: str) -> None:
    code = (
        "import os; e = os.environ; "
        "print(e.get('PYTHONDNSCACHE_DISABLED', 'unset'), e.get('PYTHONDNSCACHE_REFRESH', 'unset'))"
    )
    # No "--": a flag must not swallow the command that follows it.
    proc = cli("run", *options, sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected + "\n"


def test_run_bad_boolean_value_is_usage() -> None:
    proc = cli("run", "--disabled=maybe", "--", "true")
    assert proc.returncode == 2
    assert "argument --disabled: 'maybe'" in proc.stderr


def test_run_json_reports_a_command_that_cannot_start() -> None:
    proc = cli("run", "--json", "--", "dnscache-no-such-command-xyz")
    assert proc.returncode == 127
    assert json.loads(proc.stdout) == {
        "command": ["dnscache-no-such-command-xyz"],
        "error": "command not found",
        "status": 127,
    }


def test_run_hooks_are_not_options() -> None:
    proc = cli("run", "--help")
    assert "--ttl" in proc.stdout
    assert "--on-change" not in proc.stdout
    assert "--on-cache-miss" not in proc.stdout


def test_run_exits_with_the_commands_status() -> None:
    proc = cli("run", "--", sys.executable, "-c", "raise SystemExit(7)")
    assert proc.returncode == 7


def test_run_unknown_command_is_127() -> None:
    proc = cli("run", "--", "dnscache-no-such-command-xyz")
    assert proc.returncode == 127
    no_traceback(proc)
    assert proc.stderr == "dnscache: dnscache-no-such-command-xyz: command not found\n"


# --- doctor ---


def test_doctor() -> None:
    proc = cli("doctor")
    assert proc.returncode == 0, proc.stdout
    out = proc.stdout
    assert "dnscache.pth" in out
    assert "PYTHONDNSCACHE is not set" in out
    assert "socket.getaddrinfo: the original" in out
    assert "socket.create_connection: the original" in out
    assert "bypass socket.getaddrinfo" in out
    assert "Nameservers" in out
    assert out.endswith("\nProblems\n  none\n")


def test_doctor_json() -> None:
    proc = cli("doctor", "--json", env=clean_env(PYTHONDNSCACHE="1"))
    assert proc.returncode == 0, proc.stdout
    report = json.loads(proc.stdout)
    assert (report["ok"], report["status"], report["problems"]) == (True, 0, [])
    assert report["activation"]["state"] == "on"
    assert report["patched"] == {"socket.getaddrinfo": True, "socket.create_connection": True}
    assert report["active_resolver"]["misses"] == 0
    assert {o["option"]: o["from"] for o in report["config"]}["ttl"] == "default"


def test_doctor_when_activated_with_a_bad_value() -> None:
    env = clean_env(PYTHONDNSCACHE="1", PYTHONDNSCACHE_MAXSIZE="lots")
    proc = cli("doctor", env=env)
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert "PYTHONDNSCACHE='1'" in out
    assert "socket.getaddrinfo: dnscache" in out
    assert "active resolver: hits=" in out
    assert "bad-value: dnscache: ignoring PYTHONDNSCACHE_MAXSIZE='lots'" in out
    assert re.search(r"maxsize\s+10000\s+default \(PYTHONDNSCACHE_MAXSIZE ignored\)", out)
    assert out.endswith("1 problem: exit status 1\n")


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [
        ("PYTHONDNSCACHE_TTTL", "PYTHONDNSCACHE_TTL"),
        ("PYTHONDNSCACHE_STALETTL", "PYTHONDNSCACHE_STALE_TTL"),
        ("PYTHONDNSCAHCE_MAXSIZE", "PYTHONDNSCACHE_MAXSIZE"),  # the prefix itself misspelt
        ("PYTHONDNSCACHE_FROBNICATE", None),
    ],
)
def test_doctor_names_a_misspelt_variable(variable: str, suggestion: str | None) -> None:
    proc = cli("doctor", env=clean_env(**{variable: "5"}))
    assert proc.returncode == 1
    message = f"{variable} is not a dnscache variable and is ignored"
    if suggestion is not None:
        message += f"; did you mean {suggestion}?"
    assert f"unknown-variable: {message}\n" in proc.stdout
    proc = cli("doctor", "--json", env=clean_env(**{variable: "5"}))
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert (report["ok"], report["status"]) == (False, 1)
    assert report["problems"] == [
        {
            "kind": "unknown-variable",
            "message": message,
            "variable": variable,
            "suggestion": suggestion,
        }
    ]


RUNTIME_TABLE = (
    "import json, sys\n"
    "from dnscache._tools.cli.runtimes import runtime_table\n"
    "for name in sys.argv[1:]: __import__(name)\n"
    "print(json.dumps({r['runtime']: r for r in runtime_table()}))\n"
)


def _runtimes(*imports: str, **env: str) -> dict[str, dict[str, object]]:
    proc = subprocess.run(
        [sys.executable, "-c", RUNTIME_TABLE, *imports],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, dict[str, object]] = json.loads(proc.stdout)
    return result


def test_doctor_runtime_table_asyncio_and_urllib3() -> None:
    import urllib3

    off = _runtimes("urllib3.util.connection")
    assert [off[name]["covered"] for name in ("asyncio", "urllib3")] == [False, False]
    on = _runtimes("urllib3.util.connection", PYTHONDNSCACHE="1")
    assert on["urllib3"] | {"path": ""} == {
        "runtime": "urllib3",
        "installed": True,
        "version": urllib3.__version__,
        "imported": True,
        "covered": True,
        "path": "",
    }
    assert on["asyncio"]["covered"] is True  # patched when asyncio.base_events is imported
    later = _runtimes(PYTHONDNSCACHE="1")  # not imported: the post-import hook will patch it
    assert (later["urllib3"]["imported"], later["urllib3"]["covered"]) == (False, True)


RUNTIMES = ("uvloop", "trio", "gevent", "eventlet")


def test_doctor_runtime_table_for_the_real_runtimes() -> None:
    # The real packages (the dev extra installs them), imported in the child so the
    # post-import hooks run; eventlet warns about its own deprecation on import.
    import importlib.metadata

    on = _runtimes(*RUNTIMES, PYTHONDNSCACHE="1", PYTHONWARNINGS="ignore::DeprecationWarning")
    for name in RUNTIMES:
        assert on[name] | {"path": ""} == {
            "runtime": name,
            "installed": True,
            "version": importlib.metadata.version(name),
            "imported": True,
            "covered": True,
            "path": "",
        }
    later = _runtimes(PYTHONDNSCACHE="1")  # none imported: each is patched when it is
    assert [(later[n]["imported"], later[n]["covered"]) for n in RUNTIMES] == [(False, True)] * 4
    off = _runtimes(*RUNTIMES, PYTHONWARNINGS="ignore::DeprecationWarning")
    assert [off[name]["covered"] for name in RUNTIMES] == [False] * 4
    proc = cli("doctor", env=clean_env(PYTHONDNSCACHE="1"))
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.startswith("  ")}
    for name in RUNTIMES:
        assert "yes, once imported" in rows[name], rows[name]


SOCKET_REPLACED = (
    "import json, socket\n"
    "import dnscache\n"
    "from dnscache._tools.cli.runtimes import runtime_table\n"
    "import uvloop, trio\n"
    "dnscache.install()\n"
    "real = socket.getaddrinfo\n"
    "socket.getaddrinfo = lambda *a, **k: real(*a, **k)\n"  # a tracer, installed after us
    "wrapped = {r['runtime']: r['covered'] for r in runtime_table()}\n"
    "socket.getaddrinfo = real\n"
    "back = {r['runtime']: r['covered'] for r in runtime_table()}\n"
    "dnscache.uninstall()\n"
    "print(json.dumps([wrapped, back]))\n"
)


def test_doctor_runtime_table_when_socket_getaddrinfo_is_not_ours() -> None:
    # Every adapter uses the cache only while socket.getaddrinfo is ours (issue 10).
    proc = subprocess.run(
        [sys.executable, "-c", SOCKET_REPLACED],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    wrapped, back = json.loads(proc.stdout)
    assert set(wrapped.values()) == {False}
    assert set(back.values()) == {True}


def test_doctor_asks_the_activation_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # The activation layer's contract: registry.is_active(name) -> True (covered),
    # False (adapter not in effect) or None (no adapter); an error is "unknown".
    from dnscache._activation import registry
    from dnscache._tools.cli.runtimes import runtime_table

    asked: list[str] = []

    def is_active(name: str) -> bool | None:
        asked.append(name)
        if name == "trio":
            raise RuntimeError("a registry that fails must not fail doctor")
        return {"asyncio": True, "urllib3": False}.get(name)

    monkeypatch.setattr(registry, "is_active", is_active)
    table = {row["runtime"]: row["covered"] for row in runtime_table()}
    assert (table["asyncio"], table["urllib3"], table["trio"], table["uvloop"]) == (
        True,
        False,
        None,
        None,
    )
    assert {"asyncio", "urllib3", "uvloop", "trio", "gevent", "eventlet"} <= set(asked)
    assert registry.runtimes() == ("asyncio", "urllib3", "uvloop", "trio", "gevent", "eventlet")


def test_doctor_ignores_unrelated_variables() -> None:
    proc = cli("doctor", env=clean_env(PYTHONDONTWRITEBYTECODE="1", DNSCACHE_HOME="/x"))
    assert proc.returncode == 0, proc.stdout


def test_doctor_fails_when_the_switch_is_not_a_switch() -> None:
    proc = cli("doctor", "--json", env=clean_env(PYTHONDNSCACHE="maybe"))
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["activation"]["state"] == "invalid"
    assert [p["kind"] for p in report["problems"]] == ["activation"]
    assert "'maybe' is not a switch" in report["problems"][0]["message"]


def test_doctor_fails_when_activation_cannot_fire() -> None:
    # python -S: .pth files are never read, so PYTHONDNSCACHE=1 does nothing. The
    # package and its dependencies are reached through PYTHONPATH instead.
    import site

    import dnscache

    paths = [str(Path(dnscache.__file__).parents[1]), *site.getsitepackages()]
    env = clean_env(PYTHONDNSCACHE="1", PYTHONPATH=os.pathsep.join(paths))
    proc = subprocess.run(
        [sys.executable, "-S", "-m", "dnscache", "doctor", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["no_site"] is True
    assert report["patched"]["socket.getaddrinfo"] is False
    assert [p["message"] for p in report["problems"]] == [
        "this interpreter runs with -S: .pth files are not read"
    ]


# --- bench and demo ---


def test_bench() -> None:
    proc = cli("bench", "--count", "50")
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if "median" in line)
    assert header.split() == ["calls", "DNS", "queries", "median", "p99", "mean", "calls/s"]
    hit = next(line for line in lines if line.startswith("cached: hit"))
    assert hit.split()[2:4] == ["50", "0"]  # 50 calls, no DNS query
    uncached = next(line for line in lines if line.startswith("uncached"))
    assert uncached.split()[2:4] == ["50", "100"]  # A and AAAA per call
    assert "\r" not in proc.stderr  # stderr is not a terminal: no progress bar


def test_bench_json() -> None:
    proc = cli("bench", "--count", "20", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    cases = {c["case"]: c for c in result["cases"]}
    assert (cases["cached: hit"]["calls"], cases["cached: hit"]["queries"]) == (20, 0)
    assert (cases["uncached (upstream)"]["calls"], cases["uncached (upstream)"]["queries"]) == (
        20,
        40,
    )
    assert cases["libc, /etc/hosts (reference)"]["queries"] is None
    assert proc.stderr == ""  # no progress lines with --json


def test_demo_json() -> None:
    proc = cli("demo", "--count", "20", "--delay", "0", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["uncached"]["queries"], result["cached"]["queries"]) == (40, 10)
    assert result["hits"]["lookups"] == 15
    patched = result["patched"]
    assert (patched["queries_before"], patched["queries_after"]) == (0, 2)
    assert patched["patched_inside"] is True
    assert patched["restored_after"] is True


def test_demo() -> None:
    started = time.monotonic()
    proc = cli("demo")
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    assert proc.stderr == ""
    out = proc.stdout
    assert "20 ms before every answer" in out
    match = re.search(r"DNS queries: (\d+) uncached, (\d+) cached", out)
    assert match, out
    uncached, cached = int(match[1]), int(match[2])
    assert cached < uncached
    assert (uncached, cached) == (400, 10)
    assert "socket.getaddrinfo is dnscache's inside the block: yes" in out
    assert "DNS queries: 0 before the block, 2 after it" in out
    assert "socket.getaddrinfo is the original again after it: yes" in out
    assert time.monotonic() - started < 20


# --- cache ---


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "dns.sqlite3"
    store = PersistentStore(str(path))
    store.record_seen("api.example.com", ["192.0.2.1", "2001:db8::1"])
    store.record_connected("api.example.com", "192.0.2.1")
    store.record_seen("db.example.com", ["192.0.2.2"])
    store.close()
    return path


def test_cache_show(db: Path) -> None:
    proc = cli("cache", "show", "--path", str(db))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{db}:"
    rows = [line.split() for line in lines[2:]]
    assert [(r[0], r[1]) for r in rows] == [
        ("api.example.com", "192.0.2.1"),
        ("api.example.com", "2001:db8::1"),
        ("db.example.com", "192.0.2.2"),
    ]
    assert re.fullmatch(r"\d+s ago \d+s ago", " ".join(rows[0][2:]))  # seen and connected
    assert re.fullmatch(r"\d+s ago never", " ".join(rows[1][2:]))  # seen only


def test_cache_show_one_host(db: Path) -> None:
    proc = cli("cache", "show", "DB.example.com.", "--path", str(db))
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()[2:]] == ["db.example.com"]
    proc = cli("cache", "show", "other.example.com", "--path", str(db))
    assert proc.returncode == 0
    assert proc.stdout == f"{db}: no addresses for other.example.com\n"


def test_cache_prune(db: Path) -> None:
    proc = cli("cache", "prune", "--path", str(db))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{db}: pruned 0 old records\n"
    time.sleep(0.05)
    proc = cli("cache", "prune", "--max-age", "0.01", "--path", str(db))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{db}: pruned 3 old records\n"
    assert cli("cache", "show", "--path", str(db)).stdout == f"{db}: empty\n"


def test_cache_clear(db: Path) -> None:
    proc = cli("cache", "clear", "--path", str(db))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{db}: cleared\n"
    assert cli("cache", "show", "--path", str(db)).stdout == f"{db}: empty\n"


def test_cache_missing_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "none" / "dns.sqlite3"
    for action in ("show", "prune", "clear"):
        proc = cli("cache", action, "--path", str(path))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"no persistent cache at {path}\n"
    assert not path.parent.exists()


def _files(directory: Path) -> dict[str, tuple[int, int, int]]:
    """Every file in ``directory`` with its size, mode and modification time."""
    out = {}
    for p in directory.iterdir():
        st = p.stat()
        out[p.name] = (st.st_size, st.st_mode, st.st_mtime_ns)
    return out


def test_cache_show_leaves_an_empty_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "dns.sqlite3"
    path.touch(mode=0o600)
    before = _files(tmp_path)
    for args in (["cache", "show", "--path", str(path)], ["cache", "show", "x.test", "--json"]):
        env = clean_env(PYTHONDNSCACHE_PERSIST=str(path))
        proc = cli(*args, env=env)
        assert proc.returncode == 0, proc.stderr
    assert (
        proc.stdout == json.dumps({"path": str(path), "exists": True, "rows": []}, indent=2) + "\n"
    )
    assert _files(tmp_path) == before  # still 0 bytes, 0600, untouched; no -wal, no -shm


def test_cache_show_creates_and_changes_nothing(db: Path) -> None:
    before = _files(db.parent)
    proc = cli("cache", "show", "--path", str(db), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    assert [(r["host"], r["ip"]) for r in rows] == [
        ("api.example.com", "192.0.2.1"),
        ("api.example.com", "2001:db8::1"),
        ("db.example.com", "192.0.2.2"),
    ]
    assert rows[0]["last_connected"] is not None
    assert rows[1]["last_connected"] is None
    assert _files(db.parent) == before


def test_cache_show_reads_through_a_live_writers_log(tmp_path: Path) -> None:
    path = tmp_path / "dns.sqlite3"
    store = PersistentStore(str(path))
    try:
        store.record_seen("live.example.com", ["192.0.2.7"])
        store.flush()
        assert (tmp_path / "dns.sqlite3-wal").exists()  # the writer holds the file open
        before = _files(tmp_path)
        proc = cli("cache", "show", "--path", str(path), "--json")
        assert proc.returncode == 0, proc.stderr
        assert [r["ip"] for r in json.loads(proc.stdout)["rows"]] == ["192.0.2.7"]
        assert set(_files(tmp_path)) == set(before)
    finally:
        store.close()


NOBODY = 65534


def cli_as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI, run by root as the unprivileged user nobody (imports done before the switch)."""
    code = (
        "import os, sys, sqlite3, pathlib, ipaddress, json, gettext, locale  # argparse: 3.13\n"
        "import dnscache._tools.cli.main as m, dnscache._tools.cli.cache\n"
        "import dnscache._sources.persist.store\n"
        f"os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})\n"
        "sys.exit(m.main(sys.argv[1:]))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=TIMEOUT,
    )


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory others may enter (pytest's tmp_path is 0700), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="dnscache-cli-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for p in path.iterdir():
            p.chmod(0o600)
        path.chmod(0o700)
        shutil.rmtree(path)


def _seed(path: Path) -> None:
    store = PersistentStore(str(path))
    store.record_seen("ro.example.com", ["192.0.2.9"])
    store.close()


def test_cache_show_reads_a_read_only_database(shared_dir: Path) -> None:
    path = shared_dir / "dns.sqlite3"
    _seed(path)
    path.chmod(0o444)
    shared_dir.chmod(0o555)
    before = _files(shared_dir)
    if os.geteuid() == 0:
        proc = cli_as_nobody("cache", "show", "--path", str(path))  # root could write anyway
    else:
        proc = cli("cache", "show", "--path", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "ro.example.com  192.0.2.9" in proc.stdout
    assert _files(shared_dir) == before


def test_cache_show_permission_denied_is_a_failure_not_usage(shared_dir: Path) -> None:
    path = shared_dir / "dns.sqlite3"
    _seed(path)
    if os.geteuid() == 0:
        path.chmod(0o600)  # root's, unreadable to nobody
        proc = cli_as_nobody("cache", "show", "--path", str(path))
    else:
        path.chmod(0o000)
        proc = cli("cache", "show", "--path", str(path))
    assert proc.returncode == 1
    no_traceback(proc)
    assert proc.stderr == f"dnscache cache show: error: cannot read {path}: Permission denied\n"


def test_cache_json(db: Path, tmp_path: Path) -> None:
    proc = cli("cache", "prune", "--path", str(db), "--json")
    assert json.loads(proc.stdout) == {"path": str(db), "exists": True, "pruned": 0}
    proc = cli("cache", "clear", "--path", str(db), "--json")
    assert json.loads(proc.stdout) == {"path": str(db), "exists": True, "cleared": True}
    missing = tmp_path / "none.sqlite3"
    proc = cli("cache", "show", "--path", str(missing), "--json")
    assert json.loads(proc.stdout) == {"path": str(missing), "exists": False}


def test_cache_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n")
    proc = cli("cache", "clear", "--path", str(path))
    assert proc.returncode == 2
    no_traceback(proc)
    assert proc.stderr.startswith("dnscache cache clear: error:")
    assert path.read_text() == "not a database\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_cache_default_path(tmp_path: Path, db: Path) -> None:
    xdg = tmp_path / "xdg"
    env = clean_env(XDG_CACHE_HOME=str(xdg), PYTHONDNSCACHE_PERSIST="1")
    proc = cli("cache", "show", env=env)
    assert proc.stdout == f"no persistent cache at {xdg / 'dnscache' / 'dns.sqlite3'}\n"
    env = clean_env(XDG_CACHE_HOME=str(xdg), PYTHONDNSCACHE_PERSIST=str(db))
    proc = cli("cache", "show", "db.example.com", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "192.0.2.2" in proc.stdout
