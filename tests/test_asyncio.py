"""``loop.getaddrinfo`` under dnscache: hits answered in the loop's thread, misses as before.

The stock ``BaseEventLoop.getaddrinfo`` sends every call to the default executor. The
patched one answers a fresh cached result (or a cached negative answer) directly and
takes the stock path otherwise; these tests watch the executor itself, through a
default executor that counts what is submitted to it, and compare every answer with
what the stock method (the saved original, called on the same loop) returns.

Names come from a real loopback :class:`DNSServer` through the dnspython backend, so a
miss is a real lookup (and the server's query log shows there was exactly one).
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

import dnscache
from dnscache._tools.dnsserver import DNSServer

NAME = "svc.test"
GONE = "gone.test"
PORT = 8080
HITS = 100

T = TypeVar("T")
STOCK = asyncio.base_events.BaseEventLoop.__dict__["getaddrinfo"]


class CountingExecutor(ThreadPoolExecutor):
    """A default executor that counts submissions (all made from the loop's thread)."""

    def __init__(self) -> None:
        super().__init__(max_workers=2, thread_name_prefix="counting-executor")
        self.submitted = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


def run(main: Callable[[asyncio.AbstractEventLoop, CountingExecutor], Awaitable[T]]) -> T:
    """Run ``main(loop, executor)`` on a new loop whose default executor counts."""

    async def wrapper() -> T:
        loop = asyncio.get_running_loop()
        executor = CountingExecutor()
        loop.set_default_executor(executor)  # asyncio.run shuts it down at the end
        return await main(loop, executor)

    return asyncio.run(wrapper())


async def stock(loop: asyncio.AbstractEventLoop, host: str, port: int, **kwargs: Any) -> Any:
    """What the unpatched method answers (through the executor, and so the patched socket)."""
    return await STOCK(loop, host, port, **kwargs)


@pytest.fixture
def dns(dns_server: DNSServer) -> DNSServer:
    """conftest's loopback DNS server, serving NAME and NXDOMAIN for GONE."""
    dns_server.set(NAME, a=["127.0.0.1"], aaaa=["::1"], ttl=300)
    dns_server.nxdomain(GONE)
    return dns_server


def _patched(dns: DNSServer) -> dnscache.patched:
    return dnscache.patched(backend="dnspython", nameservers=(dns.nameserver,))


def test_hit_is_answered_without_the_executor(dns: DNSServer) -> None:
    async def main(loop: asyncio.AbstractEventLoop, executor: CountingExecutor) -> None:
        first = await loop.getaddrinfo(NAME, PORT, type=socket.SOCK_STREAM)
        assert executor.submitted == 1  # the miss took the stock path
        assert {info[4][0] for info in first} == {"127.0.0.1", "::1"}

        for _ in range(HITS):
            again = await loop.getaddrinfo(NAME, PORT, type=socket.SOCK_STREAM)
            assert again == first
            again.clear()  # each caller gets its own list: this must not reach the cache
        assert executor.submitted == 1

        assert await stock(loop, NAME, PORT, type=socket.SOCK_STREAM) == first
        assert executor.submitted == 2

    with _patched(dns) as resolver:
        run(main)
        assert resolver.stats().hits >= HITS
    assert dns.queries(NAME, "A") == 1
    assert dns.queries(NAME, "AAAA") == 1


def test_hits_are_exact_per_arguments(dns: DNSServer) -> None:
    """Each argument combination is its own hit, equal to the stock method's answer."""
    variants: list[dict[str, Any]] = [
        {},
        {"type": socket.SOCK_STREAM},
        {"type": socket.SOCK_DGRAM},
        {"family": socket.AF_INET, "type": socket.SOCK_STREAM},
        {"family": socket.AF_INET6, "proto": socket.IPPROTO_TCP},
        {"flags": socket.AI_CANONNAME},
    ]

    async def main(loop: asyncio.AbstractEventLoop, executor: CountingExecutor) -> None:
        for kwargs in variants:
            expected = await stock(loop, NAME, PORT, **kwargs)
            before = executor.submitted
            assert await loop.getaddrinfo(NAME, PORT, **kwargs) == expected, kwargs
            assert executor.submitted == before, kwargs

    with _patched(dns):
        run(main)


def test_negative_answer_is_raised_without_the_executor(dns: DNSServer) -> None:
    async def main(loop: asyncio.AbstractEventLoop, executor: CountingExecutor) -> None:
        with pytest.raises(socket.gaierror) as first:
            await loop.getaddrinfo(GONE, PORT)
        assert executor.submitted == 1
        assert first.value.errno == socket.EAI_NONAME

        for _ in range(HITS):
            with pytest.raises(socket.gaierror) as again:
                await loop.getaddrinfo(GONE, PORT)
            assert again.value.args == first.value.args
        assert executor.submitted == 1

        with pytest.raises(socket.gaierror) as stocked:
            await stock(loop, GONE, PORT)
        assert stocked.value.args == first.value.args

    with _patched(dns) as resolver:
        run(main)
        assert resolver.stats().negative_hits >= HITS
    assert dns.queries(GONE, "A") == 1


def test_debug_mode_takes_the_stock_path(dns: DNSServer) -> None:
    """asyncio's debug mode logs each lookup's duration from the executor: keep that path."""

    async def main(loop: asyncio.AbstractEventLoop, executor: CountingExecutor) -> None:
        warm = await loop.getaddrinfo(NAME, PORT, type=socket.SOCK_STREAM)
        assert executor.submitted == 1
        loop.set_debug(True)
        try:
            for count in range(2, 7):
                assert await loop.getaddrinfo(NAME, PORT, type=socket.SOCK_STREAM) == warm
                assert executor.submitted == count
        finally:
            loop.set_debug(False)
        assert await loop.getaddrinfo(NAME, PORT, type=socket.SOCK_STREAM) == warm
        assert executor.submitted == 6

    with _patched(dns) as resolver:
        run(main)
    assert dns.queries(NAME, "A") == 1  # the debug calls were cache hits all the same
    assert resolver.stats().misses == 1


def test_uncached_arguments_take_the_stock_path() -> None:
    """A numeric host is never cached: the executor answers it every time, as before."""

    async def main(loop: asyncio.AbstractEventLoop, executor: CountingExecutor) -> None:
        for count in range(1, 4):
            got = await loop.getaddrinfo("127.0.0.1", PORT, type=socket.SOCK_STREAM)
            assert got == await stock(loop, "127.0.0.1", PORT, type=socket.SOCK_STREAM)
            assert executor.submitted == 2 * count

    with dnscache.patched():
        run(main)


def _current() -> Any:
    return asyncio.base_events.BaseEventLoop.__dict__["getaddrinfo"]


def test_patched_exit_restores_the_method() -> None:
    assert _current() is STOCK
    with dnscache.patched():
        inner = _current()
        assert inner is not STOCK
        assert getattr(inner, "__dnscache__", False)
        assert inner.__wrapped__ is STOCK
        with dnscache.patched():
            assert _current() is not inner
        assert _current() is inner
    assert _current() is STOCK


def test_patched_restores_the_method_on_error() -> None:
    with pytest.raises(RuntimeError), dnscache.patched():
        raise RuntimeError("boom")
    assert _current() is STOCK


def test_uninstall_restores_the_method() -> None:
    try:
        dnscache.install()
        assert getattr(_current(), "__dnscache__", False)
    finally:
        dnscache.uninstall()
    assert _current() is STOCK
    assert not dnscache.is_installed()
