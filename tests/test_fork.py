"""Fork safety: children of a busy process resolve at once, and multiprocessing simply works.

The parent is made as busy as it gets: threads hammer the cache, records with a one-second
TTL keep refreshes running, and negative answers come and go. A child forked at any moment
may inherit a held lock, a worker list naming threads it does not have, or a lookup in flight
whose leader is gone; each of those would hang it, so every child must answer within a second
and the parent kills (and fails on) any child that does not end in time.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import dnscache
from dnscache import Resolver
from dnscache._tools.dnsserver import DNSServer

# Python 3.12+ warns when forking a process that has threads; forking one is the point here.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:This process \(pid=\d+\) is multi-threaded, use of fork\(\) may lead to "
    r"deadlocks in the child:DeprecationWarning"
)

V4 = socket.AF_INET
HOT = [f"hot{i}.test" for i in range(4)]
FORKS = 20
CHILD_DEADLINE = 1.0  # seconds a child has to resolve its names
WAIT = 3.0  # seconds the parent waits for a child before killing it


@pytest.fixture
def server() -> Iterator[DNSServer]:
    with DNSServer(default_ttl=60) as srv:
        for i, name in enumerate(HOT):
            srv.set(name, a=[f"127.0.1.{i}"], ttl=1)  # refreshed every half second
        for i in range(FORKS):
            srv.set(f"new{i}.test", a=[f"127.0.2.{i}"], aaaa=["::1"])
        yield srv


def expected(name: str) -> list[str]:
    return [f"127.0.1.{HOT.index(name)}"]


def run_child(body: Callable[[], bool]) -> int:
    """Fork; the child runs ``body`` and exits 0 if it returned True within the deadline."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which never returns
        code = 3
        try:
            started = time.monotonic()
            ok = body()
            code = 0 if ok and time.monotonic() - started < CHILD_DEADLINE else 2
        except BaseException:
            code = 4
        finally:
            os._exit(code)
    return pid


def reap(pid: int) -> int | str:
    """The child's exit code, or "hung" after killing a child that did not end in time."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "hung"


class Hammer:
    """Threads resolving hot names (and the odd unknown one) until stopped."""

    def __init__(self, resolver: Resolver, threads: int = 3) -> None:
        self._resolver = resolver
        self._stop = threading.Event()
        self.errors: list[str] = []
        self.calls = 0
        self._threads = [
            threading.Thread(target=self._run, args=(n,), name=f"hammer-{n}")
            for n in range(threads)
        ]

    def _run(self, n: int) -> None:
        k = 0
        while not self._stop.is_set():
            k += 1
            name = HOT[k % len(HOT)]
            try:
                got = self._resolver.lookup(name, V4)
                if got != expected(name):
                    self.errors.append(f"{name}: {got}")
                if k % 50 == 0:  # a miss (NXDOMAIN), so flights start and end all the time
                    try:
                        self._resolver.lookup(f"absent{n}-{k}.test", V4)
                    except socket.gaierror:
                        pass
            except Exception as exc:
                self.errors.append(repr(exc))
            self.calls += 1

    def __enter__(self) -> Hammer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)


def test_forked_children_resolve_at_once_while_the_parent_is_busy(server: DNSServer) -> None:
    with Resolver(
        backend="dnspython", nameservers=(server.nameserver,), resolve_timeout=0.5
    ) as resolver:
        for name in HOT:
            resolver.lookup(name, V4)
        outcomes: dict[int, int | str] = {}
        with Hammer(resolver) as hammer:
            for i in range(FORKS):
                hot = HOT[i % len(HOT)]

                def body(i: int = i, hot: str = hot) -> bool:
                    cached = resolver.lookup(hot, V4) == expected(hot)
                    fresh = set(resolver.lookup(f"new{i}.test")) == {f"127.0.2.{i}", "::1"}
                    return cached and fresh

                outcomes[i] = reap(run_child(body))
                if outcomes[i] != 0:
                    break  # one broken child says it; don't wait out twenty
                time.sleep(0.05)  # spread the forks over several refresh cycles
        stats = resolver.stats()

    assert outcomes == dict.fromkeys(range(FORKS), 0), outcomes
    assert hammer.errors == []
    assert hammer.calls > 0
    assert stats.refreshes > 0  # refreshes really were running while we forked
    # The children's lookups of new names happened in the children only.
    assert all(server.queries(f"new{i}.test", "A") == 1 for i in range(FORKS))


def test_child_does_not_join_the_parents_lookup_in_flight(server: DNSServer) -> None:
    """A lookup in flight in the parent has no leader in the child: the child asks itself."""
    server.set("moving.test", a=["127.0.3.1"], ttl=1)
    with Resolver(
        backend="dnspython", nameservers=(server.nameserver,), resolve_timeout=0.3
    ) as resolver:
        resolver.lookup("moving.test", V4)
        # The parent's next lookup of the name will hang on the server for a second...
        server.set("moving.test", a=["127.0.3.1"], ttl=1, delay=1.0)
        time.sleep(1.05)  # expired
        assert resolver.lookup("moving.test", V4) == ["127.0.3.1"]  # stale, after 0.3 s
        assert server.queries("moving.test", "A") == 2
        # ...while a new query gets a new answer at once.
        server.set("moving.test", a=["127.0.3.2"], ttl=1)

        def body() -> bool:
            got = resolver.lookup("moving.test", V4)
            workers = [t for t in threading.enumerate() if t.name == "dnscache-refresh"]
            return got == ["127.0.3.2"] and all(t.is_alive() for t in workers)

        outcome = reap(run_child(body))
        # Let the parent's own lookup finish before closing.
        deadline = time.monotonic() + 3
        while resolver.lookup("moving.test", V4) != ["127.0.3.1"] and time.monotonic() < deadline:
            time.sleep(0.01)
    assert outcome == 0
    assert server.queries("moving.test", "A") == 3


def _pool_lookup(name: str) -> tuple[bool, list[str], float]:
    started = time.monotonic()
    infos = socket.getaddrinfo(name, 80, V4, socket.SOCK_STREAM)
    return (
        dnscache.is_installed(),
        sorted({info[4][0] for info in infos}),
        (time.monotonic() - started),
    )


def test_multiprocessing_fork_pool_maps_lookups(server: DNSServer) -> None:
    resolver = dnscache.install(
        backend="dnspython", nameservers=(server.nameserver,), resolve_timeout=0.5
    )
    try:
        for name in HOT:
            socket.getaddrinfo(name, 80, V4, socket.SOCK_STREAM)
        names = [*HOT, *(f"new{i}.test" for i in range(6))] * 2
        with Hammer(resolver), multiprocessing.get_context("fork").Pool(2) as pool:
            results = pool.map_async(_pool_lookup, names).get(timeout=20)
    finally:
        dnscache.uninstall()
    for name, (installed, ips, _) in zip(names, results, strict=True):
        assert installed
        assert ips == (expected(name) if name in HOT else [f"127.0.2.{name[3:-5]}"])
    assert max(seconds for _, _, seconds in results) < CHILD_DEADLINE
