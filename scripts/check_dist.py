"""Check what the built sdist and wheel ship; exit non-zero naming each problem.

Run by ``scripts/test.sh`` after ``twine check --strict`` on the same files:
twine checks that an index will accept the metadata and render the README; this
checks that the files a user needs are in the wheel and nothing else is.

Usage: ``python scripts/check_dist.py DIST_DIR``
"""

from __future__ import annotations

import email.parser
import pathlib
import re
import sys
import tarfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _version() -> str:
    # The one source of the version, which hatch reads too (pyproject's [tool.hatch.version]).
    source = (ROOT / "src" / "dnscache" / "_core" / "version.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', source, re.M)
    if match is None:
        raise SystemExit("check_dist.py: no __version__ in src/dnscache/_core/version.py")
    return match.group(1)


def check_wheel(path: pathlib.Path, version: str) -> list[str]:
    problems = []
    with zipfile.ZipFile(path) as wheel:
        names = set(wheel.namelist())
        info = f"pydnscache-{version}.dist-info"
        metadata = email.parser.Parser().parsestr(
            wheel.read(f"{info}/METADATA").decode("utf-8"), headersonly=True
        )
    wanted = {
        f"{info}/licenses/LICENSE": "the license (PEP 639 license-files)",
        "dnscache/py.typed": "the PEP 561 marker",
        "dnscache.pth": "the start-up hook",
        "dnscache/__init__.py": "the package",
        "dnscache/_core/config.py": "the subpackages",
    }
    for name, what in wanted.items():
        if name not in names:
            problems.append(f"{path.name}: {what} ({name}) is missing")
    for name in sorted(names):
        top = name.split("/", 1)[0]
        if top not in ("dnscache", "dnscache.pth", info):
            problems.append(f"{path.name}: unexpected file {name}")
        if "__pycache__" in name or name.endswith(".pyc"):
            problems.append(f"{path.name}: compiled file {name}")
    # PEP 639's License-Expression and License-File need Metadata-Version 2.4 or later.
    meta_version = tuple(int(x) for x in (metadata.get("Metadata-Version") or "0").split("."))
    if meta_version < (2, 4):
        problems.append(f"{path.name}: Metadata-Version {metadata.get('Metadata-Version')} < 2.4")
    expected = {
        "Name": "pydnscache",
        "Version": version,
        "License-Expression": "MIT",
        "License-File": "LICENSE",
        "Requires-Python": ">=3.11",
    }
    for field, value in expected.items():
        if metadata.get(field) != value:
            problems.append(f"{path.name}: {field} is {metadata.get(field)!r}, not {value!r}")
    classifiers = metadata.get_all("Classifier") or []
    if "Framework :: Pytest" not in classifiers:
        problems.append(f"{path.name}: no 'Framework :: Pytest' classifier")
    if any(c.startswith("License ::") for c in classifiers):
        problems.append(f"{path.name}: a License classifier beside License-Expression")
    if not metadata.get_all("Project-URL"):
        problems.append(f"{path.name}: no Project-URL")
    return problems


def check_sdist(path: pathlib.Path) -> list[str]:
    with tarfile.open(path) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    wanted = ("LICENSE", "README.md", "pyproject.toml", "src/dnscache.pth", "tests/conftest.py")
    return [f"{path.name}: {name} is missing" for name in wanted if name not in names]


def main(argv: list[str]) -> None:
    dist = pathlib.Path(argv[0])
    version = _version()
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        raise SystemExit(f"check_dist.py: want one wheel and one sdist in {dist}")
    problems = check_wheel(wheels[0], version) + check_sdist(sdists[0])
    if problems:
        raise SystemExit("check_dist.py:\n  " + "\n  ".join(problems))
    print(f"check_dist.py: {wheels[0].name} and {sdists[0].name} ship what they should")


if __name__ == "__main__":
    main(sys.argv[1:])
