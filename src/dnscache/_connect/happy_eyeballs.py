"""create_connection with Happy Eyeballs v2 (RFC 8305).

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

Everything happens in the calling thread, with non-blocking sockets and a
selector: ``connect_ex`` returns EINPROGRESS, the socket becomes writable when
the handshake ends, and ``SO_ERROR`` says how it ended (the same dance CPython's
own ``sock.connect`` does under a timeout). No threads means nothing to join or
leak, and a signal handler (Ctrl-C) interrupts the wait exactly as it
interrupts a blocking connect; every socket still open is then closed.

Where we must differ from the stdlib, we say so, and otherwise we match it:

* Timeouts. The stdlib gives each address the socket's timeout in turn. We
  give each *attempt* the same: an attempt started later still gets its full
  timeout, so the call ends when every attempt has failed or timed out. An
  attempt that times out fails with ``TimeoutError("timed out")``, the
  exception ``sock.connect`` raises. "The socket's timeout" is exactly the
  stdlib's: ``settimeout(timeout)`` on each new socket when a timeout is given
  (so a bad value raises ValueError/TypeError from the first socket created,
  before any connect), otherwise whatever the new socket has from
  ``socket.setdefaulttimeout``. A timeout of 0 makes every pending connect
  fail at once with BlockingIOError, as it does in the stdlib. The returned
  socket has that timeout back, blocking mode included.
* Errors. Without ``all_errors`` we raise the error of the *last attempt in
  attempt order*, which is the error the stdlib raises for the same list
  (its last address is also its last attempt), even when, racing, another
  attempt was the last to fail. With ``all_errors`` we raise
  ``ExceptionGroup("create_connection failed", errors)`` in attempt order. An
  empty list raises ``OSError("getaddrinfo returns an empty list")``. An
  ``OSError`` while setting an attempt up (``socket()``, ``setsockopt``,
  ``bind``) is that attempt's error, as in the stdlib; anything else
  (``TypeError`` from a malformed address, ``KeyboardInterrupt``) propagates at
  once, after every socket is closed (the stdlib leaks the socket there).

Linux quirks that shape the code: a non-blocking connect on loopback may
complete, or be refused, inside ``connect_ex`` itself, so both are handled
there and not only after the wait; a connect interrupted by a signal (EINTR)
carries on in the background like EINPROGRESS; the socket must leave the
selector before it is closed, or a reused descriptor number would be confused
with it.
"""

from __future__ import annotations

import errno
import math
import os
import selectors
import socket
import time
from collections.abc import Callable, Sequence
from itertools import chain, zip_longest
from typing import Any, Protocol, cast

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
# connect_ex results meaning "the handshake is under way": EINTR because POSIX
# says an interrupted connect completes asynchronously, as if EINPROGRESS.
_IN_PROGRESS = frozenset({errno.EINPROGRESS, errno.EINTR})
# poll(2) rather than epoll: a handful of descriptors, and no descriptor of its
# own to create and close on every call.
_Selector: type[selectors.BaseSelector] = getattr(
    selectors, "PollSelector", selectors.SelectSelector
)

OnAttemptDone = Callable[[tuple[int, Any], BaseException | None], None]
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


class _Net(Protocol):
    """The I/O the race needs; the real one is :class:`_Sockets`, tests script their own."""

    def start(self, index: int, info: AddrInfo) -> tuple[bool, float | None]:
        """Begin attempt ``index``: (connected already, its timeout); OSError if it failed."""

    def wait(self, timeout: float | None) -> list[tuple[int, OSError | None]]:
        """Block up to ``timeout`` (None: forever); the attempts that ended, and how."""

    def discard(self, index: int) -> None:
        """Close attempt ``index`` (failed, timed out or lost)."""

    def take(self, index: int) -> socket.socket:
        """Hand attempt ``index``'s connected socket to the caller, in its final mode."""

    def close(self) -> None:
        """Close every attempt not taken; called once, however the race ends."""


def create_connection(
    addrinfos: Sequence[AddrInfo],
    timeout: Any = _GLOBAL_DEFAULT_TIMEOUT,
    source_address: Any = None,
    *,
    all_errors: bool = False,
    delay: float = DEFAULT_DELAY,
    socket_options: Sequence[tuple[int, int, Any]] | None = None,
    on_attempt_done: OnAttemptDone | None = None,
    socket_factory: SocketFactory = socket.socket,
    clock: Callable[[], float] = time.monotonic,
) -> socket.socket:
    """socket.create_connection over resolved ``addrinfos``, racing them (see module doc).

    ``addrinfos`` are SOCK_STREAM getaddrinfo tuples in preference order; they
    are interleaved by family here. ``delay`` is the Connection Attempt Delay;
    0 means strictly one attempt at a time. ``socket_options`` are
    ``setsockopt`` argument tuples applied to every attempt before ``bind`` and
    ``connect`` (urllib3's convention). ``on_attempt_done((family, sockaddr),
    error)`` is called as each attempt ends, with None for the winner, and with a
    ``TimeoutError`` for attempts started before the winner and still pending
    (not for those started after it). It must not raise: if it does, the
    exception propagates and every socket, the winner's included, is closed.
    Local set-up failures (``socket()``, ``bind``) are reported like connect
    errors: callers keeping address health may want to skip those errnos.
    """
    if not addrinfos:
        raise OSError("getaddrinfo returns an empty list")
    if not delay >= 0:  # also catches NaN
        raise ValueError(f"delay must be a number >= 0, not {delay!r}")
    return _race(
        interleave(addrinfos),
        _Sockets(socket_factory, timeout, source_address, socket_options or ()),
        delay=delay,
        all_errors=all_errors,
        on_attempt_done=on_attempt_done,
        clock=clock,
    )


def _race(
    infos: Sequence[AddrInfo],
    net: _Net,
    *,
    delay: float,
    all_errors: bool,
    on_attempt_done: OnAttemptDone | None,
    clock: Callable[[], float],
) -> socket.socket:
    """Run the staggered race over ``net``; the winner's socket, or raise as the stdlib would."""
    count = len(infos)
    # delay 0 is "no overlap": the next attempt waits for the current one to fail.
    stagger = math.inf if delay == 0 else delay
    errors: list[OSError | None] = [None] * count
    deadlines: dict[int, float] = {}  # running attempts -> when they time out
    next_index = 0
    next_start = -math.inf
    latest = -1  # the attempt most recently started; its failure starts the next at once

    def fail(index: int, error: OSError, now: float) -> None:
        nonlocal next_start
        errors[index] = error
        if index == latest:
            next_start = min(next_start, now)
        if on_attempt_done is not None:
            on_attempt_done((int(infos[index][0]), infos[index][4]), error)

    def win(index: int) -> socket.socket:
        if on_attempt_done is not None:
            on_attempt_done((int(infos[index][0]), infos[index][4]), None)
        for loser in sorted(deadlines):
            if loser != index:
                net.discard(loser)
                if loser < index and on_attempt_done is not None:
                    # Started earlier and still not connected when a later attempt (at
                    # least `delay` later) won: as good as a timeout for ordering next
                    # time. That is how a black-holed address ends up last.
                    on_attempt_done(
                        (int(infos[loser][0]), infos[loser][4]), TimeoutError("lost the race")
                    )
        return net.take(index)

    try:
        while True:
            now = clock()
            for index, deadline in sorted(deadlines.items(), key=lambda item: item[1]):
                if deadline <= now:
                    del deadlines[index]
                    net.discard(index)
                    fail(index, TimeoutError("timed out"), now)
            while next_index < count and now >= next_start:
                index = latest = next_index
                next_index += 1
                next_start = now + stagger
                try:
                    connected, timeout = net.start(index, infos[index])
                except OSError as exc:
                    fail(index, exc, now)
                    continue
                if connected:
                    return win(index)
                deadlines[index] = math.inf if timeout is None else now + timeout
            if not deadlines and next_index >= count:
                break
            wake = min(deadlines.values(), default=math.inf)
            if next_index < count:
                wake = min(wake, next_start)
            ended = net.wait(None if wake == math.inf else max(wake - now, 0.0))
            now = clock()
            winners = []
            for index, error in sorted(ended, key=lambda item: item[0]):
                if error is None:
                    winners.append(index)  # the earliest started of them wins
                else:
                    del deadlines[index]
                    net.discard(index)
                    fail(index, error, now)
            if winners:
                return win(winners[0])
        failed = cast(list[OSError], errors)  # every attempt ended in failure: all set
        if not all_errors:
            raise failed[-1]
        # A copy: the stdlib hands over the list it then clears, so its repr shows [].
        raise ExceptionGroup("create_connection failed", list(failed))
    finally:
        # The errors' tracebacks reference this frame: break the cycle, as the stdlib does.
        errors.clear()
        net.close()


class _Sockets:
    """Non-blocking connect attempts multiplexed on one selector; owns every socket it made."""

    def __init__(
        self,
        factory: SocketFactory,
        timeout: Any,
        source_address: Any,
        options: Sequence[tuple[Any, ...]],
    ) -> None:
        self._factory = factory
        self._timeout = timeout
        self._source_address = source_address
        self._options = options
        self._selector = _Selector()
        self._socks: dict[int, socket.socket] = {}
        self._timeouts: dict[int, float | None] = {}
        self._waiting: set[int] = set()  # registered with the selector

    def start(self, index: int, info: AddrInfo) -> tuple[bool, float | None]:
        af, socktype, proto, _canonname, sockaddr = info
        sock = self._factory(af, socktype, proto)
        self._socks[index] = sock
        try:
            # The stdlib's order: settimeout first, so a bad timeout raises before
            # any bind or connect; then the options, which must precede bind.
            if self._timeout is not _GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(self._timeout)
            timeout = self._timeouts[index] = sock.gettimeout()
            for option in self._options:
                sock.setsockopt(*option)
            if self._source_address:
                sock.bind(self._source_address)
            sock.setblocking(False)
            err = sock.connect_ex(sockaddr)
            if err == 0:
                return True, timeout
            # CPython's connect waits only when the socket has a non-zero timeout;
            # with timeout 0 the EINPROGRESS itself is the error.
            if err in _IN_PROGRESS and timeout != 0:
                self._selector.register(sock, selectors.EVENT_WRITE, index)
                self._waiting.add(index)
                return False, timeout
            raise OSError(err, os.strerror(err))
        except BaseException:
            self.discard(index)
            raise

    def wait(self, timeout: float | None) -> list[tuple[int, OSError | None]]:
        ended: list[tuple[int, OSError | None]] = []
        for key, _events in self._selector.select(timeout):
            index: int = key.data
            err = self._socks[index].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            ended.append(
                (index, None if err in (0, errno.EISCONN) else OSError(err, os.strerror(err)))
            )
        return ended

    def discard(self, index: int) -> None:
        sock = self._socks.pop(index, None)
        if sock is None:
            return
        self._timeouts.pop(index, None)
        try:
            # Unregister before closing: afterwards the descriptor number may be reused.
            if index in self._waiting:
                self._waiting.discard(index)
                self._selector.unregister(sock)
        finally:
            sock.close()

    def take(self, index: int) -> socket.socket:
        sock = self._socks[index]
        if index in self._waiting:
            self._waiting.discard(index)
            self._selector.unregister(sock)
        sock.settimeout(self._timeouts[index])  # the caller's mode, blocking included
        del self._socks[index], self._timeouts[index]
        return sock

    def close(self) -> None:
        """Close every socket not handed out, then the selector. Idempotent."""
        try:
            for index in list(self._socks):
                self.discard(index)
        finally:
            self._selector.close()
