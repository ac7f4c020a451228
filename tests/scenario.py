"""A scripted network for ``happy_eyeballs.create_connection``, under a fake clock (trio's style).

A :class:`Scenario` plays the socket factory, the selector factory and the clock
that ``create_connection`` takes, so the real code runs, unchanged, against a
network whose every address follows a script, and every expected time is exact
(``{"127.0.0.2": 0, "127.0.0.3": 0.25}``). Time moves only while the code under
test waits: in a blocking ``connect()`` (up to the socket's timeout) or in
``select()``. Each socket is told its address when created, from the attempt
order (``interleave``), so a script can make ``socket()`` itself fail.

Scripts per address: ``ok_at(t)`` (the handshake completes ``t`` seconds after
``connect()``), ``refused_at(t)``, ``HANG`` (never answers), ``CONNECTED_AT_ONCE``,
``raises(exc)`` (``connect()`` raises without starting a handshake, as a
``socket.socket`` subclass overriding it may), ``fails_to_start(exc)``
(``socket()`` raises).
"""

from __future__ import annotations

import errno
import math
import os
import selectors
import socket
import threading
from typing import Any

from dnscache._connect import happy_eyeballs as he
from dnscache._core.addrinfo import AddrInfo

AF4, AF6 = socket.AF_INET, socket.AF_INET6
HANG = ("hang",)
CONNECTED_AT_ONCE = ("ok", 0.0)
DEFAULT = he._GLOBAL_DEFAULT_TIMEOUT


def info(ip: str, port: int = 80) -> AddrInfo:
    if ":" in ip:
        return (AF6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0))
    return (AF4, socket.SOCK_STREAM, 6, "", (ip, port))


def refused() -> OSError:
    return OSError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))


def ok_at(t: float) -> tuple[Any, ...]:
    return ("ok", t)


def refused_at(t: float) -> tuple[Any, ...]:
    return ("error", t, refused())


def raises(exc: BaseException) -> tuple[Any, ...]:
    return ("raise", exc)


def fails_to_start(exc: BaseException) -> tuple[Any, ...]:
    return ("start", exc)


class FakeSocket(socket.socket):
    """The part of ``socket.socket`` create_connection uses, following its address's script.

    A ``socket.socket`` without a descriptor (``__init__`` never runs), as create_connection
    treats anything else (a mock) as something to call exactly as the stdlib does.
    """

    def __new__(cls, *args: Any) -> FakeSocket:
        return socket.socket.__new__(cls)

    def __init__(self, scenario: Scenario, ip: str, fd: int) -> None:
        self.scenario = scenario
        self.ip = ip
        self.fd = fd
        self.limit: float | None = scenario.default_timeout
        self.calls: list[tuple[Any, ...]] = []  # every method called, with its arguments
        self.state = "idle"  # connecting, connected, failed, closed
        self.done_at = math.inf  # when the handshake ends, once connecting
        self.error: OSError | None = None  # how it ends, if it fails

    def setsockopt(self, *args: Any) -> None:
        self.calls.append(("setsockopt", *args))

    def settimeout(self, value: float | None) -> None:
        self.calls.append(("settimeout", value))
        if value is not None:
            if not isinstance(value, int | float):
                raise TypeError("timeout must be a number")
            if not value >= 0:
                raise ValueError("Timeout value out of range")
            # What the real one takes (and what poll(2) takes inside connect()).
            assert value <= he.MAX_WAIT or value == self.scenario.given_timeout, value
        self.limit = None if value is None else float(value)

    def gettimeout(self) -> float | None:
        return self.limit

    def setblocking(self, flag: bool) -> None:
        self.calls.append(("setblocking", flag))
        self.limit = None if flag else 0.0

    def bind(self, address: Any) -> None:
        self.calls.append(("bind", address))

    def fileno(self) -> int:
        return self.fd

    def connect(self, sockaddr: Any) -> None:
        self.calls.append(("connect", sockaddr))
        s = self.scenario
        assert sockaddr[0] == self.ip and self.state == "idle"
        assert self.ip not in s.started, "one connect per address"
        s.started[self.ip] = s.now
        s.how[self.ip] = "non-blocking" if self.limit == 0 else "blocking"
        step = s.script[self.ip]
        if step[0] == "raise":
            raise step[1]
        self.state = "connecting"
        if step[0] in ("ok", "error"):
            self.done_at = s.now + step[1]
            self.error = step[2] if step[0] == "error" else None
        if self.limit == 0:
            if self.done_at <= s.now:
                return self._finish()
            raise BlockingIOError(errno.EINPROGRESS, os.strerror(errno.EINPROGRESS))
        limit = math.inf if self.limit is None else s.now + self.limit
        s.advance(min(self.done_at, limit))
        if self.done_at <= limit:
            return self._finish()
        raise TimeoutError("timed out")  # the handshake carries on

    def _finish(self) -> None:
        if self.error is not None:
            self.state = "failed"
            raise self.error
        self.state = "connected"

    def writable_at(self) -> float:
        return self.done_at if self.state == "connecting" else self.scenario.now

    def getsockopt(self, level: int, name: int) -> int:
        assert (level, name) == (socket.SOL_SOCKET, socket.SO_ERROR)
        if self.state == "connecting" and self.done_at <= self.scenario.now:
            self.state = "failed" if self.error is not None else "connected"
        if self.state == "failed" and self.error is not None:
            return self.error.errno or 0
        return 0

    def getpeername(self) -> Any:
        if self.state != "connected":
            raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))
        return (self.ip, 80)

    def __repr__(self) -> str:
        return f"<FakeSocket {self.ip} {self.state}>"

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def close(self) -> None:
        if self.state != "closed":
            self.state = "closed"
            self.scenario.ended.setdefault(self.ip, self.scenario.now)


class FakeSelector:
    """A selector over FakeSockets: ``select`` moves the clock to the next event or timeout."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.keys: dict[FakeSocket, selectors.SelectorKey] = {}
        self.closed = False

    def register(self, sock: FakeSocket, events: int, data: Any) -> None:
        assert sock not in self.keys and sock.state != "closed"
        self.keys[sock] = selectors.SelectorKey(sock, sock.fd, events, data)

    def unregister(self, sock: FakeSocket) -> None:
        del self.keys[sock]

    def select(self, timeout: float | None) -> list[tuple[selectors.SelectorKey, int]]:
        s = self.scenario
        assert timeout is not None and 0 <= timeout <= he.MAX_WAIT, timeout
        s.waits.append(timeout)
        wake = min([sock.writable_at() for sock in self.keys] + [s.now + timeout])
        s.advance(wake)
        return [
            (key, selectors.EVENT_WRITE)
            for sock, key in self.keys.items()
            if sock.writable_at() <= s.now
        ]

    def close(self) -> None:
        assert not self.keys, "closed with sockets still registered"
        self.closed = True


class Scenario:
    """Plays every address's script under a fake clock (see the module doc)."""

    def __init__(
        self,
        script: dict[str, tuple[Any, ...]],
        *,
        default_timeout: float | None = None,
        interrupt_at: float | None = None,
    ) -> None:
        self.script = script
        self.default_timeout = default_timeout
        self.interrupt_at = interrupt_at
        self.given_timeout: Any = None
        self.now = 0.0
        self.order: list[str] = []  # the address of each socket made, in attempt order
        self.started: dict[str, float] = {}  # when connect() was called
        self.how: dict[str, str] = {}  # blocking or non-blocking
        self.ended: dict[str, float] = {}  # closed
        self.sockets: list[FakeSocket] = []
        self.selectors: list[FakeSelector] = []
        self.waits: list[float] = []  # every select() timeout
        self.reports: list[tuple[str, BaseException | None, float]] = []

    def advance(self, when: float) -> None:
        assert when >= self.now and when < math.inf, "the call would block forever"
        if self.interrupt_at is not None and self.interrupt_at <= when:
            self.now = self.interrupt_at
            raise KeyboardInterrupt
        self.now = when

    def clock(self) -> float:
        return self.now

    def socket(self, family: int, type: int, proto: int) -> Any:
        ip = self.order[len(self.sockets)]
        step = self.script[ip]
        if step[0] == "start":
            self.sockets.append(None)  # type: ignore[arg-type]
            self.started[ip] = self.ended[ip] = self.now
            raise step[1]
        sock = FakeSocket(self, ip, 100 + len(self.sockets))
        self.sockets.append(sock)
        return sock

    def selector(self) -> FakeSelector:
        selector = FakeSelector(self)
        self.selectors.append(selector)
        return selector

    def on_attempt_done(self, addrinfo: AddrInfo, error: BaseException | None) -> None:
        self.reports.append((addrinfo[4][0], error, self.now))

    def run(self, timeout: Any = DEFAULT, *, delay: float = 0.25, all_errors: bool = False) -> Any:
        infos = [info(ip) for ip in self.script]
        self.order = [i[4][0] for i in he.interleave(infos)]
        self.given_timeout = timeout
        won: Any = None
        try:
            won = he.create_connection(
                infos,
                timeout,
                all_errors=all_errors,
                delay=delay,
                on_attempt_done=self.on_attempt_done,
                socket_factory=self.socket,
                selector_factory=self.selector,  # type: ignore[arg-type]
                clock=self.clock,
            )
        except BaseException:
            won = None
            raise
        finally:
            open_ = [s for s in self.sockets if s is not None and s.state != "closed"]
            assert open_ == ([] if won is None else [won]), "attempts left open"
            assert all(selector.closed for selector in self.selectors)
        return won

    def timeouts(self, ip: str) -> list[float | None]:
        """Every timeout set on ``ip``'s socket, in order."""
        sock = next(s for s in self.sockets if s is not None and s.ip == ip)
        return [call[1] for call in sock.calls if call[0] == "settimeout"]


assert threading.TIMEOUT_MAX >= he.MAX_WAIT
