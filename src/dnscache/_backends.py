"""Where answers come from: the system resolver (the saved original getaddrinfo), or dnspython.

A backend turns (host key, family, entry flags) into an :class:`Answer` (the
addresses in the resolver's order, the canonical name and, when the backend
knows it, the record TTL) or raises ``socket.gaierror`` exactly as the system's
``getaddrinfo`` would for that name.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Protocol

from ._addrinfo import Address, GetAddrInfo, addresses_of, canonname_of


@dataclass(frozen=True, slots=True)
class Answer:
    addresses: tuple[Address, ...]
    canonname: str
    ttl: float | None  # None: the backend cannot tell (the system resolver)


class Backend(Protocol):
    def resolve(self, host: bytes, family: int, flags: int) -> Answer: ...

    def close(self) -> None: ...


class SystemBackend:
    """The platform resolver, through the ``getaddrinfo`` dnscache replaced.

    glibc reads /etc/hosts, resolv.conf and nsswitch itself; we only remember
    what it said. It reports no TTL, so answers live for ``Config.ttl``.
    """

    def __init__(self, original: GetAddrInfo) -> None:
        self._original = original

    def resolve(self, host: bytes, family: int, flags: int) -> Answer:
        result = self._original(host, None, family, socket.SOCK_STREAM, 0, flags)
        return Answer(addresses_of(result), canonname_of(result), None)

    def close(self) -> None:
        pass
