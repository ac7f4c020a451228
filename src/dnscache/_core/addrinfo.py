"""Building getaddrinfo results that are exactly the original's, from cached addresses.

A cache entry holds the addresses of a (host, family), not the port: the
``("svc", 80)`` and ``("svc", 443)`` lookups share one upstream query. The
tuples for a particular call are then made by asking the *original*
``getaddrinfo`` once per cached address with ``AI_NUMERICHOST``: libc answers a
numeric host without any lookup (about 2 µs), and does the port, service-name,
socket-type and protocol expansion exactly as it would have for the name. This
holds because glibc resolves the service independently of the host, and its
RFC 6724 sort is stable and groups the tuples of one address together (the
parity tests check it).

Flags split in two. Those that change *which addresses* a name has
(``AI_ADDRCONFIG``, ``AI_V4MAPPED``, ``AI_ALL``, glibc's ``AI_IDN`` and
``AI_CANONIDN``, and ``AI_CANONNAME`` for the canonical name) are part of the
entry's key; the others only shape the tuples and are passed on per call.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

AddrInfo = tuple[Any, Any, int, str, tuple[Any, ...]]
SockAddr = tuple[Any, ...]
Address = tuple[int, SockAddr]  # (family, sockaddr) in the resolver's order
GetAddrInfo = Callable[..., list[AddrInfo]]

_AI_IDN = 0x0040  # glibc; not exported by the socket module
_AI_CANONIDN = 0x0080
# Plain ints, not socket.AddressInfo: ``~`` on an IntFlag complements only the
# known members, which would silently drop unknown bits the caller passed.
_NUMERICHOST = int(socket.AI_NUMERICHOST)
_CANONNAME = int(socket.AI_CANONNAME)
ENTRY_FLAGS = int(
    socket.AI_ADDRCONFIG
    | socket.AI_V4MAPPED
    | socket.AI_ALL
    | socket.AI_CANONNAME
    | _AI_IDN
    | _AI_CANONIDN
)
# Flags that only matter while a name is being looked up: dropped when we ask the
# original about a numeric address (AI_ADDRCONFIG in particular could make a
# numeric lookup fail in a namespace with only loopback configured).
_LOOKUP_ONLY = ENTRY_FLAGS & ~_CANONNAME
CACHED_FAMILIES = frozenset({socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6})


# Flags that only shape the tuples of a call. Everything else, unknown bits
# included, is part of the entry key and reaches the upstream lookup: glibc
# rejects some unknown bits (EAI_BADFLAGS) only when it resolves a name, not for
# the numeric addresses we synthesize from.
SHAPE_FLAGS = int(socket.AI_PASSIVE | socket.AI_NUMERICSERV)


def entry_flags(flags: int) -> int:
    return int(flags) & ~SHAPE_FLAGS & ~_NUMERICHOST


def numeric_flags(flags: int) -> int:
    """The flags for asking the original about a numeric address on the caller's behalf."""
    return (flags & ~_LOOKUP_ONLY & ~_CANONNAME) | _NUMERICHOST


def probe_args(
    original: GetAddrInfo, port: Any, family: int, type: int, proto: int, flags: int
) -> None:
    """Raise what the original would raise for these arguments before looking at the host.

    glibc checks flags, family, socket type, protocol and service before it
    resolves the name, so a bad port must win over a bad host, with no query.
    """
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    original(host, port, family, type, proto, (flags & ~_LOOKUP_ONLY) | _NUMERICHOST)


def is_numeric_host(original: GetAddrInfo, encoded: bytes) -> bool:
    """True for anything libc takes as an address literal (including ``127.1``, ``0x7f.1``)."""
    try:
        original(encoded, None, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return False
    return True


def addresses_of(result: Sequence[AddrInfo]) -> tuple[Address, ...]:
    """The (family, sockaddr) pairs of a getaddrinfo result, in order, one per address."""
    return tuple((int(info[0]), info[4]) for info in result)


def canonname_of(result: Sequence[AddrInfo]) -> str:
    return result[0][3] if result else ""


def literal(address: Address) -> str:
    """The numeric host string for a cached address, keeping an IPv6 scope id."""
    family, sockaddr = address
    if family == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3]:
        return f"{sockaddr[0]}%{sockaddr[3]}"
    return str(sockaddr[0])


def synthesize(
    original: GetAddrInfo,
    addresses: Sequence[Address],
    canonname: str,
    port: Any,
    type: int,
    proto: int,
    flags: int,
) -> list[AddrInfo]:
    """The tuples the original returns for a name with these addresses (see module doc)."""
    nflags = numeric_flags(flags)
    out: list[AddrInfo] = []
    for address in addresses:
        out.extend(original(literal(address), port, address[0], type, proto, nflags))
    if flags & socket.AI_CANONNAME and out:
        # glibc puts the canonical name on the first tuple only; the rest get "".
        af, kind, pr, _, sa = out[0]
        out[0] = (af, kind, pr, canonname, sa)
    return out


def ip_strings(addresses: Sequence[Address]) -> list[str]:
    """The addresses as IP strings, in order, without duplicates."""
    seen: dict[str, None] = {}
    for address in addresses:
        seen.setdefault(str(address[1][0]), None)
    return list(seen)
