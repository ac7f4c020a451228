"""Why an upstream failed: one explicit query to each nameserver, as dig would send it.

The engine cannot say. dnspython's stub resolver sends from an *unconnected*
UDP socket, and Linux reports an ICMP "port unreachable" only to a connected
one (udp(7): "only connected sockets receive ICMP errors" unless IP_RECVERR),
so a query to a server that is not listening waits out the whole lifetime
(5 s) and ends as EAI_AGAIN, "Temporary failure in name resolution". glibc
and dig connect their UDP socket and learn ECONNREFUSED within a round trip.

So ``lookup`` asks each configured server itself, from a connected socket, with
a bounded wait, and reads the outcome: refused, unreachable, timeout, or the
rcode (NXDOMAIN, SERVFAIL, REFUSED) of a real answer. This module sends and
reads only; it never changes what the engine does or answers.
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Outcomes, most telling first: the order in which one is picked as *the* reason
# when servers disagree (an authoritative "no such name" explains a failure better
# than one server among several being down).
OUTCOMES = (
    "nxdomain",
    "nodata",
    "servfail",
    "refused",
    "unreachable",
    "timeout",
    "error",
    "answer",
)
POLL = 0.05  # seconds between checks of ``stop`` while waiting for answers
_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL})


@dataclass(frozen=True)
class ServerResult:
    """What one nameserver said to the probe."""

    server: str  # as configured: "ip", "ip:port" or "[v6]:port"
    outcome: str  # one of OUTCOMES
    detail: str  # for people: "connection refused", "NXDOMAIN", "no answer in 5.0 s"
    time_ms: float

    @property
    def hard_down(self) -> bool:
        """True when the server cannot answer at all (not merely slowly)."""
        return self.outcome in ("refused", "unreachable")


def reason(results: Sequence[ServerResult]) -> str | None:
    """The most telling outcome over every server, or None without results."""
    found = {r.outcome for r in results}
    return next((o for o in OUTCOMES if o in found), None)


def describe(results: Sequence[ServerResult]) -> str:
    """One line for people: "127.0.0.1:1: connection refused; 10.0.0.1: SERVFAIL"."""
    return "; ".join(f"{r.server}: {r.detail}" for r in results)


class _Probe:
    """One query to one server over a connected UDP socket."""

    def __init__(self, server: str, ip: str, port: int, wire: bytes, query_id: int) -> None:
        self.server = server
        self.query_id = query_id
        self.started = time.monotonic()
        self.result: ServerResult | None = None
        self.sock: socket.socket | None = None
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as exc:
            self._done("error", exc.strerror or str(exc))
            return
        self.sock = sock
        try:
            sock.setblocking(False)
            sock.connect((ip, port))  # connected: ICMP errors come back as ECONNREFUSED
            sock.send(wire)
        except OSError as exc:
            self._failed(exc)

    def _done(self, outcome: str, detail: str) -> None:
        elapsed = (time.monotonic() - self.started) * 1000
        self.result = ServerResult(self.server, outcome, detail, round(elapsed, 3))
        self.close()

    def _failed(self, exc: OSError) -> None:
        if exc.errno == errno.ECONNREFUSED:
            self._done("refused", "connection refused")
        elif exc.errno in _UNREACHABLE:
            self._done("unreachable", (exc.strerror or str(exc)).lower())
        else:
            self._done("error", exc.strerror or str(exc))

    def read(self, rdtype: str) -> None:
        """Read what arrived; a datagram that is not our answer is ignored (as dig does)."""
        import dns.exception
        import dns.message
        import dns.rcode

        assert self.sock is not None
        try:
            wire = self.sock.recv(65535)
        except BlockingIOError:
            return
        except OSError as exc:
            self._failed(exc)
            return
        try:
            response = dns.message.from_wire(wire, ignore_trailing=True)
        except (dns.exception.DNSException, ValueError):
            return
        if response.id != self.query_id:
            return
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            self._done("nxdomain", "NXDOMAIN, no such name")
        elif rcode == dns.rcode.SERVFAIL:
            self._done("servfail", "SERVFAIL, the server could not find an answer")
        elif rcode == dns.rcode.REFUSED:
            self._done("refused", "REFUSED, the server refuses to answer")
        elif rcode != dns.rcode.NOERROR:
            self._done("error", dns.rcode.to_text(rcode))
        else:
            addresses = [
                rd.to_text() for rrset in response.answer for rd in rrset if rrset.rdtype in (1, 28)
            ]
            if addresses:
                self._done("answer", "answers now: " + " ".join(addresses))
            else:
                self._done("nodata", f"NOERROR without any {rdtype} record")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def probe(
    servers: Sequence[str],
    host: str,
    rdtype: str,
    timeout: float,
    stop: Callable[[], bool] = lambda: False,
) -> list[ServerResult]:
    """Ask every server for ``host`` at once; wait at most ``timeout`` or until ``stop()``.

    Servers not done by then are reported as timeouts when the time was up, and
    left out when ``stop()`` ended the wait (the engine answered first).
    """
    import dns.message

    from ..._core.config import split_nameserver

    name = host.rstrip(".") + "."
    query = dns.message.make_query(name, rdtype)
    wire = query.to_wire()
    probes: list[_Probe] = []
    for server in servers:
        try:
            ip, port = split_nameserver(server)
        except ValueError:
            continue
        probes.append(_Probe(server, ip, port, wire, query.id))
    deadline = time.monotonic() + timeout
    stopped = False
    with selectors.DefaultSelector() as selector:
        for p in probes:
            if p.sock is not None:
                selector.register(p.sock, selectors.EVENT_READ, p)
        while any(p.result is None for p in probes):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if stop():
                stopped = True
                break
            for key, _ in selector.select(min(left, POLL)):
                p = key.data
                p.read(rdtype)
                if p.result is not None:
                    selector.unregister(key.fileobj)
    results: list[ServerResult] = []
    for p in probes:
        if p.result is None:
            p.close()
            if stopped:
                continue
            p._done("timeout", f"timeout, no answer in {timeout:.1f} s")
        assert p.result is not None
        results.append(p.result)
    return results
