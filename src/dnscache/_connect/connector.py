"""Connecting by name: resolve through the cache, race the addresses, remember what worked.

A :class:`Connector` is what ``socket.create_connection`` (and urllib3's copy of
it) becomes while dnscache is active. It asks the cache for the name's
addresses, which come already ordered by address health, hands them to
:func:`happy_eyeballs.create_connection`, and notes each attempt's outcome in
the :class:`AddressHealth` store, so that an address that just failed is tried
last next time, here and in what ``getaddrinfo`` returns.

**Whatever is there at call time wins.** The stdlib's ``create_connection``
looks up ``socket.getaddrinfo`` and ``socket.socket`` each time it runs, and
test suites rely on it: ``mock.patch("socket.getaddrinfo")`` is how most of them
fake DNS, gevent and tracers wrap it. So the replacement resolves through the
cache only while ``socket.getaddrinfo`` is the cache's own function (or the
very original it wraps: a Resolver used on its own, never installed). If
anything else is there (a mock, a tracer, gevent, or another dnscache layer's
function, as when an outer ``patched()`` block's function is called while an
inner block is active), it calls the function it replaced, which is, at the
end of the chain, the stdlib's own ``create_connection``: the call behaves
exactly as if dnscache were absent, resolving through whatever
``socket.getaddrinfo`` is. Sockets always come from ``socket.socket`` as it is
at call time (see ``happy_eyeballs``).

**Bookkeeping never gets in the way.** A connect outcome touches only its own
host: :meth:`AddressHealth.record` says whether that host's order may have
changed, and only then does ``on_health_changed(host)`` tell the cache to
rebuild that host's results (the cache keeps an index by host for it). A
success to the address that already goes first, by far the most common event,
changes nothing and takes no lock. No lock is held while a callback runs, and
nothing here logs: a connect is often made *by* a logging handler
(``SocketHandler``, ``HTTPHandler``), and a record logged from inside it would
re-enter that handler. The stdlib does not log a failed connect either; the
caller gets the exception. Address literals are not recorded at all: there is
nothing to order. (A one-address answer equal to the host asked for is a
literal: the connector remembers it and asks the original ``getaddrinfo``
directly next time, as the cache itself would, without the detour.)

Only errors that say something about the destination count against an address
(refused, unreachable, timed out, reset); ``EMFILE``, ``EADDRINUSE`` from a
``source_address`` and the like are local trouble and leave its record alone.
"""

from __future__ import annotations

import errno
import functools
import socket
from collections.abc import Callable, Sequence
from typing import Any

from .._core.addrinfo import AddrInfo, GetAddrInfo
from .._core.names import bare, encode_host
from .happy_eyeballs import _GLOBAL_DEFAULT_TIMEOUT, DEFAULT_DELAY, create_connection
from .health import AddressHealth

# Connect errors that say something about the destination address. Others
# (EMFILE, EADDRINUSE from source_address, EAFNOSUPPORT...) are ours, not its.
ADDRESS_FAULTS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
    }
)
# Host arguments whose health name was worked out, remembered so that a connect
# by name pays a dict lookup instead of the IDNA codec (several microseconds).
# Cleared when full: a crawler's names cost the codec again, nothing more.
MAX_NAMES = 1024


def is_address_fault(error: BaseException) -> bool:
    """True if ``error`` from a connect attempt counts against the destination address."""
    return isinstance(error, TimeoutError) or (
        isinstance(error, OSError) and error.errno in ADDRESS_FAULTS
    )


def health_name(host: Any) -> str | None:
    """The name address health is kept under: lower case, no final dot; None if not a name.

    Lossless: the exact bytes libc would see, with bytes above 127 kept as
    surrogates, so two different byte names never share records (issue 11 item 8).
    """
    try:
        return bare(encode_host(host)).decode("ascii", "surrogateescape")
    except (TypeError, ValueError):  # UnicodeError is a ValueError
        return None


class Connector:
    """Resolve with ``getaddrinfo``, connect with Happy Eyeballs, record outcomes in ``health``.

    ``getaddrinfo`` is the cache's function, the one installed as
    ``socket.getaddrinfo``; ``original`` is what that function wraps (the
    replacement treats either as "ours"). Callbacks, each called outside any
    lock and never allowed to break a connect (an ``Exception`` they raise is
    dropped): ``on_health_changed(host)`` when ``host``'s order may have
    changed, ``on_connected(host, ip)`` after every successful connect by name.
    ``delay`` (the Connection Attempt Delay) may be changed at any time.
    Thread-safe.
    """

    def __init__(
        self,
        getaddrinfo: GetAddrInfo,
        health: AddressHealth,
        *,
        original: GetAddrInfo,
        delay: float = DEFAULT_DELAY,
        on_health_changed: Callable[[str], object] | None = None,
        on_connected: Callable[[str, str], object] | None = None,
        host_name: Callable[[Any], str | None] = health_name,
    ) -> None:
        self.getaddrinfo = getaddrinfo
        self.original = original
        self.health = health
        self.delay = delay
        self.on_health_changed = on_health_changed
        self.on_connected = on_connected
        self._host_name = host_name
        self._names: dict[Any, str | None] = {}
        self._literals: dict[Any, None] = {}

    def resolves_here(self) -> bool:
        """True while ``socket.getaddrinfo`` is ours (or never replaced): use the cache."""
        current = socket.getaddrinfo
        return current is self.getaddrinfo or current is self.original

    def connect(
        self,
        host: Any,
        port: Any,
        timeout: Any = _GLOBAL_DEFAULT_TIMEOUT,
        source_address: Any = None,
        *,
        family: int = 0,
        all_errors: bool = False,
        socket_options: Sequence[tuple[Any, ...]] | None = None,
    ) -> socket.socket:
        """Resolve ``host`` through the cache and connect (``happy_eyeballs.create_connection``)."""
        literals = self._literals
        try:
            literal = host in literals
        except TypeError:  # unhashable: the cache's getaddrinfo says what is wrong with it
            literal = False
        report = None
        if literal:
            # The cache passes address literals to the original, never caching them; the
            # same call without the detour (it is most of what a connect by IP costs).
            infos = self.original(host, port, family, socket.SOCK_STREAM)
        else:
            infos = self.getaddrinfo(host, port, family, socket.SOCK_STREAM)
            if len(infos) == 1 and infos[0][4][0] == host:  # an address literal
                if len(literals) >= MAX_NAMES:
                    literals.clear()
                literals[host] = None
            else:
                name = self._name(host)
                if name is not None:
                    report = functools.partial(self._attempt_done, name)
        return create_connection(
            infos,
            timeout,
            source_address,
            all_errors=all_errors,
            delay=self.delay,
            socket_options=socket_options,
            on_attempt_done=report,
        )

    def _name(self, host: Any) -> str | None:
        names = self._names
        try:
            return names[host]
        except KeyError:
            pass
        except TypeError:  # unhashable (a bytearray): work it out every time
            return self._host_name(host)
        name = self._host_name(host)
        if len(names) >= MAX_NAMES:
            names.clear()
        names[host] = name
        return name

    def _attempt_done(self, name: str, info: AddrInfo, error: BaseException | None) -> None:
        """Record one attempt's outcome; tell the cache if ``name``'s order may have changed."""
        try:
            ip = str(info[4][0])
            if error is None:
                on_connected = self.on_connected
                if on_connected is not None:
                    on_connected(name, ip)
                changed = self.health.record_success(name, ip)
            elif is_address_fault(error):
                changed = self.health.record(name, ip, False)
            else:
                return
            if changed:
                on_health_changed = self.on_health_changed
                if on_health_changed is not None:
                    on_health_changed(name)
        except Exception:  # bookkeeping must never break a connect, nor log (module doc)
            pass


def make_create_connection(
    connector: Connector, replaced: Callable[..., socket.socket]
) -> Callable[..., socket.socket]:
    """The ``socket.create_connection`` replacement: ``connector`` while it resolves here.

    ``replaced`` is what it replaces (the stdlib's, or whatever wrapper was
    there): called, with the caller's arguments, whenever ``socket.getaddrinfo``
    is not ours (see the module doc).
    """
    connect = connector.connect

    def create_connection(
        address: tuple[Any, Any],
        timeout: Any = _GLOBAL_DEFAULT_TIMEOUT,
        source_address: Any = None,
        *,
        all_errors: bool = False,
    ) -> socket.socket:
        current = socket.getaddrinfo  # connector.resolves_here(), inlined: every connect asks
        if current is not connector.getaddrinfo and current is not connector.original:
            if all_errors:
                return replaced(address, timeout, source_address, all_errors=True)
            return replaced(address, timeout, source_address)
        host, port = address
        return connect(host, port, timeout, source_address, all_errors=all_errors)

    create_connection.__name__ = create_connection.__qualname__ = "create_connection"
    create_connection.__doc__ = replaced.__doc__
    create_connection.__wrapped__ = replaced  # type: ignore[attr-defined]
    create_connection.__dnscache__ = True  # type: ignore[attr-defined]
    return create_connection
