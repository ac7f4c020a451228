"""The persistent address table: every IP ever seen for a host, kept across restarts.

Why: a process that starts while DNS is down has an empty in-memory cache and
cannot connect anywhere, even though the servers it talked to an hour ago are
still up at the same addresses. Delta Chat solved this for its mail client
with a table of every address a host name ever resolved to, when it was last
seen and when a connection to it last succeeded; after a failed lookup (or
next to a live answer, see :func:`merge_order`) those addresses are tried too.
This module is that table, in one sqlite file shared by every process of the
user.

Design notes:

* **Wall-clock time.** Rows carry ``time.time()`` seconds, not
  ``time.monotonic()`` like the rest of dnscache: the monotonic clock starts
  over at every boot, and the whole point of these rows is to outlive the
  process (and the machine's uptime). A wall clock can jump, so a row "from
  the future" by more than ``max_age`` is treated as garbage and pruned rather
  than kept forever.
* **WAL, busy timeout, synchronous=NORMAL.** Many processes of one user share
  the file. In WAL mode readers never wait for the writer and a commit is one
  append to the ``-wal`` file; ``synchronous=NORMAL`` skips the fsync per
  commit (a power cut may lose the last few commits, never corrupt the file:
  losing a few cache rows is harmless). The busy timeout lets concurrent
  writers queue for sqlite's single write lock instead of failing at once, and
  also bounds how long anything here can wait.
* **Mode 0600, directories 0700.** The table is a history of every host this
  user's programs talked to: private. We create the file ourselves with
  ``os.open(..., 0o600)`` (and ``fchmod``, since the umask can only remove
  bits) before sqlite opens it, and each directory we create with mode 0700
  (XDG's rule for cache directories). sqlite's unix VFS creates ``-wal`` and
  ``-shm`` with the database file's own permissions, so they are 0600 too; we
  also ``chmod`` them once they exist, in case someone else created them. We
  never touch the umask: it is process-global and changing it races with
  every other thread creating files.
* **Writes off the lookup path.** :meth:`PersistentStore.record_seen` and
  :meth:`~PersistentStore.record_connected` only put a row in a bounded,
  coalescing queue (one entry per (host, ip), keeping the newest times). One
  daemon thread, ``dnscache-persist``, started on first write and exiting
  after ``IDLE_EXIT`` idle seconds, writes the queue in one transaction every
  ``flush_interval`` (sooner when ``BATCH_SIZE`` entries are waiting). Past
  ``MAX_PENDING`` entries the oldest is dropped and counted: a cache may
  forget, a lookup may never wait for a disk. The first batch a process
  writes also prunes dead rows, so the file stays small without anyone
  calling :meth:`~PersistentStore.prune`.
* **Connections.** sqlite connections must not be shared carelessly between
  threads. The writer thread owns one connection. Every other thread (the
  callers of :meth:`~PersistentStore.addresses`, :meth:`~PersistentStore.prune`
  and friends) shares one *foreground* connection under a lock: these calls
  are rare (a failed lookup, a merge, the CLI) and a per-thread connection
  would leak one file descriptor per short-lived thread.
* **Degradation, never an exception.** Every public method catches what it
  may raise. The first use prepares the file (directories, file, a
  ``PRAGMA quick_check``, migrations); then:

  - a corrupt file (not a database, or ``quick_check`` not ``ok``) is renamed
    to ``<path>.corrupt-<UTC timestamp>``, with any ``-wal``/``-journal`` left
    next to it (so the set can still be examined, and none of it is replayed
    into the new file), and a new one is created: one warning;
  - an unusable location (unwritable directory, path under a regular file,
    read-only file system) or a file we must not modify (a newer schema
    version than we know, someone else's database) leaves the file untouched
    and the store keeps rows in memory for the life of the process, with the
    same API: one warning, and :attr:`~PersistentStore.degraded` is True;
  - a failed write (disk full, a lock held for longer than the busy timeout,
    an I/O error) keeps the batch in memory, so this process still serves it,
    and logs one warning per kind of failure.

  Rows read back are validated (host length and printability, ``ipaddress``,
  finite times): whoever can edit the file cannot make us return junk.
* **Schema.** ``schema_version`` holds one row per applied version with the
  time and a one-line note (coverage.py's discipline). Migrations run in order
  inside one ``BEGIN IMMEDIATE`` transaction, so concurrent first starts
  apply them once.
* **Fork.** sqlite forbids using a connection opened before ``fork()`` in the
  child (https://www.sqlite.org/howtocorrupt.html section 2.6), and closing it
  there could checkpoint or delete a ``-wal`` the parent still uses. So
  :meth:`~PersistentStore.reset_after_fork` parks the inherited connections in
  a module-level list, never used and never closed, replaces every lock and
  drops the inherited queue; the writer restarts lazily. Each public method
  also notices a changed pid and resets by itself, as a backstop.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import math
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_AGE",
    "SCHEMA_VERSION",
    "PersistentStore",
    "Seen",
    "default_path",
    "fallback_order",
    "is_alive",
    "merge_order",
]

# Long enough to ride out a DNS outage that spans a holiday-long laptop sleep; short
# enough that a server's old address, renumbered away, is forgotten within a month.
DEFAULT_MAX_AGE = 30 * 86400.0
PRUNE_INTERVAL = 86400.0  # the writer prunes with its first batch, then at most once a day

WRITER_BUSY_TIMEOUT = 5.0  # seconds the writer waits for another process's write lock
FOREGROUND_BUSY_TIMEOUT = 1.0  # readers in WAL mode almost never wait; never long on a lookup
BATCH_SIZE = 500  # queued entries that wake the writer before flush_interval is up
MAX_PENDING = 10_000  # queued (host, ip) entries; past this the oldest is dropped
MAX_MEMORY_ROWS = 10_000  # rows kept in memory when the file cannot take them
IDLE_EXIT = 10.0  # seconds the writer waits for work before its thread exits
JOIN_TIMEOUT = 1.0  # close() waits this long for the writer on top of flush time
CLOSE_FLUSH_TIMEOUT = 2.0  # ... and this long for the last batch to be written
MAX_HOST_LENGTH = 253  # RFC 1035 2.3.4: 255 octets on the wire, 253 characters as text

SCHEMA_VERSION = 1

# (version, one line of history, statements). Applied in order in one transaction;
# append only: a released step is never edited.
_MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
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
)

_CREATE_SCHEMA_VERSION = """CREATE TABLE schema_version (
    version INTEGER NOT NULL PRIMARY KEY,
    applied REAL NOT NULL,
    note TEXT NOT NULL
)"""

# Times only move forward: max() of each, where sqlite's max(x, NULL) is NULL, hence coalesce.
_UPSERT = """INSERT INTO addresses (host, ip, last_seen, last_connected) VALUES (?, ?, ?, ?)
ON CONFLICT (host, ip) DO UPDATE SET
    last_seen = max(last_seen, excluded.last_seen),
    last_connected = max(coalesce(last_connected, excluded.last_connected),
                         coalesce(excluded.last_connected, last_connected))"""

# Anything not alive, including a last_seen that is not a number (sqlite is dynamically typed).
_PRUNE = """DELETE FROM addresses
WHERE typeof(last_seen) NOT IN ('integer', 'real') OR last_seen <= ? OR last_seen > ?"""

_SELECT_HOST = """SELECT ip, last_seen, last_connected FROM addresses
WHERE host = ? AND last_seen > ? AND last_seen <= ?"""

_SELECT_ALL = """SELECT host, ip, last_seen, last_connected FROM addresses
WHERE last_seen > ? AND last_seen <= ? ORDER BY host"""

# Connections inherited across fork(): never used, never closed (see the module docstring).
_INHERITED: list[sqlite3.Connection] = []


@dataclass(frozen=True, slots=True)
class Seen:
    """One persisted address of a host."""

    ip: str
    last_seen: float  # wall-clock seconds (time.time())
    last_connected: float | None  # wall-clock seconds, None if never connected


def default_path(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_CACHE_HOME/dnscache/dns.sqlite3``, else ``~/.cache/dnscache/dns.sqlite3``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative path is invalid and ignored
        home = env.get("HOME") or os.path.expanduser("~")
        base = os.path.join(home, ".cache")
    return os.path.join(base, "dnscache", "dns.sqlite3")


# --- pure ordering: no I/O, no clock ---


def is_alive(last_seen: float, now: float, max_age: float) -> bool:
    """Whether a row last seen at ``last_seen`` is still usable at ``now``.

    It dies exactly ``max_age`` seconds after it was seen. A row more than
    ``max_age`` in the future was written under a wrong clock and is dead too.
    """
    return now - max_age < last_seen <= now + max_age


def _recency(row: Seen) -> tuple[float, float]:
    connected = row.last_connected if row.last_connected is not None else -math.inf
    return (connected, row.last_seen)


def fallback_order(rows: Sequence[Seen]) -> list[str]:
    """The IPs of ``rows``: most recently connected first, then most recently seen; no repeats.

    An address a connection succeeded to, however long ago, beats one that was only
    ever seen in an answer. Ties keep the order of ``rows``.
    """
    return _unique(row.ip for row in sorted(rows, key=_recency, reverse=True))


def merge_order(
    live: Sequence[str],
    rows: Sequence[Seen],
    preload: Sequence[str],
    now: float,
    max_age: float,
    limit: int = 10,
) -> list[str]:
    """Delta Chat's order of addresses to try, at most ``limit`` of them, no repeats.

    The first two distinct live addresses (the resolver's own preference, and
    typically both families under RFC 6724/8305 ordering; distinct because
    getaddrinfo repeats an address once per socket type), then the persisted
    addresses still alive at ``now`` in :func:`fallback_order`, then the
    preloaded (built-in) ones, then the rest of the live answer.
    """
    fresh = _unique(live)
    alive = [row for row in rows if is_alive(row.last_seen, now, max_age)]
    ordered = [*fresh[:2], *fallback_order(alive), *preload, *fresh[2:]]
    return _unique(ordered)[: max(limit, 0)]


def _unique(ips: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ips))


# --- validation of what goes in and what comes out ---


def _clean_host(host: object) -> str | None:
    """``host`` if it is a plausible host name key, else None."""
    if not isinstance(host, str) or not host or not host.isprintable():
        return None  # isprintable: no control characters for `dnscache cache show` to print
    if len(host.removesuffix(".")) > MAX_HOST_LENGTH:
        return None
    return host


def _clean_ip(ip: object) -> str | None:
    """The canonical text of an IP address, or None."""
    if not isinstance(ip, str):
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


def _clean_time(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _clean_row(ip: object, last_seen: object, last_connected: object) -> Seen | None:
    """A row read back from the file (or memory), or None if any part of it is junk."""
    clean_ip = _clean_ip(ip)
    seen = _clean_time(last_seen)
    connected = None if last_connected is None else _clean_time(last_connected)
    if clean_ip is None or seen is None or (last_connected is not None and connected is None):
        return None
    return Seen(clean_ip, seen, connected)


Times = tuple[float, float | None]  # (last_seen, last_connected)


def _newer(a: Times, b: Times) -> Times:
    """Both times moved forward to the later of the two."""
    if a[1] is None:
        connected = b[1]
    elif b[1] is None:
        connected = a[1]
    else:
        connected = max(a[1], b[1])
    return (max(a[0], b[0]), connected)


class _MemoryRows:
    """Rows this process keeps for itself: bounded, oldest host evicted first. Not thread-safe."""

    def __init__(self, limit: int = MAX_MEMORY_ROWS) -> None:
        self._hosts: OrderedDict[str, dict[str, Times]] = OrderedDict()
        self._count = 0
        self._limit = limit

    def __len__(self) -> int:
        return self._count

    def upsert(self, host: str, ip: str, times: Times) -> None:
        ips = self._hosts.get(host)
        if ips is None:
            ips = self._hosts[host] = {}
        old = ips.get(ip)
        if old is None:
            self._count += 1
            ips[ip] = times
        else:
            ips[ip] = _newer(old, times)
        while self._count > self._limit and self._hosts:
            _, evicted = self._hosts.popitem(last=False)
            self._count -= len(evicted)

    def rows(self, host: str) -> dict[str, Times]:
        return dict(self._hosts.get(host, {}))

    def hosts(self) -> dict[str, dict[str, Times]]:
        return {host: dict(ips) for host, ips in self._hosts.items()}

    def prune(self, now: float, max_age: float) -> int:
        removed = 0
        for host in list(self._hosts):
            ips = self._hosts[host]
            for ip in [ip for ip, t in ips.items() if not is_alive(t[0], now, max_age)]:
                del ips[ip]
                removed += 1
            if not ips:
                del self._hosts[host]
        self._count -= removed
        return removed

    def clear(self) -> None:
        self._hosts.clear()
        self._count = 0


# --- the file: private directories, a private file, corruption, schema ---


class _Corrupt(Exception):
    """The file is damaged: move it aside and start over."""


class _Untouchable(Exception):
    """The file is not ours to modify (a newer schema, someone else's tables)."""


_SQLITE_HEADER = b"SQLite format 3\x00"


def _looks_like_sqlite(path: str) -> bool:
    """True for an empty file or one starting with sqlite's header: ours to repair."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_HEADER))
    except OSError:
        return False
    return head in (b"", _SQLITE_HEADER)


def _is_corrupt(exc: BaseException) -> bool:
    if isinstance(exc, _Corrupt):
        return True
    if isinstance(exc, sqlite3.DatabaseError):
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
        return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    return False


def _is_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _make_private_dirs(directory: str) -> None:
    """Create ``directory`` and any missing parents with mode 0700 (XDG's rule).

    ``os.makedirs(mode=...)`` applies the mode only to the leaf, and the umask
    still filters it, hence one mkdir + chmod per created directory. A directory
    that already exists (or that another process creates first) keeps its mode.
    """
    missing = []
    current = os.path.abspath(directory)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not os.path.isdir(path):  # a regular file in the way: this location is unusable
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path) from None
            continue
        os.chmod(path, 0o700)


def _create_private_file(path: str) -> os.stat_result:
    """Make sure ``path`` exists (created with mode 0600); OSError if we cannot write it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)  # EACCES, EROFS, EISDIR: unusable
    else:
        os.fchmod(fd, 0o600)  # the umask may have removed bits we need
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def _tighten_sidecars(path: str) -> None:
    """Make our ``-wal``/``-shm`` files 0600 if someone created them wider."""
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(OSError):
            st = os.stat(path + suffix)
            if st.st_uid == os.geteuid() and st.st_mode & 0o077:
                os.chmod(path + suffix, 0o600)


def _move_aside(path: str, now: float) -> str:
    """Rename a corrupt file, with its journals, out of the way; return the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = f"{path}.corrupt-{stamp}"
    n = 1
    while os.path.lexists(target):
        target = f"{path}.corrupt-{stamp}-{n}"
        n += 1
    os.replace(path, target)
    for suffix in ("-wal", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(path + suffix, target + suffix)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path + "-shm")  # only an index of the -wal, rebuilt on open
    return target


def _connect(path: str, busy_timeout: float, max_page_count: int | None) -> sqlite3.Connection:
    """An autocommit connection (we write BEGIN/COMMIT), for whichever thread holds its lock."""
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
        if max_page_count is not None:
            conn.execute(f"PRAGMA max_page_count={int(max_page_count)}")
    except BaseException:
        conn.close()
        raise
    return conn


def _file_version(conn: sqlite3.Connection) -> int:
    """The schema version of the file: 0 for an empty database. Reads only."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "schema_version" not in tables:
        if tables:
            raise _Untouchable(f"not a dnscache database (it has tables {sorted(tables)})")
        return 0
    (version,) = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _Untouchable(f"unreadable schema version {version!r}")
    if version > SCHEMA_VERSION:
        raise _Untouchable(
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
        for step, note, statements in _MIGRATIONS:
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


def _check_and_migrate(path: str, now: float) -> None:
    """Raise _Corrupt/_Untouchable/sqlite3.Error unless the file is a healthy, current database.

    Nothing is written before the version is known to be one we understand.
    """
    conn = _connect(path, WRITER_BUSY_TIMEOUT, None)
    try:
        version = _file_version(conn)  # "file is not a database" shows up here
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise _Corrupt("; ".join(map(str, problems[:3])))
        conn.execute("PRAGMA journal_mode=WAL").fetchall()  # persistent in the file
        if version < SCHEMA_VERSION:
            _migrate(conn, now)
    finally:
        conn.close()


# --- the store ---

_NEW, _SQLITE, _MEMORY = "new", "sqlite", "memory"


class PersistentStore:
    """The address table in one sqlite file; never raises, degrades to memory instead.

    Thread-safe. ``record_*`` never block on I/O. See the module docstring.
    """

    def __init__(
        self,
        path: str,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.time,
        flush_interval: float = 0.5,
        logger: logging.Logger = logging.getLogger("dnscache"),  # noqa: B008
        _max_page_count: int | None = None,  # tests only: simulate a full disk
        _max_pending: int = MAX_PENDING,  # tests only
    ) -> None:
        self._path = os.path.abspath(path)
        self._max_age = max_age
        self._clock = clock
        self._flush_interval = flush_interval
        self._log = logger
        self._max_page_count = _max_page_count
        self._max_pending = _max_pending
        self._state = _NEW  # -> _SQLITE or _MEMORY, once, on first use
        self._warned: set[str] = set()
        self._memory = _MemoryRows()
        self._dropped = 0
        self._next_prune = -math.inf  # wall-clock time of the next automatic prune
        self._sidecars_checked = False
        self._closed = False
        self._conn: sqlite3.Connection | None = None  # foreground, under _db_lock
        self._writer_conn: sqlite3.Connection | None = None  # the writer thread's own
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        """Fresh locks, queue and thread bookkeeping (at start, and in a forked child)."""
        self._pid = os.getpid()
        # Lock order: _write_lock, then _db_lock, then _lock.
        self._write_lock = threading.Lock()  # one batch, prune or clear at a time
        self._db_lock = threading.Lock()  # preparing the file; the foreground connection
        self._lock = threading.Lock()  # the queue, the memory rows, the flags
        self._wake = threading.Condition(self._lock)
        self._pending: OrderedDict[tuple[str, str], Times] = OrderedDict()
        self._enqueued = 0  # sequence number of the last queued entry
        self._written = 0  # every entry up to this one is written (or given up on)
        self._urgent = False  # a flush() or close() is waiting: skip the batching window
        self._thread: threading.Thread | None = None

    # -- public API --

    @property
    def path(self) -> str:
        return self._path

    @property
    def degraded(self) -> bool:
        """True when the file could not be used and rows live in memory only."""
        return self._state == _MEMORY

    @property
    def dropped(self) -> int:
        """Queued entries dropped because the queue was full."""
        return self._dropped

    def record_seen(self, host: str, ips: Sequence[str]) -> None:
        """Queue: ``host`` resolved to ``ips`` now. Never blocks on I/O."""
        with self._shield("record_seen"):
            if isinstance(ips, str):
                ips = (ips,)
            self._record(host, ips, connected=False)

    def record_connected(self, host: str, ip: str) -> None:
        """Queue: a connection to ``ip`` for ``host`` just succeeded (which also counts as seen)."""
        with self._shield("record_connected"):
            self._record(host, (ip,), connected=True)

    def addresses(self, host: str) -> list[Seen]:
        """The live persisted addresses of ``host`` in :func:`fallback_order`.

        Reads the file (plus any rows this process could not write), so it sees
        other processes' writes; queued writes of this process show up after
        :meth:`flush`.
        """
        result: list[Seen] = []
        with self._shield("addresses"):
            result = self._addresses(host)
        return result

    def all_hosts(self) -> list[tuple[str, list[Seen]]]:
        """Every host with its live addresses, sorted by host (for ``dnscache cache show``)."""
        result: list[tuple[str, list[Seen]]] = []
        with self._shield("all_hosts"):
            result = self._all_hosts()
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
            self._flush(timeout)

    def close(self) -> None:
        """Write what is queued, stop the writer, close the connections. Idempotent.

        Takes at most CLOSE_FLUSH_TIMEOUT + 2 * JOIN_TIMEOUT seconds (in practice
        the time to write the last batch, milliseconds); a writer stuck
        behind another process's lock finishes on its own (it is a daemon and
        every wait it makes is bounded). After close the store keeps working in
        memory only and never touches the file again.
        """
        with self._shield("close"):
            self._close()

    def reset_after_fork(self) -> None:
        """In a forked child: abandon inherited connections, locks and queue; restart lazily."""
        for conn in (self._conn, self._writer_conn):
            if conn is not None:
                _INHERITED.append(conn)  # never used, never closed: it is the parent's
        self._conn = None
        self._writer_conn = None
        self._reset_runtime()

    def __repr__(self) -> str:
        return f"<dnscache.PersistentStore {self._path!r} state={self._state}>"

    # -- guards --

    @contextlib.contextmanager
    def _shield(self, what: str) -> Iterator[None]:
        """Run a public method: after a fork reset first; let no exception out."""
        try:
            if self._pid != os.getpid():
                self.reset_after_fork()
        except Exception as exc:  # pragma: no cover - it only makes locks and lists
            self._warn_once("error:fork", "dnscache: persistent cache reset failed: %r", exc)
        try:
            yield
        except Exception as exc:  # sqlite3.Error, OSError and, by design, anything else
            self._warn_once(f"error:{what}", "dnscache: persistent cache %s failed: %r", what, exc)

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        """Warn the first time ``key`` happens; later occurrences go to debug. Never hold _lock."""
        with self._lock:
            first = key not in self._warned
            self._warned.add(key)
        self._log.log(logging.WARNING if first else logging.DEBUG, message, *args)

    # -- preparing the file --

    def _ready_locked(self) -> bool:
        """Prepare the file on first use (caller holds _db_lock); True if sqlite is usable."""
        if self._state == _NEW:
            try:
                self._prepare()
                self._state = _SQLITE
            except _Untouchable as exc:
                self._degrade(f"dnscache: not using {self._path}: {exc}; the file is left as it is")
            except Exception as exc:  # OSError, sqlite3.Error: the location is unusable
                self._degrade(f"dnscache: cannot use {self._path} ({exc})")
        return self._state == _SQLITE

    def _degrade(self, reason: str) -> None:
        self._state = _MEMORY
        self._warn_once("degraded", "%s; keeping addresses in memory for this process only", reason)

    def _prepare(self) -> None:
        _make_private_dirs(os.path.dirname(self._path))
        moved = False
        while True:
            stat = _create_private_file(self._path)
            try:
                _check_and_migrate(self._path, self._clock())
            except Exception as exc:
                if moved or not _is_corrupt(exc):
                    raise
                if not _looks_like_sqlite(self._path):
                    # Not a database at all: somebody else's file (a wrong --path, a
                    # typo in PYTHONDNSCACHE_PERSIST). Never rename or touch it.
                    raise _Untouchable(f"{self._path} is not an sqlite database") from exc
                moved = True
                self._set_aside(stat, exc)
                continue
            _tighten_sidecars(self._path)
            return

    def _set_aside(self, stat: os.stat_result, exc: BaseException) -> None:
        try:
            current = os.stat(self._path)
        except FileNotFoundError:
            return  # another process moved it already
        if (current.st_dev, current.st_ino) != (stat.st_dev, stat.st_ino):
            return  # ... and created a new one: check that one instead
        target = _move_aside(self._path, self._clock())
        self._warn_once(
            "corrupt",
            "dnscache: %s was corrupt (%s); moved it to %s and started a new one",
            self._path,
            exc,
            target,
        )

    # -- writing --

    def _record(self, host: str, ips: Sequence[str], *, connected: bool) -> None:
        clean_host = _clean_host(host)
        now = _clean_time(self._clock())
        if clean_host is None or now is None:
            return
        times: Times = (now, now if connected else None)
        clean = [ip for ip in map(_clean_ip, ips) if ip is not None]
        with self._lock:
            if self._closed or self._state == _MEMORY:
                for ip in clean:
                    self._memory.upsert(clean_host, ip, times)
                return
            was_empty = not self._pending
            for ip in clean:
                key = (clean_host, ip)
                old = self._pending.get(key)
                if old is not None:
                    self._pending[key] = _newer(old, times)
                    continue
                if len(self._pending) >= self._max_pending:
                    self._pending.popitem(last=False)
                    self._dropped += 1
                self._pending[key] = times
                self._enqueued += 1
            if not self._pending:
                return
            if self._thread is None:
                self._start_writer()
            elif was_empty or len(self._pending) >= BATCH_SIZE:
                self._wake.notify_all()

    def _start_writer(self) -> None:
        """Start the writer thread (caller holds _lock)."""
        thread = threading.Thread(target=self._run, name="dnscache-persist", daemon=True)
        self._thread = thread
        thread.start()

    def _run(self) -> None:
        me = threading.current_thread()
        conn: sqlite3.Connection | None = None
        try:
            while self._wait_for_work(me):
                conn = self._write_batch(conn)
        finally:
            self._drop_writer_conn(conn)

    def _drop_writer_conn(self, conn: sqlite3.Connection | None) -> None:
        """Close a writer connection (on exit or after a failure)."""
        if conn is None:
            return
        with self._lock:
            if self._writer_conn is conn:  # a newer writer may already have its own
                self._writer_conn = None
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    def _wait_for_work(self, me: threading.Thread) -> bool:
        """Wait for a batch to be worth writing; False when the thread should exit."""
        with self._lock:
            idle_until = time.monotonic() + IDLE_EXIT
            while not self._pending:
                remaining = idle_until - time.monotonic()
                if self._closed or remaining <= 0:
                    if self._thread is me:
                        self._thread = None  # the next record starts a new writer
                    return False
                self._wake.wait(remaining)
            write_at = time.monotonic() + self._flush_interval
            while not (self._closed or self._urgent or len(self._pending) >= BATCH_SIZE):
                remaining = write_at - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.wait(remaining)
            return True

    def _write_batch(self, conn: sqlite3.Connection | None) -> sqlite3.Connection | None:
        """Take the queue and write it; return the connection to use next time."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, OrderedDict()
                upto, self._urgent = self._enqueued, False
            try:
                if batch:
                    conn = self._write(conn, batch)
            finally:
                with self._lock:
                    self._written = max(self._written, upto)
                    self._wake.notify_all()
        return conn

    def _write(
        self, conn: sqlite3.Connection | None, batch: Mapping[tuple[str, str], Times]
    ) -> sqlite3.Connection | None:
        """Write one batch in one transaction; on failure keep it in memory."""
        try:
            if conn is None:
                with self._db_lock:
                    ready = self._ready_locked()
                if not ready:
                    self._remember(batch)
                    return None
                conn = _connect(self._path, WRITER_BUSY_TIMEOUT, self._max_page_count)
                with self._lock:
                    self._writer_conn = conn  # for reset_after_fork to find
            rows = [(host, ip, seen, connected) for (host, ip), (seen, connected) in batch.items()]
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_UPSERT, rows)
                now = self._clock()
                pruning = now >= self._next_prune  # keeps the file small with no prune() call
                if pruning:
                    conn.execute(_PRUNE, (now - self._max_age, now + self._max_age))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if pruning:
                self._next_prune = now + PRUNE_INTERVAL
            if not self._sidecars_checked:
                self._sidecars_checked = True
                _tighten_sidecars(self._path)
        except Exception as exc:
            self._remember(batch)
            self._write_failed(exc)
            self._drop_writer_conn(conn)  # the next batch gets a fresh one
            return None
        return conn

    def _write_failed(self, exc: Exception) -> None:
        if _is_full(exc):
            self._warn_once(
                "full",
                "dnscache: the disk holding %s is full (%s); new addresses are kept in memory",
                self._path,
                exc,
            )
        else:
            self._warn_once(
                "write",
                "dnscache: could not write to %s (%r); new addresses are kept in memory",
                self._path,
                exc,
            )

    def _remember(self, batch: Mapping[tuple[str, str], Times]) -> None:
        with self._lock:
            for (host, ip), times in batch.items():
                self._memory.upsert(host, ip, times)

    def _flush(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._thread is threading.current_thread():
                return  # called from the writer itself (a logging handler?): nothing to wait for
            upto = self._enqueued
            if self._written >= upto:
                return
            self._urgent = True
            if self._thread is None and not self._closed:
                self._start_writer()
            self._wake.notify_all()
            while self._written < upto:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._wake.wait(remaining)

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(CLOSE_FLUSH_TIMEOUT + JOIN_TIMEOUT)
        if self._db_lock.acquire(timeout=JOIN_TIMEOUT):
            try:
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.close()
            finally:
                self._db_lock.release()

    # -- reading, pruning, clearing --

    def _foreground(self) -> sqlite3.Connection | None:
        """The shared foreground connection; None in memory mode or once closed (hold _db_lock)."""
        if self._closed or not self._ready_locked():
            return None
        if self._conn is None:
            self._conn = _connect(self._path, FOREGROUND_BUSY_TIMEOUT, self._max_page_count)
        return self._conn

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        """Rows from the file; none in memory mode or when the read fails (warned once)."""
        with self._db_lock:
            try:
                conn = self._foreground()
                return [] if conn is None else conn.execute(sql, params).fetchall()
            except (sqlite3.Error, OSError) as exc:
                self._warn_once("read", "dnscache: could not read %s (%r)", self._path, exc)
                return []

    def _addresses(self, host: str) -> list[Seen]:
        clean_host = _clean_host(host)
        now = self._clock()
        if clean_host is None:
            return []
        found = self._query(_SELECT_HOST, (clean_host, now - self._max_age, now + self._max_age))
        with self._lock:
            extra = self._memory.rows(clean_host)
        return self._combine(found, extra, now)

    def _all_hosts(self) -> list[tuple[str, list[Seen]]]:
        now = self._clock()
        found = self._query(_SELECT_ALL, (now - self._max_age, now + self._max_age))
        with self._lock:
            extra = self._memory.hosts()
        by_host: dict[str, list[tuple[object, ...]]] = {}
        for host, *row in found:
            clean_host = _clean_host(host)
            if clean_host is not None:
                by_host.setdefault(clean_host, []).append(tuple(row))
        result = []
        for host in sorted(by_host.keys() | extra.keys()):
            rows = self._combine(by_host.get(host, []), extra.get(host, {}), now)
            if rows:
                result.append((host, rows))
        return result

    def _combine(
        self, found: Iterable[tuple[object, ...]], extra: Mapping[str, Times], now: float
    ) -> list[Seen]:
        """Validated, live rows from the file merged with memory rows, in fallback order."""
        best: dict[str, Times] = {}
        candidates = [*found, *((ip, seen, conn) for ip, (seen, conn) in extra.items())]
        for ip, last_seen, last_connected in candidates:
            row = _clean_row(ip, last_seen, last_connected)
            if row is None or not is_alive(row.last_seen, now, self._max_age):
                continue
            times: Times = (row.last_seen, row.last_connected)
            old = best.get(row.ip)
            best[row.ip] = times if old is None else _newer(old, times)
        rows = [Seen(ip, seen, connected) for ip, (seen, connected) in best.items()]
        return sorted(rows, key=_recency, reverse=True)

    def _prune(self, now: float) -> int:
        removed = 0
        with self._write_lock, self._db_lock:
            conn = self._foreground()
            if conn is not None:
                cursor = conn.execute(_PRUNE, (now - self._max_age, now + self._max_age))
                removed = max(cursor.rowcount, 0)
        with self._lock:
            removed += self._memory.prune(now, self._max_age)
        return removed

    def _clear(self) -> None:
        with self._write_lock:
            with self._lock:
                self._pending.clear()
                self._written = self._enqueued
                self._memory.clear()
                self._wake.notify_all()
            with self._db_lock:
                conn = self._foreground()
                if conn is not None:
                    conn.execute("DELETE FROM addresses")
