"""Background work, all in one place: bounded, named, stoppable, fork-aware threads.

A :class:`Background` runs two kinds of work for one Resolver:

* **jobs** (refreshes and the lookups behind serve-stale) on at most
  ``max_workers`` daemon threads named ``dnscache-refresh``. Workers start when
  there is work and exit after ``IDLE_EXIT`` seconds without any, so an idle
  process holds no threads. The queue is bounded: past ``MAX_QUEUE`` a job is
  refused (the caller then simply serves what it has), never blocked on.
* a **periodic** task (the sweeper) on one daemon thread named
  ``dnscache-sweeper``, started on first use.

Why daemon threads: a refresh may be stuck inside libc's ``getaddrinfo`` on a
dead upstream for resolv.conf's ``timeout * attempts`` seconds and cannot be
interrupted. ``close()`` tells every thread to stop and joins them for at most
``JOIN_TIMEOUT`` in all; a thread still inside libc then finishes on its own
and, being a daemon, never holds up interpreter exit.

Fork: a child has none of the parent's threads. ``after_fork_in_child`` gives it
a fresh lock and an empty queue; workers restart lazily on the next job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable

log = logging.getLogger("dnscache")

MAX_QUEUE = 1024
IDLE_EXIT = 10.0  # seconds an idle worker waits for work before exiting
# An idle worker also looks for work this often, so that a refresh-ahead job can
# be queued without waking anybody: notify() on the hit path lets the woken worker
# preempt the caller, which then waits a whole scheduler slice (~4 ms) for the CPU
# under load (measured by benchmarks/soak_refresh.py). Refresh-ahead has half a TTL
# of slack, so 50 ms later is as good as now.
POLL = 0.05
JOIN_TIMEOUT = 1.0  # close() waits at most this long in all


class Background:
    """Bounded worker threads plus one periodic task, for one Resolver."""

    def __init__(
        self,
        max_workers: int = 2,
        periodic: Callable[[], None] | None = None,
        interval: float = 0.0,
    ) -> None:
        self._max_workers = max_workers
        self._periodic = periodic
        self._interval = interval
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._jobs: deque[tuple[Hashable, Callable[[], None]]] = deque()
        self._queued: set[Hashable] = set()
        self._workers: list[threading.Thread] = []
        self._idle = 0
        self._closed = False
        self._sweeper: threading.Thread | None = None
        self._stop = threading.Event()

    def submit(self, key: Hashable, job: Callable[[], None], *, urgent: bool = True) -> bool:
        """Queue ``job`` unless one with ``key`` is already queued; False if refused.

        ``urgent=False`` wakes no idle worker: one picks the job up within POLL.
        """
        with self._lock:
            if self._closed or len(self._jobs) >= MAX_QUEUE:
                return False
            if key in self._queued:
                return True
            self._queued.add(key)
            self._jobs.append((key, job))
            if self._idle:
                if urgent:
                    self._wake.notify()
            elif len(self._workers) < self._max_workers:
                self._start_worker()
            return True

    def _start_worker(self) -> None:
        thread = threading.Thread(target=self._work, name="dnscache-refresh", daemon=True)
        self._workers.append(thread)
        thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                deadline = time.monotonic() + IDLE_EXIT
                while not self._jobs and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._idle += 1
                    self._wake.wait(min(remaining, POLL))
                    self._idle -= 1
                if self._closed or not self._jobs:
                    if me in self._workers:
                        self._workers.remove(me)
                    return
                key, job = self._jobs.popleft()
                self._queued.discard(key)
            try:
                job()
            except BaseException:  # a background job must never kill its thread loudly
                log.debug("dnscache: background job failed", exc_info=True)

    def start_periodic(self) -> None:
        """Start the periodic task's thread if it is configured and not running."""
        if self._periodic is None or self._interval <= 0:
            return
        with self._lock:
            if self._closed or self._sweeper is not None:
                return
            self._sweeper = threading.Thread(
                target=self._sweep, name="dnscache-sweeper", daemon=True
            )
            self._sweeper.start()

    def _sweep(self) -> None:
        stop = self._stop
        periodic = self._periodic
        assert periodic is not None
        while not stop.wait(self._interval):
            try:
                periodic()
            except Exception:
                log.debug("dnscache: periodic task failed", exc_info=True)

    def threads(self) -> list[threading.Thread]:
        """The threads running now."""
        with self._lock:
            extra = [self._sweeper] if self._sweeper is not None else []
            return [t for t in (*self._workers, *extra) if t.is_alive()]

    def close(self) -> None:
        """Stop every thread and join them for at most JOIN_TIMEOUT in all. Idempotent."""
        with self._lock:
            self._closed = True
            self._jobs.clear()
            self._queued.clear()
            self._wake.notify_all()
        self._stop.set()
        deadline = time.monotonic() + JOIN_TIMEOUT
        for thread in self.threads():
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def after_fork_in_child(self) -> None:
        """The child inherits no threads: start over, keeping only the configuration."""
        closed = self._closed
        self._reset()
        self._closed = closed
