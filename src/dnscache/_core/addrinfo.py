"""Building getaddrinfo results that are exactly the original's, from cached addresses.

A cache entry holds the addresses of a (host, family), not the port: the
``("svc", 80)`` and ``("svc", 443)`` lookups share one upstream query. The
tuples of a particular call are then made from those addresses and a
*template*: what glibc does with the call's port, socket type, protocol and
shaping flags for one address of a family, learnt once by asking the
original about a numeric address (``127.0.0.1``, ``::1``) with
``AI_NUMERICHOST`` (libc answers without any lookup). This is exact because
glibc computes the service's (socket type, protocol, port) list before it
looks at the host (``gaih_inet``: the service tuples come from the hints and
the service name alone) and then emits, for each address in order, one tuple
per item of that list; its RFC 6724 sort is stable and ranks the tuples of
one address alike, so they stay together. A template therefore serves every
address of its family, for every host. The parity tests compare every shape
of call with the original, tuple for tuple.

A template is used only for an address libc would print back as it is (the
text ``inet_ntop`` makes of it, no scope id, no flow label): addresses from
libc always are, but an override or a persisted row is text Python's
``ipaddress`` wrote (``::ffff:102:304`` where glibc writes
``::ffff:1.2.3.4``). Anything else is asked of the original, one numeric
call per address (:func:`synthesize`), as before templates.

Entries keep their addresses packed (:func:`pack`): such a plain address as
its ip string alone (the family follows from the colon), anything else as
the (family, sockaddr) pair it was. The strings are the ones the finished
tuples hold, so an entry and its views share them, and the sockaddrs of the
upstream answer are not kept.

Flags split in two. Those that change *which addresses* a name has
(``AI_ADDRCONFIG``, ``AI_V4MAPPED``, ``AI_ALL``, glibc's ``AI_IDN`` and
``AI_CANONIDN``, and ``AI_CANONNAME`` for the canonical name) are part of the
entry's key; the others only shape the tuples and are part of the template's.

:func:`maybe_literal` spares a miss the numeric check of the host: glibc
takes a host as an address literal only if ``inet_aton`` (first byte a digit)
or ``inet_pton(AF_INET6)`` (a colon) accepts it, or after ``AI_IDN`` rewrote
it; any other host is a name without asking libc.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

AddrInfo = tuple[Any, Any, int, str, tuple[Any, ...]]
SockAddr = tuple[Any, ...]
Address = tuple[int, SockAddr]  # (family, sockaddr) in the resolver's order
GetAddrInfo = Callable[..., list[AddrInfo]]

Template = tuple[tuple[Any, Any, int, int], ...]  # (family, type, proto, port) per tuple
Packed = str | Address  # see pack()

AF_INET = int(socket.AF_INET)
AF_INET6 = int(socket.AF_INET6)
AI_IDN = 0x0040  # glibc; not exported by the socket module
_AI_CANONIDN = 0x0080
# Plain ints, not socket.AddressInfo: ``~`` on an IntFlag complements only the
# known members, which would silently drop unknown bits the caller passed, and
# IntFlag arithmetic is Python code (thousands of instructions an operation).
NUMERICHOST = int(socket.AI_NUMERICHOST)
CANONNAME = int(socket.AI_CANONNAME)
ENTRY_FLAGS = int(
    socket.AI_ADDRCONFIG
    | socket.AI_V4MAPPED
    | socket.AI_ALL
    | socket.AI_CANONNAME
    | AI_IDN
    | _AI_CANONIDN
)
# Flags that only matter while a name is being looked up: dropped when we ask the
# original about a numeric address (AI_ADDRCONFIG in particular could make a
# numeric lookup fail in a namespace with only loopback configured).
_LOOKUP_ONLY = ENTRY_FLAGS & ~CANONNAME
CACHED_FAMILIES = frozenset({int(socket.AF_UNSPEC), AF_INET, AF_INET6})


# Flags that only shape the tuples of a call. Everything else, unknown bits
# included, is part of the entry key and reaches the upstream lookup: glibc
# rejects some unknown bits (EAI_BADFLAGS) only when it resolves a name, not for
# the numeric addresses we take templates from.
SHAPE_FLAGS = int(socket.AI_PASSIVE | socket.AI_NUMERICSERV)
# The bits of a call's flags that are part of its entry's key.
ENTRY_KEY_MASK = ~SHAPE_FLAGS & ~NUMERICHOST


def entry_flags(flags: int) -> int:
    return int(flags) & ENTRY_KEY_MASK


def numeric_flags(flags: int) -> int:
    """The flags for asking the original about a numeric address on the caller's behalf."""
    return (flags & ~_LOOKUP_ONLY & ~CANONNAME) | NUMERICHOST


def probe_host(family: int) -> str:
    """The numeric address a template (or the argument probe) for ``family`` is learnt from."""
    return "::1" if family == AF_INET6 else "127.0.0.1"


def probe_args(
    original: GetAddrInfo, port: Any, family: int, type: int, proto: int, flags: int
) -> list[AddrInfo]:
    """What the original says about these arguments for a numeric host: raises as it would.

    glibc checks flags, family, socket type, protocol and service before it
    resolves the name, so a bad port must win over a bad host, with no query.
    The result holds the template of ``family`` (IPv4 for AF_UNSPEC).
    """
    host = probe_host(family)
    return original(host, port, family, type, proto, (flags & ~_LOOKUP_ONLY) | NUMERICHOST)


def numeric_port(port: Any) -> bool:
    """True for a port libc reads as a number, never looking up a service name.

    None, an int, or ASCII digits (str or bytes): glibc's ``strtoul`` takes them
    whole. Anything else (``"http"``, ``" 80"``) may be a service: False.
    """
    if port is None or isinstance(port, int):
        return True
    return isinstance(port, str | bytes) and port.isascii() and port.isdigit()


def learn(
    original: GetAddrInfo, port: Any, family: int, type: int, proto: int, flags: int
) -> Template | None:
    """The template of ``family`` for these arguments, asked of the original (None if odd)."""
    result = original(probe_host(family), port, family, type, proto, numeric_flags(flags))
    return template_of(result)


def template_of(result: Sequence[AddrInfo]) -> Template | None:
    """The (family, type, proto, port) of each tuple of a one-address result, or None.

    None when the result is empty or holds more than one address: nothing to
    learn from it, and the caller falls back to libc.
    """
    if not result:
        return None
    first = result[0][4]
    out = []
    for af, kind, proto, _canon, sockaddr in result:
        if sockaddr[0] != first[0] or len(sockaddr) != len(first):
            return None
        out.append((af, kind, proto, sockaddr[1]))
    return tuple(out)


def maybe_literal(encoded: bytes, flags: int) -> bool:
    """False when libc certainly takes ``encoded`` for a name, not an address literal.

    glibc's getaddrinfo parses a literal with ``inet_aton`` (each part starts
    with a decimal digit: ``127.1``, ``0x7f.1``) or ``inet_pton(AF_INET6)``
    (needs a colon, before any ``%scope``), after ``AI_IDN`` rewrote the host.
    """
    return encoded[:1].isdigit() or b":" in encoded or bool(flags & AI_IDN)


def is_numeric_host(original: GetAddrInfo, encoded: bytes) -> bool:
    """True for anything libc takes as an address literal (including ``127.1``, ``0x7f.1``)."""
    try:
        original(encoded, None, 0, socket.SOCK_STREAM, 0, NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return False
    return True


def addresses_of(result: Sequence[AddrInfo]) -> tuple[Address, ...]:
    """The (family, sockaddr) pairs of a getaddrinfo result, in order, one per address."""
    return tuple((int(info[0]), info[4]) for info in result)


def canonname_of(result: Sequence[AddrInfo]) -> str:
    return result[0][3] if result else ""


_inet_pton = socket.inet_pton
_inet_ntop = socket.inet_ntop


def _plain(family: int, sockaddr: SockAddr) -> bool:
    """True if libc gives back this sockaddr's ip as it is, with no scope id or flow label.

    For AF_INET the ip never holds a colon, for AF_INET6 it always does: the
    family of a packed address follows from its text.
    """
    try:
        ip = sockaddr[0]
        if family == AF_INET6:
            if len(sockaddr) != 4 or sockaddr[2] or sockaddr[3]:
                return False
        elif family != AF_INET or len(sockaddr) != 2:
            return False
        return bool(_inet_ntop(family, _inet_pton(family, ip)) == ip)
    except (OSError, TypeError, ValueError):
        return False


def pack(addresses: Sequence[Address]) -> tuple[Packed, ...]:
    """Addresses as an entry keeps them: a plain one (see :func:`_plain`) as its ip alone."""
    return tuple(
        address[1][0] if _plain(address[0], address[1]) and address[1][1] == 0 else address
        for address in addresses
    )


def unpack(packed: Sequence[Packed]) -> tuple[Address, ...]:
    """The (family, sockaddr) pairs :func:`pack` was given, equal to them."""
    out: list[Address] = []
    for item in packed:
        if isinstance(item, str):
            out.append((AF_INET6, (item, 0, 0, 0)) if ":" in item else (AF_INET, (item, 0)))
        else:
            out.append(item)
    return tuple(out)


def build(
    packed: Sequence[Packed],
    templates: dict[int, Template],
    canonname: str,
    canon: bool,
) -> list[AddrInfo] | None:
    """The tuples of one call from an entry's packed addresses; None if one needs libc.

    None when a family has no template or an address is not a plain one (see
    the module docstring): :func:`synthesize` then does it. One sockaddr per
    (address, port) is shared by the tuples of that address.
    """
    out: list[AddrInfo] = []
    append = out.append
    for ip in packed:
        if not isinstance(ip, str):
            return None
        v6 = ":" in ip
        template = templates.get(AF_INET6 if v6 else AF_INET)
        if template is None:
            return None
        port = -1
        sockaddr: SockAddr = ()
        for af, kind, proto, p in template:
            if p != port:
                port = p
                sockaddr = (ip, p, 0, 0) if v6 else (ip, p)
            append((af, kind, proto, "", sockaddr))
    if canon and out:
        # glibc puts the canonical name on the first tuple only; the rest get "".
        af, kind, proto, _, sockaddr = out[0]
        out[0] = (af, kind, proto, canonname, sockaddr)
    return out


def literal(address: Address) -> str:
    """The numeric host string for a cached address, keeping an IPv6 scope id."""
    family, sockaddr = address
    if family == AF_INET6 and len(sockaddr) >= 4 and sockaddr[3]:
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
    """The tuples for a name with these addresses, one numeric call of the original each.

    The fallback of :func:`build` for what a template cannot describe.
    """
    nflags = numeric_flags(flags)
    out: list[AddrInfo] = []
    for address in addresses:
        out.extend(original(literal(address), port, address[0], type, proto, nflags))
    if flags & CANONNAME and out:
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
