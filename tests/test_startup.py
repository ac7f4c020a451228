"""Start-up activation: the .pth line, activate() which must never stop a program, and
what start-up costs (which modules it imports; the timings are in benchmarks/bench_startup.py).
"""

from __future__ import annotations

import io
import json
import os
import site
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path
from typing import Any

import pytest

import dnscache
from dnscache._activation import startup as _startup
from dnscache._activation.startup import OFF_VALUES, ON_VALUES, PTH_LINE, activate
from dnscache._core import envvars as _config

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


def clean_env(**env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")}
    clean.pop("PYTHONPATH", None)
    clean.update(env)
    return clean


def run(
    code: str, *flags: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *flags, "-c", code],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def run_probe(*flags: str, **env: str) -> tuple[dict[str, Any], list[str], int]:
    proc = run(PROBE, *flags, **env)
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr
    return json.loads(lines[-1]), proc.stderr.splitlines(), proc.returncode


def run_json(code: str, *flags: str, **env: str) -> Any:
    proc = run(code, *flags, **env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


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


def test_the_switch_spellings_are_the_configs() -> None:
    # The .pth line decides "off" without importing dnscache, from its own copy.
    assert set(ON_VALUES) == _config._TRUE
    assert set(OFF_VALUES) == _config._FALSE
    for value in (*ON_VALUES, *OFF_VALUES, " On ", "maybe"):
        flag = _config.env_flag(value)
        normal = value.strip().lower()
        assert (normal in ON_VALUES, normal in OFF_VALUES) == (flag is True, flag is False)


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


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off", " OFF ", "False"])
def test_off_values_do_not_even_import(value: str) -> None:
    report, stderr, rc = run_probe(PYTHONDNSCACHE=value)
    assert (rc, stderr, report) == (0, [], {"imported": False})


@pytest.mark.parametrize("flag", ["-E", "-I"])
def test_ignore_environment_disables_activation(flag: str) -> None:
    # -E/-I tell Python to ignore PYTHON* variables; PYTHONDNSCACHE is one of them.
    report, stderr, rc = run_probe(flag, PYTHONDNSCACHE="1")
    assert (rc, stderr, report) == (0, [], {"imported": False})


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


def test_bad_switch_says_so_once_even_if_activated_twice() -> None:
    # site runs a .pth twice where lib64 is a symlink to lib; sitecustomize may call too.
    code = "import dnscache._activation.startup as s; s.activate(); s.activate(); import socket"
    proc = run(code, PYTHONDNSCACHE="maybe")
    assert proc.returncode == 0
    assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_program_exit_code_is_the_programs() -> None:
    proc = run("import socket, sys; sys.exit(3)", PYTHONDNSCACHE="1", PYTHONDNSCACHE_TTL="abc")
    assert proc.returncode == 3
    assert len(proc.stderr.splitlines()) == 1


def test_broken_install_says_what_is_missing_once(tmp_path: Path) -> None:
    # A dependency that cannot be imported (as if pip had left it out): the program
    # runs unpatched, and stderr gets one line naming the problem, not a traceback.
    (tmp_path / "cachetools.py").write_text("raise ImportError('No module named cachetools')\n")
    code = textwrap.dedent(
        """\
        import asyncio, socket, urllib3
        print(getattr(socket.getaddrinfo, "__dnscache__", False))
        """
    )
    proc = run(code, PYTHONDNSCACHE="1", PYTHONPATH=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "PYTHONDNSCACHE" in lines[0] and "cachetools" in lines[0]


# --- what start-up costs: it waits for socket, and imports only what the patch needs ---

MODULES_AT_START = "import sys, json; print(json.dumps(sorted(sys.modules)))"
# Everything PYTHONDNSCACHE=1 may add to a program that never imports socket.
STARTUP_MODULES = {
    "__future__",
    "dnscache",
    "dnscache._activation",
    "dnscache._activation.pending",
    "dnscache._activation.postimport",
    "dnscache._activation.startup",
    "dnscache._activation.targets",
}


def test_start_up_imports_only_the_waiting_hook() -> None:
    without = set(run_json(MODULES_AT_START))
    with_ = set(run_json(MODULES_AT_START, PYTHONDNSCACHE="1"))
    assert without <= with_
    assert with_ - without <= STARTUP_MODULES
    assert "socket" not in with_


def test_first_import_of_socket_installs_without_heavy_imports() -> None:
    report = run_json(
        textwrap.dedent(
            """\
            import json, sys
            from socket import getaddrinfo, create_connection
            print(json.dumps({
                "patched": [getattr(f, "__dnscache__", False)
                            for f in (getaddrinfo, create_connection)],
                "loaded": sorted(m for m in ("asyncio", "wrapt", "dns", "importlib.metadata",
                                             "urllib3", "dnscache._tools.cli")
                                 if m in sys.modules),
            }))
            """
        ),
        PYTHONDNSCACHE="1",
    )
    # The functions the program bound by name are the patched ones.
    assert report["patched"] == [True, True]
    # dnspython, asyncio, wrapt (never), the CLI: loaded on first use only.
    assert report["loaded"] == []


def test_asyncio_and_urllib3_imported_later_are_patched() -> None:
    report = run_json(
        textwrap.dedent(
            """\
            import json, socket
            import asyncio, urllib3, urllib3.util.connection
            import dnscache
            print(json.dumps([
                getattr(f, "__dnscache__", False) for f in (
                    socket.getaddrinfo,
                    asyncio.base_events.BaseEventLoop.getaddrinfo,
                    urllib3.util.connection.create_connection,
                )
            ]))
            """
        ),
        PYTHONDNSCACHE="1",
    )
    assert report == [True, True, True]


def test_asyncio_as_the_first_import_is_patched_too() -> None:
    # socket is first imported half-way through asyncio.base_events' own import.
    report = run_json(
        "import asyncio, socket, json; print(json.dumps([getattr(f, '__dnscache__', False) "
        "for f in (socket.getaddrinfo, asyncio.base_events.BaseEventLoop.getaddrinfo)]))",
        PYTHONDNSCACHE="1",
    )
    assert report == [True, True]


def test_program_that_imports_dnscache_before_socket() -> None:
    # The first import of socket then comes from dnscache's own modules: the
    # activation waits until they are loaded, then installs.
    report = run_json(
        textwrap.dedent(
            """\
            import json, sys
            import dnscache
            assert "socket" not in sys.modules
            resolver_class = dnscache.Resolver
            import socket
            installed = dnscache.active_resolver()
            print(json.dumps({
                "patched": getattr(socket.getaddrinfo, "__dnscache__", False),
                "ttl": installed.config.ttl,
                "same": dnscache.install() is installed,
            }))
            """
        ),
        PYTHONDNSCACHE="1",
        PYTHONDNSCACHE_TTL="7",
    )
    assert report == {"patched": True, "ttl": 7.0, "same": True}


def test_reload_keeps_the_patch_and_the_real_loader() -> None:
    report = run_json(
        textwrap.dedent(
            """\
            import importlib, json, socket, warnings
            from importlib.machinery import SourceFileLoader
            warnings.simplefilter("error")
            import dnscache
            before = socket.getaddrinfo
            again = importlib.reload(socket)
            report = {
                "same_module": again is socket,
                "patched": getattr(socket.getaddrinfo, "__dnscache__", False),
                "loaders": [type(socket.__loader__).__name__,
                            type(socket.__spec__.loader).__name__],
            }
            dnscache.uninstall()  # restores the reloaded module's own function, no warning
            report["restored"] = socket.getaddrinfo.__module__ == "socket" and not getattr(
                socket.getaddrinfo, "__dnscache__", False)
            report["installed"] = dnscache.is_installed()
            print(json.dumps(report))
            """
        ),
        PYTHONDNSCACHE="1",
    )
    assert report == {
        "same_module": True,
        "patched": True,
        "loaders": ["SourceFileLoader", "SourceFileLoader"],
        "restored": True,
        "installed": False,
    }


def test_python_dash_m_runs_with_activation(tmp_path: Path) -> None:
    (tmp_path / "probe_main.py").write_text(
        "import socket\nprint(getattr(socket.getaddrinfo, '__dnscache__', False))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "probe_main"],
        env=clean_env(PYTHONDNSCACHE="1"),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, "True", "")


def test_package_import_is_lazy() -> None:
    loaded = run_json("import dnscache, sys, json; print(json.dumps(sorted(sys.modules)))")
    assert [m for m in loaded if m.startswith("dnscache")] == ["dnscache"]


# --- the lazy package ---


def test_public_names_resolve_and_dir_lists_them() -> None:
    assert set(dnscache._LAZY) == {*dnscache.__all__, "__version__"}
    for name in dnscache.__all__:
        assert getattr(dnscache, name) is not None
    assert set(dnscache.__all__) <= set(dir(dnscache))
    assert "__version__" in dir(dnscache)
    with pytest.raises(AttributeError, match="no_such_name"):
        dnscache.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_star_import_gives_the_public_names() -> None:
    names: dict[str, Any] = {}
    exec("from dnscache import *", names)
    assert set(dnscache.__all__) <= set(names)
    assert names["Resolver"] is dnscache.Resolver


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
    before = _startup._state
    assert activate({"PYTHONDNSCACHE": "0"}) is None
    assert _startup._state == before


# --- sitecustomize: the example, and copies of 0.1's that import dnscache._startup ---

SITECUSTOMIZE_0_1 = """\
import os

if os.environ.get("PYTHONDNSCACHE"):
    try:
        from dnscache._startup import activate
    except ImportError:  # dnscache is not installed in this interpreter: stay out of the way
        pass
    else:
        activate()
"""

REPORT = (
    "import json, socket, sys; print(json.dumps(["
    "'dnscache' in sys.modules, getattr(socket.getaddrinfo, '__dnscache__', False)]))"
)


def run_without_pth(sitecustomize: str | None, tmp_path: Path, **env: str) -> list[bool]:
    """REPORT in an interpreter that imports dnscache from src but never runs our .pth.

    The base interpreter of this venv, with src and this venv's site-packages on
    PYTHONPATH: entries there are not site directories, so their .pth files are not
    processed, as on a platform that strips them.
    """
    site_dir = tmp_path / "site"
    site_dir.mkdir(exist_ok=True)
    if sitecustomize is not None:
        (site_dir / "sitecustomize.py").write_text(sitecustomize)
    path = os.pathsep.join([str(site_dir), str(ROOT / "src"), sysconfig.get_path("purelib")])
    proc = subprocess.run(
        [sys._base_executable, "-c", REPORT],  # type: ignore[attr-defined]
        env=clean_env(PYTHONPATH=path, **env),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    result: list[bool] = json.loads(proc.stdout)
    return result


def test_the_old_import_path_still_works() -> None:
    from dnscache._startup import activate as old

    assert old is dnscache.activate is activate


@pytest.mark.parametrize("version", ["example", "0.1 copy"])
def test_sitecustomize_activates_where_pth_files_are_not_run(version: str, tmp_path: Path) -> None:
    text = (
        (ROOT / "sitecustomize_example" / "sitecustomize.py").read_text()
        if version == "example"
        else SITECUSTOMIZE_0_1
    )
    assert run_without_pth(None, tmp_path, PYTHONDNSCACHE="1") == [False, False]  # no .pth here
    assert run_without_pth(text, tmp_path, PYTHONDNSCACHE="1") == [True, True]


@pytest.mark.parametrize("value", [None, "0", "off", ""])
def test_sitecustomize_example_imports_nothing_when_off(value: str | None, tmp_path: Path) -> None:
    text = (ROOT / "sitecustomize_example" / "sitecustomize.py").read_text()
    env = {} if value is None else {"PYTHONDNSCACHE": value}
    assert run_without_pth(text, tmp_path, **env) == [False, False]
