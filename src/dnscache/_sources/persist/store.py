"""The persistent address table (:class:`PersistentStore`): a facade over the package.

It wires :mod:`.rules` (ordering and validation, pure), :mod:`.files` (where the
file lives, whose it is), :mod:`.sqlfile` (schema, migrations, connections),
:mod:`.database` (the prepared file), :mod:`.writer` (the queue and its thread)
and :mod:`.memory` (what stays in memory).

Design notes:

* **Wall-clock time.** Rows carry ``time.time()`` seconds, not
  ``time.monotonic()`` like the rest of dnscache: the monotonic clock starts
  over at every boot, and the whole point of these rows is to outlive the
  process (and the machine's uptime). A wall clock can jump, so a row "from
  the future" by more than ``max_age`` is treated as garbage and pruned rather
  than kept forever.
* **Writes off the lookup path.** :meth:`PersistentStore.record_seen` and
  :meth:`~PersistentStore.record_connected` only queue (see :mod:`.writer`).
  The first batch a process writes also prunes dead rows, so the file stays
  small without anyone calling :meth:`~PersistentStore.prune`.
* **Connections.** The writer thread owns one connection; every other thread
  shares one foreground connection (see :mod:`.database`).
* **Degradation, never an exception.** Every public method catches what it
  may raise. The first use prepares the file (see :mod:`.database`); then:

  - a corrupt file (not a database, or ``quick_check`` not ``ok``) is moved
    aside (see :mod:`.files`) and a new one is created: one warning;
  - an unusable location (unwritable directory, path under a regular file,
    read-only file system) or a file we must not modify (a newer schema
    version than we know, someone else's database, a symlink, a file or
    directory another user owns or can write: see :mod:`.files`) leaves
    everything untouched and the store keeps rows in memory for the life of
    the process, with the same API: one warning, and
    :attr:`~PersistentStore.degraded` is True;
  - a failed write (disk full, a lock held for longer than the busy timeout,
    an I/O error) keeps the batch in memory, so this process still serves it,
    and logs one warning per kind of failure.

  Rows read back are validated (:func:`.rules.clean_row`): whoever can edit
  the file cannot make us return junk.
* **Fork.** sqlite forbids using a connection opened before ``fork()`` in the
  child (https://www.sqlite.org/howtocorrupt.html section 2.6), and closing it
  there could checkpoint or delete a ``-wal`` the parent still uses. So
  :meth:`~PersistentStore.reset_after_fork` parks the inherited connections
  (never used, never closed), replaces every lock and drops the inherited
  queue; the writer restarts lazily. Each public method also notices a
  changed pid and resets by itself, as a backstop.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from ..._core.logger import log
from . import sqlfile
from .database import Database, park
from .files import default_path
from .memory import MemoryRows, Touches
from .rules import (
    DEFAULT_MAX_AGE,
    MAX_ROWS_PER_HOST,
    MIN_TIME,
    Seen,
    Times,
    clean_host,
    clean_ip,
    clean_time,
    combine,
    display_host,
    fallback_order,
    is_alive,
    merge_order,
)
from .writer import JOIN_TIMEOUT, MAX_PENDING, Writer

# Kept importable from here: the engine and the CLI import these names from this module.
__all__ = [
    "DEFAULT_MAX_AGE",
    "PersistentStore",
    "Seen",
    "default_path",
    "fallback_order",
    "is_alive",
    "merge_order",
]

PRUNE_INTERVAL = 86400.0  # the writer prunes with its first batch, then at most once a day


class PersistentStore:
    """The address table in one sqlite file; never raises, degrades to memory instead.

    Thread-safe. ``record_*`` and ``touch`` never block on I/O. See the module
    docstring. Bigger than the 250-line guide on purpose: it is the facade, one
    shielded method per public operation, plus the three flows that hold its
    locks together (recording, the writer's batch, reading); everything with
    logic of its own lives in the sibling modules.
    """

    def __init__(
        self,
        path: str,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.time,
        flush_interval: float = 0.5,
        say: Callable[..., None] | None = None,
        read_only: bool = False,
        _max_page_count: int | None = None,  # tests only: simulate a full disk
        _max_pending: int = MAX_PENDING,  # tests only
    ) -> None:
        self._path = os.path.abspath(path)
        self._max_age = max_age
        self._clock = clock
        self._say = log.log if say is None else say  # say(level, message, *args)
        self._warned: set[str] = set()
        self._memory = MemoryRows()
        self._next_prune = -math.inf  # wall-clock time of the next automatic prune
        self._closed = False
        self._db = Database(
            self._path,
            clock=clock,
            warn=self._warn_once,
            max_page_count=_max_page_count,
            read_only=read_only,
        )
        self._writer_conn: sqlite3.Connection | None = None  # the writer thread's own
        self._touched = Touches()
        self._writer = Writer(
            self._write,
            self._drop_writer_conn,
            flush_interval=flush_interval,
            max_pending=_max_pending,
        )
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        """Fresh locks and writer (at start, and in a forked child)."""
        self._pid = os.getpid()
        # Lock order: the writer's exclusive(), then the database's lock, then _lock.
        self._lock = threading.Lock()  # the memory rows, the writer connection, the warnings
        self._writer.reset()

    # -- public API --

    @property
    def path(self) -> str:
        return self._path

    @property
    def degraded(self) -> bool:
        """True when the file cannot be written: new rows live in memory only."""
        return self._db.degraded

    @property
    def read_only(self) -> bool:
        """True when the file is read but not written (``read_only=True``, a full disk, a
        read-only file system): the rows already in it are served, new ones kept in memory."""
        return self._db.read_only

    @property
    def dropped(self) -> int:
        """Queued entries dropped because the queue was full."""
        return self._writer.dropped

    def record_seen(self, host: bytes | str, ips: Sequence[str]) -> None:
        """Queue: ``host`` resolved to ``ips`` now. Never blocks on I/O.

        ``host`` is the name as libc sees it, as bytes (the engine's cache key
        without its final dot); an ASCII ``str`` is taken as the same bytes and
        any other ``str`` is ignored (see :func:`.rules.clean_host`).
        """
        with self._shield("record_seen"):
            if isinstance(ips, str):
                ips = (ips,)
            self._record(host, ips, connected=False)

    def record_connected(self, host: bytes | str, ip: str) -> None:
        """Queue: a connection to ``ip`` for ``host`` just succeeded (which also counts as seen)."""
        with self._shield("record_connected"):
            self._record(host, (ip,), connected=True)

    def touch(self, host: bytes | str, ips: Iterable[str]) -> None:
        """The in-memory cache just returned ``ips`` for ``host``: refresh their last_seen.

        Delta Chat's ``last_seen`` reflects when an address was last *returned*,
        not when the resolver last said it. Cheap (a dict look-up per address
        when nothing is due), never blocks on I/O (it queues like
        :meth:`record_seen`), at most one write per row a minute, and the
        memory of what was touched is bounded (see :class:`.memory.Touches`). Call it
        for live answers only: touching an address that came from this table
        would keep it alive for ever.
        """
        try:
            ips = (ips,) if isinstance(ips, str) else tuple(ips)  # an exact tuple: itself
            if self._touched.recent(host, ips, self._clock()):
                return  # the hit path: everything was touched within the minute
        except Exception:  # the shielded slow path below reports it
            pass
        with self._shield("touch"):
            self._touch(host, ips)

    def addresses(self, host: bytes | str) -> list[Seen]:
        """The live persisted addresses of ``host`` in :func:`fallback_order`.

        Reads the file (plus any rows this process could not write), so it sees
        other processes' writes; queued writes of this process show up after
        :meth:`flush`.
        """
        result: list[Seen] = []
        with self._shield("addresses"):
            result = self._addresses(host)
        return result

    def hosts(self) -> list[tuple[bytes, list[Seen]]]:
        """Every host key (the exact bytes) with its live addresses, sorted by key."""
        result: list[tuple[bytes, list[Seen]]] = []
        with self._shield("hosts"):
            result = self._all_hosts()
        return result

    def all_hosts(self) -> list[tuple[str, list[Seen]]]:
        """:meth:`hosts` with each key as text to show (:func:`.rules.display_host`).

        For ``dnscache cache show``; sorted by that text.
        """
        result: list[tuple[str, list[Seen]]] = []
        with self._shield("all_hosts"):
            result = sorted((display_host(host), rows) for host, rows in self._all_hosts())
        return result

    def prune(self, now: float | None = None) -> int:
        """Delete rows not seen for ``max_age`` (or from the future); return how many."""
        removed = 0
        with self._shield("prune"):
            removed = self._prune(self._clock() if now is None else now)
        return removed

    def clear(self) -> None:
        """Forget everything: queued entries, the file's rows and the memory rows."""
        with self._shield("clear"):
            self._clear()

    def flush(self, timeout: float = 2.0) -> None:
        """Wait up to ``timeout`` seconds until every entry queued so far is written."""
        with self._shield("flush"):
            self._writer.flush(timeout)

    def close(self) -> None:
        """Write what is queued, stop the writer, close the connections. Idempotent.

        Takes at most CLOSE_FLUSH_TIMEOUT + 2 * JOIN_TIMEOUT seconds (in practice
        the time to write the last batch, milliseconds); a writer stuck
        behind another process's lock finishes on its own (it is a daemon and
        every wait it makes is bounded). After close the store keeps working in
        memory only and never touches the file again.
        """
        with self._shield("close"):
            if not self._closed:
                self._closed = True
                self._writer.close()
                self._db.close(JOIN_TIMEOUT)

    def reset_after_fork(self) -> None:
        """In a forked child: abandon inherited connections, locks and queue; restart lazily."""
        park(self._writer_conn)
        self._writer_conn = None
        self._db.reset_after_fork()
        self._reset_runtime()

    def __repr__(self) -> str:
        return f"<dnscache.PersistentStore {self._path!r} state={self._db.state}>"

    # -- guards --

    @contextlib.contextmanager
    def _shield(self, what: str) -> Iterator[None]:
        """Run a public method: after a fork reset first; let no exception out."""
        try:
            if self._pid != os.getpid():
                self.reset_after_fork()
        except Exception as exc:  # pragma: no cover - it only makes locks and lists
            self._warn_once("error:fork", "persistent cache reset failed: %r", exc)
        try:
            yield
        except Exception as exc:  # sqlite3.Error, OSError and, by design, anything else
            self._warn_once(f"error:{what}", "persistent cache %s failed: %r", what, exc)

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        """Warn the first time ``key`` happens; later occurrences go to debug. Never hold _lock."""
        with self._lock:
            first = key not in self._warned
            self._warned.add(key)
        self._say(logging.WARNING if first else logging.DEBUG, message, *args)

    # -- writing (the writer thread calls _write and _drop_writer_conn) --

    def _record(
        self, host: bytes | str, ips: Sequence[str], *, connected: bool, touched: bool = False
    ) -> None:
        host_key = clean_host(host)
        now = clean_time(self._clock())
        if host_key is None or now is None or now < MIN_TIME:
            return  # a clock before 2000 is wrong: what it stamps would be read back as junk
        times: Times = (now, now if connected else None)
        clean = [ip for ip in map(clean_ip, ips) if ip is not None]
        if not touched:  # written now: no touch() needs to write it again within the minute
            with self._lock:
                self._touched.due(host_key, clean, now, force=True)
        queued = not (self._closed or self._db.degraded) and self._writer.put(
            ((host_key, ip), times) for ip in clean
        )
        if queued:
            return
        with self._lock:
            for ip in clean:
                self._memory.upsert(host_key, ip, times)

    def _touch(self, host: bytes | str, ips: Iterable[str]) -> None:
        now = clean_time(self._clock())
        if now is None:
            return
        with self._lock:
            due = self._touched.due(host, ips, now)
        if due:
            self._record(host, due, connected=False, touched=True)

    def _drop_writer_conn(self, conn: sqlite3.Connection | None) -> None:
        """Close a writer connection (on exit or after a failure)."""
        if conn is None:
            return
        with self._lock:
            if self._writer_conn is conn:  # a newer writer may already have its own
                self._writer_conn = None
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    def _write(
        self, conn: sqlite3.Connection | None, batch: Mapping[tuple[bytes, str], Times]
    ) -> sqlite3.Connection | None:
        """Write one batch in one transaction; on failure keep it in memory."""
        try:
            if conn is None:
                if not self._db.ready():
                    self._remember(batch)
                    return None
                conn = self._db.connect()
                with self._lock:
                    self._writer_conn = conn  # for reset_after_fork to find
            rows = [(host, ip, seen, connected) for (host, ip), (seen, connected) in batch.items()]
            now = self._clock()
            pruning = now >= self._next_prune  # keeps the file small with no prune() call
            window = (now - self._max_age, now + self._max_age)
            self._db.write(conn, rows, window if pruning else None)
            if pruning:
                self._next_prune = now + PRUNE_INTERVAL
        except Exception as exc:
            self._remember(batch)
            self._write_failed(exc)
            self._drop_writer_conn(conn)  # the next batch gets a fresh one
            return None
        return conn

    def _write_failed(self, exc: Exception) -> None:
        full = sqlfile.is_full(exc)
        what = "the disk holding %s is full (%s)" if full else "could not write to %s (%r)"
        message = f"{what}; new addresses are kept in memory"
        self._warn_once("full" if full else "write", message, self._path, exc)

    def _remember(self, batch: Mapping[tuple[bytes, str], Times]) -> None:
        with self._lock:
            for (host, ip), times in batch.items():
                self._memory.upsert(host, ip, times)

    # -- reading, pruning, clearing --

    def _addresses(self, host: bytes | str) -> list[Seen]:
        host_key = clean_host(host)
        now = self._clock()
        if host_key is None:
            return []
        seen = (now - self._max_age, now + self._max_age)
        connected = (MIN_TIME, now + self._max_age)
        params = (host_key, *seen, *connected, MAX_ROWS_PER_HOST)
        found = self._db.query(sqlfile.SELECT_HOST, params)
        with self._lock:
            extra = self._memory.rows(host_key)
        return combine(found, extra, now, self._max_age)[:MAX_ROWS_PER_HOST]

    def _all_hosts(self) -> list[tuple[bytes, list[Seen]]]:
        now = self._clock()
        found = self._db.query(sqlfile.SELECT_ALL, (now - self._max_age, now + self._max_age))
        with self._lock:
            extra = self._memory.hosts()
        by_host: dict[bytes, list[tuple[object, ...]]] = {}
        for host, *row in found:
            host_key = clean_host(host) if type(host) is bytes else None  # text: not our row
            if host_key is not None:
                by_host.setdefault(host_key, []).append(tuple(row))
        result = []
        for host in sorted(by_host.keys() | extra.keys()):
            rows = combine(by_host.get(host, []), extra.get(host, {}), now, self._max_age)
            if rows:
                result.append((host, rows))
        return result

    def _prune(self, now: float) -> int:
        with self._writer.exclusive():
            removed = self._db.execute(sqlfile.PRUNE, (now - self._max_age, now + self._max_age))
        with self._lock:
            removed += self._memory.prune(now, self._max_age)
        return removed

    def _clear(self) -> None:
        with self._writer.exclusive():
            self._writer.discard()
            with self._lock:
                self._memory.clear()
            self._db.execute("DELETE FROM addresses")
