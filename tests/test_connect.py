"""create_connection: a scripted race under a fake clock, then real sockets on loopback.

The scripted half drives ``_connect._race`` (the whole algorithm: staggering,
timeouts, winner choice, closing, reporting, errors) through a ``Scenario`` that
plays the network under a fake clock, so expected times are exact. The real
half runs the public ``create_connection`` against three kinds of loopback
address on one port P:

* 127.0.0.2:P refuses: nothing listens there;
* 127.0.0.3:P never answers: a listener with ``listen(0)`` whose accept queue is
  filled by one connection nobody accepts. Linux then drops further SYNs (the
  client retransmits and, with a timeout, times out). Checked on this machine
  (a Firecracker VM with a real 6.x kernel, not gVisor) and re-checked by the
  fixture, which skips the tests that need it if a probe connects after all;
* 127.0.0.4:P accepts: a listener with room in its queue (the kernel completes
  the handshake, no thread needed).

Only 127.0.0.0/8 and ::1 are ever used.
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
from dnscache._connect import happy_eyeballs as _connect
from dnscache._connect.happy_eyeballs import create_connection, interleave
from dnscache._core.addrinfo import AddrInfo

AF4, AF6 = socket.AF_INET, socket.AF_INET6


def info(ip: str, port: int = 80) -> AddrInfo:
    if ":" in ip:
        return (AF6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0))
    return (AF4, socket.SOCK_STREAM, 6, "", (ip, port))


def refused() -> OSError:
    return OSError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))


# --------------------------------------------------------------------------------------
# interleave (RFC 8305 section 4)
# --------------------------------------------------------------------------------------

V6 = ["::1", "::ffff:127.0.0.6", "::ffff:127.0.0.7"]
V4 = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


def ips(infos: list[AddrInfo]) -> list[str]:
    return [i[4][0] for i in infos]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ([], []),
        (V4, V4),
        (V6[:2] + V4, [V6[0], V4[0], V6[1], V4[1], V4[2]]),
        (V4[:1] + V6, [V4[0], V6[0], V6[1], V6[2]]),
        ([V4[0], V4[1], V6[0], V4[2], V6[1]], [V4[0], V6[0], V4[1], V6[1], V4[2]]),
    ],
)
def test_interleave(given: list[str], expected: list[str]) -> None:
    out = interleave([info(ip) for ip in given])
    assert ips(out) == expected
    assert interleave(out) == out  # idempotent


def test_interleave_first_family_count() -> None:
    given = [info(ip) for ip in V6 + V4[:2]]
    out = interleave(given, first_family_count=2)
    assert ips(out) == [V6[0], V6[1], V4[0], V6[2], V4[1]]
    with pytest.raises(ValueError):
        interleave(given, first_family_count=0)


# --------------------------------------------------------------------------------------
# The scripted race
# --------------------------------------------------------------------------------------

HANG = ("hang",)  # never answers


def ok_at(t: float) -> tuple[Any, ...]:
    return ("ok", t)  # handshake completes t seconds after the attempt starts


def refused_at(t: float) -> tuple[Any, ...]:
    return ("error", t, refused())


def fails_to_start(exc: BaseException) -> tuple[Any, ...]:
    return ("start", exc)  # socket()/bind()/connect_ex() raised


CONNECTED_AT_ONCE = ("now",)  # connect_ex returned 0


class FakeSocket:
    def __init__(self, ip: str) -> None:
        self.ip = ip


class Scenario:
    """Plays every address's script under a fake clock; implements ``_connect._Net``."""

    def __init__(
        self,
        script: dict[str, tuple[Any, ...]],
        timeout: float | None = None,
        interrupt_at: float | None = None,
    ) -> None:
        self.script = script
        self.timeout = timeout
        self.interrupt_at = interrupt_at
        self.now = 0.0
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}  # discarded or taken
        self.open: dict[int, str] = {}
        self.pending: dict[int, tuple[float, OSError | None]] = {}
        self.reports: list[tuple[str, Any, float]] = []
        self.taken: list[str] = []
        self.closed_net = False

    def clock(self) -> float:
        return self.now

    def on_attempt_done(self, address: tuple[int, Any], error: BaseException | None) -> None:
        self.reports.append((address[1][0], error, self.now))

    def run(self, *, delay: float = 0.25, all_errors: bool = False) -> Any:
        infos = interleave([info(ip) for ip in self.script])
        try:
            return _connect._race(
                infos,
                self,
                delay=delay,
                all_errors=all_errors,
                on_attempt_done=self.on_attempt_done,
                clock=self.clock,
            )
        finally:
            assert self.closed_net
            assert self.open == {}, "attempts left open"

    def running(self) -> int:
        return len(self.open)

    # --- _Net ---

    def start(self, index: int, addrinfo: Any) -> tuple[bool, float | None]:
        ip = addrinfo[4][0]
        assert ip not in self.started
        self.started[ip] = self.now
        step = self.script[ip]
        if step[0] == "start":
            self.ended[ip] = self.now
            raise step[1]
        self.open[index] = ip
        if step[0] == "now":
            return True, self.timeout
        if step[0] == "ok":
            self.pending[index] = (self.now + step[1], None)
        elif step[0] == "error":
            self.pending[index] = (self.now + step[1], step[2])
        return False, self.timeout

    def wait(self, timeout: float | None) -> list[tuple[int, OSError | None]]:
        assert timeout is None or timeout >= 0
        wake = min((when for when, _ in self.pending.values()), default=math.inf)
        if timeout is not None:
            wake = min(wake, self.now + timeout)
        if self.interrupt_at is not None and self.interrupt_at <= wake:
            self.now = self.interrupt_at
            raise KeyboardInterrupt
        assert wake < math.inf, "the race would block forever"
        self.now = wake
        ready = [(i, err) for i, (when, err) in self.pending.items() if when <= self.now]
        for i, _ in ready:
            del self.pending[i]
        return ready

    def discard(self, index: int) -> None:
        ip = self.open.pop(index)
        self.pending.pop(index, None)
        self.ended[ip] = self.now

    def take(self, index: int) -> Any:
        ip = self.open.pop(index)
        self.ended[ip] = self.now
        self.taken.append(ip)
        return FakeSocket(ip)

    def close(self) -> None:
        assert not self.closed_net
        self.closed_net = True
        for index in list(self.open):
            self.discard(index)


def test_first_address_answers() -> None:
    s = Scenario({"127.0.0.2": ok_at(0.1), "127.0.0.3": ok_at(0.1)})
    assert s.run().ip == "127.0.0.2"
    assert s.started == {"127.0.0.2": 0}
    assert s.now == 0.1
    assert s.reports == [("127.0.0.2", None, 0.1)]


def test_staggered_starts_and_the_losers_are_closed() -> None:
    s = Scenario({"127.0.0.2": HANG, "127.0.0.3": HANG, "127.0.0.4": ok_at(0.1)})
    assert s.run().ip == "127.0.0.4"
    assert s.started == {"127.0.0.2": 0, "127.0.0.3": 0.25, "127.0.0.4": 0.5}
    assert s.ended == {"127.0.0.2": 0.6, "127.0.0.3": 0.6, "127.0.0.4": 0.6}
    # Losers started before the winner are reported as timed out (so that address
    # health orders them last next time), after the winner.
    assert [(ip, type(e), t) for ip, e, t in s.reports] == [
        ("127.0.0.4", type(None), 0.6),
        ("127.0.0.2", TimeoutError, 0.6),
        ("127.0.0.3", TimeoutError, 0.6),
    ]


def test_a_later_attempt_wins_while_an_earlier_one_is_pending() -> None:
    s = Scenario({"127.0.0.2": ok_at(1.0), "127.0.0.3": ok_at(0.1)})
    assert s.run().ip == "127.0.0.3"
    assert s.started == {"127.0.0.2": 0, "127.0.0.3": 0.25}
    assert s.now == 0.35


def test_failure_starts_the_next_at_once() -> None:
    s = Scenario(
        {"127.0.0.2": refused_at(0.125), "127.0.0.3": refused_at(0.0625), "127.0.0.4": ok_at(1)}
    )
    assert s.run().ip == "127.0.0.4"
    assert s.started == {"127.0.0.2": 0, "127.0.0.3": 0.125, "127.0.0.4": 0.1875}


def test_failure_at_start_starts_the_next_at_the_same_instant() -> None:
    s = Scenario(
        {
            "127.0.0.2": fails_to_start(OSError(errno.EAFNOSUPPORT, "no")),
            "127.0.0.3": ok_at(0.5),
        }
    )
    assert s.run().ip == "127.0.0.3"
    assert s.started == {"127.0.0.2": 0, "127.0.0.3": 0}
    assert [(ip, type(e)) for ip, e, _ in s.reports] == [
        ("127.0.0.2", OSError),
        ("127.0.0.3", type(None)),
    ]


def test_only_the_latest_attempts_failure_moves_the_next_forward() -> None:
    # .2 fails at 0.3 while .3 (started 0.25) is pending: .4 still waits for 0.5.
    s = Scenario({"127.0.0.2": refused_at(0.3), "127.0.0.3": HANG, "127.0.0.4": ok_at(1)})
    assert s.run().ip == "127.0.0.4"
    assert s.started == {"127.0.0.2": 0, "127.0.0.3": 0.25, "127.0.0.4": 0.5}
    # .3 fails at 0.35 (0.1 after its start): .4 starts then.
    s = Scenario({"127.0.0.2": HANG, "127.0.0.3": refused_at(0.125), "127.0.0.4": ok_at(1)})
    assert s.run().ip == "127.0.0.4"
    assert s.started == {"127.0.0.2": 0, "127.0.0.3": 0.25, "127.0.0.4": 0.375}


def test_connected_inside_connect_ex_wins_at_once() -> None:
    s = Scenario({"127.0.0.2": HANG, "127.0.0.3": CONNECTED_AT_ONCE, "127.0.0.4": ok_at(0)})
    assert s.run().ip == "127.0.0.3"
    assert s.started == {"127.0.0.2": 0, "127.0.0.3": 0.25}
    assert s.ended == {"127.0.0.2": 0.25, "127.0.0.3": 0.25}


def test_simultaneous_successes_go_to_the_earliest_started() -> None:
    s = Scenario({"127.0.0.2": ok_at(0.5), "127.0.0.3": ok_at(0.25)})
    assert s.run().ip == "127.0.0.2"
    assert s.now == 0.5
    assert s.reports == [("127.0.0.2", None, 0.5)]


def test_a_failure_and_a_success_at_the_same_time() -> None:
    s = Scenario({"127.0.0.2": refused_at(0.5), "127.0.0.3": ok_at(0.25)})
    assert s.run().ip == "127.0.0.3"
    assert [(ip, e is None) for ip, e, _ in s.reports] == [
        ("127.0.0.2", False),
        ("127.0.0.3", True),
    ]


@pytest.mark.parametrize("delay", [0, 0.0])
def test_delay_zero_is_strictly_sequential(delay: float) -> None:
    s = Scenario(
        {"127.0.0.2": HANG, "127.0.0.3": refused_at(0.5), "127.0.0.4": ok_at(0.25)}, timeout=1.0
    )
    assert s.run(delay=delay).ip == "127.0.0.4"
    assert s.started == {"127.0.0.2": 0, "127.0.0.3": 1.0, "127.0.0.4": 1.5}
    assert s.ended == {"127.0.0.2": 1.0, "127.0.0.3": 1.5, "127.0.0.4": 1.75}
    assert [(ip, type(e), t) for ip, e, t in s.reports] == [
        ("127.0.0.2", TimeoutError, 1.0),
        ("127.0.0.3", ConnectionRefusedError, 1.5),
        ("127.0.0.4", type(None), 1.75),
    ]


def test_each_attempt_gets_its_full_timeout() -> None:
    s = Scenario({"127.0.0.2": HANG, "127.0.0.3": HANG, "127.0.0.4": HANG}, timeout=1.0)
    with pytest.raises(TimeoutError) as excinfo:
        s.run()
    assert excinfo.value.args == ("timed out",)
    assert s.started == {"127.0.0.2": 0, "127.0.0.3": 0.25, "127.0.0.4": 0.5}
    assert s.ended == {"127.0.0.2": 1.0, "127.0.0.3": 1.25, "127.0.0.4": 1.5}
    assert s.now == 1.5


def test_a_timed_out_latest_attempt_starts_the_next() -> None:
    s = Scenario({"127.0.0.2": HANG, "127.0.0.3": ok_at(0)}, timeout=0.1)
    assert s.run().ip == "127.0.0.3"
    assert s.started == {"127.0.0.2": 0, "127.0.0.3": 0.1}


def test_without_all_errors_the_last_attempts_error_is_raised_like_the_stdlib() -> None:
    # .3 is refused at 0.35, .2 times out at 1.0; the stdlib would raise .3's error
    # for this list (it tries .2, times out, then .3), and so do we.
    s = Scenario({"127.0.0.2": HANG, "127.0.0.3": refused_at(0.1)}, timeout=1.0)
    with pytest.raises(ConnectionRefusedError):
        s.run()
    assert [(ip, t) for ip, _, t in s.reports] == [("127.0.0.3", 0.35), ("127.0.0.2", 1.0)]


def test_all_errors_in_attempt_order() -> None:
    s = Scenario(
        {"127.0.0.2": HANG, "127.0.0.3": refused_at(0.1), "::1": refused_at(0.0)}, timeout=1.0
    )
    with pytest.raises(ExceptionGroup) as excinfo:
        s.run(all_errors=True)
    group = excinfo.value
    assert group.message == "create_connection failed"
    # Interleaved: .2, ::1, .3.
    assert [type(e) for e in group.exceptions] == [
        TimeoutError,
        ConnectionRefusedError,
        ConnectionRefusedError,
    ]
    assert group.exceptions[1] is s.reports[0][1]
    assert s.started == {"127.0.0.2": 0, "::1": 0.25, "127.0.0.3": 0.25}
    assert list(group.args[1]) == list(group.exceptions)


def test_no_timeout_waits_as_long_as_it_takes() -> None:
    s = Scenario({"127.0.0.2": HANG, "127.0.0.3": ok_at(100.0)}, timeout=None)
    assert s.run().ip == "127.0.0.3"
    assert s.now == 100.25


def test_keyboard_interrupt_closes_every_attempt() -> None:
    s = Scenario({"127.0.0.2": HANG, "127.0.0.3": HANG, "127.0.0.4": HANG}, interrupt_at=0.3)
    with pytest.raises(KeyboardInterrupt):
        s.run()
    assert s.ended == {"127.0.0.2": 0.3, "127.0.0.3": 0.3}
    assert s.reports == []


def test_unexpected_errors_propagate_and_close_everything() -> None:
    s = Scenario({"127.0.0.2": HANG, "127.0.0.3": fails_to_start(TypeError("bad address"))})
    with pytest.raises(TypeError, match="bad address"):
        s.run()
    assert s.ended == {"127.0.0.2": 0.25, "127.0.0.3": 0.25}


def test_a_raising_hook_closes_the_winner_too() -> None:
    s = Scenario({"127.0.0.2": ok_at(0.1)})

    def hook(address: Any, error: BaseException | None) -> None:
        raise RuntimeError("hook")

    s.on_attempt_done = hook  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        s.run()
    assert s.taken == []


# --------------------------------------------------------------------------------------
# Real sockets on loopback
# --------------------------------------------------------------------------------------

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
    """A socket factory keeping every socket it made, and what each looked like at connect."""

    def __init__(self) -> None:
        self.made: list[socket.socket] = []
        self.at_connect: list[dict[str, Any]] = []
        recorder = self

        class RecordingSocket(socket.socket):
            def connect_ex(self, address: Any) -> int:
                recorder.at_connect.append(
                    {
                        "address": address,
                        "keepalive": self.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                        "sockname": self.getsockname(),
                    }
                )
                return super().connect_ex(address)

        self.cls = RecordingSocket

    def __call__(self, family: int, type: int, proto: int) -> socket.socket:
        sock = self.cls(family, type, proto)
        self.made.append(sock)
        return sock


def test_black_hole_first_races_to_the_live_address(hole: Loopback) -> None:
    reports: list[tuple[Any, Any]] = []
    recorder = Recorder()
    start = time.monotonic()
    sock = create_connection(
        hole.infos(BLACKHOLE, REFUSING, LIVE),
        5,
        on_attempt_done=lambda address, error: reports.append((address, error)),
        socket_factory=recorder,
    )
    with sock:
        elapsed = time.monotonic() - start
        assert sock.getpeername() == (LIVE, hole.port)
        assert elapsed < 2
        assert sock.gettimeout() == 5.0
        assert [(a[1][0], type(e)) for a, e in reports] == [
            (REFUSING, ConnectionRefusedError),
            (LIVE, type(None)),
            (BLACKHOLE, TimeoutError),  # still pending when the live one won: lost the race
        ]
        assert reports[0][0] == (AF4, (REFUSING, hole.port))
        assert [s.fileno() == -1 for s in recorder.made] == [True, True, False]


def test_delay_zero_waits_out_the_black_hole(hole: Loopback) -> None:
    reports: list[tuple[Any, Any]] = []
    start = time.monotonic()
    with create_connection(
        hole.infos(BLACKHOLE, LIVE),
        1,
        delay=0,
        on_attempt_done=lambda address, error: reports.append((address, error)),
    ) as sock:
        elapsed = time.monotonic() - start
        assert sock.getpeername() == (LIVE, hole.port)
    assert 1.0 <= elapsed < 2
    assert [(a[1][0], type(e)) for a, e in reports] == [
        (BLACKHOLE, TimeoutError),
        (LIVE, type(None)),
    ]


def test_all_errors(hole: Loopback) -> None:
    with pytest.raises(ExceptionGroup) as excinfo:
        create_connection(hole.infos(BLACKHOLE, REFUSING), 0.3, all_errors=True)
    assert [type(e) for e in excinfo.value.exceptions] == [TimeoutError, ConnectionRefusedError]
    assert excinfo.value.exceptions[0].args == ("timed out",)
    refusal = excinfo.value.exceptions[1]
    assert isinstance(refusal, OSError) and refusal.errno == errno.ECONNREFUSED


def test_keyboard_interrupt_while_attempts_are_pending(hole: Loopback) -> None:
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
                5,
                delay=0.1,
                socket_factory=recorder,
            )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_timer[0]:
            left = previous_timer[0] - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), previous_timer[1])
    assert time.monotonic() - start < 2
    assert len(recorder.made) == 3
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
            on_attempt_done=lambda address, error: reports.append(address[1][0]),
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
