"""TTL learning for the system backend: libc's answer, the record's TTL (issue 15 item 1).

glibc's getaddrinfo says which addresses, never for how long. This module asks
DNS the question libc asked, over the same servers (resolv.conf's, plain UDP),
and returns the record TTL when, and only when, DNS is provably where libc's
answer came from:

* The name must not be in the hosts file (libc answered from ``files``).
* The candidate names are glibc's ``res_search`` expansion of the host (search
  domains and ``ndots`` from resolv.conf, ``LOCALDOMAIN``, ``RES_OPTIONS``),
  asked in glibc's order; the first with addresses is the one libc resolved.
* Only the families libc returned are asked (``AI_ADDRCONFIG`` may have dropped
  one), and DNS's addresses for them must be exactly libc's (IPv4-mapped
  addresses compared as IPv4). Anything else (mDNS, ``myhostname``, NIS, a
  record that changed in between) gives None: the answer keeps ``Config.ttl``.
* When libc reported a canonical name, DNS's must be the same.

The TTL is the minimum over the CNAME chain and the address records, as the
dnspython backend computes it. The engine clamps it (``min_ttl``/``max_ttl``).

Cost, measured (``Config.ttl_source`` defaults to ``fixed`` because of it): on
this project's 2-CPU machine, in a namespace against dnsmasq, a learning call
took 444 us of CPU against 41 us for the libc miss it follows (11x, in a
background thread), plus one more upstream query per family per answer; and
building the first learner imports dnspython, which raised a fresh
interpreter's start-up from 0.44 s to 0.94 s (loaded machine). A fleet setting
PYTHONDNSCACHE=1 on every short-lived script would pay that on each.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core.config import Config
from .answer import Answer

if TYPE_CHECKING:
    from .stub import StubResolver

# Longest a learning lookup may take; it runs in the background, never on a caller's path.
DEFAULT_LIFETIME = 2.0


class _NoFallback:
    """The learner never asks libc: it only ever checks what libc said."""

    def resolve(self, host: bytes, family: int, flags: int, *, background: bool = False) -> Answer:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def close(self) -> None:
        pass

    def after_fork_in_child(self) -> None:
        pass


def _plain_ip(ip: str) -> str:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def _bare_name(text: str) -> str:
    return text.rstrip(".").lower()


class TtlLearner:
    """Finds the record TTL of an answer the system resolver gave (None when it can't)."""

    def __init__(
        self,
        hosts_names: Callable[[], frozenset[bytes]],
        *,
        lifetime: float = DEFAULT_LIFETIME,
    ) -> None:
        from .stub import StubResolver  # imports dnspython: only when TTLs are learned

        self._hosts_names = hosts_names
        # resolv.conf's servers, search list and ndots: where and what libc asked.
        self._dns: StubResolver = StubResolver(_NoFallback(), hosts_names, (), lifetime)
        self._lifetime = lifetime

    @classmethod
    def from_config(
        cls, config: Config, hosts_names: Callable[[], frozenset[bytes]]
    ) -> TtlLearner | None:
        """The learner a Resolver with ``config`` uses, or None when TTLs are fixed."""
        if config.backend != "system" or config.ttl_source != "dns":
            return None
        return cls(hosts_names, lifetime=min(max(config.resolve_timeout, 0.5), DEFAULT_LIFETIME))

    def learn(self, host: bytes, family: int, flags: int, answer: Answer) -> float | None:
        """The TTL of the DNS records behind ``answer`` (libc's for ``host``), or None.

        Blocks for up to the learner's lifetime (a DNS round trip when the
        resolver has the name cached): call it from a background thread.
        Never raises for a DNS failure (None); a signal handler's exception passes.
        """
        import dns.exception

        from .stub import _A, _AAAA, _OK, _TIMEOUT, _found, _outcome, query_name
        from .transports import Interrupted

        if not answer.addresses or host.lower().rstrip(b".") in self._hosts_names():
            return None
        try:
            name = query_name(host)
        except dns.exception.DNSException:
            return None
        libc = {_plain_ip(str(sockaddr[0])) for _, sockaddr in answer.addresses}
        rdtypes = tuple(
            rdtype
            for rdtype, present in (
                (_AAAA, any(":" in ip for ip in libc)),
                (_A, any(":" not in ip for ip in libc)),
            )
            if present
        )
        deadline = time.monotonic() + self._lifetime
        try:
            for qname in self._dns.candidates(name):
                queries = self._dns.ask(qname, rdtypes, deadline)
                outcome = _outcome(queries)
                if outcome == _TIMEOUT:
                    return None
                if outcome == _OK:
                    break
            else:
                return None
        except Interrupted:  # the learner was closed meanwhile
            return None
        found: set[str] = set()
        ttls: list[float] = []
        canonical: Any = None
        for query in queries:
            addresses, chain = _found(query)
            if not addresses:
                return None  # libc had this family, DNS has not: not where it came from
            found.update(_plain_ip(str(sockaddr[0])) for _, sockaddr in addresses)
            ttls.append(float(chain.minimum_ttl))
            canonical = canonical or chain.canonical_name
        if found != libc:
            return None
        if answer.canonname and canonical is not None:
            ours = _bare_name(canonical.to_text(omit_final_dot=True))
            if _bare_name(answer.canonname) != ours:
                return None
        return min(ttls)

    def close(self) -> None:
        self._dns.close()

    def after_fork_in_child(self) -> None:
        self._dns.after_fork_in_child()
