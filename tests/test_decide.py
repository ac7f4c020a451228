"""The lookup decision (``_core.decide``): the whole table, then properties over every clock.

Pure: no server, no threads. The executor that carries the actions out is tested in
test_lookup_scenarios.py (scripted) and against real servers in test_unbreakable.py.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dnscache._core.decide import Do, EntryState, Flight, decide
from dnscache._core.policy import Lifetime, lifetime, negative_lifetime

TIMEOUT = 1.8
# born 0, refresh at 30, expires at 60, servable stale until 160
LIFE = lifetime(0.0, 60.0, refresh=True, refresh_at=0.5, stale_ttl=100.0)
NOW = {"fresh": 10.0, "refresh-due": 40.0, "stale": 70.0, "expired": 200.0}


def positive(**kw: object) -> EntryState:
    state = {"life": LIFE, "negative": False, "retry_after": 0.0, "failed": False}
    state.update(kw)
    return EntryState(**state)  # type: ignore[arg-type]


def run(now: float, entry: EntryState | None, flight: Flight | None, **kw: object) -> Do:
    options: dict[str, object] = {"refresh": True, "resolve_timeout": TIMEOUT}
    options.update(kw)
    return decide(now, entry, flight, **options).do  # type: ignore[arg-type]


# --- the table, row by row ---


def test_fresh_is_served_whatever_else_is_going_on() -> None:
    for flight in (None, Flight(None, 99.0), Flight(5.0, 99.0)):
        assert run(NOW["fresh"], positive(), flight) is Do.SERVE
        assert run(NOW["fresh"], positive(failed=True, retry_after=50.0), flight) is Do.SERVE


def test_refresh_due_serves_and_refreshes_once() -> None:
    assert run(NOW["refresh-due"], positive(), None) is Do.SERVE_AND_REFRESH
    assert run(NOW["refresh-due"], positive(), Flight(35.0, 99.0)) is Do.SERVE  # under way
    assert run(NOW["refresh-due"], positive(), None, refresh=False) is Do.SERVE


def test_stale_with_a_refresh_started_before_expiry_is_served_at_once() -> None:
    # A hot name: the refresh-ahead is stuck on a black-holed upstream.
    action = decide(70.0, positive(), Flight(31.0, 99.0), refresh=True, resolve_timeout=TIMEOUT)
    assert action.do is Do.SERVE_STALE


def test_stale_with_a_lookup_started_after_expiry_waits_until_resolve_timeout_after_its_start() -> (
    None
):
    action = decide(61.0, positive(), Flight(60.5, 99.0), refresh=True, resolve_timeout=TIMEOUT)
    assert action.do is Do.WAIT_THEN_STALE and action.until == 60.5 + TIMEOUT
    assert run(62.4, positive(), Flight(60.5, 99.0)) is Do.SERVE_STALE  # it took too long


def test_stale_with_a_queued_refresh_promotes_and_waits() -> None:
    action = decide(70.0, positive(), Flight(None, 99.0), refresh=True, resolve_timeout=TIMEOUT)
    assert action.do is Do.WAIT_THEN_STALE and action.until == 70.0 + TIMEOUT


def test_stale_while_the_upstream_is_known_to_fail() -> None:
    failing = positive(failed=True, retry_after=75.0)
    assert run(70.0, failing, None) is Do.SERVE_STALE  # the retry timer runs
    assert run(80.0, failing, None) is Do.SERVE_STALE_AND_RETRY  # ran out: retry, don't wait


def test_first_call_after_expiry_waits_for_an_urgent_lookup() -> None:
    action = decide(70.0, positive(), None, refresh=True, resolve_timeout=TIMEOUT)
    assert action.do is Do.WAIT_THEN_STALE and action.until == 70.0 + TIMEOUT


def test_no_usable_entry_leads_or_joins_within_the_flight_deadline() -> None:
    for entry in (None, positive()):
        now = NOW["expired"] if entry else 0.0
        assert run(now, entry, None) is Do.LEAD
        action = decide(now, entry, Flight(now - 1, now + 5), refresh=True, resolve_timeout=1)
        assert action.do is Do.JOIN and action.until == now + 5
        assert run(now, entry, Flight(now - 9, now)) is Do.LEAD  # overdue: lost, start over


def test_negative_answers_are_never_refreshed_or_served_stale() -> None:
    life = negative_lifetime(0.0, 5.0)
    nx = EntryState(life, True, 0.0, False)
    assert run(1.0, nx, None) is Do.SERVE
    assert run(5.0, nx, None) is Do.LEAD
    assert run(5.0, nx, Flight(4.0, 20.0)) is Do.JOIN


def test_reentrant_calls_never_wait_lead_or_refresh() -> None:
    assert run(NOW["fresh"], positive(), None, reentrant=True) is Do.SERVE
    assert run(NOW["refresh-due"], positive(), None, reentrant=True) is Do.SERVE
    assert run(NOW["stale"], positive(), None, reentrant=True) is Do.PASS_THROUGH
    assert run(NOW["expired"], None, Flight(1.0, 300.0), reentrant=True) is Do.PASS_THROUGH


# --- every combination: the table as a whole ---

STAGES = list(NOW)
FLIGHTS = {
    "none": None,
    "queued": Flight(None, 1000.0),
    "before-expiry": Flight(45.0, 1000.0),
    "after-expiry": Flight(69.0, 1000.0),  # NOW["stale"] is 70: within resolve_timeout
    "overdue": Flight(1.0, 5.0),
}
FAILURE = {"ok": (False, 0.0), "failing": (True, 1000.0), "retry-due": (True, 50.0)}

# The stale stage (reentrant False, refresh on): with a lookup under way its start decides;
# without one, what is known of the upstream does.
STALE_WITH_FLIGHT: dict[str, Do | None] = {
    "queued": Do.WAIT_THEN_STALE,  # promoted, then waited for
    "before-expiry": Do.SERVE_STALE,  # a hot name never waits for a stuck refresh
    "after-expiry": Do.WAIT_THEN_STALE,
    "overdue": None,  # lost: as if there were no flight
}
STALE_WITHOUT_FLIGHT = {
    "ok": Do.WAIT_THEN_STALE,
    "failing": Do.SERVE_STALE,
    "retry-due": Do.SERVE_STALE_AND_RETRY,
}


@pytest.mark.parametrize(
    ("stage", "flight", "failure"), list(itertools.product(STAGES, FLIGHTS, FAILURE))
)
def test_every_combination(stage: str, flight: str, failure: str) -> None:
    failed, retry_after = FAILURE[failure]
    now = NOW[stage]
    f = FLIGHTS[flight]
    if f is not None and f.deadline == 1000.0:
        f = Flight(f.started, now + 5.0)
    elif f is not None:
        f = Flight(f.started, now - 1.0)
    got = run(now, positive(failed=failed, retry_after=retry_after), f)
    if stage == "fresh":
        expected = Do.SERVE
    elif stage == "refresh-due":
        expected = Do.SERVE_AND_REFRESH if f is None or flight == "overdue" else Do.SERVE
    elif stage == "expired":
        expected = Do.LEAD if f is None or flight == "overdue" else Do.JOIN
    elif failure != "ok":  # known failing: never wait
        live = f is not None and STALE_WITH_FLIGHT[flight] is not None
        expected = Do.SERVE_STALE if live else STALE_WITHOUT_FLIGHT[failure]
    elif f is None or STALE_WITH_FLIGHT[flight] is None:
        expected = STALE_WITHOUT_FLIGHT[failure]
    else:
        expected = STALE_WITH_FLIGHT[flight]
    assert got is expected, (stage, flight, failure)


# --- properties over every clock ---

times = st.floats(min_value=-10.0, max_value=500.0, allow_nan=False)


@st.composite
def entries(draw: st.DrawFn) -> EntryState | None:
    if draw(st.booleans()):
        return None
    born = draw(st.floats(min_value=0.0, max_value=100.0))
    ttl = draw(st.floats(min_value=0.0, max_value=100.0))
    if draw(st.booleans()):
        life = negative_lifetime(born, ttl)
        return EntryState(life, True, 0.0, False)
    life = lifetime(
        born,
        ttl,
        refresh=draw(st.booleans()),
        refresh_at=draw(st.floats(min_value=0.01, max_value=1.0)),
        stale_ttl=draw(st.floats(min_value=0.0, max_value=200.0)),
    )
    return EntryState(life, False, draw(times), draw(st.booleans()))


@st.composite
def flights(draw: st.DrawFn) -> Flight | None:
    if draw(st.booleans()):
        return None
    started = draw(st.none() | times)
    return Flight(started, draw(times))


@given(
    now=times,
    entry=entries(),
    flight=flights(),
    refresh=st.booleans(),
    timeout=st.floats(min_value=0.0, max_value=30.0),
    reentrant=st.booleans(),
)
def test_properties(
    now: float,
    entry: EntryState | None,
    flight: Flight | None,
    refresh: bool,
    timeout: float,
    reentrant: bool,
) -> None:
    action = decide(
        now, entry, flight, refresh=refresh, resolve_timeout=timeout, reentrant=reentrant
    )
    do = action.do
    life: Lifetime | None = None if entry is None else entry.life
    servable = life is not None and now < life.stale_until
    # Every wait is bounded: by the flight's deadline or resolve_timeout from now.
    if do is Do.JOIN:
        assert flight is not None and now < action.until == flight.deadline
    # A flight past its deadline is never waited for.
    if flight is not None and now >= flight.deadline:
        assert do not in (Do.JOIN,)
    if do is Do.WAIT_THEN_STALE:
        started = now if flight is None or flight.started is None else flight.started
        assert now <= action.until <= max(now, started) + timeout
        assert math.isfinite(action.until)
    # Re-entrant calls never wait, lead or start anything.
    if reentrant:
        assert do in (Do.SERVE, Do.PASS_THROUGH)
    # A fresh answer is always served.
    if life is not None and now < life.refresh_at:
        assert do is Do.SERVE
    # Negative answers are never served stale or refreshed.
    if entry is not None and entry.negative:
        assert do not in (Do.SERVE_STALE, Do.SERVE_STALE_AND_RETRY, Do.SERVE_AND_REFRESH)
    # A positive answer inside its window never makes a caller look up or join unbounded.
    if entry is not None and not entry.negative and servable:
        assert do not in (Do.LEAD, Do.JOIN)
    # A caller never waits for an upstream known to be failing.
    if entry is not None and entry.failed and not entry.negative and servable:
        assert do not in (Do.WAIT_THEN_STALE, Do.JOIN, Do.LEAD)
    # Served stale only past expiry, inside the window.
    if do in (Do.SERVE_STALE, Do.SERVE_STALE_AND_RETRY):
        assert life is not None and life.expires <= now < life.stale_until
    # At most one refresh: never start one while a live lookup is under way.
    if do in (Do.SERVE_AND_REFRESH, Do.SERVE_STALE_AND_RETRY, Do.LEAD):
        assert flight is None or now >= flight.deadline
