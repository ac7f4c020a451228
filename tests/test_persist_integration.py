"""The persistent layer as programs meet it: through the Resolver, against a real DNS server.

``test_persist.py`` checks the sqlite table on its own; here every check goes through
``Resolver`` (or ``patched()``), with the loopback ``DNSServer`` and the dnspython
backend as the upstream, so the wiring is what is tested: ``_fetch`` recording what
it saw, ``connect`` recording what it reached, ``_fallback_entry`` and ``_merged``
reading the file back, and ``stats().persisted_hits``.

An upstream failure is the server answering SERVFAIL, dropping the query or being
stopped; ``resolve_timeout`` is 0.3 s so a caller waits little. The rows a test needs
"from an earlier run" are written with a ``PersistentStore`` whose wall clock is
injected (the Resolver's own store always uses ``time.time``), so their recency is
exact; where the Resolver's monotonic clock matters it is injected too.

Root ignores permission bits, so the unusable location is a path under a regular file
(ENOTDIR), and the full disk is a real 256 KiB tmpfs mounted in a private mount
namespace (``unshare -m``), skipped where that is not permitted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import netns
from dnscache import Resolver
from dnscache._sources.persist import PersistentStore
from dnscache._tools.dnsserver import DNSServer

RESOLVE_TIMEOUT = 0.3
SLACK = 0.5  # scheduling noise on top of a wait we expect
EAI_NODATA = getattr(socket, "EAI_NODATA", socket.EAI_NONAME)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Row = tuple[str, str, float, float | None]  # host, ip, seen seconds ago, connected seconds ago


def seed(path: Path, rows: Sequence[Row]) -> None:
    """Write rows as an earlier run would have, ``ago`` seconds before now (wall clock)."""
    now = time.time()
    clock = Clock(now)
    store = PersistentStore(str(path), clock=clock)
    for host, ip, seen_ago, connected_ago in rows:
        if connected_ago is not None:  # a connect counts as seen too: times only move forward
            clock.now = now - connected_ago
            store.record_connected(host, ip)
        clock.now = now - seen_ago
        store.record_seen(host, [ip])
    store.close()


def table(path: Path) -> dict[tuple[str, str], tuple[float, float | None]]:
    with contextlib.closing(sqlite3.connect(str(path))) as conn:
        rows = conn.execute("SELECT host, ip, last_seen, last_connected FROM addresses")
        return {(host.decode("ascii"), ip): (seen, connected) for host, ip, seen, connected in rows}


def integrity(path: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(str(path))) as conn:
        return conn.execute("PRAGMA integrity_check").fetchall()


def dnscache_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "dnscache" and r.levelno >= logging.WARNING
    ]


def timed_lookup(resolver: Resolver, host: str, family: int = 0) -> tuple[Any, float]:
    """(the IPs, or the gaierror's errno) and how long the call took."""
    started = time.monotonic()
    try:
        got: Any = resolver.lookup(host, family)
    except socket.gaierror as exc:
        got = exc.errno
    return got, time.monotonic() - started


class Listener:
    """A TCP listener on ``host`` that accepts and closes every connection on its own thread."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(512)
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Callable[[str], Listener]]:
    made: list[Listener] = []

    def make(host: str = "127.0.0.1") -> Listener:
        made.append(Listener(host))
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "dns.sqlite3"


@pytest.fixture
def make_resolver(dns_server: DNSServer) -> Iterator[Callable[..., Resolver]]:
    """Resolvers on the loopback server (dnspython backend), closed after the test."""
    made: list[Resolver] = []

    def make(**options: Any) -> Resolver:
        options.setdefault("backend", "dnspython")
        options.setdefault("nameservers", (dns_server.nameserver,))
        options.setdefault("resolve_timeout", RESOLVE_TIMEOUT)
        resolver = Resolver(**options)
        made.append(resolver)
        return resolver

    yield make
    for resolver in made:
        resolver.close()


def fail_upstream(server: DNSServer, how: str, name: str) -> None:
    if how == "servfail":
        server.servfail(name)
    elif how == "drop":
        server.drop(name)
    else:
        assert how == "stopped"
        server.stop()


# --- fallback mode ---


def test_live_answer_is_returned_as_it_is(
    dns_server: DNSServer, make_resolver: Callable[..., Resolver], db: Path
) -> None:
    seed(db, [("svc.test", "127.0.1.1", 10, 10), ("svc.test", "127.0.1.2", 5, None)])
    dns_server.set("svc.test", a=["127.0.0.2"], aaaa=["::1"])
    plain = make_resolver()
    persisting = make_resolver(persist=str(db), preload={"svc.test": ("127.0.2.1",)})

    for family in (socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6):
        for args in (("svc.test", 443), ("svc.test", 443, family, socket.SOCK_STREAM)):
            assert persisting.getaddrinfo(*args) == plain.getaddrinfo(*args), args
    assert persisting.lookup("svc.test") == ["::1", "127.0.0.2"]
    assert persisting.stats().persisted_hits == 0
    persisting.close()  # flushes
    # What the live answer said is now in the file, next to what was there.
    rows = table(db)
    assert set(rows) == {("svc.test", ip) for ip in ("127.0.1.1", "127.0.1.2", "127.0.0.2", "::1")}
    assert rows["svc.test", "127.0.0.2"][1] is None  # seen, never connected


@pytest.mark.parametrize("how", ["servfail", "stopped"])
def test_upstream_failure_answers_from_the_file_in_recency_order(
    dns_server: DNSServer, make_resolver: Callable[..., Resolver], db: Path, how: str
) -> None:
    seed(
        db,
        [
            # Delta Chat's one key, IFNULL(last_connected, last_seen), newest first:
            ("svc.test", "127.0.1.1", 300, 300),  # connected 300 s ago
            ("svc.test", "127.0.1.4", 500, None),  # seen 500 s ago
            ("svc.test", "127.0.1.2", 200, 100),  # connected 100 s ago
            ("svc.test", "127.0.1.3", 50, None),  # seen 50 s ago, never connected: first
            ("svc.test", "2001:db8::3", 60, None),
            ("other.test", "127.0.9.9", 1, 1),  # another host's rows stay out of it
        ],
    )
    dns_server.set("svc.test", a=["127.0.0.2"])
    fail_upstream(dns_server, how, "svc.test")
    preload = {"svc.test": ("127.0.2.1", "127.0.1.3")}  # a repeat is not repeated
    resolver = make_resolver(persist=str(db), preload=preload)

    got, took = timed_lookup(resolver, "svc.test")
    assert got == [
        "127.0.1.3",
        "2001:db8::3",
        "127.0.1.2",
        "127.0.1.1",
        "127.0.1.4",
        "127.0.2.1",
    ]
    assert took < RESOLVE_TIMEOUT + SLACK
    assert timed_lookup(resolver, "svc.test", socket.AF_INET)[0] == [
        "127.0.1.3",
        "127.0.1.2",
        "127.0.1.1",
        "127.0.1.4",
        "127.0.2.1",
    ]
    assert timed_lookup(resolver, "svc.test", socket.AF_INET6)[0] == ["2001:db8::3"]
    stats = resolver.stats()
    assert stats.persisted_hits == 3
    assert stats.stale_hits == 0
    if how == "servfail":  # (a stopped server would make this wait dnspython's 5 s lifetime)
        # A name the file does not know shows the outage as the stdlib would.
        dns_server.servfail("unknown.test")
        assert timed_lookup(resolver, "unknown.test")[0] == socket.EAI_AGAIN


def test_junk_rows_in_the_file_do_not_spoil_the_good_ones(
    dns_server: DNSServer, make_resolver: Callable[..., Resolver], db: Path
) -> None:
    """Issue 11 item 9: a scoped row turned the outage into EAI_NONAME, hiding the rest."""
    seed(db, [("svc.test", "127.0.1.1", 100, 100), ("svc.test", "127.0.1.2", 50, None)])
    now = time.time()
    junk = [
        ("fe80::1%nosuchif", now - 1, now - 1),  # glibc: EAI_NONAME for an unknown scope
        ("224.0.0.1", now - 1, now - 1),
        ("0.0.0.0", now - 1, now - 1),  # Linux connects this to the local host
        ("255.255.255.255", now - 1, None),
        ("127.0.1.3", now - 1, 1e300),  # would be tried first for ever
    ]
    with contextlib.closing(sqlite3.connect(str(db))) as conn, conn:
        conn.executemany(
            "INSERT INTO addresses VALUES (CAST('svc.test' AS BLOB), ?, ?, ?)",
            [(ip, seen, connected) for ip, seen, connected in junk],
        )
    dns_server.servfail("svc.test")
    resolver = make_resolver(persist=str(db))
    assert timed_lookup(resolver, "svc.test")[0] == ["127.0.1.2", "127.0.1.1"]
    assert resolver.stats().persisted_hits == 1


def test_recency_written_by_the_resolver_itself(
    dns_server: DNSServer,
    make_resolver: Callable[..., Resolver],
    db: Path,
    listener: Callable[[str], Listener],
) -> None:
    """Seen and connected times come from lookups and connects of earlier Resolvers."""
    server = listener("127.0.0.3")  # of svc.test's two addresses, only .3 accepts
    dns_server.set("svc.test", a=["127.0.0.2", "127.0.0.3"])
    first = make_resolver(persist=str(db))
    with first.create_connection(("svc.test", server.port), timeout=5) as sock:
        assert sock.getpeername()[0] == "127.0.0.3"
    first.close()
    time.sleep(0.01)  # so that the next answer is seen strictly later
    dns_server.set("svc.test", a=["127.0.0.4"])  # the name moved on
    second = make_resolver(persist=str(db))
    assert second.lookup("svc.test") == ["127.0.0.4"]
    second.close()

    dns_server.servfail("svc.test")
    third = make_resolver(persist=str(db), preload={"svc.test": ("127.0.0.9",)})
    # One key, newest first: .4 seen by the second run, .3 connected to by the first,
    # .2 seen by the first (before its connect), then the preload.
    assert third.lookup("svc.test") == ["127.0.0.4", "127.0.0.3", "127.0.0.2", "127.0.0.9"]
    with third.create_connection(("svc.test", server.port), timeout=5) as sock:
        assert sock.getpeername()[0] == "127.0.0.3"
    assert third.stats().persisted_hits >= 1
    rows = table(db)
    assert rows["svc.test", "127.0.0.3"][1] is not None
    assert rows["svc.test", "127.0.0.2"][1] is None  # refused (or never tried): not connected


@pytest.mark.parametrize("answer", ["nxdomain", "nodata"])
def test_a_negative_answer_is_not_masked_by_the_file(
    dns_server: DNSServer, make_resolver: Callable[..., Resolver], db: Path, answer: str
) -> None:
    """NXDOMAIN (and NODATA) are answers, not failures (RFC 8767 section 4)."""
    seed(db, [("gone.test", "127.0.1.1", 10, 10)])
    if answer == "nxdomain":
        dns_server.nxdomain("gone.test")
        expected = socket.EAI_NONAME
    else:
        dns_server.set("gone.test", aaaa=["::1"])  # the name lives on, without IPv4
        expected = EAI_NODATA
    resolver = make_resolver(persist=str(db), preload={"gone.test": ("127.0.2.1",)})
    for _ in range(2):  # the miss, then the cached negative answer
        assert timed_lookup(resolver, "gone.test", socket.AF_INET)[0] == expected
    assert resolver.stats().persisted_hits == 0


def test_preload_alone_answers_when_the_upstream_fails(
    dns_server: DNSServer, make_resolver: Callable[..., Resolver]
) -> None:
    dns_server.set("live.test", a=["127.0.0.2"])
    preload = {"pre.test": ("127.0.3.1", "::1"), "live.test": ("127.0.3.2",)}
    resolver = make_resolver(preload=preload)  # no persist
    # A live answer wins, alone: fallback mode does not mix preload in.
    assert resolver.lookup("live.test") == ["127.0.0.2"]
    dns_server.servfail("pre.test")
    got, took = timed_lookup(resolver, "pre.test")
    assert got == ["127.0.3.1", "::1"]
    assert took < RESOLVE_TIMEOUT + SLACK
    assert timed_lookup(resolver, "pre.test", socket.AF_INET)[0] == ["127.0.3.1"]
    assert resolver.stats().persisted_hits == 2


def test_rows_older_than_max_age_are_not_used(
    dns_server: DNSServer, make_resolver: Callable[..., Resolver], db: Path
) -> None:
    seed(
        db,
        [
            ("svc.test", "127.0.1.1", 1001, 1001),  # connected, but too long ago
            ("svc.test", "127.0.1.2", 990, None),
            ("old.test", "127.0.1.3", 1200, None),
            ("svc.test", "127.0.1.4", -1100, None),  # from a clock that was 1100 s ahead
        ],
    )
    for name in ("svc.test", "old.test"):
        dns_server.servfail(name)
    resolver = make_resolver(persist=str(db), persist_max_age=1000)
    assert timed_lookup(resolver, "svc.test")[0] == ["127.0.1.2"]
    assert timed_lookup(resolver, "old.test")[0] == socket.EAI_AGAIN
    assert resolver.stats().persisted_hits == 1


def test_upstream_recovery_replaces_the_persisted_answer(
    dns_server: DNSServer, make_resolver: Callable[..., Resolver], db: Path
) -> None:
    seed(db, [("svc.test", "127.0.1.1", 10, 10)])
    dns_server.servfail("svc.test")
    clock = Clock(1000.0)
    resolver = make_resolver(persist=str(db), clock=clock)
    assert resolver.lookup("svc.test") == ["127.0.1.1"]
    dns_server.set("svc.test", a=["127.0.0.2"])
    clock.now += 1.0  # the upstream is not asked again at once (STALE_RETRY) ...
    assert resolver.lookup("svc.test") == ["127.0.1.1"]
    clock.now += 10.0  # ... but soon (in the background: nobody waits on a failing upstream)
    assert resolver.lookup("svc.test") == ["127.0.1.1"]
    deadline = time.monotonic() + 5.0
    while resolver.lookup("svc.test") != ["127.0.0.2"] and time.monotonic() < deadline:
        time.sleep(0.01)  # ... and then its answer replaces the remembered one
    assert resolver.lookup("svc.test") == ["127.0.0.2"]
    assert resolver.stats().persisted_hits >= 3


def test_a_long_running_process_falls_back_to_the_file_once_memory_expired(
    dns_server: DNSServer, make_resolver: Callable[..., Resolver], db: Path
) -> None:
    """Whether the file answers must not depend on whether the sweeper ran.

    A fresh process gets the persisted address; so does this one after
    ``invalidate()`` (what the sweeper does to an expired entry). With the expired
    entry still in memory it must be no different.
    """
    seed(db, [("svc.test", "127.0.0.2", 10, 10)])  # from an earlier run
    dns_server.set("svc.test", a=["127.0.0.2"], ttl=60)
    clock = Clock(1000.0)
    resolver = make_resolver(persist=str(db), clock=clock, stale_ttl=0, cleanup_interval=0)
    assert resolver.lookup("svc.test", socket.AF_INET) == ["127.0.0.2"]
    dns_server.servfail("svc.test")
    clock.now += 3600.0  # the answer (TTL 60, no serve-stale) has long expired
    got, _ = timed_lookup(resolver, "svc.test", socket.AF_INET)
    resolver.invalidate("svc.test")
    swept, _ = timed_lookup(resolver, "svc.test", socket.AF_INET)
    assert swept == ["127.0.0.2"]  # passes today: the file answers a missing entry
    assert got == ["127.0.0.2"], f"expired entry in memory hid the file: {got}"


def test_close_is_prompt_while_a_lookup_hangs(
    dns_server: DNSServer, make_resolver: Callable[..., Resolver], db: Path
) -> None:
    """A dropped query leaves a refresh waiting on the server; close() must not wait for it."""
    seed(db, [("svc.test", "127.0.1.1", 10, 10)])
    dns_server.drop("svc.test")
    resolver = make_resolver(persist=str(db))
    got, took = timed_lookup(resolver, "svc.test")
    assert got == ["127.0.1.1"]
    assert RESOLVE_TIMEOUT - 0.05 < took < RESOLVE_TIMEOUT + SLACK
    started = time.monotonic()
    resolver.close()
    closing = time.monotonic() - started
    # The dnspython backend can interrupt its queries (that is what its close() is for),
    # so nothing needs to wait out JOIN_TIMEOUT (1 s) for the stuck worker.
    assert closing < 0.5, f"close() took {closing:.2f} s"


# --- merge mode ---

LIVE = ("127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14")


def check_merged(got: list[str], persisted: list[str], preload: list[str]) -> None:
    """Delta Chat's order, for a live answer whose own order the server shuffles.

    The first two must be live; then the persisted ones (by recency, without those
    two), then the preload (without repeats), then the rest of the live answer.
    """
    assert len(got) == len(set(got)), got
    first = got[:2]
    assert set(first) <= set(LIVE), got
    middle = [ip for ip in dict.fromkeys([*persisted, *preload]) if ip not in first]
    assert got[2 : 2 + len(middle)] == middle, got
    assert set(got[2 + len(middle) :]) == set(LIVE) - set(first) - set(middle), got


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_UNSPEC])
def test_merge_order(
    dns_server: DNSServer, make_resolver: Callable[..., Resolver], db: Path, family: int
) -> None:
    seed(
        db,
        [
            ("m.test", "127.0.1.1", 300, 300),
            ("m.test", "127.0.1.2", 100, 100),
            ("m.test", "127.0.1.3", 50, None),
            ("m.test", "127.0.0.11", 450, None),  # a live address, persisted long ago
            ("m.test", "2001:db8::5", 20, None),  # only for AF_UNSPEC
            ("m.test", "127.0.1.9", 1100, 1100),  # older than max_age
        ],
    )
    dns_server.set("m.test", a=list(LIVE))
    resolver = make_resolver(
        persist=str(db),
        persist_mode="merge",
        persist_max_age=1000,
        preload={"m.test": ("127.0.2.1", "127.0.1.3")},
    )
    got = resolver.lookup("m.test", family)
    persisted = ["127.0.1.3", "127.0.1.2", "127.0.1.1", "127.0.0.11"]  # by IFNULL(conn, seen)
    if family == socket.AF_UNSPEC:
        persisted.insert(0, "2001:db8::5")
    check_merged(got, persisted, ["127.0.2.1"])
    assert "127.0.1.9" not in got
    assert resolver.stats().persisted_hits == 0  # a live answer, merged


def test_merge_keeps_at_most_ten(
    dns_server: DNSServer, make_resolver: Callable[..., Resolver], db: Path
) -> None:
    persisted = [f"127.0.3.{i}" for i in range(1, 7)]
    seed(db, [("m.test", ip, 10.0 * (i + 1), None) for i, ip in enumerate(persisted)])
    dns_server.set("m.test", a=list(LIVE))
    preload = ("127.0.4.1", "127.0.4.2", "127.0.4.3")
    resolver = make_resolver(persist=str(db), persist_mode="merge", preload={"m.test": preload})
    got = resolver.lookup("m.test", socket.AF_INET)
    assert len(got) == 10, got
    assert set(got[:2]) <= set(LIVE), got
    assert got[2:8] == persisted, got
    assert got[8:] == list(preload[:2]), got  # the third preload and the live rest are cut


@pytest.mark.parametrize("mode", ["merge", "fallback"])
def test_a_failed_lookup_answers_at_most_ten(
    dns_server: DNSServer, make_resolver: Callable[..., Resolver], db: Path, mode: str
) -> None:
    """Issue 11 item 14: persisted + preload came back uncapped (12 seen)."""
    persisted = [f"127.0.3.{i}" for i in range(1, 9)]
    seed(db, [("m.test", ip, 10.0 * (i + 1), None) for i, ip in enumerate(persisted)])
    dns_server.servfail("m.test")
    preload = ("127.0.4.1", "127.0.4.2", "127.0.4.3", "127.0.4.4")
    resolver = make_resolver(persist=str(db), persist_mode=mode, preload={"m.test": preload})
    got = resolver.lookup("m.test", socket.AF_INET)
    assert got == [*persisted, *preload[:2]]


# --- files that cannot be used: keep resolving, warn once, never raise ---


def test_corrupt_file_is_replaced_and_resolving_goes_on(
    dns_server: DNSServer,
    make_resolver: Callable[..., Resolver],
    db: Path,
    listener: Callable[[str], Listener],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="dnscache")
    db.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16)
    server = listener("127.0.0.1")
    dns_server.set("svc.test", a=["127.0.0.1"])
    for i in range(5):
        dns_server.set(f"h{i}.test", a=[f"127.0.5.{i + 1}"])
    resolver = make_resolver(persist=str(db))
    with resolver.create_connection(("svc.test", server.port), timeout=5) as sock:
        assert sock.getpeername()[0] == "127.0.0.1"
    for i in range(5):
        assert resolver.lookup(f"h{i}.test") == [f"127.0.5.{i + 1}"]
    resolver.close()

    warnings = dnscache_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "corrupt" in warnings[0]
    aside = [p for p in db.parent.iterdir() if p.name.startswith("dns.sqlite3.corrupt-")]
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"SQLite format 3\x00")  # kept for examination
    # The new file works: it has this run's rows, and the next run is served from it.
    assert integrity(db) == [("ok",)]
    assert table(db)["svc.test", "127.0.0.1"][1] is not None
    dns_server.servfail("svc.test")
    after = make_resolver(persist=str(db))
    assert after.lookup("svc.test") == ["127.0.0.1"]
    assert len(dnscache_warnings(caplog)) == 1


def test_a_planted_row_in_someone_elses_file_is_never_served(
    dns_server: DNSServer,
    make_resolver: Callable[..., Resolver],
    db: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another user's world-writable database at our path: refused, never read."""
    if os.geteuid() != 0:
        netns.unavailable("needs root to give the file to another user")
    seed(db, [("bank.test", "6.6.6.6", 10, 10)])
    db.chmod(0o666)
    os.chown(db, 65534, 65534)
    before = db.read_bytes(), db.stat().st_mtime_ns
    caplog.set_level(logging.WARNING, logger="dnscache")
    dns_server.servfail("bank.test")
    resolver = make_resolver(persist=str(db))
    assert timed_lookup(resolver, "bank.test")[0] == socket.EAI_AGAIN  # the outage, as it is
    assert resolver.stats().persisted_hits == 0
    resolver.close()
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before
    [warning] = dnscache_warnings(caplog)
    assert "uid 65534" in warning


def test_unusable_location_keeps_resolving_in_memory(
    dns_server: DNSServer,
    make_resolver: Callable[..., Resolver],
    tmp_path: Path,
    listener: Callable[[str], Listener],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="dnscache")
    blocker = tmp_path / "file"
    blocker.write_text("a regular file where a directory should be\n")
    path = blocker / "db.sqlite3"  # ENOTDIR, which binds root too
    server = listener("127.0.0.1")
    dns_server.set("svc.test", a=["127.0.0.1"])
    for i in range(5):
        dns_server.set(f"h{i}.test", a=[f"127.0.5.{i + 1}"])
    resolver = make_resolver(persist=str(path))
    with resolver.create_connection(("svc.test", server.port), timeout=5) as sock:
        assert sock.getpeername()[0] == "127.0.0.1"
    for i in range(5):
        assert resolver.lookup(f"h{i}.test") == [f"127.0.5.{i + 1}"]
    # The rows live in memory for this process: forgotten answers still bridge an outage.
    resolver.invalidate()
    dns_server.servfail("svc.test")
    assert resolver.lookup("svc.test") == ["127.0.0.1"]
    assert resolver.stats().persisted_hits == 1
    resolver.close()
    assert resolver.lookup("h0.test") == ["127.0.5.1"]  # closed, still answering

    warnings = dnscache_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "Not a directory" in warnings[0]
    assert blocker.read_text() == "a regular file where a directory should be\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


FULL_DISK = textwrap.dedent(
    """\
    import json, logging, os, socket, sys, threading

    from dnscache import Resolver
    from dnscache._tools.dnsserver import DNSServer
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
    directory = os.path.dirname(path)
    HOSTS = 60
    out = {"errors": []}

    def fill_the_disk():
        fd = os.open(os.path.join(directory, "ballast"), os.O_WRONLY | os.O_CREAT, 0o600)
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"x" * size)
            except OSError:
                pass
        os.close(fd)

    def fresh_program_during_an_outage(server, options):
        del keep.messages[:]
        server.servfail("first.test")
        fresh = Resolver(**options)
        try:
            out["fresh_first"] = fresh.lookup("first.test")
        except Exception as exc:
            out["fresh_first"] = repr(exc)
        out["fresh_hosts"] = sorted(fresh.lookup("host1.test"))
        out["fresh_persisted_hits"] = fresh.stats().persisted_hits
        fresh.close()
        out["warnings_fresh"] = list(keep.messages)

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepting = threading.Thread(target=lambda: listener.accept()[0].close(), daemon=True)
    accepting.start()

    # An earlier run left this row (and closed the file cleanly).
    seed = PersistentStore(path)
    seed.record_connected("first.test", "127.0.0.2")
    seed.close()

    with DNSServer() as server:
        server.set("first.test", a=["127.0.0.2"])
        server.set("conn.test", a=["127.0.0.1"])
        for i in range(HOSTS):
            server.set(f"host{i}.test", a=[f"127.1.{i}.1", f"127.1.{i}.2"])
        options = dict(persist=path, backend="dnspython", nameservers=(server.nameserver,),
                       resolve_timeout=0.3)
        if mode == "running":
            # The disk fills while the program runs ...
            resolver = Resolver(**options)
            try:
                out["first"] = resolver.lookup("first.test")
                fill_the_disk()
                out["hosts_ok"] = all(
                    sorted(resolver.lookup(f"host{i}.test")) == [f"127.1.{i}.1", f"127.1.{i}.2"]
                    for i in range(HOSTS)
                )
                with resolver.create_connection(("conn.test", port), timeout=5) as sock:
                    out["peer"] = sock.getpeername()[0]
                resolver.close()
                out["after_close"] = sorted(resolver.lookup("host0.test", socket.AF_INET))
            except Exception as exc:
                out["errors"].append(repr(exc))
            out["warnings_running"] = list(keep.messages)
            # ... then, the file's sidecars still in place, a fresh program starts.
            fresh_program_during_an_outage(server, options)
        else:
            # The disk filled while no program had the file open; then one starts.
            fill_the_disk()
            fresh_program_during_an_outage(server, options)
    listener.close()
    print(json.dumps(out))
    """
)


def _full_disk(tmp: Path, mode: str) -> dict[str, Any]:
    mnt = tmp / mode
    mnt.mkdir()
    setup = f"mount -t tmpfs -o size=256k,mode=0700 tmpfs {mnt}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")}
    shell = ["unshare", "-m", "sh", "-c", f'{setup} && exec "$@"', "sh"]
    done = subprocess.run(
        [*shell, sys.executable, "-c", FULL_DISK, str(mnt / "dns.sqlite3"), mode],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """FULL_DISK's reports, each run once in a private mount namespace on a 256 KiB tmpfs."""
    if shutil.which("unshare") is None:
        netns.unavailable("needs unshare")
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        netns.unavailable("unshare -m is not permitted here")
    tmp = tmp_path_factory.mktemp("full")
    return {mode: _full_disk(tmp, mode) for mode in ("running", "cold")}


def test_full_disk_keeps_resolving_and_warns_once(full_disk: dict[str, dict[str, Any]]) -> None:
    run = full_disk["running"]
    why = json.dumps(run, indent=1)
    assert run["errors"] == [], why
    assert run["first"] == ["127.0.0.2"], why
    assert run["hosts_ok"] is True, why
    assert run["peer"] == "127.0.0.1", why
    assert run["after_close"] == ["127.1.0.1", "127.1.0.2"], why
    assert len(run["warnings_running"]) == 1, why
    assert "full" in run["warnings_running"][0], why
    # A fresh program on that disk reads what is there, during an outage.
    assert run["fresh_first"] == ["127.0.0.2"], why
    assert run["fresh_persisted_hits"] == 1, why
    assert run["fresh_hosts"] == ["127.1.1.1", "127.1.1.2"], why
    assert len(run["warnings_fresh"]) == 1, why


def test_disk_full_before_start_still_serves_the_rows_on_it(
    full_disk: dict[str, dict[str, Any]],
) -> None:
    """A full disk stops writes; the rows already on it can still be read, and must be.

    Here the disk filled while no program had the file open, so sqlite has no ``-shm``
    to map and cannot open the WAL database normally (SQLITE_IOERR_SHMSIZE), not even
    with ``mode=ro``: the store reads it through an ``immutable=1`` connection.
    """
    cold = full_disk["cold"]
    why = json.dumps(cold, indent=1)
    assert cold["fresh_hosts"] == ["127.1.1.1", "127.1.1.2"], why  # live lookups work
    assert len(cold["warnings_fresh"]) == 1, why
    assert "reading the addresses already in it" in cold["warnings_fresh"][0], why
    assert cold["fresh_first"] == ["127.0.0.2"], why
    assert cold["fresh_persisted_hits"] == 1, why


# --- many processes, one file ---

PROCESSES = 8
HOSTS_PER_PROCESS = 40

CHILD = textwrap.dedent(
    """\
    import json, logging, os, socket, sys, time

    import dnscache

    # dnscache's warnings (a degraded file, a failed write) reach stderr, which the test
    # requires to be empty: a lost row then says why.
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    path, nameserver, proc, hosts, port, go = sys.argv[1:7]
    proc, hosts, port = int(proc), int(hosts), int(port)
    while not os.path.exists(go):
        time.sleep(0.002)
    resolved, peers = {}, {}
    with dnscache.patched(persist=path, backend="dnspython", nameservers=(nameserver,)):
        for i in range(hosts):
            host = f"h{i}-{proc}.test"
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            resolved[host] = sorted({info[4][0] for info in infos})
            with socket.create_connection((host, port), timeout=5) as sock:
                peers[host] = sock.getpeername()[0]
    print(json.dumps({"resolved": resolved, "peers": peers}))
    """
)


def own_address(i: int, proc: int) -> str:
    """Each host's own address: on loopback, but nothing listens there (refused at once)."""
    return f"127.{proc + 1}.{i}.1"


def test_eight_processes_share_one_file(
    dns_server: DNSServer, db: Path, tmp_path: Path, listener: Callable[[str], Listener]
) -> None:
    """Eight programs resolve and connect at once through ``patched(persist=...)``.

    Every name has two addresses: its own, where nothing listens (refused at once),
    and 127.0.0.1, where the listener is. So the file must end up with both rows of
    every name, and ``last_connected`` on the one that accepted only.
    """
    server = listener("127.0.0.1")
    for proc in range(PROCESSES):
        for i in range(HOSTS_PER_PROCESS):
            dns_server.set(f"h{i}-{proc}.test", a=[own_address(i, proc), "127.0.0.1"])
    go = tmp_path / "go"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")}
    common = [str(HOSTS_PER_PROCESS), str(server.port), str(go)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db), dns_server.nameserver, str(p), *common],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for p in range(PROCESSES)
    ]
    go.touch()
    reports = []
    for child in children:
        out, err = child.communicate(timeout=30)
        assert (child.returncode, err) == (0, ""), err  # a warning would show on stderr
        reports.append(json.loads(out))

    for proc, report in enumerate(reports):
        for i in range(HOSTS_PER_PROCESS):
            host = f"h{i}-{proc}.test"
            assert report["resolved"][host] == sorted([own_address(i, proc), "127.0.0.1"])
            assert report["peers"][host] == "127.0.0.1"
    assert integrity(db) == [("ok",)]
    rows = table(db)
    expected = {
        (f"h{i}-{proc}.test", ip)
        for proc in range(PROCESSES)
        for i in range(HOSTS_PER_PROCESS)
        for ip in (own_address(i, proc), "127.0.0.1")
    }
    assert set(rows) == expected  # nothing lost, nothing invented
    for (_host, ip), (seen, connected) in rows.items():
        assert seen > 0
        if ip == "127.0.0.1":
            assert connected is not None and connected >= seen - 1.0
        else:
            assert connected is None  # refused, or never tried: never "connected"
    deadline = time.monotonic() + 2.0
    while server.accepted < PROCESSES * HOSTS_PER_PROCESS and time.monotonic() < deadline:
        time.sleep(0.01)  # the last connections may still sit in the accept queue
    assert server.accepted == PROCESSES * HOSTS_PER_PROCESS


def test_answers_served_from_memory_refresh_last_seen_at_most_once_a_minute(
    dns_server: DNSServer,
    make_resolver: Callable[..., Resolver],
    db: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 11 item 14: Delta Chat's last_seen says when an address was last *returned*.

    Hits note the use at most once per interval per entry (folded into the view's until,
    so a hit in between costs nothing), and only for live answers. The minute is made
    0.3 s here, in the engine and in the persistent layer, so real time can pass it.
    """
    from dnscache._engine import persisted
    from dnscache._sources.persist import memory

    monkeypatch.setattr(persisted, "TOUCH_INTERVAL", 0.3)
    monkeypatch.setattr(memory, "TOUCH_INTERVAL", 0.3)
    dns_server.set("svc.test", a=["127.0.0.5"], ttl=3600)
    resolver = make_resolver(persist=str(db))
    assert resolver.lookup("svc.test", socket.AF_INET) == ["127.0.0.5"]
    store = resolver._persisted.store
    assert store is not None
    store.flush()
    (first, _) = table(db)[("svc.test", "127.0.0.5")]

    assert resolver.lookup("svc.test", socket.AF_INET) == ["127.0.0.5"]  # within: nothing
    store.flush()
    assert table(db)[("svc.test", "127.0.0.5")][0] == first

    time.sleep(0.35)  # past the interval: the next hit notes the use
    hits = resolver.stats().hits
    assert resolver.lookup("svc.test", socket.AF_INET) == ["127.0.0.5"]
    assert resolver.stats().hits == hits + 1  # still a hit, not a lookup
    store.flush()
    assert table(db)[("svc.test", "127.0.0.5")][0] > first
    assert dns_server.queries("svc.test", "A") == 1
