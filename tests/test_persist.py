"""The persistent address table: real sqlite files, real processes, real failures.

Root ignores permission bits, and these tests run as root, so an "unwritable
location" is made in ways that bind root too: a path whose parent is a regular
file (ENOTDIR), and, where ``unshare -m`` works, a read-only bind mount
(EROFS). A full disk is simulated with ``PRAGMA max_page_count`` (the
``_max_page_count`` test hook) and, where ``unshare -m`` works, for real with
a tiny tmpfs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import netns
from dnscache._sources.persist import (
    DEFAULT_MAX_AGE,
    SCHEMA_VERSION,
    PersistentStore,
    Seen,
    default_path,
    sqlfile,
    writer,
)
from persisting import T0, Clock, ips, raw, stores, warnings_of, writer_threads


@pytest.fixture(autouse=True)
def no_leaked_writer() -> Iterator[None]:
    yield
    assert writer_threads() == [], "a test left a dnscache-persist thread running"


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., PersistentStore]]:
    yield from stores(tmp_path)


# --- where the file lives ---


def test_default_path() -> None:
    home = {"HOME": "/home/u"}
    assert default_path(home) == "/home/u/.cache/dnscache/dns.sqlite3"
    assert default_path({**home, "XDG_CACHE_HOME": "/x/c"}) == "/x/c/dnscache/dns.sqlite3"
    assert default_path({**home, "XDG_CACHE_HOME": ""}) == "/home/u/.cache/dnscache/dns.sqlite3"
    # XDG: a relative path is invalid and ignored
    assert default_path({**home, "XDG_CACHE_HOME": "rel"}) == "/home/u/.cache/dnscache/dns.sqlite3"
    assert DEFAULT_MAX_AGE == 30 * 86400


# --- the store ---


def test_round_trip_with_injected_clock(make_store: Callable[..., PersistentStore]) -> None:
    clock = Clock()
    store = make_store(clock=clock)
    store.record_seen("example.com", ["192.0.2.1", "2001:DB8:0::1", "not an ip"])
    clock.now += 10
    store.record_seen("example.com", "192.0.2.2")  # a bare string is one address
    clock.now += 10
    store.record_connected("example.com", "192.0.2.1")
    store.record_seen("other.test", ["192.0.2.9"])
    store.flush()
    assert store.addresses("example.com") == [
        Seen("192.0.2.1", T0 + 20, T0 + 20),
        Seen("192.0.2.2", T0 + 10, None),
        Seen("2001:db8::1", T0, None),  # canonical text
    ]
    assert store.addresses("missing.test") == []
    assert [host for host, _ in store.all_hosts()] == ["example.com", "other.test"]
    assert not store.degraded

    other = make_store(clock=clock)  # a second store on the same file sees it all
    assert other.addresses("example.com") == store.addresses("example.com")


def test_times_only_move_forward(make_store: Callable[..., PersistentStore]) -> None:
    clock = Clock()
    store = make_store(clock=clock)
    store.record_connected("h.test", "192.0.2.1")
    store.flush()
    clock.now = T0 - 100  # the wall clock stepped back
    store.record_seen("h.test", ["192.0.2.1"])
    store.flush()
    assert store.addresses("h.test") == [Seen("192.0.2.1", T0, T0)]
    # and within one batch (the queue coalesces)
    clock.now = T0 + 5
    store.record_seen("h.test", ["192.0.2.1"])
    clock.now = T0 + 1
    store.record_connected("h.test", "192.0.2.1")
    store.flush()
    assert store.addresses("h.test") == [Seen("192.0.2.1", T0 + 5, T0 + 1)]


def test_old_rows_are_not_returned_and_prune_at_the_boundary(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    clock = Clock()
    store = make_store(clock=clock, max_age=100.0)
    store.record_seen("old.test", ["192.0.2.1"])
    clock.now = T0 + 50
    store.record_seen("new.test", ["192.0.2.2"])
    store.flush()
    clock.now = T0 + 100  # old.test is exactly max_age old: dead
    assert store.addresses("old.test") == []
    assert ips(store.addresses("new.test")) == ["192.0.2.2"]
    assert [h for h, _ in store.all_hosts()] == ["new.test"]
    assert len(raw(tmp_path / "dns.sqlite3", "SELECT * FROM addresses")) == 2  # still on disk

    assert store.prune(now=T0 + 99.5) == 0
    assert store.prune(now=T0 + 100) == 1
    assert raw(tmp_path / "dns.sqlite3", "SELECT host FROM addresses") == [(b"new.test",)]
    assert store.prune() == 0  # now from the clock: T0 + 100, new.test is 50 s old
    clock.now = T0 + 150
    assert store.prune() == 1
    assert raw(tmp_path / "dns.sqlite3", "SELECT host FROM addresses") == []


def test_prune_removes_rows_from_the_future(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    clock = Clock(T0 + 1000)  # recorded under a clock that ran ahead
    store = make_store(clock=clock, max_age=100.0)
    store.record_seen("ahead.test", ["192.0.2.1"])
    store.flush()
    clock.now = T0  # corrected
    assert store.addresses("ahead.test") == []
    assert store.prune() == 1


def test_first_write_prunes_what_other_processes_left(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    clock = Clock()
    first = make_store(clock=clock, max_age=100.0)
    first.record_seen("stale.test", ["192.0.2.1"])
    first.close()
    clock.now = T0 + 1000
    second = make_store(clock=clock, max_age=100.0)
    second.record_seen("fresh.test", ["192.0.2.2"])
    second.flush()
    assert raw(tmp_path / "dns.sqlite3", "SELECT host FROM addresses") == [(b"fresh.test",)]


def test_clear(make_store: Callable[..., PersistentStore], tmp_path: Path) -> None:
    store = make_store(flush_interval=60.0)
    store.record_seen("a.test", ["192.0.2.1"])
    store.flush()
    store.record_seen("b.test", ["192.0.2.2"])  # still queued
    store.clear()
    store.flush()
    assert store.all_hosts() == []
    assert raw(tmp_path / "dns.sqlite3", "SELECT * FROM addresses") == []
    store.record_seen("c.test", ["192.0.2.3"])
    store.flush()
    assert [h for h, _ in store.all_hosts()] == ["c.test"]


def test_rows_read_back_are_validated(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    path = tmp_path / "dns.sqlite3"
    seed = make_store(path, clock=Clock())
    seed.record_seen("ok.test", ["192.0.2.1"])
    seed.close()
    junk = [
        ("ok.test", "not-an-ip", T0, None),
        ("ok.test", "192.0.2.300", T0, None),
        ("ok.test", b"\xc0\x00\x02\x04", T0, None),  # a blob
        ("ok.test", "192.0.2.2", "yesterday", None),
        ("ok.test", "192.0.2.3", T0, "never"),
        ("ok.test", "0:0::0:1", T0, None),  # valid, not canonical
        ("x" * 250 + ".test", "192.0.2.5", T0, None),  # longer than 253
        ("evil\x1b[31m.test", "192.0.2.6", T0, None),  # control characters
        # issue 11 item 9: not a unicast, scope-less address
        ("ok.test", "fe80::1%nosuchif", T0, None),  # glibc: EAI_NONAME, hiding the rest
        ("ok.test", "fe80::2%1", T0, None),
        ("ok.test", "0.0.0.0", T0, None),
        ("ok.test", "0.1.2.3", T0, None),  # "this network" (RFC 1122)
        ("ok.test", "::", T0, None),
        ("ok.test", "255.255.255.255", T0, None),
        ("ok.test", "224.0.0.1", T0, None),
        ("ok.test", "ff02::1", T0, None),
        ("ok.test", "::ffff:224.0.0.1", T0, None),
        ("ok.test", "::ffff:0.0.0.0", T0, None),
        # ... nor a sane time
        ("ok.test", "192.0.2.20", T0, 1e300),  # would sort first for ever
        ("ok.test", "192.0.2.21", 1e300, None),
        ("ok.test", "192.0.2.22", T0, 900_000_000.0),  # 1998: before dnscache, before 2000
        ("ok.test", "192.0.2.23", T0, -1.0),
        ("ok.test", "192.0.2.25", T0, float("inf")),
    ]
    with contextlib.closing(sqlite3.connect(str(path))) as conn, conn:
        conn.executemany(
            "INSERT INTO addresses VALUES (?, ?, ?, ?)", [(h.encode(), *row) for h, *row in junk]
        )
        # A host as text, not bytes: nothing we write (and it matches no key).
        conn.execute("INSERT INTO addresses VALUES ('ok.test', '192.0.2.40', ?, NULL)", (T0,))
        # A last_connected after last_seen is something we never write: capped.
        conn.execute(
            "INSERT INTO addresses VALUES (?, '192.0.2.30', ?, ?)", (b"ok.test", T0, T0 + 1)
        )
    store = make_store(path, clock=Clock(T0 + 1))
    assert sorted(ips(store.addresses("ok.test"))) == ["192.0.2.1", "192.0.2.30", "::1"]
    assert Seen("192.0.2.30", T0, T0) in store.addresses("ok.test")
    assert store.addresses("x" * 250 + ".test") == []
    assert [h for h, _ in store.all_hosts()] == ["ok.test"]
    assert [h for h, _ in store.hosts()] == [b"ok.test"]
    assert "192.0.2.40" not in ips(store.hosts()[0][1])


def test_bad_input_is_ignored(make_store: Callable[..., PersistentStore], tmp_path: Path) -> None:
    store = make_store()
    store.record_seen("x" * 254, ["192.0.2.1"])  # > 253 characters
    store.record_seen("a" * 253 + ".", ["192.0.2.1"])  # 253 plus the root dot: fine
    store.record_seen("", ["192.0.2.1"])
    store.record_seen("bell\a.test", ["192.0.2.1"])
    store.record_connected("c.test", "300.0.0.1")
    store.flush()
    assert [h for h, _ in store.all_hosts()] == ["a" * 253 + "."]


def test_no_exception_ever_reaches_the_caller(
    make_store: Callable[..., PersistentStore], caplog: pytest.LogCaptureFixture
) -> None:
    def broken_clock() -> float:
        raise RuntimeError("clock on fire")

    store = make_store(clock=broken_clock)
    store.record_seen("a.test", ["192.0.2.1"])
    store.record_seen("a.test", ["192.0.2.1"])
    store.record_seen("a.test", None)  # type: ignore[arg-type]
    assert store.addresses("a.test") == []
    assert store.addresses(None) == []  # type: ignore[arg-type]
    assert store.prune() == 0
    assert any("clock on fire" in w for w in warnings_of(caplog))
    assert len([w for w in warnings_of(caplog) if "record_seen" in w]) == 1  # once per kind


# --- files: modes, schema, corruption, unusable locations, full disks ---


@pytest.mark.parametrize("umask", [0o022, 0o277, 0o000])
def test_private_modes(
    make_store: Callable[..., PersistentStore], tmp_path: Path, umask: int
) -> None:
    before = tmp_path.stat().st_mode & 0o777
    path = tmp_path / "a" / "b" / "dns.sqlite3"
    old = os.umask(umask)
    try:
        store = make_store(path)
        store.record_seen("a.test", ["192.0.2.1"])
        store.flush()
        assert ips(store.addresses("a.test")) == ["192.0.2.1"]
        assert path.stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "a").stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o700
        for sidecar in ("-wal", "-shm"):  # exist while the store is open
            assert Path(f"{path}{sidecar}").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
    assert tmp_path.stat().st_mode & 0o777 == before  # an existing directory is not ours


def test_schema_version_history(make_store: Callable[..., PersistentStore], tmp_path: Path) -> None:
    path = tmp_path / "dns.sqlite3"
    make_store(path, clock=Clock()).addresses("a.test")
    make_store(path, clock=Clock(T0 + 5)).addresses("a.test")  # a second start adds nothing
    rows = raw(path, "SELECT version, applied, note FROM schema_version")
    assert [row[:2] for row in rows] == [(1, T0), (2, T0)]
    assert "addresses" in rows[0][2]
    assert "bytes" in rows[1][2]
    columns = [r[1:3] for r in raw(path, "PRAGMA table_info(addresses)")]
    assert columns == [
        ("host", "BLOB"),
        ("ip", "TEXT"),
        ("last_seen", "REAL"),
        ("last_connected", "REAL"),
    ]
    assert raw(path, "PRAGMA journal_mode") == [("wal",)]


def test_migrations_are_listed_in_order() -> None:
    versions = [step[0] for step in sqlfile.MIGRATIONS]
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def _fingerprint(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


@pytest.mark.parametrize("kind", ["future-version", "foreign-tables"])
def test_file_we_must_not_modify_degrades_and_stays_untouched(
    make_store: Callable[..., PersistentStore],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    path = tmp_path / "dns.sqlite3"
    if kind == "future-version":
        make_store(path).addresses("a.test")
        make_store(path).close()
        raw(path, "INSERT INTO schema_version VALUES (99, 0, 'from the future')")
    else:
        raw(path, "CREATE TABLE addresses (something_else TEXT)")
    before = _fingerprint(path)
    time.sleep(0.01)  # so a write would show in the mtime
    caplog.clear()

    store = make_store(path)
    store.record_seen("a.test", ["192.0.2.1"])
    store.flush()
    assert store.degraded
    assert ips(store.addresses("a.test")) == ["192.0.2.1"]  # in memory
    assert [h for h, _ in store.all_hosts()] == ["a.test"]
    store.record_connected("a.test", "192.0.2.1")
    assert store.addresses("a.test")[0].last_connected is not None
    assert store.prune() == 0
    store.close()
    assert _fingerprint(path) == before
    [warning] = warnings_of(caplog)
    assert str(path) in warning


def _corrupt_random(path: Path) -> None:
    # sqlite's header, then garbage: a damaged database (ours to repair).
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(8176))


def test_a_file_that_is_not_a_database_is_never_touched(
    make_store: Callable[..., PersistentStore], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A wrong path (say PYTHONDNSCACHE_PERSIST=/etc/passwd, as root) must not move or
    # modify somebody else's file: degrade to memory with one warning instead.
    path = tmp_path / "passwd"
    original = b"root:x:0:0:root:/root:/bin/bash\n"
    path.write_bytes(original)
    caplog.set_level(logging.WARNING, logger="dnscache")
    store = make_store(path)
    store.record_seen("a.test", ["192.0.2.1"])
    store.flush()
    assert [row.ip for row in store.addresses("a.test")] == ["192.0.2.1"]
    assert store.degraded
    store.close()
    assert path.read_bytes() == original
    assert list(tmp_path.glob("*.corrupt-*")) == []
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def _corrupt_pages(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for page in range(4, len(data) // 4096 + 1):  # b-tree page headers: "malformed"
        data[(page - 1) * 4096 : (page - 1) * 4096 + 8] = b"\x07" * 8
    path.write_bytes(bytes(data))


def _corrupt_page_count(path: Path) -> None:
    data = bytearray(path.read_bytes())  # readable, but quick_check finds unused pages
    (pages,) = struct.unpack(">I", data[28:32])
    data[28:32] = struct.pack(">I", pages + 3)
    path.write_bytes(bytes(data) + bytes(3 * 4096))


@pytest.mark.parametrize("corrupt", [_corrupt_random, _corrupt_pages, _corrupt_page_count])
def test_corrupt_file_is_moved_aside(
    make_store: Callable[..., PersistentStore],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    corrupt: Callable[[Path], None],
) -> None:
    path = tmp_path / "dns.sqlite3"
    seed = make_store(path)
    for i in range(300):  # a few pages
        seed.record_seen(f"host{i}.example.com", ["192.0.2.1", "192.0.2.2"])
    seed.close()
    corrupt(path)
    damaged = path.read_bytes()
    caplog.clear()

    clock = Clock(T0)
    store = make_store(path, clock=clock)
    assert store.addresses("host1.example.com") == []
    store.record_seen("after.test", ["192.0.2.3"])
    store.flush()
    assert ips(store.addresses("after.test")) == ["192.0.2.3"]
    assert not store.degraded

    aside = tmp_path / "dns.sqlite3.corrupt-20270115T080000Z"  # T0 in UTC
    assert aside.read_bytes() == damaged
    assert aside.stat().st_mode & 0o777 == 0o600
    assert raw(path, "PRAGMA integrity_check") == [("ok",)]
    [warning] = warnings_of(caplog)
    assert "corrupt" in warning and str(aside) in warning


def test_stale_wal_of_a_corrupt_file_is_moved_aside_too(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    # A -wal left next to a corrupt file holds frames of the old database: the new file
    # must not inherit them (sqlite checkpoints or discards it, or we move it aside).
    path = tmp_path / "dns.sqlite3"
    seed = make_store(path, clock=Clock())
    seed.record_seen("old.test", ["192.0.2.1"])
    seed.close()
    with contextlib.closing(sqlite3.connect(str(path))) as conn:
        conn.execute("PRAGMA wal_autocheckpoint=0")
        with conn:
            conn.execute(
                "INSERT INTO addresses VALUES (?, '192.0.2.2', ?, NULL)", (b"old2.test", T0)
            )
        wal = Path(f"{path}-wal").read_bytes()  # frames not yet in the main file
    assert len(wal) > 32
    _corrupt_random(path)
    Path(f"{path}-wal").write_bytes(wal)

    store = make_store(path, clock=Clock())
    assert store.all_hosts() == []
    store.record_seen("new.test", ["192.0.2.3"])
    store.flush()
    assert [h for h, _ in store.all_hosts()] == ["new.test"]
    assert len(list(tmp_path.glob("dns.sqlite3.corrupt-*[0-9]Z"))) == 1
    assert raw(path, "PRAGMA integrity_check") == [("ok",)]


def test_second_corruption_gets_its_own_name(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    path = tmp_path / "dns.sqlite3"
    for _ in range(2):
        _corrupt_random(path)
        store = make_store(path, clock=Clock(T0))
        store.addresses("a.test")
        store.close()
    assert sorted(p.name for p in tmp_path.glob("*.corrupt-*")) == [
        "dns.sqlite3.corrupt-20270115T080000Z",
        "dns.sqlite3.corrupt-20270115T080000Z-1",
    ]


def test_unusable_location_degrades_to_memory(
    make_store: Callable[..., PersistentStore], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Root ignores mode bits; nobody can create a directory inside a regular file (ENOTDIR).
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "dnscache" / "dns.sqlite3"
    clock = Clock()
    store = make_store(path, clock=clock)
    store.record_seen("a.test", ["192.0.2.1", "192.0.2.2"])
    store.flush()
    assert store.degraded
    clock.now = T0 + 1
    store.record_connected("a.test", "192.0.2.2")  # straight to memory now
    assert store.addresses("a.test") == [
        Seen("192.0.2.2", T0 + 1, T0 + 1),
        Seen("192.0.2.1", T0, None),
    ]
    assert [h for h, _ in store.all_hosts()] == ["a.test"]
    clock.now += DEFAULT_MAX_AGE
    assert store.addresses("a.test") == []
    assert store.prune() == 2
    store.record_seen("b.test", ["192.0.2.3"])
    store.clear()
    assert store.all_hosts() == []
    [warning] = warnings_of(caplog)
    assert "Not a directory" in warning and "memory" in warning


def test_full_disk_keeps_running(
    make_store: Callable[..., PersistentStore], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(_max_page_count=8)  # 32 KiB at most
    store.record_seen("early.test", ["192.0.2.1"])
    store.flush()
    for i in range(2000):
        store.record_seen(f"host{i}.example.com", ["192.0.2.2", "2001:db8::2"])
    store.flush()
    store.record_seen("late.test", ["192.0.2.3"])
    store.flush()
    assert not store.degraded  # the file still serves what it has
    assert ips(store.addresses("early.test")) == ["192.0.2.1"]
    assert ips(store.addresses("late.test")) == ["192.0.2.3"]  # from memory
    assert ips(store.addresses("host1999.example.com")) == ["192.0.2.2", "2001:db8::2"]
    [warning] = warnings_of(caplog)
    assert "full" in warning


# --- threads, processes, fork ---


def test_close_flushes_joins_and_is_idempotent(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    store = make_store(flush_interval=60.0)
    store.record_seen("a.test", ["192.0.2.1"])
    assert len(writer_threads()) == 1
    started = time.monotonic()
    store.close()
    assert time.monotonic() - started < 1.0  # does not sit out the batching window
    assert writer_threads() == []
    assert raw(tmp_path / "dns.sqlite3", "SELECT host, ip FROM addresses") == [
        (b"a.test", "192.0.2.1")
    ]
    store.close()
    store.record_seen("b.test", ["192.0.2.2"])  # harmless after close, and no new thread
    store.flush()
    assert writer_threads() == []
    assert len(raw(tmp_path / "dns.sqlite3", "SELECT * FROM addresses")) == 1


def test_flush_makes_rows_visible_to_another_store(
    make_store: Callable[..., PersistentStore],
) -> None:
    writer = make_store(flush_interval=60.0)
    reader = make_store()
    writer.record_seen("a.test", ["192.0.2.1"])
    assert reader.addresses("a.test") == []
    writer.flush()
    assert ips(reader.addresses("a.test")) == ["192.0.2.1"]


def test_writer_exits_when_idle_and_restarts(
    make_store: Callable[..., PersistentStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "IDLE_EXIT", 0.05)
    store = make_store()
    store.record_seen("a.test", ["192.0.2.1"])
    store.flush()
    deadline = time.monotonic() + 5
    while writer_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer_threads() == []
    store.record_seen("b.test", ["192.0.2.2"])
    store.flush()
    assert [h for h, _ in store.all_hosts()] == ["a.test", "b.test"]


def test_queue_is_bounded_and_drops_the_oldest(
    make_store: Callable[..., PersistentStore],
) -> None:
    store = make_store(flush_interval=60.0, _max_pending=5)
    for i in range(8):
        store.record_seen(f"h{i}.test", ["192.0.2.1"])
    store.record_seen("h7.test", ["192.0.2.1"])  # already queued: coalesced, not dropped
    assert store.dropped == 3
    store.flush()
    assert [h for h, _ in store.all_hosts()] == [f"h{i}.test" for i in range(3, 8)]


def test_many_threads(make_store: Callable[..., PersistentStore]) -> None:
    store = make_store(flush_interval=0.01)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                store.record_seen(f"t{n}-{i}.test", [f"10.{n}.{i}.1"])
                store.addresses(f"t{n}-{i // 2}.test")
        except BaseException as exc:  # pragma: no cover - the assertion reports it
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.flush()
    assert errors == []
    assert len(store.all_hosts()) == 8 * 50


CHILD = r"""
import os, sys, time
from dnscache._sources.persist import PersistentStore
path, p, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 30
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.002)
store = PersistentStore(path, flush_interval=0.005)
for i in range(200):
    store.record_seen(f"h{i}.p{p}.test", [f"10.{p}.{i}.1", f"2001:db8:{p}::{i + 1:x}"])
    if i % 40 == 39:
        time.sleep(0.01)  # several batches, interleaved with the other processes' ones
store.record_seen("shared.test", [f"192.0.2.{p + 1}"])
store.record_connected("shared.test", "192.0.2.100")
store.close()
sys.exit(3 if store.degraded else 0)
"""


def test_eight_processes_share_one_file(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    path = tmp_path / "dns.sqlite3"
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(p), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(8)
    ]
    go.touch()
    reader = make_store(path)
    while any(child.poll() is None for child in children):
        reader.addresses("shared.test")  # reads alongside the writers
        time.sleep(0.005)
    for child in children:
        _, err = child.communicate(timeout=30)
        assert (child.returncode, err) == (0, ""), err  # a warning would show on stderr
    expected = {
        (f"h{i}.p{p}.test", ip)
        for p in range(8)
        for i in range(200)
        for ip in (f"10.{p}.{i}.1", str(ipaddress.ip_address(f"2001:db8:{p}::{i + 1:x}")))
    }
    expected |= {("shared.test", f"192.0.2.{p + 1}") for p in range(8)}
    expected.add(("shared.test", "192.0.2.100"))
    assert len(expected) == 8 * 200 * 2 + 9
    assert raw(path, "PRAGMA integrity_check") == [("ok",)]
    stored = raw(path, "SELECT host, ip FROM addresses")
    assert {(host.decode("ascii"), ip) for host, ip in stored} == expected
    assert raw(path, "SELECT count(*) FROM schema_version") == [(SCHEMA_VERSION,)]
    assert ips(reader.addresses("shared.test"))[0] == "192.0.2.100"  # the connected one


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # 3.12+: fork with threads
@pytest.mark.parametrize("explicit_reset", [True, False])
def test_fork_child_gets_its_own_writer(
    make_store: Callable[..., PersistentStore], tmp_path: Path, explicit_reset: bool
) -> None:
    path = tmp_path / "dns.sqlite3"
    store = make_store(path, flush_interval=60.0)
    store.record_seen("parent.test", ["192.0.2.1"])
    store.flush()
    assert ips(store.addresses("parent.test")) == ["192.0.2.1"]  # foreground connection open
    store.record_seen("queued.test", ["192.0.2.9"])  # inherited queue: the parent's to write
    assert len(writer_threads()) == 1

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            if explicit_reset:
                store.reset_after_fork()
            store.record_seen("child.test", ["192.0.2.2"])
            store.flush()
            ok = (
                ips(store.addresses("child.test")) == ["192.0.2.2"]
                and ips(store.addresses("parent.test")) == ["192.0.2.1"]
                and [t.name for t in threading.enumerate()].count("dnscache-persist") == 1
            )
            store.close()
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    store.record_seen("parent2.test", ["192.0.2.3"])  # the parent's store still works
    store.flush()
    assert raw(path, "PRAGMA integrity_check") == [("ok",)]
    assert {h.decode("ascii") for (h,) in raw(path, "SELECT host FROM addresses")} == {
        "parent.test",
        "queued.test",
        "child.test",
        "parent2.test",
    }


# --- real read-only and full file systems, where a private mount namespace is allowed ---

NS_SCRIPT = r"""
import json, logging, os, sys
from dnscache._sources.persist import PersistentStore

class Keep(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []
    def emit(self, record):
        if record.levelno >= logging.WARNING:
            self.messages.append(record.getMessage())

keep = Keep()
logging.getLogger("dnscache").addHandler(keep)
path, mode = sys.argv[1], sys.argv[2]
store = PersistentStore(path)
store.record_seen("first.test", ["192.0.2.1"])
store.flush()
if mode == "full":
    fd = os.open(os.path.join(os.path.dirname(path), "ballast"), os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        pass
    os.close(fd)
    for i in range(2000):
        store.record_seen(f"host{i}.example.com", ["192.0.2.2", "2001:db8::2"])
    store.flush()
result = {
    "degraded": store.degraded,
    "read_only": store.read_only,
    "seeded": [s.ip for s in store.addresses("a.test")],
    "first": [s.ip for s in store.addresses("first.test")],
    "last": [s.ip for s in store.addresses("host1999.example.com")],
    "warnings": keep.messages,
}
store.close()
print(json.dumps(result))
"""


def _in_mount_namespace(setup: str, *args: str) -> dict[str, Any]:
    if shutil.which("unshare") is None:
        netns.unavailable("needs unshare")
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        netns.unavailable("unshare -m is not permitted here")
    shell = ["unshare", "-m", "sh", "-c", f'{setup} && exec "$@"', "sh"]
    done = subprocess.run(
        [*shell, sys.executable, "-c", NS_SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_read_only_file_system_degrades(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    path = ro / "dns.sqlite3"
    seed = make_store(path)
    seed.record_seen("a.test", ["192.0.2.9"])
    seed.close()
    before = _fingerprint(path)
    result = _in_mount_namespace(
        f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro}", str(path), "ro"
    )
    assert result["degraded"] is True and result["read_only"] is True
    assert result["seeded"] == ["192.0.2.9"]  # read from the file
    assert result["first"] == ["192.0.2.1"]  # in memory
    assert len(result["warnings"]) == 1 and "Read-only file system" in result["warnings"][0]
    assert _fingerprint(path) == before


def test_real_full_disk_keeps_running(tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    result = _in_mount_namespace(
        f"mount -t tmpfs -o size=256k,mode=0700 tmpfs {mnt}", str(mnt / "dns.sqlite3"), "full"
    )
    assert result["degraded"] is False
    assert result["first"] == ["192.0.2.1"]
    assert result["last"] == ["192.0.2.2", "2001:db8::2"]
    assert len(result["warnings"]) == 1 and "full" in result["warnings"][0]


def test_the_writer_prunes_at_start_then_at_most_once_a_day(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    path = tmp_path / "dns.sqlite3"
    clock = Clock(T0)
    store = make_store(path, clock=clock, max_age=100.0)

    def hosts_in_file() -> set[str]:
        with contextlib.closing(sqlite3.connect(str(path))) as conn:
            return {row[0].decode("ascii") for row in conn.execute("SELECT host FROM addresses")}

    store.record_seen("old.test", ["192.0.2.1"])
    store.flush()
    clock.now = T0 + 1000.0  # old.test is dead now, but the start-up prune has happened
    store.record_seen("mid.test", ["192.0.2.2"])
    store.flush()
    assert hosts_in_file() == {"old.test", "mid.test"}
    clock.now = T0 + 86400.0 + 1.0  # a day after the first prune: the next batch prunes
    store.record_seen("new.test", ["192.0.2.3"])
    store.flush()
    assert hosts_in_file() == {"new.test"}


def test_first_start_waits_out_another_process_holding_the_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Processes starting together contend for a new file; one that sqlite answers
    # SQLITE_BUSY at once tries again, never falls back to memory for its whole life.
    # A busy timeout of 0 makes every SQLITE_BUSY immediate: only the retry waits.
    monkeypatch.setattr(sqlfile, "WRITER_BUSY_TIMEOUT", 0.0)
    path = tmp_path / "dns.sqlite3"
    path.touch(mode=0o600)
    other = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    try:
        impatient = sqlite3.connect(path, timeout=0)
        with pytest.raises(sqlite3.OperationalError) as locked:
            impatient.execute("PRAGMA journal_mode=WAL")
        impatient.close()
        assert sqlfile.is_busy(locked.value)
        assert not sqlfile.is_busy(sqlite3.OperationalError("no such table: x"))
        release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
        release.start()
        sqlfile.check_and_migrate(str(path), T0)
        release.join(5)
    finally:
        other.close()
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert check.execute("SELECT max(version) FROM schema_version").fetchone() == (
            sqlfile.SCHEMA_VERSION,
        )
    finally:
        check.close()
