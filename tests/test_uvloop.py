"""uvloop under dnscache: ``loop.getaddrinfo`` and ``loop.create_connection`` through the cache.

uvloop resolves in C (libuv's ``uv_getaddrinfo``), so its lookups never reach
``socket.getaddrinfo``; ``_activation/runtimes/uvloop_loop.py`` replaces the two methods
on ``uvloop.Loop``. These tests run real uvloop loops against a real loopback
:class:`DNSServer` reached through the dnspython backend. That server is on a random
port libc knows nothing about, so a name it serves can only be answered by the cache:
an answer proves no libuv request was made for it (libuv would have said EAI_NONAME),
and the server's query log counts the upstream lookups. A default executor that counts
its jobs shows which calls left the loop's thread.

Fidelity is checked against uvloop's own methods (the Cython base class's, called on the
same loop) for names libc resolves from /etc/hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import aiohttp
import httpx
import pytest
import uvloop
from uvloop.loop import Loop as CythonLoop

import dnscache
from dnscache._tools.dnsserver import DNSServer
from runtimes_support import http_server, order_script_env, run_script

NAME = "svc.test"
GONE = "gone.test"
PORT = 8080
HITS = 100
REQUESTS = 50
T = TypeVar("T")

STOCK_GETADDRINFO = CythonLoop.getaddrinfo
STOCK_CREATE_CONNECTION = CythonLoop.create_connection


class CountingExecutor(ThreadPoolExecutor):
    """A default executor that counts submissions (all made from the loop's thread)."""

    def __init__(self) -> None:
        super().__init__(max_workers=4, thread_name_prefix="counting-executor")
        self.submitted = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


def run(main: Callable[[asyncio.AbstractEventLoop, CountingExecutor], Awaitable[T]]) -> T:
    """``uvloop.run(main(loop, executor))`` with a counting default executor."""

    async def wrapper() -> T:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uvloop.Loop)
        executor = CountingExecutor()
        loop.set_default_executor(executor)
        try:
            return await main(loop, executor)
        finally:
            executor.shutdown(wait=True)

    return uvloop.run(wrapper())


@pytest.fixture
def dns(dns_server: DNSServer) -> DNSServer:
    dns_server.set(NAME, a=["127.0.0.1"], aaaa=["::1"], ttl=300)
    dns_server.nxdomain(GONE)
    return dns_server


def _patched(dns: DNSServer) -> dnscache.patched:
    return dnscache.patched(backend="dnspython", nameservers=(dns.nameserver,))


async def _outcome(method: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """The result of ``await method(*args, **kwargs)``, or (exception type, args) on failure.

    uvloop's Cython methods check their arguments when called, a coroutine function
    when awaited: both happen inside the one statement ``await loop.method(...)``.
    """
    try:
        return await method(*args, **kwargs)
    except Exception as exc:  # compared, never swallowed: the caller asserts on it
        return (type(exc), exc.args)


# --- getaddrinfo -------------------------------------------------------------------------


def test_hits_are_answered_in_the_loop(dns: DNSServer) -> None:
    async def main(loop: asyncio.AbstractEventLoop, executor: CountingExecutor) -> None:
        first = await loop.getaddrinfo(NAME, PORT, type=socket.SOCK_STREAM)
        assert executor.submitted == 1  # the miss: the cache's getaddrinfo in the executor
        assert {info[4][0] for info in first} == {"127.0.0.1", "::1"}
        for _ in range(HITS):
            again = await loop.getaddrinfo(NAME, PORT, type=socket.SOCK_STREAM)
            assert again == first
            again.clear()  # each caller gets its own list
        assert executor.submitted == 1
        # uvloop's own method asks libuv, which has never heard of the name.
        with pytest.raises(socket.gaierror):
            await STOCK_GETADDRINFO(loop, NAME, PORT)

    with _patched(dns) as resolver:
        run(main)
        assert resolver.stats().hits >= HITS
    assert (dns.queries(NAME, "A"), dns.queries(NAME, "AAAA")) == (1, 1)


def test_concurrent_misses_make_one_upstream_query(dns: DNSServer) -> None:
    dns.set(NAME, a=["127.0.0.1"], aaaa=["::1"], ttl=300, delay=0.2)

    async def main(loop: asyncio.AbstractEventLoop, executor: CountingExecutor) -> None:
        calls = [loop.getaddrinfo(NAME, PORT, type=socket.SOCK_STREAM) for _ in range(REQUESTS)]
        results = await asyncio.gather(*calls)
        assert all(result == results[0] for result in results)

    with _patched(dns):
        run(main)
    assert (dns.queries(NAME, "A"), dns.queries(NAME, "AAAA")) == (1, 1)


def test_negative_answers_are_cached_too(dns: DNSServer) -> None:
    async def main(loop: asyncio.AbstractEventLoop, executor: CountingExecutor) -> None:
        with pytest.raises(socket.gaierror) as first:
            await loop.getaddrinfo(GONE, PORT)
        assert first.value.errno == socket.EAI_NONAME
        for _ in range(HITS):
            with pytest.raises(socket.gaierror) as again:
                await loop.getaddrinfo(GONE, PORT)
            assert again.value.args == first.value.args
        assert executor.submitted == 1

    with _patched(dns) as resolver:
        run(main)
        assert resolver.stats().negative_hits >= HITS
    assert dns.queries(GONE, "A") == 1


CALLS: list[tuple[Any, Any, dict[str, Any]]] = [
    ("localhost", PORT, {}),
    ("localhost", PORT, {"type": socket.SOCK_STREAM}),
    ("localhost", PORT, {"family": socket.AF_INET, "type": socket.SOCK_DGRAM}),
    ("localhost", "http", {"type": socket.SOCK_STREAM}),
    ("localhost", b"443", {}),
    ("localhost", None, {"flags": socket.AI_CANONNAME}),
    (b"localhost", 0, {"proto": socket.IPPROTO_TCP}),
    ("LocalHost", PORT, {"family": socket.AF_INET6}),
    ("localhost", True, {}),  # uvloop: the service "True"; the stdlib: port 1
    ("localhost", 1.5, {}),  # TypeError from both, in uvloop's words
    (bytearray(b"localhost"), PORT, {}),
    ("127.0.0.1", PORT, {"type": socket.SOCK_STREAM}),  # uvloop's literal fast path
    ("::1", "https", {"flags": socket.AI_CANONNAME}),
    ("a..b", PORT, {}),  # the idna codec refuses an empty label
    ("localhost", "no-such-service", {}),
    ("localhost", PORT, {"family": 12345}),
]


def test_answers_and_errors_are_uvloops() -> None:
    """Every call gives what uvloop's own method gives, on a miss and on the hit after it."""

    async def main(loop: asyncio.AbstractEventLoop, executor: CountingExecutor) -> None:
        for host, port, kwargs in CALLS:
            # The same call made through socket.getaddrinfo first, so that the cache holds
            # whatever the stdlib makes of it (port True is port 1 there, not to uvloop).
            with contextlib.suppress(Exception):
                socket.getaddrinfo(host, port, **kwargs)
            expected = await _outcome(STOCK_GETADDRINFO, loop, host, port, **kwargs)
            for attempt in ("miss", "hit"):
                got = await _outcome(loop.getaddrinfo, host, port, **kwargs)
                assert got == expected, (host, port, kwargs, attempt)

    with dnscache.patched():
        run(main)


def test_a_socket_getaddrinfo_that_is_not_ours_is_never_called() -> None:
    """uvloop never called socket.getaddrinfo; with a mock there, it still does not (issue 10)."""

    async def main(loop: asyncio.AbstractEventLoop, executor: CountingExecutor) -> None:
        cached = await loop.getaddrinfo("localhost", PORT)  # in the cache from here on
        with mock.patch("socket.getaddrinfo", side_effect=AssertionError("called")) as fake:
            assert await loop.getaddrinfo("localhost", PORT) == cached
            assert executor.submitted == 1  # libuv answered: not our miss path either
            transport, _ = await loop.create_connection(asyncio.Protocol, "localhost", port)
            transport.close()
        assert fake.call_count == 0

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with dnscache.patched():
            run(main)


def test_the_methods_are_uvloops_again_after_uninstall() -> None:
    assert "getaddrinfo" not in vars(uvloop.Loop)
    with dnscache.patched():
        for name in ("getaddrinfo", "create_connection"):
            replacement = vars(uvloop.Loop)[name]
            assert replacement.__dnscache__ is True
            assert replacement.__wrapped__ is getattr(CythonLoop, name)
    assert "getaddrinfo" not in vars(uvloop.Loop)
    assert "create_connection" not in vars(uvloop.Loop)


# --- start-up orders ---------------------------------------------------------------------

ORDER_SCRIPT = """
import asyncio, json, socket, sys
order = sys.argv[1]
if order == "after":
    import uvloop
import dnscache
if order != "env":
    dnscache.install(backend="dnspython", nameservers=(sys.argv[2],))
import uvloop

async def main():
    loop = asyncio.get_running_loop()
    return [await loop.getaddrinfo("svc.test", 80, type=socket.SOCK_STREAM) for _ in range(20)]

results = uvloop.run(main())
resolver = dnscache.active_resolver()
print(json.dumps({
    "same": all(r == results[0] for r in results),
    "addresses": sorted(info[4][0] for info in results[0]),
    "ours": uvloop.Loop.getaddrinfo.__dnscache__,
    "hits": resolver.stats().hits,
}))
"""


@pytest.mark.parametrize("order", ["before", "after", "env"])
def test_install_before_or_after_uvloop_is_imported_or_from_the_environment(
    dns: DNSServer, order: str
) -> None:
    env = order_script_env(order, dns.nameserver)
    result = run_script(ORDER_SCRIPT, env, args=(order, dns.nameserver))
    assert result == {"same": True, "addresses": ["127.0.0.1", "::1"], "ours": True, "hits": 19}
    assert (dns.queries(NAME, "A"), dns.queries(NAME, "AAAA")) == (1, 1)


# --- create_connection -------------------------------------------------------------------


class Recorder(asyncio.Protocol):
    made = 0

    def __init__(self) -> None:
        Recorder.made += 1


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on 127.0.0.1 only: NAME's ::1 refuses, its 127.0.0.1 accepts."""
    with socket.create_server(("127.0.0.1", 0), backlog=REQUESTS) as sock:
        yield sock


def test_create_connection_by_name_resolves_through_the_cache(
    dns: DNSServer, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    Recorder.made = 0

    async def main(loop: asyncio.AbstractEventLoop, executor: CountingExecutor) -> None:
        for _ in range(10):
            transport, protocol = await loop.create_connection(Recorder, NAME, port)
            assert isinstance(protocol, Recorder)
            # ::1 came first and was refused: uvloop's way is the next address, in turn.
            assert transport.get_extra_info("peername")[:2] == ("127.0.0.1", port)
            transport.close()
        assert executor.submitted == 1

    with _patched(dns) as resolver:
        run(main)
        assert resolver.address_health(NAME) == {}  # uvloop's connect keeps no score
    assert Recorder.made == 10  # one protocol per call, as uvloop makes it
    assert (dns.queries(NAME, "A"), dns.queries(NAME, "AAAA")) == (1, 1)


def test_create_connection_failures_are_uvloops(dns: DNSServer) -> None:
    """Every address refused: the same exception as uvloop's for the same addresses."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # bound, never listening: refused

    async def main(loop: asyncio.AbstractEventLoop, executor: CountingExecutor) -> None:
        for host, kwargs in [("localhost", {}), ("localhost", {"family": socket.AF_INET})]:
            expected = await _outcome(
                STOCK_CREATE_CONNECTION, loop, asyncio.Protocol, host, closed_port, **kwargs
            )
            got = await _outcome(
                loop.create_connection, asyncio.Protocol, host, closed_port, **kwargs
            )
            assert got[0] is expected[0] is ConnectionRefusedError
            assert got == expected
        # uvloop has no Happy Eyeballs: the same TypeError as uvloop's.
        args = (asyncio.Protocol, "localhost", 1)
        expected = await _outcome(STOCK_CREATE_CONNECTION, loop, *args, happy_eyeballs_delay=0.1)
        assert expected[0] is TypeError
        got = await _outcome(loop.create_connection, *args, happy_eyeballs_delay=0.1)
        assert got == expected
        got = await _outcome(loop.create_connection, asyncio.Protocol, GONE, 1)
        assert got[0] is socket.gaierror

    with _patched(dns):
        run(main)


def test_create_connection_with_local_addr(dns: DNSServer, listener: socket.socket) -> None:
    port = listener.getsockname()[1]

    async def main(loop: asyncio.AbstractEventLoop, executor: CountingExecutor) -> None:
        transport, _ = await loop.create_connection(
            asyncio.Protocol, NAME, port, family=socket.AF_INET, local_addr=("127.0.0.1", 0)
        )
        assert transport.get_extra_info("sockname")[0] == "127.0.0.1"
        transport.close()

    with _patched(dns):
        run(main)
    assert dns.queries(NAME, "A") == 1


def test_create_connection_with_tls_sends_the_name(
    dns: DNSServer, listener: socket.socket, tmp_path: Path
) -> None:
    """TLS over the cached connection: server_hostname defaults to the name (SNI, verification)."""
    from unbound import make_certificates

    certs = make_certificates(tmp_path, NAME)  # also names 127.0.0.1: SNI tells them apart
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certs["cert"], certs["key"])
    seen: list[str | None] = []
    server_context.sni_callback = lambda sock, name, context: seen.append(name)  # type: ignore[assignment,misc,return-value]
    client_context = ssl.create_default_context(cafile=str(certs["ca"]))
    listener.close()  # replaced by an asyncio TLS server on its own port

    async def main(loop: asyncio.AbstractEventLoop, executor: CountingExecutor) -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection(NAME, port, ssl=client_context)
            writer.write(b"hello\n")
            assert await reader.readline() == b"hello\n"
            writer.close()
            await writer.wait_closed()
            # An explicit server_hostname wins: verification fails for a name not in the cert.
            with pytest.raises(ssl.SSLCertVerificationError):
                await asyncio.open_connection(
                    NAME, port, ssl=client_context, server_hostname="other.test"
                )
        finally:
            server.close()
            await server.wait_closed()

    with _patched(dns):
        run(main)
    assert seen[:2] == [NAME, "other.test"]
    assert dns.queries(NAME, "A") == 1


# --- clients under uvloop.run() ----------------------------------------------------------


@pytest.mark.parametrize("client", ["aiohttp-no-dns-cache", "aiohttp", "httpx"])
def test_clients_under_uvloop_make_one_query_per_family(dns: DNSServer, client: str) -> None:
    """50 requests by name, each on a new connection: one upstream query per family."""

    async def fetch_all(url: str) -> list[str]:
        if client == "httpx":
            async with httpx.AsyncClient(trust_env=False) as session:
                responses = [
                    await session.get(url, headers={"Connection": "close"}) for _ in range(REQUESTS)
                ]
                return [response.text for response in responses]
        connector = aiohttp.TCPConnector(
            use_dns_cache=client == "aiohttp", force_close=True, resolver=aiohttp.ThreadedResolver()
        )
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
            bodies = []
            for _ in range(REQUESTS):
                async with session.get(url) as response:
                    bodies.append(await response.text())
            return bodies

    async def main(loop: asyncio.AbstractEventLoop, executor: CountingExecutor) -> list[str]:
        return await fetch_all(f"http://{NAME}:{server.port}/")

    dns.set(NAME, a=["127.0.0.1"], ttl=300)  # the server listens on 127.0.0.1 only
    with http_server() as server, _patched(dns) as resolver:
        assert run(main) == ["ok"] * REQUESTS
        assert server.connections == REQUESTS
        stats = resolver.stats()
    assert dns.queries(NAME, "A") == 1
    assert dns.queries(NAME, "AAAA") <= 1
    if client != "aiohttp":  # aiohttp's own cache answers most of its calls itself
        assert stats.hits >= REQUESTS - 1
