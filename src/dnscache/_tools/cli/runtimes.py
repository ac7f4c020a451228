"""The runtimes a program may resolve names through, and whether dnscache covers each here.

``doctor`` reads :func:`runtime_table`: for asyncio, urllib3, uvloop, trio, gevent
and eventlet, whether it is installed (``importlib.util.find_spec``, which imports
nothing), its version, whether this interpreter has imported it, and whether its
lookups go through the active resolver.

The last answer belongs to the activation layer, which owns the adapters. It is
asked through one function, ``dnscache._activation.registry.is_active(runtime)``
returning True (its adapter is applied, or its post-import hook will apply it
when the module is imported), False (an adapter exists but is not in effect) or
None (no adapter for that runtime). Until that registry exists, the adapters of
today are inspected directly (:func:`_inspect`): asyncio's and urllib3's patch
targets, and ``socket.getaddrinfo`` itself for the runtimes that call it
(trio from a worker thread; gevent and eventlet unless their monkey-patching
replaced it).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import socket
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
    Runtime("uvloop", "uvloop", "loop.getaddrinfo runs libuv's uv_getaddrinfo in C"),
    Runtime("trio", "trio", "trio.socket.getaddrinfo calls socket.getaddrinfo in a thread"),
    Runtime("gevent", "gevent", "monkey-patching swaps socket.getaddrinfo for gevent's resolver"),
    Runtime("eventlet", "eventlet", "monkey-patching swaps socket.getaddrinfo for greendns"),
)


def _ours(func: Any) -> bool:
    return bool(getattr(func, "__dnscache__", False))


def _installed() -> bool:
    from ..._activation.patch import is_installed

    return is_installed()


def _inspect(name: str) -> bool | None:
    """Coverage from today's adapters, for when the registry is not there."""
    socket_ours = _ours(socket.getaddrinfo)
    if name == "asyncio":
        module = sys.modules.get("asyncio.base_events")
        if module is None:
            return _installed()  # the post-import hook patches it on import
        return _ours(module.BaseEventLoop.__dict__.get("getaddrinfo"))
    if name == "urllib3":
        module = sys.modules.get("urllib3.util.connection")
        if module is None:
            return _installed()
        return _ours(module.create_connection)
    if name in ("trio", "gevent", "eventlet"):
        return socket_ours  # they end in socket.getaddrinfo, whoever's it is now
    return None  # uvloop: no adapter


def _registry() -> Callable[[str], bool | None]:
    try:
        from ..._activation import registry  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return _inspect
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
    if row["runtime"] == "trio":
        return "yes, with a thread hop"
    return "yes" if row["imported"] else "yes, once imported"
