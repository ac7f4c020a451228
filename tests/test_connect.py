"""create_connection's algorithm, exactly: scripted networks under a fake clock.

Each test runs the real ``happy_eyeballs.create_connection`` against a
``Scenario`` (tests/scenario.py) that plays the sockets, the selector and the
clock, so expected times are exact and every call on a socket is visible: which
attempts were blocking ``connect()`` calls as the stdlib makes them, and when the
race machinery (a selector) came into being. Real sockets on loopback, and
parity with the stdlib, are in tests/test_connect_loopback.py.
"""

from __future__ import annotations

import errno
import math
from typing import Any

import pytest

from dnscache._connect import happy_eyeballs as he
from dnscache._connect.happy_eyeballs import interleave, schedule
from scenario import (
    CONNECTED_AT_ONCE,
    HANG,
    Scenario,
    fails_to_start,
    info,
    ok_at,
    raises,
    refused_at,
)

# --------------------------------------------------------------------------------------
# interleave (RFC 8305 section 4) and schedule (when the next attempt is due)
# --------------------------------------------------------------------------------------

V6 = ["::1", "::ffff:127.0.0.6", "::ffff:127.0.0.7"]
V4 = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


def ips(infos: list[Any]) -> list[str]:
    return [i[4][0] for i in infos]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ([], []),
        (V4, V4),
        (V6[:2] + V4, [V6[0], V4[0], V6[1], V4[1], V4[2]]),
        (V4[:1] + V6, [V4[0], V6[0], V6[1], V6[2]]),
        ([V4[0], V4[1], V6[0], V4[2], V6[1]], [V4[0], V6[0], V4[1], V6[1], V4[2]]),
    ],
)
def test_interleave(given: list[str], expected: list[str]) -> None:
    out = interleave([info(ip) for ip in given])
    assert ips(out) == expected
    assert interleave(out) == out  # idempotent


def test_interleave_first_family_count() -> None:
    given = [info(ip) for ip in V6 + V4[:2]]
    out = interleave(given, first_family_count=2)
    assert ips(out) == [V6[0], V6[1], V4[0], V6[2], V4[1]]
    with pytest.raises(ValueError):
        interleave(given, first_family_count=0)


@pytest.mark.parametrize(
    ("left", "delay", "following", "expected"),
    [
        (math.inf, 0.25, 2, (0.25, 0.25)),  # no deadline: RFC 8305's delay
        (10.0, 0.25, 2, (0.25, 0.25)),
        (0.3, 0.5, 1, (0.15, 0.15)),  # a deadline shorter than the delay: half each
        (1.0, 0.25, 0, (math.inf, 1.0)),  # the last address has the rest alone
        (math.inf, 0.25, 0, (math.inf, math.inf)),
        (9.0, 0.0, 2, (math.inf, 3.0)),  # delay 0: one at a time, each its share
        (3.0, 0.0, 2, (math.inf, 2.0)),  # ... but at least 2 s (Go's saneMinimum)
        (1.5, 0.0, 2, (math.inf, 1.5)),  # ... or what is left
        (math.inf, 0.0, 2, (math.inf, math.inf)),
        (math.inf, 1e10, 1, (1e10, 1e10)),  # capped by the caller (MAX_WAIT)
    ],
)
def test_schedule(left: float, delay: float, following: int, expected: tuple[float, float]) -> None:
    assert schedule(left, delay, following) == pytest.approx(expected)


# --------------------------------------------------------------------------------------
# One attempt at a time is the stdlib's path; the race starts with the second
# --------------------------------------------------------------------------------------

A, B, C, D = "127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"


def test_one_address_is_the_stdlibs_loop_body() -> None:
    s = Scenario({A: ok_at(0.1)})
    sock = s.run(5)
    assert sock.calls == [("settimeout", 5), ("connect", (A, 80))]
    assert s.selectors == [] and s.reports == [(A, None, 0.1)]


def test_one_address_without_a_timeout_never_sets_one() -> None:
    s = Scenario({A: ok_at(0.1)})
    assert s.run().calls == [("connect", (A, 80))]


def test_first_of_several_answering_is_one_blocking_connect() -> None:
    s = Scenario({A: ok_at(0.1), B: ok_at(0.1)})
    sock = s.run(5)
    assert sock.ip == A and s.now == 0.1
    # The stdlib's calls, with the connect cut at the delay and the timeout put back.
    assert sock.calls == [
        ("settimeout", 5),
        ("settimeout", 0.25),
        ("connect", (A, 80)),
        ("settimeout", 5),
    ]
    assert s.started == {A: 0} and s.how == {A: "blocking"}
    assert s.selectors == []  # no race machinery
    assert s.reports == [(A, None, 0.1)]


def test_a_refused_first_attempt_makes_the_next_one_alone_too() -> None:
    s = Scenario({A: refused_at(0.1), B: ok_at(0.1)})
    assert s.run(5).ip == B
    assert s.started == {A: 0, B: 0.1}
    assert s.how == {A: "blocking", B: "blocking"}
    assert s.selectors == []
    assert s.timeouts(B) == [5, 4.9, 5]  # alone and last: the rest of the deadline


def test_the_race_starts_only_when_a_second_attempt_starts() -> None:
    s = Scenario({A: HANG, B: ok_at(0.1)})
    assert s.run(5).ip == B
    assert s.started == {A: 0, B: 0.25}
    assert s.how == {A: "blocking", B: "non-blocking"}
    assert len(s.selectors) == 1
    assert s.ended == {A: 0.35}
    assert [(ip, type(e), t) for ip, e, t in s.reports] == [
        (B, type(None), 0.35),
        (A, TimeoutError, 0.35),  # lost the race: as good as a timeout for ordering
    ]


def test_an_adopted_first_attempt_can_still_win() -> None:
    s = Scenario({A: ok_at(0.3), B: HANG})
    sock = s.run(5)
    assert sock.ip == A and s.now == 0.3
    assert sock.gettimeout() == 5.0  # the caller's timeout is back
    assert s.started == {A: 0, B: 0.25} and s.ended == {B: 0.3}


def test_staggered_starts_and_the_losers_are_closed() -> None:
    s = Scenario({A: HANG, B: HANG, C: ok_at(0.1)})
    assert s.run().ip == C
    assert s.started == {A: 0, B: 0.25, C: 0.5}
    assert s.ended == {A: 0.6, B: 0.6}
    assert [(ip, type(e), t) for ip, e, t in s.reports] == [
        (C, type(None), 0.6),
        (A, TimeoutError, 0.6),
        (B, TimeoutError, 0.6),
    ]


def test_failure_starts_the_next_at_once() -> None:
    s = Scenario({A: refused_at(0.125), B: refused_at(0.0625), C: ok_at(1)})
    assert s.run().ip == C
    assert s.started == {A: 0, B: 0.125, C: 0.1875}


def test_failure_at_start_starts_the_next_at_the_same_instant() -> None:
    s = Scenario({A: fails_to_start(OSError(errno.EAFNOSUPPORT, "no")), B: ok_at(0.5)})
    assert s.run().ip == B
    assert s.started == {A: 0, B: 0}
    assert [(ip, type(e)) for ip, e, _ in s.reports] == [(A, OSError), (B, type(None))]


def test_only_the_latest_attempts_failure_moves_the_next_forward() -> None:
    # A fails at 0.3 while B (begun 0.25) is pending: C still waits for 0.5.
    s = Scenario({A: refused_at(0.3), B: HANG, C: ok_at(1)})
    assert s.run().ip == C
    assert s.started == {A: 0, B: 0.25, C: 0.5}
    # B fails at 0.375 (0.125 after its start): C starts then.
    s = Scenario({A: HANG, B: refused_at(0.125), C: ok_at(1)})
    assert s.run().ip == C
    assert s.started == {A: 0, B: 0.25, C: 0.375}


def test_connected_inside_a_non_blocking_connect_wins_at_once() -> None:
    s = Scenario({A: HANG, B: CONNECTED_AT_ONCE, C: ok_at(0)})
    assert s.run().ip == B
    assert s.started == {A: 0, B: 0.25} and s.ended == {A: 0.25}


def test_simultaneous_successes_go_to_the_earliest_started() -> None:
    s = Scenario({A: ok_at(0.5), B: ok_at(0.25)})
    assert s.run().ip == A
    assert s.now == 0.5
    assert s.reports == [(A, None, 0.5)]


def test_a_failure_and_a_success_at_the_same_time() -> None:
    s = Scenario({A: refused_at(0.5), B: ok_at(0.25)})
    assert s.run().ip == B
    assert [(ip, e is None) for ip, e, _ in s.reports] == [(A, False), (B, True)]


def test_no_timeout_waits_as_long_as_it_takes() -> None:
    s = Scenario({A: HANG, B: ok_at(100.0)}, default_timeout=None)
    assert s.run().ip == B
    assert s.now == 100.25


def test_a_connect_raising_timeout_without_starting_fails_as_that_error() -> None:
    # A socket.socket subclass whose connect() raises TimeoutError itself (CPython's
    # test_socket does this): watched, it is writable at once with no peer.
    mine = TimeoutError("from the subclass")
    s = Scenario({A: raises(mine), B: raises(TimeoutError("again"))})
    with pytest.raises(TimeoutError, match="again"):
        s.run(5)
    assert s.reports[0][1] is mine
    assert s.started == {A: 0, B: 0}


# --------------------------------------------------------------------------------------
# Deadlines: timeout=t bounds the whole call
# --------------------------------------------------------------------------------------


def test_the_timeout_bounds_the_whole_call() -> None:
    s = Scenario({A: HANG, B: HANG, C: HANG})
    with pytest.raises(TimeoutError) as excinfo:
        s.run(1.0)
    assert excinfo.value.args == ("timed out",)
    assert s.started == {A: 0, B: 0.25, C: 0.5}
    assert s.ended == {A: 1.0, B: 1.0, C: 1.0}
    assert s.now == 1.0  # the stdlib: 3.0


def test_the_default_timeout_bounds_it_too() -> None:
    s = Scenario({A: HANG, B: HANG}, default_timeout=0.5)
    with pytest.raises(TimeoutError):
        s.run()
    assert s.now == 0.5


def test_a_short_timeout_still_tries_every_address() -> None:
    # A delay longer than the timeout would leave B untried: each gets its share.
    s = Scenario({A: HANG, B: refused_at(0)})
    with pytest.raises(ConnectionRefusedError):  # the last address's error, as the stdlib
        s.run(0.3, delay=0.5)
    assert s.started == {A: 0, B: 0.15}
    assert s.now == pytest.approx(0.3)


def test_a_timed_out_latest_attempt_starts_the_next() -> None:
    s = Scenario({A: HANG, B: ok_at(0)})
    assert s.run(0.1).ip == B
    assert s.started == {A: 0, B: 0.05}


@pytest.mark.parametrize("delay", [0, 0.0])
def test_delay_zero_is_strictly_sequential(delay: float) -> None:
    s = Scenario({A: HANG, B: refused_at(0.5), C: ok_at(0.25)})
    assert s.run(9.0, delay=delay).ip == C
    assert s.started == {A: 0, B: 3.0, C: 3.5}  # A is given up after its share, 9 / 3
    assert s.how == {A: "blocking", B: "blocking", C: "blocking"}
    assert s.selectors == []
    assert [(ip, type(e), t) for ip, e, t in s.reports] == [
        (A, TimeoutError, 3.0),
        (B, ConnectionRefusedError, 3.5),
        (C, type(None), 3.75),
    ]


def test_delay_zero_gives_each_address_at_least_two_seconds() -> None:
    s = Scenario({A: HANG, B: HANG, C: HANG})
    with pytest.raises(TimeoutError):
        s.run(3.0, delay=0)
    assert s.started == {A: 0, B: 2.0}  # C never: the deadline came first
    assert s.now == 3.0


def test_without_all_errors_the_last_attempts_error_is_raised_like_the_stdlib() -> None:
    # B is refused at 0.35, A times out at 1.0; the stdlib would raise B's error for
    # this list (it tries A, times out, then B), and so do we.
    s = Scenario({A: HANG, B: refused_at(0.1)})
    with pytest.raises(ConnectionRefusedError):
        s.run(1.0)
    assert [(ip, t) for ip, _, t in s.reports] == [(B, 0.35), (A, 1.0)]


def test_all_errors_in_attempt_order() -> None:
    s = Scenario({A: HANG, B: refused_at(0.1), D: refused_at(0.0)})
    with pytest.raises(ExceptionGroup) as excinfo:
        s.run(1.0, all_errors=True)
    group = excinfo.value
    assert group.message == "create_connection failed"
    # Interleaved: A, ::1, B.
    assert [type(e) for e in group.exceptions] == [
        TimeoutError,
        ConnectionRefusedError,
        ConnectionRefusedError,
    ]
    assert group.exceptions[1] is s.reports[0][1]
    assert s.started == {A: 0, D: 0.25, B: 0.25}
    assert list(group.args[1]) == list(group.exceptions)


# --------------------------------------------------------------------------------------
# What the stdlib loop does unchanged, huge values, interruptions
# --------------------------------------------------------------------------------------


def test_timeout_zero_is_the_stdlibs_loop() -> None:
    s = Scenario({A: ok_at(0.1), B: ok_at(0.1)})
    with pytest.raises(BlockingIOError):  # every connect fails at once, as in the stdlib
        s.run(0)
    assert s.how == {A: "non-blocking", B: "non-blocking"}
    assert s.timeouts(A) == [0] and s.timeouts(B) == [0]


def test_huge_delay_and_timeout_are_capped_where_they_reach_the_platform() -> None:
    s = Scenario({A: HANG, B: ok_at(1.0)})
    assert s.run(None, delay=1e10).ip == B
    assert s.timeouts(A) == [None, he.MAX_WAIT]  # settimeout: at most TIMEOUT_MAX
    assert all(0 <= wait <= he.MAX_WAIT for wait in s.waits)  # poll: at most INT_MAX ms
    assert s.started == {A: 0, B: 1e10}


def test_a_huge_timeout_is_the_callers_and_reaches_settimeout_as_given() -> None:
    s = Scenario({A: HANG, B: ok_at(1.0)})
    sock = s.run(5e9, delay=0.25)
    assert sock.ip == B
    assert sock.calls == [
        ("settimeout", 5e9),
        ("setblocking", False),
        ("connect", (B, 80)),
        ("settimeout", 5e9),
    ]


def test_keyboard_interrupt_closes_every_attempt() -> None:
    s = Scenario({A: HANG, B: HANG, C: HANG}, interrupt_at=0.3)
    with pytest.raises(KeyboardInterrupt):
        s.run()
    assert s.ended == {A: 0.3, B: 0.3}
    assert s.reports == []


def test_keyboard_interrupt_in_the_first_connect_closes_it() -> None:
    s = Scenario({A: HANG, B: HANG}, interrupt_at=0.1)
    with pytest.raises(KeyboardInterrupt):
        s.run(5)
    assert s.ended == {A: 0.1}


def test_unexpected_errors_propagate_and_close_everything() -> None:
    s = Scenario({A: HANG, B: fails_to_start(TypeError("bad address"))})
    with pytest.raises(TypeError, match="bad address"):
        s.run()
    assert s.ended == {A: 0.25, B: 0.25}


@pytest.mark.parametrize(
    "script", [{A: ok_at(0.1)}, {A: ok_at(0.1), B: HANG}, {A: HANG, B: ok_at(0)}]
)
def test_a_raising_hook_closes_the_winner_too(script: dict[str, Any]) -> None:
    s = Scenario(script)

    def hook(addrinfo: Any, error: BaseException | None) -> None:
        raise RuntimeError("hook")

    s.on_attempt_done = hook  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        s.run()


def test_delay_must_be_a_non_negative_number() -> None:
    for delay in (-0.1, math.nan):
        with pytest.raises(ValueError):
            Scenario({A: ok_at(0)}).run(delay=delay)
