"""``dnscache doctor``: is activation installed, what is configured, what is patched, and
what in this environment would bypass ``socket.getaddrinfo`` altogether.

It gates CI: the exit status is 1 when it finds a problem, 0 otherwise, and
``--json`` carries the same verdict (``ok``, ``status``, ``problems``). A
problem is something that makes the process behave otherwise than its
environment asks:

* *activation*: ``PYTHONDNSCACHE`` is on but start-up activation cannot fire
  (no ``dnscache.pth``, a stale one, ``python -S``) or did not (this very
  interpreter is not patched); it is set to something that is not a switch;
  or an installed ``.pth`` is not this version's;
* *unknown variable*: a ``PYTHONDNSCACHE_*`` name (or one close to it) that no
  option has, which Config silently ignores, with a did-you-mean from the
  option table;
* *bad value*: a variable whose value Config could not use (the default applies).

It also reports which runtimes (asyncio, urllib3, uvloop, trio, gevent, eventlet)
are installed and whether each one's lookups are covered here (:mod:`.runtimes`).

A missing ``.pth`` while ``PYTHONDNSCACHE`` is unset is reported, not counted:
nothing was asked of it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import importlib.util
import os
import site
import socket
import sys
import typing
from collections.abc import Mapping
from typing import Any

from .common import cache_path
from .options import FAILED, OK, PROG, Command, Opts
from .output import emit_json, table
from .runtimes import describe, runtime_table

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
# How alike a variable's name must be to one of ours (difflib's ratio) to be taken
# for a misspelling of it when it does not even start with PYTHONDNSCACHE_
# ("PYTHONDNSCAHCE_TTL", "PYTHON_DNSCACHE"); with the prefix, any name is suspect.
LOOKALIKE = 0.85
SUGGEST = 0.6


def _site_dirs() -> list[str]:
    dirs: list[str] = []
    with contextlib.suppress(AttributeError):  # virtualenv's old site.py lacks these
        dirs.extend(site.getsitepackages())
    with contextlib.suppress(AttributeError):
        dirs.append(site.getusersitepackages())
    return list(dict.fromkeys(dirs))


def _show(value: Any) -> str:
    if isinstance(value, typing.Mapping):
        return repr({k: list(v) if isinstance(v, tuple) else v for k, v in value.items()})
    if callable(value):
        return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', value)!r}"
    return repr(value)


def _problem(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "message": message, **extra}


def unknown_variables(environ: Mapping[str, str]) -> list[dict[str, Any]]:
    """Variables that look like ours but name no option, each with a did-you-mean."""
    from ..._core.config import ENV_PREFIX, Config, env_name

    known = [ENV_PREFIX] + [env_name(f.name) for f in dataclasses.fields(Config)]
    prefix = ENV_PREFIX + "_"
    found = []
    for name in sorted(environ):
        if name in known:
            continue
        near = difflib.get_close_matches(name, known, n=1, cutoff=LOOKALIKE)
        if name.startswith(prefix) and not near:
            # Compare what follows the prefix, which alone tells options apart.
            suffixes = [k.removeprefix(prefix) for k in known if k.startswith(prefix)]
            close = difflib.get_close_matches(name.removeprefix(prefix), suffixes, 1, SUGGEST)
            guess = [prefix + close[0]] if close else []
        elif near:
            guess = near
        else:
            continue
        message = f"{name} is not a dnscache variable and is ignored"
        if guess:
            message += f"; did you mean {guess[0]}?"
        found.append(
            _problem(
                "unknown-variable", message, variable=name, suggestion=guess[0] if guess else None
            )
        )
    return found


def _activation(found_pth: list[dict[str, Any]], patched: Mapping[str, bool]) -> dict[str, Any]:
    """The state of start-up activation, with the problems it has."""
    from ..._core.config import ENV_PREFIX, env_flag

    raw = os.environ.get(ENV_PREFIX)
    flag = env_flag(raw)
    valid = any(p["state"] == "ok" for p in found_pth)
    problems = []
    for p in found_pth:
        if p["state"] != "ok":
            problems.append(_problem("activation", f"{p['path']}: {p['state']}"))
    if raw is None:
        state = "unset"
    elif flag is None:
        state = "invalid"
        problems.append(
            _problem(
                "activation",
                f"{ENV_PREFIX}={raw!r} is not a switch: the cache stays off (use 1 or 0)",
                variable=ENV_PREFIX,
            )
        )
    elif not flag:
        state = "off"
    else:
        state = "on"
        if sys.flags.no_site:  # first: -S also hides a venv's site-packages from site
            problems.append(
                _problem("activation", "this interpreter runs with -S: .pth files are not read")
            )
        elif not valid:
            problems.append(
                _problem(
                    "activation",
                    f"{ENV_PREFIX}={raw!r} but no valid dnscache.pth is installed: "
                    "reinstall pydnscache, or call dnscache.install() from sitecustomize.py",
                )
            )
        elif not patched["socket.getaddrinfo"]:
            problems.append(
                _problem(
                    "activation",
                    f"{ENV_PREFIX}={raw!r} and dnscache.pth is installed, but this interpreter "
                    "is not patched: start-up activation failed (see its message on stderr)",
                )
            )
    return {"variable": raw, "state": state, "pth": found_pth, "problems": problems}


def _pth_files() -> list[dict[str, Any]]:
    from ..._activation.startup import PTH_LINE

    found = []
    for directory in _site_dirs():
        path = os.path.join(directory, "dnscache.pth")
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as pth:
                content = pth.read()
        except OSError as exc:
            found.append({"path": path, "state": f"unreadable ({exc.strerror})"})
            continue
        ok = content.strip() == PTH_LINE
        state = "ok" if ok else "differs from this version's PTH_LINE: reinstall pydnscache"
        found.append({"path": path, "state": state})
    return found


def _control(asked: bool, activated: bool) -> dict[str, Any]:
    """The control endpoint: asked for, where it goes, which processes have one."""
    from ..._activation import control, rundir

    handle = control.current()
    problems = []
    if asked and activated and handle is None:
        problems.append(
            _problem(
                "activation",
                f"{control.ENV} is on but this interpreter has no control endpoint "
                "(see the warning on stderr)",
                variable=control.ENV,
            )
        )
    return {
        "asked": asked,
        "directory": rundir.private_dir(create=False),
        "endpoints": [pid for pid, _ in rundir.all_endpoints()],
        "this_process": handle.path if handle is not None else None,
        "problems": problems,
    }


def report() -> dict[str, Any]:
    """Everything doctor knows, as plain data (the JSON output)."""
    import dnscache

    from ..._core.config import env_name, parse_env
    from ..._sources.sysfiles import load_facts

    patched = {
        f"socket.{name}": bool(getattr(getattr(socket, name), "__dnscache__", False))
        for name in ("getaddrinfo", "create_connection")
    }
    activation = _activation(_pth_files(), patched)
    config, bad_values = parse_env()
    options = []
    for f in dataclasses.fields(config):
        name = env_name(f.name)
        if name not in os.environ:
            origin = "default"
        elif any(f"ignoring {name}=" in problem for problem in bad_values):
            origin = f"default ({name} ignored)"
        else:
            origin = name
        options.append({"option": f.name, "value": _show(getattr(config, f.name)), "from": origin})
    problems = (
        activation["problems"]
        + unknown_variables(os.environ)
        + [_problem("bad-value", message) for message in bad_values]
    )
    active = dnscache.active_resolver()
    endpoint = _control(config.control, activation["state"] == "on" and not problems)
    problems += endpoint.pop("problems")
    facts = load_facts()
    path = cache_path(None)
    runtimes = runtime_table()
    covered = {row["runtime"] for row in runtimes if row["covered"]}
    return {
        "version": dnscache.__version__,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "activation": {k: v for k, v in activation.items() if k != "problems"},
        "no_site": bool(sys.flags.no_site),
        "config": options,
        "patched": patched,
        "active_resolver": dataclasses.asdict(active.stats()) if active is not None else None,
        "runtimes": runtimes,
        "bypasses": [
            {"module": name, "why": why}
            for name, why in BYPASSES.items()
            if name not in covered and importlib.util.find_spec(name) is not None
        ],
        "nameservers": {
            "resolv_conf": list(facts.nameservers),
            "backend": config.backend,
            "asks": list(config.nameservers),
        },
        "persistent_cache": {"path": path, "exists": os.path.exists(path)},
        "control": endpoint,
        "problems": problems,
        "ok": not problems,
        "status": FAILED if problems else OK,
    }


def _print(r: dict[str, Any]) -> None:
    from ..._core.config import ENV_PREFIX

    print(f"{PROG} {r['version']} on Python {r['python']} ({r['executable']})")

    print("\nStart-up activation (dnscache.pth)")
    activation = r["activation"]
    for pth in activation["pth"]:
        print(f"  {pth['path']}: {pth['state']}")
    if not activation["pth"]:
        print("  not installed in any site directory: PYTHONDNSCACHE=1 will do nothing;")
        print("  reinstall pydnscache, or call dnscache.install() from sitecustomize.py")
    if r["no_site"]:
        print("  this interpreter runs with -S: site-packages .pth files are not processed")
    raw, state = activation["variable"], activation["state"]
    if state == "unset":
        print(f"  {ENV_PREFIX} is not set: the .pth does nothing (set {ENV_PREFIX}=1)")
    elif state == "invalid":
        print(f"  {ENV_PREFIX}={raw!r} is not a switch: the cache stays off (use 1 or 0)")
    elif state == "on":
        valid = any(p["state"] == "ok" for p in activation["pth"])
        fires = "fires at start-up" if valid else "would fire, but no valid .pth is installed"
        print(f"  {ENV_PREFIX}={raw!r}: activation {fires}")
    else:
        print(f"  {ENV_PREFIX}={raw!r}: switched off")

    print(f"\nConfiguration ({ENV_PREFIX}_* variables)")
    rows = [["option", "value", "from"]] + [
        [o["option"], o["value"], o["from"]] for o in r["config"]
    ]
    print("  " + table(rows).replace("\n", "\n  "))

    print("\nPatched in this interpreter")
    for name, ours in r["patched"].items():
        print(f"  {name}: {'dnscache' if ours else 'the original'}")
    if r["active_resolver"] is not None:
        counters = " ".join(f"{k}={v}" for k, v in r["active_resolver"].items())
        print(f"  active resolver: {counters}")

    print("\nRuntimes (is each one's name resolution covered in this interpreter?)")
    rows = [["runtime", "installed", "imported", "covered", "how it resolves"]]
    for row in r["runtimes"]:
        installed = row["version"] or "yes" if row["installed"] else "no"
        imported = "yes" if row["imported"] else "no"
        rows.append([row["runtime"], installed, imported, describe(row), row["path"]])
    print("  " + table(rows).replace("\n", "\n  "))

    print("\nInstalled clients that bypass socket.getaddrinfo")
    for bypass in r["bypasses"]:
        print(f"  {bypass['module']}: {bypass['why']}")
    if not r["bypasses"]:
        print(f"  none of {', '.join(BYPASSES)}")

    print("\nNameservers")
    ns = r["nameservers"]
    print(f"  /etc/resolv.conf: {', '.join(ns['resolv_conf']) or 'none listed'}")
    if ns["backend"] == "dnspython":
        asks = ", ".join(ns["asks"]) or "resolv.conf's"
        print(f"  backend dnspython asks: {asks}")
    else:
        print("  backend system: libc's getaddrinfo decides (hosts file, nsswitch, resolv.conf)")

    cache = r["persistent_cache"]
    state = "exists" if cache["exists"] else "not created yet"
    print(f"\nPersistent cache\n  {cache['path']}: {state}")

    endpoint = r["control"]
    print(f"\nControl endpoint ({'on' if endpoint['asked'] else 'off'}: PYTHONDNSCACHE_CONTROL)")
    print(f"  directory: {endpoint['directory'] or 'none usable yet (made on first use)'}")
    if endpoint["this_process"]:
        print(f"  this interpreter: {endpoint['this_process']}")
    pids = " ".join(str(pid) for pid in endpoint["endpoints"]) or "none"
    print(f"  processes with an endpoint: {pids} (see '{PROG} ps')")

    print("\nProblems")
    for problem in r["problems"]:
        print(f"  {problem['kind']}: {problem['message']}")
    if r["problems"]:
        count = len(r["problems"])
        print(f"  {count} problem{'s' if count != 1 else ''}: exit status {r['status']}")
    else:
        print("  none")


def run(args: argparse.Namespace) -> int:
    r = report()
    if args.json:
        emit_json(r)
    else:
        _print(r)
    return int(r["status"])


COMMAND = Command(
    name="doctor",
    help="check activation, configuration and what bypasses the cache",
    description="Report whether start-up activation is installed and would fire, the "
    "configuration from the environment (with bad values and misspelt variables), what is "
    "patched in this interpreter, installed clients that bypass socket.getaddrinfo, and the "
    "nameservers. Exit 1 if activation is broken, a variable is misspelt or a value unusable.",
    run=run,
    options=(Opts.json,),
)
