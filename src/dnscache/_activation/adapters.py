"""Replacements for functions outside ``socket``: asyncio's and urllib3's.

Each factory takes the Resolver and returns the function ``_patch`` installs.
They keep the replaced function's signature and meaning exactly, and, like
``socket.create_connection``'s replacement (``_connect.connector``), they use
the cache only while ``socket.getaddrinfo`` is the cache's own function: if a
mock, a tracer or gevent replaced it after us, they call the function they
replaced, which looks ``socket.getaddrinfo`` up at call time as it always did.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._engine.resolver import Resolver


def asyncio_getaddrinfo(resolver: Resolver) -> Any:
    """``BaseEventLoop.getaddrinfo`` answering cache hits without the executor hop.

    The stock method sends every call, hit or miss, to the default executor: a
    thread hand-off costing tens of microseconds and a slot in a pool that may
    be busy. A hit is a dict lookup, so it is answered in the event loop's
    thread; a miss takes the stock path (which calls the patched
    ``socket.getaddrinfo`` in the executor). With ``trace=True`` the miss runs
    there in a copy of the caller's context, as the stock path would do if the
    executor carried contexts, so that its span is a child of the caller's.
    """
    import asyncio.base_events

    from .._engine.trace import carry_context

    original = asyncio.base_events.BaseEventLoop.getaddrinfo
    peek = resolver.peek
    ours = resolver.getaddrinfo
    traced = resolver.traced

    async def getaddrinfo(
        self: Any,
        host: Any,
        port: Any,
        *,
        family: Any = 0,
        type: Any = 0,
        proto: Any = 0,
        flags: Any = 0,
    ) -> Any:
        # Debug mode logs each call's duration: keep its path. A socket.getaddrinfo
        # that is not ours (a mock) must be the one asked, in the executor.
        if not self._debug and socket.getaddrinfo is ours:
            result = peek(host, port, family, type, proto, flags)
            if result is not None:
                return result
            if traced:  # the stock path's own call, in the caller's context
                return await self.run_in_executor(
                    None, carry_context(ours), host, port, family, type, proto, flags
                )
        return await original(self, host, port, family=family, type=type, proto=proto, flags=flags)

    getaddrinfo.__wrapped__ = original  # type: ignore[attr-defined]
    getaddrinfo.__dnscache__ = True  # type: ignore[attr-defined]
    getaddrinfo.__qualname__ = original.__qualname__
    return getaddrinfo


def urllib3_create_connection(resolver: Resolver) -> Any:
    """``urllib3.util.connection.create_connection`` with the resolver's Happy Eyeballs.

    urllib3 (and so requests) runs its own copy of the stdlib's sequential
    connect loop and never calls ``socket.create_connection``. We keep its
    preamble exactly (IPv6 brackets, ``allowed_gai_family``, the IDNA check that
    raises ``LocationParseError``) and its ``socket_options``, applied to every
    attempt, before its timeout, as urllib3 does.
    """
    import urllib3.util.connection as uc
    from urllib3.exceptions import LocationParseError
    from urllib3.util.timeout import _DEFAULT_TIMEOUT

    original = uc.create_connection
    connector = resolver.connector

    def create_connection(
        address: tuple[str, int],
        timeout: Any = _DEFAULT_TIMEOUT,
        source_address: tuple[str, int] | None = None,
        socket_options: Any = None,
    ) -> socket.socket:
        if not connector.resolves_here():
            return original(address, timeout, source_address, socket_options)
        host, port = address
        if host.startswith("["):
            host = host.strip("[]")
        family = uc.allowed_gai_family()
        try:
            host.encode("idna")
        except UnicodeError:
            raise LocationParseError(f"'{host}', label empty or too long") from None
        stdlib_timeout = (
            socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]
            if timeout is _DEFAULT_TIMEOUT
            else timeout
        )
        return connector.connect(
            host,
            port,
            stdlib_timeout,
            source_address,
            family=family,
            socket_options=socket_options,
        )

    create_connection.__doc__ = original.__doc__
    create_connection.__wrapped__ = original  # type: ignore[attr-defined]
    create_connection.__dnscache__ = True  # type: ignore[attr-defined]
    return create_connection
