"""The dnspython backend: a stub resolver with real record TTLs."""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .._core.addrinfo import Address
from .answer import Answer, Backend

_EAI_NODATA = getattr(socket, "EAI_NODATA", socket.EAI_NONAME)
NONAME = (socket.EAI_NONAME, "Name or service not known")
NODATA = (_EAI_NODATA, "No address associated with hostname")
AGAIN = (socket.EAI_AGAIN, "Temporary failure in name resolution")

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


def _precedence(ip: str) -> int:
    addr = ipaddress.ip_address(ip)
    if addr.version == 4:
        addr = ipaddress.IPv6Address(f"::ffff:{ip}")
    best = max(((net.prefixlen, prec) for net, prec in _POLICY if addr in net), default=(0, 40))
    return best[1]


def _reachable(address: Address) -> bool:
    """RFC 6724 rule 1: is there a source address (a route) for this destination?

    Found the way glibc finds it: connect() a UDP socket, which sends nothing.
    """
    family, sockaddr = address
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((sockaddr[0], 9))
    except OSError:
        return False
    return True


def rfc6724_order(
    addresses: Sequence[Address], reachable: Callable[[Address], bool] = _reachable
) -> list[Address]:
    """Destination order per RFC 6724 rules 1 (usable first) and 6 (precedence), stable.

    glibc applies more rules (matching scope, label, longest prefix) that need
    the source address of every candidate; for the addresses DNS gives a client
    (global unicast, loopback) rules 1 and 6 decide the order glibc picks.
    """
    keyed = [(not reachable(a), -_precedence(str(a[1][0])), i, a) for i, a in enumerate(addresses)]
    return [item[3] for item in sorted(keyed)]


class DnspythonBackend:
    """A stub resolver (dnspython) with real record TTLs.

    * The hosts file answers first, as it does for the system resolver: names in
      it go to libc (``fallback``), which reads it exactly as glibc does.
    * A and AAAA are asked in parallel for ``AF_UNSPEC`` on a small pool of
      named daemon threads; the TTL is the minimum over the answers and their
      CNAME chains (``Answer.chaining_result.minimum_ttl``).
    * Errors map as glibc maps them: NXDOMAIN to ``EAI_NONAME``, no address of
      the family to ``EAI_NODATA``, everything else (timeouts, SERVFAIL, no
      reachable server) to ``EAI_AGAIN``.
    """

    def __init__(
        self,
        fallback: Backend,
        hosts_names: Callable[[], frozenset[bytes]],
        nameservers: Sequence[str] = (),
        lifetime: float = 5.0,
    ) -> None:
        import dns.resolver  # imported only when this backend is chosen: it is not small

        self._dns_resolver_mod = dns.resolver
        self._fallback = fallback
        self._hosts_names = hosts_names
        from .._core.config import split_nameserver

        resolver = dns.resolver.Resolver(configure=not nameservers)
        if nameservers:
            servers = [split_nameserver(server) for server in nameservers]
        else:  # resolv.conf's, as dnspython read them
            servers = [(str(ns), int(resolver.port)) for ns in resolver.nameservers]
        self._sockets = _Sockets()
        resolver.nameservers = [_nameserver(ip, port, self._sockets) for ip, port in servers]
        resolver.lifetime = lifetime
        resolver.cache = None  # the cache is ours
        self._resolver = resolver
        self._lifetime = lifetime

    def resolve(self, host: bytes, family: int, flags: int) -> Answer:
        if host.rstrip(b".") in self._hosts_names():
            return self._fallback.resolve(host, family, flags)
        name = host.decode("ascii", "replace")
        if family == socket.AF_INET:
            results = [self._query(name, "A")]
        elif family == socket.AF_INET6:
            results = [self._query(name, "AAAA")]
            v6 = results[0]
            if flags & socket.AI_V4MAPPED and (flags & socket.AI_ALL or not _addresses(v6)):
                results.append(self._query(name, "A"))
        else:
            results = self._both(name)
        return self._answer(results, family, flags)

    def _both(self, name: str) -> list[Any]:
        """AAAA and A in parallel: AAAA on a short-lived daemon thread, A on ours.

        Not a ThreadPoolExecutor: its threads are joined at interpreter exit,
        so a query stuck on a dead server would hold up the program's exit.
        """
        box: list[Any] = [TimeoutError("no answer")]

        def ask_aaaa() -> None:
            box[0] = self._query(name, "AAAA")

        helper = threading.Thread(target=ask_aaaa, name="dnscache-dns", daemon=True)
        helper.start()
        a = self._query(name, "A")
        helper.join(self._lifetime + 1.0)
        return [box[0], a]

    def _query(self, name: str, rdtype: str) -> Any:
        """The dnspython Answer, or the exception it raised (returned, not raised)."""
        try:
            return self._resolver.resolve(name, rdtype, search=True, raise_on_no_answer=False)
        except Exception as exc:
            return exc

    def _answer(self, results: list[Any], family: int, flags: int) -> Answer:
        resolver = self._dns_resolver_mod
        addresses: list[Address] = []
        ttls: list[float] = []
        canonname = ""
        errors: list[BaseException] = []
        for result in results:
            if isinstance(result, BaseException):
                errors.append(result)
                continue
            found = _addresses(result)
            if result.rdtype == 1 and family == socket.AF_INET6:  # A asked for V4MAPPED
                found = [(socket.AF_INET6, (f"::ffff:{sa[0]}", 0, 0, 0)) for _, sa in found]
            if found:
                addresses += found
                ttls.append(float(result.chaining_result.minimum_ttl))
                canonname = canonname or result.canonical_name.to_text(omit_final_dot=True)
        if addresses:
            ordered = rfc6724_order(addresses) if family == socket.AF_UNSPEC else addresses
            return Answer(tuple(ordered), canonname, min(ttls))
        if any(isinstance(e, resolver.NXDOMAIN) for e in errors):
            raise socket.gaierror(*NONAME)
        if errors:
            raise socket.gaierror(*AGAIN)
        raise socket.gaierror(*NODATA)

    def close(self) -> None:
        """Wake every query blocked on a socket (they fail at once)."""
        self._sockets.close()

    def after_fork_in_child(self) -> None:
        self._sockets.after_fork_in_child()


class _QuerySocket(socket.socket):
    """A UDP socket that fails its next receive once interrupted by close().

    shutdown() wakes dnspython's select(), but an unconnected UDP socket then
    reads as an empty datagram, which dnspython (ignoring malformed packets)
    would wait past until its timeout; raising here ends the query at once.
    """

    interrupted = False

    def recvfrom(self, *args: Any) -> Any:
        if self.interrupted:
            raise OSError(errno.ECANCELED, "dnscache resolver closed")
        return super().recvfrom(*args)


class _Sockets:
    """The UDP sockets of the queries in progress, so close() can interrupt them.

    dnspython waits for an answer in select(); shutting the socket down from
    another thread wakes it with an error at once. Without this, a thread asking
    a dead server would outlive close() by up to the query lifetime.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[_QuerySocket] = set()
        self._closed = False

    def open(self, family: int) -> _QuerySocket:
        with self._lock:
            # After close() our own background threads stop; a caller's thread still
            # gets answers (a closed resolver keeps working, without background work).
            if self._closed and threading.current_thread().name.startswith("dnscache-"):
                raise OSError(errno.ECANCELED, "dnscache resolver closed")
            sock = _QuerySocket(family, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                self._open.add(sock)
            except BaseException:  # an interruption must not leak the descriptor
                sock.close()
                raise
            return sock

    def release(self, sock: _QuerySocket) -> None:
        try:
            sock.close()  # first: an interruption below must not leave it open
        finally:
            with self._lock:
                self._open.discard(sock)

    def after_fork_in_child(self) -> None:
        # The parent's queries are not ours to finish, and the lock may have been held.
        self._lock = threading.Lock()
        self._open = set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pending = list(self._open)
        for sock in pending:
            sock.interrupted = True
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # ENOTCONN on an unconnected UDP socket: it is woken all the same


def _nameserver(ip: str, port: int, sockets: _Sockets) -> Any:
    """A dnspython Do53 nameserver whose UDP queries use sockets we can shut down."""
    import dns.inet
    import dns.query
    from dns.nameserver import Do53Nameserver

    class Interruptible(Do53Nameserver):
        def query(
            self,
            request: Any,
            timeout: float,
            source: Any,
            source_port: int,
            max_size: bool,
            one_rr_per_rrset: bool = False,
            ignore_trailing: bool = False,
        ) -> Any:
            if max_size:  # TCP (after truncation): rare, and bounded by the timeout
                return super().query(
                    request,
                    timeout,
                    source,
                    source_port,
                    max_size,
                    one_rr_per_rrset,
                    ignore_trailing,
                )
            sock = None
            try:
                sock = sockets.open(dns.inet.af_for_address(self.address))
                return dns.query.udp(
                    request,
                    self.address,
                    timeout=timeout,
                    port=self.port,
                    source=source,
                    source_port=source_port,
                    raise_on_truncation=True,
                    one_rr_per_rrset=one_rr_per_rrset,
                    ignore_trailing=ignore_trailing,
                    ignore_errors=True,
                    ignore_unexpected=True,
                    sock=sock,
                )
            finally:
                if sock is not None:
                    sockets.release(sock)

    return Interruptible(ip, port)


def _addresses(answer: Any) -> list[Address]:
    if isinstance(answer, BaseException) or answer.rrset is None:
        return []
    if answer.rdtype == 28:  # AAAA
        return [(socket.AF_INET6, (rd.address, 0, 0, 0)) for rd in answer.rrset]
    return [(socket.AF_INET, (rd.address, 0)) for rd in answer.rrset]
