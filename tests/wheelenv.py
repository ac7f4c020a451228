"""A Python with dnscache installed from a wheel, the way users get it.

The test venv installs dnscache in editable mode: its ``.pth`` adds ``src`` to
``sys.path`` and pytest sees an editable distribution, which it treats
differently (``_is_editable_install``). Start-up and pytest-plugin behaviour
must be checked as a user meets it: ``pip install pydnscache`` from a wheel.

:func:`wheel_python` builds the wheel (pip, with build isolation, as CI would),
makes a venv without pip, links every other package of the test venv into it
(pytest, cachetools, dnspython...) and installs the wheel there with
``pip --python``. Built once per test session.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 600  # building the wheel may fetch hatchling from the package index


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        env=clean_env(),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that would change a child's start-up."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHONDNSCACHE", "PYTEST_", "COV_", "COVERAGE_"))
        and k not in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONNOUSERSITE", "PYTHONWARNINGS")
    }
    env.update(extra)
    return env


def _ours(name: str) -> bool:
    return (
        (name.startswith("pydnscache-") and name.endswith(".dist-info"))
        or name.startswith(("dnscache", "__editable__", "_editable_impl_pydnscache"))
        or name.endswith(".pth")  # another package's start-up hook is not what we test
        or name == "__pycache__"
    )


@functools.cache
def wheel_python(root: Path) -> Path:
    """The interpreter of a venv under ``root`` with dnscache installed from a wheel."""
    dist = root / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, ROOT)
    (wheel,) = dist.glob("pydnscache-*.whl")
    venv = root / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip()
    )
    ours = Path(sysconfig.get_path("purelib"))
    for entry in ours.iterdir():
        if not _ours(entry.name):
            (purelib / entry.name).symlink_to(entry)
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel)
    where = _run(python, "-c", "import dnscache; print(dnscache.__file__)").strip()
    assert Path(where).is_relative_to(purelib), where
    assert (purelib / "dnscache.pth").is_file()
    return python
