"""The test server's request handling: parse a query, count it, decide the answer, render it.

No sockets and no threads here: :class:`Handler` turns received bytes into a
:class:`Job` (the response, or none for a query that is never answered, and the
delay before it is sent), and :func:`to_wire` renders a response to fit the
client's UDP limit, truncating (RFC 1035 section 4.2.1, TC bit) when it does not.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from .zone import Zone, name_key

# RFC 1035 section 4.2.1: 512 bytes without EDNS. With EDNS we advertise 1232, the
# DNS Flag Day 2020 figure that avoids IP fragmentation on common paths.
PLAIN_UDP_LIMIT = 512
OUR_PAYLOAD = 1232


@dataclass(frozen=True)
class Job:
    """A received query and what to do with it."""

    response: dns.message.Message | None  # None: never answer
    delay: float
    udp_limit: int  # largest UDP answer the client accepts


class QueryLog:
    """``(name, rtype)`` of every query received, oldest first. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[tuple[str, str]] = []

    def add(self, name: str, rtype: str) -> None:
        with self._lock:
            self._entries.append((name, rtype))

    def count(self, key: str | None, rtype: str | None) -> int:
        with self._lock:
            return sum(
                1
                for qname, qtype in self._entries
                if (key is None or qname == key) and (rtype is None or qtype == rtype)
            )

    def copy(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class Handler:
    """Turns a received query into a :class:`Job`, counting it in ``log``."""

    def __init__(self, zone: Zone, log: QueryLog) -> None:
        self.zone = zone
        self.log = log

    def receive(self, wire: bytes, *, paused: bool, delay: float) -> Job | None:
        """Parse and count a query and decide the answer; ``None`` for garbage.

        A query is counted when it is received, whatever happens to it next;
        ``paused`` drops it after counting and ``delay`` is added to the name's own.
        """
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        if query.flags & dns.flags.QR:
            return None
        udp_limit = (
            max(PLAIN_UDP_LIMIT, min(query.payload, 65535)) if query.edns >= 0 else PLAIN_UDP_LIMIT
        )
        response = dns.message.make_response(
            query, recursion_available=True, our_payload=OUR_PAYLOAD
        )
        response.flags |= dns.flags.AA
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return Job(response, 0.0, udp_limit)
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return Job(response, 0.0, udp_limit)
        question = query.question[0]
        qname, rdtype = question.name, question.rdtype
        self.log.add(name_key(qname), dns.rdatatype.to_text(rdtype))
        if paused:
            return Job(None, 0.0, udp_limit)
        delay += self.zone.delay_of(qname)
        if query.edns > 0:  # RFC 6891 section 6.1.3: we speak EDNS version 0 only
            response.set_rcode(dns.rcode.BADVERS)
        elif question.rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.REFUSED)
        elif not self.zone.answer(response, qname, rdtype):
            return Job(None, 0.0, udp_limit)
        return Job(response, max(0.0, delay), udp_limit)


def to_wire(response: dns.message.Message, limit: int) -> bytes | None:
    """Render ``response``; if it does not fit in ``limit``, an empty answer with TC set."""
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        pass
    except Exception:
        return None
    response.answer.clear()
    response.authority.clear()
    response.additional.clear()
    response.flags |= dns.flags.TC
    try:
        return response.to_wire(max_size=limit)
    except Exception:
        return None
