"""``PYTHONDNSCACHE_PERSIST``: an absolute path, a switch for the default path, or off.

Issue 11 item 5: ``PYTHONDNSCACHE_PERSIST=2`` (or ``nan``, ``merge``, ``None``...) created
an sqlite file of that name in the current directory. Each case runs a real program
(``PYTHONDNSCACHE=1``, the ``.pth`` start-up, one lookup, a normal exit) in an empty
private working directory, and checks its stderr and every file under that directory.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from dnscache import Config
from dnscache._core.config import parse_env

PROGRAM = textwrap.dedent(
    """\
    import json, socket
    socket.getaddrinfo("localhost", 80)  # an answer to remember, if persisting
    import dnscache
    resolver = dnscache.active_resolver()
    print(json.dumps({"installed": resolver is not None,
                      "persist": resolver.config.persist if resolver else None}))
    """
)


def run(tmp_path: Path, value: str) -> tuple[dict[str, Any], str, list[str]]:
    """(the program's report, its stderr, every path under tmp_path afterwards)."""
    cwd = tmp_path / "cwd"
    home = tmp_path / "home"
    for d in (cwd, home):
        d.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONDNSCACHE", "XDG_"))}
    env.update(PYTHONDNSCACHE="1", PYTHONDNSCACHE_PERSIST=value, HOME=str(home))
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    return json.loads(done.stdout), done.stderr, files


@pytest.mark.parametrize(
    "value",
    ["2", "nan", "merge", "None", "dns.sqlite3", "./dns.sqlite3", "~/dns.sqlite3", "-1", " 1x"],
)
def test_anything_else_warns_once_and_creates_nothing(tmp_path: Path, value: str) -> None:
    report, stderr, files = run(tmp_path, value)
    assert report == {"installed": True, "persist": None}  # the rest of dnscache still runs
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "PYTHONDNSCACHE_PERSIST" in lines[0] and repr(value) in lines[0]
    assert files == ["cwd", "home"]


@pytest.mark.parametrize("value", ["0", "false", "no", "off", ""])
def test_off_is_quiet(tmp_path: Path, value: str) -> None:
    report, stderr, files = run(tmp_path, value)
    assert (report, stderr, files) == ({"installed": True, "persist": None}, "", ["cwd", "home"])


@pytest.mark.parametrize("value", ["1", "true", "yes", "on", "ON"])
def test_a_switch_means_the_default_path(tmp_path: Path, value: str) -> None:
    report, stderr, files = run(tmp_path, value)
    db = tmp_path / "home" / ".cache" / "dnscache" / "dns.sqlite3"
    assert report == {"installed": True, "persist": str(db)}
    assert stderr == ""
    assert "home/.cache/dnscache/dns.sqlite3" in files
    assert [f for f in files if f.startswith("cwd/")] == []
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700


def test_an_absolute_path_is_used(tmp_path: Path) -> None:
    db = tmp_path / "home" / "state" / "dns.sqlite3"
    report, stderr, files = run(tmp_path, str(db))
    assert (report["persist"], stderr) == (str(db), "")
    assert "home/state/dns.sqlite3" in files
    assert [f for f in files if f.startswith("cwd/")] == []


def test_parse_env_names_the_variable() -> None:
    config, problems = parse_env({"PYTHONDNSCACHE_PERSIST": "merge"})
    assert config.persist is None
    assert len(problems) == 1 and "PYTHONDNSCACHE_PERSIST='merge'" in problems[0]


@pytest.mark.parametrize("value", ["dns.sqlite3", "./x", "a\x00b", "/a\x00b"])
def test_the_option_wants_an_absolute_path(value: str) -> None:
    with pytest.raises(ValueError, match="absolute"):
        Config(persist=value)


def test_the_option_takes_absolute_paths_and_pathlike(tmp_path: Path) -> None:
    assert Config(persist=tmp_path / "x").persist == str(tmp_path / "x")
    assert Config(persist="").persist is None
    with pytest.raises(TypeError):
        Config(persist=b"/tmp/x")  # type: ignore[arg-type]
