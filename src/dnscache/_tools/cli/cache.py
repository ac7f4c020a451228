"""``dnscache cache show|prune|clear``: the persistent (sqlite) cache of addresses seen.

``show`` only reads: it opens the file through sqlite's read-only URI and never
the store, which would create, migrate or repair it. Without a ``-wal`` file
every committed row is in the main file, so ``immutable=1`` reads it without
creating the ``-wal``/``-shm`` pair that a plain ``mode=ro`` open of a WAL
database leaves behind (sqlite cannot delete them read-only). With a ``-wal``
a writer may be live, and ``mode=ro`` reads through its log. A 0-byte file is
an empty database to sqlite: it stays 0 bytes. ``prune`` and ``clear`` change
the file and go through the store, with its file-safety rules.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import sqlite3
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .common import cache_path
from .options import EXIT_STATUS_HELP, OK, Command, CommandError, Opts, UsageError
from .output import emit_json, table

if TYPE_CHECKING:
    from ..._sources.persist.store import PersistentStore

SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every sqlite database
BUSY_TIMEOUT = 1.0  # seconds a read waits for a writer's checkpoint; WAL readers rarely wait


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
    """Refuse a path that is not an sqlite file (bad usage), or that cannot be read (failure).

    The store treats a file that is not a database as a corrupt cache and moves
    it aside; right for its own file, wrong for a mistyped ``--path ~/.bashrc``.
    """
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory")
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head and head != SQLITE_MAGIC:
        raise UsageError(f"{path} is not an sqlite database; leaving it alone")


def _clean(
    host: object, ip: object, seen: object, connected: object, now: float, max_age: float
) -> dict[str, Any] | None:
    """A row read from the file, checked by the persistent layer's own rules; None for junk."""
    from ..._sources.persist.rules import clean_host, clean_row, display_host

    key = clean_host(host)
    row = None if key is None else clean_row(ip, seen, connected, now, max_age)
    if key is None or row is None:
        return None
    return {
        "host": display_host(key),
        "ip": row.ip,
        "last_seen": row.last_seen,
        "last_connected": row.last_connected,
    }


def _read_only(path: str, prefer_live: bool) -> sqlite3.Connection:
    uri = pathlib.Path(path).absolute().as_uri()
    mode = "?mode=ro" if prefer_live else "?mode=ro&immutable=1"
    return sqlite3.connect(uri + mode, uri=True, timeout=BUSY_TIMEOUT)


def read_rows(path: str, max_age: float, now: float) -> list[dict[str, Any]]:
    """The live rows of the file, sorted by host and address, without writing anything."""
    from ..._sources.persist import SCHEMA_VERSION

    live = os.path.exists(path + "-wal") and os.path.exists(path + "-shm")
    attempts = (True, False) if live else (False,)
    for prefer_live in attempts:
        try:
            conn = _read_only(path, prefer_live)
        except sqlite3.Error as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
        try:
            with contextlib.closing(conn):
                tables = {
                    name
                    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
                if "schema_version" in tables:
                    (version,) = conn.execute("SELECT max(version) FROM schema_version").fetchone()
                    if isinstance(version, int) and version > SCHEMA_VERSION:
                        raise CommandError(
                            f"{path} has schema version {version}, newer than this dnscache "
                            f"reads ({SCHEMA_VERSION})"
                        )
                if "addresses" not in tables:
                    return []  # a 0-byte file, or a database not (yet) written by dnscache
                rows = conn.execute(
                    "SELECT host, ip, last_seen, last_connected FROM addresses ORDER BY host, ip"
                ).fetchall()
        except sqlite3.OperationalError:
            if prefer_live:  # the live log cannot be read from here: read the file alone
                continue
            raise CommandError(f"cannot read {path}") from None
        except sqlite3.DatabaseError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
        out = []
        for row in rows:
            clean = _clean(row[0], row[1], row[2], row[3], now, max_age)
            # Alive exactly as the store counts it (persist.store.is_alive).
            if clean is not None and now - max_age < clean["last_seen"] <= now + max_age:
                out.append(clean)
        return out
    return []


@contextlib.contextmanager
def _open_store(path: str, max_age: float | None) -> Iterator[PersistentStore]:
    from ..._sources.persist.store import DEFAULT_MAX_AGE, PersistentStore

    store = PersistentStore(path, max_age=DEFAULT_MAX_AGE if max_age is None else max_age)
    try:
        yield store
    finally:
        store.close()


def _show(args: argparse.Namespace, path: str) -> int:
    from ..._sources.persist.store import DEFAULT_MAX_AGE

    now = time.time()
    max_age = DEFAULT_MAX_AGE if args.max_age is None else args.max_age
    rows = read_rows(path, max_age, now)
    if args.host:
        wanted = args.host.lower().rstrip(".")
        rows = [r for r in rows if r["host"].lower().rstrip(".") == wanted]
    if args.json:
        emit_json({"path": path, "exists": True, "rows": rows})
        return OK
    if not rows:
        print(f"{path}: {'no addresses for ' + args.host if args.host else 'empty'}")
        return OK
    lines = [["HOST", "ADDRESS", "LAST SEEN", "LAST CONNECTED"]]
    for r in rows:
        lines.append(
            [r["host"], r["ip"], _ago(r["last_seen"], now), _ago(r["last_connected"], now)]
        )
    print(f"{path}:")
    print(table(lines))
    return OK


def run(args: argparse.Namespace) -> int:
    path = cache_path(args.path)
    action = args.cache_command
    if not os.path.exists(path):
        # Never create a database just to say it is empty.
        if args.json:
            emit_json({"path": path, "exists": False})
        else:
            print(f"no persistent cache at {path}")
        return OK
    _check_cache_file(path)
    if action == "show":
        return _show(args, path)
    with _open_store(path, args.max_age) as store:
        if action == "prune":
            removed = store.prune()
            if store.degraded:
                raise CommandError(f"cannot prune {path}")
            result: dict[str, Any] = {"path": path, "exists": True, "pruned": removed}
            text = f"{path}: pruned {removed} old record{'s' if removed != 1 else ''}"
        else:
            store.clear()
            if store.degraded:
                raise CommandError(f"cannot clear {path}")
            result = {"path": path, "exists": True, "cleared": True}
            text = f"{path}: cleared"
    if args.json:
        emit_json(result)
    else:
        print(text)
    return OK


def _configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    for action, text in (
        ("show", "list the hosts and addresses recorded (reads only: never creates or changes)"),
        ("prune", "drop records older than the maximum age"),
        ("clear", "delete every record"),
    ):
        q = actions.add_parser(
            action,
            help=text,
            description=text[0].upper() + text[1:] + ".",
            epilog=EXIT_STATUS_HELP,
        )
        if action == "show":
            q.add_argument("host", nargs="?", metavar="HOST", help="only this host")
        Opts.path.add(q)
        if action != "clear":
            Opts.max_age.add(q)
        else:
            q.set_defaults(max_age=None)
        Opts.json.add(q)
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
