"""Where answers come from: the system resolver (the saved original getaddrinfo), or dnspython.

A backend turns (host key, family, entry flags) into an :class:`Answer` (the
addresses in the resolver's order, the canonical name and, when the backend
knows it, the record TTL) or raises ``socket.gaierror`` exactly as the system's
``getaddrinfo`` would for that name.
"""

from __future__ import annotations

import socket
from typing import Protocol

from .._core.addrinfo import Address
from .._core.values import Value

# The gaierrors a backend raises as glibc would, with glibc's messages.
_EAI_NODATA = getattr(socket, "EAI_NODATA", socket.EAI_NONAME)
NONAME = (socket.EAI_NONAME, "Name or service not known")
NODATA = (_EAI_NODATA, "No address associated with hostname")
AGAIN = (socket.EAI_AGAIN, "Temporary failure in name resolution")


class Answer(Value):
    """What a backend said of a name: addresses in its order, the canonical name, the TTL."""

    __slots__ = ("addresses", "canonname", "ttl")

    def __init__(self, addresses: tuple[Address, ...], canonname: str, ttl: float | None) -> None:
        self.addresses = addresses
        self.canonname = canonname
        self.ttl = ttl  # None: the backend cannot tell (the system resolver)


class Backend(Protocol):
    def resolve(self, host: bytes, family: int, flags: int, *, background: bool = False) -> Answer:
        """The answer for ``host``, or raise gaierror as libc would.

        ``background``: nobody waits on this lookup (a refresh), so a backend
        with its own lifetime may give it longer than a caller's cold miss.
        """

    def close(self) -> None: ...

    def after_fork_in_child(self) -> None: ...
