"""Print pip constraints pinning every declared dependency to its declared minimum.

``scripts/test.sh`` installs the package into a second venv with these
constraints and runs the suite there, so the ``>=`` floors in pyproject.toml are
tested facts, not hopes. Every requirement of the project (runtime, every extra,
the build backend) must either carry a ``>=`` floor (or an exact ``==`` pin) or be listed in
``UNPINNED`` with a reason; anything else is an error, so a new dependency
cannot slip in untested.

Usage: ``python scripts/floors.py [pyproject.toml] > constraints.txt``
(``--build`` prints the build backend's pins instead).
"""

from __future__ import annotations

import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Requirements without a floor on purpose: they take no part in running the suite.
UNPINNED = {
    "types-cachetools": "type stubs, read only by mypy, which the floors run does not run",
}

# "name[extras] >=1.2, <3 ; marker": the name and the version after ">=".
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)")
_FLOOR = re.compile(r"(?:>=|==)\s*([0-9][0-9A-Za-z.+!-]*)")


def floor_of(requirement: str) -> tuple[str, str | None]:
    """``"dnspython>=2.6.1"`` -> ``("dnspython", "2.6.1")``; ``==`` pins count as floors.

    A requirement with neither gives ``(name, None)``.
    """
    match = _REQUIREMENT.match(requirement)
    if match is None:
        raise ValueError(f"cannot read requirement {requirement!r}")
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()  # PEP 503 normalised
    floor = _FLOOR.search(match.group(2))
    return name, floor.group(1) if floor else None


def pins(requirements: list[str]) -> list[str]:
    """``name==floor`` for each requirement (deduplicated; the highest floor wins)."""
    floors: dict[str, str] = {}
    problems = []
    for requirement in requirements:
        name, floor = floor_of(requirement)
        if floor is None:
            if name not in UNPINNED:
                problems.append(f"{requirement!r} has no >= floor")
            continue
        if name not in floors or _key(floor) > _key(floors[name]):
            floors[name] = floor
    if problems:
        raise SystemExit("floors.py: " + "; ".join(problems))
    return [f"{name}=={floors[name]}" for name in sorted(floors)]


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--")]
    path = pathlib.Path(args[0]) if args else ROOT / "pyproject.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    if "--build" in argv:
        requirements = list(data["build-system"]["requires"])
    else:
        project = data["project"]
        requirements = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            requirements.extend(extra)
    print("\n".join(pins(requirements)))


if __name__ == "__main__":
    main(sys.argv[1:])
