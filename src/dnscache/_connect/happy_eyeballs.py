"""create_connection with Happy Eyeballs v2 (RFC 8305), exactly the stdlib's while one attempt runs.

The stdlib's ``socket.create_connection`` tries the addresses of a name one
after another, each with the full timeout. That is fine while the first address
answers, and terrible when it does not: a black-holed address (a dead IPv6
route, a firewall that drops instead of rejecting, a server that died without
its address being withdrawn) costs the whole timeout, or the kernel's SYN
retries (about two minutes on Linux) when there is no timeout, before the next,
healthy address is even tried. A cache makes this worse, not better, because it
keeps serving the dead address for as long as the record lives.

RFC 8305 fixes it by racing. Addresses are first interleaved by family
(section 4), so a broken IPv6 path is followed by an IPv4 attempt rather than by
more IPv6; then attempts are *staggered* (section 5): the first starts at once,
each next one when the previous has failed or after the Connection Attempt
Delay, whichever comes first, and earlier attempts keep running. The first
handshake to complete wins; every other attempt is closed. Only the failure of
the most recently started attempt moves the next one forward (as in trio and
asyncio's staggered race): an older attempt failing does not reduce the load we
are about to add, a newer one failing means the path we were waiting on is gone.

**One attempt at a time is the stdlib's own code path.** Almost every connect
is decided by its first attempt, and programs and test suites watch that
attempt closely: a ``socket.socket`` subclass overriding ``connect()``
(CPython's own ``test_socket``, tracing wrappers), a ``mock.patch("socket.socket")``
(urllib3's suite), gevent's cooperative sockets. So while no other attempt is
in flight, an attempt is made exactly as the stdlib makes it, with the socket
class looked up at call time: ``socket()``, the options, ``settimeout`` (only
when a timeout is given), ``bind``, then a blocking ``sock.connect()``. With
one address nothing else happens at all. With more, the only difference is the
socket's timeout during ``connect()``: the smaller of the Connection Attempt
Delay and what is left of the call's deadline, put back afterwards. If that
``connect()`` times out with the handshake still under way, the socket is not
closed but handed to the race, which only then builds its machinery (a
selector, non-blocking sockets): starting a second attempt is the first moment
it is needed. Later attempts also go through ``sock.connect()``, on a
non-blocking socket (``BlockingIOError`` means "under way"), so a subclass sees
every connect. A socket that cannot be watched (a mock without a descriptor),
or whose ``connect()`` raised ``TimeoutError`` without starting a handshake
(the selector reports it writable at once, with no peer), ends as the
``TimeoutError`` it raised, exactly as in the stdlib. A socket whose timeout is
not a number (a mock), or is 0 (non-blocking: every connect fails with
``BlockingIOError``, as in the stdlib), gets the stdlib's loop, one attempt
after another, unchanged.

Everything happens in the calling thread. No threads means nothing to join or
leak, and a signal handler (Ctrl-C) interrupts the wait exactly as it
interrupts a blocking connect; every socket still open is then closed.

Where we must differ from the stdlib, we say so, and otherwise we match it:

* Deadlines. The stdlib gives each address the full timeout in turn, so three
  black-holed addresses take three timeouts. Here the timeout ``t`` bounds the
  whole call, as a caller passing ``timeout=t`` expects: every attempt ends by
  ``t`` after the first socket was made, and those still pending then fail
  with ``TimeoutError("timed out")``, the exception ``sock.connect`` raises.
  So that a short ``t`` (or a long delay) does not leave addresses untried,
  the next attempt starts after the delay or after this one's even share of
  the time left, whichever comes first (:func:`schedule`); with delay 0
  (strictly one at a time) that share, at least 2 s, is how long an attempt
  may take before it is given up. With one address all of this is the
  stdlib's behaviour exactly. ``t`` is the socket's own timeout: the one given
  (so a bad value raises ValueError/TypeError from the first socket made,
  before any connect), otherwise whatever a new socket has from
  ``socket.setdefaulttimeout``; without either there is no deadline and each
  attempt waits as long as the kernel lets it. The returned socket has the
  caller's timeout, blocking mode included.
* Errors. Without ``all_errors`` we raise the error of the *last attempt in
  attempt order*, which is the error the stdlib raises for the same list (its
  last address is also its last attempt), even when, racing, another attempt
  was the last to fail. With ``all_errors`` we raise
  ``ExceptionGroup("create_connection failed", errors)`` in attempt order. An
  empty list raises ``OSError("getaddrinfo returns an empty list")``. An
  ``OSError`` while setting an attempt up (``socket()``, ``setsockopt``,
  ``bind``) is that attempt's error, as in the stdlib; anything else
  (``TypeError`` from a malformed address, ``KeyboardInterrupt``) propagates at
  once, after every socket is closed (the stdlib leaks the socket there).
* Huge values. ``poll`` takes at most ``INT_MAX`` milliseconds and
  ``Event.wait``/``settimeout`` at most ``threading.TIMEOUT_MAX`` seconds; a
  delay or timeout of 1e10 would raise ``OverflowError`` there. Every wait we
  compute is cut to ``MAX_WAIT`` (about 24 days), after which the loop simply
  looks again. A caller's own timeout reaches ``settimeout`` unchanged, as in
  the stdlib, and fails there the same way if it is out of range.

Linux quirks that shape the code: a non-blocking connect on loopback may
complete, or be refused, inside ``connect`` itself, so both are handled there
and not only after the wait; "writable with no error" also describes a socket
that never started connecting, so a winner is confirmed with ``getpeername``
(Stevens, UNP 16.4); the socket must leave the selector before it is closed,
or a reused descriptor number would be confused with it.
"""

from __future__ import annotations

import errno
import math
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from itertools import chain, zip_longest
from typing import Any, cast

from .._core.addrinfo import AddrInfo

_GLOBAL_DEFAULT_TIMEOUT: Any = socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]

# RFC 8305 section 5 recommends 250 ms, the figure Chrome and Firefox use (and
# trio's DEFAULT_DELAY): long enough that a healthy first address almost always
# answers before a second attempt adds load, short enough that a dead one costs
# a quarter of a second instead of a timeout.
DEFAULT_DELAY = 0.25
# RFC 8305 section 4 lets a client try more than one address of the preferred
# family before the first of the other; strict alternation (one) is what the
# issue asks for and what makes a broken family cost a single delay.
FIRST_ADDRESS_FAMILY_COUNT = 1
# The longest single wait we ask of the platform: poll(2) takes an int of
# milliseconds (CPython raises OverflowError above INT_MAX), settimeout and
# Event.wait at most threading.TIMEOUT_MAX seconds. A longer wait is several.
MAX_WAIT = min(threading.TIMEOUT_MAX, (2**31 - 1) / 1000)
# With attempts strictly one after another (delay 0) under a deadline, each gets
# its share of the time left, but not less than this (unless less is left): a
# slow but live first address deserves a real chance. Go's net package uses the
# same figure ("saneMinimum") for the same purpose.
SANE_MINIMUM = 2.0
# poll(2) rather than epoll: a handful of descriptors, and no descriptor of its
# own to create and close on every call.
_Selector: type[selectors.BaseSelector] = getattr(
    selectors, "PollSelector", selectors.SelectSelector
)

# The class as it was at import, for isinstance: socket.socket itself may be a mock now.
_SOCKET = socket.socket
OnAttemptDone = Callable[[AddrInfo, BaseException | None], None]
SocketFactory = Callable[[int, int, int], socket.socket]


def interleave(
    addrinfos: Sequence[AddrInfo], first_family_count: int = FIRST_ADDRESS_FAMILY_COUNT
) -> list[AddrInfo]:
    """Reorder for RFC 8305 section 4: alternate families, the first entry's family first.

    The first ``first_family_count`` entries of the preferred family lead, then
    one of each family in turn; within a family the order is kept. Idempotent.
    """
    if first_family_count < 1:
        raise ValueError("first_family_count must be at least 1")
    by_family: dict[Any, list[AddrInfo]] = {}
    for info in addrinfos:
        by_family.setdefault(info[0], []).append(info)
    if len(by_family) < 2:
        return list(addrinfos)
    lists = list(by_family.values())
    head = lists[0][: first_family_count - 1]
    lists[0] = lists[0][first_family_count - 1 :]
    rest = chain.from_iterable(zip_longest(*lists))
    return head + [info for info in rest if info is not None]


def create_connection(
    addrinfos: Sequence[AddrInfo],
    timeout: Any = _GLOBAL_DEFAULT_TIMEOUT,
    source_address: Any = None,
    *,
    all_errors: bool = False,
    delay: float = DEFAULT_DELAY,
    socket_options: Sequence[tuple[Any, ...]] | None = None,
    on_attempt_done: OnAttemptDone | None = None,
    socket_factory: SocketFactory | None = None,
    selector_factory: Callable[[], selectors.BaseSelector] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> socket.socket:
    """socket.create_connection over resolved ``addrinfos``, racing them (see module doc).

    ``addrinfos`` are SOCK_STREAM getaddrinfo tuples in preference order; they
    are interleaved by family here. ``delay`` is the Connection Attempt Delay;
    0 means strictly one attempt at a time. ``socket_options`` are
    ``setsockopt`` argument tuples applied to every attempt right after
    ``socket()`` (urllib3's convention and order). ``socket_factory`` makes the
    sockets (by default ``socket.socket`` as it is at call time),
    ``selector_factory`` the selector the race waits on, ``clock`` tells the
    time: tests play the network with the three.

    ``on_attempt_done(addrinfo, error)`` is called as each attempt ends, with
    None for the winner, and with a ``TimeoutError`` for attempts started
    before the winner and still pending (not for those started after it). It
    must not raise: if it does, the exception propagates and every socket, the
    winner's included, is closed. Local set-up failures (``socket()``,
    ``bind``) are reported like connect errors: callers keeping address health
    may want to skip those errnos.
    """
    if not delay >= 0:  # also catches NaN
        raise ValueError(f"delay must be a number >= 0, not {delay!r}")
    factory = socket.socket if socket_factory is None else socket_factory
    if len(addrinfos) == 1:
        return _connect_one(
            addrinfos[0], factory, timeout, source_address, socket_options, all_errors,
            on_attempt_done,
        )  # fmt: skip
    if not addrinfos:
        raise OSError("getaddrinfo returns an empty list")
    options = socket_options or ()
    race = (
        addrinfos, factory, timeout, source_address, options, delay, on_attempt_done,
        selector_factory or _Selector, clock,
    )  # fmt: skip
    # The first attempt, alone: the stdlib's steps, its connect cut at the pace. This
    # is the usual whole story, so it is spelled out here; the race starts only if not.
    info = addrinfos[0]
    now = clock()
    try:
        sock = _open(factory, info, timeout, source_address, options)
    except OSError as exc:
        return _Race(*race).after_first(now, None, exc, False).run(all_errors)
    limit, deadline, plain = _limits(timeout, sock, now)
    pace, alone = schedule(deadline - now, delay, len(addrinfos) - 1)
    budget = None if plain or alone == math.inf else min(alone, MAX_WAIT)
    try:
        if budget is not None:
            sock.settimeout(budget)
        sock.connect(info[4])
    except OSError as exc:
        # Timed out with the handshake perhaps still under way: it may race on.
        cut = budget is not None and budget < deadline - now and delay > 0
        adopt = cut and isinstance(exc, TimeoutError)
        first = _Race(*race).limited(limit, deadline, plain)
        return first.after_first(now + pace, sock, exc, adopt).run(all_errors)
    except BaseException:
        sock.close()
        raise
    try:
        if budget is not None:
            sock.settimeout(limit)  # the caller's mode, blocking included
        if on_attempt_done is not None:
            on_attempt_done(info, None)
    except BaseException:
        sock.close()
        raise
    return sock


def _connect_one(
    info: AddrInfo,
    factory: SocketFactory,
    timeout: Any,
    source_address: Any,
    options: Sequence[tuple[Any, ...]] | None,
    all_errors: bool,
    on_attempt_done: OnAttemptDone | None,
) -> socket.socket:
    """The stdlib's loop body for a single address, statement for statement."""
    af, socktype, proto, _canonname, sa = info
    sock = None
    try:
        sock = factory(af, socktype, proto)
        if options:
            for option in options:
                sock.setsockopt(*option)
        if timeout is not _GLOBAL_DEFAULT_TIMEOUT:
            sock.settimeout(timeout)
        if source_address:
            sock.bind(source_address)
        sock.connect(sa)
    except OSError as exc:
        if sock is not None:
            sock.close()
        error: OSError | None = exc
    except BaseException:
        if sock is not None:  # the stdlib leaks it here
            sock.close()
        raise
    else:
        if on_attempt_done is not None:
            try:
                on_attempt_done(info, None)
            except BaseException:
                sock.close()
                raise
        return sock
    # Raised outside the except clause, as the stdlib does: no implicit __context__.
    try:
        assert error is not None
        if on_attempt_done is not None:
            on_attempt_done(info, error)
        if all_errors:
            raise ExceptionGroup("create_connection failed", [error])
        raise error
    finally:
        error = None  # the traceback references this frame: break the cycle, as the stdlib does


def _open(
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


def _limits(timeout: Any, sock: socket.socket, now: float) -> tuple[Any, float, bool]:
    """(the sockets' timeout, the call's deadline, whether to run the stdlib's plain loop).

    The timeout is the one given, or the new socket's default. A socket that is
    not a ``socket.socket`` (a mock), a timeout of 0 (non-blocking: every connect
    fails at once) or one that is not a number mean the plain loop: no
    deadline, no racing, not one call the stdlib would not make.
    """
    if not isinstance(sock, _SOCKET):
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


def schedule(left: float, delay: float, following: int) -> tuple[float, float]:
    """For an attempt starting now: (when the next may start, how long this one runs alone).

    Seconds from now; ``left`` is the time to the call's deadline (inf: none),
    ``following`` the number of addresses after this one. The next attempt is
    due after ``delay`` (RFC 8305), or sooner under a deadline: once this
    attempt has had its share of what is left, so that every address is tried
    before the deadline (Go's ``net.Dialer`` divides the time left evenly among
    the addresses left in the same way). With ``delay`` 0 attempts never
    overlap, and the share is how long this one may take before it is given up,
    never cut below ``SANE_MINIMUM`` unless less than that is left (Go's rule).
    """
    if following == 0:
        return math.inf, left
    share = left / (following + 1)
    if delay == 0:
        return math.inf, (share if share >= SANE_MINIMUM else min(left, SANE_MINIMUM))
    pace = min(delay, share)
    return pace, pace


class _Race:
    """One multi-address create_connection: its attempts, their sockets, the selector once needed.

    Attempts are made in order. While none is in flight, the next is a blocking
    ``connect()`` cut at :func:`schedule`'s time; one that times out still
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
        self.plain = False  # a timeout of 0 or not a number: the stdlib's loop, unchanged
        self.started = 0  # attempts begun; the next one's index
        self.next_start = -math.inf
        self.latest = -1  # the attempt most recently begun: its failure starts the next

    def limited(self, limit: Any, deadline: float, plain: bool) -> _Race:
        """Take the limits the first socket set (see :func:`_limits`)."""
        self._limit, self.deadline, self.plain, self.timed = limit, deadline, plain, True
        return self

    def after_first(
        self, next_start: float, sock: socket.socket | None, error: OSError, adopt: bool
    ) -> _Race:
        """Take over from a first attempt that did not connect (see create_connection)."""
        self.started, self.latest, self.next_start = 1, 0, next_start
        if sock is not None:
            self._socks[0] = sock
            if adopt and self._adopt(0, sock, cast(TimeoutError, error)):
                return self
            self._drop(0)
        self._fail(0, error, self._clock())
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
            sock = _open(self._factory, info, self._timeout, self._source_address, self._options)
        except OSError as exc:
            self._fail(index, exc, now)
            return None
        self._socks[index] = sock
        if not self.timed:
            self.limited(*_limits(self._timeout, sock, now))
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
