"""The runtimes a program may resolve names through, and whether dnscache covers each here.

``doctor`` reads :func:`runtime_table`: for asyncio, urllib3, uvloop, trio, gevent
and eventlet, whether it is installed (``importlib.util.find_spec``, which imports
nothing), its version, whether this interpreter has imported it, and whether its
lookups go through the active resolver.

The last answer belongs to the activation layer, which owns the adapters:
``dnscache._activation.registry.is_active(runtime)`` returns True (its adapter is
applied, or will be when the module is imported), False (an adapter exists but is
not in effect) or None (no adapter for that runtime).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Runtime:
    name: str  # the module, and the registry's name for it
    distribution: str  # for its version
    path: str  # how its lookups reach (or miss) socket.getaddrinfo


RUNTIMES = (
    Runtime(
        "asyncio",
        "",
        "loop.getaddrinfo: hits answered in the loop, misses in the executor",
    ),
    Runtime("urllib3", "urllib3", "util.connection.create_connection: Happy Eyeballs, cached"),
    Runtime(
        "uvloop",
        "uvloop",
        "Loop.getaddrinfo and create_connection: hits in the loop, misses in the executor",
    ),
    Runtime(
        "trio",
        "trio",
        "hostname-resolver slot: hits after one checkpoint, misses in trio's thread",
    ),
    Runtime("gevent", "gevent", "after monkey-patching, the cache on top of gevent's resolver"),
    Runtime("eventlet", "eventlet", "after monkey_patch(), the cache on top of greendns"),
)


def _registry() -> Callable[[str], bool | None]:
    from ..._activation import registry

    is_active: Callable[[str], bool | None] = registry.is_active
    return is_active


def _version(runtime: Runtime) -> str | None:
    if not runtime.distribution:
        return sys.version.split()[0]  # asyncio is the standard library's
    try:
        return importlib.metadata.version(runtime.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def runtime_table() -> list[dict[str, Any]]:
    """One row per runtime: installed, version, imported, covered (True/False/None)."""
    is_active = _registry()
    rows = []
    for runtime in RUNTIMES:
        installed = importlib.util.find_spec(runtime.name) is not None
        try:
            covered = is_active(runtime.name) if installed else None
        except Exception:  # a registry that fails must not fail doctor
            covered = None
        rows.append(
            {
                "runtime": runtime.name,
                "installed": installed,
                "version": _version(runtime) if installed else None,
                "imported": runtime.name in sys.modules,
                "covered": covered,
                "path": runtime.path,
            }
        )
    return rows


def describe(row: dict[str, Any]) -> str:
    """The 'covered here' cell for people."""
    if not row["installed"]:
        return "-"
    covered = row["covered"]
    if covered is None:
        return "no: no adapter"
    if not covered:
        return "no"
    return "yes" if row["imported"] else "yes, once imported"
