"""``dnscache flush PID [HOST]``: make a running process forget a host, or everything."""

from __future__ import annotations

import argparse
from typing import Any

from . import endpoint
from .dump import configure_pid_host
from .options import OK, Command, Opts
from .output import emit_json


def run(args: argparse.Namespace) -> int:
    payload: dict[str, Any] = {"command": "flush"}
    if args.host:
        payload["host"] = args.host
    reply = endpoint.ask(args.pid, payload, args.timeout)
    if args.json:
        emit_json(reply)
        return OK
    count = reply["flushed"]
    what = f"for {args.host}" if args.host else "(everything)"
    print(f"pid {reply['pid']}: flushed {count} entr{'y' if count == 1 else 'ies'} {what}")
    return OK


COMMAND = Command(
    name="flush",
    help="make a running process forget a host, or everything",
    description="Ask the process PID to drop its cached answers for HOST (every family), "
    "or all of them; the next lookup goes upstream.",
    run=run,
    configure=configure_pid_host,
    options=(endpoint.TIMEOUT_OPT, Opts.json),
)
