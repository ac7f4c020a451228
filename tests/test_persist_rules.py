"""Delta Chat's rules, exactly: the order key, the merge, the cap of 10, and touch().

The oracle is Delta Chat itself (deltachat-core-rust, src/net/dns.rs, commit 8a5a67d6):
its ``lookup_cache`` query runs verbatim in sqlite over the same rows, and its
``merge_with_cache`` is transcribed line by line below. ``touch`` is checked against
real files with an injected wall clock.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dnscache._sources.persist import (
    MAX_ADDRESSES,
    PersistentStore,
    Seen,
    fallback_addresses,
    fallback_order,
    is_alive,
    memory,
    merge_order,
    merged_addresses,
)
from dnscache._sources.persist.rules import MAX_ROWS_PER_HOST, order_key
from persisting import T0, Clock, ips, raw, stores

A = Seen("192.0.2.10", last_seen=900.0, last_connected=None)  # key 900
B = Seen("192.0.2.11", last_seen=950.0, last_connected=800.0)  # key 800
C = Seen("192.0.2.12", last_seen=990.0, last_connected=None)  # key 990
D = Seen("2001:db8::d", last_seen=960.0, last_connected=850.0)  # key 850
OLD = Seen("192.0.2.13", last_seen=0.0, last_connected=999.0)  # dead at now=1000, max_age=1000
FUTURE = Seen("192.0.2.14", last_seen=2000.5, last_connected=None)  # beyond now + max_age
L1, L2, L3, L4 = "198.51.100.1", "2001:db8::1", "198.51.100.3", "198.51.100.4"
P1, P2 = "203.0.113.1", "203.0.113.2"
X1, X2 = "192.0.2.1", "192.0.2.2"


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., PersistentStore]]:
    yield from stores(tmp_path)


def test_is_alive_boundaries() -> None:
    assert is_alive(0.0, now=999.999, max_age=1000.0)
    assert not is_alive(0.0, now=1000.0, max_age=1000.0)  # dies exactly max_age after
    assert is_alive(2000.0, now=1000.0, max_age=1000.0)
    assert not is_alive(2000.001, now=1000.0, max_age=1000.0)  # a clock that was wrong


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([], []),
        ([A], [A.ip]),
        # one key, IFNULL(last_connected, last_seen), descending
        ([A, B, C], [C.ip, A.ip, B.ip]),
        ([A, C, B, D], [C.ip, A.ip, D.ip, B.ip]),
        # seen just now beats connected long ago ...
        ([Seen(X1, 1.0, 1.0), Seen(X2, 999.0, None)], [X2, X1]),
        # ... and connected recently beats seen earlier
        ([Seen(X1, 500.0, None), Seen(X2, 600.0, 550.0)], [X2, X1]),
        ([B, Seen(B.ip, 999.0, None)], [B.ip]),  # no repeats: the best row's place
        ([Seen(B.ip, 999.0, None), B], [B.ip]),
        # ties keep input order
        ([Seen(X1, 5.0, None), Seen(X2, 5.0, None)], [X1, X2]),
        ([Seen(X2, 5.0, None), Seen(X1, 5.0, None)], [X2, X1]),
    ],
)  # fmt: skip
def test_fallback_order(rows: list[Seen], expected: list[str]) -> None:
    assert fallback_order(rows) == expected


@pytest.mark.parametrize(
    ("live", "rows", "preload", "limit", "expected"),
    [
        # the rule: two live, persisted (one key), preload, rest of live
        ([L1, L2, L3, L4], [A, B, C], [P1], 10, [L1, L2, C.ip, A.ip, B.ip, P1, L3, L4]),
        ([], [A, B, C], [P1], 10, [C.ip, A.ip, B.ip, P1]),
        ([L1], [A], [], 10, [L1, A.ip]),
        ([L1, L2, L3], [], [], 10, [L1, L2, L3]),
        ([], [], [P1, P2], 10, [P1, P2]),
        ([], [], [], 10, []),
        # a persisted address that is also live keeps its earliest place
        ([L1, L2, L3, L4], [Seen(L1, 999.0, 999.0), Seen(L4, 999.0, None)], [], 10,
         [L1, L2, L4, L3]),
        # preload deduplicated against live, rows and itself
        ([L1, L2, L3], [B], [L2, B.ip, P1, P1, L3], 10, [L1, L2, B.ip, P1, L3]),
        # getaddrinfo repeats each address per socket type: "first two" means distinct
        ([L1, L1, L1, L2, L2, L2, L3, L3], [A], [], 10, [L1, L2, A.ip, L3]),
        # too old and from the future are left out; the boundary row is dead
        ([L1, L2, L3], [OLD, FUTURE, A], [P1], 10, [L1, L2, A.ip, P1, L3]),
        ([], [Seen("192.0.2.99", 0.001, None)], [], 10, ["192.0.2.99"]),
        # limits
        (
            [f"198.51.100.{i}" for i in range(1, 13)],
            [A, B],
            [P1],
            10,
            ["198.51.100.1", "198.51.100.2", A.ip, B.ip, P1]
            + [f"198.51.100.{i}" for i in range(3, 8)],
        ),
        ([L1, L2, L3], [A, B], [P1], 3, [L1, L2, A.ip]),
        ([L1, L2, L3], [A, B], [P1], 1, [L1]),
        ([L1, L2, L3], [A, B], [P1], 0, []),
    ],
)  # fmt: skip
def test_merged_addresses(
    live: list[str], rows: list[Seen], preload: list[str], limit: int, expected: list[str]
) -> None:
    got = merged_addresses(live, rows, preload, now=1000.0, max_age=1000.0, limit=limit)
    assert got == expected
    assert merge_order(live, rows, preload, now=1000.0, max_age=1000.0, limit=limit) == expected


def test_every_list_is_capped_at_ten() -> None:
    """Issue 11 item 14: a failed lookup in merge mode returned persisted + preload, 12."""
    rows = [Seen(f"192.0.2.{i}", 900.0 + i, None) for i in range(1, 9)]
    preload = [f"203.0.113.{i}" for i in range(1, 5)]
    assert MAX_ADDRESSES == 10
    got = fallback_addresses(rows, preload, now=1000.0, max_age=1000.0)
    assert got == [f"192.0.2.{i}" for i in range(8, 0, -1)] + preload[:2]
    live = [f"198.51.100.{i}" for i in range(1, 21)]
    assert merged_addresses(live, [], [], now=0.0, max_age=1.0) == live[:10]
    assert len(merged_addresses(live, rows, preload, now=1000.0, max_age=1000.0)) == 10


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        (socket.AF_INET, [L1, L3, C.ip, A.ip, P1, L4]),
        (socket.AF_INET6, [L2, D.ip, "2001:db8::99"]),
        (0, [L1, L2, C.ip, A.ip, D.ip, P1, "2001:db8::99", L3, L4]),
    ],
)
def test_one_family_is_not_cut_short_by_the_other(family: int, expected: list[str]) -> None:
    got = merged_addresses(
        [L1, L2, L3, L4], [A, C, D], [P1, "2001:db8::99"], 1000.0, 1000.0, family=family
    )
    assert got == expected
    fallback = fallback_addresses([A, C, D], [P1, "2001:db8::99"], 1000.0, 1000.0, family=family)
    assert fallback == [ip for ip in expected if ip not in (L1, L2, L3, L4)]


# --- Delta Chat as the oracle ---

CACHE_TTL = 30 * 86400  # Delta Chat's CACHE_TTL
LOOKUP_CACHE = """SELECT dns_cache.address
             FROM dns_cache
             LEFT JOIN connection_history
               ON dns_cache.hostname = connection_history.host
               AND dns_cache.address = connection_history.addr
               AND connection_history.port = ?
               AND connection_history.alpn = ?
             WHERE dns_cache.hostname = ?
             AND ? < dns_cache.timestamp + ?
             ORDER BY IFNULL(connection_history.timestamp, dns_cache.timestamp) DESC
             LIMIT 50"""  # src/net/dns.rs, lookup_cache(), verbatim


def delta_chat(live: list[str], rows: list[Seen], preload: list[str], now: int) -> list[str]:
    """lookup_host_with_cache(load_cache=true) on these rows, in sqlite and transcribed Rust."""
    with closing(sqlite3.connect(":memory:")) as db:
        db.execute("CREATE TABLE dns_cache (hostname TEXT, address TEXT, timestamp INTEGER)")
        db.execute(
            "CREATE TABLE connection_history "
            "(host TEXT, port INTEGER, alpn TEXT, addr TEXT, timestamp INTEGER)"
        )
        for row in rows:
            db.execute("INSERT INTO dns_cache VALUES ('h', ?, ?)", (row.ip, row.last_seen))
            if row.last_connected is not None:
                db.execute(
                    "INSERT INTO connection_history VALUES ('h', 443, 'x', ?, ?)",
                    (row.ip, row.last_connected),
                )
        cache = [a for (a,) in db.execute(LOOKUP_CACHE, (443, "x", "h", now, CACHE_TTL))]
    for ip in preload:  # "if !cache.contains(&addr) { cache.push(addr) }"
        if ip not in cache:
            cache.append(ip)
    # merge_with_cache(resolved_addrs, cache)
    resolved, rest = live[:2], live[2:]
    for addr in [*cache, *rest]:
        if addr not in resolved:
            resolved.append(addr)
            if len(resolved) >= 10:
                break
    return resolved


ADDRESS = st.ip_addresses(v=4).map(str)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[str], list[Seen], list[str], int]:
    now = draw(st.integers(min_value=2 * CACHE_TTL, max_value=2_000_000_000))
    addresses = draw(st.lists(ADDRESS, unique=True, max_size=MAX_ROWS_PER_HOST))
    keys = draw(
        st.lists(
            st.integers(min_value=now - 2 * CACHE_TTL, max_value=now),
            unique=True,  # ties are in no particular order in sqlite: keep keys apart
            min_size=len(addresses),
            max_size=len(addresses),
        )
    )
    rows = []
    for ip, key in zip(addresses, keys, strict=True):
        if draw(st.booleans()):  # connected at `key`, seen since (a connect counts as seen)
            seen = draw(st.integers(min_value=key, max_value=now))
            rows.append(Seen(ip, float(seen), float(key)))
        else:
            rows.append(Seen(ip, float(key), None))
    live = draw(st.lists(st.one_of(ADDRESS, st.sampled_from(addresses or ["192.0.2.1"])),
                         unique=True, max_size=12))  # fmt: skip
    preload = draw(st.lists(st.one_of(ADDRESS, st.sampled_from(addresses or ["192.0.2.1"])),
                            max_size=6))  # fmt: skip
    return live, rows, preload, now


@given(scenario())
def test_exactly_delta_chat(case: tuple[list[str], list[Seen], list[str], int]) -> None:
    live, rows, preload, now = case
    expected = delta_chat(live, rows, preload, now)
    assert merged_addresses(live, rows, preload, float(now), float(CACHE_TTL)) == expected
    assert fallback_addresses(rows, preload, float(now), float(CACHE_TTL)) == delta_chat(
        [], rows, preload, now
    )


@given(scenario())
def test_the_lists_are_bounded_and_unique(
    case: tuple[list[str], list[Seen], list[str], int],
) -> None:
    live, rows, preload, now = case
    for got in (
        merged_addresses(live, rows, preload, float(now), float(CACHE_TTL)),
        fallback_addresses(rows, preload, float(now), float(CACHE_TTL)),
    ):
        assert len(got) <= 10 and len(set(got)) == len(got)
        assert set(got) <= {*live, *(r.ip for r in rows), *preload}
    key = {row.ip: order_key(row) for row in rows}
    keys = [key[ip] for ip in fallback_addresses(rows, [], float(now), float(CACHE_TTL))]
    assert keys == sorted(keys, reverse=True)  # most recently used first


# --- the store reads in that order, and boundedly ---


def test_the_file_is_read_in_delta_chats_order(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    clock = Clock(T0)
    store = make_store(clock=clock)
    store.record_connected(b"h.test", "192.0.2.1")  # key T0
    clock.now = T0 + 10
    store.record_seen(b"h.test", ["192.0.2.2"])  # key T0 + 10
    clock.now = T0 + 5
    store.record_connected(b"h.test", "192.0.2.3")  # key T0 + 5
    store.flush()
    clock.now = T0 + 20
    store.record_seen(b"h.test", ["192.0.2.1"])  # seen again: its key stays T0 (connected)
    store.flush()
    assert ips(store.addresses(b"h.test")) == ["192.0.2.2", "192.0.2.3", "192.0.2.1"]


def test_one_read_returns_at_most_fifty_rows_the_best_ones(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    store = make_store(clock=Clock(T0 + 100))
    assert store.addresses(b"h.test") == []
    rows = [(b"h.test", f"10.0.0.{i}", T0 + i, None) for i in range(1, 61)]
    with closing(sqlite3.connect(str(tmp_path / "dns.sqlite3"))) as conn, conn:
        conn.executemany("INSERT INTO addresses VALUES (?, ?, ?, ?)", rows)
    got = ips(store.addresses(b"h.test"))
    assert got == [f"10.0.0.{i}" for i in range(60, 10, -1)]


# --- touch: last_seen follows what the in-memory cache returns ---


def seen_times(path: Path) -> dict[str, float]:
    return {ip: seen for ip, seen in raw(path, "SELECT ip, last_seen FROM addresses")}


def test_touch_refreshes_last_seen_at_most_once_a_minute(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    path = tmp_path / "dns.sqlite3"
    clock = Clock(T0)
    store = make_store(path, clock=clock)
    store.record_seen(b"h.test", ["192.0.2.1", "192.0.2.2"])  # the live answer
    store.flush()
    for dt in (1.0, 30.0, 59.9):  # within the minute since it was written: nothing
        clock.now = T0 + dt
        store.touch(b"h.test", ["192.0.2.1", "192.0.2.2"])
        store.flush()
        assert seen_times(path) == {"192.0.2.1": T0, "192.0.2.2": T0}
    clock.now = T0 + 60.0
    store.touch(b"h.test", ["192.0.2.1"])
    store.flush()
    assert seen_times(path) == {"192.0.2.1": T0 + 60.0, "192.0.2.2": T0}
    clock.now = T0 + 90.0
    store.touch(b"h.test", ["192.0.2.1", "192.0.2.2"])  # .1 was touched 30 s ago; .2 is due
    store.flush()
    assert seen_times(path) == {"192.0.2.1": T0 + 60.0, "192.0.2.2": T0 + 90.0}
    clock.now = T0 + 120.0
    store.touch(b"other.test", ["192.0.2.1"])  # another host's row is another row
    store.flush()
    assert ("192.0.2.1", T0 + 120.0) in raw(
        path, "SELECT ip, last_seen FROM addresses WHERE host = ?", (b"other.test",)
    )


def test_a_touched_row_outlives_max_age_an_untouched_one_does_not(
    make_store: Callable[..., PersistentStore],
) -> None:
    clock = Clock(T0)
    store = make_store(clock=clock, max_age=1000.0)
    store.record_seen(b"h.test", ["192.0.2.1", "192.0.2.2"])
    store.flush()
    for _ in range(20):  # a long-running process serving .1 from memory, hour after hour
        clock.now += 100.0
        store.touch(b"h.test", ["192.0.2.1"])
    store.flush()
    assert ips(store.addresses(b"h.test")) == ["192.0.2.1"]


def test_touch_memory_is_bounded(
    make_store: Callable[..., PersistentStore], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "MAX_TOUCHED", 2)
    path = tmp_path / "dns.sqlite3"
    clock = Clock(T0)
    store = make_store(path, clock=clock)
    store.touch(b"h.test", ["192.0.2.1"])
    store.touch(b"h.test", ["192.0.2.2", "192.0.2.3"])  # .1 is forgotten: the oldest
    store.flush()
    clock.now = T0 + 1.0
    store.touch(b"h.test", ["192.0.2.1", "192.0.2.3"])  # .1 due again; .3 remembered
    store.flush()
    assert seen_times(path) == {"192.0.2.1": T0 + 1.0, "192.0.2.2": T0, "192.0.2.3": T0}


def test_touch_never_waits_for_the_disk(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    """Another process holds the write lock: touch() still returns (the writer waits)."""
    path = tmp_path / "dns.sqlite3"
    clock = Clock(T0)
    store = make_store(path, clock=clock, flush_interval=0.0)
    store.record_seen(b"h.test", ["192.0.2.1"])
    store.flush()
    returned = threading.Event()
    with closing(sqlite3.connect(str(path), isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # sqlite's single write lock, held
        clock.now = T0 + 61.0

        def hit() -> None:
            for i in range(200):
                store.touch(b"h.test", ["192.0.2.1"])
                store.touch(f"h{i}.test".encode(), ["192.0.2.1"])  # a queued write each
            returned.set()

        worker = threading.Thread(target=hit)
        worker.start()
        worker.join(timeout=30)  # a generous bound: a hang fails instead of blocking
        assert returned.is_set()
        other.execute("ROLLBACK")
    store.flush(timeout=10)
    assert seen_times(path)["192.0.2.1"] == T0 + 61.0


@pytest.mark.parametrize(
    ("host", "addresses"),
    [
        (None, ["192.0.2.1"]),
        (b"", ["192.0.2.1"]),
        (b"h.test", None),
        (b"h.test", ["not an ip", "224.0.0.1", "fe80::1%eth0"]),
        ("caf\ufffd.test", ["192.0.2.1"]),
    ],
)
def test_touch_ignores_junk_and_never_raises(
    make_store: Callable[..., PersistentStore], host: object, addresses: object
) -> None:
    store = make_store(clock=Clock())
    store.touch(host, addresses)  # type: ignore[arg-type]
    store.flush()
    assert store.hosts() == []


def test_touch_takes_any_iterable_once(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    path = tmp_path / "dns.sqlite3"
    store = make_store(path, clock=Clock(T0))
    store.touch(b"h.test", (ip for ip in ["192.0.2.1", "192.0.2.2"]))  # a one-shot iterator
    store.touch(b"g.test", "192.0.2.3")  # one address as a str, as record_seen takes it
    store.flush()
    assert {h: ips(rows) for h, rows in store.hosts()} == {
        b"g.test": ["192.0.2.3"],
        b"h.test": ["192.0.2.1", "192.0.2.2"],
    }


def test_touch_in_memory_mode(make_store: Callable[..., PersistentStore], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    clock = Clock(T0)
    store = make_store(tmp_path / "file" / "dns.sqlite3", clock=clock)
    store.record_seen(b"h.test", ["192.0.2.1"])
    store.flush()
    clock.now = T0 + 61.0
    store.touch(b"h.test", ["192.0.2.1"])
    assert store.degraded
    assert store.addresses(b"h.test") == [Seen("192.0.2.1", T0 + 61.0, None)]
