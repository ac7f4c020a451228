"""The cases of ``bench_paths.py``: what each row calls, with what set up around it.

A case's ``make(env)`` returns ``run(n)``, which makes ``n`` calls (cold-miss
cases take a new name for each). Set-up that must not be timed (a warm cache,
a patched socket module, an event loop) happens in ``make`` or in the case's
``context``, entered around every timed stretch of that case.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import socket
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bench_connect_cost import listener
from bench_hit import make_dict_memo

import dnscache

HOST = "hit.paths.test"  # the warm name of the hit rows
ONE = "one.paths.test"  # the cached one-address name of the connect row
POOL = 20_000  # names for cold misses: no call of a run ever sees a name twice
MEMORY_HOSTS = 2000
CALL_FACTOR = {"miss": 1, "dns": 1, "connect": 1, "hit": 2000}
PATHS = {
    "miss": "cold miss, system backend (dnsmasq)",
    "dns": "cold miss, dnspython backend, A+AAAA",
    "connect": "connect, one attempt",
    "memory": "memory per cached host (2 IPv4 + 1 IPv6)",
    "hit": "hit",
}
STREAM = socket.SOCK_STREAM


def name(i: int) -> str:
    return f"h{i}.paths.test"


def addresses(i: int) -> list[str]:
    """Two IPv4 and one IPv6 address, all loopback (the namespace harness insists)."""
    return [f"127.1.{i // 250}.{i % 250 + 1}", f"127.2.{i // 250}.{i % 250 + 1}", "::1"]


def records() -> dict[str, list[str]]:
    out = {name(i): addresses(i) for i in range(POOL)}
    out[HOST] = ["127.0.0.2", "127.0.0.3", "::1"]
    return out


@dataclass
class Names:
    """Names never used before in this process, for cold misses."""

    offset: int = 0

    def take(self, n: int) -> list[str]:
        start, self.offset = self.offset, self.offset + n
        if self.offset > POOL:
            raise RuntimeError(f"more than {POOL} cold misses: raise POOL")
        return [name(i) for i in range(start, self.offset)]


@dataclass
class Env:
    port: int  # the connect listener
    names: Names = field(default_factory=Names)


Run = Callable[[int], None]


@dataclass
class Case:
    kind: str  # a key of PATHS
    label: str
    make: Callable[[Env], Run]
    ref: str | None = None  # the case this one is compared with
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext


def _original() -> Any:
    return dnscache.get_original("getaddrinfo")


# --- cold misses ---


def _miss(f: Callable[..., Any], env: Env) -> Run:
    def run(n: int) -> None:
        for host in env.names.take(n):
            f(host, 443, 0, STREAM)

    return run


def ref_miss(env: Env) -> Run:
    return _miss(_original(), env)


def ours_miss(env: Env) -> Run:
    return _miss(dnscache.Resolver().getaddrinfo, env)


def ref_dns(env: Env) -> Run:
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.cache = None

    def run(n: int) -> None:
        for host in env.names.take(n):
            resolver.resolve(host + ".", "A", raise_on_no_answer=False)
            resolver.resolve(host + ".", "AAAA", raise_on_no_answer=False)

    return run


def ours_dns(env: Env) -> Run:
    resolver = dnscache.Resolver(backend="dnspython", nameservers=("127.0.0.1",))
    return _miss(resolver.getaddrinfo, env)


# --- connect ---


def _connect(host: str, env: Env) -> Run:
    address = (host, env.port)

    def run(n: int) -> None:
        for _ in range(n):
            socket.create_connection(address, 5.0).close()

    run(1)  # a cached name is looked up once, here
    return run


def _patched() -> contextlib.AbstractContextManager[Any]:
    return dnscache.patched(hosts={ONE: ["127.0.0.1"]})


# --- hits and the peers ---


def _loop(f: Callable[..., Any], *args: Any) -> Run:
    f(*args)  # warm

    def run(n: int) -> None:
        for _ in range(n):
            f(*args)

    return run


@contextlib.contextmanager
def _dnspython_override() -> Iterator[None]:
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.cache = dns.resolver.LRUCache()
    dns.resolver.override_system_resolver(resolver)
    try:
        yield
    finally:
        dns.resolver.restore_system_resolver()


def peer_dnspython(env: Env) -> Run:
    return _loop(lambda h, p: socket.getaddrinfo(h, p), HOST, 443)


def peer_cachetools(env: Env) -> Run:
    import cachetools

    cached = cachetools.cached(cachetools.TTLCache(maxsize=10_000, ttl=300), lock=threading.Lock())
    return _loop(cached(_original()), HOST, 443)


def peer_aiohttp(env: Env) -> Run:
    import aiohttp

    loop = asyncio.new_event_loop()

    async def make() -> Any:
        return aiohttp.TCPConnector(ttl_dns_cache=300)

    connector = loop.run_until_complete(make())

    async def batch(n: int) -> None:
        resolve = connector._resolve_host
        for _ in range(n):
            await resolve(HOST, 443)

    loop.run_until_complete(batch(1))  # warm

    def run(n: int) -> None:
        loop.run_until_complete(batch(n))

    return run


CASES: dict[str, Case] = {
    "ref_miss": Case("miss", "raw original `socket.getaddrinfo`", ref_miss),
    "ours_miss": Case("miss", "dnscache `Resolver().getaddrinfo`", ours_miss, "ref_miss"),
    "ref_dns": Case("dns", "raw dnspython, A then AAAA", ref_dns),
    "ours_dns": Case("dns", "dnscache, dnspython backend", ours_dns, "ref_dns"),
    "ref_connect": Case(
        "connect", "stdlib `create_connection`, IP literal", lambda e: _connect("127.0.0.1", e)
    ),
    "ours_connect_literal": Case(
        "connect",
        "patched, IP literal",
        lambda e: _connect("127.0.0.1", e),
        "ref_connect",
        _patched,
    ),
    "ours_connect_name": Case(
        "connect",
        "patched, cached one-address name",
        lambda e: _connect(ONE, e),
        "ref_connect",
        _patched,
    ),
    "ref_hit": Case(
        "hit", "dict memo returning a copy", lambda e: _loop(make_dict_memo(_original()), HOST, 443)
    ),
    "ours_hit": Case(
        "hit",
        "dnscache `Resolver.getaddrinfo`",
        lambda e: _loop(dnscache.Resolver().getaddrinfo, HOST, 443),
        "ref_hit",
    ),
    "ref_hit_stream": Case(
        "hit",
        "dict memo, `(host, 443, 0, SOCK_STREAM)`",
        lambda e: _loop(make_dict_memo(_original()), HOST, 443, 0, STREAM),
    ),
    "ours_hit_stream": Case(
        "hit",
        "dnscache, `(host, 443, 0, SOCK_STREAM)`",
        lambda e: _loop(dnscache.Resolver().getaddrinfo, HOST, 443, 0, STREAM),
        "ref_hit_stream",
    ),
    "peer_aiohttp": Case(
        "hit", "aiohttp `TCPConnector._resolve_host`, warm", peer_aiohttp, "ref_hit"
    ),
    "peer_cachetools": Case("hit", "cachetools `TTLCache` + lock", peer_cachetools, "ref_hit"),
    "peer_dnspython": Case(
        "hit",
        "dnspython `override_system_resolver` + `LRUCache`",
        peer_dnspython,
        "ref_hit",
        _dnspython_override,
    ),
}


def time_rounds(port: int, rounds: int, calls: int, quiet: bool) -> dict[str, list[float]]:
    """Seconds per call, one figure per round, for every case (order rotated per round)."""
    env = Env(port=port)
    keys = list(CASES)
    runs: dict[str, Run] = {}
    for key in keys:
        with CASES[key].context():
            runs[key] = CASES[key].make(env)
    samples: dict[str, list[float]] = {key: [] for key in keys}
    for r in range(rounds):
        shift = r % len(keys)
        for key in keys[shift:] + keys[:shift]:
            case = CASES[key]
            n = calls * CALL_FACTOR[case.kind]
            with case.context():
                runs[key](min(5, n))
                started = time.perf_counter()
                runs[key](n)
                samples[key].append((time.perf_counter() - started) / n)
        if not quiet:
            print(f"  round {r + 1}/{rounds} done", file=__import__("sys").stderr)
    return samples


def _bytes(f: Callable[..., Any], hosts: list[str], port: int) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for host in hosts:
            f(host, port, 0, STREAM)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return sum(s.size_diff for s in after.compare_to(before, "filename")) / len(hosts)


def memory() -> dict[str, float]:
    """Bytes per cached host, and per extra (host, port) view, in dnscache and a dict memo."""
    hosts = [name(i) for i in range(MEMORY_HOSTS)]
    memo = make_dict_memo(_original())
    resolver = dnscache.Resolver()
    out = {
        "memo_per_host": _bytes(memo, hosts, 443),
        "memo_per_view": _bytes(memo, hosts, 80),
        "ours_per_host": _bytes(resolver.getaddrinfo, hosts, 443),
        "ours_per_view": _bytes(resolver.getaddrinfo, hosts, 80),
        "hosts": MEMORY_HOSTS,
    }
    resolver.close()
    out["per_host_ratio"] = out["ours_per_host"] / out["memo_per_host"]
    out["per_view_ratio"] = out["ours_per_view"] / out["memo_per_view"]
    return out


def run_child(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**__import__("os").environ, "PYTHONHASHSEED": "0"},
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[-7:]} failed:\n{proc.stderr[-3000:]}")
    return proc


def collected(proc: subprocess.CompletedProcess[str]) -> int:
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if found is None:
        raise RuntimeError(f"no callgrind total:\n{proc.stderr[-3000:]}")
    return int(found.group(1))


__all__ = ["CASES", "PATHS", "Env", "Names", "listener", "memory", "records", "time_rounds"]
