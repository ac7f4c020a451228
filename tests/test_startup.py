"""Start-up activation: the .pth line, and activate() which must never stop a program."""

from __future__ import annotations

import io
import json
import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import dnscache
from dnscache._activation import startup as _startup
from dnscache._activation.startup import PTH_LINE, activate

ROOT = Path(__file__).resolve().parent.parent

# Runs in a fresh interpreter; reports whether start-up activated the cache. It must
# not import dnscache itself before looking, or "not imported" could not be seen.
PROBE = textwrap.dedent(
    """\
    import json, socket, sys
    report = {"imported": "dnscache" in sys.modules}
    if report["imported"]:
        import dnscache
        r = dnscache.active_resolver()
        report["installed"] = dnscache.is_installed()
        report["patched"] = getattr(socket.getaddrinfo, "__dnscache__", False)
        report["config"] = None if r is None else {
            "ttl": r.config.ttl, "maxsize": r.config.maxsize, "hosts": dict(r.config.hosts),
        }
        if r is not None:
            report["same_on_reactivate"] = dnscache._activation.startup.activate() is r
    print(json.dumps(report))
    """
)


def run_probe(**env: str) -> tuple[dict[str, Any], list[str], int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")}
    clean.update(env)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=clean,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr
    return json.loads(lines[-1]), proc.stderr.splitlines(), proc.returncode


# --- the .pth file ---


def test_pth_file_in_the_source_tree_is_generated_from_pth_line() -> None:
    assert (ROOT / "src" / "dnscache.pth").read_text() == PTH_LINE + "\n"


def test_pth_file_is_installed_in_this_interpreter() -> None:
    found = [
        Path(d) / "dnscache.pth"
        for d in [*site.getsitepackages(), site.getusersitepackages()]
        if (Path(d) / "dnscache.pth").exists()
    ]
    assert found, "dnscache.pth is not installed here (pip install -e .?)"
    for path in found:
        assert path.read_text() == PTH_LINE + "\n"


def test_pth_line_is_one_import_line() -> None:
    # site executes a .pth line only if it starts with "import" and is a single line.
    assert PTH_LINE.startswith("import ")
    assert "\n" not in PTH_LINE


# --- real start-up, in a subprocess ---


def test_enabled() -> None:
    report, stderr, rc = run_probe(PYTHONDNSCACHE="1")
    assert rc == 0
    assert stderr == []
    assert report["installed"] is True and report["patched"] is True
    assert report["config"] == {"ttl": 60.0, "maxsize": 10000, "hosts": {}}
    assert report["same_on_reactivate"] is True  # runs once


@pytest.mark.parametrize("value", ["true", "YES", "on", " 1 "])
def test_enabled_spellings(value: str) -> None:
    report, stderr, rc = run_probe(PYTHONDNSCACHE=value)
    assert (rc, stderr, report["installed"]) == (0, [], True)


def test_unset_does_not_even_import() -> None:
    report, stderr, rc = run_probe()
    assert (rc, stderr, report) == (0, [], {"imported": False})


def test_empty_does_not_even_import() -> None:
    report, stderr, rc = run_probe(PYTHONDNSCACHE="")
    assert (rc, stderr, report) == (0, [], {"imported": False})


@pytest.mark.parametrize("value", ["0", "false", "off", "no"])
def test_disabled(value: str) -> None:
    report, stderr, rc = run_probe(PYTHONDNSCACHE=value)
    assert rc == 0
    assert stderr == []
    assert report.get("installed", False) is False
    assert report.get("patched", False) is False


def test_env_options_applied() -> None:
    report, stderr, rc = run_probe(
        PYTHONDNSCACHE="1",
        PYTHONDNSCACHE_TTL="5",
        PYTHONDNSCACHE_MAXSIZE="7",
        PYTHONDNSCACHE_HOSTS="svc.test=127.0.0.1",
    )
    assert (rc, stderr) == (0, [])
    assert report["config"] == {"ttl": 5.0, "maxsize": 7, "hosts": {"svc.test": ["127.0.0.1"]}}


@pytest.mark.parametrize(
    ("name", "value", "field", "default"),
    [
        ("PYTHONDNSCACHE_TTL", "abc", "ttl", 60.0),
        ("PYTHONDNSCACHE_MAXSIZE", "0", "maxsize", 10000),
        ("PYTHONDNSCACHE_HOSTS", "svc.test=nonsense", "hosts", {}),
        # A name the resolver cannot encode must be reported like any bad value,
        # not turn the whole cache off.
        ("PYTHONDNSCACHE_HOSTS", "a..b.test=127.0.0.1", "hosts", {}),
    ],
)
def test_bad_value_one_line_and_default(name: str, value: str, field: str, default: Any) -> None:
    report, stderr, rc = run_probe(PYTHONDNSCACHE="1", **{name: value})
    assert rc == 0
    assert len(stderr) == 1, stderr
    assert name in stderr[0]
    assert report["installed"] is True
    assert report["config"][field] == default


def test_bad_switch_one_line_and_off() -> None:
    report, stderr, rc = run_probe(PYTHONDNSCACHE="maybe")
    assert rc == 0
    assert len(stderr) == 1, stderr
    assert "PYTHONDNSCACHE" in stderr[0] and "maybe" in stderr[0]
    assert report.get("installed", False) is False


def test_program_exit_code_is_the_programs() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")}
    env.update(PYTHONDNSCACHE="1", PYTHONDNSCACHE_TTL="abc")
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; sys.exit(3)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 3
    assert len(proc.stderr.splitlines()) == 1


# --- activate() in this process ---


def test_activate_enabled() -> None:
    r = activate({"PYTHONDNSCACHE": "1", "PYTHONDNSCACHE_TTL": "4"})
    try:
        assert r is not None
        assert dnscache.is_installed() and dnscache.active_resolver() is r
        assert r.config.ttl == 4.0
        # Already installed: the same resolver, nothing installed twice.
        assert activate({"PYTHONDNSCACHE": "1"}) is r
    finally:
        dnscache.uninstall()
    assert not dnscache.is_installed()


@pytest.mark.parametrize("environ", [{}, {"PYTHONDNSCACHE": "0"}, {"PYTHONDNSCACHE": ""}])
def test_activate_off(environ: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert activate(environ) is None
    assert not dnscache.is_installed()
    assert capsys.readouterr().err == ""


def test_activate_bad_value(capsys: pytest.CaptureFixture[str]) -> None:
    r = activate({"PYTHONDNSCACHE": "1", "PYTHONDNSCACHE_TTL": "abc"})
    try:
        assert r is not None and r.config.ttl == 60.0
    finally:
        dnscache.uninstall()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "PYTHONDNSCACHE_TTL" in err[0]


def test_activate_never_raises_when_install_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("install blew up")

    monkeypatch.setattr(dnscache._activation.patch, "install", boom)
    assert activate({"PYTHONDNSCACHE": "1"}) is None
    assert not dnscache.is_installed()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "install blew up" in err[0]


def test_activate_never_raises_when_config_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("parse blew up")

    monkeypatch.setattr(dnscache._core.config, "parse_env", boom)
    assert activate({"PYTHONDNSCACHE": "1"}) is None
    assert not dnscache.is_installed()
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_activate_without_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", None)
    assert activate({"PYTHONDNSCACHE": "maybe"}) is None
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stderr", closed)
    assert activate({"PYTHONDNSCACHE": "maybe"}) is None


def test_activate_with_a_mapping_leaves_the_run_once_guard_alone() -> None:
    before = _startup._activated
    assert activate({"PYTHONDNSCACHE": "0"}) is None
    assert _startup._activated is before
