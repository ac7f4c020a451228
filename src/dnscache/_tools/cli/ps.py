"""``dnscache ps``: the processes of this user with a control endpoint (pid, uptime, argv)."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from ..._activation.rundir import remove_if_ours
from . import endpoint
from .options import OK, Command, Opts
from .output import emit_json, fmt_seconds, table


def run(args: argparse.Namespace) -> int:
    processes: list[dict[str, Any]] = []
    removed: list[str] = []
    for found in endpoint.find_all():
        try:
            hello = endpoint.request(found, {"command": "hello"}, args.timeout)
        except endpoint.Gone:
            if remove_if_ours(found.path):
                removed.append(found.path)
            continue
        except endpoint.NoReply:
            processes.append({"pid": found.pid, "responding": False, "endpoint": found.path})
            continue
        processes.append({**hello, "responding": True, "endpoint": found.path})
    if args.json:
        emit_json({"processes": processes, "removed_dead_endpoints": removed})
        return OK
    for path in removed:
        print(f"removed the dead endpoint {path}")
    if not processes:
        print("no process of this user has a control endpoint (PYTHONDNSCACHE_CONTROL=1 opens one)")
        return OK
    rows = [["PID", "UPTIME", "ENTRIES", "COMMAND"]]
    for p in processes:
        if not p["responding"]:
            rows.append([str(p["pid"]), "-", "-", f"(not answering within {args.timeout:g} s)"])
            continue
        command = shlex.join([p["executable"], *p["argv"]])
        rows.append([str(p["pid"]), fmt_seconds(p["uptime"]), str(p["entries"]), command])
    print(table(rows, right=[True, True, True, False]))
    return OK


COMMAND = Command(
    name="ps",
    help="list this user's processes with a control endpoint",
    description="List the processes of this user that opened a control endpoint "
    "(PYTHONDNSCACHE_CONTROL=1, or control=True with install()): pid, uptime, cached "
    "entries and command line. Dead endpoints (killed processes) are removed.",
    run=run,
    options=(endpoint.TIMEOUT_OPT, Opts.json),
)
