"""What one call does: a pure decision over the entry's life, the flight and the clock.

Every ``getaddrinfo`` that the hit path cannot answer comes here (through the
executor in ``_engine.lookup``) and gets one :class:`Action`. The rules, in the
order they are tried:

1. **Re-entrant calls** (made from inside our own logging, a hook or a trace
   exporter) are answered from a fresh entry or passed straight to the
   original ``getaddrinfo``: they never wait, lead, refresh or log, so a
   logging handler that connects by name cannot deadlock on its own record.
2. **Fresh** (positive or negative): serve.
3. **Refresh due** (positive, past ``refresh_at``): serve, and start one
   background refresh unless one is under way (refresh-ahead).
4. **Stale** (positive, expired, inside the serve-stale window; RFC 8767):
   the caller would like a new answer, but never waits for DNS on a hot name:

   * the upstream is known to be failing (the last attempt for this answer
     failed): serve stale now, whatever else is going on; once the retry timer
     (``retry_after``) ran out and no retry is under way, retry in the
     background. This departs from RFC 8767 section 5, which after the failure
     recheck timer resolves again with the client response timer: a hot name
     would then stall for ``resolve_timeout`` at every retry;
   * a lookup that started *before* the answer expired (a refresh-ahead) is
     still running: serve the stale answer now. The upstream has had from
     ``refresh_at`` on to answer; making every caller of a hot name wait for it
     is the stall this rule exists to prevent (stale-while-revalidate, RFC 5861
     section 3);
   * otherwise (the first call since expiry, no failure known): start an
     *urgent* lookup (one that never queues behind other names) and wait for
     it until ``resolve_timeout`` after it started, then serve stale
     (RFC 8767's client response timer). A lookup still queued is promoted.
5. **No usable entry** (absent, or past its stale window): lead the lookup in
   the caller's thread, or join the one under way, waiting at most until that
   flight's deadline (the leader's own bound plus a margin).

A flight past its deadline counts as no flight at all, in every rule: its
leader is lost (an interruption landed where no ``finally`` could help) or
stuck beyond anything the upstream should take, and the next caller starts
over. So a lost or stuck leader costs a delay, never a hang. (The executor
does the same in real time: a caller whose join outlives the deadline looks
up on its own.)

Nothing here reads a clock, sleeps, locks or touches a socket: the executor
passes ``now`` and snapshots, and carries the action out. The rules are tested
exhaustively (``tests/test_decide.py``).
"""

from __future__ import annotations

import enum
import math

from .policy import Freshness, Lifetime
from .values import Value


class Do(enum.Enum):
    SERVE = "serve"  # answer from the entry
    SERVE_AND_REFRESH = "serve+refresh"  # answer, and start one background refresh
    SERVE_STALE = "serve-stale"  # answer from the expired entry
    SERVE_STALE_AND_RETRY = "serve-stale+retry"  # ... and retry the upstream in the background
    WAIT_THEN_STALE = "wait-then-stale"  # urgent lookup; wait until `until`, then decide again
    LEAD = "lead"  # look the name up in the caller's thread
    JOIN = "join"  # wait for the flight under way until `until`, then decide again
    PASS_THROUGH = "pass-through"  # the original getaddrinfo, no caching at all


class Flight(Value):
    """What a decision needs to know about a lookup under way for the key."""

    __slots__ = ("deadline", "started")

    def __init__(self, started: float | None, deadline: float) -> None:
        self.started = started  # None while queued for a worker
        self.deadline = deadline  # waiters stop waiting at this instant


class EntryState(Value):
    """What a decision needs to know about the cached entry for the key."""

    __slots__ = ("failed", "life", "negative", "retry_after")

    def __init__(self, life: Lifetime, negative: bool, retry_after: float, failed: bool) -> None:
        self.life = life
        self.negative = negative  # a cached failure (never refreshed, never stale)
        self.retry_after = retry_after  # while serving stale: no upstream retry before this
        self.failed = failed  # the last upstream attempt for this answer failed


class Action(Value):
    """What a call does: ``do``, and for WAIT_THEN_STALE and JOIN when to stop waiting."""

    __slots__ = ("do", "until")

    def __init__(self, do: Do, until: float = math.inf) -> None:
        self.do = do
        self.until = until


SERVE = Action(Do.SERVE)
SERVE_AND_REFRESH = Action(Do.SERVE_AND_REFRESH)
SERVE_STALE = Action(Do.SERVE_STALE)
SERVE_STALE_AND_RETRY = Action(Do.SERVE_STALE_AND_RETRY)
LEAD = Action(Do.LEAD)
PASS_THROUGH = Action(Do.PASS_THROUGH)


def decide(
    now: float,
    entry: EntryState | None,
    flight: Flight | None,
    *,
    refresh: bool,
    resolve_timeout: float,
    reentrant: bool = False,
) -> Action:
    """The action for a call at ``now`` (see the module docstring for the rules)."""
    if flight is not None and now >= flight.deadline:
        flight = None  # lost or stuck: start over
    stage = Freshness.EXPIRED if entry is None else entry.life.classify(now)
    if reentrant:
        fresh = stage in (Freshness.FRESH, Freshness.REFRESH_DUE)
        return SERVE if fresh else PASS_THROUGH
    if stage is Freshness.FRESH:
        return SERVE
    assert entry is not None or stage is Freshness.EXPIRED
    if stage is Freshness.REFRESH_DUE:
        assert entry is not None
        if entry.negative or not refresh or flight is not None:
            return SERVE
        return SERVE_AND_REFRESH
    if stage is Freshness.STALE and entry is not None and not entry.negative:
        return _stale(now, entry, flight, resolve_timeout)
    if flight is None:
        return LEAD
    return Action(Do.JOIN, flight.deadline)


def _stale(now: float, entry: EntryState, flight: Flight | None, resolve_timeout: float) -> Action:
    if entry.failed:  # the upstream is known to be failing: nobody waits for it
        if flight is None and now >= entry.retry_after:
            return SERVE_STALE_AND_RETRY
        return SERVE_STALE
    if flight is not None:
        if flight.started is None:  # queued behind other names: promote it, then wait
            return Action(Do.WAIT_THEN_STALE, now + resolve_timeout)
        if flight.started < entry.life.expires:
            return SERVE_STALE
        until = flight.started + resolve_timeout
        return Action(Do.WAIT_THEN_STALE, until) if now < until else SERVE_STALE
    return Action(Do.WAIT_THEN_STALE, now + resolve_timeout)
