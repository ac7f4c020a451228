"""The test server's sockets and threads: :class:`DNSServer` (see the package docstring).

UDP and TCP on one port, each served by a thread blocked in ``select`` with a
wake-up socket so that ``stop()`` returns within about a second; delayed answers
and TCP connections run on short-lived, counted worker threads.

Why one class of about 380 lines: :class:`DNSServer` is the public test tool, and
most of its length is the zone-control and observation API tests call (what to
answer, what was asked); the answering itself is in ``zone`` and ``handler``.
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

from .handler import Handler, Job, QueryLog, to_wire
from .zone import Zone
from .zone import key as zone_key

_THREAD_PREFIX = "dnscache-testdns"
_MAX_WORKERS = 64
_POLL_INTERVAL = 0.1  # seconds: how often blocked loops re-check the stop event
_READY_TIMEOUT = 5.0  # seconds start() waits for its loops to be serving (a loaded machine)
_JOIN_TIMEOUT = 1.0
_TCP_IDLE_TIMEOUT = 30.0
_TCP_SEND_TIMEOUT = 5.0


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
        self._host = str(address)
        self._family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        self._port = port
        self.delay = 0.0
        self.paused = False
        self._zone = Zone(default_ttl)  # raises ValueError for a bad default_ttl
        self._log = QueryLog()
        self._handler = Handler(self._zone, self._log)
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
        self._zone.set(name, a, aaaa, ttl=ttl, cname=cname, delay=delay)

    def nxdomain(self, name: str) -> None:
        """Answer queries for *name* with NXDOMAIN (rcode 3)."""
        self._zone.set_kind(name, "nxdomain")

    def servfail(self, name: str) -> None:
        """Answer queries for *name* with SERVFAIL (rcode 2)."""
        self._zone.set_kind(name, "servfail")

    def drop(self, name: str) -> None:
        """Never answer queries for *name* (the client times out)."""
        self._zone.set_kind(name, "drop")

    def remove(self, name: str) -> None:
        """Forget *name*; it then gets NXDOMAIN like every unknown name."""
        self._zone.remove(name)

    # -- observation ----------------------------------------------------------------------

    def queries(self, name: str | None = None, rtype: str | None = None) -> int:
        """How many received queries match *name* and *rtype* (``None`` matches any)."""
        return self._log.count(
            None if name is None else zone_key(name), None if rtype is None else rtype.upper()
        )

    @property
    def log(self) -> list[tuple[str, str]]:
        """A copy of ``(name, rtype)`` of every query received, oldest first."""
        return self._log.copy()

    def reset_counts(self) -> None:
        """Forget every query received so far."""
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
        """Bind UDP and TCP on the same port and start serving; a no-op when running.

        Returns once both loops are serving (their selectors exist): a caller that
        counts its descriptors right after start() sees the server's already.
        """
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
            ready = (threading.Event(), threading.Event())
            self._threads = [
                threading.Thread(
                    target=self._guard,
                    args=(self._udp_loop, udp, wake_r, stop, ready[0]),
                    name=f"{_THREAD_PREFIX}-udp",
                    daemon=True,
                ),
                threading.Thread(
                    target=self._guard,
                    args=(self._tcp_loop, tcp, wake_r, stop, ready[1]),
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
            for event in ready:
                event.wait(_READY_TIMEOUT)
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

    @staticmethod
    def _selector(ready: threading.Event) -> selectors.BaseSelector:
        """A loop's selector; ``ready`` is set once it exists (or could not be made)."""
        try:
            return selectors.DefaultSelector()
        finally:
            ready.set()

    def _udp_loop(
        self,
        sock: socket.socket,
        wake: socket.socket,
        stop: threading.Event,
        ready: threading.Event,
    ) -> None:
        with self._selector(ready) as sel:
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
                job = self._handler.receive(wire, paused=self.paused, delay=self.delay)
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
        job: Job,
        stop: threading.Event,
    ) -> None:
        if job.delay > 0 and stop.wait(job.delay):
            return
        if stop.is_set() or self.paused or job.response is None:
            return
        wire = to_wire(job.response, job.udp_limit)
        if wire is not None:
            with contextlib.suppress(OSError):
                sock.sendto(wire, addr)

    def _tcp_loop(
        self,
        sock: socket.socket,
        wake: socket.socket,
        stop: threading.Event,
        ready: threading.Event,
    ) -> None:
        with self._selector(ready) as sel:
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
            job = self._handler.receive(wire, paused=self.paused, delay=self.delay)
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
        out = to_wire(job.response, 65535)
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
