"""create_connection on real sockets on loopback, and parity with the stdlib's.

Three kinds of loopback address on one port P:

* 127.0.0.2:P refuses: nothing listens there;
* 127.0.0.3:P never answers: a listener with ``listen(0)`` whose accept queue is
  filled by one connection nobody accepts. Linux then drops further SYNs (the
  client retransmits and, with a timeout, times out). Re-checked by the fixture,
  which fails under CI (skips elsewhere) if a probe connects after all;
* 127.0.0.4:P accepts: a listener with room in its queue (the kernel completes
  the handshake, no thread needed).

Only 127.0.0.0/8 and ::1 are ever used. The algorithm's exact timing is tested
under a fake clock in tests/test_connect.py; here the bounds on elapsed time are
loose (a second of slack) and only tell today's behaviour from the old one's.
"""

from __future__ import annotations

import errno
import gc
import math
import os
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import loopback
import netns
from dnscache._connect.happy_eyeballs import MAX_WAIT, create_connection

AF4, AF6 = socket.AF_INET, socket.AF_INET6


REFUSING, BLACKHOLE, LIVE = "127.0.0.2", "127.0.0.3", "127.0.0.4"


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves a descriptor open or a thread running."""
    gc.collect()
    fds, threads = _open_fds(), set(threading.enumerate())
    yield
    gc.collect()
    assert set(threading.enumerate()) == threads
    assert _open_fds() == fds


class Loopback:
    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.blackhole_ok = False
        for _ in range(20):
            try:
                self._setup()
                return
            except OSError:
                self.close()
        raise RuntimeError("no free port for the loopback fixture")

    def _listener(self, ip: str, port: int, backlog: int) -> socket.socket:
        sock = socket.socket()
        self.sockets.append(sock)
        sock.bind((ip, port))
        sock.listen(backlog)
        return sock

    def _setup(self) -> None:
        self.sockets += loopback.black_hole(BLACKHOLE)
        self.port = self.sockets[0].getsockname()[1]
        self._listener(LIVE, self.port, 64)
        loopback.check_refusing(REFUSING, self.port)
        self.blackhole_ok = loopback.is_black_hole(BLACKHOLE, self.port)

    def infos(self, *hosts: str) -> list[Any]:
        out = []
        for host in hosts:
            out.extend(socket.getaddrinfo(host, self.port, 0, socket.SOCK_STREAM))
        return out

    def close(self) -> None:
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


class Recorder:
    """A socket factory keeping every socket it made, and what each looked like at connect().

    Its class overrides ``connect()`` (as CPython's test_socket and tracing wrappers
    do): every attempt must go through it, blocking or not.
    """

    def __init__(self) -> None:
        self.made: list[socket.socket] = []
        self.at_connect: list[dict[str, Any]] = []
        recorder = self

        class RecordingSocket(socket.socket):
            def connect(self, address: Any) -> None:
                recorder.at_connect.append(
                    {
                        "address": address,
                        "timeout": self.gettimeout(),
                        "keepalive": self.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                        "sockname": self.getsockname(),
                    }
                )
                super().connect(address)

        self.cls = RecordingSocket

    def __call__(self, family: int, type: int, proto: int) -> socket.socket:
        sock = self.cls(family, type, proto)
        self.made.append(sock)
        return sock


def reports_of(reports: list[tuple[Any, Any]]) -> list[tuple[str, type]]:
    return [(info[4][0], type(error)) for info, error in reports]


def test_black_hole_first_races_to_the_live_address(hole: Loopback) -> None:
    reports: list[tuple[Any, Any]] = []
    recorder = Recorder()
    start = time.monotonic()
    sock = create_connection(
        hole.infos(BLACKHOLE, REFUSING, LIVE),
        5,
        on_attempt_done=lambda info, error: reports.append((info, error)),
        socket_factory=recorder,
    )
    with sock:
        elapsed = time.monotonic() - start
        assert sock.getpeername() == (LIVE, hole.port)
        assert elapsed < 2
        assert sock.gettimeout() == 5.0
        assert reports_of(reports) == [
            (REFUSING, ConnectionRefusedError),
            (LIVE, type(None)),
            (BLACKHOLE, TimeoutError),  # still pending when the live one won: lost the race
        ]
        assert [s.fileno() == -1 for s in recorder.made] == [True, True, False]
    # The subclass saw every connect: the first blocking (its timeout cut to the
    # delay), the next ones on non-blocking sockets, as the race runs them.
    assert [(c["address"][0], c["timeout"]) for c in recorder.at_connect] == [
        (BLACKHOLE, 0.25),
        (REFUSING, 0.0),
        (LIVE, 0.0),
    ]


def test_a_single_attempt_is_the_stdlibs_connect(net: Loopback) -> None:
    recorder = Recorder()
    with create_connection(net.infos(LIVE, REFUSING), 5, socket_factory=recorder) as sock:
        assert sock.getpeername() == (LIVE, net.port)
        assert sock.gettimeout() == 5.0 and sock.getblocking()
    assert [(c["address"][0], c["timeout"]) for c in recorder.at_connect] == [(LIVE, 0.25)]


def test_the_timeout_bounds_the_whole_call(hole: Loopback) -> None:
    # Three black holes, timeout 1, delay 1: the stdlib takes 3 s; the old race
    # started the next attempt when the latest timed out, and took 3 s too.
    recorder = Recorder()
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        create_connection(
            hole.infos(BLACKHOLE, BLACKHOLE, BLACKHOLE), 1.0, delay=1.0, socket_factory=recorder
        )
    assert time.monotonic() - start < 2
    assert len(recorder.at_connect) == 3  # each its share: started about 1/3 s apart
    assert all(s.fileno() == -1 for s in recorder.made)


def test_delay_zero_is_one_attempt_at_a_time(hole: Loopback) -> None:
    reports: list[tuple[Any, Any]] = []
    with create_connection(
        hole.infos(REFUSING, LIVE),
        1,
        delay=0,
        on_attempt_done=lambda info, error: reports.append((info, error)),
    ) as sock:
        assert sock.getpeername() == (LIVE, hole.port)
    assert reports_of(reports) == [(REFUSING, ConnectionRefusedError), (LIVE, type(None))]
    # Under a deadline the first gets its share, but at least 2 s: here all of it.
    reports.clear()
    with pytest.raises(TimeoutError):
        create_connection(
            hole.infos(BLACKHOLE, LIVE),
            0.5,
            delay=0,
            on_attempt_done=lambda info, error: reports.append((info, error)),
        )
    assert reports_of(reports) == [(BLACKHOLE, TimeoutError)]


def test_huge_delay_does_not_crash(net: Loopback) -> None:
    # poll(2) takes at most INT_MAX ms: a wait computed from delay 1e10 raised
    # OverflowError when the first attempt was still connecting.
    for hosts in [(REFUSING, LIVE), (LIVE, REFUSING), (LIVE, LIVE, REFUSING)]:
        with create_connection(net.infos(*hosts), None, delay=1e10) as sock:
            assert sock.getpeername() == (LIVE, net.port)
            assert sock.gettimeout() is None
    assert MAX_WAIT <= threading.TIMEOUT_MAX


def test_all_errors(hole: Loopback) -> None:
    with pytest.raises(ExceptionGroup) as excinfo:
        create_connection(hole.infos(BLACKHOLE, REFUSING), 0.3, all_errors=True)
    assert [type(e) for e in excinfo.value.exceptions] == [TimeoutError, ConnectionRefusedError]
    assert excinfo.value.exceptions[0].args == ("timed out",)
    refusal = excinfo.value.exceptions[1]
    assert isinstance(refusal, OSError) and refusal.errno == errno.ECONNREFUSED


@pytest.mark.parametrize("delay", [0.1, 5.0])
def test_keyboard_interrupt_while_attempts_are_pending(hole: Loopback, delay: float) -> None:
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    recorder = Recorder()
    # pytest-timeout may own SIGALRM and ITIMER_REAL: put both back afterwards.
    previous_handler = signal.signal(signal.SIGALRM, interrupt)
    previous_timer = signal.setitimer(signal.ITIMER_REAL, 0.4)
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            create_connection(
                hole.infos(BLACKHOLE, BLACKHOLE, BLACKHOLE),
                None,
                delay=delay,
                socket_factory=recorder,
            )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_timer[0]:
            left = previous_timer[0] - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), previous_timer[1])
    assert time.monotonic() - start < 2
    # delay 0.1: all three racing; delay 5: interrupted inside the first, blocking, connect.
    assert len(recorder.made) == (3 if delay < 0.4 else 1)
    assert all(s.fileno() == -1 for s in recorder.made)


def test_socket_options_apply_to_every_attempt(net: Loopback) -> None:
    recorder = Recorder()
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    with create_connection(
        net.infos(REFUSING, LIVE), 2, socket_options=options, socket_factory=recorder
    ) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert [c["keepalive"] for c in recorder.at_connect] == [1, 1]


@pytest.mark.parametrize("source", ["127.0.0.1", "127.0.0.5"])
def test_source_address(net: Loopback, source: str) -> None:
    recorder = Recorder()
    with create_connection(
        net.infos(REFUSING, LIVE), 2, (source, 0), socket_factory=recorder
    ) as sock:
        assert sock.getsockname()[0] == source
    assert [c["sockname"][0] for c in recorder.at_connect] == [source, source]


def test_interleaves_families(net: Loopback) -> None:
    if not socket.has_ipv6:
        netns.unavailable("no IPv6")
    with socket.socket(AF6) as probe:
        if probe.connect_ex(("::1", net.port)) != errno.ECONNREFUSED:
            netns.unavailable("::1:P is not refusing")
    reports: list[Any] = []
    with pytest.raises(ExceptionGroup) as excinfo:
        create_connection(
            net.infos(REFUSING, "127.0.0.5", "::1"),
            2,
            all_errors=True,
            on_attempt_done=lambda info, error: reports.append(info[4][0]),
        )
    assert reports == [REFUSING, "::1", "127.0.0.5"]
    assert len(excinfo.value.exceptions) == 3


def test_delay_must_be_a_non_negative_number(net: Loopback) -> None:
    for delay in (-0.1, math.nan):
        with pytest.raises(ValueError):
            create_connection(net.infos(LIVE), delay=delay)


# --------------------------------------------------------------------------------------
# Parity with socket.create_connection for the same resolved list
# --------------------------------------------------------------------------------------


def outcome(call: Callable[[], socket.socket]) -> tuple[Any, ...]:
    """What a call returned or raised, in comparable form; the stdlib's leaks silenced."""
    with warnings.catch_warnings():
        # The stdlib leaks its socket when settimeout or bind raise a non-OSError.
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            sock = call()
        except (OSError, ValueError, TypeError, ExceptionGroup) as exc:
            result: tuple[Any, ...] = describe(exc)
        else:
            with sock:
                result = ("socket", sock.gettimeout(), sock.getblocking(), sock.getpeername())
        gc.collect()
    return result


def describe(exc: BaseException) -> tuple[Any, ...]:
    if isinstance(exc, ExceptionGroup):
        return ("group", exc.message, [describe(e) for e in exc.exceptions])
    return (type(exc), exc.args)


def both(
    monkeypatch: pytest.MonkeyPatch, infos: list[Any], *args: Any, **kwargs: Any
) -> tuple[Any, Any]:
    """(stdlib, ours) for the same addrinfos: the stdlib's getaddrinfo is made to return them."""
    with monkeypatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", lambda *a, **k: list(infos))
        theirs = outcome(lambda: socket.create_connection(("ignored", 0), *args, **kwargs))
    ours = outcome(lambda: create_connection(infos, *args, **kwargs))
    return theirs, ours


@pytest.mark.parametrize("all_errors", [False, True])
@pytest.mark.parametrize("hosts", [[REFUSING], [REFUSING, "127.0.0.5"]])
def test_parity_refused(
    monkeypatch: pytest.MonkeyPatch, net: Loopback, hosts: list[str], all_errors: bool
) -> None:
    theirs, ours = both(monkeypatch, net.infos(*hosts), 2, all_errors=all_errors)
    assert ours == theirs
    assert "socket" not in ours


def test_parity_timeout_and_the_choice_of_error(
    monkeypatch: pytest.MonkeyPatch, hole: Loopback
) -> None:
    theirs, ours = both(monkeypatch, hole.infos(BLACKHOLE), 0.3)
    assert ours == theirs == (TimeoutError, ("timed out",))
    # The stdlib raises the last address's error; so do we, though racing it came first.
    theirs, ours = both(monkeypatch, hole.infos(BLACKHOLE, REFUSING), 0.3)
    assert ours == theirs
    assert ours[0] is ConnectionRefusedError


def test_parity_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    theirs, ours = both(monkeypatch, [], 1)
    assert ours == theirs == (OSError, ("getaddrinfo returns an empty list",))


@pytest.mark.parametrize("timeout", [-1, -0.5, math.nan, "1", object(), 1j])
def test_parity_bad_timeout(monkeypatch: pytest.MonkeyPatch, net: Loopback, timeout: Any) -> None:
    theirs, ours = both(monkeypatch, net.infos(LIVE, REFUSING), timeout)
    assert ours == theirs
    assert ours[0] in (ValueError, TypeError)


def test_parity_timeout_zero(monkeypatch: pytest.MonkeyPatch, net: Loopback) -> None:
    # A timeout of 0 makes the socket non-blocking: the connect's EINPROGRESS is the error.
    theirs, ours = both(monkeypatch, net.infos(LIVE), 0)
    assert ours == theirs


def test_parity_source_address_in_use(monkeypatch: pytest.MonkeyPatch, net: Loopback) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        theirs, ours = both(monkeypatch, net.infos(LIVE), 2, taken.getsockname())
    assert ours == theirs
    assert ours[0] is OSError and ours[1][0] == errno.EADDRINUSE


def test_parity_bad_source_address_type(monkeypatch: pytest.MonkeyPatch, net: Loopback) -> None:
    theirs, ours = both(monkeypatch, net.infos(LIVE), 2, ("127.0.0.1",))
    assert ours == theirs


@pytest.mark.parametrize("timeout", [2.5, None])
def test_parity_returned_socket_has_the_callers_timeout(
    monkeypatch: pytest.MonkeyPatch, net: Loopback, timeout: Any
) -> None:
    theirs, ours = both(monkeypatch, net.infos(LIVE), timeout)
    assert ours == theirs
    assert ours[:3] == ("socket", timeout, True)


@pytest.mark.parametrize("default", [None, 3.0])
def test_parity_default_timeout(
    monkeypatch: pytest.MonkeyPatch, net: Loopback, default: float | None
) -> None:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(default)
    try:
        theirs, ours = both(monkeypatch, net.infos(REFUSING, LIVE))
    finally:
        socket.setdefaulttimeout(previous)
    assert ours == theirs
    assert ours[:3] == ("socket", default, True)
