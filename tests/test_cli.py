"""The command line, run for real: ``python -m dnscache ...`` in a subprocess.

Names are served by the loopback DNS server (the ``dns_server`` fixture) through
``--backend dnspython --nameserver``, so nothing here depends on the machine's
resolver or network.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
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
    ],
)
def test_help(command: list[str]) -> None:
    proc = cli(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: {' '.join(['dnscache', *command])}")
    assert proc.stderr == ""


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["lookup"],
        ["lookup", "x.test", "--family", "5"],
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
    assert proc.stderr == "dnscache: nope.invalid: [Errno -2] Name or service not known\n"
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
    assert literal["source"] == "literal"
    assert literal["ttl"] is None


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
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "dnscache.pth" in out
    assert "PYTHONDNSCACHE is not set" in out
    assert "socket.getaddrinfo: the original" in out
    assert "socket.create_connection: the original" in out
    assert "bypass socket.getaddrinfo" in out
    assert "Nameservers" in out


def test_doctor_when_activated_with_a_bad_value() -> None:
    env = clean_env(PYTHONDNSCACHE="1", PYTHONDNSCACHE_MAXSIZE="lots")
    proc = cli("doctor", env=env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "PYTHONDNSCACHE='1'" in out
    assert "socket.getaddrinfo: dnscache" in out
    assert "active resolver: hits=" in out
    assert "problem: dnscache: ignoring PYTHONDNSCACHE_MAXSIZE='lots'" in out
    assert re.search(r"maxsize\s+10000\s+default \(PYTHONDNSCACHE_MAXSIZE ignored\)", out)


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
