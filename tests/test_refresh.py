"""Always warm: refresh-ahead, serve-stale, record TTLs and housekeeping, against a real server.

Every test talks to the loopback :class:`DNSServer` through the dnspython backend, so what
reached the wire is counted at the server, not taken from the library's word. Time is a
:class:`FakeClock` handed to the Resolver (its background workers read it too), so moving
past ``refresh_at``, expiry or the stale window is a jump, not a sleep. Real time is used only
where the behaviour *is* about waiting: a slow upstream, a stuck refresh and close(), and
interpreter exit; there the assertions are about behaviour ("the call returned while the
server still held the answer"), never about speed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dnscache
from dnscache import Resolver
from dnscache._engine.lookup import STALE_RETRY
from dnscache._sources.sysfiles import SystemFiles
from dnscache._tools.dnsserver import DNSServer

ORIGINAL_GETADDRINFO = dnscache.get_original("getaddrinfo")
BACKGROUND_THREADS = ("dnscache-refresh",)
V4 = socket.AF_INET


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` real seconds pass; its last verdict."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return bool(predicate())
        time.sleep(0.005)
    return True


def born(resolver: Resolver, name: str, family: int = V4) -> float | None:
    """When the cached answer for (name, family) was obtained, or None if there is none."""
    for entry in resolver.entries():
        if entry.name == name and entry.key[1] == family:
            return entry.life.born
    return None


def ttl_of(resolver: Resolver, name: str, family: int = V4) -> float:
    for entry in resolver.entries():
        if entry.name == name and entry.key[1] == family:
            return entry.life.expires - entry.life.born
    raise AssertionError(f"{name} is not cached")


def gai_errno(call: Callable[[], object]) -> int | None:
    try:
        call()
    except socket.gaierror as exc:
        return exc.errno
    return None


def live_background_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in BACKGROUND_THREADS and t.is_alive()]


@pytest.fixture
def server() -> Iterator[DNSServer]:
    with DNSServer(default_ttl=60) as srv:
        yield srv


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_resolver(server: DNSServer, clock: FakeClock) -> Iterator[Callable[..., Resolver]]:
    """Resolvers on the fake clock asking only ``server``; all closed after the test."""
    made: list[Resolver] = []

    def make(**options: Any) -> Resolver:
        options.setdefault("backend", "dnspython")
        options.setdefault("nameservers", (server.nameserver,))
        resolver = Resolver(clock=clock, **options)
        made.append(resolver)
        return resolver

    yield make
    for resolver in made:
        resolver.close()


# --- refresh-ahead ---------------------------------------------------------------------------


def test_hit_past_refresh_at_answers_at_once_and_refreshes_once(
    server: DNSServer, clock: FakeClock, make_resolver: Callable[..., Resolver]
) -> None:
    changes: list[tuple[str, list[str]]] = []
    changed = threading.Event()

    def on_change(host: str, ips: list[str]) -> None:
        changes.append((host, ips))
        changed.set()

    server.set("hot.test", a=["127.0.0.1"], ttl=10)
    resolver = make_resolver(on_change=on_change)
    assert resolver.lookup("hot.test", V4) == ["127.0.0.1"]
    assert server.queries("hot.test", "A") == 1

    # The upstream now has a new address and takes half a second to say so.
    server.set("hot.test", a=["127.0.0.2"], ttl=10, delay=0.5)
    clock.advance(6)  # past refresh_at (0.5 of 10 s), before expiry
    answers = [resolver.lookup("hot.test", V4) for _ in range(50)]

    # Every hit got the cached answer while the server was still holding the new one.
    assert not changed.is_set()
    assert answers == [["127.0.0.1"]] * 50
    assert changed.wait(5), "the refresh never delivered the new answer"
    assert changes == [("hot.test", ["127.0.0.2"])]
    # Fifty hits past refresh_at, one refresh.
    assert server.queries("hot.test", "A") == 2
    assert resolver.stats().refreshes == 1
    assert resolver.lookup("hot.test", V4) == ["127.0.0.2"]

    # A refresh that brings the same addresses is no change.
    server.set("hot.test", a=["127.0.0.2"], ttl=10)
    clock.advance(6)
    assert resolver.lookup("hot.test", V4) == ["127.0.0.2"]
    assert wait_for(lambda: born(resolver, "hot.test") == clock.now)
    assert server.queries("hot.test", "A") == 3
    assert changes == [("hot.test", ["127.0.0.2"])]
    stats = resolver.stats()
    assert (stats.refreshes, stats.refresh_failures, stats.stale_hits) == (2, 0, 0)


def test_only_names_in_use_are_refreshed(
    server: DNSServer, clock: FakeClock, make_resolver: Callable[..., Resolver]
) -> None:
    for name in ("used.test", "idle.test"):
        server.set(name, a=["127.0.0.1"], ttl=10)
    resolver = make_resolver()
    resolver.lookup("used.test", V4)
    resolver.lookup("idle.test", V4)

    clock.advance(6)
    resolver.lookup("used.test", V4)
    assert wait_for(lambda: born(resolver, "used.test") == clock.now)
    clock.advance(6)  # idle.test has now expired without anybody asking for it
    resolver.lookup("used.test", V4)
    assert wait_for(lambda: born(resolver, "used.test") == clock.now)

    assert server.queries("used.test", "A") == 3
    assert server.queries("idle.test") == 1
    assert resolver.stats().refreshes == 2


def test_refreshes_run_on_a_small_pool_of_named_daemon_threads(
    server: DNSServer, clock: FakeClock, make_resolver: Callable[..., Resolver]
) -> None:
    names = [f"n{i}.test" for i in range(6)]
    for name in names:
        server.set(name, a=["127.0.0.1"], ttl=10)
    resolver = make_resolver()
    for name in names:
        resolver.lookup(name, V4)

    server.delay = 0.15  # so that the refreshes overlap
    clock.advance(6)
    for name in names:
        assert resolver.lookup(name, V4) == ["127.0.0.1"]
    seen: set[threading.Thread] = set()
    most = 0

    def all_refreshed() -> bool:
        nonlocal most
        workers = [t for t in threading.enumerate() if t.name == "dnscache-refresh"]
        seen.update(workers)
        most = max(most, len(workers))
        return all(server.queries(name, "A") == 2 for name in names)

    assert wait_for(all_refreshed)
    assert 1 <= most <= 2, most
    assert seen and all(t.daemon for t in seen)
    assert all(t.daemon and t.name in BACKGROUND_THREADS for t in resolver.background_threads())
    assert resolver.stats().refreshes == len(names)


def test_refresh_calls_the_original_getaddrinfo_not_the_patched_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """System backend: the refresh must reach the resolver dnscache replaced, not dnscache."""
    calls: list[tuple[str, bool]] = []

    def upstream(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[Any]:
        if host in ("svc.test", b"svc.test") and not flags & socket.AI_NUMERICHOST:
            patched = socket.getaddrinfo is not upstream
            calls.append((threading.current_thread().name, patched))
            return ORIGINAL_GETADDRINFO("127.0.0.7", port, V4, type, proto, socket.AI_NUMERICHOST)
        return ORIGINAL_GETADDRINFO(host, port, family, type, proto, flags)

    monkeypatch.setattr(socket, "getaddrinfo", upstream)
    with dnscache.patched(ttl=0.4, refresh_at=0.25):
        assert socket.getaddrinfo("svc.test", 80, V4, socket.SOCK_STREAM)[0][4] == ("127.0.0.7", 80)
        time.sleep(0.15)  # past refresh_at (0.1 s)
        socket.getaddrinfo("svc.test", 80, V4, socket.SOCK_STREAM)
        assert wait_for(lambda: len(calls) == 2)
    me = threading.current_thread().name
    assert calls == [(me, True), ("dnscache-refresh", True)]


# --- serve-stale ---------------------------------------------------------------------------


def test_expired_answer_served_while_upstream_fails_retried_every_stale_retry(
    server: DNSServer, clock: FakeClock, make_resolver: Callable[..., Resolver]
) -> None:
    # SERVFAIL rather than a stopped server: dnspython sends from unconnected sockets, so
    # to it a stopped server is a timeout (the slow-upstream test's case); the e2e tests
    # cover an unreachable server through glibc.
    server.set("svc.test", a=["127.0.0.1"], ttl=10)
    resolver = make_resolver(resolve_timeout=2.0)
    resolver.lookup("svc.test", V4)
    server.servfail("svc.test")
    clock.advance(11)  # expired

    answers = [resolver.lookup("svc.test", V4) for _ in range(20)]
    assert answers == [["127.0.0.1"]] * 20
    assert server.queries("svc.test", "A") == 2, "the failing upstream was asked on every call"
    stats = resolver.stats()
    assert (stats.stale_hits, stats.refresh_failures) == (20, 1)

    clock.advance(STALE_RETRY - 0.5)
    assert resolver.lookup("svc.test", V4) == ["127.0.0.1"]
    assert server.queries("svc.test", "A") == 2
    clock.advance(1.0)  # the retry timer has run out: one more try
    assert resolver.lookup("svc.test", V4) == ["127.0.0.1"]
    assert wait_for(lambda: server.queries("svc.test", "A") == 3)
    # The retry has ended (not only reached the server): a retry still running when the
    # fake clock jumps below would set its next try STALE_RETRY after the jump.
    assert wait_for(lambda: resolver.stats().refresh_failures == 2)
    assert resolver.lookup("svc.test", V4) == ["127.0.0.1"]
    assert server.queries("svc.test", "A") == 3

    # The upstream comes back with a new answer: the next try after STALE_RETRY takes it,
    # in the background (the upstream is known to be failing: no caller waits for it).
    server.set("svc.test", a=["127.0.0.2"], ttl=10)
    clock.advance(STALE_RETRY)
    assert resolver.lookup("svc.test", V4) == ["127.0.0.1"]
    assert wait_for(lambda: resolver.lookup("svc.test", V4) == ["127.0.0.2"])
    assert server.queries("svc.test", "A") == 4


def test_failed_refresh_keeps_the_answer_and_waits_before_retrying(
    server: DNSServer, clock: FakeClock, make_resolver: Callable[..., Resolver]
) -> None:
    server.set("svc.test", a=["127.0.0.1"], ttl=10)
    resolver = make_resolver()
    resolver.lookup("svc.test", V4)
    server.servfail("svc.test")
    clock.advance(6)  # refresh-ahead: the refresh fails
    assert resolver.lookup("svc.test", V4) == ["127.0.0.1"]
    assert wait_for(lambda: resolver.stats().refresh_failures == 1)
    assert resolver.lookup("svc.test", V4) == ["127.0.0.1"]

    clock.advance(4.5)  # expired, but the refresh failed less than STALE_RETRY ago
    assert [resolver.lookup("svc.test", V4) for _ in range(5)] == [["127.0.0.1"]] * 5
    assert server.queries("svc.test", "A") == 2
    stats = resolver.stats()
    assert (stats.refreshes, stats.refresh_failures, stats.stale_hits) == (1, 1, 5)


def test_stale_answers_end_stale_ttl_after_expiry(
    server: DNSServer, clock: FakeClock, make_resolver: Callable[..., Resolver]
) -> None:
    server.set("svc.test", a=["127.0.0.1"], ttl=10)
    resolver = make_resolver(stale_ttl=30)
    resolver.lookup("svc.test", V4)
    server.servfail("svc.test")
    clock.advance(39)
    assert resolver.lookup("svc.test", V4) == ["127.0.0.1"]
    clock.advance(2)  # 41 s: past expiry + stale_ttl
    assert gai_errno(lambda: resolver.lookup("svc.test", V4)) == socket.EAI_AGAIN


def test_stale_ttl_zero_turns_serve_stale_off(
    server: DNSServer, clock: FakeClock, make_resolver: Callable[..., Resolver]
) -> None:
    server.set("svc.test", a=["127.0.0.1"], ttl=10)
    resolver = make_resolver(stale_ttl=0)
    resolver.lookup("svc.test", V4)
    server.servfail("svc.test")
    clock.advance(10.5)
    assert gai_errno(lambda: resolver.lookup("svc.test", V4)) == socket.EAI_AGAIN
    assert resolver.stats().stale_hits == 0


@pytest.mark.parametrize("when", ["refresh-due", "expired"])
def test_nxdomain_is_never_masked_by_stale_data(
    server: DNSServer, clock: FakeClock, make_resolver: Callable[..., Resolver], when: str
) -> None:
    server.set("gone.test", a=["127.0.0.1"], ttl=10)
    resolver = make_resolver(resolve_timeout=2.0)
    resolver.lookup("gone.test", V4)
    server.nxdomain("gone.test")
    clock.advance(6 if when == "refresh-due" else 11)

    def answer() -> int | None:
        return gai_errno(lambda: resolver.lookup("gone.test", V4))

    if when == "refresh-due":
        assert answer() is None  # refresh-ahead: this hit still gets the cached answer
    assert wait_for(lambda: answer() == socket.EAI_NONAME)
    assert resolver.stats().stale_hits == 0


def test_slow_upstream_caller_waits_resolve_timeout_then_gets_stale(
    server: DNSServer, clock: FakeClock, make_resolver: Callable[..., Resolver]
) -> None:
    changed = threading.Event()
    server.set("slow.test", a=["127.0.0.1"], ttl=10)
    resolver = make_resolver(resolve_timeout=0.2, on_change=lambda host, ips: changed.set())
    resolver.lookup("slow.test", V4)
    server.set("slow.test", a=["127.0.0.2"], ttl=10, delay=1.5)
    clock.advance(11)

    started = time.monotonic()
    assert resolver.lookup("slow.test", V4) == ["127.0.0.1"]
    waited = time.monotonic() - started
    # The server holds the answer for 1.5 s; the caller got the stale one long before.
    assert not changed.is_set()
    assert waited < 1.0, waited
    assert server.queries("slow.test", "A") == 2
    assert resolver.stats().stale_hits == 1

    # The lookup finished in the background; the next call gets the new answer.
    assert changed.wait(5)
    assert resolver.lookup("slow.test", V4) == ["127.0.0.2"]
    assert server.queries("slow.test", "A") == 2


@pytest.mark.parametrize("new", ["127.0.0.1", "127.0.0.2"], ids=["same-answer", "new-answer"])
def test_stale_hits_count_only_answers_served_stale(
    server: DNSServer, clock: FakeClock, make_resolver: Callable[..., Resolver], new: str
) -> None:
    """An expired entry whose lookup succeeds within resolve_timeout was not served stale."""
    server.set("svc.test", a=["127.0.0.1"], ttl=10)
    resolver = make_resolver(resolve_timeout=2.0)
    resolver.lookup("svc.test", V4)
    server.set("svc.test", a=[new], ttl=10)
    clock.advance(11)  # expired; the upstream is healthy

    assert resolver.lookup("svc.test", V4) == [new]
    assert born(resolver, "svc.test") == clock.now
    stats = resolver.stats()
    assert (stats.stale_hits, stats.refreshes, stats.refresh_failures) == (0, 1, 0)


# --- record TTLs (dnspython backend) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("record_ttl", "options", "expected"),
    [
        (7, {}, 7.0),
        (1, {"min_ttl": 5}, 5.0),
        (300, {"max_ttl": 60}, 60.0),
    ],
    ids=["record", "raised-to-min_ttl", "cut-to-max_ttl"],
)
def test_entry_lives_for_the_clamped_record_ttl(
    server: DNSServer,
    clock: FakeClock,
    make_resolver: Callable[..., Resolver],
    record_ttl: int,
    options: dict[str, float],
    expected: float,
) -> None:
    server.set("svc.test", a=["127.0.0.1"], ttl=record_ttl)
    resolver = make_resolver(**options)
    resolver.lookup("svc.test", V4)
    assert ttl_of(resolver, "svc.test") == expected

    clock.advance(expected * 0.5 - 0.01)
    resolver.lookup("svc.test", V4)
    assert server.queries("svc.test", "A") == 1
    clock.advance(0.02)  # just past refresh_at
    resolver.lookup("svc.test", V4)
    assert wait_for(lambda: server.queries("svc.test", "A") == 2)


@pytest.mark.parametrize(("alias_ttl", "target_ttl"), [(3, 30), (30, 4)])
def test_ttl_is_the_minimum_over_the_cname_chain(
    server: DNSServer, make_resolver: Callable[..., Resolver], alias_ttl: int, target_ttl: int
) -> None:
    server.set("alias.test", cname="target.test", ttl=alias_ttl)
    server.set("target.test", a=["127.0.0.3"], ttl=target_ttl)
    resolver = make_resolver()
    infos = resolver.getaddrinfo("alias.test", 80, V4, socket.SOCK_STREAM, 0, socket.AI_CANONNAME)
    assert [info[4] for info in infos] == [("127.0.0.3", 80)]
    assert infos[0][3] == "target.test"  # the canonical name is the end of the chain
    assert ttl_of(resolver, "alias.test") == min(alias_ttl, target_ttl)


def test_hosts_file_names_answer_first(
    server: DNSServer, make_resolver: Callable[..., Resolver]
) -> None:
    server.set("localhost", a=["127.0.0.99"])
    resolver = make_resolver()
    for family in (0, V4):
        expected = ORIGINAL_GETADDRINFO("localhost", 80, family, socket.SOCK_STREAM)
        assert resolver.getaddrinfo("localhost", 80, family, socket.SOCK_STREAM) == expected
    assert server.queries("localhost") == 0


@pytest.mark.parametrize(
    ("port", "family", "type", "proto"),
    [
        (80, socket.AF_UNSPEC, socket.SOCK_STREAM, 0),
        ("https", socket.AF_INET, 0, 0),
        (None, socket.AF_INET6, socket.SOCK_DGRAM, 0),
        (53, socket.AF_UNSPEC, 0, socket.IPPROTO_UDP),
    ],
)
def test_tuples_equal_the_systems_for_the_same_addresses(
    server: DNSServer,
    make_resolver: Callable[..., Resolver],
    port: Any,
    family: int,
    type: int,
    proto: int,
) -> None:
    server.set("dual.test", a=["127.0.0.5", "127.0.0.6"], aaaa=["::1"])
    resolver = make_resolver()
    result = resolver.getaddrinfo("dual.test", port, family, type, proto)

    order = list(dict.fromkeys(str(info[4][0]) for info in result))
    wanted = {
        socket.AF_UNSPEC: {"127.0.0.5", "127.0.0.6", "::1"},
        socket.AF_INET: {"127.0.0.5", "127.0.0.6"},
        socket.AF_INET6: {"::1"},
    }[family]
    assert set(order) == wanted
    expected = [
        info
        for ip in order
        for info in ORIGINAL_GETADDRINFO(
            ip, port, socket.AF_INET6 if ":" in ip else V4, type, proto, socket.AI_NUMERICHOST
        )
    ]
    assert result == expected


@pytest.mark.parametrize(
    ("setup", "family", "expected"),
    [
        ("nxdomain", socket.AF_UNSPEC, socket.EAI_NONAME),
        ("nxdomain", V4, socket.EAI_NONAME),
        ("v4only", socket.AF_INET6, socket.EAI_NODATA),
        ("servfail", V4, socket.EAI_AGAIN),
        ("drop", V4, socket.EAI_AGAIN),  # a timeout: slow by nature (the backend's lifetime)
    ],
    ids=["nxdomain-unspec", "nxdomain-inet", "nodata", "servfail", "timeout"],
)
def test_errors_map_as_glibc_maps_them(
    server: DNSServer,
    make_resolver: Callable[..., Resolver],
    setup: str,
    family: int,
    expected: int,
) -> None:
    if setup == "v4only":
        server.set("x.test", a=["127.0.0.1"])
    else:
        getattr(server, setup)("x.test")
    resolver = make_resolver()
    assert gai_errno(lambda: resolver.getaddrinfo("x.test", 80, family)) == expected
    # The negative answer is cached as the same error.
    assert gai_errno(lambda: resolver.getaddrinfo("x.test", 80, family)) == expected
    assert resolver.stats().negative_hits == 1


# --- housekeeping ----------------------------------------------------------------------------


def test_entries_past_their_stale_window_are_dropped_without_a_sweeper(
    server: DNSServer, clock: FakeClock, make_resolver: Callable[..., Resolver]
) -> None:
    # Expiry comes from cachetools' TLRUCache on the write path: no thread runs for it.
    server.set("short.test", a=["127.0.0.1"], ttl=10)
    server.set("long.test", a=["127.0.0.1"], ttl=100)
    server.set("other.test", a=["127.0.0.1"], ttl=100)
    resolver = make_resolver(stale_ttl=5, cleanup_interval=0.02, refresh=False)
    resolver.lookup("short.test", V4)
    resolver.lookup("long.test", V4)

    clock.advance(14)  # short.test is stale, still servable
    assert {e.name for e in resolver.entries()} == {"short.test", "long.test"}
    clock.advance(2)  # past short.test's stale window
    assert {e.name for e in resolver.entries()} == {"long.test"}
    resolver.lookup("other.test", V4)  # a write: the cache drops what expired
    assert resolver.stats().entries == 2
    assert resolver.background_threads() == []

    # Gone means gone: the next call asks the server again.
    resolver.lookup("short.test", V4)
    assert server.queries("short.test", "A") == 2


def test_maxsize_evicts_the_least_recently_used(
    server: DNSServer, make_resolver: Callable[..., Resolver]
) -> None:
    for name in ("a.test", "b.test", "c.test"):
        server.set(name, a=["127.0.0.1"])
    resolver = make_resolver(maxsize=2)
    resolver.lookup("a.test", V4)
    resolver.lookup("b.test", V4)
    resolver.lookup("a.test", V4)  # a hit: a.test is now the most recently used
    resolver.lookup("c.test", V4)
    assert {e.name for e in resolver.entries()} == {"a.test", "c.test"}
    assert resolver.stats().evictions == 1
    resolver.lookup("b.test", V4)
    assert server.queries("b.test", "A") == 2
    assert server.queries("a.test", "A") == 1


@pytest.mark.parametrize("changed", ["hosts", "resolv.conf", "nsswitch.conf"])
def test_system_file_change_drops_entries(
    server: DNSServer,
    clock: FakeClock,
    make_resolver: Callable[..., Resolver],
    tmp_path: Path,
    changed: str,
) -> None:
    files = {
        "hosts": "127.0.0.1 localhost\n",
        "resolv.conf": "nameserver 127.0.0.1\n",
        "nsswitch.conf": "hosts: files dns\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    server.set("svc.test", a=["127.0.0.1"], ttl=100)
    for n in (1, 2):
        server.set(f"new{n}.test", a=["127.0.0.1"], ttl=100)
    resolver = make_resolver(
        _files=SystemFiles(paths=[str(tmp_path / name) for name in files], clock=clock)
    )
    resolver.lookup("svc.test", V4)

    server.set("svc.test", a=["127.0.0.2"], ttl=100)
    clock.advance(2)
    resolver.lookup("new1.test", V4)  # a miss: the files are checked (off the hit path)
    assert resolver.lookup("svc.test", V4) == ["127.0.0.1"]  # nothing changed: still cached

    (tmp_path / changed).write_text(files[changed] + "# edited\n")
    clock.advance(1.1)  # files are checked at most once a second
    resolver.lookup("new2.test", V4)
    assert resolver.lookup("svc.test", V4) == ["127.0.0.2"]
    assert server.queries("svc.test", "A") == 2


# --- threads, close() and exit ---------------------------------------------------------------


@pytest.mark.parametrize("stuck", ["drop", "paused"])
def test_close_stops_every_thread_within_a_second_despite_a_stuck_refresh(
    server: DNSServer, clock: FakeClock, make_resolver: Callable[..., Resolver], stuck: str
) -> None:
    server.set("svc.test", a=["127.0.0.1"], ttl=10)
    resolver = make_resolver(cleanup_interval=0.05)
    resolver.lookup("svc.test", V4)
    if stuck == "drop":
        server.drop("svc.test")
    else:
        server.paused = True
    clock.advance(6)
    assert resolver.lookup("svc.test", V4) == ["127.0.0.1"]
    assert wait_for(lambda: server.queries("svc.test", "A") == 2)  # the refresh is on the wire
    assert {t.name for t in resolver.background_threads()} == set(BACKGROUND_THREADS)

    started = time.monotonic()
    resolver.close()
    took = time.monotonic() - started
    assert took < 1.2, took
    assert wait_for(lambda: not live_background_threads(), timeout=1.0), [
        t.name for t in live_background_threads()
    ]


def test_uninstall_stops_every_thread_within_a_second_despite_a_stuck_refresh(
    server: DNSServer,
) -> None:
    server.set("svc.test", a=["127.0.0.1"], ttl=1)
    dnscache.install(
        backend="dnspython",
        nameservers=(server.nameserver,),
        refresh_at=0.1,
        cleanup_interval=0.05,
    )
    try:
        socket.getaddrinfo("svc.test", 80, V4, socket.SOCK_STREAM)
        server.paused = True
        time.sleep(0.15)  # past refresh_at (0.1 s of the record's 1 s)
        socket.getaddrinfo("svc.test", 80, V4, socket.SOCK_STREAM)
        assert wait_for(lambda: server.queries("svc.test", "A") == 2)
    finally:
        started = time.monotonic()
        dnscache.uninstall()
        took = time.monotonic() - started
    assert not dnscache.is_installed()
    assert took < 1.2, took
    assert wait_for(lambda: not live_background_threads(), timeout=1.0), [
        t.name for t in live_background_threads()
    ]


def test_closed_resolver_still_looks_up_expired_names(
    server: DNSServer, clock: FakeClock, make_resolver: Callable[..., Resolver]
) -> None:
    """close() ends background work, not lookups: an expired answer is not served for a day.

    A closed resolver is still reachable, e.g. through a ``socket.getaddrinfo`` that a
    library bound at import time, before uninstall(). With no workers, serve-stale must
    fall back to asking in the caller's thread, not to serving stale data unasked.
    """
    server.set("svc.test", a=["127.0.0.1"], ttl=10)
    resolver = make_resolver()
    resolver.lookup("svc.test", V4)
    resolver.close()
    server.set("svc.test", a=["127.0.0.2"], ttl=10)

    clock.advance(6)  # refresh-due: the cached answer, and no background work any more
    assert resolver.lookup("svc.test", V4) == ["127.0.0.1"]
    clock.advance(5)  # expired, upstream healthy
    assert resolver.lookup("svc.test", V4) == ["127.0.0.2"]
    assert server.queries("svc.test", "A") == 2
    assert resolver.stats().stale_hits == 0
    assert not live_background_threads()


def test_background_threads_lists_what_runs_now(
    server: DNSServer, clock: FakeClock, make_resolver: Callable[..., Resolver]
) -> None:
    server.set("svc.test", a=["127.0.0.1"], ttl=10)
    resolver = make_resolver(cleanup_interval=0.05)
    resolver.lookup("svc.test", V4)
    clock.advance(6)
    resolver.lookup("svc.test", V4)
    assert wait_for(lambda: born(resolver, "svc.test") == clock.now)
    assert {t.name for t in resolver.background_threads()} == set(BACKGROUND_THREADS)
    resolver.close()
    assert resolver.background_threads() == []


EXIT_CHILD = textwrap.dedent(
    """\
    import socket, time

    import dnscache
    from dnscache._tools.dnsserver import DNSServer

    server = DNSServer().start()
    server.set("svc.test", a=["127.0.0.1"], aaaa=["::1"], ttl=1)
    dnscache.install(backend="dnspython", nameservers=(server.nameserver,), refresh_at=0.1)
    socket.getaddrinfo("svc.test", 80)
    time.sleep(0.15)
    server.paused = True
    socket.getaddrinfo("svc.test", 80)  # refresh-ahead: starts a refresh that never returns
    deadline = time.monotonic() + 5
    while server.queries("svc.test") < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    print(server.queries("svc.test"), time.time(), flush=True)
    """
)


def test_interpreter_exit_does_not_wait_for_a_stuck_refresh() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_CHILD], capture_output=True, text=True, timeout=30
    )
    ended = time.time()
    assert proc.returncode == 0, proc.stderr
    queries, finished = proc.stdout.split()
    assert int(queries) == 4, "the refresh never reached the server"
    # The backend would wait 5 s for the paused server; exit must not.
    assert ended - float(finished) < 2.5, (ended - float(finished), proc.stderr)
