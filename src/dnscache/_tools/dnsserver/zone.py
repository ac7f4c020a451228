"""The test server's zone: names, their records or failure modes, and how a query is answered.

Pure DNS data, no sockets: :class:`Zone` maps a canonical name to what the server
does for it (records with a TTL, an alias, NXDOMAIN, SERVFAIL, or a silent drop)
and fills a response for a question, following aliases inside the zone. It is
thread-safe: the server's threads answer while a test changes the zone.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

MAX_CHAIN = 16  # CNAME hops followed inside the zone before giving up with SERVFAIL
MAX_TTL = 2**31 - 1  # RFC 2181 section 8: a TTL is an unsigned 31-bit number
# RFC 2308 section 3: a negative answer carries the zone's SOA, whose minimum is the
# negative-caching TTL. One synthetic SOA for the root stands in for every zone.
_SOA_RDATA = "ns.dnscache.test. hostmaster.dnscache.test. 1 3600 600 86400 {minimum}"

Kind = Literal["records", "nxdomain", "servfail", "drop"]


@dataclass(frozen=True)
class Name:
    """What the server does for one name."""

    kind: Kind
    records: dict[dns.rdatatype.RdataType, tuple[dns.rdata.Rdata, ...]] = field(
        default_factory=dict
    )
    ttl: int | None = None
    cname: dns.name.Name | None = None
    delay: float = 0.0


def name_key(name: dns.name.Name) -> str:
    """The zone's key for a name: lower case, no final dot."""
    return name.canonicalize().to_text(omit_final_dot=True)


def parse_name(name: str) -> dns.name.Name:
    try:
        return dns.name.from_text(name, origin=dns.name.root)
    except dns.exception.DNSException as exc:
        raise ValueError(f"invalid DNS name {name!r}: {exc}") from exc


def key(name: str) -> str:
    return name_key(parse_name(name))


def _parse_rdatas(
    rdtype: dns.rdatatype.RdataType, values: Sequence[str]
) -> tuple[dns.rdata.Rdata, ...]:
    if isinstance(values, str):
        values = (values,)
    out: list[dns.rdata.Rdata] = []
    for value in values:
        try:
            out.append(dns.rdata.from_text(dns.rdataclass.IN, rdtype, value))
        except (dns.exception.DNSException, ValueError) as exc:
            kind = dns.rdatatype.to_text(rdtype)
            raise ValueError(f"invalid {kind} address {value!r}: {exc}") from exc
    return tuple(out)


class Zone:
    """Every name the server knows; unknown names are NXDOMAIN. Thread-safe (one lock)."""

    def __init__(self, default_ttl: int = 60) -> None:
        if not 0 <= default_ttl <= MAX_TTL:
            raise ValueError(f"invalid default_ttl {default_ttl!r}")
        self.default_ttl = default_ttl
        self.soa = dns.rrset.from_text(
            dns.name.root,
            default_ttl,
            dns.rdataclass.IN,
            dns.rdatatype.SOA,
            _SOA_RDATA.format(minimum=default_ttl),
        )
        self._lock = threading.Lock()
        self._names: dict[str, Name] = {}

    def set(
        self,
        name: str,
        a: Sequence[str] = (),
        aaaa: Sequence[str] = (),
        *,
        ttl: int | None = None,
        cname: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Serve ``name`` with these records, or as an alias of ``cname`` (see DNSServer.set)."""
        k = key(name)
        if ttl is not None and not 0 <= ttl <= MAX_TTL:
            raise ValueError(f"invalid ttl {ttl!r}")
        if not delay >= 0.0:
            raise ValueError(f"invalid delay {delay!r}")
        records: dict[dns.rdatatype.RdataType, tuple[dns.rdata.Rdata, ...]] = {}
        target: dns.name.Name | None = None
        if cname is not None:
            if a or aaaa:
                raise ValueError("a CNAME alias cannot have A or AAAA records")
            target = parse_name(cname)
            records[dns.rdatatype.CNAME] = (
                dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.CNAME, target.to_text()),
            )
        else:
            for rdtype, values in ((dns.rdatatype.A, a), (dns.rdatatype.AAAA, aaaa)):
                rdatas = _parse_rdatas(rdtype, values)
                if rdatas:
                    records[rdtype] = rdatas
        entry = Name("records", records, ttl, target, float(delay))
        with self._lock:
            self._names[k] = entry

    def set_kind(self, name: str, kind: Kind) -> None:
        k = key(name)
        with self._lock:
            self._names[k] = Name(kind)

    def remove(self, name: str) -> None:
        k = key(name)
        with self._lock:
            self._names.pop(k, None)

    def delay_of(self, qname: dns.name.Name) -> float:
        """The name's own answer delay (0 for unknown names)."""
        with self._lock:
            entry = self._names.get(name_key(qname))
        return 0.0 if entry is None else entry.delay

    def answer(
        self, response: dns.message.Message, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> bool:
        """Fill ``response`` for the question; ``False`` means drop the query (never answer)."""
        with self._lock:
            return self._answer_locked(response, qname, rdtype)

    def _answer_locked(
        self, response: dns.message.Message, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> bool:
        name = qname
        for _ in range(MAX_CHAIN):
            entry = self._names.get(name_key(name))
            if entry is None or entry.kind == "nxdomain":
                response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(self.soa)
                return True
            if entry.kind == "servfail":
                response.answer.clear()
                response.set_rcode(dns.rcode.SERVFAIL)
                return True
            if entry.kind == "drop":
                return False
            ttl = self.default_ttl if entry.ttl is None else entry.ttl
            if entry.cname is not None:
                response.answer.append(
                    dns.rrset.from_rdata(name, ttl, entry.records[dns.rdatatype.CNAME][0])
                )
                if rdtype == dns.rdatatype.CNAME:
                    return True
                name = entry.cname
                continue
            if rdtype == dns.rdatatype.ANY:
                wanted = [dns.rdatatype.A, dns.rdatatype.AAAA]
            else:
                wanted = [rdtype]
            found = False
            for t in wanted:
                rdatas = entry.records.get(t)
                if rdatas:
                    response.answer.append(dns.rrset.from_rdata_list(name, ttl, list(rdatas)))
                    found = True
            if not found:  # NODATA (RFC 2308 section 2.2): the SOA says how long to cache it
                response.authority.append(self.soa)
            return True
        # A CNAME loop or a chain that is too long.
        response.answer.clear()
        response.set_rcode(dns.rcode.SERVFAIL)
        return True
