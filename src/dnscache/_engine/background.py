"""Background work, all in one place: bounded, named, stoppable, fork-aware threads.

Two kinds of job reach the workers, both keyed by the cache key they look up:

* **Refreshes** (refresh-ahead, and retries while serving stale): nobody waits
  for them, so they queue (FIFO, at most ``MAX_QUEUE``) for at most
  ``max_workers`` threads. Queuing one wakes nobody: an idle worker looks for
  work every ``POLL`` (notify() on the hit path would let the woken worker
  preempt the caller, which then waits a scheduler slice for the CPU; measured
  by benchmarks/soak_refresh.py).
* **Urgent lookups**: a caller is waiting (up to ``resolve_timeout``) for this
  name. They never queue behind unrelated slow lookups (two names whose
  upstream hangs must not turn a healthy name's answer stale): an idle worker
  takes one at once, otherwise a new thread starts for it, up to
  ``MAX_THREADS`` in all. A queued refresh that a caller starts waiting for is
  *promoted* the same way.

No thread unless there is work: a worker exits as soon as it finds the queue
empty for ``IDLE_EXIT`` (a few polls), so ``threading.enumerate()`` is back to
what it was within about 100 ms of the last job. Threads are daemons: a lookup
stuck inside libc's ``getaddrinfo`` cannot be interrupted, and must never hold
up interpreter exit. ``close()`` refuses new work, hands every queued job's
cancellation callback the chance to end its flight (so nobody waits on a job
that will never run), and joins the threads for at most ``JOIN_TIMEOUT``.

Fork: a child has none of the parent's threads. ``after_fork_in_child`` gives it
a fresh lock and an empty queue; workers start again on the next job.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from .._core.logger import log

MAX_QUEUE = 1024  # queued refreshes; past this a refresh is skipped (the answer is still good)
MAX_THREADS = 32  # workers in all, urgent lookups included: each may be stuck in libc
POLL = 0.02  # how often an idle worker looks for queued refreshes
IDLE_EXIT = 0.05  # an idle worker exits after this long without work
JOIN_TIMEOUT = 1.0  # close() waits at most this long in all


class Job:
    """One piece of background work: ``run`` it, or ``cancel`` it if it is dropped unrun."""

    __slots__ = ("cancel", "run")

    def __init__(self, run: Callable[[], None], cancel: Callable[[], None]) -> None:
        self.run = run
        self.cancel = cancel


class Background:
    """Worker threads for one Resolver's refreshes and urgent lookups."""

    def __init__(self, max_workers: int = 2, name: str = "dnscache-refresh") -> None:
        self._max_workers = max_workers
        self._name = name
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._jobs: OrderedDict[Hashable, Job] = OrderedDict()
        self._workers: list[threading.Thread] = []
        self._idle = 0
        self._urgent: list[Job] = []  # handed to a worker, not yet picked up
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, key: Hashable, job: Job) -> bool:
        """Queue a refresh unless one for ``key`` is queued already; False if refused."""
        with self._lock:
            if self._closed or len(self._jobs) >= MAX_QUEUE:
                return False
            if key in self._jobs:
                return True
            self._jobs[key] = job
            if not self._idle and len(self._workers) < self._max_workers:
                self._start_worker()
            return True

    def submit_urgent(self, job: Job) -> bool:
        """Run ``job`` now on an idle or a new worker; False if closed or at MAX_THREADS."""
        with self._lock:
            return self._dispatch(job)

    def promote(self, key: Hashable) -> bool:
        """Run the queued refresh for ``key`` now, as if urgent; False only if refused.

        A job no longer queued has been handed to a worker already: True.
        """
        with self._lock:
            job = self._jobs.pop(key, None)
            if job is None:
                return not self._closed
            if self._dispatch(job):
                return True
            self._jobs[key] = job  # refused: it keeps its place
            self._jobs.move_to_end(key, last=False)
            return False

    def _dispatch(self, job: Job) -> bool:
        """Hand ``job`` to an idle worker, or to a new one (caller holds the lock)."""
        if self._closed:
            return False
        if self._idle > len(self._urgent):
            self._urgent.append(job)
            self._wake.notify()
            return True
        # A thread whose start() was interrupted never runs: it must not count.
        self._workers = [t for t in self._workers if t.is_alive()]  # starts happen under _lock
        if len(self._workers) >= MAX_THREADS:
            return False
        self._urgent.append(job)
        self._start_worker()
        return True

    def _start_worker(self) -> None:
        thread = threading.Thread(target=self._work, name=self._name, daemon=True)
        self._workers.append(thread)
        thread.start()

    def _next(self, me: threading.Thread) -> Job | None:
        """The next job for worker ``me``, or None when it should exit."""
        with self._lock:
            idle_since = time.monotonic()
            while True:
                if self._closed:
                    break
                if self._urgent:
                    return self._urgent.pop(0)
                if self._jobs:
                    return self._jobs.popitem(last=False)[1]
                waited = time.monotonic() - idle_since
                if waited >= IDLE_EXIT:
                    break
                self._idle += 1
                try:
                    self._wake.wait(min(POLL, IDLE_EXIT - waited))
                finally:
                    self._idle -= 1
            if me in self._workers:
                self._workers.remove(me)
            return None

    def _work(self) -> None:
        me = threading.current_thread()
        while (job := self._next(me)) is not None:
            try:
                job.run()
            except BaseException:  # a background job must never kill its thread loudly
                log.debug("background job failed", exc_info=True)

    def threads(self) -> list[threading.Thread]:
        """The threads running now."""
        with self._lock:
            return [t for t in self._workers if t.is_alive()]

    def shutdown(self) -> None:
        """Refuse new work and cancel what is queued; running jobs finish. Idempotent.

        Cancelling runs each dropped job's ``cancel`` (which ends its flight), so
        no caller keeps waiting for work that will never run.
        """
        with self._lock:
            self._closed = True
            dropped = [*self._urgent, *self._jobs.values()]
            self._urgent.clear()
            self._jobs.clear()
            self._wake.notify_all()
        for job in dropped:
            try:
                job.cancel()
            except Exception:  # cancelling must not stop close()
                log.debug("cancelling a background job failed", exc_info=True)

    def close(self) -> None:
        """:meth:`shutdown`, then join the threads (JOIN_TIMEOUT in all). Idempotent."""
        self.shutdown()
        deadline = time.monotonic() + JOIN_TIMEOUT
        for thread in self.threads():
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def after_fork_in_child(self) -> None:
        """The child inherits no threads: start over, keeping only the configuration."""
        closed = self._closed
        self._reset()
        self._closed = closed
