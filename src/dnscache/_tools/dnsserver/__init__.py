"""A tiny authoritative-only DNS server on loopback, for demos, benchmarks and tests.

:class:`DNSServer` answers UDP and TCP queries on one port from an in-memory zone that
can be changed at any time from other threads: A/AAAA records with a TTL, CNAME aliases
(followed inside the zone), NXDOMAIN, SERVFAIL, dropped names (the query is never
answered, so clients time out), per-name and global answer delays, and a ``paused``
switch. It counts every query it receives, so tests can check what reached the wire.

It is built for controlled DNS behaviour, not for serving real traffic:

* It is authoritative for every name: unknown names get NXDOMAIN. Negative answers
  (NXDOMAIN and NODATA) carry a synthetic SOA for the root zone in the authority section
  whose TTL and minimum are ``default_ttl`` (RFC 2308).
* Only class IN and the QUERY opcode are served; other classes get REFUSED, other
  opcodes NOTIMP. Queries for types other than A, AAAA and CNAME (and ANY, which gets
  both address types) get NODATA. There is no DNSSEC, no zone transfer, no TSIG.
* UDP answers larger than 512 bytes (or the client's EDNS payload size) come back empty
  with the TC flag so clients retry over TCP; TCP answers are never truncated.
* ``host`` must be an IP literal (such as ``"127.0.0.1"`` or ``"::1"``); no name lookup
  is done, so the server is safe to use while ``socket.getaddrinfo`` is patched.
* A query is counted and its answer decided when it is received; the answer is then
  sent after ``delay`` plus the queried name's own delay (an alias target's delay does
  not add up). Delayed UDP answers run on short-lived worker threads; each TCP connection
  is served on one such worker, one query after another. At most 64 workers are in
  flight: beyond that a delayed UDP query is dropped and a new TCP connection closed.

The package is split by role: :mod:`.zone` (names, records, how a question is
answered), :mod:`.handler` (a received query in, a decided answer out; no sockets)
and :mod:`.server` (the sockets, threads and lifecycle of :class:`DNSServer`).
"""

from __future__ import annotations

from .server import DNSServer

__all__ = ["DNSServer"]
