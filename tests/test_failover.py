"""Failover by name: Happy Eyeballs and address health through the installed resolver.

``multi.test`` has three A records (``Config.hosts``), all on one port P of loopback:

* 127.0.0.3:P never answers: a ``listen(0)`` listener whose accept queue is filled by
  one connection nobody accepts, so Linux drops further SYNs (the technique of
  tests/test_connect.py, re-probed by the fixture, which skips if a probe connects);
* 127.0.0.2:P refuses: a socket is bound there (so nothing else can listen) but does
  not listen, so a SYN gets a RST;
* 127.0.0.4:P is a live HTTP server answering 200 "ok".

The clients are unmodified (``socket.create_connection``, ``requests.get``) and connect
by name. Which addresses were attempted, and in which order, is observed without
patching anything: CPython raises the ``socket.connect`` audit event for every
``connect``/``connect_ex``, and a process-wide audit hook (installed once, idle unless a
test is recording) notes the ones aimed at port P.

The delay between attempts is 0.5 s here (the default is 0.25 s): long enough that a
call whose first attempt went to the black hole cannot finish under 0.2 s, short enough
that the first call, which must wait it out once, stays well under a second.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import urllib3
import urllib3.connection
import urllib3.util.connection

import dnscache
import loopback
import netns

BLACKHOLE = "127.0.0.3"
REFUSING = "127.0.0.2"
LIVE = "127.0.0.4"
NAME = "multi.test"
DELAY = 0.5
FAST = 0.2  # a call whose first attempt is the live address ends well within this
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


# --- observing connect attempts -----------------------------------------------------------

_recording: list[tuple[str, int]] | None = None
_recording_port = -1
_hook_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _recording is not None:
        address = args[1]
        if isinstance(address, tuple) and len(address) >= 2 and address[1] == _recording_port:
            _recording.append((address[0], address[1]))


@contextlib.contextmanager
def attempts(port: int) -> Iterator[list[str]]:
    """The IPs of every connect to ``port`` made inside the block, in the order made."""
    global _recording, _recording_port, _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)  # cannot be removed: it does nothing unless recording
        _hook_installed = True
    seen: list[tuple[str, int]] = []
    ips: list[str] = []
    _recording, _recording_port = seen, port
    try:
        yield ips
    finally:
        _recording, _recording_port = None, -1
        ips.extend(ip for ip, _ in seen)


# --- the network -------------------------------------------------------------------------


class _OkHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps the connection (and so urllib3's socket) open after the response.
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True


class Loopback:
    """The three addresses of ``multi.test`` on one port; ``close()`` releases everything."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.server: _HTTPServer | None = None
        self.thread: threading.Thread | None = None
        for _ in range(20):
            try:
                self._setup()
                return
            except OSError:
                self.close()
        raise RuntimeError("no free port for the loopback fixture")

    def _setup(self) -> None:
        self.sockets += loopback.black_hole(BLACKHOLE)
        self.port: int = self.sockets[0].getsockname()[1]
        refusing = socket.socket()
        self.sockets.append(refusing)
        refusing.bind((REFUSING, self.port))  # bound, never listening: SYNs get a RST
        self.server = _HTTPServer((LIVE, self.port), _OkHandler)
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="failover-http",
            daemon=True,
        )
        self.thread.start()
        loopback.check_refusing(REFUSING, self.port)
        self.blackhole_ok = loopback.is_black_hole(BLACKHOLE, self.port)

    @property
    def url(self) -> str:
        return f"http://{NAME}:{self.port}/"

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.thread is not None:
            self.thread.join(5)
            self.thread = None
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


@pytest.fixture(scope="module")
def net() -> Iterator[Loopback]:
    loopback = Loopback()
    yield loopback
    loopback.close()


@pytest.fixture
def hole(net: Loopback) -> Loopback:
    if not net.blackhole_ok:
        netns.unavailable("this kernel does not drop SYNs to a listener with a full accept queue")
    return net


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests honours proxy variables; a proxy would connect instead of us."""
    for var in _PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)


def multi(*ips: str, **options: Any) -> dnscache.patched:
    options.setdefault("happy_eyeballs_delay", DELAY)
    return dnscache.patched(hosts={NAME: list(ips)}, **options)


def resolved_order(port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(NAME, port, 0, socket.SOCK_STREAM)]


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


def connect(port: int) -> socket.socket:
    return socket.create_connection((NAME, port), timeout=5)


# --- socket.create_connection by name -------------------------------------------------------


def test_black_hole_first_races_to_the_live_address(hole: Loopback) -> None:
    with multi(BLACKHOLE, REFUSING, LIVE), attempts(hole.port) as tried:
        sock, elapsed = timed(lambda: connect(hole.port))
        with sock:
            assert sock.getpeername() == (LIVE, hole.port)
            assert sock.gettimeout() == 5.0
    assert elapsed < 2
    assert tried == [BLACKHOLE, REFUSING, LIVE]


def test_failed_addresses_are_resolved_last_afterwards(hole: Loopback) -> None:
    with multi(BLACKHOLE, REFUSING, LIVE):
        assert resolved_order(hole.port) == [BLACKHOLE, REFUSING, LIVE]
        connect(hole.port).close()
        order = resolved_order(hole.port)
    assert order[0] == LIVE
    assert sorted(order[1:]) == sorted([BLACKHOLE, REFUSING])


def test_next_connection_goes_to_the_live_address_first(hole: Loopback) -> None:
    with multi(BLACKHOLE, REFUSING, LIVE):
        connect(hole.port).close()
        with attempts(hole.port) as tried:
            sock, elapsed = timed(lambda: connect(hole.port))
            with sock:
                assert sock.getpeername() == (LIVE, hole.port)
    assert tried == [LIVE]
    assert elapsed < FAST


# --- requests, unmodified ---------------------------------------------------------------------


def test_requests_races_past_the_black_hole(hole: Loopback) -> None:
    with multi(BLACKHOLE, REFUSING, LIVE), attempts(hole.port) as tried:
        response, elapsed = timed(lambda: requests.get(hole.url, timeout=5))
        with response:
            assert response.status_code == 200
            assert response.text == "ok"
    assert elapsed < 2
    assert tried == [BLACKHOLE, REFUSING, LIVE]


def test_requests_next_request_goes_to_the_live_address_first(hole: Loopback) -> None:
    with multi(BLACKHOLE, REFUSING, LIVE):
        requests.get(hole.url, timeout=5).close()
        order = resolved_order(hole.port)
        with attempts(hole.port) as tried:
            response, elapsed = timed(lambda: requests.get(hole.url, timeout=5))
            with response:
                assert response.status_code == 200
    assert order[0] == LIVE
    assert sorted(order[1:]) == sorted([BLACKHOLE, REFUSING])
    assert tried == [LIVE]
    assert elapsed < FAST


# --- errors, as the stdlib raises them --------------------------------------------------------


def outcome(call: Callable[[], socket.socket]) -> tuple[Any, ...]:
    """What ``call`` raised (or returned), in comparable form; the stdlib's leaks silenced."""
    with warnings.catch_warnings():
        # The stdlib leaks its socket when settimeout raises something other than OSError.
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            sock = call()
        except (OSError, ValueError, TypeError, ExceptionGroup) as exc:
            result = describe(exc)
        else:
            with sock:
                result = ("socket", sock.getpeername())
        gc.collect()
    return result


def describe(exc: BaseException) -> tuple[Any, ...]:
    if isinstance(exc, ExceptionGroup):
        return ("group", exc.message, tuple(describe(e) for e in exc.exceptions))
    return (type(exc), exc.args)


def stdlib(
    monkeypatch: pytest.MonkeyPatch, ips: list[str], port: int, *args: Any, **kwargs: Any
) -> tuple[Any, ...]:
    """The stdlib's create_connection, cache off, with ``NAME`` resolving to ``ips``."""
    original_gai = dnscache.get_original("getaddrinfo")
    infos = [info for ip in ips for info in original_gai(ip, port, 0, socket.SOCK_STREAM)]
    original = dnscache.get_original("create_connection")
    with monkeypatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", lambda *a, **k: list(infos))
        return outcome(lambda: original((NAME, port), *args, **kwargs))


def test_all_errors_raises_an_exception_group(hole: Loopback) -> None:
    with multi(BLACKHOLE, REFUSING), pytest.raises(ExceptionGroup) as excinfo:
        socket.create_connection((NAME, hole.port), timeout=0.3, all_errors=True)
    group = excinfo.value
    assert group.message == "create_connection failed"
    assert [type(e) for e in group.exceptions] == [TimeoutError, ConnectionRefusedError]


@pytest.mark.parametrize("all_errors", [False, True])
def test_every_address_failing_matches_the_stdlib(
    monkeypatch: pytest.MonkeyPatch, hole: Loopback, all_errors: bool
) -> None:
    ips = [BLACKHOLE, REFUSING]
    theirs = stdlib(monkeypatch, ips, hole.port, 0.3, all_errors=all_errors)
    with multi(*ips):
        ours = outcome(
            lambda: socket.create_connection((NAME, hole.port), 0.3, all_errors=all_errors)
        )
    assert ours == theirs
    if not all_errors:
        # The last address's error, though racing, the black hole's timeout came last.
        assert ours[0] is ConnectionRefusedError


@pytest.mark.parametrize("timeout", [-1, float("nan"), "5"])
def test_bad_timeout_raises_what_the_stdlib_raises(
    monkeypatch: pytest.MonkeyPatch, net: Loopback, timeout: Any
) -> None:
    theirs = stdlib(monkeypatch, [LIVE], net.port, timeout)
    with multi(LIVE, REFUSING):
        ours = outcome(lambda: socket.create_connection((NAME, net.port), timeout))
    assert ours == theirs
    assert ours[0] in (ValueError, TypeError)


# --- urllib3's socket_options ---------------------------------------------------------------

OPTIONS: list[tuple[int, int, int | bytes]] = [
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
]


def _has_options(sock: socket.socket) -> bool:
    return all(sock.getsockopt(level, name) != 0 for level, name, _ in OPTIONS)


def test_urllib3_socket_options_reach_the_winning_socket(hole: Loopback) -> None:
    # The winner is the third attempt: the options must be on every attempt, not the first.
    with multi(BLACKHOLE, REFUSING, LIVE, happy_eyeballs_delay=0.05):
        sock = urllib3.util.connection.create_connection(
            (NAME, hole.port), timeout=5, socket_options=OPTIONS
        )
        with sock:
            assert sock.getpeername() == (LIVE, hole.port)
            assert _has_options(sock)


def test_urllib3_pool_manager_socket_options(net: Loopback) -> None:
    pool = urllib3.PoolManager(socket_options=OPTIONS, retries=False, timeout=5)
    try:
        with multi(LIVE):
            response = pool.request("GET", net.url, preload_content=False)
            try:
                connection = response.connection
                assert isinstance(connection, urllib3.connection.HTTPConnection)
                sock = connection.sock
                assert sock is not None
                assert sock.getpeername() == (LIVE, net.port)
                assert _has_options(sock)
                assert response.read() == b"ok"
            finally:
                response.release_conn()
    finally:
        pool.clear()
