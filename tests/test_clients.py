"""Unmodified client libraries resolve through the cache: one DNS lookup per family for 20 calls.

Each test serves ``svc.test`` from a real :class:`DNSServer` on loopback (A 127.0.0.1 and
no AAAA), points the resolver at it with ``backend="dnspython"``, and makes 20 requests by
name to a real loopback server. The DNS server's own query log is the witness: glibc could
not reach it (it is on a random port), so a query there can only come from dnscache, and
at most one query per type for 20 connections means the other 19 were answered from the
cache (``stats().hits`` says so from the other side).

Why A only: the servers listen on 127.0.0.1, and a name with no AAAA still makes an
``AF_UNSPEC`` lookup ask for AAAA (answered NODATA), so both counters are exercised
without a dual-stack server whose ``::1`` would win the race and hide nothing more.

Each server counts the connections it accepted, so a client that quietly reused one
keep-alive connection (and so resolved once) cannot pass: the HTTP server speaks
HTTP/1.0, which closes every connection, and the clients also send ``Connection: close``
where they keep a pool.

Which function each client reaches (what these tests pin down):

* ``http.client``, ``urllib.request``, ``smtplib``, ``ftplib`` and ``httpx.Client``
  (httpcore's sync backend) call ``socket.create_connection``;
* ``urllib3`` and ``requests`` call ``urllib3.util.connection.create_connection`` (urllib3's
  own copy of the connect loop, patched separately);
* ``httpx.AsyncClient`` (httpcore over anyio) and ``aiohttp`` (its ThreadedResolver) call
  ``loop.getaddrinfo``, i.e. ``BaseEventLoop.getaddrinfo``, and connect themselves.
"""

from __future__ import annotations

import asyncio
import ftplib
import http.client
import os
import smtplib
import socket
import socketserver
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import httpx
import pytest
import requests
import urllib3

import dnscache
from dnscache._tools.dnsserver import DNSServer

NAME = "svc.test"
REQUESTS = 20
TIMEOUT = 5.0
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


# --- servers ----------------------------------------------------------------------------


class _OkHandler(BaseHTTPRequestHandler):
    """200 "ok" to every GET, over HTTP/1.0 (so the server closes every connection)."""

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Counting:
    """Mixin for socketserver servers: count accepted connections."""

    connections = 0

    def get_request(self) -> tuple[socket.socket, Any]:
        request: tuple[socket.socket, Any] = super().get_request()  # type: ignore[misc]
        self.connections += 1
        return request


class _HTTPServer(_Counting, ThreadingHTTPServer):
    daemon_threads = True


class _LineServer(_Counting, socketserver.ThreadingTCPServer):
    """A line-based protocol server: a greeting, then a reply per command until QUIT."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, greeting: str, replies: dict[str, str], quit_reply: str) -> None:
        self.greeting = greeting
        self.replies = replies
        self.quit_reply = quit_reply
        super().__init__(("127.0.0.1", 0), _LineHandler)


class _LineHandler(socketserver.StreamRequestHandler):
    server: _LineServer

    def handle(self) -> None:
        self.wfile.write(f"{self.server.greeting}\r\n".encode())
        for raw in self.rfile:
            command = raw.decode("ascii", "replace").split(" ", 1)[0].strip().upper()
            if command == "QUIT":
                self.wfile.write(f"{self.server.quit_reply}\r\n".encode())
                return
            reply = self.server.replies.get(command, "500 unknown command")
            self.wfile.write(f"{reply}\r\n".encode())


def _serve(server: socketserver.BaseServer, name: str) -> Iterator[Any]:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def http_server() -> Iterator[_HTTPServer]:
    yield from _serve(_HTTPServer(("127.0.0.1", 0), _OkHandler), "clients-http")


@pytest.fixture
def smtp_server() -> Iterator[_LineServer]:
    server = _LineServer("220 ok", {"EHLO": "250 ok", "HELO": "250 ok"}, "221 bye")
    yield from _serve(server, "clients-smtp")


@pytest.fixture
def ftp_server() -> Iterator[_LineServer]:
    yield from _serve(_LineServer("220 ready", {}, "221 bye"), "clients-ftp")


@pytest.fixture
def dns(dns_server: DNSServer) -> DNSServer:
    """conftest's loopback DNS server, serving NAME."""
    dns_server.set(NAME, a=["127.0.0.1"], ttl=300)
    return dns_server


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib, requests and httpx honour proxy variables; a proxy would hide the lookups."""
    for var in _PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)


def _check(dns: DNSServer, server: _Counting, resolver: dnscache.Resolver, successes: int) -> None:
    assert successes == REQUESTS
    assert server.connections == REQUESTS  # every request really connected
    assert dns.queries(NAME, "A") == 1  # exactly one: it did reach our server
    assert dns.queries(NAME, "AAAA") <= 1
    assert resolver.stats().hits >= REQUESTS - 1


def _patched(dns: DNSServer) -> dnscache.patched:
    return dnscache.patched(backend="dnspython", nameservers=(dns.nameserver,))


def _run_sync(dns: DNSServer, server: _Counting, one_request: Callable[[], bool]) -> None:
    with _patched(dns) as resolver:
        successes = sum(one_request() for _ in range(REQUESTS))
        _check(dns, server, resolver, successes)


# --- clients that call socket.create_connection ----------------------------------------------


def test_http_client(dns: DNSServer, http_server: _HTTPServer) -> None:
    port = http_server.server_address[1]

    def one() -> bool:
        conn = http.client.HTTPConnection(NAME, port, timeout=TIMEOUT)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            return response.status == 200 and response.read() == b"ok"
        finally:
            conn.close()

    _run_sync(dns, http_server, one)


def test_urllib_request(dns: DNSServer, http_server: _HTTPServer) -> None:
    url = f"http://{NAME}:{http_server.server_address[1]}/"

    def one() -> bool:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return bool(response.status == 200 and response.read() == b"ok")

    _run_sync(dns, http_server, one)


def test_httpx_client(dns: DNSServer, http_server: _HTTPServer) -> None:
    url = f"http://{NAME}:{http_server.server_address[1]}/"
    with httpx.Client(headers={"Connection": "close"}, timeout=TIMEOUT) as client:

        def one() -> bool:
            response = client.get(url)
            return response.status_code == 200 and response.text == "ok"

        _run_sync(dns, http_server, one)


def test_smtplib(dns: DNSServer, smtp_server: _LineServer) -> None:
    port = smtp_server.server_address[1]

    def one() -> bool:
        # local_hostname: otherwise SMTP() asks socket.getfqdn(), a reverse lookup that has
        # nothing to do with this test and may wait on the machine's DNS.
        with smtplib.SMTP(NAME, port, local_hostname="client.test", timeout=TIMEOUT) as smtp:
            code, _ = smtp.ehlo()
            return code == 250

    _run_sync(dns, smtp_server, one)


def test_ftplib(dns: DNSServer, ftp_server: _LineServer) -> None:
    port = ftp_server.server_address[1]

    def one() -> bool:
        ftp = ftplib.FTP(timeout=TIMEOUT)
        try:
            welcome = ftp.connect(NAME, port)
            return welcome.startswith("220") and ftp.quit().startswith("221")
        finally:
            ftp.close()

    _run_sync(dns, ftp_server, one)


# --- clients that call urllib3.util.connection.create_connection --------------------------


def test_urllib3_pool_manager(dns: DNSServer, http_server: _HTTPServer) -> None:
    url = f"http://{NAME}:{http_server.server_address[1]}/"
    pool = urllib3.PoolManager(retries=False, headers={"Connection": "close"}, timeout=TIMEOUT)
    try:

        def one() -> bool:
            response = pool.request("GET", url)
            return response.status == 200 and response.data == b"ok"

        _run_sync(dns, http_server, one)
    finally:
        pool.clear()


def test_requests_get(dns: DNSServer, http_server: _HTTPServer) -> None:
    url = f"http://{NAME}:{http_server.server_address[1]}/"

    def one() -> bool:
        # requests.get makes (and closes) a new Session, so a new pool, every call.
        response = requests.get(url, timeout=TIMEOUT)
        return response.status_code == 200 and response.text == "ok"

    _run_sync(dns, http_server, one)


# --- clients that call loop.getaddrinfo ---------------------------------------------------


def test_httpx_async_client(dns: DNSServer, http_server: _HTTPServer) -> None:
    url = f"http://{NAME}:{http_server.server_address[1]}/"

    async def main() -> int:
        async with httpx.AsyncClient(headers={"Connection": "close"}, timeout=TIMEOUT) as client:
            successes = 0
            for _ in range(REQUESTS):
                response = await client.get(url)
                successes += response.status_code == 200 and response.text == "ok"
            return successes

    with _patched(dns) as resolver:
        successes = asyncio.run(main())
        _check(dns, http_server, resolver, successes)


def test_aiohttp(dns: DNSServer, http_server: _HTTPServer) -> None:
    url = f"http://{NAME}:{http_server.server_address[1]}/"

    async def main() -> int:
        # aiohttp's own DNS cache off, and a new connection per request: every request
        # resolves through loop.getaddrinfo.
        connector = aiohttp.TCPConnector(use_dns_cache=False, force_close=True)
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            successes = 0
            for _ in range(REQUESTS):
                async with session.get(url) as response:
                    successes += response.status == 200 and await response.text() == "ok"
            return successes

    with _patched(dns) as resolver:
        successes = asyncio.run(main())
        _check(dns, http_server, resolver, successes)


# --- urllib3 imported after install ---------------------------------------------------------


def test_urllib3_imported_after_install_is_patched_and_restored() -> None:
    script = textwrap.dedent(
        """
        import socket, sys
        import dnscache
        assert "urllib3" not in sys.modules, "importing dnscache imported urllib3"
        resolver = dnscache.install(hosts={"svc.test": ["127.0.0.1"]})
        try:
            import urllib3.util.connection as c
            patched = c.create_connection
            print("patched", getattr(patched, "__dnscache__", False))
            original = patched.__wrapped__
            print("original-is-urllib3s", original.__module__ == "urllib3.util.connection")

            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            port = listener.getsockname()[1]
            with c.create_connection(("svc.test", port), timeout=5) as sock:
                print("connected-to", sock.getpeername()[0])
            accepted, _ = listener.accept()
            accepted.close()
            listener.close()
            stats = resolver.stats()  # a Config.hosts answer counts as a hit, not a miss
            print("answered-by-dnscache", stats.hits + stats.misses >= 1)
        finally:
            dnscache.uninstall()
        print("restored", c.create_connection is original)
        print("unmarked", not getattr(c.create_connection, "__dnscache__", False))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n") == [
        "patched True",
        "original-is-urllib3s True",
        "connected-to 127.0.0.1",
        "answered-by-dnscache True",
        "restored True",
        "unmarked True",
        "",
    ]
