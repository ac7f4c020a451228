"""``dnscache cache show|prune|clear``: the persistent (sqlite) cache of addresses seen."""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .common import cache_path
from .options import Command, CommandError, Opts, UsageError
from .output import table

if TYPE_CHECKING:
    from ..._sources.persist.store import PersistentStore

SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every sqlite database


def _ago(wall: float | None, now: float) -> str:
    if wall is None:
        return "never"
    seconds = max(0.0, now - wall)
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f}h ago"
    return f"{seconds / 86400:.0f}d ago"


def _check_cache_file(path: str) -> None:
    """Refuse a --path that is not an sqlite file, before the store may "repair" it.

    The store treats a file that is not a database as a corrupt cache and moves
    it aside; right for its own file, wrong for a mistyped ``--path ~/.bashrc``.
    """
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory")
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head and head != SQLITE_MAGIC:
        raise UsageError(f"{path} is not an sqlite database; leaving it alone")


@contextlib.contextmanager
def _open_store(path: str, max_age: float | None) -> Iterator[PersistentStore]:
    from ..._sources.persist.store import DEFAULT_MAX_AGE, PersistentStore

    store = PersistentStore(path, max_age=DEFAULT_MAX_AGE if max_age is None else max_age)
    try:
        yield store
    finally:
        store.close()


def run(args: argparse.Namespace) -> int:
    path = cache_path(args.path)
    action = args.cache_command
    if not os.path.exists(path):
        # Never create a database just to say it is empty.
        print(f"no persistent cache at {path}")
        return 0
    _check_cache_file(path)
    with _open_store(path, args.max_age) as store:
        if action == "show":
            hosts = store.all_hosts()
            if args.host:
                wanted = args.host.lower().rstrip(".")
                hosts = [(h, seen) for h, seen in hosts if h.lower().rstrip(".") == wanted]
            if store.degraded:
                raise CommandError(f"cannot read {path}")
            if not hosts:
                print(f"{path}: {'no addresses for ' + args.host if args.host else 'empty'}")
                return 0
            now = time.time()
            rows = [["HOST", "ADDRESS", "LAST SEEN", "LAST CONNECTED"]]
            for host, seen in hosts:
                for s in seen:
                    rows.append([host, s.ip, _ago(s.last_seen, now), _ago(s.last_connected, now)])
            print(f"{path}:")
            print(table(rows))
        elif action == "prune":
            removed = store.prune()
            if store.degraded:
                raise CommandError(f"cannot prune {path}")
            print(f"{path}: pruned {removed} old record{'s' if removed != 1 else ''}")
        else:
            store.clear()
            if store.degraded:
                raise CommandError(f"cannot clear {path}")
            print(f"{path}: cleared")
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    for action, text in (
        ("show", "list the hosts and addresses recorded"),
        ("prune", "drop records older than the maximum age"),
        ("clear", "delete every record"),
    ):
        q = actions.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        if action == "show":
            q.add_argument("host", nargs="?", metavar="HOST", help="only this host")
        Opts.path.add(q)
        if action != "clear":
            Opts.max_age.add(q)
        else:
            q.set_defaults(max_age=None)
        q.set_defaults(handler=run)


COMMAND = Command(
    name="cache",
    help="show, prune or clear the persistent cache",
    description="The persistent (sqlite) cache of addresses seen. The path defaults to "
    "PYTHONDNSCACHE_PERSIST when it names a file, else $XDG_CACHE_HOME/dnscache/"
    "dns.sqlite3 (or ~/.cache/dnscache/dns.sqlite3).",
    run=run,
    configure=_configure,
)
