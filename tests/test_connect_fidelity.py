"""Connecting under dnscache is connecting without it, whatever the program has patched.

The reproductions of issue 10 (``socket.socket`` subclasses and mocks, a mocked
``socket.getaddrinfo`` reaching ``create_connection``, urllib3 and asyncio, a
logging ``SocketHandler`` to a dead port) and issue 11 (deadlines, huge delays,
one host's outcome touching only that host), through the public API, against
real sockets on loopback: 127.0.0.4:P accepts (a listener), 127.0.0.2:P refuses,
127.0.0.3:P never answers (tests/loopback.py). Each compares with the stdlib
where there is something to compare.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import contextlib
import io
import logging
import logging.handlers
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar
from unittest import mock

import pytest
import urllib3.util.connection as uc
from hypothesis import given
from hypothesis import strategies as st

import dnscache
import loopback
import netns
from dnscache._connect.connector import Connector, make_create_connection
from dnscache._connect.health import AddressHealth

REFUSING, BLACKHOLE, LIVE, LIVE2 = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
ORIGINAL_CREATE_CONNECTION = socket.create_connection


class Net:
    """Listeners on 127.0.0.4 and .5, a black hole on .3, a refusal on .2, all on one port."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        for _ in range(20):
            try:
                self.sockets += loopback.black_hole(BLACKHOLE)
                self.port: int = self.sockets[0].getsockname()[1]
                for ip in (LIVE, LIVE2):
                    listener = socket.socket()
                    self.sockets.append(listener)
                    listener.bind((ip, self.port))
                    listener.listen(128)
                loopback.check_refusing(REFUSING, self.port)
                self.blackhole_ok = loopback.is_black_hole(BLACKHOLE, self.port)
                return
            except OSError:
                self.close()
        raise RuntimeError("no free port for the loopback fixture")

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    n = Net()
    yield n
    n.close()


@pytest.fixture
def hole(net: Net) -> Net:
    if not net.blackhole_ok:
        netns.unavailable("this kernel does not drop SYNs to a listener with a full accept queue")
    return net


def names(**hosts: list[str]) -> dict[str, list[str]]:
    return {f"{name}.test": ips for name, ips in hosts.items()}


# --- socket.socket as it is at call time (repro r1) ------------------------------------------


class TimingOut(socket.socket):
    """CPython test_socket's MockSocket: connect() raises TimeoutError at once."""

    calls: ClassVar[list[Any]] = []

    def connect(self, *args: Any) -> None:
        TimingOut.calls.append(args[0][0])
        raise TimeoutError("timed out (from MockSocket.connect)")


def stdlib_with(monkeypatch: pytest.MonkeyPatch, ips: list[str], port: int, **kw: Any) -> Any:
    """The stdlib's create_connection with ``socket.getaddrinfo`` answering ``ips``."""
    infos = [info for ip in ips for info in socket.getaddrinfo(ip, port, 0, socket.SOCK_STREAM)]
    with monkeypatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", lambda *a, **k: list(infos))
        return ORIGINAL_CREATE_CONNECTION(("any.test", port), **kw)


@pytest.mark.parametrize("ips", [[LIVE], [LIVE, LIVE2], [REFUSING, LIVE, LIVE2]])
def test_a_socket_subclass_overriding_connect_sees_every_connect(
    monkeypatch: pytest.MonkeyPatch, net: Net, ips: list[str]
) -> None:
    monkeypatch.setattr(socket, "socket", TimingOut)
    TimingOut.calls = []
    with pytest.raises(TimeoutError) as theirs:
        stdlib_with(monkeypatch, ips, net.port)
    expected = TimingOut.calls
    TimingOut.calls = []
    with dnscache.patched(hosts=names(svc=ips)), pytest.raises(TimeoutError) as ours:
        socket.create_connection(("svc.test", net.port))
    assert TimingOut.calls == expected == ips
    assert str(ours.value) == str(theirs.value) == "timed out (from MockSocket.connect)"


@pytest.mark.parametrize("host", ["127.0.0.1", "one.test", "two.test"])
def test_a_mocked_socket_class_is_used_and_returned(net: Net, host: str) -> None:
    hosts = names(one=[LIVE], two=[LIVE, LIVE2])
    with dnscache.patched(hosts=hosts), mock.patch("socket.socket") as factory:
        factory.return_value = fake = mock.MagicMock()
        sock = socket.create_connection((host, net.port))
    assert sock is fake
    address = LIVE if host.endswith(".test") else host
    # Exactly the stdlib's calls: no settimeout without a timeout, one connect.
    assert fake.mock_calls == [mock.call.connect((address, net.port))]


# --- socket.getaddrinfo as it is at call time (repro r3) -------------------------------------


def fake_answer(port: int) -> list[Any]:
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (LIVE, port))]


def test_a_mocked_getaddrinfo_reaches_create_connection(net: Net) -> None:
    with dnscache.patched(hosts=names(fake=[REFUSING])):
        socket.getaddrinfo("fake.test", net.port)  # cached: must not answer the connect
        with mock.patch("socket.getaddrinfo", return_value=fake_answer(net.port)) as m:
            with socket.create_connection(("fake.test", net.port), timeout=2) as sock:
                assert sock.getpeername() == (LIVE, net.port)
            with uc.create_connection(("fake.test", net.port), timeout=2) as sock:
                assert sock.getpeername() == (LIVE, net.port)
    assert m.call_args_list == [
        mock.call("fake.test", net.port, 0, socket.SOCK_STREAM),
        mock.call("fake.test", net.port, uc.allowed_gai_family(), socket.SOCK_STREAM),
    ]


def test_a_mocked_getaddrinfo_reaches_asyncio_for_a_cached_name(net: Net) -> None:
    async def lookup() -> Any:
        loop = asyncio.get_running_loop()
        return await loop.getaddrinfo("localhost", net.port, type=socket.SOCK_STREAM)

    with dnscache.patched():
        assert asyncio.base_events.BaseEventLoop.getaddrinfo.__dnscache__  # type: ignore[attr-defined]
        cached = asyncio.run(lookup())
        assert cached == asyncio.run(lookup())
        with mock.patch("socket.getaddrinfo", return_value=fake_answer(net.port)) as m:
            assert asyncio.run(lookup()) == fake_answer(net.port)
    assert m.called


def test_a_wrapper_installed_after_us_sees_every_lookup(net: Net) -> None:
    seen: list[Any] = []
    with dnscache.patched(hosts=names(svc=[LIVE])):
        ours = socket.getaddrinfo

        def tracer(*args: Any, **kwargs: Any) -> Any:
            seen.append(args[0])
            return ours(*args, **kwargs)

        socket.getaddrinfo = tracer
        try:
            with socket.create_connection(("svc.test", net.port), timeout=2) as sock:
                assert sock.getpeername() == (LIVE, net.port)
        finally:
            socket.getaddrinfo = ours
    assert seen == ["svc.test"]


def test_nested_layers_resolve_through_whatever_socket_getaddrinfo_is(net: Net) -> None:
    with dnscache.patched(hosts=names(svc=[LIVE])):
        outer = socket.create_connection
        with dnscache.patched(hosts=names(svc=[LIVE2])):
            # The outer layer's function, called while the inner one is active, does what
            # the stdlib would: resolve through socket.getaddrinfo, the inner layer.
            for create_connection in (outer, socket.create_connection):
                with create_connection(("svc.test", net.port), timeout=2) as sock:
                    assert sock.getpeername() == (LIVE2, net.port)
            answer = fake_answer(net.port)
            with (
                mock.patch("socket.getaddrinfo", return_value=answer),
                socket.create_connection(("svc.test", net.port), timeout=2) as sock,
            ):
                assert sock.getpeername() == (LIVE, net.port)
        with outer(("svc.test", net.port), timeout=2) as sock:
            assert sock.getpeername() == (LIVE, net.port)


def test_a_resolver_used_on_its_own_connects_through_itself(net: Net) -> None:
    with (
        dnscache.Resolver(hosts=names(own=[LIVE])) as resolver,
        resolver.create_connection(("own.test", net.port), timeout=2) as sock,
    ):
        assert sock.getpeername() == (LIVE, net.port)


# --- deadlines and huge values (issue 11 items 13 and 4) -------------------------------------


def test_the_timeout_bounds_a_connect_by_name(hole: Net) -> None:
    # Three black-holed addresses, timeout 1, delay 1: the stdlib and the old race took 3 s.
    extra = [loopback.black_hole(ip, hole.port) for ip in ("127.0.0.6", "127.0.0.7")]
    try:
        ips = [BLACKHOLE, "127.0.0.6", "127.0.0.7"]
        with dnscache.patched(hosts=names(bh=ips), happy_eyeballs_delay=1.0):
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                socket.create_connection(("bh.test", hole.port), timeout=1.0)
            assert time.monotonic() - start < 2
    finally:
        for sockets in extra:
            for sock in sockets:
                sock.close()


@pytest.mark.parametrize("ips", [[REFUSING, LIVE], [LIVE, REFUSING]])
def test_a_huge_delay_does_not_crash(net: Net, ips: list[str]) -> None:
    # The largest delay Config accepts (a day; 1e10 is refused as an argument and clamped
    # from the environment), which still far exceeds what select/poll take in one wait.
    with dnscache.patched(hosts=names(svc=ips), happy_eyeballs_delay=86400.0):
        with socket.create_connection(("svc.test", net.port)) as sock:
            assert sock.getpeername() == (LIVE, net.port)
        with uc.create_connection(("svc.test", net.port), timeout=None) as sock:
            assert sock.getpeername() == (LIVE, net.port)


# --- bookkeeping: per host, no lock on the common path, no logging (items 11, r6) ------------


@contextlib.contextmanager
def root_logging(handler: logging.Handler) -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        handler.close()


def test_an_outcome_is_reported_for_its_host_only(net: Net) -> None:
    changed: list[str] = []
    connected: list[tuple[str, str]] = []
    answers = {"a.test": [REFUSING, LIVE], "b.test": [LIVE2]}

    def getaddrinfo(host: str, port: int, family: int = 0, type: int = 0) -> list[Any]:
        ips = answers[host.lower().rstrip(".")]
        return [i for ip in ips for i in socket.getaddrinfo(ip, port, family, type)]

    health = AddressHealth()

    def health_changed(host: str) -> None:
        assert not health._lock.locked()  # callbacks run with nothing held
        changed.append(host)

    connector = Connector(
        getaddrinfo,
        health,
        original=socket.getaddrinfo,
        on_health_changed=health_changed,
        on_connected=lambda host, ip: connected.append((host, ip)),
    )
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    with root_logging(handler):
        connector.connect("A.TEST.", net.port, 2).close()
    assert records == []  # a connect logs nothing (it may be a logging handler's own)
    # The refusal, then the success of an address that did not go first yet.
    assert changed == ["a.test", "a.test"]
    assert connected == [("a.test", LIVE)]
    assert set(health.records("a.test")) == {REFUSING, LIVE}
    changed.clear()
    connector.connect("a.test", net.port, 2).close()  # the same outcomes again
    assert changed == ["a.test"]  # the refusal; LIVE already goes first
    connector.connect("b.test", net.port, 2).close()
    assert changed == ["a.test", "b.test"]
    assert len(health) == 2


def test_a_success_to_the_first_address_takes_no_lock(net: Net) -> None:
    health = AddressHealth()
    health.record("svc.test", LIVE, True)
    with health._lock:  # another thread holding the store: the common case must not wait
        result: list[bool] = []
        worker = threading.Thread(
            target=lambda: result.append(health.record_success("svc.test", LIVE))
        )
        worker.start()
        worker.join(5)
    assert result == [False]


def test_bookkeeping_never_breaks_a_connect(net: Net) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("a bug in a callback")

    answers = [i for ip in (REFUSING, LIVE) for i in socket.getaddrinfo(ip, net.port)]
    connector = Connector(
        lambda *args: [i for i in answers if i[1] == socket.SOCK_STREAM],
        AddressHealth(),
        original=socket.getaddrinfo,
        on_health_changed=broken,
        on_connected=broken,
    )
    with connector.connect("svc.test", net.port, 2) as sock:
        assert sock.getpeername() == (LIVE, net.port)


def test_a_socket_handler_to_a_dead_port_connects_once(net: Net) -> None:
    attempts: list[Any] = []
    errors = io.StringIO()
    with dnscache.patched(hosts=names(logs=[REFUSING, REFUSING])):
        patched = socket.create_connection

        def counting(*args: Any, **kwargs: Any) -> socket.socket:
            attempts.append(args[0])
            return patched(*args, **kwargs)

        socket.getaddrinfo("logs.test", net.port, 0, socket.SOCK_STREAM)
        handler = logging.handlers.SocketHandler("logs.test", net.port)
        handler.retryStart = 2.5
        with (
            mock.patch("socket.create_connection", counting),
            root_logging(handler),
            contextlib.redirect_stderr(errors),
        ):
            logging.getLogger("app").error("one record")
        wait = (handler.retryTime or 0) - time.time()
    assert len(attempts) == 1
    assert wait <= 3  # not backed off by records logged from inside the connect
    assert "Logging error" not in errors.getvalue()


def test_the_replacement_says_what_it_replaced() -> None:
    health = AddressHealth()
    connector = Connector(socket.getaddrinfo, health, original=socket.getaddrinfo)
    replacement = make_create_connection(connector, ORIGINAL_CREATE_CONNECTION)
    assert replacement.__wrapped__ is ORIGINAL_CREATE_CONNECTION  # type: ignore[attr-defined]
    assert replacement.__dnscache__ is True  # type: ignore[attr-defined]
    assert replacement.__name__ == "create_connection"
    assert replacement.__doc__ == ORIGINAL_CREATE_CONNECTION.__doc__


def test_record_says_whether_that_hosts_order_may_have_changed() -> None:
    health = AddressHealth()
    assert health.record("h", LIVE, False, now=1.0)  # a failure always may
    assert health.record("h", LIVE, True, now=2.0)  # LIVE now goes first
    assert not health.record("h", LIVE, True, now=3.0)  # still first
    assert not health.record_success("h", LIVE, now=4.0)
    assert health.record_success("h", LIVE2, now=5.0)  # LIVE2 takes over
    health.forget_missing("h", [LIVE])  # LIVE2 left the answer: LIVE is first again
    assert not health.record_success("h", LIVE, now=6.0)
    assert health.record_success("other", LIVE, now=6.0)  # per host


@given(
    st.lists(
        st.tuples(st.sampled_from([LIVE, LIVE2, REFUSING]), st.booleans(), st.integers(1, 3)),
        max_size=40,
    )
)
def test_skipping_the_first_addresses_success_never_changes_an_order(
    events: list[tuple[str, bool, int]],
) -> None:
    exact, fast = AddressHealth(), AddressHealth()
    now = 0.0
    for ip, ok, step in events:
        now += step  # distinct times: a tie is the documented exception (below)
        exact.record("h", ip, ok, now=now)
        if ok:
            fast.record_success("h", ip, now=now)
        else:
            fast.record("h", ip, False, now=now)
        for later in (now, now + 5, now + 50):
            ips = [REFUSING, LIVE, LIVE2]
            assert fast.order("h", ips, 10.0, now=later) == exact.order("h", ips, 10.0, now=later)


def test_a_tie_with_a_skipped_success_goes_to_the_address_just_connected() -> None:
    exact, fast = AddressHealth(), AddressHealth()
    for health in (exact, fast):
        health.record("h", REFUSING, True, now=0.0)
    exact.record("h", REFUSING, True, now=1.0)
    assert not fast.record_success("h", REFUSING, now=1.0)  # skipped: it goes first already
    for health in (exact, fast):
        health.record("h", LIVE, True, now=1.0)  # another success at the same instant
    ips = [REFUSING, LIVE]
    assert exact.order("h", ips, 10.0, now=1.0) == [REFUSING, LIVE]  # the resolver's order
    assert fast.order("h", ips, 10.0, now=1.0) == [LIVE, REFUSING]  # the one just recorded
