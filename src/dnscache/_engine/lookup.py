"""The executor: carries out what ``_core.decide`` says a call should do.

One loop per call: take a consistent snapshot of the entry and the flight for
the key under the store's lock, ask :func:`~dnscache._core.decide.decide`,
and act. Every wait is bounded by the action's ``until`` (and a call's waits
for a stale answer by ``resolve_timeout`` in all), after which the loop
decides again, so a lost leader costs a delay and never a hang.

A lookup (leading in the caller's thread, or a background job) is the only
code that runs while a flight is registered, and it is shaped so the flight
always ends: the flight is registered inside the ``try`` whose ``finally``
ends it, and waiters treat a finished flight as gone even if its leader was
interrupted before it could unregister. Everything that is not ours (the
``on_cache_miss``/``on_change`` hooks, logging, tracing) and every slow thing
that can wait (the persistent layer's queue) runs before the flight is
registered or after it ended: see ``callouts``.

Why one class of about 330 lines: the loop that registers, joins and waits on
flights and the lookup that ends them are one protocol (each wait is safe only
because of how ``run`` ends a flight, and the reverse); split apart, neither half
could be checked on its own. What a lookup tells others lives in ``outcomes``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from .._cache.entries import Entry, EntryKey, Flight, open_gate, pass_gate
from .._cache.store import Store
from .._connect.health import AddressHealth
from .._core import decide as rules
from .._core.config import Config
from .._core.names import bare
from .._core.policy import Freshness
from .._sources.answer import Backend
from . import answers, callouts, trace
from .background import Background, Job
from .outcomes import Outcomes
from .persisted import Persisted
from .stats import Counters

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .._sources.ttl import TtlLearner

# gaierrors that describe the name (or the resolver's reachability), and so may
# be cached. Errors about the arguments (EAI_BADFLAGS, EAI_SERVICE, ...) never
# reach here (the argument probe catches them) and EAI_MEMORY/EAI_SYSTEM are not
# answers.
CACHEABLE_ERRORS = frozenset(
    getattr(socket, name)
    for name in ("EAI_NONAME", "EAI_NODATA", "EAI_AGAIN", "EAI_FAIL", "EAI_ADDRFAMILY")
    if hasattr(socket, name)
)
# Of those, the ones that say "the resolver could not answer", as opposed to
# "the name has no address": only these may be papered over with a stale answer
# (RFC 8767 section 4: NXDOMAIN is an answer and is never masked).
TRANSIENT_ERRORS = frozenset({socket.EAI_AGAIN, socket.EAI_FAIL})
# While serving stale, the upstream is retried at most this often (RFC 8767
# section 5 suggests a "failure recheck timer" of 30 s; we retry sooner because a
# client library sees few names and an outage usually ends in seconds).
STALE_RETRY = 5.0
# Waiters give a leader this long beyond its own bound before they look up on
# their own: enough for a loaded machine to schedule it.
FLIGHT_MARGIN = 2.0
_WAIT_MAX = threading.TIMEOUT_MAX


class Lookups:
    """Answers for entry keys: from the store, or looked up once for all callers."""

    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        backend: Backend,
        background: Background,
        counters: Counters,
        persisted: Persisted,
        health: AddressHealth,
        clock: Callable[[], float],
        bound: Callable[[], float],
        telemetry: trace.Telemetry | None,
        learner: TtlLearner | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._backend = backend
        self._background = background
        self._counters = counters
        self._persisted = persisted
        self._health = health
        self._clock = clock
        self._bound = bound  # seconds one upstream lookup may take at most
        self._telemetry = telemetry  # trace=True: spans and dns.lookup.duration
        self._overrides = answers.by_key(config.hosts)
        self._outcomes = Outcomes(
            config=config,
            store=store,
            background=background,
            counters=counters,
            persisted=persisted,
            health=health,
            telemetry=telemetry,
            learner=learner,
        )

    # --- the loop ---

    def entry_for(self, ekey: EntryKey, now: float) -> Entry | None:
        """The entry to answer from; None means "pass this call to the original"."""
        config = self._config
        store = self._store
        reentrant = callouts.inside()
        waited = False  # did this call wait for an upstream answer?
        stale_limit = None  # a call waits for a fresh answer at most resolve_timeout in all
        hooked = reentrant or config.on_cache_miss is None
        while True:
            keep: Entry | None = None  # what a transient failure of this call's lookup keeps
            fallback = None if reentrant else self._fallback(ekey, now)
            with store.lock:
                entry = self._current(ekey, now, fallback)
                flight = store.flight(ekey)
                action = rules.decide(
                    now,
                    _state(entry),
                    _flight_state(flight),
                    refresh=config.refresh,
                    resolve_timeout=config.resolve_timeout,
                    reentrant=reentrant,
                )
                do = action.do
                if do is rules.Do.SERVE:
                    assert entry is not None
                    self._count(entry, waited)
                    return entry
                if do is rules.Do.PASS_THROUGH:
                    return None
                if do in (rules.Do.SERVE_STALE, rules.Do.SERVE_STALE_AND_RETRY):
                    assert entry is not None
                    retry = do is rules.Do.SERVE_STALE_AND_RETRY
                    if not retry or self._queue_refresh(ekey, now) or not self._background.closed:
                        self._count_stale(entry)
                        return entry
                    # A closed resolver has no background: the caller retries itself.
                    flight = Flight(now + self._bound() + FLIGHT_MARGIN, now)
                    store.begin(ekey, flight)
                    keep = entry
                    do = rules.Do.WAIT_THEN_STALE
                if do is rules.Do.SERVE_AND_REFRESH:
                    assert entry is not None
                    self._count(entry, waited)
                    if self._queue_refresh(ekey, now):
                        # Refresh-ahead: hits take the fast path again until expiry.
                        entry.serve_until = entry.life.expires
                    return entry
                if do is rules.Do.LEAD and hooked:
                    flight = Flight(now + self._bound() + FLIGHT_MARGIN, now)
                    store.begin(ekey, flight)
                    keep = entry
                elif do is rules.Do.WAIT_THEN_STALE and flight is None:
                    flight = Flight(now + self._bound() + FLIGHT_MARGIN, None)
                    store.begin(ekey, flight)  # the urgent job, dispatched below
                    keep = entry
                else:
                    keep = None
            # The lock is released: act.
            if do is rules.Do.LEAD and not hooked:
                hooked = True  # the hook runs with nothing held, then we decide again
                callouts.call_hook(config.on_cache_miss, answers.text(ekey[0]))
            elif do is rules.Do.LEAD:
                assert flight is not None
                self._counters.misses += 1
                got = self.run(ekey, flight, keep, background=False)
                if got is not None:
                    return got
                waited = True  # ended without an answer: decide again (perhaps as leader)
            elif do is rules.Do.JOIN:
                assert flight is not None
                waited = True
                if self._wait(ekey, flight, action.until):
                    if flight.entry is not None:  # what the lookup brought, even if already stale
                        self._count(flight.entry, True)
                        return flight.entry
                else:
                    # Its deadline passed (in real time: the wait is real even under an
                    # injected clock): the leader is stuck or lost. Look up on our own.
                    self._counters.misses += 1
                    bypass = Flight(self._clock() + self._bound() + FLIGHT_MARGIN, now)
                    got = self.run(ekey, bypass, None, background=False)
                    if got is not None:
                        return got
            else:  # WAIT_THEN_STALE
                assert flight is not None and entry is not None
                life = entry.life  # a renewal replaces it: tells a new answer from a kept one
                stale_limit = action.until if stale_limit is None else stale_limit
                until = min(action.until, stale_limit)
                if keep is not None and not self._dispatch_urgent(ekey, flight):
                    if self._background.closed:  # a closed resolver still answers: look up here
                        got = self.run(ekey, flight, keep, background=False)
                        if got is None or got is keep:
                            self._count_stale(entry)
                            return entry
                        self._count(got, True)
                        return got
                    self._abandon(ekey, flight)
                    self._count_stale(entry)
                    return entry
                if keep is None and flight.started is None and not self._promote(ekey):
                    self._count_stale(entry)
                    return entry
                if not self._wait(ekey, flight, until):
                    self._count_stale(entry)  # the upstream took longer than resolve_timeout
                    return entry
                got = flight.entry
                if got is not None and (got is not entry or got.life is not life):
                    # A new answer (or the same one renewed): serve it, even if a TTL of
                    # almost nothing made it stale on arrival, rather than look up again.
                    self._count(got, True)
                    return got
                waited = True
            now = self._clock()

    def _current(self, ekey: EntryKey, now: float, fallback: Entry | None) -> Entry | None:
        """The stored entry, after adding an override or a remembered answer (lock held)."""
        store = self._store
        entry = store.get(ekey)
        if entry is None:
            ips = self._overrides.get(bare(ekey[0]))
            if ips is not None:
                return store.put(answers.override(ekey, ips, now))
        if fallback is not None and (
            entry is None or entry.life.classify(now) is Freshness.EXPIRED
        ):
            entry = store.put(fallback)
        return entry

    def _fallback(self, ekey: EntryKey, now: float) -> Entry | None:
        """A remembered answer for a name with no usable entry (read with no lock held)."""
        if not self._persisted.active:
            return None
        known = self._store.peek(ekey)
        if known is not None and known.life.classify(now) is not Freshness.EXPIRED:
            return None
        return self._persisted.fallback(ekey, now)

    def _wait(self, ekey: EntryKey, flight: Flight, until: float) -> bool:
        """Wait for ``flight`` until ``until``; True if it ended (or is gone) by then."""
        with self._store.lock:
            gate = flight.waiter_gate()
        if gate is None:
            return True
        timeout = min(max(until - self._clock(), 0.0), _WAIT_MAX)
        return pass_gate(gate, timeout)

    # --- counting ---

    def _count(self, entry: Entry, waited: bool) -> None:
        counters = self._counters
        if waited:
            counters.misses += 1
        elif entry.error is not None:
            counters.negative_hits += 1
        else:
            counters.hits += 1
        entry.hits += 1

    def _count_stale(self, entry: Entry) -> None:
        if entry.source in ("persisted", "preload"):
            self._counters.persisted_hits += 1
        else:
            self._counters.stale_hits += 1
        entry.hits += 1

    # --- background work ---

    def _job(self, ekey: EntryKey, flight: Flight, *, urgent: bool = False) -> Job:
        # Whose trace the lookup belongs to: the context of the call queuing it.
        origin = None if self._telemetry is None else trace.capture(waited=urgent)

        def run() -> None:
            now = self._clock()
            flight.started = now
            flight.deadline = now + self._bound() + FLIGHT_MARGIN
            with self._store.lock:
                keep = self._store.get(ekey)
            self._counters.refreshes += 1
            self.run(ekey, flight, keep, background=True, origin=origin)

        def cancel() -> None:
            self._abandon(ekey, flight)

        return Job(run, cancel)

    def _queue_refresh(self, ekey: EntryKey, now: float) -> bool:
        """Queue a background refresh of ``ekey`` (lock held); False if refused."""
        flight = Flight(now + self._bound() + FLIGHT_MARGIN, None)
        if not self._background.submit(ekey, self._job(ekey, flight)):
            return False
        self._store.begin(ekey, flight)
        return True

    def _dispatch_urgent(self, ekey: EntryKey, flight: Flight) -> bool:
        return self._background.submit_urgent(self._job(ekey, flight, urgent=True))

    def _promote(self, ekey: EntryKey) -> bool:
        return self._background.promote(ekey)

    def _abandon(self, ekey: EntryKey, flight: Flight) -> None:
        """End a flight that will never run, so nobody waits on it."""
        with self._store.lock:
            self._store.finish(ekey, flight, None)
            gate = flight.finish()
        open_gate(gate)

    # --- one upstream lookup ---

    def run(
        self,
        ekey: EntryKey,
        flight: Flight,
        keep: Entry | None,
        *,
        background: bool,
        origin: trace.Origin | None = None,
    ) -> Entry | None:
        """Look ``ekey`` up for ``flight`` and end the flight; returns the entry to answer from.

        ``keep`` is the entry a transient failure may leave in place (refresh-ahead
        or serve-stale). A failure that is not an answer (EAI_MEMORY, an
        interruption) ends the flight empty and propagates.
        """
        store = self._store
        servable = keep is not None and keep.error is None
        if servable:
            assert keep is not None
            servable = keep.life.classify(self._clock()) in (
                Freshness.REFRESH_DUE,
                Freshness.STALE,
            )
        stored: Entry | None = None
        gate = None
        started_ns = time.time_ns()  # the span's start (wall clock)
        started = time.monotonic_ns()  # the duration's
        failure: BaseException | None = None
        try:
            self._counters.lookups += 1
            try:
                fresh: Entry | None = self._fetch(ekey, background)
            except socket.gaierror as exc:
                failure = exc
                if exc.errno not in CACHEABLE_ERRORS:
                    raise
                if servable and exc.errno in TRANSIENT_ERRORS:
                    fresh = None  # keep serving the old answer
                else:
                    error = (int(exc.errno or 0), str(exc.strerror))
                    fresh = answers.negative(ekey, error, self._clock(), self._config)
            except BaseException as exc:  # anything else (an interruption): the span says so
                failure = exc
                raise
            with store.lock:
                stored = store.finish(ekey, flight, fresh)
                if fresh is None and keep is not None and store.peek(ekey) is keep:
                    keep.retry_after = self._clock() + STALE_RETRY
                    keep.failed = True
                    flight.entry = keep
                gate = flight.finish()
            open_gate(gate)
        finally:
            # However the lookup ended (an answer, an error, an interruption landing
            # anywhere above): the flight is finished and its waiters let through.
            if not flight.finished:
                with store.lock:
                    store.finish(ekey, flight, None)
                    gate = flight.finish()
            open_gate(gate)
            try:
                self._outcomes.after(
                    ekey, stored, flight.entry, background, started_ns, started, failure, origin
                )
            finally:
                # The exception's traceback holds this frame: without this, every failed
                # lookup is a reference cycle, and the sockets in its frames wait for the
                # garbage collector.
                failure = None
        return flight.entry

    def _fetch(self, ekey: EntryKey, background: bool) -> Entry:
        """One upstream lookup as an entry (a gaierror is ``run``'s to judge)."""
        host, family, flags = ekey
        answer = self._backend.resolve(host, family, flags, background=background)
        answer = self._persisted.merged(ekey, answer)
        return answers.positive(ekey, answer, self._clock(), self._config, "upstream")


def _state(entry: Entry | None) -> rules.EntryState | None:
    if entry is None:
        return None
    return rules.EntryState(entry.life, entry.error is not None, entry.retry_after, entry.failed)


def _flight_state(flight: Flight | None) -> rules.Flight | None:
    if flight is None:
        return None
    return rules.Flight(flight.started, flight.deadline)
