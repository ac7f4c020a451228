"""The sqlite side of the table: schema, migrations, connections, and what an error means.

* **WAL, busy timeout, synchronous=NORMAL.** Many processes of one user share
  the file. In WAL mode readers never wait for the writer and a commit is one
  append to the ``-wal`` file; ``synchronous=NORMAL`` skips the fsync per
  commit (a power cut may lose the last few commits, never corrupt the file:
  losing a few cache rows is harmless). The busy timeout lets concurrent
  writers queue for sqlite's single write lock instead of failing at once, and
  also bounds how long anything here can wait.
* **Schema.** ``schema_version`` holds one row per applied version with the
  time and a one-line note (coverage.py's discipline). Migrations run in order
  inside one ``BEGIN IMMEDIATE`` transaction, so concurrent first starts
  apply them once. Nothing is written before the file's version is known to be
  one we understand: a newer version, or someone else's tables, is
  :class:`.files.Untouchable`.
* **Never create, never follow.** Connections open ``mode=rw`` (the file is
  created by :mod:`.files`, 0600) and check the name around the open.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Sequence

from .files import Untouchable, check_file, same_file

__all__ = [
    "FOREGROUND_BUSY_TIMEOUT",
    "PRUNE",
    "SCHEMA_VERSION",
    "SELECT_ALL",
    "SELECT_HOST",
    "UPSERT",
    "WRITER_BUSY_TIMEOUT",
    "Corrupt",
    "Untouchable",
    "check_and_migrate",
    "connect",
    "connect_read_only",
    "is_busy",
    "is_corrupt",
    "is_full",
    "write_rows",
]

WRITER_BUSY_TIMEOUT = 5.0  # seconds the writer waits for another process's write lock
PREPARE_RETRY = 2.0  # seconds a first check of the file retries an immediate SQLITE_BUSY
PREPARE_RETRY_PAUSE = 0.02
FOREGROUND_BUSY_TIMEOUT = 1.0  # readers in WAL mode almost never wait; never long on a lookup

SCHEMA_VERSION = 2

# (version, one line of history, statements). Applied in order in one transaction;
# append only: a released step is never edited.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "addresses: every IP seen per host, last_seen and last_connected in wall-clock seconds",
        (
            """CREATE TABLE addresses (
                host TEXT NOT NULL,
                ip TEXT NOT NULL,
                last_seen REAL NOT NULL,
                last_connected REAL,
                PRIMARY KEY (host, ip)
            ) WITHOUT ROWID""",
        ),
    ),
    # Version 1 keyed rows by decode("ascii", "replace") of the name, so different
    # non-ASCII names shared rows (issue 11 item 8). A pure-ASCII key was exact and is
    # kept, as the same bytes; any other was ambiguous (it may be another name's
    # addresses) and is dropped: losing a cache row is harmless, serving it is not.
    # length() counts characters of text and bytes of a blob: equal only for ASCII
    # (and never past a NUL).
    (
        2,
        "addresses.host: the exact bytes libc sees (BLOB); ASCII keys kept, lossy ones dropped",
        (
            """CREATE TABLE addresses_v2 (
                host BLOB NOT NULL,
                ip TEXT NOT NULL,
                last_seen REAL NOT NULL,
                last_connected REAL,
                PRIMARY KEY (host, ip)
            ) WITHOUT ROWID""",
            """INSERT OR IGNORE INTO addresses_v2
            SELECT CAST(host AS BLOB), ip, last_seen, last_connected FROM addresses
            WHERE typeof(host) = 'text' AND length(host) = length(CAST(host AS BLOB))""",
            "DROP TABLE addresses",
            "ALTER TABLE addresses_v2 RENAME TO addresses",
        ),
    ),
)

_CREATE_SCHEMA_VERSION = """CREATE TABLE schema_version (
    version INTEGER NOT NULL PRIMARY KEY,
    applied REAL NOT NULL,
    note TEXT NOT NULL
)"""

# Times only move forward: max() of each, where sqlite's max(x, NULL) is NULL, hence coalesce.
UPSERT = """INSERT INTO addresses (host, ip, last_seen, last_connected) VALUES (?, ?, ?, ?)
ON CONFLICT (host, ip) DO UPDATE SET
    last_seen = max(last_seen, excluded.last_seen),
    last_connected = max(coalesce(last_connected, excluded.last_connected),
                         coalesce(excluded.last_connected, last_connected))"""

# Anything not alive, including a last_seen that is not a number (sqlite is dynamically typed).
PRUNE = """DELETE FROM addresses
WHERE typeof(last_seen) NOT IN ('integer', 'real') OR last_seen <= ? OR last_seen > ?"""

# Delta Chat's lookup_cache (see .rules): one order key, a bounded read. The window on
# last_connected keeps junk (1e300, text) from taking the LIMIT's places; every row is
# validated again in Python. Parameters: host, seen window (2), connected window (2), limit.
SELECT_HOST = """SELECT ip, last_seen, last_connected FROM addresses
WHERE host = ? AND last_seen > ? AND last_seen <= ?
    AND (last_connected IS NULL OR (last_connected >= ? AND last_connected <= ?))
ORDER BY IFNULL(last_connected, last_seen) DESC LIMIT ?"""

SELECT_ALL = """SELECT host, ip, last_seen, last_connected FROM addresses
WHERE last_seen > ? AND last_seen <= ? ORDER BY host"""


class Corrupt(Exception):
    """The file is damaged: move it aside and start over."""


def is_corrupt(exc: BaseException) -> bool:
    if isinstance(exc, Corrupt):
        return True
    if isinstance(exc, sqlite3.DatabaseError):
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
        return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    return False


def is_busy(exc: BaseException) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED, whatever the extended code (BUSY_RECOVERY, ...)."""
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return False


def is_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def connect(path: str, busy_timeout: float, max_page_count: int | None) -> sqlite3.Connection:
    """An autocommit connection (we write BEGIN/COMMIT), for whichever thread holds its lock.

    ``mode=rw``: sqlite never creates the file (we do, 0600). The name is
    checked around the open (:func:`.files.check_file`): a regular file of
    ours, the same inode before and after, so sqlite cannot have followed a
    symlink swapped in meanwhile.
    """
    before = check_file(path)
    uri = f"file:{urllib.parse.quote(path)}?mode=rw"
    conn = sqlite3.connect(
        uri, timeout=busy_timeout, isolation_level=None, check_same_thread=False, uri=True
    )
    try:
        if not same_file(before, check_file(path)):
            raise Untouchable(f"{path} was replaced while it was being opened")
        conn.execute("PRAGMA synchronous=NORMAL")
        if max_page_count is not None:
            conn.execute(f"PRAGMA max_page_count={int(max_page_count)}")
    except BaseException:
        conn.close()
        raise
    return conn


def connect_read_only(path: str) -> sqlite3.Connection:
    """A connection that cannot write, to a current database: for a file we cannot write.

    A WAL database is normally read through its ``-shm`` index, which sqlite
    must create or resize, and cannot on a full disk or a read-only file system
    (SQLITE_IOERR_SHMSIZE, even with ``mode=ro``). With no ``-shm`` there, no
    connection is open and the last one checkpointed the WAL into the file
    when it closed, so ``immutable=1`` (no locks, no ``-shm``, the main file
    only) reads everything there is. With a ``-shm``, ``mode=ro`` is tried
    first, as it also sees what a live writer has not checkpointed yet. The
    name is checked around each open, as in :func:`connect`.
    """
    before = check_file(path)
    base = f"file:{urllib.parse.quote(path)}?mode=ro"
    uris = [base, f"{base}&immutable=1"]
    if not os.path.lexists(path + "-shm"):
        uris = uris[1:]
    failure: sqlite3.Error | None = None
    for uri in uris:
        conn = sqlite3.connect(
            uri,
            timeout=FOREGROUND_BUSY_TIMEOUT,
            isolation_level=None,
            check_same_thread=False,
            uri=True,
        )
        try:
            if not same_file(before, check_file(path)):
                raise Untouchable(f"{path} was replaced while it was being opened")
            version = _file_version(conn)  # the first read: this is where the -shm is needed
            if version != SCHEMA_VERSION:
                raise Untouchable(f"schema version {version}, not {SCHEMA_VERSION}: unreadable")
            return conn
        except sqlite3.Error as exc:
            conn.close()
            failure = exc
        except BaseException:
            conn.close()
            raise
    assert failure is not None
    raise failure


def write_rows(
    conn: sqlite3.Connection,
    rows: Sequence[tuple[object, ...]],
    prune: tuple[float, float] | None,
) -> None:
    """Upsert ``rows``, and prune outside the ``prune`` window if given, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(UPSERT, rows)
        if prune is not None:
            conn.execute(PRUNE, prune)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _file_version(conn: sqlite3.Connection) -> int:
    """The schema version of the file: 0 for an empty database. Reads only."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "schema_version" not in tables:
        if tables:
            raise Untouchable(f"not a dnscache database (it has tables {sorted(tables)})")
        return 0
    (version,) = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise Untouchable(f"unreadable schema version {version!r}")
    if version > SCHEMA_VERSION:
        raise Untouchable(
            f"schema version {version} is newer than this dnscache knows ({SCHEMA_VERSION})"
        )
    return version


def _migrate(conn: sqlite3.Connection, now: float) -> None:
    """Apply the missing migration steps, each with its line of history, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _file_version(conn)  # again, under the write lock: another process may have won
        if version == 0:
            conn.execute(_CREATE_SCHEMA_VERSION)
        for step, note, statements in MIGRATIONS:
            if step <= version:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, ?, ?)", (step, now, note))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def check_and_migrate(path: str, now: float) -> None:
    """Raise Corrupt/Untouchable/sqlite3.Error unless the file is a healthy, current database.

    Nothing is written before the version is known to be one we understand.

    Processes starting together on a new file contend for it (switching it to
    WAL needs the exclusive lock), and sqlite may answer SQLITE_BUSY at once,
    without waiting out the busy timeout, where waiting could deadlock. Eight
    processes starting at once on a loaded machine saw it about 1 time in 40,
    and that process then kept its addresses in memory only. Such a check is
    tried again, for at most PREPARE_RETRY seconds.
    """
    deadline = time.monotonic() + PREPARE_RETRY
    while True:
        try:
            _check_and_migrate_once(path, now)
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(PREPARE_RETRY_PAUSE)


def _check_and_migrate_once(path: str, now: float) -> None:
    conn = connect(path, WRITER_BUSY_TIMEOUT, None)
    try:
        version = _file_version(conn)  # "file is not a database" shows up here
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise Corrupt("; ".join(map(str, problems[:3])))
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL").fetchall()  # persistent in the file
        if version < SCHEMA_VERSION:
            _migrate(conn, now)
    finally:
        conn.close()
