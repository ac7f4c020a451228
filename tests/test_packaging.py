"""Packaging facts that must stay true: one version source, and a floor for every dependency."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import pathlib
import re
import tomllib
from types import ModuleType

import pytest

import dnscache

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _floors() -> ModuleType:
    return _script("floors")


def test_the_version_has_one_source() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert importlib.metadata.version("pydnscache") == dnscache.__version__
    # hatch reads it with a regex, without importing dnscache: it must stay a plain literal.
    source = (ROOT / "src" / "dnscache" / "_core" / "version.py").read_text(encoding="utf-8")
    assert re.search(r'^__version__ = "[0-9][^"]*"$', source, re.M)
    assert (
        tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["hatch"][
            "version"
        ]["path"]
        == "src/dnscache/_core/version.py"
    )
    # The floors step checks the built files against the same source.
    assert _script("check_dist")._version() == dnscache.__version__


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        ("dnspython>=2.6.1", ("dnspython", "2.6.1")),
        ("prometheus_client >= 0.17", ("prometheus-client", "0.17")),
        ("urllib3[socks]>=2,<3 ; python_version >= '3.11'", ("urllib3", "2")),
        ("ruff==0.17.6", ("ruff", "0.17.6")),
        ("types-cachetools", ("types-cachetools", None)),
    ],
)
def test_floor_of_reads_the_lower_bound(requirement: str, expected: tuple[str, str | None]) -> None:
    assert _floors().floor_of(requirement) == expected


def test_every_requirement_has_a_floor_or_a_reason() -> None:
    floors = _floors()
    assert floors.pins(["a>=1", "a>=1.2", "b>=0.3"]) == ["a==1.2", "b==0.3"]
    with pytest.raises(SystemExit, match="'c' has no >= floor"):
        floors.pins(["c"])
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    runtime = floors.pins(data["project"]["dependencies"])
    assert {pin.split("==")[0] for pin in runtime} == {"dnspython", "cachetools"}
    assert floors.pins(data["build-system"]["requires"])[0].startswith("hatchling==")
