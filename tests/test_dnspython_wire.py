"""The dnspython backend's wire: threads, sockets, signals, deadlines, names (issues 11 and 12).

Every test talks to the loopback :class:`DNSServer` (what reached the wire is counted
there); a "silent server" is a name the server drops (``DNSServer.drop``), so the query is
received and never answered, the way a black-holed resolver behaves.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import dns.name
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import dnscache
from dnscache import ConfigWarning
from dnscache._core.config import Config
from dnscache._sources import rfc6724
from dnscache._sources.dnspython import MIN_LIFETIME, DnspythonBackend, lifetime_for
from dnscache._sources.originals import get_original
from dnscache._sources.stub import query_name, search_candidates
from dnscache._sources.system import SystemBackend
from dnscache._tools.dnsserver import DNSServer

UNSPEC, V4, V6 = socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6
JOIN = 10.0  # the longest any bounded wait below may take before the test fails


@pytest.fixture
def backends() -> Iterator[Callable[..., DnspythonBackend]]:
    made: list[DnspythonBackend] = []

    def make(*nameservers: str, **kw: Any) -> DnspythonBackend:
        fallback = SystemBackend(get_original("getaddrinfo"))
        backend = DnspythonBackend(fallback, lambda: frozenset(), nameservers, **kw)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def _in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(target())
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=run, name="test-lookup", daemon=True)
    thread.start()
    return thread, box


# --- issue 12 item 2: no thread per lookup, no RFC 6724 probes once known ------------------


class _Counter:
    """Sockets created by one thread, counted with the interpreter's audit events."""

    active: _Counter | None = None
    installed = False

    def __init__(self) -> None:
        self.sockets = 0
        self.thread = threading.get_ident()

    @classmethod
    def hook(cls, event: str, args: tuple[Any, ...]) -> None:
        counter = cls.active
        if event == "socket.__new__" and counter and threading.get_ident() == counter.thread:
            counter.sockets += 1


def test_an_unspec_miss_starts_no_thread_and_opens_one_socket(
    dns_server: DNSServer, backends: Callable[..., DnspythonBackend], monkeypatch: Any
) -> None:
    dns_server.set("svc.test", a=["127.0.0.1", "127.0.0.2"], aaaa=["::1"], ttl=30)
    backend = backends(dns_server.nameserver)
    backend.resolve(b"svc.test", UNSPEC, 0)  # learns the route to each destination prefix
    started: list[threading.Thread] = []
    real_start = threading.Thread.start

    def counting_start(self: threading.Thread) -> None:
        started.append(self)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    if not _Counter.installed:
        sys.addaudithook(_Counter.hook)
        _Counter.installed = True
    counter = _Counter.active = _Counter()
    try:
        answers = [backend.resolve(b"svc.test", UNSPEC, 0) for _ in range(10)]
    finally:
        _Counter.active = None
    for answer in answers:
        ips = [ip for _, (ip, *_) in answer.addresses]
        assert sorted(ips) == ["127.0.0.1", "127.0.0.2", "::1"]
    assert started == []
    # One UDP socket per lookup carrying both queries; no socket per address for RFC 6724.
    assert counter.sockets == 10
    assert dns_server.queries("svc.test", "A") == 11
    assert dns_server.queries("svc.test", "AAAA") == 11


def test_rfc6724_order_puts_unreachable_destinations_last_and_caches_per_prefix() -> None:
    probed: list[str] = []

    def probe(address: Any) -> bool:
        probed.append(address[1][0])
        return not address[1][0].startswith("2001:db8:")

    cache = rfc6724.SourceCache(probe)
    try:
        v6 = (V6, ("2001:db8::1", 0, 0, 0))
        v4a, v4b = (V4, ("192.0.2.1", 0)), (V4, ("192.0.2.77", 0))
        assert cache.order([v6, v4a, v4b]) == [v4a, v4b, v6]
        assert cache.order([v6, v4b]) == [v4b, v6]
        watcher = rfc6724._RouteWatcher()
        watching = watcher.working
        watcher.close()
        if watching:
            assert probed == ["2001:db8::1", "192.0.2.1"]  # 192.0.2.77: same /24, known
        else:  # no netlink here: nothing is kept, every lookup probes as glibc does
            assert len(probed) == 5
    finally:
        cache.close()


# --- issue 11 item 12: the caller's signal handlers --------------------------------------


class Deadline(Exception):
    pass


@pytest.mark.parametrize("family", [UNSPEC, V4, V6])
@pytest.mark.parametrize("error", [Deadline, TimeoutError])
def test_sigalrm_handler_exception_reaches_the_caller(
    dns_server: DNSServer, family: int, error: type[BaseException]
) -> None:
    """The signal.alarm deadline pattern, against a silent server, through the public API."""
    dns_server.drop("silent.test")

    def on_alarm(signum: int, frame: Any) -> None:
        raise error("deadline")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        with dnscache.Resolver(
            backend="dnspython", nameservers=[dns_server.nameserver], resolve_timeout=30.0
        ) as resolver:
            signal.setitimer(signal.ITIMER_REAL, 0.1)
            try:
                with pytest.raises(error, match="deadline"):
                    resolver.getaddrinfo("silent.test", 80, family)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert dns_server.queries("silent.test") >= 1


def test_a_handler_that_returns_does_not_end_the_lookup(dns_server: DNSServer) -> None:
    dns_server.set("slow.test", a=["127.0.0.9"], ttl=30, delay=0.3)
    calls: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: calls.append(signum))
    try:
        with dnscache.Resolver(
            backend="dnspython", nameservers=[dns_server.nameserver]
        ) as resolver:
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            assert resolver.lookup("slow.test", V4) == ["127.0.0.9"]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert calls == [signal.SIGALRM]


# --- issue 11 items 13 and 4: deadlines -------------------------------------------------------


def test_a_cold_miss_ends_within_the_lifetime_from_resolve_timeout(
    dns_server: DNSServer,
) -> None:
    dns_server.drop("silent.test")
    config = Config(backend="dnspython", nameservers=(dns_server.nameserver,), resolve_timeout=0.6)
    backend = DnspythonBackend.from_config(
        config, SystemBackend(get_original("getaddrinfo")), lambda: frozenset()
    )
    try:
        thread, box = _in_thread(lambda: backend.resolve(b"silent.test", UNSPEC, 0))
        # The old backend waited 5.4 s whatever resolve_timeout said.
        thread.join(3.0)
        assert not thread.is_alive(), "the miss outlived resolve_timeout by seconds"
    finally:
        backend.close()
        thread.join(JOIN)
    assert isinstance(box[0], socket.gaierror) and box[0].errno == socket.EAI_AGAIN
    # Both families asked, retransmitted once (glibc's attempts:2), within the lifetime.
    assert dns_server.queries("silent.test", "A") == 2
    assert dns_server.queries("silent.test", "AAAA") == 2


def test_resolver_cold_miss_honours_resolve_timeout(dns_server: DNSServer) -> None:
    """Through the public API: needs the engine to build the backend with from_config()."""
    dns_server.drop("silent.test")
    with dnscache.Resolver(
        backend="dnspython", nameservers=[dns_server.nameserver], resolve_timeout=0.6
    ) as resolver:
        thread, box = _in_thread(lambda: resolver.getaddrinfo("silent.test", 80))
        thread.join(3.0)
        alive = thread.is_alive()
        resolver.close()
        thread.join(JOIN)
    assert not alive, "a cold miss waited seconds past resolve_timeout"
    assert isinstance(box[0], socket.gaierror) and box[0].errno == socket.EAI_AGAIN


def test_lifetime_is_clamped_for_the_platform() -> None:
    assert lifetime_for(0.0) == MIN_LIFETIME
    assert lifetime_for(2.5) == 2.5
    assert lifetime_for(1e300) == threading.TIMEOUT_MAX


@pytest.mark.parametrize("family", [UNSPEC, V4, V6])
def test_huge_resolve_timeout_does_not_overflow(dns_server: DNSServer, family: int) -> None:
    dns_server.set("svc.test", a=["127.0.0.1"], aaaa=["::1"], ttl=30)
    # 1e10 is refused as an argument now (Config's bound, a day); the environment clamps
    # it to the bound with a warning: the lookup must work with what that leaves.
    with pytest.warns(ConfigWarning, match="PYTHONDNSCACHE_RESOLVE_TIMEOUT"):
        config = dnscache.Config.from_env({"PYTHONDNSCACHE_RESOLVE_TIMEOUT": "1e10"})
    with dnscache.Resolver(
        config, backend="dnspython", nameservers=[dns_server.nameserver]
    ) as resolver:
        assert resolver.lookup("svc.test", family)


def test_huge_lifetime_on_a_silent_server_still_ends_at_close(
    dns_server: DNSServer, backends: Callable[..., DnspythonBackend]
) -> None:
    dns_server.drop("silent.test")
    backend = backends(dns_server.nameserver, lifetime=1e10)
    thread, box = _in_thread(lambda: backend.resolve(b"silent.test", UNSPEC, 0))
    assert wait_until(lambda: dns_server.queries("silent.test") >= 2)
    backend.close()
    thread.join(JOIN)
    assert not thread.is_alive()
    assert isinstance(box[0], socket.gaierror) and box[0].errno == socket.EAI_AGAIN


def test_close_wakes_a_query_stuck_on_a_dead_server_at_once(
    dns_server: DNSServer, backends: Callable[..., DnspythonBackend]
) -> None:
    dns_server.drop("silent.test")
    backend = backends(dns_server.nameserver, lifetime=60.0)
    thread, box = _in_thread(lambda: backend.resolve(b"silent.test", V4, 0))
    assert wait_until(lambda: dns_server.queries("silent.test") >= 1)
    backend.close()
    thread.join(2.0)  # with a 60 s lifetime, only the interruption can end it this soon
    assert not thread.is_alive()
    assert isinstance(box[0], socket.gaierror) and box[0].errno == socket.EAI_AGAIN


def wait_until(condition: Callable[[], bool], timeout: float = JOIN) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# --- servers: failover --------------------------------------------------------------------


def test_a_refusing_server_is_skipped_at_once(
    dns_server: DNSServer, backends: Callable[..., DnspythonBackend]
) -> None:
    dns_server.set("svc.test", a=["127.0.0.5"], ttl=30)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{closed.getsockname()[1]}"
    backend = backends(dead, dns_server.nameserver, lifetime=30.0)
    thread, box = _in_thread(lambda: backend.resolve(b"svc.test", V4, 0))
    thread.join(5.0)  # ECONNREFUSED comes back at once on a connected socket
    assert not thread.is_alive()
    assert [ip for _, (ip, *_) in box[0].addresses] == ["127.0.0.5"]


def test_servfail_asks_the_next_server_once(backends: Callable[..., DnspythonBackend]) -> None:
    with DNSServer() as bad, DNSServer() as good:
        bad.servfail("svc.test")
        good.set("svc.test", a=["127.0.0.6"], ttl=30)
        backend = backends(bad.nameserver, good.nameserver)
        assert [ip for _, (ip, *_) in backend.resolve(b"svc.test", V4, 0).addresses] == [
            "127.0.0.6"
        ]
        assert bad.queries("svc.test") == 1


# --- issue 11 item 8: names are asked exactly ---------------------------------------------

_label = st.binary(min_size=1, max_size=20).filter(lambda b: b"." not in b and b"\\" not in b)
_names = st.lists(_label, min_size=1, max_size=4).map(b".".join)


@settings(max_examples=300, deadline=None)
@given(_names, _names)
@example(one=b"@", two=b"\x00")  # dnspython's zone-file shorthand for the origin (CI found it)
def test_distinct_byte_names_are_distinct_questions(one: bytes, two: bytes) -> None:
    wire_one = query_name(one).derelativize(dns.name.root).to_wire()
    wire_two = query_name(two).derelativize(dns.name.root).to_wire()
    assert query_name(one).labels == tuple(one.split(b"."))  # the bytes, as glibc sends them
    if one.lower() != two.lower():  # DNS names compare ASCII case-insensitively (RFC 4343)
        assert query_name(one) != query_name(two)
        assert wire_one.lower() != wire_two.lower() or one.lower() == two.lower()


def test_non_ascii_names_get_their_own_answers(
    dns_server: DNSServer, backends: Callable[..., DnspythonBackend]
) -> None:
    dns_server.set("caf\\195\\169.test", a=["127.0.0.7"], ttl=30)  # café, in UTF-8
    dns_server.set("caf\\195\\168.test", a=["127.0.0.8"], ttl=30)  # cafè
    backend = backends(dns_server.nameserver)
    assert backend.resolve(b"caf\xc3\xa9.test", V4, 0).addresses == ((V4, ("127.0.0.7", 0)),)
    assert backend.resolve(b"caf\xc3\xa8.test", V4, 0).addresses == ((V4, ("127.0.0.8", 0)),)
    with pytest.raises(socket.gaierror) as nx:
        backend.resolve(b"caf\xc3\xaa.test", V4, 0)  # never set: asked as itself
    assert nx.value.errno == socket.EAI_NONAME
    assert dns_server.queries() == 3


@pytest.mark.parametrize("host", [b"a..test", b"x" * 64 + b".test", b"bad\\"])
def test_names_that_cannot_be_asked_fail_as_libc_fails_them(
    dns_server: DNSServer, backends: Callable[..., DnspythonBackend], host: bytes
) -> None:
    backend = backends(dns_server.nameserver)
    original = get_original("getaddrinfo")
    try:
        original(host, None, V4, socket.SOCK_STREAM)
        expected: Any = None
    except socket.gaierror as exc:
        expected = exc.args
    if expected is None:
        assert backend.resolve(host, V4, 0).addresses
    else:
        with pytest.raises(socket.gaierror) as got:
            backend.resolve(host, V4, 0)
        assert got.value.args == expected
    assert dns_server.queries() == 0


def test_search_candidates_follow_glibc_res_search() -> None:
    search = [dns.name.from_text("corp.example."), dns.name.from_text("example.")]
    rel = lambda text: dns.name.from_text(text, origin=None)  # noqa: E731
    names = lambda got: [n.to_text() for n in got]  # noqa: E731
    assert names(search_candidates(rel("db"), search, 1)) == [
        "db.corp.example.",
        "db.example.",
        "db.",
    ]
    assert names(search_candidates(rel("db.prod"), search, 1)) == [
        "db.prod.",
        "db.prod.corp.example.",
        "db.prod.example.",
    ]
    assert names(search_candidates(rel("db.prod"), search, 2)) == [
        "db.prod.corp.example.",
        "db.prod.example.",
        "db.prod.",
    ]
    assert names(search_candidates(dns.name.from_text("db.prod."), search, 5)) == ["db.prod."]
