"""trio under dnscache: a cached name is answered without trio's worker thread.

``_activation/runtimes/trio_resolver.py`` puts a slot in front of trio's per-run
hostname-resolver ``RunVar``. These tests run real trio against a real loopback
:class:`DNSServer` (dnspython backend; the server's query log counts upstream lookups).
"No thread" is shown without watching trio's internals: the default thread limiter is
exhausted (its only token held by the test), so any ``trio.to_thread.run_sync`` would
wait for ever, and every wait is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from unittest import mock

import httpx
import pytest
import trio
import trio._socket

import dnscache
from dnscache._tools.dnsserver import DNSServer
from runtimes_support import http_server, order_script_env, run_script

NAME = "svc.test"
SLOW = "slow.test"
GONE = "gone.test"
PORT = 8080
HITS = 100
REQUESTS = 50
BOUND = 10.0  # seconds any single wait below may take before the test fails
T = TypeVar("T")


@pytest.fixture
def dns(dns_server: DNSServer) -> DNSServer:
    dns_server.set(NAME, a=["127.0.0.1"], aaaa=["::1"], ttl=300)
    dns_server.set(SLOW, a=["127.0.0.1"], ttl=300, delay=0.5)
    dns_server.nxdomain(GONE)
    return dns_server


def _patched(dns: DNSServer) -> dnscache.patched:
    return dnscache.patched(backend="dnspython", nameservers=(dns.nameserver,))


@asynccontextmanager
async def no_threads() -> AsyncIterator[None]:
    """While inside: any trio.to_thread.run_sync waits for a token that never comes."""
    limiter = trio.to_thread.current_default_thread_limiter()
    total = limiter.total_tokens
    limiter.total_tokens = 1
    try:
        async with limiter:
            with trio.fail_after(BOUND):
                yield
    finally:
        limiter.total_tokens = total


def run(main: Callable[[], Awaitable[T]]) -> T:
    return trio.run(main)


def test_hits_are_answered_without_a_thread(dns: DNSServer) -> None:
    async def main() -> None:
        first = await trio.socket.getaddrinfo(NAME, PORT, type=socket.SOCK_STREAM)
        assert {info[4][0] for info in first} == {"127.0.0.1", "::1"}
        with pytest.raises(socket.gaierror):
            await trio.socket.getaddrinfo(GONE, PORT)
        async with no_threads():
            for _ in range(HITS):
                again = await trio.socket.getaddrinfo(NAME, PORT, type=socket.SOCK_STREAM)
                assert again == first
                again.clear()  # each caller gets its own list
            with pytest.raises(socket.gaierror):  # a cached failure: no thread either
                await trio.socket.getaddrinfo(GONE, PORT)

    with _patched(dns) as resolver:
        run(main)
        assert resolver.stats().hits >= HITS
    assert (dns.queries(NAME, "A"), dns.queries(NAME, "AAAA")) == (1, 1)
    assert dns.queries(GONE, "A") == 1


def test_a_hit_is_a_checkpoint(dns: DNSServer) -> None:
    """trio's rule for every async function: it may raise Cancelled, and it lets others run."""

    async def main() -> None:
        await trio.socket.getaddrinfo(NAME, PORT)
        ran: list[int] = []

        async def other() -> None:
            ran.append(1)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(other)
            for _ in range(10):  # hits only: without a yield, the other task never runs
                await trio.socket.getaddrinfo(NAME, PORT)
                if ran:
                    break
            assert ran == [1]
        with trio.CancelScope() as scope:
            scope.cancel()
            await trio.socket.getaddrinfo(NAME, PORT)
        assert scope.cancelled_caught

    with _patched(dns):
        run(main)


def test_a_slow_miss_is_cancelled_as_trio_cancels_it(dns: DNSServer) -> None:
    """The caller leaves at once; the abandoned thread finishes and the cache keeps its answer."""

    async def main() -> None:
        with trio.move_on_after(0.05) as scope:
            await trio.socket.getaddrinfo(SLOW, PORT)
        assert scope.cancelled_caught
        assert dns.queries(SLOW, "A") <= 1  # asked, and (0.5 s delay) not answered yet
        with trio.fail_after(BOUND):
            # The abandoned lookup lands (trio passes the name as IDNA-encoded bytes).
            while resolver.peek(SLOW.encode(), PORT) is None:
                await trio.sleep(0.01)
        async with no_threads():
            got = await trio.socket.getaddrinfo(SLOW, PORT)
        assert [info[4][0] for info in got] == ["127.0.0.1"] * len(got)

    with _patched(dns) as resolver:
        run(main)
    assert dns.queries(SLOW, "A") == 1


def test_a_programs_own_resolver_wins_and_is_what_trio_reports() -> None:
    class Fixed:
        async def getaddrinfo(self, *args: Any) -> Any:
            return [("fixed", args)]

        async def getnameinfo(self, *args: Any) -> Any:
            return ("fixed", "0")

    async def main() -> None:
        cached = await trio.socket.getaddrinfo("localhost", PORT)
        assert trio.socket.set_custom_hostname_resolver(Fixed()) is None  # ours is not shown
        assert (await trio.socket.getaddrinfo("localhost", PORT))[0][0] == "fixed"
        assert await trio.socket.getnameinfo(("127.0.0.1", 80), 0) == ("fixed", "0")
        assert isinstance(trio.socket.set_custom_hostname_resolver(None), Fixed)
        assert await trio.socket.getaddrinfo("localhost", PORT) == cached

    with dnscache.patched() as resolver:
        run(main)
        assert resolver.stats().hits >= 1


def test_a_socket_getaddrinfo_that_is_not_ours_gets_trios_default_path() -> None:
    """A mock of socket.getaddrinfo is called, from trio's thread, as without dnscache."""
    fake = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", PORT))]

    async def main() -> None:
        await trio.socket.getaddrinfo("localhost", PORT)  # cached
        with mock.patch("socket.getaddrinfo", return_value=fake) as mocked:
            assert await trio.socket.getaddrinfo("localhost", PORT) == fake
            assert await trio.socket.getnameinfo(("127.0.0.1", 80), 0)
        assert mocked.call_count == 1

    with dnscache.patched():
        run(main)


CALLS: list[tuple[Any, Any, dict[str, Any]]] = [
    ("localhost", PORT, {}),
    ("localhost", "http", {"type": socket.SOCK_STREAM}),
    ("localhost", b"443", {"family": socket.AF_INET}),
    (b"localhost", None, {"flags": socket.AI_CANONNAME}),
    ("LOCALHOST", 0, {"family": socket.AF_INET6, "proto": socket.IPPROTO_TCP}),
    ("127.0.0.1", PORT, {}),
    ("localhost", "no-such-service", {}),
    ("localhost", 1.5, {}),
    ("a..b", PORT, {}),
]


async def _outcome(host: Any, port: Any, kwargs: dict[str, Any]) -> Any:
    try:
        return await trio.socket.getaddrinfo(host, port, **kwargs)
    except Exception as exc:  # compared by the caller
        return (type(exc), exc.args)


def test_answers_and_errors_are_trios() -> None:
    async def each() -> list[Any]:
        return [await _outcome(host, port, kwargs) for host, port, kwargs in CALLS]

    expected = run(each)  # trio alone
    with dnscache.patched() as resolver:
        assert run(each) == expected  # misses
        assert run(each) == expected  # hits
        assert resolver.stats().hits >= 4


def test_names_are_encoded_the_way_trio_encodes_them(dns: DNSServer) -> None:
    """trio uses IDNA 2008 ("faß" stays ß), the stdlib IDNA 2003 ("fass"): never mixed up."""
    dns.set("xn--fa-hia.test", a=["127.0.0.8"], ttl=300)  # IDNA 2008 for faß.test
    dns.set("fass.test", a=["127.0.0.3"], ttl=300)  # IDNA 2003 for faß.test

    async def main() -> list[str]:
        return [
            info[4][0]
            for _ in range(3)
            for info in await trio.socket.getaddrinfo("faß.test", PORT, socket.AF_INET)
        ]

    with _patched(dns):
        assert {info[4][0] for info in socket.getaddrinfo("faß.test", PORT)} == {"127.0.0.3"}
        assert set(run(main)) == {"127.0.0.8"}


def test_the_slot_is_trios_runvar_again_after_uninstall() -> None:
    runvar = trio._socket._resolver
    with dnscache.patched():
        slot: Any = trio._socket._resolver
        assert slot.__dnscache__ is True
        assert slot.__wrapped__ is runvar
    assert trio._socket._resolver is runvar


def test_open_tcp_stream_and_httpx_under_trio_make_one_query_per_family(dns: DNSServer) -> None:
    dns.set(NAME, a=["127.0.0.1"], ttl=300)  # the servers listen on 127.0.0.1 only

    async def main(port: int) -> list[str]:
        for _ in range(REQUESTS):
            stream = await trio.open_tcp_stream(NAME, port)
            await stream.aclose()
        async with httpx.AsyncClient(trust_env=False) as client:
            url = f"http://{NAME}:{port}/"
            return [
                (await client.get(url, headers={"Connection": "close"})).text
                for _ in range(REQUESTS)
            ]

    with http_server() as server, _patched(dns) as resolver:
        assert trio.run(main, server.port) == ["ok"] * REQUESTS
        assert resolver.stats().hits >= 2 * REQUESTS - 2
        assert server.connections == 2 * REQUESTS
    assert dns.queries(NAME, "A") == 1
    assert dns.queries(NAME, "AAAA") <= 1


ORDER_SCRIPT = """
import json, socket, sys
order = sys.argv[1]
if order == "after":
    import trio
import dnscache
if order != "env":
    dnscache.install(backend="dnspython", nameservers=(sys.argv[2],))
import trio

async def main():
    return [await trio.socket.getaddrinfo("svc.test", 80, type=socket.SOCK_STREAM)
            for _ in range(20)]

results = trio.run(main)
print(json.dumps({
    "same": all(r == results[0] for r in results),
    "addresses": sorted(info[4][0] for info in results[0]),
    "ours": trio._socket._resolver.__dnscache__,
    "hits": dnscache.active_resolver().stats().hits,
}))
"""


@pytest.mark.parametrize("order", ["before", "after", "env"])
def test_install_before_or_after_trio_is_imported_or_from_the_environment(
    dns: DNSServer, order: str
) -> None:
    env = order_script_env(order, dns.nameserver)
    result = run_script(ORDER_SCRIPT, env, args=(order, dns.nameserver))
    # 19 hits: trio's thread calls socket.getaddrinfo for the first (the miss) only.
    assert result == {"same": True, "addresses": ["127.0.0.1", "::1"], "ours": True, "hits": 19}
    assert (dns.queries(NAME, "A"), dns.queries(NAME, "AAAA")) == (1, 1)
