"""The pure time policy: lifetimes, classification at the exact boundary instants, TTL clamping."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnscache._core.policy import (
    FOREVER,
    Freshness,
    Lifetime,
    clamp_ttl,
    lifetime,
    negative_lifetime,
    permanent_lifetime,
)

FRESH, DUE, STALE, EXPIRED = (
    Freshness.FRESH,
    Freshness.REFRESH_DUE,
    Freshness.STALE,
    Freshness.EXPIRED,
)
ORDER = [FRESH, DUE, STALE, EXPIRED]


def before(t: float) -> float:
    return math.nextafter(t, -math.inf)


def after(t: float) -> float:
    return math.nextafter(t, math.inf)


# --- lifetime ---


def test_lifetime_without_refresh_or_stale_is_one_instant() -> None:
    life = lifetime(100.0, 10.0)
    assert life == Lifetime(born=100.0, refresh_at=110.0, expires=110.0, stale_until=110.0)


def test_lifetime_with_refresh_and_stale() -> None:
    life = lifetime(100.0, 10.0, refresh=True, refresh_at=0.75, stale_ttl=20.0)
    assert life == Lifetime(born=100.0, refresh_at=107.5, expires=110.0, stale_until=130.0)


def test_refresh_at_is_ignored_without_refresh() -> None:
    assert lifetime(5.0, 4.0, refresh=False, refresh_at=0.25).refresh_at == 9.0


def test_refresh_at_one_coincides_with_expiry() -> None:
    life = lifetime(0.0, 8.0, refresh=True, refresh_at=1.0, stale_ttl=2.0)
    assert life.refresh_at == life.expires == 8.0
    assert life.classify(before(8.0)) is FRESH
    assert life.classify(8.0) is STALE


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (100.0, FRESH),  # born
        (before(105.0), FRESH),
        (105.0, DUE),  # exactly refresh_at
        (after(105.0), DUE),
        (before(110.0), DUE),
        (110.0, STALE),  # exactly expires
        (before(130.0), STALE),
        (130.0, EXPIRED),  # exactly stale_until
        (1e12, EXPIRED),
    ],
)
def test_classify_at_boundaries(now: float, expected: Freshness) -> None:
    life = lifetime(100.0, 10.0, refresh=True, refresh_at=0.5, stale_ttl=20.0)
    assert life.classify(now) is expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [(0.0, FRESH), (before(60.0), FRESH), (60.0, EXPIRED), (after(60.0), EXPIRED)],
)
def test_without_refresh_and_stale_fresh_goes_straight_to_expired(
    now: float, expected: Freshness
) -> None:
    assert lifetime(0.0, 60.0).classify(now) is expected


def test_zero_ttl_is_never_fresh() -> None:
    # RFC 1035 3.2.1: a TTL of 0 means "use for this transaction only".
    assert lifetime(7.0, 0.0).classify(7.0) is EXPIRED
    assert lifetime(7.0, 0.0, refresh=True, stale_ttl=5.0).classify(7.0) is STALE


# --- negative answers ---


def test_negative_lifetime_instants() -> None:
    assert negative_lifetime(3.0, 1.0) == Lifetime(3.0, 4.0, 4.0, 4.0)


@pytest.mark.parametrize("negative_ttl", [0.0, 1.0, 2.5, 3600.0])
def test_negative_answers_are_never_refreshed_or_stale(negative_ttl: float) -> None:
    born = 50.0
    life = negative_lifetime(born, negative_ttl)
    end = born + negative_ttl
    instants = [born, after(born), before(end), end, after(end), end + 1, end + 1e9]
    states = {now: life.classify(now) for now in instants if now >= born}
    for now, state in states.items():
        assert state is (FRESH if now < end else EXPIRED), (now, state)


# --- overrides ---


def test_permanent_lifetime_is_fresh_forever() -> None:
    life = permanent_lifetime(10.0)
    assert life.born == 10.0
    assert life.refresh_at == life.expires == life.stale_until == FOREVER == math.inf
    for now in (10.0, 1e9, 1e300, math.nextafter(math.inf, 0)):
        assert life.classify(now) is FRESH


# --- clamp_ttl ---


@pytest.mark.parametrize(
    ("ttl", "default", "min_ttl", "max_ttl", "expected"),
    [
        (None, 60.0, 0.0, 3600.0, 60.0),
        (None, 60.0, 100.0, 200.0, 60.0),  # no record TTL: the default, as it is
        (300.0, 60.0, 0.0, 3600.0, 300.0),
        (0.0, 60.0, 0.0, 3600.0, 0.0),  # "do not cache" is kept unless min_ttl says otherwise
        (0.0, 60.0, 5.0, 3600.0, 5.0),
        (4.0, 60.0, 5.0, 3600.0, 5.0),
        (5.0, 60.0, 5.0, 3600.0, 5.0),
        (3600.0, 60.0, 0.0, 3600.0, 3600.0),
        (86400.0, 60.0, 0.0, 3600.0, 3600.0),
        (50.0, 60.0, 100.0, 10.0, 100.0),  # min_ttl above max_ttl: min_ttl wins
        (500.0, 60.0, 100.0, 10.0, 100.0),
    ],
)
def test_clamp_ttl(
    ttl: float | None, default: float, min_ttl: float, max_ttl: float, expected: float
) -> None:
    assert clamp_ttl(ttl, default, min_ttl, max_ttl) == expected


# --- properties ---

seconds = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)


@settings(max_examples=200, deadline=None, database=None)
@given(
    born=seconds,
    ttl=seconds,
    refresh=st.booleans(),
    refresh_at=st.floats(min_value=0.0, max_value=1.0, exclude_min=True),
    stale_ttl=seconds,
    offsets=st.lists(st.floats(min_value=0.0, max_value=3e6), min_size=1, max_size=20),
)
def test_lifetime_is_ordered_and_states_never_go_back(
    born: float,
    ttl: float,
    refresh: bool,
    refresh_at: float,
    stale_ttl: float,
    offsets: list[float],
) -> None:
    life = lifetime(born, ttl, refresh=refresh, refresh_at=refresh_at, stale_ttl=stale_ttl)
    assert life.born <= life.refresh_at <= life.expires <= life.stale_until
    instants = sorted(
        [born + o for o in offsets] + [life.refresh_at, life.expires, life.stale_until]
    )
    ranks = [ORDER.index(life.classify(now)) for now in instants]
    assert ranks == sorted(ranks)
    assert life.classify(life.stale_until) is EXPIRED
    if life.expires < life.stale_until:
        assert life.classify(life.expires) is STALE


@settings(max_examples=200, deadline=None, database=None)
@given(
    ttl=st.none() | seconds,
    default=seconds,
    min_ttl=seconds,
    max_ttl=seconds,
)
def test_clamp_ttl_stays_in_bounds(
    ttl: float | None, default: float, min_ttl: float, max_ttl: float
) -> None:
    got = clamp_ttl(ttl, default, min_ttl, max_ttl)
    if ttl is None:
        assert got == default
    else:
        assert got >= min_ttl
        assert got <= max(max_ttl, min_ttl)
        if min_ttl <= ttl <= max_ttl:
            assert got == ttl
