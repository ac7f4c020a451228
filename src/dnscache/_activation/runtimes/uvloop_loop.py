"""uvloop: ``Loop.getaddrinfo`` and ``Loop.create_connection`` through the cache.

uvloop resolves in C: ``loop.getaddrinfo`` and the name lookup inside
``loop.create_connection`` both send a ``uv_getaddrinfo`` request to libuv's
thread pool, which calls libc directly; ``socket.getaddrinfo`` is never asked,
so without these adapters aiohttp, httpx and anyio under uvloop never see the
cache. But ``uvloop.Loop`` is a Python subclass of the Cython loop
(``class Loop(__BaseLoop, asyncio.AbstractEventLoop): pass`` in
``uvloop/__init__.py``), so its two Python-visible methods can be replaced on
that subclass, as ``BaseEventLoop.getaddrinfo`` is for asyncio.

``getaddrinfo``: a fresh cached answer is returned in the loop's thread, with
neither an executor job nor a libuv request. A miss runs the cache's
``getaddrinfo`` in the loop's default executor, as asyncio does: libuv's
lookup would bypass the cache, which would then never learn the name (every
call a miss). Address literals, ``host=None`` and argument types that uvloop
treats differently from ``socket.getaddrinfo`` (a ``bool`` port is the service
"True" to uvloop, port 1 to the stdlib) take uvloop's own path untouched.

``create_connection(host=name)``: uvloop resolves the name (that lookup in C
is the part we replace, through the ``getaddrinfo`` above), then connects the
addresses one after another, as uvloop does: uvloop has no Happy Eyeballs and
rejects ``happy_eyeballs_delay`` and ``interleave`` with a ``TypeError``
(MagicStack/uvloop#406), and so does this replacement (such calls, like every
call it does not handle, go to uvloop unchanged). The connected socket is then
handed to uvloop's own ``create_connection(sock=...)``, which wraps it in the
same transport, with TLS on it when asked: ``server_hostname`` defaults to the
name, as uvloop's would. What stays uvloop's own: the protocol factory is
called once, first; a failed address's error is the one libuv gives
(``OSError(errno, strerror)``, the subclass for its errno); several different
errors become ``OSError("Multiple exceptions: ...")``. What differs: the
addresses come in the cache's order, which puts an address that just failed
last (address health), and each is tried on a socket from ``socket.socket`` as
it is at call time.

Issue 10's rule: both use the cache only while ``socket.getaddrinfo`` is the
cache's own function. If a mock, a tracer or gevent replaced it, uvloop's own
methods run, exactly as without dnscache (they never called
``socket.getaddrinfo``, so neither do we).
"""

from __future__ import annotations

import os
import socket
import ssl as ssl_module
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..._engine.resolver import Resolver

_NONE_TYPE = type(None)
# Classes both uvloop and socket.getaddrinfo read the same way. uvloop encodes a str
# host with the "idna" codec and passes bytes through, as CPython does; it turns a
# port into bytes with str(), which for an int subclass (bool, IntEnum) may not be
# the number CPython would use.
_HOSTS = frozenset({str, bytes})
_PORTS = frozenset({int, str, bytes, _NONE_TYPE})


def is_literal(host: str | bytes) -> bool:
    """True for an IPv4 or IPv6 address (with or without a ``%scope``)."""
    if isinstance(host, bytes):
        try:
            host = host.decode("ascii")
        except UnicodeDecodeError:
            return False
    address = host.partition("%")[0]
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, address)
        except (OSError, ValueError):  # ValueError: an embedded NUL
            continue
        return True
    return False


def _cacheable(host: Any, port: Any, family: Any, type: Any, proto: Any, flags: Any) -> bool:
    return (
        host.__class__ in _HOSTS
        and port.__class__ in _PORTS
        and all(isinstance(value, int) for value in (family, type, proto, flags))
        and not is_literal(host)
    )


def getaddrinfo(resolver: Resolver) -> Any:
    """``uvloop.Loop.getaddrinfo``: hits in the loop, misses through the cache in the executor."""
    import uvloop

    original = uvloop.Loop.getaddrinfo
    peek = resolver.peek
    ours = resolver.getaddrinfo

    async def getaddrinfo(
        self: Any,
        host: Any,
        port: Any,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> Any:
        # The classes first: a view made for socket.getaddrinfo(host, True) (port 1 to
        # the stdlib) must not answer uvloop, for which True is the service "True".
        if socket.getaddrinfo is ours and host.__class__ in _HOSTS and port.__class__ in _PORTS:
            result = peek(host, port, family, type, proto, flags)
            if result is not None:
                return result
            if _cacheable(host, port, family, type, proto, flags):
                call = (host, port, family, type, proto, flags)
                return await self.run_in_executor(None, ours, *call)
        return await original(self, host, port, family=family, type=type, proto=proto, flags=flags)

    getaddrinfo.__wrapped__ = original  # type: ignore[attr-defined]
    getaddrinfo.__dnscache__ = True  # type: ignore[attr-defined]
    getaddrinfo.__qualname__ = "Loop.getaddrinfo"
    getaddrinfo.__doc__ = original.__doc__
    return getaddrinfo


def create_connection(resolver: Resolver) -> Any:
    """``uvloop.Loop.create_connection``: a name resolved through the cache, then uvloop's own."""
    import uvloop

    original = uvloop.Loop.create_connection
    ours = resolver.getaddrinfo
    resolve = getaddrinfo(resolver)  # exactly what loop.getaddrinfo is while we are installed

    async def create_connection(
        self: Any,
        protocol_factory: Callable[[], Any],
        host: Any = None,
        port: Any = None,
        *,
        ssl: Any = None,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        sock: Any = None,
        local_addr: Any = None,
        server_hostname: Any = None,
        ssl_handshake_timeout: Any = None,
        ssl_shutdown_timeout: Any = None,
        **other: Any,
    ) -> Any:
        if (
            socket.getaddrinfo is not ours
            or other  # happy_eyeballs_delay, interleave...: uvloop says what it makes of them
            or sock is not None
            or port is None
            or not _cacheable(host, port, family, 0, proto, flags)
            or not _plain_ssl_arguments(
                ssl, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout
            )
        ):
            return await original(
                self,
                protocol_factory,
                host,
                port,
                ssl=ssl,
                family=family,
                proto=proto,
                flags=flags,
                sock=sock,
                local_addr=local_addr,
                server_hostname=server_hostname,
                ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout,
                **other,
            )
        protocol = protocol_factory()  # uvloop makes the protocol first, whatever follows
        connected = await _connect(self, resolve, host, port, family, proto, flags, local_addr)
        if ssl and server_hostname is None:
            server_hostname = host
        # From here the socket is uvloop's: its transport closes it, also on a failed
        # TLS handshake (it must never be closed twice: the number may be reused).
        return await original(
            self,
            lambda: protocol,
            ssl=ssl,
            sock=connected,
            server_hostname=server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )

    create_connection.__wrapped__ = original  # type: ignore[attr-defined]
    create_connection.__dnscache__ = True  # type: ignore[attr-defined]
    create_connection.__qualname__ = "Loop.create_connection"
    create_connection.__doc__ = original.__doc__
    return create_connection


def _plain_ssl_arguments(
    ssl: Any, server_hostname: Any, handshake_timeout: Any, shutdown_timeout: Any
) -> bool:
    """True when uvloop would accept these TLS arguments as they are.

    Anything it would reject is left to it, so that it raises its own error
    before any connection is made, as it does without us.
    """
    if not ssl:
        return server_hostname is None and handshake_timeout is None and shutdown_timeout is None
    if ssl is not True and not isinstance(ssl, ssl_module.SSLContext):
        return False
    return _positive_or_none(handshake_timeout) and _positive_or_none(shutdown_timeout)


def _positive_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and value > 0)


async def _connect(
    loop: Any,
    resolve: Any,
    host: Any,
    port: Any,
    family: int,
    proto: int,
    flags: int,
    local_addr: Any,
) -> socket.socket:
    """A connected non-blocking socket to the first of ``host``'s addresses that accepts."""
    hints = {"family": family, "type": socket.SOCK_STREAM, "proto": proto, "flags": flags}
    remote = await resolve(loop, host, port, **hints)
    if not remote:
        raise OSError("getaddrinfo() returned empty list")
    local = None
    if local_addr is not None:
        if not isinstance(local_addr, tuple | list) or len(local_addr) != 2:
            raise ValueError("local_addr must be a tuple of host and port")
        local = await resolve(loop, local_addr[0], local_addr[1], **hints)
        if not local:
            raise OSError("getaddrinfo() returned empty list for local_addr")
    exceptions: list[OSError] = []
    for info in remote:
        sock = socket.socket(info[0], socket.SOCK_STREAM, info[2])
        try:
            sock.setblocking(False)
            if local is not None and not _bind_one(sock, local, exceptions):
                sock.close()
                continue
            await _sock_connect(loop, sock, info[4])
        except OSError as exc:
            sock.close()
            exceptions.append(exc)
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    # uvloop's own words for a name whose every address failed.
    model = str(exceptions[0])
    if all(str(exc) == model for exc in exceptions):
        raise exceptions[0]
    raise OSError("Multiple exceptions: {}".format(", ".join(str(exc) for exc in exceptions)))


def _bind_one(sock: socket.socket, local: list[Any], exceptions: list[OSError]) -> bool:
    """Bind to the first local address that works (uvloop tries each in turn); False if none."""
    for info in local:
        try:
            sock.bind(info[4])
        except OSError as exc:
            exceptions.append(exc)
            continue
        return True
    return False


async def _sock_connect(loop: Any, sock: socket.socket, address: Any) -> None:
    """A non-blocking connect that fails with the error libuv reports (errno, strerror).

    Not ``loop.sock_connect``: uvloop's resolves the address again and keeps only
    its first two items, which drops an IPv6 scope id.
    """
    try:
        sock.connect(address)
        return
    except (BlockingIOError, InterruptedError):
        pass
    fd = sock.fileno()
    waiter = loop.create_future()

    def writable() -> None:
        if not waiter.done():
            waiter.set_result(None)

    loop.add_writer(fd, writable)
    try:
        await waiter
    finally:
        loop.remove_writer(fd)
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        raise OSError(error, os.strerror(error))


__all__ = ["create_connection", "getaddrinfo", "is_literal"]
