"""Keys are exact: two different byte names never share a row (issue 11 item 8).

The layer keys rows by the bytes libc sees, in a BLOB column. Checked with real
files (and the in-memory fallback, and the writer's queue) over arbitrary byte names,
plus the migration that brings a version 1 file (text keys from a lossy decode) over.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnscache._sources.persist import SCHEMA_VERSION, PersistentStore, sqlfile
from dnscache._sources.persist.rules import clean_host, display_host
from persisting import T0, Clock, ips, raw, stores

CAFE_ACUTE = "café.test".encode()  # b"caf\xc3\xa9.test"
CAFE_GRAVE = "cafè.test".encode()  # b"caf\xc3\xa8.test"
CAFE_CEDILLA = "cafç.test".encode()  # never resolved
LOSSY = CAFE_ACUTE.decode("ascii", "replace")  # what version 1 keyed both by


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., PersistentStore]]:
    yield from stores(tmp_path)


def test_the_issues_names_do_not_collide(make_store: Callable[..., PersistentStore]) -> None:
    assert CAFE_GRAVE.decode("ascii", "replace") == LOSSY  # version 1's collision
    store = make_store(clock=Clock())
    store.record_seen(CAFE_ACUTE, ["192.0.2.1"])
    store.record_connected(CAFE_GRAVE, "192.0.2.2")
    store.flush()
    assert ips(store.addresses(CAFE_ACUTE)) == ["192.0.2.1"]
    assert ips(store.addresses(CAFE_GRAVE)) == ["192.0.2.2"]
    assert store.addresses(CAFE_CEDILLA) == []  # a third name gets nothing
    assert [h for h, _ in store.hosts()] == sorted([CAFE_ACUTE, CAFE_GRAVE])
    assert [h for h, _ in store.all_hosts()] == ["cafè.test", "café.test"]


def test_a_lossy_text_key_is_refused_not_guessed(
    make_store: Callable[..., PersistentStore],
) -> None:
    store = make_store(clock=Clock())
    store.record_seen(CAFE_ACUTE, ["192.0.2.1"])
    store.record_seen(LOSSY, ["192.0.2.9"])  # ignored: which name would it be?
    store.record_seen("ascii.test", ["192.0.2.3"])  # an ASCII str is its own bytes
    store.flush()
    assert store.addresses(LOSSY) == []
    assert ips(store.addresses(CAFE_ACUTE)) == ["192.0.2.1"]
    assert store.addresses(b"ascii.test") == store.addresses("ascii.test")
    assert ips(store.addresses(b"ascii.test")) == ["192.0.2.3"]
    assert [h for h, _ in store.hosts()] == [b"ascii.test", CAFE_ACUTE]


@pytest.mark.parametrize(
    "host",
    [b"", b"a\x00b.test", b"bell\x07.test", b"del\x7f.test", b"x" * 254, bytearray(b"a.test")],
)
def test_keys_that_cannot_be_names(host: bytes) -> None:
    assert clean_host(host) is None


def test_display_escapes_what_a_terminal_would_act_on() -> None:
    assert display_host(b"plain.test") == "plain.test"
    assert display_host(CAFE_ACUTE) == "café.test"
    assert display_host(b"caf\xe9.test") == "caf\\xe9.test"  # not UTF-8
    assert display_host(b"caf\\xe9.test") == "caf\\\\xe9.test"  # a real backslash
    assert display_host("a\u202eb".encode()) == "a\\U0000202eb"  # a bidi override


# --- properties over arbitrary byte names ---

NAME_BYTES = st.integers(min_value=0x20, max_value=0xFF).filter(lambda b: b != 0x7F)
NAMES = st.lists(NAME_BYTES, min_size=1, max_size=40).map(bytes)
NEAR = st.sampled_from([CAFE_ACUTE, CAFE_GRAVE, CAFE_CEDILLA, b"caf\xe9.test", b"CAFE.test"])


@given(a=st.binary(max_size=40), b=st.binary(max_size=40))
def test_display_never_makes_two_keys_look_alike(a: bytes, b: bytes) -> None:
    if a != b:
        assert display_host(a) != display_host(b)


@given(name=NAMES)
def test_every_plausible_name_is_its_own_key(name: bytes) -> None:
    assert clean_host(name) == name


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


_runs = iter(range(10**9))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    names=st.lists(st.one_of(NAMES, NEAR), min_size=2, max_size=6, unique=True),
    where=st.sampled_from(["file", "memory", "queued"]),
)
def test_distinct_byte_names_never_share_anything(
    directory: Path, names: list[bytes], where: str
) -> None:
    """Each name gets its own address; every other name, and one never recorded, sees
    only its own (file rows, rows kept in memory, and rows still in the writer's queue)."""
    run = next(_runs)
    if where == "memory":
        (directory / f"blocker{run}").write_text("")
        path = directory / f"blocker{run}" / "dns.sqlite3"  # ENOTDIR: memory mode
    else:
        path = directory / f"dns{run}.sqlite3"
    store = PersistentStore(str(path), clock=Clock(), flush_interval=60.0)
    try:
        own = {name: f"2001:db8::{i + 1:x}" for i, name in enumerate(names[:-1])}
        never = names[-1]
        for name, ip in own.items():
            store.record_seen(name, [ip])
        if where != "queued":
            store.flush()
        reader = store if where != "file" else PersistentStore(str(path), clock=Clock())
        try:
            if where == "queued":
                store.flush()  # the queue is coalesced per (host, ip): written apart
            for name, ip in own.items():
                assert ips(reader.addresses(name)) == [ip], name
            assert reader.addresses(never) == []
            hosts = reader.hosts()
            assert {h: ips(rows) for h, rows in hosts} == {h: [ip] for h, ip in own.items()}
            assert len({display for display, _ in reader.all_hosts()}) == len(own)
        finally:
            if reader is not store:
                reader.close()
        assert store.degraded == (where == "memory")
    finally:
        store.close()


# --- version 1 files ---

V1_SCHEMA = [
    "CREATE TABLE schema_version (version INTEGER NOT NULL PRIMARY KEY, "
    "applied REAL NOT NULL, note TEXT NOT NULL)",
    *sqlfile.MIGRATIONS[0][2],
    "INSERT INTO schema_version VALUES (1, 1700000000.0, 'addresses: ...')",
]


def test_a_version_1_file_keeps_its_exact_rows_and_drops_the_lossy_ones(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    path = tmp_path / "dns.sqlite3"
    with closing(sqlite3.connect(str(path))) as conn, conn:
        for statement in V1_SCHEMA:
            conn.execute(statement)
        conn.executemany(
            "INSERT INTO addresses VALUES (?, ?, ?, ?)",
            [
                ("ok.test", "192.0.2.1", T0, T0),
                ("ok.test", "192.0.2.2", T0 - 10, None),
                (LOSSY, "192.0.2.3", T0, None),  # café or cafè? nobody can tell: dropped
                ("naïve.test", "192.0.2.4", T0, None),  # not from us (not ASCII): dropped
            ],
        )
    store = make_store(path, clock=Clock(T0 + 1))
    assert ips(store.addresses(b"ok.test")) == ["192.0.2.1", "192.0.2.2"]
    assert [h for h, _ in store.hosts()] == [b"ok.test"]
    assert store.addresses(CAFE_ACUTE) == store.addresses(CAFE_GRAVE) == []
    history = raw(path, "SELECT version, applied FROM schema_version ORDER BY version")
    assert history == [(1, 1700000000.0), (2, T0 + 1)]
    assert raw(path, "SELECT typeof(host), count(*) FROM addresses GROUP BY 1") == [("blob", 2)]
    assert SCHEMA_VERSION == 2


def test_a_file_from_a_newer_dnscache_is_left_alone(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    """And an older dnscache meeting a version 2 file does the same: memory, one warning."""
    path = tmp_path / "dns.sqlite3"
    make_store(path).addresses("a.test")
    raw(path, "INSERT INTO schema_version VALUES (3, 0, 'from the future')")
    store = make_store(path)
    store.record_seen(CAFE_ACUTE, ["192.0.2.1"])
    store.flush()
    assert ips(store.addresses(CAFE_ACUTE)) == ["192.0.2.1"]  # in memory
    assert store.degraded
