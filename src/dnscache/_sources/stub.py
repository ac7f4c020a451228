"""The dnspython backend's resolver: real record TTLs, over UDP, TLS or HTTPS.

Imported only when a dnspython backend (or a TTL learner) is built: it imports
dnspython, which is not small (:mod:`.dnspython` is the light facade the engine
imports).

It asks what glibc would ask, the way glibc asks it:

* **Names are bytes.** The question is built from the exact bytes libc would
  put in the packet (``dns.name.from_text`` on bytes follows glibc's
  ``ns_name_pton``: labels are the bytes between dots, ``\\.`` and ``\\DDD``
  escapes as in glibc), never from a lossy text decoding, so two different
  names are never asked as one (issue 11 item 8). A name that cannot be a
  DNS name (an empty or over-long label) goes to libc, which fails it exactly.
* **Search list and ndots** as glibc's ``res_search`` applies them (resolv.conf,
  ``LOCALDOMAIN``, ``RES_OPTIONS``): a name with at least ``ndots`` dots is
  tried as it is first, otherwise after the search domains; a final dot means
  as it is only; NXDOMAIN, NODATA and SERVFAIL move on to the next candidate.
* **A and AAAA in flight together** on one socket (or one kept connection) for
  ``AF_UNSPEC``, waited for in one loop (:mod:`.transports`): no thread per
  lookup.
* **Deadline:** a lookup, every candidate, server and retry included, ends
  within ``lifetime`` seconds. :meth:`DnspythonBackend.from_config` sets it to
  ``resolve_timeout`` (at least :data:`MIN_LIFETIME`), so a cold miss against a
  silent server raises ``EAI_AGAIN`` after ``resolve_timeout``, and a
  background refresh gives up as soon as the callers waiting for it are served
  stale.
* Errors map as glibc maps them: NXDOMAIN to ``EAI_NONAME``, no address of the
  family to ``EAI_NODATA``, everything else (timeouts, SERVFAIL, no reachable
  server) to ``EAI_AGAIN``. A signal handler's exception reaches the caller.
* The hosts file answers first, as it does for the system resolver: names in it
  go to libc (``fallback``), which reads it exactly as glibc does.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver

from .._core.addrinfo import Address
from .._core.config import ConfigWarning, Nameserver, env_name, parse_nameserver
from . import rfc6724
from .answer import AGAIN, NODATA, NONAME, Answer, Backend
from .transports import Interrupted, OpenSockets, Query, UdpServer, is_failure, tls_context

# glibc's default number of rounds over the nameservers (resolv.conf `attempts`).
ATTEMPTS = 2
# Shortest wait for one server before the next is tried (or the query resent).
MIN_TRY = 0.1
_A, _AAAA = dns.rdatatype.A, dns.rdatatype.AAAA
_OK, _NODATA, _NXDOMAIN, _FAILED, _TIMEOUT = range(5)


def query_name(host: bytes) -> dns.name.Name:
    """The DNS name glibc would ask for ``host`` (raises dns.exception.DNSException if none).

    dnspython reads a lone ``@`` as the empty name (the zone-file shorthand for
    the origin); glibc's ``ns_name_pton`` sees one label, ``@``.
    """
    if host == b"@":
        return dns.name.Name((b"@",))
    return dns.name.from_text(host, origin=None)


# The least a background lookup (a refresh, a lookup a stale answer waits on) is
# given: glibc's own per-try default.
BACKGROUND_LIFETIME = 5.0


class StubResolver:
    """A stub resolver (dnspython messages, :mod:`.transports` wire) with real record TTLs."""

    def __init__(
        self,
        fallback: Backend,
        hosts_names: Callable[[], frozenset[bytes]],
        nameservers: Sequence[str] = (),
        lifetime: float = 5.0,
        *,
        ca_bundle: str | None = None,
        resolve_host: Callable[[str, int], list[str]] | None = None,
    ) -> None:
        self._fallback = fallback
        self._hosts_names = hosts_names
        self._lifetime = lifetime
        self._sockets = OpenSockets()
        self._order = rfc6724.SourceCache()
        settings = _system_settings()
        self._search: list[dns.name.Name] = settings[0]
        self._ndots: int = settings[1]
        timeout: float = settings[2]
        rotate: bool = settings[3]
        parsed = [parse_nameserver(s) for s in nameservers] or settings[4]
        self._servers = [
            _server(ns, self._sockets, ca_bundle, resolve_host or _system_resolve) for ns in parsed
        ]
        if any(ns.encrypted for ns in parsed) and not all(ns.encrypted for ns in parsed):
            plain = ", ".join(ns.host for ns in parsed if not ns.encrypted)
            warnings.warn(
                f"dnscache: {env_name('nameservers')} mixes encrypted and plaintext servers; "
                f"queries to {plain} travel unencrypted",
                ConfigWarning,
                stacklevel=2,
            )
        # One try per server per round, resent after this (RFC 1035 4.2.1: retransmit).
        self._timeout = timeout  # resolv.conf's per-try timeout
        self._rotate = rotate
        self._next = 0

    # --- the lookup ---

    def resolve(self, host: bytes, family: int, flags: int, *, background: bool = False) -> Answer:
        if host.lower().rstrip(b".") in self._hosts_names():
            return self._fallback.resolve(host, family, flags)
        try:
            name = query_name(host)
        except dns.exception.DNSException:
            return self._fallback.resolve(host, family, flags)
        # Nobody waits on a background lookup beyond resolve_timeout (the executor
        # serves stale then), so it may take longer: a slow but working upstream
        # must still replace the stale answer, or it would be served for stale_ttl.
        lifetime = max(self._lifetime, BACKGROUND_LIFETIME) if background else self._lifetime
        deadline = time.monotonic() + lifetime
        try:
            if family == socket.AF_INET:
                return self._answer(self._search_for(name, (_A,), deadline), family)
            if family == socket.AF_INET6:
                found = self._search_for(name, (_AAAA,), deadline)
                mapped = flags & socket.AI_V4MAPPED
                if mapped and (flags & socket.AI_ALL or not _addresses(found)):
                    found += self._search_for(name, (_A,), deadline)
                return self._answer(found, family)
            return self._answer(self._search_for(name, (_AAAA, _A), deadline), family)
        except Interrupted:
            raise socket.gaierror(*AGAIN) from None

    def candidates(self, name: dns.name.Name) -> list[dns.name.Name]:
        """The names glibc's res_search tries for ``name``, in its order."""
        return search_candidates(name, self._search, self._ndots)

    def _search_for(
        self, name: dns.name.Name, rdtypes: tuple[int, ...], deadline: float
    ) -> list[Query]:
        """The queries of the first candidate name that has addresses, or of the last one.

        Follows glibc's res_search: NXDOMAIN, NODATA and SERVFAIL move on to the next
        candidate; a timeout stops the search. The error that stands at the end is the
        as-is name's when it was tried first, else NODATA if any candidate had it.
        """
        first_error: list[Query] | None = None
        nodata: list[Query] | None = None
        last: list[Query] = []
        for index, qname in enumerate(self.candidates(name)):
            queries = self.ask(qname, rdtypes, deadline)
            outcome = _outcome(queries)
            if outcome == _OK:
                return queries
            last = queries
            if index == 0 and qname == name.derelativize(dns.name.root):
                first_error = queries
            if outcome == _NODATA and nodata is None:
                nodata = queries
            if outcome == _TIMEOUT:
                return queries
        return first_error or nodata or last

    def ask(self, qname: dns.name.Name, rdtypes: tuple[int, ...], deadline: float) -> list[Query]:
        """Ask ``rdtypes`` of ``qname`` at once, server after server, until answered or deadline."""
        queries = _make_queries(qname, rdtypes)
        servers = self._servers
        if not servers:
            return queries
        start = self._next
        if self._rotate:
            self._next = (start + 1) % len(servers)
        # glibc: `attempts` rounds over the servers. A server that answered with an
        # error (SERVFAIL, REFUSED...) or could not be reached is not asked again in
        # this lookup, as dnspython does: it would say the same, and fail fast.
        rounds = len(servers) * ATTEMPTS
        # Each try gets its share of what is left of the lifetime (a background
        # lookup has a longer one), at most resolv.conf's timeout.
        per_try = max(min(self._timeout, (deadline - time.monotonic()) / rounds), MIN_TRY)
        out: set[int] = set()
        for tries in range(rounds):
            pending = [q for q in queries if not q.answered]
            now = time.monotonic()
            if not pending or now >= deadline or len(out) == len(servers):
                break
            index = (start + tries) % len(servers)
            if index in out:
                continue
            try:
                servers[index].exchange(pending, min(deadline, now + per_try))
            except OSError as exc:
                if isinstance(exc, Interrupted) or not is_failure(exc):
                    raise
                out.add(index)  # refused, reset, unreachable, a TLS failure
                continue
            if all(q.response is not None for q in pending):
                out.add(index)
        return queries

    def _answer(self, queries: list[Query], family: int) -> Answer:
        addresses: list[Address] = []
        ttls: list[float] = []
        canonname = ""
        for query in queries:
            found, chain = _found(query)
            if query.message.question[0].rdtype == _A and family == socket.AF_INET6:
                found = [(socket.AF_INET6, (f"::ffff:{sa[0]}", 0, 0, 0)) for _, sa in found]
            if found and chain is not None:
                addresses += found
                ttls.append(float(chain.minimum_ttl))
                canonname = canonname or chain.canonical_name.to_text(omit_final_dot=True)
        if addresses:
            ordered = self._order.order(addresses) if family == socket.AF_UNSPEC else addresses
            return Answer(tuple(ordered), canonname, min(ttls))
        outcome = _outcome(queries)
        if outcome == _NXDOMAIN:
            raise socket.gaierror(*NONAME)
        if outcome == _NODATA:
            raise socket.gaierror(*NODATA)
        raise socket.gaierror(*AGAIN)

    # --- life cycle ---

    @property
    def servers(self) -> list[Any]:
        return list(self._servers)

    def close(self) -> None:
        """Wake every query blocked on a socket (they fail at once); drop kept connections."""
        self._sockets.close()
        for server in self._servers:
            closer = getattr(server, "close", None)
            if closer is not None:
                closer()
        self._order.close()

    def after_fork_in_child(self) -> None:
        self._sockets.after_fork_in_child()
        for server in self._servers:
            hook = getattr(server, "after_fork_in_child", None)
            if hook is not None:
                hook()
        self._order.after_fork_in_child()


def search_candidates(
    name: dns.name.Name, search: Sequence[dns.name.Name], ndots: int
) -> list[dns.name.Name]:
    """glibc's res_search order: as-is first with >= ndots dots, search domains, as-is last."""
    if name.is_absolute():
        return [name]
    as_is = name.derelativize(dns.name.root)
    dots = len(name.labels) - 1
    out = [as_is] if dots >= ndots else []
    for domain in search:
        try:
            out.append(name.concatenate(domain))
        except dns.name.NameTooLong:
            continue  # glibc skips a domain that makes the name too long
    if dots < ndots:
        out.append(as_is)
    return out


def _make_queries(qname: dns.name.Name, rdtypes: tuple[Any, ...]) -> list[Query]:
    queries: list[Query] = []
    for rdtype in rdtypes:
        message = dns.message.make_query(qname, rdtype)
        while any(q.message.id == message.id for q in queries):  # answers match by ID
            message.id = (message.id + 1) & 0xFFFF
        queries.append(Query(message, message.to_wire()))
    return queries


def _found(query: Query) -> tuple[list[Address], Any]:
    """The addresses a final answer gives (following CNAMEs), and its chaining result."""
    if query.extracted is None:
        query.extracted = _extract(query)
    return query.extracted  # type: ignore[no-any-return]


def _extract(query: Query) -> tuple[list[Address], Any]:
    response = query.response
    if response is None or not query.answered or response.rcode() != 0:
        return [], None
    try:
        chain = response.resolve_chaining()  # type: ignore[attr-defined]
    except dns.exception.DNSException:
        return [], None
    rrset = chain.answer
    if rrset is None:
        return [], chain
    if rrset.rdtype == _AAAA:
        return [(socket.AF_INET6, (rd.address, 0, 0, 0)) for rd in rrset], chain
    return [(socket.AF_INET, (rd.address, 0)) for rd in rrset], chain


def _addresses(queries: list[Query]) -> list[Address]:
    return [a for q in queries for a in _found(q)[0]]


def _outcome(queries: list[Query]) -> int:
    """OK if any query has addresses; else the worst of the rest, as glibc ranks them."""
    kinds = set()
    for query in queries:
        found, _ = _found(query)
        if found:
            return _OK
        if query.answered:
            assert query.response is not None
            kinds.add(_NXDOMAIN if query.response.rcode() == 3 else _NODATA)
        else:
            kinds.add(_FAILED if query.response is not None else _TIMEOUT)
    for kind in (_TIMEOUT, _FAILED, _NODATA):
        if kind in kinds:
            return kind
    return _NXDOMAIN if kinds else _TIMEOUT


def _server(ns: Nameserver, sockets: OpenSockets, ca_bundle: str | None, resolve_host: Any) -> Any:
    if ns.scheme == "dns":
        return UdpServer(ns.host, ns.port, sockets)
    context = tls_context(ca_bundle)
    if ns.scheme == "tls":
        from .transports import StreamServer

        return StreamServer(ns.host, ns.port, ns.tls_name, context, sockets, resolve_host)
    from . import doh

    if not doh.available():
        raise ValueError(f"{ns.host}: https:// nameservers need the `doh` extra (h2)")
    return doh.HttpsServer(ns.host, ns.port, ns.path, ns.tls_name, context, sockets, resolve_host)


def _system_resolve(host: str, port: int) -> list[str]:
    """A DoT/DoH server's name, resolved once per connection by the real getaddrinfo."""
    from .originals import get_original

    infos = get_original("getaddrinfo")(host, port, 0, socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _system_settings() -> tuple[list[dns.name.Name], int, float, bool, list[Nameserver]]:
    """(search list, ndots, per-try timeout, rotate, nameservers) as glibc reads them."""
    try:
        resolver = dns.resolver.Resolver(configure=True)
    except dns.exception.DNSException:  # no resolv.conf: glibc's defaults
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
    search = list(resolver.search) or (
        [resolver.domain] if resolver.domain != dns.name.root else []
    )
    ndots = resolver.ndots if resolver.ndots is not None else 1
    local = os.environ.get("LOCALDOMAIN")
    if local is not None:  # glibc: overrides resolv.conf's search list
        search = [dns.name.from_text(d) for d in local.split()]
    for option in os.environ.get("RES_OPTIONS", "").split():
        key, _, value = option.partition(":")
        if key == "ndots" and value.isdigit():
            ndots = min(int(value), 15)  # glibc's RES_MAXNDOTS
    servers = [Nameserver("dns", str(ip), int(resolver.port)) for ip in resolver.nameservers]
    return search, ndots, float(resolver.timeout), bool(resolver.rotate), servers
