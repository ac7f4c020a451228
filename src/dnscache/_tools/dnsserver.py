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
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

__all__ = ["DNSServer"]

_THREAD_PREFIX = "dnscache-testdns"
_MAX_WORKERS = 64
_POLL_INTERVAL = 0.1  # seconds: how often blocked loops re-check the stop event
_JOIN_TIMEOUT = 1.0
_TCP_IDLE_TIMEOUT = 30.0
_TCP_SEND_TIMEOUT = 5.0
_MAX_CHAIN = 16  # CNAME hops followed inside the zone before giving up with SERVFAIL
_MAX_TTL = 2**31 - 1
_OUR_PAYLOAD = 1232
_SOA_RDATA = "ns.dnscache.test. hostmaster.dnscache.test. 1 3600 600 86400 {minimum}"

_Kind = Literal["records", "nxdomain", "servfail", "drop"]


@dataclass(frozen=True)
class _Entry:
    kind: _Kind
    records: dict[dns.rdatatype.RdataType, tuple[dns.rdata.Rdata, ...]] = field(
        default_factory=dict
    )
    ttl: int | None = None
    cname: dns.name.Name | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class _Job:
    """A received query and what to do with it."""

    response: dns.message.Message | None  # None: never answer
    delay: float
    udp_limit: int  # largest UDP answer the client accepts


def _name_key(name: dns.name.Name) -> str:
    return name.canonicalize().to_text(omit_final_dot=True)


def _parse_name(name: str) -> dns.name.Name:
    try:
        return dns.name.from_text(name, origin=dns.name.root)
    except dns.exception.DNSException as exc:
        raise ValueError(f"invalid DNS name {name!r}: {exc}") from exc


def _key(name: str) -> str:
    return _name_key(_parse_name(name))


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


class DNSServer:
    """A loopback DNS server for demos and tests: UDP and TCP, answers from an in-memory zone."""

    delay: float
    """Seconds added before every answer (on top of a name's own delay)."""
    paused: bool
    """When true, queries are received (and counted) but never answered."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, default_ttl: int = 60) -> None:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"host must be an IP address literal, not {host!r}") from None
        if not 0 <= port <= 65535:
            raise ValueError(f"invalid port {port!r}")
        if not 0 <= default_ttl <= _MAX_TTL:
            raise ValueError(f"invalid default_ttl {default_ttl!r}")
        self._host = str(address)
        self._family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        self._port = port
        self._default_ttl = default_ttl
        self.delay = 0.0
        self.paused = False
        self._soa = dns.rrset.from_text(
            dns.name.root,
            default_ttl,
            dns.rdataclass.IN,
            dns.rdatatype.SOA,
            _SOA_RDATA.format(minimum=default_ttl),
        )
        self._lock = threading.Lock()  # zone and log
        self._zone: dict[str, _Entry] = {}
        self._log: list[tuple[str, str]] = []
        self._state_lock = threading.RLock()  # start/stop
        self._running = False
        self._stop_event = threading.Event()
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._workers_lock = threading.Lock()
        self._workers: set[threading.Thread] = set()

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<DNSServer {self.nameserver} {state}>"

    # -- zone control ---------------------------------------------------------------------

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
        """Serve *name* with these A/AAAA records, or as an alias of *cname*.

        *ttl* defaults to the server's ``default_ttl``; *delay* is slept before answering
        queries for this name. A CNAME answer carries the alias record (with *ttl*) plus the
        target's records, following further aliases inside the zone.
        """
        key = _key(name)
        if ttl is not None and not 0 <= ttl <= _MAX_TTL:
            raise ValueError(f"invalid ttl {ttl!r}")
        if not delay >= 0.0:
            raise ValueError(f"invalid delay {delay!r}")
        records: dict[dns.rdatatype.RdataType, tuple[dns.rdata.Rdata, ...]] = {}
        target: dns.name.Name | None = None
        if cname is not None:
            if a or aaaa:
                raise ValueError("a CNAME alias cannot have A or AAAA records")
            target = _parse_name(cname)
            records[dns.rdatatype.CNAME] = (
                dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.CNAME, target.to_text()),
            )
        else:
            for rdtype, values in ((dns.rdatatype.A, a), (dns.rdatatype.AAAA, aaaa)):
                rdatas = _parse_rdatas(rdtype, values)
                if rdatas:
                    records[rdtype] = rdatas
        entry = _Entry("records", records, ttl, target, float(delay))
        with self._lock:
            self._zone[key] = entry

    def nxdomain(self, name: str) -> None:
        """Answer queries for *name* with NXDOMAIN (rcode 3)."""
        self._set_kind(name, "nxdomain")

    def servfail(self, name: str) -> None:
        """Answer queries for *name* with SERVFAIL (rcode 2)."""
        self._set_kind(name, "servfail")

    def drop(self, name: str) -> None:
        """Never answer queries for *name* (the client times out)."""
        self._set_kind(name, "drop")

    def remove(self, name: str) -> None:
        """Forget *name*; it then gets NXDOMAIN like every unknown name."""
        key = _key(name)
        with self._lock:
            self._zone.pop(key, None)

    def _set_kind(self, name: str, kind: _Kind) -> None:
        key = _key(name)
        with self._lock:
            self._zone[key] = _Entry(kind)

    # -- observation ----------------------------------------------------------------------

    def queries(self, name: str | None = None, rtype: str | None = None) -> int:
        """How many received queries match *name* and *rtype* (``None`` matches any)."""
        key = None if name is None else _key(name)
        wanted = None if rtype is None else rtype.upper()
        with self._lock:
            return sum(
                1
                for qname, qtype in self._log
                if (key is None or qname == key) and (wanted is None or qtype == wanted)
            )

    @property
    def log(self) -> list[tuple[str, str]]:
        """A copy of ``(name, rtype)`` of every query received, oldest first."""
        with self._lock:
            return list(self._log)

    def reset_counts(self) -> None:
        """Forget every query received so far."""
        with self._lock:
            self._log.clear()

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the requested one, which may be 0, before the first start)."""
        return self._port

    @property
    def host(self) -> str:
        return self._host

    @property
    def nameserver(self) -> str:
        """``"HOST:PORT"``, with an IPv6 host in brackets."""
        if self._family == socket.AF_INET6:
            return f"[{self._host}]:{self._port}"
        return f"{self._host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> DNSServer:
        """Bind UDP and TCP on the same port and start serving; a no-op when running."""
        with self._state_lock:
            if self._running:
                return self
            udp, tcp = self._bind()
            wake_r, wake_w = socket.socketpair()
            wake_r.setblocking(False)
            wake_w.setblocking(False)
            self._udp, self._tcp = udp, tcp
            self._wake_r, self._wake_w = wake_r, wake_w
            self._port = udp.getsockname()[1]
            self._stop_event = threading.Event()
            stop = self._stop_event
            self._threads = [
                threading.Thread(
                    target=self._guard,
                    args=(self._udp_loop, udp, wake_r, stop),
                    name=f"{_THREAD_PREFIX}-udp",
                    daemon=True,
                ),
                threading.Thread(
                    target=self._guard,
                    args=(self._tcp_loop, tcp, wake_r, stop),
                    name=f"{_THREAD_PREFIX}-tcp",
                    daemon=True,
                ),
            ]
            self._running = True
            try:
                for thread in self._threads:
                    thread.start()
            except BaseException:
                self.stop()
                raise
            return self

    def stop(self) -> None:
        """Stop serving, join the threads (within about a second) and close the sockets."""
        with self._state_lock:
            if not self._running:
                return
            self._running = False
            self._stop_event.set()
            if self._wake_w is not None:
                with contextlib.suppress(OSError):
                    self._wake_w.send(b"x")
            deadline = time.monotonic() + _JOIN_TIMEOUT
            for thread in self._threads:
                if thread.ident is not None:
                    thread.join(max(0.0, deadline - time.monotonic()))
            self._threads = []
            with self._workers_lock:
                workers = list(self._workers)
            for thread in workers:
                thread.join(max(0.0, deadline - time.monotonic()))
            for sock in (self._udp, self._tcp, self._wake_r, self._wake_w):
                if sock is not None:
                    sock.close()
            self._udp = self._tcp = self._wake_r = self._wake_w = None

    def restart(self) -> None:
        """Stop, then start again on the same port (the zone and the counts are kept)."""
        with self._state_lock:
            self.stop()
            self.start()

    def __enter__(self) -> DNSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        """Bind a UDP and a TCP socket on one port (a free one when ``port`` is 0)."""
        attempts = 20
        last: OSError | None = None
        for attempt in range(attempts):
            udp = socket.socket(self._family, socket.SOCK_DGRAM)
            tcp: socket.socket | None = None
            try:
                udp.bind((self._host, self._port))
                port = udp.getsockname()[1]
                tcp = socket.socket(self._family, socket.SOCK_STREAM)
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((self._host, port))
                tcp.listen(64)
                udp.setblocking(False)
                tcp.setblocking(False)
                return udp, tcp
            except OSError as exc:
                udp.close()
                if tcp is not None:
                    tcp.close()
                if exc.errno != errno.EADDRINUSE:
                    raise
                last = exc
                if self._port != 0:  # a fixed port: it may be freed in a moment
                    time.sleep(0.05 * (attempt + 1))
                    if attempt >= 5:
                        break
        assert last is not None
        raise last

    # -- threads --------------------------------------------------------------------------

    @staticmethod
    def _guard(target: Callable[..., None], *args: object) -> None:
        """Run a thread body; nothing escapes (no tracebacks, no threading.excepthook)."""
        with contextlib.suppress(BaseException):
            target(*args)

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> bool:
        """Run *target* on a tracked worker thread; ``False`` when too many are in flight."""
        with self._workers_lock:
            if len(self._workers) >= _MAX_WORKERS:
                return False
            thread = threading.Thread(
                target=self._worker_main, args=(target, *args), name=name, daemon=True
            )
            self._workers.add(thread)
        try:
            thread.start()
        except RuntimeError:
            with self._workers_lock:
                self._workers.discard(thread)
            return False
        return True

    def _worker_main(self, target: Callable[..., None], *args: object) -> None:
        try:
            self._guard(target, *args)
        finally:
            with self._workers_lock:
                self._workers.discard(threading.current_thread())

    def _udp_loop(self, sock: socket.socket, wake: socket.socket, stop: threading.Event) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_READ)
            sel.register(wake, selectors.EVENT_READ)
            while not stop.is_set():
                for key, _ in sel.select(_POLL_INTERVAL):
                    if key.fileobj is sock:
                        self._udp_drain(sock, stop)

    def _udp_drain(self, sock: socket.socket, stop: threading.Event) -> None:
        """Handle the datagrams waiting on *sock* (a bounded batch, then back to select)."""
        for _ in range(64):
            if stop.is_set():
                return
            try:
                wire, addr = sock.recvfrom(65535)
            except OSError:  # BlockingIOError when drained; ICMP errors on some systems
                return
            try:
                job = self._receive(wire)
                if job is None or job.response is None:
                    continue
                if job.delay > 0:
                    name = f"{_THREAD_PREFIX}-worker"
                    self._spawn(self._udp_answer, name, sock, addr, job, stop)
                else:
                    self._udp_answer(sock, addr, job, stop)
            except Exception:
                continue

    def _udp_answer(
        self,
        sock: socket.socket,
        addr: tuple[str, int] | tuple[str, int, int, int],
        job: _Job,
        stop: threading.Event,
    ) -> None:
        if job.delay > 0 and stop.wait(job.delay):
            return
        if stop.is_set() or self.paused or job.response is None:
            return
        wire = self._to_wire(job.response, job.udp_limit)
        if wire is not None:
            with contextlib.suppress(OSError):
                sock.sendto(wire, addr)

    def _tcp_loop(self, sock: socket.socket, wake: socket.socket, stop: threading.Event) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_READ)
            sel.register(wake, selectors.EVENT_READ)
            while not stop.is_set():
                for key, _ in sel.select(_POLL_INTERVAL):
                    if key.fileobj is not sock or stop.is_set():
                        continue
                    try:
                        conn, _addr = sock.accept()
                    except OSError:
                        continue
                    try:
                        conn.settimeout(_POLL_INTERVAL)
                        started = self._spawn(
                            self._tcp_connection, f"{_THREAD_PREFIX}-tcp-conn", conn, stop
                        )
                    except Exception:
                        started = False
                    if not started:
                        conn.close()

    def _tcp_connection(self, conn: socket.socket, stop: threading.Event) -> None:
        with conn:
            buf = b""
            idle_deadline = time.monotonic() + _TCP_IDLE_TIMEOUT
            while not stop.is_set():
                if len(buf) >= 2:
                    size = int.from_bytes(buf[:2], "big")
                    if len(buf) >= 2 + size:
                        wire, buf = buf[2 : 2 + size], buf[2 + size :]
                        idle_deadline = time.monotonic() + _TCP_IDLE_TIMEOUT
                        if not self._tcp_query(conn, wire, stop):
                            return
                        continue
                if time.monotonic() > idle_deadline:
                    return
                try:
                    chunk = conn.recv(65537)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk

    def _tcp_query(self, conn: socket.socket, wire: bytes, stop: threading.Event) -> bool:
        """Answer one framed query; ``False`` when the connection should be closed."""
        try:
            job = self._receive(wire)
        except Exception:
            return True
        if job is None or job.response is None:
            return True
        if job.delay > 0 and stop.wait(job.delay):
            return False
        if stop.is_set():
            return False
        if self.paused:
            return True
        out = self._to_wire(job.response, 65535)
        if out is None:
            return True
        return self._send_all(conn, len(out).to_bytes(2, "big") + out, stop)

    @staticmethod
    def _send_all(conn: socket.socket, data: bytes, stop: threading.Event) -> bool:
        view = memoryview(data)
        deadline = time.monotonic() + _TCP_SEND_TIMEOUT
        while view:
            if stop.is_set() or time.monotonic() > deadline:
                return False
            try:
                sent = conn.send(view)
            except TimeoutError:
                continue
            except OSError:
                return False
            view = view[sent:]
        return True

    # -- answering ------------------------------------------------------------------------

    def _receive(self, wire: bytes) -> _Job | None:
        """Parse and count a query and decide the answer; ``None`` for garbage."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        if query.flags & dns.flags.QR:
            return None
        udp_limit = max(512, min(query.payload, 65535)) if query.edns >= 0 else 512
        response = dns.message.make_response(
            query, recursion_available=True, our_payload=_OUR_PAYLOAD
        )
        response.flags |= dns.flags.AA
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return _Job(response, 0.0, udp_limit)
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return _Job(response, 0.0, udp_limit)
        question = query.question[0]
        qname, rdtype = question.name, question.rdtype
        key = _name_key(qname)
        with self._lock:
            self._log.append((key, dns.rdatatype.to_text(rdtype)))
            paused = self.paused
            delay = self.delay
            entry = self._zone.get(key)
            if entry is not None:
                delay += entry.delay
            if paused:
                return _Job(None, 0.0, udp_limit)
            if query.edns > 0:
                response.set_rcode(dns.rcode.BADVERS)
            elif question.rdclass != dns.rdataclass.IN:
                response.set_rcode(dns.rcode.REFUSED)
            elif not self._resolve(response, qname, rdtype):
                return _Job(None, 0.0, udp_limit)
        return _Job(response, max(0.0, delay), udp_limit)

    def _resolve(
        self, response: dns.message.Message, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> bool:
        """Fill *response* from the zone (lock held); ``False`` means drop the query."""
        name = qname
        for _ in range(_MAX_CHAIN):
            entry = self._zone.get(_name_key(name))
            if entry is None or entry.kind == "nxdomain":
                response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(self._soa)
                return True
            if entry.kind == "servfail":
                response.answer.clear()
                response.set_rcode(dns.rcode.SERVFAIL)
                return True
            if entry.kind == "drop":
                return False
            ttl = self._default_ttl if entry.ttl is None else entry.ttl
            if entry.cname is not None:
                response.answer.append(
                    dns.rrset.from_rdata(
                        name,
                        ttl,
                        entry.records[dns.rdatatype.CNAME][0],
                    )
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
            if not found:
                response.authority.append(self._soa)
            return True
        # A CNAME loop or a chain that is too long.
        response.answer.clear()
        response.set_rcode(dns.rcode.SERVFAIL)
        return True

    @staticmethod
    def _to_wire(response: dns.message.Message, limit: int) -> bytes | None:
        """Render *response*; if it does not fit in *limit*, an empty answer with TC set."""
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
