"""Issue "Unbreakable", engine side: no call hangs, no host gets another's answer, bounded memory.

Every test drives the public API against the project's real loopback DNS server
(``DNSServer``) with the dnspython backend, or libc on loopback names, and bounds every
wait, so a regression fails instead of hanging. The scripted versions of the flight and
queue stories are in test_lookup_scenarios.py; the end-to-end ones through glibc and
dnsmasq in test_e2e_refresh.py.
"""

from __future__ import annotations

import gc
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dnscache
from dnscache import Resolver
from dnscache._engine import answers
from dnscache._sources.sysfiles import SystemFiles
from dnscache._tools.dnsserver import DNSServer

V4 = socket.AF_INET
STREAM = socket.SOCK_STREAM
WAIT = 15.0


def ip_of(i: int) -> str:
    return f"127.{(i // 250) % 250}.{i % 250 + 1}.{i // 62500 + 1}"


@pytest.fixture
def make(dns_server: DNSServer) -> Iterator[Callable[..., Resolver]]:
    made: list[Resolver] = []

    def factory(**options: Any) -> Resolver:
        options.setdefault("backend", "dnspython")
        options.setdefault("nameservers", (dns_server.nameserver,))
        r = Resolver(**options)
        made.append(r)
        return r

    yield factory
    for r in made:
        r.close()


# --- 1. interrupts: no name is ever poisoned --------------------------------------------------


class Interrupted(BaseException):
    """What the SIGALRM handler raises, at whatever bytecode the main thread is on."""


def _fds() -> set[tuple[str, str]]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add((fd, os.readlink(f"/proc/self/fd/{fd}")))
        except OSError:  # the listing's own descriptor, closed already
            pass
    return out


# An exception raised by a signal handler can land inside the stdlib's own
# ``socket.close()`` (it sets ``_closed`` before it closes the descriptor), so a query
# socket may be closed by the garbage collector instead, with a ResourceWarning; or in a
# finalizer the collector runs, which reports it to ``sys.unraisablehook``. pytest's hook
# keeps such exceptions, and with their tracebacks the frames above them, until the test
# ends: the storm runs under a hook that only counts them (1 to 4 a run), so the
# descriptor check below sees only what a program itself would still hold.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_signal_storm_poisons_no_name_and_gives_no_wrong_answer(
    dns_server: DNSServer, make: Callable[..., Resolver]
) -> None:
    fds_before = _fds()
    names = [f"s{i}.test" for i in range(40)]
    for i, name in enumerate(names):
        dns_server.set(name, a=[ip_of(i)], ttl=1)
    hook_calls = [0]

    def flaky_hook(host: str) -> None:  # a BaseException from a hook, now and then
        hook_calls[0] += 1
        if hook_calls[0] % 7 == 0:
            raise KeyboardInterrupt

    r = make(ttl=1, refresh_at=0.3, resolve_timeout=0.5, negative_ttl=0.2, on_cache_miss=flaky_hook)
    wrong: list[tuple[str, Any]] = []
    stop = threading.Event()

    failures = [0]

    def check(name: str) -> None:
        try:
            got = r.lookup(name, V4)
        except socket.gaierror as exc:  # a timeout under this load is an answer, not a bug
            assert exc.errno == socket.EAI_AGAIN, exc
            failures[0] += 1
            return
        if got != [ip_of(names.index(name))]:
            wrong.append((name, got))

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            try:
                check(rng.choice(names))
            except KeyboardInterrupt:  # the hook's, in this thread
                pass

    def on_alarm(_signum: int, frame: Any) -> None:
        # Raise wherever the main thread is, as long as it is inside a lookup (our
        # locks and finally blocks, cachetools, dnspython, the hook), not in the
        # test's own bookkeeping.
        while frame is not None:
            if frame.f_code is check.__code__:
                raise Interrupted
            frame = frame.f_back

    workers = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(6)]
    unraisable = [0]

    def count_unraisable(_args: Any) -> None:  # keeps no reference to the exception
        unraisable[0] += 1

    old_hook = sys.unraisablehook
    sys.unraisablehook = count_unraisable
    old = signal.signal(signal.SIGALRM, on_alarm)
    interrupts = 0
    try:
        for thread in workers:
            thread.start()
        rng = random.Random(0)
        # A repeating timer: about 700 interrupts a second, landing wherever the main
        # thread is (our locks, our finally blocks, cachetools, dnspython, the hook).
        signal.setitimer(signal.ITIMER_REAL, 0.001, 0.0013)
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            try:
                check(rng.choice(names))
            except Interrupted:
                interrupts += 1
            except KeyboardInterrupt:
                pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        stop.set()
        for thread in workers:
            thread.join(WAIT)
        gc.collect()  # finalizers of the storm's garbage report to the counting hook
        sys.unraisablehook = old_hook
    stuck = [t for t in workers if t.is_alive()]
    frames = sys._current_frames()
    where = ["".join(traceback.format_stack(frames[t.ident])) for t in stuck if t.ident in frames]
    assert not stuck, "a worker is blocked (a poisoned name):\n" + "\n".join(where)
    assert wrong == []
    assert interrupts > 100, interrupts
    # Afterwards every name answers, promptly (a leaked flight would block, or wait out
    # its deadline).
    for i, name in enumerate(names):
        started = time.monotonic()
        assert r.lookup(name, V4) == [ip_of(i)]
        assert time.monotonic() - started < 2.0, name
    r.close()
    gc.collect()
    deadline = time.monotonic() + 5.0  # the DNS server's own workers finish their answers
    while (leaked := _fds() - fds_before) and time.monotonic() < deadline:
        time.sleep(0.05)
        gc.collect()
    assert not leaked, leaked


# --- 2. close(): no flight is orphaned --------------------------------------------------------


def test_a_closed_resolver_still_answers_expired_and_stale_names(
    dns_server: DNSServer, make: Callable[..., Resolver]
) -> None:
    for name in ("a.test", "b.test", "c.test", "d.test"):
        dns_server.set(name, a=["127.0.0.1"], ttl=1)
    dns_server.drop("a.test")
    dns_server.drop("b.test")
    r = make(ttl=1, refresh_at=0.2, resolve_timeout=5.0)
    dns_server.set("a.test", a=["127.0.0.1"], ttl=1)
    dns_server.set("b.test", a=["127.0.0.1"], ttl=1)
    for name in ("a.test", "b.test", "c.test", "d.test"):
        r.lookup(name, V4)
    dns_server.drop("a.test")
    dns_server.drop("b.test")
    time.sleep(0.3)
    for name in ("a.test", "b.test", "c.test", "d.test"):
        r.lookup(name, V4)  # refresh-aheads: two hang on the workers, two queue
    r.close()
    dns_server.set("c.test", a=["127.0.0.3"], ttl=1)
    dns_server.set("d.test", a=["127.0.0.4"], ttl=1)
    time.sleep(1.6)  # expired (even if a refresh-ahead renewed it late), inside the window
    started = time.monotonic()
    assert r.lookup("c.test", V4) == ["127.0.0.3"]  # not the stale answer, not a hang
    assert r.lookup("d.test", V4) == ["127.0.0.4"]
    assert time.monotonic() - started < 2.0
    assert r.background_threads() == []


# --- 3. head-of-line: a healthy name never waits behind stuck ones ----------------------------


def test_two_hanging_upstream_names_do_not_make_a_healthy_one_stale(
    dns_server: DNSServer, make: Callable[..., Resolver]
) -> None:
    for name in ("hang1.test", "hang2.test", "ok.test"):
        dns_server.set(name, a=["127.0.0.1"], ttl=2)
    r = make(resolve_timeout=1.8)
    for name in ("hang1.test", "hang2.test", "ok.test"):
        r.lookup(name, V4)
    dns_server.drop("hang1.test")
    dns_server.drop("hang2.test")
    time.sleep(1.1)
    r.lookup("hang1.test", V4)  # refresh-aheads, stuck on both refresh workers
    r.lookup("hang2.test", V4)
    dns_server.set("ok.test", a=["127.0.0.9"], ttl=2)
    time.sleep(1.0)  # ok.test expired; its upstream answers at once
    started = time.monotonic()
    assert r.lookup("ok.test", V4) == ["127.0.0.9"]
    assert time.monotonic() - started < 1.0  # far from the 1.8 s resolve_timeout stall
    assert r.stats().stale_hits == 0


class OffsetClock:
    """Real time plus an offset the test can jump forward between calls (never during one)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@pytest.mark.parametrize("ttl", [1, 5, 60])
def test_a_hot_name_never_waits_for_a_black_holed_upstream(
    dns_server: DNSServer, make: Callable[..., Resolver], ttl: int
) -> None:
    # A name used every 20 ms while every query is black-holed. Waits are real; for the
    # 60 s TTL the clock jumps over the stretches where nothing happens (to just before
    # refresh_at, and to just before expiry), but only once the lookup under way has
    # ended, so what the resolver sees is what a minute of real time would show.
    dns_server.set("hot.test", a=["127.0.0.1"], ttl=ttl)
    clock = OffsetClock()
    r = make(clock=clock)
    assert r.lookup("hot.test", V4) == ["127.0.0.1"]
    dns_server.paused = True  # every query is black-holed from now on
    misses = r.stats().misses
    slowest = [0.0]

    def hammer(seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            started = time.monotonic()
            assert r.lookup("hot.test", V4) == ["127.0.0.1"]
            slowest[0] = max(slowest[0], time.monotonic() - started)
            time.sleep(0.02)

    def failed(n: int) -> Callable[[], bool]:
        return lambda: r.stats().refresh_failures >= n

    jump = ttl > 10
    (entry,) = r.entries()
    for n, moment in enumerate((0.5, 1.0), start=1):  # refresh_at, then expiry
        if jump:  # to 0.3 s before the moment, in real time from there
            clock.offset += entry.life.born + ttl * moment - 0.3 - clock()
        hammer(1.0 if jump else ttl * moment + 0.5)  # across the moment
        hammer(WAIT, until=failed(n))  # until the stuck lookup has failed
    if jump:
        clock.offset += 5.5  # past the retry timer
    hammer(1.5)
    dns_server.paused = False
    stats = r.stats()
    assert stats.refresh_failures >= 2, stats
    assert stats.stale_hits > 0, stats
    assert stats.misses == misses, "a call waited for the upstream"
    # No caller waited for DNS: the old stall was resolve_timeout (1.8 s) at each expiry.
    assert slowest[0] < 0.5, slowest


# --- 4. keys are exact --------------------------------------------------------------------------


def test_a_memoryview_host_raises_like_the_original(make: Callable[..., Resolver]) -> None:
    r = make(backend="system")
    assert r.getaddrinfo(b"localhost", 80)  # cached as bytes
    with pytest.raises(TypeError) as theirs:
        dnscache.get_original("getaddrinfo")(memoryview(b"localhost"), 80)
    with pytest.raises(TypeError) as ours:
        r.getaddrinfo(memoryview(b"localhost"), 80)
    assert str(ours.value) == str(theirs.value)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=12), min_size=2, max_size=2, unique=True))
def test_distinct_byte_names_never_share_a_textual_key(pair: list[bytes]) -> None:
    a, b = pair
    assert answers.text(a) != answers.text(b)
    assert answers.text(a).encode("ascii", "surrogateescape") == a


def test_non_ascii_hosts_file_names_stay_distinct(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_bytes(b"127.0.0.1 caf\xc3\xa9.test\n")
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    (tmp_path / "nsswitch.conf").write_text("hosts: files dns\n")
    files = SystemFiles(
        paths=[str(tmp_path / n) for n in ("hosts", "resolv.conf", "nsswitch.conf")]
    )
    assert b"caf\xc3\xa9.test" in files.facts.hosts_names
    assert b"caf\xc3\xa8.test" not in files.facts.hosts_names


# --- 5. views: bounded, rebuilt, O(1) per connect outcome -------------------------------------


def test_views_are_bounded_in_all(make: Callable[..., Resolver]) -> None:
    r = make(backend="system", max_views=50)
    for port in range(1, 400):
        r.getaddrinfo("localhost", port, V4, STREAM)
    assert len(r._store.front) <= 50
    assert r.getaddrinfo("localhost", 7, V4, STREAM)[0][4] == ("127.0.0.1", 7)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_after_a_failure_penalty_the_host_returns_to_the_lock_free_hit(
    dns_server: DNSServer, make: Callable[..., Resolver]
) -> None:
    dns_server.set("two.test", a=["127.0.0.1", "127.0.0.2"], ttl=3600)
    clock = _Clock()
    r = make(clock=clock, failure_penalty=10.0)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    try:
        first = r.getaddrinfo("two.test", port, V4, STREAM)
        # 127.0.0.2 refuses: it is penalised, the view is rebuilt in health order.
        dead = [info for info in first if info[4][0] == "127.0.0.2"]
        with socket.create_connection(("127.0.0.1", port)):
            pass
        refused = ConnectionRefusedError(111, "refused")
        r.connector._attempt_done("two.test", dead[0], refused)
        assert r.peek("two.test", port, V4, STREAM) is None  # must be rebuilt first
        ordered = r.getaddrinfo("two.test", port, V4, STREAM)
        assert ordered[-1] == dead[0]
        clock.now += 11  # the penalty ended
        assert r.peek("two.test", port, V4, STREAM) is None
        r.getaddrinfo("two.test", port, V4, STREAM)  # rebuilt, and published again
        assert r.peek("two.test", port, V4, STREAM) is not None
    finally:
        server.close()


def test_a_connect_outcome_touches_only_its_hosts_views(make: Callable[..., Resolver]) -> None:
    r = make(backend="system", hosts={f"h{i}.test": ["127.0.0.1"] for i in range(2000)})
    for i in range(2000):
        r.getaddrinfo(f"h{i}.test", 80, V4, STREAM)
    before = dict(r._store.front)

    def no_walk() -> Iterator[Any]:
        raise AssertionError("a connect outcome walked the whole store")

    r._store.__class__ = type("NoWalk", (r._store.__class__,), {"__iter__": no_walk})
    info = (socket.AF_INET, STREAM, 6, "", ("127.0.0.1", 80))
    r.connector._attempt_done("h5.test", info, ConnectionRefusedError(111, "refused"))
    after = r._store.front
    assert [k for k in before if k not in after] == [("h5.test", str, 80, int, 2, 1, 0, 0)]
    assert all(after[k] is v for k, v in before.items() if k[0] != "h5.test")


# --- 6. configuration files are seen within a second, even by names that only hit ------------


def test_a_hosts_file_change_reaches_a_name_that_only_hits(tmp_path: Path) -> None:
    paths = [tmp_path / n for n in ("hosts", "resolv.conf", "nsswitch.conf")]
    for path, text in zip(
        paths,
        ("127.0.0.1 localhost\n", "nameserver 127.0.0.1\n", "hosts: files dns\n"),
        strict=True,
    ):
        path.write_text(text)
    with Resolver(_files=SystemFiles(paths=[str(p) for p in paths]), ttl=3600) as r:
        r.getaddrinfo("localhost", 80, V4, STREAM)
        lookups = r.stats().lookups
        paths[0].write_text("127.0.0.1 localhost\n# edited\n")
        deadline = time.monotonic() + 3.0
        while r.stats().lookups == lookups and time.monotonic() < deadline:
            r.getaddrinfo("localhost", 80, V4, STREAM)
            time.sleep(0.01)
        assert r.stats().lookups == lookups + 1  # the cache was dropped: looked up again
        assert r.stats().misses == 2


# --- 7. on_change: once per host per change ----------------------------------------------------


def test_on_change_fires_once_per_host_per_change(
    dns_server: DNSServer, make: Callable[..., Resolver]
) -> None:
    dns_server.set("svc.test", a=["127.0.0.1"], aaaa=["::1"], ttl=1)
    changes: list[tuple[str, list[str]]] = []
    r = make(on_change=lambda h, ips: changes.append((h, ips)), refresh=False, stale_ttl=0)
    for family in (0, socket.AF_INET, socket.AF_INET6):
        r.getaddrinfo("svc.test", 80, family, STREAM)
    dns_server.set("svc.test", a=["127.0.0.2"], aaaa=["::1"], ttl=1)
    time.sleep(1.1)
    for family in (0, socket.AF_INET, socket.AF_INET6):
        r.getaddrinfo("svc.test", 80, family, STREAM)
    assert len(changes) == 1, changes
    host, ips = changes[0]
    assert host == "svc.test" and sorted(ips) == ["127.0.0.2", "::1"]


# --- 8. threads ----------------------------------------------------------------------------------


def test_threads_are_back_to_what_they_were_soon_after_a_burst(
    dns_server: DNSServer, make: Callable[..., Resolver]
) -> None:
    names = [f"b{i}.test" for i in range(30)]
    for name in names:
        dns_server.set(name, a=["127.0.0.1"], ttl=1)
    r = make(ttl=1, refresh_at=0.1)
    before = set(threading.enumerate())
    for name in names:
        r.lookup(name, V4)
    assert set(threading.enumerate()) == before  # misses run in the caller
    time.sleep(0.15)
    for name in names:
        r.lookup(name, V4)  # 30 refresh-aheads
    deadline = time.monotonic() + WAIT
    while dns_server.queries() < 60 and time.monotonic() < deadline:
        time.sleep(0.005)
    done = time.monotonic()
    while set(threading.enumerate()) != before and time.monotonic() < deadline:
        time.sleep(0.005)
    assert set(threading.enumerate()) == before
    assert time.monotonic() - done < 0.5  # workers exit 50 ms after the queue empties
