"""One sqlite file as the store uses it: prepared once, then usable, read-only or given up on.

The first use prepares the file (directories, the file, a ``PRAGMA
quick_check``, migrations). A corrupt file is moved aside and replaced (one
warning). A file we must not modify makes the database *degraded* for the
life of the process (one warning): every method here then answers as an
empty, unwritable table, and the store keeps its rows in memory instead. A
location we cannot write (a full disk, a read-only file system) but whose
file is ours and current is opened *read-only* instead (one warning): the rows
already on it are still served, new ones stay in memory. A store made with
``read_only=True`` (``dnscache cache show``) goes straight to that, and never
creates, migrates, tightens or writes anything.

Connections: the writer thread gets its own from :meth:`Database.connect`;
every other thread shares one *foreground* connection under :attr:`lock`
(these calls are rare, and a per-thread connection would leak one file
descriptor per short-lived thread).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Sequence

from . import files, sqlfile

__all__ = ["Database", "park"]

Warn = Callable[..., None]  # (key, message, *args): warn the first time key happens

# Connections inherited across fork(): never used, never closed. sqlite forbids using a
# connection opened before fork() in the child (https://www.sqlite.org/howtocorrupt.html
# section 2.6), and closing it there could checkpoint or delete a -wal the parent uses.
_INHERITED: list[sqlite3.Connection] = []

_NEW, _SQLITE, _READ_ONLY, _MEMORY = "new", "sqlite", "read-only", "memory"


def park(conn: sqlite3.Connection | None) -> None:
    """Keep a connection inherited across fork() referenced, unused and unclosed."""
    if conn is not None:
        _INHERITED.append(conn)


class Database:
    """The sqlite file behind a store. Thread-safe; never raises for a degraded file."""

    def __init__(
        self,
        path: str,
        *,
        clock: Callable[[], float],
        warn: Warn,
        max_page_count: int | None,
        read_only: bool = False,
    ) -> None:
        self.path = path
        self._read_only = read_only
        self._clock = clock
        self._warn = warn
        self._max_page_count = max_page_count
        self._state = _NEW  # -> _SQLITE or _MEMORY, once, on first use
        self._closed = False
        self._sidecars_checked = False
        self._conn: sqlite3.Connection | None = None  # foreground, under lock
        self.lock = threading.Lock()  # preparing the file; the foreground connection

    @property
    def state(self) -> str:
        return self._state

    @property
    def degraded(self) -> bool:
        """True when nothing can be written to the file (new rows stay in memory)."""
        return self._state in (_MEMORY, _READ_ONLY)

    @property
    def read_only(self) -> bool:
        """True when the file is read but not written."""
        return self._state == _READ_ONLY

    def reset_after_fork(self) -> None:
        park(self._conn)
        self._conn = None
        self.lock = threading.Lock()
        if self._state == _READ_ONLY:
            self._state = _NEW  # its connection was the parent's: open our own when asked

    def ready(self) -> bool:
        """Prepare the file on first use; True if sqlite is usable for writing."""
        with self.lock:
            return self._ready_locked() == _SQLITE

    def connect(self, busy_timeout: float = sqlfile.WRITER_BUSY_TIMEOUT) -> sqlite3.Connection:
        """A new connection to the prepared file (for the writer thread)."""
        return sqlfile.connect(self.path, busy_timeout, self._max_page_count)

    def write(
        self,
        conn: sqlite3.Connection,
        rows: Sequence[tuple[object, ...]],
        prune: tuple[float, float] | None,
    ) -> None:
        """Upsert ``rows`` (and prune) in one transaction on the writer's connection."""
        sqlfile.write_rows(conn, rows, prune)
        if not self._sidecars_checked:  # the first write made the -wal: ours, 0600
            self._sidecars_checked = True
            files.tighten_sidecars(self.path)

    def query(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        """Rows from the file; none when degraded, closed, or the read fails (warned once)."""
        with self.lock:
            try:
                conn = self._foreground()
                return [] if conn is None else conn.execute(sql, params).fetchall()
            except (sqlite3.Error, OSError) as exc:
                self._warn("read", "could not read %s (%r)", self.path, exc)
                return []

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one writing statement on the foreground connection; its rowcount (0 if degraded)."""
        with self.lock:
            conn = self._foreground(write=True)
            return 0 if conn is None else max(conn.execute(sql, params).rowcount, 0)

    def close(self, timeout: float) -> None:
        """Close the foreground connection (waiting at most ``timeout`` for a reader)."""
        self._closed = True
        if self.lock.acquire(timeout=timeout):
            try:
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.close()
            finally:
                self.lock.release()

    def _foreground(self, *, write: bool = False) -> sqlite3.Connection | None:
        """The shared foreground connection; None when closed, degraded, or read-only and
        ``write`` (hold lock)."""
        if self._closed:
            return None
        state = self._ready_locked()
        if state == _READ_ONLY and not write:
            return self._conn  # opened by _prepare_read_only
        if state != _SQLITE:
            return None
        if self._conn is None:
            self._conn = sqlfile.connect(
                self.path, sqlfile.FOREGROUND_BUSY_TIMEOUT, self._max_page_count
            )
        return self._conn

    # -- preparing the file --

    def _ready_locked(self) -> str:
        if self._state == _NEW:
            try:
                if self._read_only:
                    self._prepare_read_only()
                    self._state = _READ_ONLY
                else:
                    self._prepare()
                    self._state = _SQLITE
            except files.Untouchable as exc:
                self._degrade(f"not using {self.path}: {exc}; the file is left as it is")
            except Exception as exc:  # OSError, sqlite3.Error: the location is unusable
                self._unwritable(exc)
        return self._state

    def _unwritable(self, exc: Exception) -> None:
        """We cannot write here: read what the file has, if it is ours and current."""
        if not self._read_only:
            try:
                self._prepare_read_only()
            except Exception:  # Untouchable, missing, unreadable: memory only, as before
                pass
            else:
                self._state = _READ_ONLY
                self._warn(
                    "degraded",
                    "cannot write to %s (%s); reading the addresses already in it, "
                    "keeping new ones in memory for this process only",
                    self.path,
                    exc,
                )
                return
        self._degrade(f"cannot use {self.path} ({exc})")

    def _degrade(self, reason: str) -> None:
        self._state = _MEMORY
        self._warn("degraded", "%s; keeping addresses in memory for this process only", reason)

    def _prepare_read_only(self) -> None:
        """Open the foreground connection read-only; change nothing on the way."""
        files.check_directory(os.path.dirname(self.path), dedicated=False, fix=False)
        files.check_file(self.path)
        files.check_sidecars(self.path)
        self._conn = sqlfile.connect_read_only(self.path)

    def _prepare(self) -> None:
        directory = os.path.dirname(self.path)
        created = files.make_private_dirs(directory)
        files.check_directory(directory, dedicated=files.is_dedicated(directory, created))
        moved = False
        while True:
            fd = files.open_private_file(self.path)
            try:
                files.check_sidecars(self.path)  # before sqlite reads a -wal or -journal
                try:
                    sqlfile.check_and_migrate(self.path, self._clock())
                except Exception as exc:
                    if moved or not sqlfile.is_corrupt(exc):
                        raise
                    if not files.looks_like_sqlite(fd):
                        # Not a database at all: somebody else's file (a wrong --path, a
                        # typo in PYTHONDNSCACHE_PERSIST). Never rename or touch it.
                        raise files.Untouchable(f"{self.path} is not an sqlite database") from exc
                    moved = True
                    self._set_aside(os.fstat(fd), exc)
                    continue
                files.make_private(fd)  # a dnscache database of ours: 0600, whatever it was
                files.tighten_sidecars(self.path)
                return
            finally:
                os.close(fd)

    def _set_aside(self, stat: os.stat_result, exc: BaseException) -> None:
        try:
            current = os.lstat(self.path)
        except FileNotFoundError:
            return  # another process moved it already
        if not files.same_file(current, stat):
            return  # ... and created a new one: check that one instead
        target = files.move_aside(self.path, self._clock())
        self._warn(
            "corrupt",
            "%s was corrupt (%s); moved it to %s and started a new one",
            self.path,
            exc,
            target,
        )
