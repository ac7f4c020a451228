"""Writes off the lookup path: a bounded, coalescing queue and the thread that drains it.

:meth:`Writer.put` only puts rows in a queue (one entry per (host, ip),
keeping the newest times) and never blocks on I/O. One daemon thread,
``dnscache-persist``, started on the first put and exiting after ``IDLE_EXIT``
idle seconds, hands the queue to the store's ``write`` callback in one batch
every ``flush_interval`` (sooner when ``BATCH_SIZE`` entries are waiting, or
when :meth:`Writer.flush` or :meth:`Writer.close` asks). Past ``max_pending``
entries the oldest is dropped and counted: a cache may forget, a lookup may
never wait for a disk.

The writer knows nothing of sqlite beyond carrying the connection the callback
returns from one batch to the next (the thread owns it; ``drop`` closes it when
the thread exits). Every wait here is bounded.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping

from .rules import Times, newer

__all__ = ["BATCH_SIZE", "IDLE_EXIT", "JOIN_TIMEOUT", "MAX_PENDING", "Writer"]

BATCH_SIZE = 500  # queued entries that wake the writer before flush_interval is up
MAX_PENDING = 10_000  # queued (host, ip) entries; past this the oldest is dropped
IDLE_EXIT = 10.0  # seconds the writer waits for work before its thread exits
JOIN_TIMEOUT = 1.0  # close() waits this long for the writer on top of flush time
CLOSE_FLUSH_TIMEOUT = 2.0  # ... and this long for the last batch to be written

Key = tuple[bytes, str]  # (host, ip)
Batch = Mapping[Key, Times]
Conn = sqlite3.Connection | None
WriteBatch = Callable[[Conn, Batch], Conn]  # write one batch; the connection to use next


class Writer:
    """The queue and its thread. Thread-safe; ``put`` never blocks on I/O."""

    def __init__(
        self,
        write: WriteBatch,
        drop: Callable[[Conn], None],
        *,
        flush_interval: float,
        max_pending: int = MAX_PENDING,
        name: str = "dnscache-persist",
    ) -> None:
        self._write = write
        self._drop = drop
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self._name = name
        self.dropped = 0  # entries dropped because the queue was full
        self._closed = False  # survives reset(): a closed writer stays closed in a child
        self.reset()

    def reset(self) -> None:
        """Fresh locks, an empty queue, no thread (at start, and in a forked child)."""
        # Lock order: _write_lock, then whatever the callbacks take, then _lock.
        self._write_lock = threading.Lock()  # one batch (or a caller's exclusive()) at a time
        self._lock = threading.Lock()  # the queue and the flags
        self._wake = threading.Condition(self._lock)
        self._pending: OrderedDict[Key, Times] = OrderedDict()
        self._enqueued = 0  # sequence number of the last queued entry
        self._written = 0  # every entry up to this one is written (or given up on)
        self._urgent = False  # a flush() or close() is waiting: skip the batching window
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """No batch is being written while the block runs (for prune and clear)."""
        with self._write_lock:
            yield

    def put(self, items: Iterable[tuple[Key, Times]]) -> bool:
        """Queue rows, coalescing with queued ones; False (nothing queued) once closed."""
        with self._lock:
            if self._closed:
                return False
            was_empty = not self._pending
            for key, times in items:
                old = self._pending.get(key)
                if old is not None:
                    self._pending[key] = newer(old, times)
                    continue
                if len(self._pending) >= self._max_pending:
                    self._pending.popitem(last=False)
                    self.dropped += 1
                self._pending[key] = times
                self._enqueued += 1
            if not self._pending:
                return True
            if self._thread is None:
                self._start()
            elif was_empty or len(self._pending) >= BATCH_SIZE:
                self._wake.notify_all()
            return True

    def discard(self) -> None:
        """Forget every queued entry (hold exclusive())."""
        with self._lock:
            self._pending.clear()
            self._written = self._enqueued
            self._wake.notify_all()

    def flush(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds until every entry queued so far is written."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._thread is threading.current_thread():
                return  # called from the writer itself (a logging handler?): nothing to wait for
            upto = self._enqueued
            if self._written >= upto:
                return
            self._urgent = True
            if self._thread is None and not self._closed:
                self._start()
            self._wake.notify_all()
            while self._written < upto:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._wake.wait(remaining)

    def close(self) -> None:
        """Write what is queued and stop the thread (bounded wait). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(CLOSE_FLUSH_TIMEOUT + JOIN_TIMEOUT)

    def _start(self) -> None:
        """Start the writer thread (caller holds _lock)."""
        thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread = thread
        thread.start()

    def _run(self) -> None:
        me = threading.current_thread()
        conn: Conn = None
        try:
            while self._wait_for_work(me):
                conn = self._write_batch(conn)
        finally:
            self._drop(conn)

    def _wait_for_work(self, me: threading.Thread) -> bool:
        """Wait for a batch to be worth writing; False when the thread should exit."""
        with self._lock:
            idle_until = time.monotonic() + IDLE_EXIT
            while not self._pending:
                remaining = idle_until - time.monotonic()
                if self._closed or remaining <= 0:
                    if self._thread is me:
                        self._thread = None  # the next put starts a new writer
                    return False
                self._wake.wait(remaining)
            write_at = time.monotonic() + self._flush_interval
            while not (self._closed or self._urgent or len(self._pending) >= BATCH_SIZE):
                remaining = write_at - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.wait(remaining)
            return True

    def _write_batch(self, conn: Conn) -> Conn:
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
