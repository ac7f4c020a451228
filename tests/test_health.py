"""Address health: the pure ordering with explicit ``now``, and the bounded store."""

from __future__ import annotations

import math
import socket
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dnscache._connect.health import (
    AddressHealth,
    Record,
    is_penalised,
    order_addresses,
    order_addrinfos,
    order_by_health,
    order_expires_at,
)

A, B, C, D = "127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"
IPS = [A, B, C, D]
PENALTY = 10.0


def ok(at: float) -> Record:
    return Record(last_success=at)


def failed(at: float, success: float | None = None) -> Record:
    return Record(last_success=success, last_failure=at)


# --- order_by_health ---


def test_no_records_keeps_the_resolvers_order() -> None:
    assert order_by_health(IPS, {}, 100.0, PENALTY) == IPS


def test_records_of_other_addresses_change_nothing() -> None:
    records = {"127.0.0.9": ok(99.0), "127.0.0.8": failed(99.0)}
    assert order_by_health(IPS, records, 100.0, PENALTY) == IPS


def test_recent_failure_goes_last() -> None:
    assert order_by_health(IPS, {A: failed(95.0)}, 100.0, PENALTY) == [B, C, D, A]


def test_failed_addresses_keep_the_order_of_their_failures_most_recent_last() -> None:
    records = {A: failed(99.0), B: failed(95.0), C: failed(97.0)}
    assert order_by_health(IPS, records, 100.0, PENALTY) == [D, B, C, A]


def test_failed_at_the_same_time_keep_the_resolvers_order() -> None:
    records = {C: failed(95.0), A: failed(95.0)}
    assert order_by_health(IPS, records, 100.0, PENALTY) == [B, D, A, C]


@pytest.mark.parametrize(
    ("now", "penalised"),
    [(95.0, True), (104.999, True), (105.0, False), (200.0, False)],
)
def test_a_failure_counts_for_exactly_failure_penalty_seconds(now: float, penalised: bool) -> None:
    records = {A: failed(95.0)}
    expected = [B, C, D, A] if penalised else IPS
    assert order_by_health(IPS, records, now, PENALTY) == expected
    assert is_penalised(records[A], now, PENALTY) is penalised


def test_a_failure_recorded_after_now_still_counts() -> None:
    # A caller may read the clock, then another thread records a failure.
    assert order_by_health(IPS, {A: failed(101.0)}, 100.0, PENALTY) == [B, C, D, A]


def test_zero_penalty_disables_penalties() -> None:
    records = {A: failed(100.0), B: failed(101.0)}
    assert order_by_health(IPS, records, 100.0, 0.0) == IPS


def test_latest_success_goes_first_and_the_rest_keep_their_order() -> None:
    records = {C: ok(50.0), D: ok(60.0)}
    assert order_by_health(IPS, records, 100.0, PENALTY) == [D, A, B, C]


def test_the_first_address_already_preferred_stays() -> None:
    assert order_by_health(IPS, {A: ok(99.0)}, 100.0, PENALTY) == IPS


def test_tied_successes_prefer_the_resolvers_first() -> None:
    records = {D: ok(60.0), B: ok(60.0)}
    assert order_by_health(IPS, records, 100.0, PENALTY) == [B, A, C, D]


def test_preference_and_penalty_together() -> None:
    records = {A: failed(99.0), C: ok(80.0), B: failed(98.0)}
    assert order_by_health(IPS, records, 100.0, PENALTY) == [C, D, B, A]


def test_success_after_failure_clears_it() -> None:
    assert order_by_health(IPS, {C: failed(95.0, success=96.0)}, 100.0, PENALTY) == [C, A, B, D]


def test_failure_after_success_withdraws_the_preference_even_once_forgotten() -> None:
    records = {C: failed(95.0, success=90.0)}
    assert order_by_health(IPS, records, 100.0, PENALTY) == [A, B, D, C]
    # Penalty over: back in the resolver's place, not first.
    assert order_by_health(IPS, records, 200.0, PENALTY) == IPS


def test_a_tie_between_success_and_failure_counts_as_failure() -> None:
    assert order_by_health(IPS, {A: failed(95.0, success=95.0)}, 100.0, PENALTY) == [B, C, D, A]


def test_the_best_not_penalised_success_wins() -> None:
    # D's success is the latest event overall, but D has failed since.
    records = {B: ok(50.0), D: failed(99.0, success=98.0)}
    assert order_by_health(IPS, records, 100.0, PENALTY) == [B, A, C, D]


def test_empty() -> None:
    assert order_by_health([], {A: ok(1.0)}, 100.0, PENALTY) == []


times = st.none() | st.integers(0, 20).map(float)


@given(
    st.lists(st.sampled_from([f"127.0.0.{n}" for n in range(1, 9)]), unique=True),
    st.dictionaries(
        st.sampled_from([f"127.0.0.{n}" for n in range(1, 11)]),
        st.builds(Record, times, times),
    ),
    st.integers(0, 30).map(float),
    st.sampled_from([0.0, 1.0, 5.0, math.inf]),
)
def test_order_invariants(
    ips: list[str], records: dict[str, Record], now: float, penalty: float
) -> None:
    out = order_by_health(ips, records, now, penalty)
    assert sorted(out) == sorted(ips)

    def bad(ip: str) -> bool:
        return is_penalised(records.get(ip), now, penalty)

    n_bad = sum(map(bad, ips))
    head, tail = out[: len(out) - n_bad], out[len(out) - n_bad :]
    assert not any(map(bad, head))
    assert all(map(bad, tail))
    failures = [records[ip].last_failure for ip in tail]
    assert failures == sorted(failures)  # type: ignore[type-var]

    def candidate(ip: str) -> bool:
        record = records.get(ip)
        return (
            record is not None
            and record.last_success is not None
            and (record.last_failure is None or record.last_success > record.last_failure)
        )

    candidates = [ip for ip in ips if candidate(ip)]
    if candidates:
        best = max(records[ip].last_success for ip in candidates)  # type: ignore[type-var]
        first = next(ip for ip in candidates if records[ip].last_success == best)
        assert head[0] == first
        rest = head[1:]
    else:
        rest = head
    assert rest == [ip for ip in ips if ip in rest]  # the resolver's relative order


@given(
    st.lists(st.sampled_from(IPS), unique=True),
    st.dictionaries(st.sampled_from(IPS), st.builds(Record, times, times)),
    st.integers(0, 30).map(float),
)
def test_order_is_stable_until_it_expires(
    ips: list[str], records: dict[str, Record], now: float
) -> None:
    expires = order_expires_at(ips, records, now, 5.0)
    assert expires > now
    out = order_by_health(ips, records, now, 5.0)
    if expires < math.inf:
        assert order_by_health(ips, records, expires - 0.001, 5.0) == out
    else:
        assert order_by_health(ips, records, now + 1000.0, 5.0) == out


def test_order_expires_at() -> None:
    records = {A: failed(95.0), B: failed(97.0), C: failed(80.0), D: ok(99.0)}
    assert order_expires_at(IPS, records, 100.0, PENALTY) == 105.0
    assert order_expires_at([B, D], records, 100.0, PENALTY) == 107.0
    assert order_expires_at([C, D], records, 100.0, PENALTY) == math.inf
    assert order_expires_at(IPS, {}, 100.0, PENALTY) == math.inf


# --- applied to getaddrinfo tuples and cached addresses ---


def _info(ip: str, kind: socket.SocketKind) -> tuple[object, ...]:
    if ":" in ip:
        return (socket.AF_INET6, kind, 0, "", (ip, 80, 0, 0))
    return (socket.AF_INET, kind, 0, "", (ip, 80))


def test_order_addrinfos_keeps_each_addresses_tuples_together_and_in_order() -> None:
    kinds = [socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW]
    infos = [_info(ip, kind) for ip in (A, B, D) for kind in kinds]
    out = order_addrinfos(infos, {A: failed(99.0), D: ok(98.0)}, 100.0, PENALTY)  # type: ignore[arg-type]
    assert out == [_info(ip, kind) for ip in (D, B, A) for kind in kinds]


def test_order_addrinfos_without_records_is_a_copy() -> None:
    infos = [_info(A, socket.SOCK_STREAM)]
    out = order_addrinfos(infos, {}, 0.0, PENALTY)  # type: ignore[arg-type]
    assert out == infos
    assert out is not infos


def test_order_addresses() -> None:
    addresses = [
        (socket.AF_INET, (A, 0)),
        (socket.AF_INET, (B, 0)),
        (socket.AF_INET6, (D, 0, 0, 0)),
    ]
    out = order_addresses(addresses, {A: failed(99.0), B: ok(3.0)}, 100.0, PENALTY)
    assert out == [addresses[1], addresses[2], addresses[0]]


# --- AddressHealth ---


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_record_and_read_back() -> None:
    health = AddressHealth()
    health.record("h", A, True, now=1.0)
    health.record("h", B, False, now=2.0)
    assert health.records("h") == {A: ok(1.0), B: failed(2.0)}
    assert health.records("other") == {}
    assert len(health) == 1


def test_success_clears_the_failure_and_failure_keeps_the_last_success() -> None:
    health = AddressHealth()
    health.record("h", A, True, now=1.0)
    health.record("h", A, False, now=2.0)
    assert health.records("h")[A] == Record(last_success=1.0, last_failure=2.0)
    health.record("h", A, True, now=3.0)
    assert health.records("h")[A] == Record(last_success=3.0, last_failure=None)


def test_records_is_a_snapshot() -> None:
    health = AddressHealth()
    health.record("h", A, True, now=1.0)
    snapshot = health.records("h")
    health.record("h", B, True, now=2.0)
    assert list(snapshot) == [A]


def test_the_clock_is_used_when_now_is_omitted() -> None:
    clock = Clock()
    health = AddressHealth(clock=clock)
    clock.now = 7.0
    health.record("h", A, False)
    assert health.records("h")[A] == failed(7.0)
    assert health.order("h", [A, B], PENALTY) == [B, A]
    clock.now = 17.0
    assert health.order("h", [A, B], PENALTY) == [A, B]
    assert health.order("h", [A, B], PENALTY, now=8.0) == [B, A]


def test_at_most_max_addresses_per_host_least_recently_recorded_go_first() -> None:
    health = AddressHealth(max_addresses=3)
    for n, ip in enumerate(["127.0.0.1", "127.0.0.2", "127.0.0.3"]):
        health.record("h", ip, True, now=float(n))
    health.record("h", "127.0.0.1", False, now=5.0)  # touched: now the most recent
    health.record("h", "127.0.0.4", True, now=6.0)
    assert set(health.records("h")) == {"127.0.0.1", "127.0.0.3", "127.0.0.4"}


def test_at_most_max_hosts_least_recently_used_evicted() -> None:
    health = AddressHealth(max_hosts=2)
    health.record("a", A, True, now=1.0)
    health.record("b", A, True, now=2.0)
    health.records("a")  # a read counts as a use
    health.record("c", A, True, now=3.0)
    assert len(health) == 2
    assert health.records("b") == {}
    assert health.records("a") and health.records("c")


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        AddressHealth(max_hosts=0)
    with pytest.raises(ValueError):
        AddressHealth(max_addresses=0)


def test_forget_missing() -> None:
    health = AddressHealth()
    for ip in (A, B, C):
        health.record("h", ip, False, now=1.0)
    version = health.version
    health.forget_missing("h", [A, C, D])
    assert set(health.records("h")) == {A, C}
    assert health.version > version
    version = health.version
    health.forget_missing("h", iter([A, C]))  # nothing to drop: no change
    health.forget_missing("unknown", [])
    assert health.version == version
    health.forget_missing("h", [])
    assert len(health) == 0


def test_forget() -> None:
    health = AddressHealth()
    health.record("a", A, True, now=1.0)
    health.record("b", A, True, now=1.0)
    version = health.version
    health.forget("a")
    assert health.records("a") == {} and len(health) == 1
    assert health.version > version
    version = health.version
    health.forget("a")
    assert health.version == version
    health.forget()
    assert len(health) == 0 and health.version > version


class TestVersion:
    def bumps(self, health: AddressHealth, ip: str, ok: bool, now: float, host: str = "h") -> bool:
        before = health.version
        health.record(host, ip, ok, now=now)
        assert health.version >= before
        return health.version != before

    def test_every_failure_bumps(self) -> None:
        health = AddressHealth()
        assert self.bumps(health, A, False, 1.0)
        assert self.bumps(health, A, False, 2.0)

    def test_success_bumps_only_when_the_preferred_address_changes(self) -> None:
        health = AddressHealth()
        assert self.bumps(health, A, True, 1.0)  # first success: A now goes first
        assert not self.bumps(health, A, True, 2.0)  # still A
        assert self.bumps(health, B, True, 3.0)  # B takes over
        assert not self.bumps(health, B, True, 4.0)
        assert self.bumps(health, A, True, 5.0)
        assert self.bumps(health, A, True, 6.0, host="other")  # per host

    def test_success_after_failure_bumps(self) -> None:
        health = AddressHealth()
        health.record("h", A, True, now=1.0)
        health.record("h", A, False, now=2.0)
        assert self.bumps(health, A, True, 3.0)

    def test_success_of_a_tied_address_bumps(self) -> None:
        health = AddressHealth()
        health.record("h", A, True, now=1.0)
        health.record("h", B, True, now=1.0)
        assert self.bumps(health, B, True, 2.0)  # the tie went to the resolver's order

    def test_evictions_bump(self) -> None:
        health = AddressHealth(max_hosts=1, max_addresses=1)
        health.record("h", A, True, now=1.0)
        version = health.version
        health.record("h", A, True, now=2.0)
        assert health.version == version
        health.record("h2", A, True, now=3.0)  # evicts h
        assert health.version >= version + 2
        version = health.version
        health.record("h2", B, True, now=4.0)  # evicts h2's A
        assert health.version >= version + 2


def test_thread_safe_under_concurrent_records() -> None:
    health = AddressHealth(max_hosts=50, max_addresses=8)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for n in range(2000):
                host = f"h{(seed * 7 + n) % 60}"
                ip = f"127.0.0.{(n % 12) + 1}"
                health.record(host, ip, n % 3 != 0, now=float(n))
                if n % 50 == 0:
                    health.forget_missing(host, [ip])
                health.order(host, [ip, A], PENALTY, now=float(n))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(health) <= 50
    for n in range(60):
        assert len(health.records(f"h{n}")) <= 8
