"""``dnscache stats PID``: a running process's cache counters."""

from __future__ import annotations

import argparse

from . import endpoint
from .options import OK, Command, Opts, positive_int
from .output import emit_json, table


def run(args: argparse.Namespace) -> int:
    reply = endpoint.ask(args.pid, {"command": "stats"}, args.timeout)
    if args.json:
        emit_json(reply)
        return OK
    print(f"pid {reply['pid']}:")
    rows = [["COUNTER", "VALUE"]] + [[k, str(v)] for k, v in reply["stats"].items()]
    print("  " + table(rows, right=[False, True]).replace("\n", "\n  "))
    return OK


def configure_pid(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pid", type=positive_int, metavar="PID", help="the process (see 'ps')")


COMMAND = Command(
    name="stats",
    help="a running process's cache counters",
    description="Ask the process PID (through its control endpoint) for its Resolver's "
    "counters: hits, misses, negative and stale hits, refreshes, lookups, entries.",
    run=run,
    configure=configure_pid,
    options=(endpoint.TIMEOUT_OPT, Opts.json),
)
