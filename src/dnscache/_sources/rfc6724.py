"""Destination address order (RFC 6724) for the dnspython backend, as glibc orders it.

glibc's getaddrinfo sorts the addresses of an ``AF_UNSPEC`` answer by RFC 6724
section 6. The rules that decide the order for the addresses DNS gives a client
(global unicast, loopback) are rule 1 (avoid unusable destinations: is there a
route, hence a source address?) and rule 6 (the policy table's precedence);
glibc finds rule 1 by ``connect()``-ing a UDP socket to each destination, which
sends nothing but costs a socket and two system calls per address.

The answer to rule 1 depends on the routing table, not on the name, so it is
kept per destination prefix (/24 for IPv4, /64 for IPv6: a route more specific
than that is rare on a client) and thrown away whenever the kernel announces a
change of link, address or route on a netlink socket (RTMGRP_*). Checking for
an announcement is one non-blocking ``recv`` per lookup. Where netlink is not
available (not Linux, or denied by a sandbox) nothing is kept: every lookup
probes, as glibc does. trio's warning applies: caching across interface
changes is where such caches go wrong, so the cache is only used while its
invalidation works.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import weakref
from collections.abc import Callable, Sequence

from .._core.addrinfo import Address

# RFC 6724 section 2.1, the default policy table: (prefix, precedence).
_POLICY = [
    (ipaddress.ip_network("::1/128"), 50),
    (ipaddress.ip_network("::/0"), 40),
    (ipaddress.ip_network("::ffff:0:0/96"), 35),
    (ipaddress.ip_network("2002::/16"), 30),
    (ipaddress.ip_network("2001::/32"), 5),
    (ipaddress.ip_network("fc00::/7"), 3),
    (ipaddress.ip_network("::/96"), 1),
    (ipaddress.ip_network("fec0::/10"), 1),
    (ipaddress.ip_network("3ffe::/16"), 1),
]

# Netlink multicast groups (linux/rtnetlink.h): links, IPv4/IPv6 addresses and routes.
_RTMGRP_LINK = 0x1
_RTMGRP_IPV4_IFADDR = 0x10
_RTMGRP_IPV4_ROUTE = 0x40
_RTMGRP_IPV6_IFADDR = 0x100
_RTMGRP_IPV6_ROUTE = 0x400
_GROUPS = (
    _RTMGRP_LINK
    | _RTMGRP_IPV4_IFADDR
    | _RTMGRP_IPV4_ROUTE
    | _RTMGRP_IPV6_IFADDR
    | _RTMGRP_IPV6_ROUTE
)
# Bytes of the destination that name its prefix: /24 for IPv4, /64 for IPv6.
_PREFIX_BYTES: dict[int, int] = {socket.AF_INET: 3, socket.AF_INET6: 8}
# Most prefixes remembered; beyond this the cache starts again (a client talks to few).
MAX_PREFIXES = 4096


def precedence(ip: str) -> int:
    """Rule 6's precedence of an address, from the default policy table."""
    addr = ipaddress.ip_address(ip)
    if addr.version == 4:
        addr = ipaddress.IPv6Address(f"::ffff:{ip}")
    best = max(((net.prefixlen, prec) for net, prec in _POLICY if addr in net), default=(0, 40))
    return best[1]


def probe(address: Address) -> bool:
    """RFC 6724 rule 1: is there a source address (a route) for this destination?

    Found the way glibc finds it: connect() a UDP socket, which sends nothing.
    """
    family, sockaddr = address
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((sockaddr[0], 9))
    except OSError:
        return False
    return True


def order(
    addresses: Sequence[Address], reachable: Callable[[Address], bool] = probe
) -> list[Address]:
    """Destination order per RFC 6724 rules 1 (usable first) and 6 (precedence), stable."""
    keyed = [(not reachable(a), -precedence(str(a[1][0])), i, a) for i, a in enumerate(addresses)]
    return [item[3] for item in sorted(keyed)]


class _RouteWatcher:
    """A non-blocking netlink socket that tells whether links, addresses or routes changed."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        family = getattr(socket, "AF_NETLINK", None)
        if family is None:
            return
        try:
            sock = socket.socket(family, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)  # ROUTE
        except OSError:
            return
        try:
            sock.bind((0, _GROUPS))
            sock.setblocking(False)
        except OSError:
            sock.close()
            return
        self._sock = sock
        # A Resolver that is never closed must not leave a descriptor (or a
        # ResourceWarning) behind when it is collected.
        self._finalizer = weakref.finalize(self, sock.close)

    @property
    def working(self) -> bool:
        return self._sock is not None

    def changed(self) -> bool:
        """Drain what the kernel announced; True if anything (or an overflow) arrived."""
        sock = self._sock
        if sock is None:
            return True
        seen = False
        while True:
            try:
                if not sock.recv(65536):
                    return True
            except BlockingIOError:
                return seen
            except OSError:  # ENOBUFS: we missed announcements, so assume a change
                return True
            seen = True

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            self._finalizer.detach()
            sock.close()


class SourceCache:
    """Rule 1's answer per destination prefix, forgotten when the interfaces change.

    Thread-safe: the dict is only read, filled and replaced whole; two threads
    probing the same prefix at once both probe, which is harmless.
    """

    def __init__(self, probe: Callable[[Address], bool] = probe) -> None:
        self._probe = probe
        self._known: dict[tuple[int, bytes], bool] = {}
        self._lock = threading.Lock()  # guards the watcher's socket across close()
        self._watcher = _RouteWatcher()

    def reachable(self, address: Address) -> bool:
        family, sockaddr = address
        watcher = self._watcher
        if not watcher.working:
            return self._probe(address)
        if watcher.changed():
            self._known = {}
        try:
            packed = socket.inet_pton(family, sockaddr[0])
        except (OSError, ValueError):
            return self._probe(address)
        key = (family, packed[: _PREFIX_BYTES.get(family, len(packed))])
        known = self._known.get(key)
        if known is None:
            known = self._probe(address)
            if len(self._known) >= MAX_PREFIXES:
                self._known = {}
            self._known[key] = known
        return known

    def order(self, addresses: Sequence[Address]) -> list[Address]:
        return order(addresses, self.reachable)

    def close(self) -> None:
        with self._lock:
            self._watcher.close()
            self._known = {}

    def after_fork_in_child(self) -> None:
        # The netlink socket is shared with the parent now: whichever process reads an
        # announcement takes it from the other. The child gets its own.
        self._lock = threading.Lock()
        self._watcher.close()
        self._watcher = _RouteWatcher()
        self._known = {}
