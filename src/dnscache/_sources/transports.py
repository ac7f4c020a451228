"""How the dnspython backend's queries reach a nameserver, and how it waits for them.

dnspython builds and parses the messages; the wire is ours, for four reasons
that its ``Resolver.resolve`` cannot meet:

* **Both families at once without a thread.** glibc sends the A and the AAAA
  query of an ``AF_UNSPEC`` lookup back to back on one socket and waits for
  both in one loop; so do we (:meth:`UdpServer.exchange`). A thread per lookup
  cost more than the queries themselves (issue 12).
* **The caller's signals.** A ``signal.alarm`` handler that raises must reach
  the caller, as it does around libc. dnspython's resolver catches every
  ``Exception`` from a query and moves on to the next server, so the
  handler's exception vanished. Here nothing is caught around a wait except
  errors that carry an ``errno`` (what the kernel or OpenSSL report); a
  handler's exception (``TimeoutError()``, ``KeyboardInterrupt``, anything
  without an errno) passes through. Every socket is non-blocking and waited on
  with ``poll``, so no timeout ever surfaces as a ``TimeoutError`` of ours.
* **Interruptible.** ``close()`` must wake a query stuck on a dead server at
  once: every socket in use is registered in :class:`OpenSockets`, which shuts
  them down, waking the ``poll``.
* **Connections kept.** DNS over TLS (RFC 7858) and over HTTPS (RFC 8484,
  :mod:`.doh`) cost a TCP and a TLS handshake per connection; dnspython's
  nameserver objects open one per query. :class:`StreamServer` keeps idle
  connections and reuses them (RFC 7858 section 3.4 asks clients to).

Waits are capped per call (``_MAX_WAIT``), so any deadline, however far
(``resolve_timeout=1e10``), is only ever a loop of bounded ``poll`` calls.

Why one module of about 530 lines: the datagram and stream exchanges share the
interruptible-socket registry, the capped waits and the error mapping above, and
the three must change together (DoH's HTTP/2 framing is apart, in ``doh``).
"""

from __future__ import annotations

import errno
import select
import socket
import ssl
import struct
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.flags
import dns.message

# Longest single poll(): poll() takes an int of milliseconds; longer deadlines loop.
_MAX_WAIT = 3600.0
# Idle connections kept per encrypted server; more concurrent lookups open more.
MAX_IDLE = 4
_THREAD_PREFIX = "dnscache-"
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)

ResolveHost = Callable[[str, int], list[str]]  # (host name, port) -> IP strings


class Interrupted(OSError):
    """The backend was closed while this query waited (it ends at once)."""

    def __init__(self) -> None:
        super().__init__(errno.ECANCELED, "dnscache resolver closed")


def is_failure(exc: BaseException) -> bool:
    """Is this an error of the exchange (kernel, TLS), not the caller's signal handler's?"""
    return isinstance(exc, OSError) and exc.errno is not None


@dataclass(eq=False)
class Query:
    """One question in flight: its message, its wire form, and what came back."""

    message: dns.message.Message
    wire: bytes
    response: dns.message.Message | None = None  # last response received (maybe SERVFAIL)
    answered: bool = False  # a final response (NOERROR, NXDOMAIN) arrived
    extracted: Any = None  # the backend's reading of the response, made once

    @property
    def id(self) -> int:
        return int(self.message.id)


class _Socket(socket.socket):
    """A socket that remembers it was shut down by :meth:`OpenSockets.close`."""

    interrupted = False


class OpenSockets:
    """The sockets of the exchanges in progress, so close() can interrupt them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Weak: a socket whose caller was interrupted (a signal handler's exception)
        # between open() and its try/finally is collected and closed, not kept open
        # here for ever (found by the signal storm in tests/test_unbreakable.py).
        self._open: weakref.WeakSet[_Socket] = weakref.WeakSet()
        self.closed = False

    def open(self, family: int, type: int) -> _Socket:
        with self._lock:
            # After close() our own background threads stop; a caller's thread still
            # gets answers (a closed resolver keeps working, without background work).
            if self.closed and threading.current_thread().name.startswith(_THREAD_PREFIX):
                raise Interrupted()
            sock = _Socket(family, type | socket.SOCK_CLOEXEC)
            sock.setblocking(False)
            self._open.add(sock)
            return sock

    def adopt(self, sock: _Socket) -> None:
        with self._lock:
            self._open.add(sock)

    def release(self, sock: _Socket, *, close: bool = True) -> None:
        with self._lock:
            self._open.discard(sock)
        if close:
            sock.close()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            pending = list(self._open)
        for sock in pending:
            sock.interrupted = True
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # ENOTCONN: a socket still connecting is woken all the same

    def after_fork_in_child(self) -> None:
        # The parent's exchanges are not ours to finish, and the lock may have been held.
        self._lock = threading.Lock()
        self._open = weakref.WeakSet()


class _SelectPoller:
    """``select.poll``'s interface over ``select.select``, for one socket.

    For eventlet: its monkey-patching deletes ``select.poll`` (its hub cannot
    make a poll object cooperative) and leaves a green ``select.select``, which
    waits on eventlet's hub, so it has no ``FD_SETSIZE`` limit either. gevent
    replaces ``select.poll`` itself, with a cooperative one.
    """

    def __init__(self) -> None:
        self._fd = -1
        self._events = 0

    def register(self, sock: socket.socket, events: int) -> None:
        self._fd = sock.fileno()
        if self._fd < 0:
            raise ValueError("file descriptor cannot be a negative integer")
        self._events = events

    def poll(self, timeout_ms: float) -> list[tuple[int, int]]:
        fd, wanted = self._fd, self._events
        readable, writable, _ = select.select(
            [fd] if wanted & select.POLLIN else [],
            [fd] if wanted & select.POLLOUT else [],
            [],
            max(timeout_ms, 0.0) / 1000.0,
        )
        events = (select.POLLIN if readable else 0) | (select.POLLOUT if writable else 0)
        return [(fd, events)] if events else []


def _poller() -> Any:
    """``select.poll()`` as it is now (gevent's when it patched it), or :class:`_SelectPoller`."""
    poll = getattr(select, "poll", None)
    return _SelectPoller() if poll is None else poll()


def wait(sock: _Socket, events: int, deadline: float) -> bool:
    """Wait until ``sock`` is ready for ``events`` or the deadline passes (False).

    Raises :class:`Interrupted` if close() shut the socket down meanwhile, and
    whatever a signal handler raises (poll() is restarted after a handler that
    returns, PEP 475).
    """
    poller = _poller()
    poller.register(sock, events)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ready = poller.poll(min(remaining, _MAX_WAIT) * 1000.0 + 1.0)
        if sock.interrupted:
            raise Interrupted()
        if ready:
            return True


def readable_now(sock: socket.socket) -> bool | None:
    """Is there something to read (or EOF) right now? None if the socket is unusable."""
    poller = _poller()
    try:
        poller.register(sock, select.POLLIN)
    except (OSError, ValueError):
        return None
    events = poller.poll(0)
    if events and events[0][1] & (select.POLLERR | select.POLLNVAL):
        return None
    return bool(events)


def parse(query: Query, wire: bytes) -> dns.message.Message | None:
    """The response to ``query`` in ``wire``, or None for anything else (ignored, as dnspython
    does with ``ignore_errors``: a stray or malformed datagram must not end the wait)."""
    if len(wire) < 12 or int.from_bytes(wire[:2], "big") != query.id:
        return None
    try:
        response = dns.message.from_wire(wire, ignore_trailing=True)
    except (dns.exception.DNSException, ValueError):
        return None
    if not query.message.is_response(response):
        return None
    return response


def deliver(query: Query, response: dns.message.Message) -> None:
    query.response = response
    query.extracted = None
    # SERVFAIL, REFUSED, NOTIMP, FORMERR: ask the next server, as glibc's res_send does.
    query.answered = response.rcode() in (0, 3)  # NOERROR, NXDOMAIN


class UdpServer:
    """Plain DNS: UDP, and TCP for a truncated answer (RFC 7766)."""

    encrypted = False

    def __init__(self, ip: str, port: int, sockets: OpenSockets) -> None:
        self.ip, self.port = ip, port
        self.family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        self._sockets = sockets

    def __repr__(self) -> str:
        return f"UdpServer({self.ip!r}, {self.port})"

    def exchange(self, queries: Sequence[Query], deadline: float) -> None:
        """Send every query on one connected socket and read answers until all came or time's up.

        Connected, so the kernel drops datagrams from anyone else and a closed port
        comes back at once as ECONNREFUSED (raised: the caller moves to the next server).
        """
        sock = self._sockets.open(self.family, socket.SOCK_DGRAM)
        try:
            sock.connect((self.ip, self.port))
            for query in queries:
                sock.send(query.wire)
            waiting = {query.id: query for query in queries}
            while waiting:
                if not wait(sock, select.POLLIN, deadline):
                    return
                while waiting:
                    try:
                        wire = sock.recv(65535)
                    except BlockingIOError:
                        break
                    if sock.interrupted:  # shut down: reads are empty from now on
                        raise Interrupted()
                    found = waiting.get(int.from_bytes(wire[:2], "big")) if wire else None
                    response = parse(found, wire) if found is not None else None
                    if found is None or response is None:
                        continue
                    del waiting[found.id]
                    if response.flags & dns.flags.TC:
                        self._tcp(found, deadline)
                    else:
                        deliver(found, response)
        finally:
            self._sockets.release(sock)

    def _tcp(self, query: Query, deadline: float) -> None:
        conn = StreamConnection.open(
            self._sockets, self.family, self.ip, self.port, deadline, tls=None
        )
        try:
            conn.exchange([query], deadline)
        finally:
            conn.close()


class StreamConnection:
    """One TCP connection, plain or TLS, carrying length-prefixed DNS messages (RFC 1035 4.2.2).

    Several queries may be in flight on it; answers are matched by ID, in any
    order (RFC 7766 section 6.2.1.1).
    """

    def __init__(self, sock: _Socket, sockets: OpenSockets) -> None:
        self.sock = sock
        self._sockets = sockets
        self._buffer = bytearray()
        self.used = 0  # exchanges completed on this connection

    @classmethod
    def open(
        cls,
        sockets: OpenSockets,
        family: int,
        ip: str,
        port: int,
        deadline: float,
        *,
        tls: tuple[ssl.SSLContext, str] | None,
        alpn: Sequence[str] = (),
    ) -> StreamConnection:
        sock = sockets.open(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if sock.connect_ex((ip, port)) not in (0, errno.EINPROGRESS):
                sock.connect((ip, port))  # raises the error with its errno
            if not wait(sock, select.POLLOUT, deadline):
                raise OSError(errno.ETIMEDOUT, "connect timed out")
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, f"connect to {ip} port {port}: {errno.errorcode.get(err, err)}")
            if tls is not None:
                sock = _handshake(sockets, sock, tls, deadline)
        except BaseException:
            sockets.release(sock)
            raise
        return cls(sock, sockets)

    def send(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self.sock.send(view)
            except (BlockingIOError, ssl.SSLWantWriteError):
                if not wait(self.sock, select.POLLOUT, deadline):
                    raise OSError(errno.ETIMEDOUT, "send timed out") from None
                continue
            except ssl.SSLWantReadError:
                if not wait(self.sock, select.POLLIN, deadline):
                    raise OSError(errno.ETIMEDOUT, "send timed out") from None
                continue
            view = view[sent:]

    def receive(self, deadline: float) -> bytes | None:
        """Some bytes from the peer; None when the deadline passed. EOF raises ECONNRESET."""
        sock = self.sock
        if _QUICKACK is not None:
            # ACK at once: a server that writes each answer separately (unbound over TLS)
            # holds the second behind Nagle until our delayed ACK (40 ms) otherwise.
            # Linux clears quick-ACK mode by itself, so it is set before every read.
            try:
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass
        while True:
            try:
                data = sock.recv(65535)
            except (BlockingIOError, ssl.SSLWantReadError):
                if not wait(sock, select.POLLIN, deadline):
                    return None
                continue
            except ssl.SSLWantWriteError:
                if not wait(sock, select.POLLOUT, deadline):
                    return None
                continue
            except OSError:
                if sock.interrupted:  # shut down under TLS: an SSL error, not an empty read
                    raise Interrupted() from None
                raise
            if sock.interrupted:
                raise Interrupted()
            if not data:
                raise OSError(errno.ECONNRESET, "connection closed by the server")
            return data

    def exchange(self, queries: Sequence[Query], deadline: float) -> None:
        self.send(b"".join(struct.pack("!H", len(q.wire)) + q.wire for q in queries), deadline)
        waiting = {query.id: query for query in queries}
        buffer = self._buffer
        while waiting:
            while len(buffer) >= 2 and len(buffer) >= 2 + (size := int.from_bytes(buffer[:2])):
                wire = bytes(buffer[2 : 2 + size])
                del buffer[: 2 + size]
                query = waiting.get(int.from_bytes(wire[:2], "big"))
                response = parse(query, wire) if query is not None else None
                if query is not None and response is not None:
                    del waiting[query.id]
                    deliver(query, response)
            if not waiting:
                break
            data = self.receive(deadline)
            if data is None:
                return
            buffer += data
        self.used += 1

    def idle_ok(self) -> bool:
        """Can this idle connection take another exchange? (Nothing to read, still open.)"""
        return readable_now(self.sock) is False and not self._buffer

    def close(self) -> None:
        self._sockets.release(self.sock)


def _handshake(
    sockets: OpenSockets, sock: _Socket, tls: tuple[ssl.SSLContext, str], deadline: float
) -> _Socket:
    context, server_name = tls
    sockets.release(sock, close=False)
    # tls_context() made the context build _TlsSocket, which has the interrupted flag.
    tls_sock: Any = context.wrap_socket(
        sock, server_hostname=server_name, do_handshake_on_connect=False
    )
    sockets.adopt(tls_sock)
    try:
        while True:
            try:
                tls_sock.do_handshake()
                return tls_sock  # type: ignore[no-any-return]
            except ssl.SSLWantReadError:
                ready = wait(tls_sock, select.POLLIN, deadline)
            except ssl.SSLWantWriteError:
                ready = wait(tls_sock, select.POLLOUT, deadline)
            except OSError:
                if tls_sock.interrupted:
                    raise Interrupted() from None
                raise
            if not ready:
                raise OSError(errno.ETIMEDOUT, "TLS handshake timed out")
    except BaseException:
        sockets.release(tls_sock)
        raise


class _TlsSocket(ssl.SSLSocket):
    interrupted = False


@dataclass
class _Pool:
    idle: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class StreamServer:
    """DNS over TLS (RFC 7858): a persistent connection per concurrent lookup, reused.

    An idle connection is checked (nothing to read) before it is reused; if the
    server closed it meanwhile and the exchange fails before any answer, the
    exchange is retried once on a new connection.
    """

    encrypted = True

    def __init__(
        self,
        host: str,
        port: int,
        server_name: str,
        context: ssl.SSLContext,
        sockets: OpenSockets,
        resolve_host: ResolveHost,
    ) -> None:
        self.host, self.port = host, port
        self._server_name = server_name
        self._context = context
        self._sockets = sockets
        self._resolve_host = resolve_host
        self._pool = _Pool()
        self.connections_opened = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.host!r}, {self.port})"

    def _connect(self, deadline: float) -> Any:
        last: OSError | None = None
        for ip in self._addresses():
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            try:
                conn = self._open(family, ip, deadline)
            except OSError as exc:
                if not is_failure(exc) or isinstance(exc, Interrupted):
                    raise
                last = exc
                continue
            self.connections_opened += 1
            return conn
        raise last or OSError(errno.EHOSTUNREACH, f"no address for {self.host}")

    def _open(self, family: int, ip: str, deadline: float) -> Any:
        tls = (self._context, self._server_name)
        return StreamConnection.open(self._sockets, family, ip, self.port, deadline, tls=tls)

    def _addresses(self) -> list[str]:
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in self.host else socket.AF_INET, self.host)
            return [self.host]
        except OSError:
            return self._resolve_host(self.host, self.port)

    def _checkout(self) -> Any | None:
        with self._pool.lock:
            while self._pool.idle:
                conn = self._pool.idle.pop()
                if conn.idle_ok():
                    self._sockets.adopt(conn.sock)
                    return conn
                conn.sock.close()
        return None

    def _checkin(self, conn: Any) -> None:
        self._sockets.release(conn.sock, close=False)
        with self._pool.lock:
            if not self._sockets.closed and len(self._pool.idle) < MAX_IDLE:
                self._pool.idle.append(conn)
                return
        conn.sock.close()

    def exchange(self, queries: Sequence[Query], deadline: float) -> None:
        conn = self._checkout()
        reused = conn is not None
        if conn is None:
            conn = self._connect(deadline)
        try:
            try:
                conn.exchange(queries, deadline)
            except OSError as exc:
                # A kept connection the server closed while it was idle: once more, anew.
                if not (reused and is_failure(exc) and not isinstance(exc, Interrupted)):
                    raise
                if any(q.response is not None for q in queries):
                    raise
                conn.close()
                conn = self._connect(deadline)
                conn.exchange(queries, deadline)
        except BaseException:
            conn.close()
            raise
        if all(q.response is not None for q in queries):
            self._checkin(conn)
        else:  # timed out: answers may still arrive on it; start clean next time
            conn.close()

    def close(self) -> None:
        with self._pool.lock:
            idle, self._pool.idle = self._pool.idle, []
        for conn in idle:
            conn.sock.close()

    def after_fork_in_child(self) -> None:
        # The parent's TLS sessions are not ours: drop our copies of the descriptors
        # without a TLS close_notify that would end the parent's session.
        # (Closing an SSLSocket frees its state and the descriptor; only unwrap() would
        # send close_notify.)
        idle, self._pool = self._pool.idle, _Pool()
        for conn in idle:
            conn.sock.close()


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verification on, hostname checked, TLS 1.2 or later (RFC 8310 section 8.4).

    ``ca_bundle`` replaces the system trust store (curl's --cacert), it does not
    add to it.
    """
    context = ssl.create_default_context(cafile=ca_bundle)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.sslsocket_class = _TlsSocket
    return context
