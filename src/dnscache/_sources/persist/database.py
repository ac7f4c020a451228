"""One sqlite file as the store uses it: prepared once, then usable or given up on.

The first use prepares the file (directories, the file, a ``PRAGMA
quick_check``, migrations). A corrupt file is moved aside and replaced (one
warning); an unusable location or a file we must not modify makes the
database *degraded* for the life of the process (one warning), and every
method here then answers as an empty, unwritable table: the store keeps its
rows in memory instead.

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

_NEW, _SQLITE, _MEMORY = "new", "sqlite", "memory"


def park(conn: sqlite3.Connection | None) -> None:
    """Keep a connection inherited across fork() referenced, unused and unclosed."""
    if conn is not None:
        _INHERITED.append(conn)


class Database:
    """The sqlite file behind a store. Thread-safe; never raises for a degraded file."""

    def __init__(
        self, path: str, *, clock: Callable[[], float], warn: Warn, max_page_count: int | None
    ) -> None:
        self.path = path
        self._clock = clock
        self._warn = warn
        self._max_page_count = max_page_count
        self._state = _NEW  # -> _SQLITE or _MEMORY, once, on first use
        self._closed = False
        self._conn: sqlite3.Connection | None = None  # foreground, under lock
        self.lock = threading.Lock()  # preparing the file; the foreground connection

    @property
    def state(self) -> str:
        return self._state

    @property
    def degraded(self) -> bool:
        return self._state == _MEMORY

    def reset_after_fork(self) -> None:
        park(self._conn)
        self._conn = None
        self.lock = threading.Lock()

    def ready(self) -> bool:
        """Prepare the file on first use; True if sqlite is usable."""
        with self.lock:
            return self._ready_locked()

    def connect(self, busy_timeout: float = sqlfile.WRITER_BUSY_TIMEOUT) -> sqlite3.Connection:
        """A new connection to the prepared file (for the writer thread)."""
        return sqlfile.connect(self.path, busy_timeout, self._max_page_count)

    def query(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        """Rows from the file; none when degraded, closed, or the read fails (warned once)."""
        with self.lock:
            try:
                conn = self._foreground()
                return [] if conn is None else conn.execute(sql, params).fetchall()
            except (sqlite3.Error, OSError) as exc:
                self._warn("read", "dnscache: could not read %s (%r)", self.path, exc)
                return []

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one statement on the foreground connection; its rowcount (0 when degraded)."""
        with self.lock:
            conn = self._foreground()
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

    def _foreground(self) -> sqlite3.Connection | None:
        """The shared foreground connection; None when degraded or closed (hold lock)."""
        if self._closed or not self._ready_locked():
            return None
        if self._conn is None:
            self._conn = sqlfile.connect(
                self.path, sqlfile.FOREGROUND_BUSY_TIMEOUT, self._max_page_count
            )
        return self._conn

    # -- preparing the file --

    def _ready_locked(self) -> bool:
        if self._state == _NEW:
            try:
                self._prepare()
                self._state = _SQLITE
            except files.Untouchable as exc:
                self._degrade(f"dnscache: not using {self.path}: {exc}; the file is left as it is")
            except Exception as exc:  # OSError, sqlite3.Error: the location is unusable
                self._degrade(f"dnscache: cannot use {self.path} ({exc})")
        return self._state == _SQLITE

    def _degrade(self, reason: str) -> None:
        self._state = _MEMORY
        self._warn("degraded", "%s; keeping addresses in memory for this process only", reason)

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
            "dnscache: %s was corrupt (%s); moved it to %s and started a new one",
            self.path,
            exc,
            target,
        )
