"""A black-holed loopback address, shared by the connect and failover tests.

A listener with ``listen(0)`` whose accept queue is filled by one connection
nobody accepts: Linux then drops further SYNs, so a connect to it neither
succeeds nor fails until its timeout. That is the address Happy Eyeballs has to
race past. Whether the running kernel really drops them is probed, not assumed.
"""

from __future__ import annotations

import errno
import selectors
import socket


def black_hole(ip: str, port: int = 0) -> list[socket.socket]:
    """Sockets (to close later) making ``ip:port`` a black hole; the first is the listener."""
    listener = socket.socket()
    sockets = [listener]
    try:
        listener.bind((ip, port))
        listener.listen(0)
        sockets.append(socket.create_connection(listener.getsockname()[:2], timeout=2))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def is_black_hole(ip: str, port: int, wait: float = 0.3) -> bool:
    """True if a connect to ``ip:port`` neither succeeds nor fails within ``wait``."""
    with socket.socket() as probe:
        probe.setblocking(False)
        probe.connect_ex((ip, port))
        with selectors.DefaultSelector() as selector:
            selector.register(probe, selectors.EVENT_WRITE)
            return not selector.select(wait)


def check_refusing(ip: str, port: int) -> None:
    """Raise OSError unless ``ip:port`` refuses (something may listen on the wildcard address)."""
    with socket.socket() as probe:
        if probe.connect_ex((ip, port)) != errno.ECONNREFUSED:
            raise OSError(f"{ip}:{port} is not refusing")
