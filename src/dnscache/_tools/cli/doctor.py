"""``dnscache doctor``: is activation installed, what is configured, what is patched, and
what in this environment would bypass ``socket.getaddrinfo`` altogether."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import os
import site
import socket
import sys
import typing
from typing import Any

from .common import cache_path
from .options import PROG, Command
from .output import table

# Clients whose name resolution never goes through socket.getaddrinfo, and why.
BYPASSES = {
    "uvloop": "asyncio's loop.getaddrinfo() runs libuv's uv_getaddrinfo in C, "
    "not socket.getaddrinfo (only with uvloop's event loop installed)",
    "aiodns": "queries DNS itself through c-ares; aiohttp's AsyncResolver uses it, "
    "so pick aiohttp's ThreadedResolver to go through the cache",
    "pycares": "c-ares bindings: a complete DNS client in C that never calls socket.getaddrinfo",
    "pycurl": "libcurl resolves names in C (its threaded resolver or c-ares); "
    "use CURLOPT_RESOLVE for overrides",
    "grpc": "gRPC core resolves names in C (c-ares or its native resolver); "
    "set GRPC_DNS_RESOLVER=native to at least use the system's resolver",
}


def _site_dirs() -> list[str]:
    dirs: list[str] = []
    with contextlib.suppress(AttributeError):  # virtualenv's old site.py lacks these
        dirs.extend(site.getsitepackages())
    with contextlib.suppress(AttributeError):
        dirs.append(site.getusersitepackages())
    seen: list[str] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def _show(value: Any) -> str:
    if isinstance(value, typing.Mapping):
        return repr({k: list(v) if isinstance(v, tuple) else v for k, v in value.items()})
    if callable(value):
        return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', value)!r}"
    return repr(value)


def run(args: argparse.Namespace) -> int:
    import dnscache

    from ..._activation.startup import PTH_LINE
    from ..._core.config import ENV_PREFIX, env_flag, env_name, parse_env
    from ..._sources.sysfiles import load_facts

    print(f"{PROG} {dnscache.__version__} on Python {sys.version.split()[0]} ({sys.executable})")

    print("\nStart-up activation (dnscache.pth)")
    found = []
    for directory in _site_dirs():
        path = os.path.join(directory, "dnscache.pth")
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as pth:
                    content = pth.read()
            except OSError as exc:
                print(f"  {path}: unreadable ({exc.strerror})")
                continue
            ok = content.strip() == PTH_LINE
            found.append(ok)
            state = "ok" if ok else "differs from this version's PTH_LINE: reinstall pydnscache"
            print(f"  {path}: {state}")
    if not found:
        print("  not installed in any site directory: PYTHONDNSCACHE=1 will do nothing;")
        print("  reinstall pydnscache, or call dnscache.install() from sitecustomize.py")
    if sys.flags.no_site:
        print("  this interpreter runs with -S: site-packages .pth files are not processed")
    raw = os.environ.get(ENV_PREFIX)
    flag = env_flag(raw)
    if raw is None:
        print(f"  {ENV_PREFIX} is not set: the .pth does nothing (set {ENV_PREFIX}=1)")
    elif flag is None:
        print(f"  {ENV_PREFIX}={raw!r} is not a switch: the cache stays off (use 1 or 0)")
    elif flag:
        fires = "fires at start-up" if any(found) else "would fire, but no valid .pth is installed"
        print(f"  {ENV_PREFIX}={raw!r}: activation {fires}")
    else:
        print(f"  {ENV_PREFIX}={raw!r}: switched off")

    config, problems = parse_env()
    print(f"\nConfiguration ({ENV_PREFIX}_* variables)")
    rows = [["option", "value", "from"]]
    for f in dataclasses.fields(config):
        name = env_name(f.name)
        if name not in os.environ:
            origin = "default"
        elif any(f"ignoring {name}=" in problem for problem in problems):
            origin = f"default ({name} ignored)"
        else:
            origin = name
        rows.append([f.name, _show(getattr(config, f.name)), origin])
    print("  " + table(rows).replace("\n", "\n  "))
    for problem in problems:
        print(f"  problem: {problem}")

    print("\nPatched in this interpreter")
    for name in ("getaddrinfo", "create_connection"):
        ours = getattr(getattr(socket, name), "__dnscache__", False)
        print(f"  socket.{name}: {'dnscache' if ours else 'the original'}")
    active = dnscache.active_resolver()
    if active is not None:
        counters = dataclasses.asdict(active.stats())
        print("  active resolver: " + " ".join(f"{k}={v}" for k, v in counters.items()))

    print("\nInstalled clients that bypass socket.getaddrinfo")
    bypassing = [name for name in BYPASSES if importlib.util.find_spec(name) is not None]
    for name in bypassing:
        print(f"  {name}: {BYPASSES[name]}")
    if not bypassing:
        print(f"  none of {', '.join(BYPASSES)}")

    print("\nNameservers")
    facts = load_facts()
    system = ", ".join(facts.nameservers) or "none listed"
    print(f"  /etc/resolv.conf: {system}")
    if config.backend == "dnspython":
        mine = ", ".join(config.nameservers) or "resolv.conf's"
        print(f"  backend dnspython asks: {mine}")
    else:
        print("  backend system: libc's getaddrinfo decides (hosts file, nsswitch, resolv.conf)")

    path = cache_path(None)
    state = "exists" if os.path.exists(path) else "not created yet"
    print(f"\nPersistent cache\n  {path}: {state}")
    return 0


COMMAND = Command(
    name="doctor",
    help="check activation, configuration and what bypasses the cache",
    description="Report whether start-up activation is installed and would fire, the "
    "configuration from the environment (with any bad values), what is patched in this "
    "interpreter, installed clients that bypass socket.getaddrinfo, and the nameservers.",
    run=run,
)
