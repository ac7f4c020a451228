"""The system resolver: the ``getaddrinfo`` dnscache replaced, as it was before us."""

from __future__ import annotations

import socket

from .._core.addrinfo import GetAddrInfo, addresses_of, canonname_of
from .answer import Answer
from .originals import lean


class SystemBackend:
    """The platform resolver, through the ``getaddrinfo`` dnscache replaced.

    glibc reads /etc/hosts, resolv.conf and nsswitch itself; we only remember
    what it said. It reports no TTL, so answers live for ``Config.ttl``.
    """

    def __init__(self, original: GetAddrInfo) -> None:
        self._original = lean(original)  # the stdlib's own, without its Enum calls

    def resolve(self, host: bytes, family: int, flags: int, *, background: bool = False) -> Answer:
        result = self._original(host, None, family, socket.SOCK_STREAM, 0, flags)
        return Answer(addresses_of(result), canonname_of(result), None)

    def close(self) -> None:
        pass

    def after_fork_in_child(self) -> None:
        pass
