"""create_connection over the cache.

For now the stdlib's own algorithm (try each address in turn) over the cached
``getaddrinfo``, with the same signature, errors and ``all_errors`` behaviour;
the Happy Eyeballs version replaces the loop.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

_GLOBAL_DEFAULT_TIMEOUT: Any = socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]


def create_connection(
    getaddrinfo: Callable[..., list[Any]],
    address: tuple[Any, Any],
    timeout: Any = _GLOBAL_DEFAULT_TIMEOUT,
    source_address: Any = None,
    *,
    all_errors: bool = False,
) -> socket.socket:
    """socket.create_connection, resolving through ``getaddrinfo``."""
    host, port = address
    exceptions: list[Exception] = []
    for af, socktype, proto, _canonname, sa in getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        sock = None
        try:
            sock = socket.socket(af, socktype, proto)
            if timeout is not _GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sa)
            exceptions.clear()
            return sock
        except OSError as exc:
            if not all_errors:
                exceptions.clear()
            exceptions.append(exc)
            if sock is not None:
                sock.close()
    if exceptions:
        try:
            if not all_errors:
                raise exceptions[0]
            raise ExceptionGroup("create_connection failed", exceptions)
        finally:
            exceptions.clear()  # break the reference cycle, as the stdlib does
    raise OSError("getaddrinfo returns an empty list")
