"""The machinery of a multi-address connect: attempts, their sockets, a selector once needed.

``happy_eyeballs.create_connection`` makes the first attempt itself, as the
stdlib does, and hands over to :class:`Race` only when that attempt did not
connect. Everything here follows the rules of ``pacing`` and the contract in
``happy_eyeballs``'s essay; the sockets come from the caller's factory and the
time from the caller's clock, so tests play the whole network.

Why one class of about 260 lines: :class:`Race` is a state machine (pending
attempts, deadlines, the next start, the winner), and its transitions are easier
to check side by side than spread over helpers.
"""

from __future__ import annotations

import errno
import math
import os
import selectors
import socket
from collections.abc import Callable, Sequence
from typing import Any, cast

from .._core.addrinfo import AddrInfo
from .pacing import MAX_WAIT, interleave, schedule

_GLOBAL_DEFAULT_TIMEOUT: Any = socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]
# poll(2) rather than epoll: a handful of descriptors, and no descriptor of its
# own to create and close on every call.
DefaultSelector: type[selectors.BaseSelector] = getattr(
    selectors, "PollSelector", selectors.SelectSelector
)

# The class as it was at import, for isinstance: socket.socket itself may be a mock now.
SOCKET_CLASS = socket.socket
OnAttemptDone = Callable[[AddrInfo, BaseException | None], None]
SocketFactory = Callable[[int, int, int], socket.socket]


def open_attempt(
    factory: SocketFactory,
    info: AddrInfo,
    timeout: Any,
    source_address: Any,
    options: Sequence[tuple[Any, ...]],
) -> socket.socket:
    """A socket for ``info``, set up as urllib3's loop (the stdlib's, plus options) does."""
    sock = factory(info[0], info[1], info[2])
    try:
        for option in options:
            sock.setsockopt(*option)
        if timeout is not _GLOBAL_DEFAULT_TIMEOUT:
            sock.settimeout(timeout)
        if source_address:
            sock.bind(source_address)
    except BaseException:
        sock.close()
        raise
    return sock


def limits(timeout: Any, sock: socket.socket, now: float) -> tuple[Any, float, bool]:
    """(the sockets' timeout, the call's deadline, whether to run the stdlib's plain loop).

    The timeout is the one given, or the new socket's default. A socket that is
    not a ``socket.socket`` (a mock), a timeout of 0 (non-blocking: every connect
    fails at once) or one that is not a number mean the plain loop: no
    deadline, no racing, not one call the stdlib would not make.
    """
    if not isinstance(sock, SOCKET_CLASS):
        return None, math.inf, True
    limit = timeout
    if limit is _GLOBAL_DEFAULT_TIMEOUT or (
        limit is not None and type(limit) is not float and type(limit) is not int
    ):
        limit = sock.gettimeout()  # the default timeout, or how the socket read the value
    if limit is None:
        return None, math.inf, False
    if isinstance(limit, (int, float)) and limit > 0:
        return limit, now + limit, False
    return limit, math.inf, True


class Race:
    """One multi-address create_connection: its attempts, their sockets, the selector once needed.

    Attempts are made in order. While none is in flight, the next is a blocking
    ``connect()`` cut at ``pacing.schedule``'s time; one that times out still
    connecting is *adopted*: watched by the selector while later attempts start
    on non-blocking sockets. Owns every socket it made until one is handed out.
    """

    __slots__ = (
        "_clock", "_count", "_delay", "_errors", "_factory", "_flying", "_infos", "_limit",
        "_make_selector", "_options", "_report", "_selector", "_socks", "_source_address",
        "_timeout", "_unstarted", "deadline", "latest", "next_start", "plain", "started",
        "timed",
    )  # fmt: skip

    def __init__(
        self,
        infos: Sequence[AddrInfo],
        factory: SocketFactory,
        timeout: Any,
        source_address: Any,
        options: Sequence[tuple[Any, ...]],
        delay: float,
        report: OnAttemptDone | None,
        make_selector: Callable[[], selectors.BaseSelector],
        clock: Callable[[], float],
    ) -> None:
        self._infos = infos  # interleaved when a second attempt starts: the first stays first
        self._count = count = len(infos)
        self._factory = factory
        self._timeout = timeout
        self._source_address = source_address
        self._options = options
        self._delay = delay
        self._report = report
        self._make_selector = make_selector
        self._clock = clock
        self._errors: list[OSError | None] = [None] * count
        self._socks: dict[int, socket.socket] = {}  # open attempts
        self._flying: dict[int, None] = {}  # those in the selector, in start order
        self._selector: selectors.BaseSelector | None = None
        self._unstarted: dict[int, TimeoutError] = {}
        self._limit: Any = None  # the sockets' timeout: what the winner gets back
        self.deadline = math.inf
        self.timed = False  # whether the deadline has been set (by the first socket made)
        self.plain = False  # a mock, or a timeout of 0: the stdlib's loop, unchanged
        self.started = 0  # attempts begun; the next one's index
        self.next_start = -math.inf
        self.latest = -1  # the attempt most recently begun: its failure starts the next

    def limited(self, limit: Any, deadline: float, plain: bool) -> Race:
        """Take the limits the first socket set (see :func:`limits`)."""
        self._limit, self.deadline, self.plain, self.timed = limit, deadline, plain, True
        return self

    def after_first(
        self, next_start: float, sock: socket.socket | None, error: OSError, adopt: bool
    ) -> Race:
        """Take over from a first attempt that did not connect (see create_connection)."""
        self.started, self.latest, self.next_start = 1, 0, next_start
        try:
            if sock is not None:
                self._socks[0] = sock
                if adopt and self._adopt(0, sock, cast(TimeoutError, error)):
                    return self
                self._drop(0)
            self._fail(0, error, self._clock())
        except BaseException:
            self._close()
            raise
        return self

    def run(self, all_errors: bool) -> socket.socket:
        """The winner's socket, or raise as the stdlib would; every other socket closed."""
        clock = self._clock
        count = self._count
        flying = self._flying
        try:
            while True:
                now = clock()
                if flying and now >= self.deadline:
                    for index in list(flying):
                        self._drop(index)
                        self._fail(index, TimeoutError("timed out"), now)
                if (
                    self.started < count
                    and now < self.deadline
                    and (not flying or now >= self.next_start)
                ):
                    won = self._attempt(now)
                elif flying:
                    won = self._wait(now)
                else:
                    break
                if won is not None:
                    return won
            # Every attempt made ended in failure (those never begun have no error).
            failed = cast(list[OSError], self._errors[: self.started])
            if not all_errors:
                raise failed[-1]
            # A copy: the stdlib hands over the list it then clears, so its repr shows [].
            raise ExceptionGroup("create_connection failed", list(failed))
        finally:
            # The errors' tracebacks reference this frame: break the cycle, as the stdlib does.
            self._errors.clear()
            self._close()

    def _attempt(self, now: float) -> socket.socket | None:
        """Begin the next attempt; its socket if it connected at once."""
        index = self.latest = self.started
        self.started += 1
        if index == 1:
            self._infos = interleave(self._infos)
        info = self._infos[index]
        try:
            sock = open_attempt(
                self._factory, info, self._timeout, self._source_address, self._options
            )
        except OSError as exc:
            self._fail(index, exc, now)
            return None
        self._socks[index] = sock
        if not self.timed:
            self.limited(*limits(self._timeout, sock, now))
        pace, alone = schedule(self.deadline - now, self._delay, self._count - self.started)
        self.next_start = now + pace
        sockaddr = info[4]
        if self._flying:  # racing: a non-blocking connect, watched by the selector
            try:
                sock.setblocking(False)
                sock.connect(sockaddr)
            except (BlockingIOError, InterruptedError):  # EINPROGRESS; EINTR carries on too
                self._watch(index, sock)
                return None
            except OSError as exc:
                self._drop(index)
                self._fail(index, exc, now)
                return None
            return self._win(index, restore=True)
        # Alone: as the first attempt in create_connection.
        budget = None if self.plain or alone == math.inf else min(alone, MAX_WAIT)
        try:
            if budget is not None:
                sock.settimeout(budget)
            sock.connect(sockaddr)
        except TimeoutError as exc:
            cut = budget is not None and budget < self.deadline - now and self._delay > 0
            if cut and self._adopt(index, sock, exc):
                return None
            self._drop(index)
            self._fail(index, exc, self._clock())
            return None
        except OSError as exc:
            self._drop(index)
            self._fail(index, exc, self._clock())
            return None
        return self._win(index, restore=budget is not None)

    def _adopt(self, index: int, sock: socket.socket, error: TimeoutError) -> bool:
        """Keep waiting for a blocking connect that timed out; False if it cannot be watched."""
        try:
            fd = sock.fileno()
        except Exception:  # a mock, or a class without descriptors: nothing to watch
            return False
        if not isinstance(fd, int) or fd < 0:
            return False
        self._watch(index, sock)
        self._unstarted[index] = error
        return True

    def _watch(self, index: int, sock: socket.socket) -> None:
        if self._selector is None:
            self._selector = self._make_selector()
        self._selector.register(sock, selectors.EVENT_WRITE, index)
        self._flying[index] = None

    def _wait(self, now: float) -> socket.socket | None:
        """Wait for an attempt in flight to end, or the next to be due; the winner, if any."""
        assert self._selector is not None
        wake = self.deadline
        if self.started < self._count:
            wake = min(wake, self.next_start)
        events = self._selector.select(min(max(wake - now, 0.0), MAX_WAIT))
        now = self._clock()
        winners = []
        for index in sorted(key.data for key, _events in events):
            error = self._outcome(index)
            if error is None:
                winners.append(index)  # the earliest begun of them wins
            else:
                self._drop(index)
                self._fail(index, error, now)
        return self._win(winners[0], restore=True) if winners else None

    def _outcome(self, index: int) -> OSError | None:
        """How a watched attempt that became writable ended: None if connected."""
        sock = self._socks[index]
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err not in (0, errno.EISCONN):
            return OSError(err, os.strerror(err))  # the errno's subclass, as connect raises
        try:
            sock.getpeername()
        except OSError:  # writable, no error, no peer: the connect never started
            unstarted = self._unstarted.get(index)
            return unstarted or OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))
        return None

    def _fail(self, index: int, error: OSError, now: float) -> None:
        self._errors[index] = error
        if index == self.latest:
            self.next_start = min(self.next_start, now)
        if self._report is not None:
            self._report(self._infos[index], error)

    def _win(self, index: int, *, restore: bool) -> socket.socket:
        report = self._report
        if report is not None:
            report(self._infos[index], None)
        for loser in list(self._flying):
            if loser != index:
                self._drop(loser)
                if loser < index and report is not None:
                    # Begun earlier and still not connected when a later attempt (at
                    # least a pace later) won: as good as a timeout for ordering next
                    # time. That is how a black-holed address ends up last.
                    report(self._infos[loser], TimeoutError("lost the race"))
        sock = self._forget(index)
        if restore:
            try:
                sock.settimeout(self._limit)  # the caller's mode, blocking included
            except BaseException:
                sock.close()
                raise
        return sock

    def _forget(self, index: int) -> socket.socket:
        """Stop owning attempt ``index``'s socket (unwatched first: its number may be reused)."""
        sock = self._socks.pop(index)
        if index in self._flying:
            del self._flying[index]
            self._unstarted.pop(index, None)
            assert self._selector is not None
            self._selector.unregister(sock)
        return sock

    def _drop(self, index: int) -> None:
        """Close attempt ``index`` (failed, timed out or lost)."""
        sock = self._socks.get(index)
        if sock is not None:
            try:
                self._forget(index)
            finally:
                sock.close()

    def _close(self) -> None:
        """Close every socket not handed out, then the selector. Idempotent."""
        try:
            for index in list(self._socks):
                self._drop(index)
        finally:
            if self._selector is not None:
                self._selector.close()
                self._selector = None
