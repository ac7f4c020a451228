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
``TimeoutError`` it raised, exactly as in the stdlib. An object that is not a
``socket.socket`` (a mock), or a timeout of 0 (non-blocking: every connect
fails with ``BlockingIOError``, as in the stdlib), gets the stdlib's loop, one
attempt after another, with not one call the stdlib would not make.

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
  the time left, whichever comes first (``pacing.schedule``); with delay 0
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

Where things are: this module has the contract and the first attempt (the
whole story of almost every call); ``pacing`` the pure rules (the order of
addresses, when the next attempt is due, the constants and their reasons);
``race`` the machinery that runs once a second attempt is needed.
"""

from __future__ import annotations

import math
import selectors
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from .._core.addrinfo import AddrInfo
from .pacing import (
    DEFAULT_DELAY,
    FIRST_ADDRESS_FAMILY_COUNT,
    MAX_WAIT,
    SANE_MINIMUM,
    interleave,
    schedule,
)
from .race import (
    _GLOBAL_DEFAULT_TIMEOUT,
    DefaultSelector,
    OnAttemptDone,
    Race,
    SocketFactory,
    limits,
    open_attempt,
)

__all__ = [
    "DEFAULT_DELAY",
    "FIRST_ADDRESS_FAMILY_COUNT",
    "MAX_WAIT",
    "SANE_MINIMUM",
    "_GLOBAL_DEFAULT_TIMEOUT",
    "create_connection",
    "interleave",
    "schedule",
]


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
        selector_factory or DefaultSelector, clock,
    )  # fmt: skip
    # The first attempt, alone: the stdlib's steps, its connect cut at the pace. This
    # is the usual whole story, so it is spelled out here; the race starts only if not.
    info = addrinfos[0]
    now = clock()
    try:
        sock = open_attempt(factory, info, timeout, source_address, options)
    except OSError as exc:
        return Race(*race).after_first(now, None, exc, False).run(all_errors)
    limit, deadline, plain = limits(timeout, sock, now)
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
        first = Race(*race).limited(limit, deadline, plain)
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
