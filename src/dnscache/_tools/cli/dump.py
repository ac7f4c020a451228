"""``dnscache dump PID [HOST]``: what a running process has cached, and how its addresses fare."""

from __future__ import annotations

import argparse
from typing import Any

from . import endpoint
from .options import OK, Command, Opt, Opts, positive_int
from .output import emit_json, fmt_seconds, table
from .stats import configure_pid


def _address(ip: str, health: dict[str, Any] | None) -> str:
    """An address, marked with its last connect outcome when there is one."""
    record = (health or {}).get(ip)
    if not record:
        return ip
    success, failure = record["last_success_ago"], record["last_failure_ago"]
    if failure is not None and (success is None or failure <= success):
        return f"{ip}(failed {fmt_seconds(failure)} ago)"
    if success is not None:
        return f"{ip}(ok {fmt_seconds(success)} ago)"
    return ip


def run(args: argparse.Namespace) -> int:
    payload: dict[str, Any] = {"command": "dump", "limit": args.limit}
    if args.host:
        payload["host"] = args.host
    reply = endpoint.ask(args.pid, payload, args.timeout)
    if args.json:
        emit_json(reply)
        return OK
    entries = reply["entries"]
    if not entries:
        what = f"nothing cached for {args.host}" if args.host else "nothing cached"
        print(f"pid {reply['pid']}: {what}")
        return OK
    rows = [["HOST", "FAMILY", "SOURCE", "STATE", "TTL", "HITS", "ADDRESSES"]]
    for e in entries:
        if e["error"] is not None:
            answer = f"error {e['error'][0]}: {e['error'][1]}"
        else:
            answer = " ".join(_address(ip, e.get("health")) for ip in e["addresses"])
        ttl = float("inf") if e["ttl"] is None else e["ttl"]
        family = {4: "inet", 6: "inet6"}.get(e["family"], "any")
        rows.append(
            [e["host"], family, e["source"], e["state"], fmt_seconds(ttl), str(e["hits"]), answer]
        )
    print(table(rows, right=[False, False, False, False, True, True, False]))
    if reply["total"] > len(entries):
        print(f"({reply['total'] - len(entries)} more; see --limit)")
    return OK


def configure_pid_host(parser: argparse.ArgumentParser) -> None:
    configure_pid(parser)
    parser.add_argument("host", nargs="?", metavar="HOST", help="only this host")


COMMAND = Command(
    name="dump",
    help="what a running process has cached",
    description="Ask the process PID for its cache entries: host, family, source, state "
    "(fresh, refresh-due, stale), TTL left, hits and addresses, each marked with its last "
    "connect outcome (address health) when the process records one.",
    run=run,
    configure=configure_pid_host,
    options=(
        Opt(
            ("--limit",),
            {
                "type": positive_int,
                "default": 1000,
                "metavar": "N",
                "help": "at most N entries (%(default)s; the process caps it at 10000)",
            },
        ),
        endpoint.TIMEOUT_OPT,
        Opts.json,
    ),
)
