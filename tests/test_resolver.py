"""Resolver on its own (no patching): the cache must be indistinguishable from the original.

Answers come from the real system resolver for ``localhost`` (the hosts file) and IP
literals. The upstream is wrapped in a ``CountingBackend`` that delegates to the real
one, only to count lookups, to hold one back (to pile callers up behind it), or to
produce a negative answer for a name that must not reach the network.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import Any

import pytest

import dnscache
from dnscache import Resolver, Stats
from dnscache._sources.sysfiles import load_facts
from dnscache._tools.dnsserver import DNSServer

ORIG = dnscache.get_original("getaddrinfo")
AF4, AF6, UNSPEC = socket.AF_INET, socket.AF_INET6, socket.AF_UNSPEC
STREAM, DGRAM, RAW = socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW
NONAME = (socket.EAI_NONAME, "Name or service not known")
AGAIN = (socket.EAI_AGAIN, "Temporary failure in name resolution")
WAIT = 10.0  # seconds: generous bound for anything that should happen at once


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingBackend:
    """The resolver's real backend, counted; optionally held back or failing for some hosts."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: list[tuple[bytes, int, int]] = []
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.blocked: set[bytes] = set()  # hosts whose lookups wait for the gate
        self.entered = threading.Event()  # set when a blocked lookup is waiting
        self.errors: dict[bytes, tuple[int, str]] = {}  # host -> gaierror args (no network)
        self.interrupt_once: BaseException | None = None
        self.closed = 0

    def resolve(self, host: bytes, family: int, flags: int, *, background: bool = False) -> Any:
        with self.lock:
            self.calls.append((host, family, flags))
            interrupt, self.interrupt_once = self.interrupt_once, None
        if host in self.blocked:
            self.entered.set()
            assert self.gate.wait(WAIT), "test gate never opened"
        if interrupt is not None:
            raise interrupt
        if host in self.errors:
            raise socket.gaierror(*self.errors[host])
        return self.real.resolve(host, family, flags, background=background)

    def close(self) -> None:
        self.closed += 1
        self.real.close()

    def hosts(self) -> list[bytes]:
        return [c[0] for c in self.calls]


Make = Callable[..., tuple[Resolver, CountingBackend]]


@pytest.fixture
def make() -> Iterator[Make]:
    made: list[Resolver] = []

    def factory(*args: Any, **options: Any) -> tuple[Resolver, CountingBackend]:
        resolver = Resolver(*args, _wrap_backend=CountingBackend, **options)
        made.append(resolver)
        backend = resolver._backend
        assert isinstance(backend, CountingBackend)
        return resolver, backend

    yield factory
    for resolver in made:
        resolver.close()


def outcome(func: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """What a call did, comparably: the result (with element types) or the exception."""
    try:
        result = func(*args, **kwargs)
    except Exception as exc:
        return ("raised", type(exc), exc.args)
    return ("returned", result, [tuple(type(x) for x in item[:3]) for item in result])


def raised(func: Callable[..., Any], *args: Any) -> BaseException:
    with pytest.raises(Exception) as info:
        func(*args)
    return info.value


def wait_until_blocked(threads: list[threading.Thread]) -> None:
    """Wait until every thread waits for a flight (in its gate) or in a threading wait."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        frames = sys._current_frames()
        waiting = 0
        for thread in threads:
            frame = frames.get(thread.ident) if thread.ident is not None else None
            if frame is not None and (
                frame.f_code.co_name == "pass_gate"
                or (
                    frame.f_code.co_name == "wait"
                    and frame.f_code.co_filename == threading.__file__
                )
            ):
                waiting += 1
        if waiting == len(threads):
            return
        time.sleep(0.005)
    raise AssertionError("threads did not all block")


# --- arguments: every kind of call equals the original ---

_ADDRCONFIG, _V4MAPPED, _ALL = socket.AI_ADDRCONFIG, socket.AI_V4MAPPED, socket.AI_ALL

# Calls that never reach DNS on any machine: names from the hosts file, literals and
# arguments the original rejects before resolving anything.
NAME_CASES: list[tuple[Any, ...]] = [
    ("localhost", 80),
    ("localhost", 80, AF4),
    ("localhost", 443, 0, STREAM),
    ("localhost", 53, AF4, DGRAM, 17),
    ("localhost", 80, 0, RAW, 0),
    ("localhost", None, 0, RAW, 0),
    ("localhost", "http"),
    ("localhost", "http", 0, STREAM),
    ("localhost", "domain", 0, DGRAM),
    ("localhost", "ssh"),
    ("localhost", None),
    ("localhost", 0),
    ("localhost", "0"),
    ("localhost", "80"),
    ("localhost", b"80"),
    ("localhost", b"http"),
    ("localhost", 65535),
    ("localhost", 70000),  # CPython passes it as text; glibc wraps it to 4464
    ("localhost", True),
    ("localhost", 80, 0, 0, 0, socket.AI_CANONNAME),
    ("localhost", 80, AF4, STREAM, 0, socket.AI_CANONNAME),
    ("localhost", 80, AF6, STREAM, 0, _V4MAPPED),
    ("localhost", 80, AF6, 0, 0, _V4MAPPED | _ALL),
    ("localhost", 80, 0, 0, 0, _ADDRCONFIG),
    ("localhost", 80, 0, 0, 0, socket.AI_PASSIVE),
    ("localhost", 80, 0, 0, 0, socket.AI_NUMERICSERV),
    ("LOCALHOST", 80),
    ("LocalHost", 80, AF4, STREAM),
    (b"localhost", 80),
    (b"LOCALHOST", 443),
]

UNCACHED_CASES: list[tuple[Any, ...]] = [
    # literals
    ("127.0.0.1", 80),
    ("127.1", 80),
    ("0x7f.1", 80),
    ("::1", 80),
    ("::ffff:127.0.0.1", 80),
    ("::1", 80, AF4),
    ("127.0.0.1", 80, AF6),
    ("127.0.0.1", 80, AF6, 0, 0, _V4MAPPED),
    (b"127.0.0.1", 80),
    (None, 80),
    (None, 80, 0, STREAM, 0, socket.AI_PASSIVE),
    (None, None),
    ("localhost", 80, 0, 0, 0, socket.AI_NUMERICHOST),
    ("127.0.0.1", 80, 0, 0, 0, socket.AI_NUMERICHOST),
    # wrong types
    ("localhost", 80.0),
    ("localhost", 80, 2.0),
    ("localhost", 80, 0, 1.0),
    ("localhost", 80, 0, 0, 6.0),
    ("localhost", 80, 0, 0, 0, 0.0),
    ("localhost", 80, "2"),
    ("localhost", ["80"]),
    ("localhost", bytearray(b"80")),
    (bytearray(b"localhost"), 80),
    (["localhost"], 80),
    (("localhost",), 80),
    (80, 80),
    (1.5, 80),
    # names that cannot be names
    ("localhost\x00junk", 80),
    (b"localhost\x00junk", 80),
    ("", 80),
    (b"", 80),
    ("a..b", 80),
    ("a" * 64 + ".test", 80),
    ("x" * 300, 80),
    ("\udcff.test", 80),
    # bad ports, services, families, types, protocols, flags
    ("localhost", -1),
    ("localhost", 1 << 70),
    ("localhost", "nosuchservice"),
    ("localhost", "http", 0, 0, 0, socket.AI_NUMERICSERV),
    ("localhost", 80, socket.AF_UNIX),
    ("localhost", 80, 12345),
    ("localhost", 80, 1 << 40),
    ("localhost", 80, True),  # family 1 is AF_UNIX
    ("localhost", 80, 0, 99),
    ("localhost", 80, 0, 0, 999),
    ("localhost", 80, 0, RAW, 6),
    ("localhost", 80, 0, 0, 0, 0x40000),  # no such flag: EAI_BADFLAGS
    ("localhost", 80, 0, 0, 0, socket.AI_CANONNAME | 0x40000),
    ("localhost", 80, 0, 0, 0, -1),
]


def _id(case: tuple[Any, ...]) -> str:
    return repr(case)[:60]


@pytest.mark.parametrize("case", NAME_CASES + UNCACHED_CASES, ids=_id)
def test_miss_and_hit_equal_the_original(make: Make, case: tuple[Any, ...]) -> None:
    r, _ = make()
    expected = outcome(ORIG, *case)
    assert outcome(r.getaddrinfo, *case) == expected  # miss
    assert outcome(r.getaddrinfo, *case) == expected  # hit
    assert outcome(r.getaddrinfo, *case) == expected


@pytest.mark.parametrize("case", UNCACHED_CASES, ids=_id)
def test_programming_errors_and_literals_are_never_cached_or_counted(
    make: Make, case: tuple[Any, ...]
) -> None:
    r, backend = make()
    for _ in range(3):
        outcome(r.getaddrinfo, *case)
    assert backend.calls == []
    stats = r.stats()
    assert (stats.lookups, stats.entries, stats.hits, stats.misses) == (0, 0, 0, 0)


def test_one_resolver_for_all_cases_in_any_order(make: Make) -> None:
    # Entries and views are shared between calls: no call may see another's answer.
    r, _ = make()
    cases = NAME_CASES + UNCACHED_CASES
    expected = [outcome(ORIG, *c) for c in cases]
    for order in (cases, cases[::-1], cases):
        got = {_id(c): outcome(r.getaddrinfo, *c) for c in order}
        assert got == {_id(c): e for c, e in zip(cases, expected, strict=True)}


def test_keywords_as_the_original(make: Make) -> None:
    r, _ = make()
    kwargs = {"host": "localhost", "port": 80, "type": STREAM, "flags": socket.AI_CANONNAME}
    assert outcome(r.getaddrinfo, **kwargs) == outcome(ORIG, **kwargs)
    assert outcome(r.getaddrinfo, **kwargs) == outcome(ORIG, **kwargs)
    assert outcome(r.getaddrinfo, "localhost", port=80, flags=0) == outcome(ORIG, "localhost", 80)


def test_arity_errors_as_the_original(make: Make) -> None:
    # The TypeError names the function: it must read "getaddrinfo()", as socket's does.
    r, _ = make()
    assert outcome(r.getaddrinfo, "localhost") == outcome(ORIG, "localhost")
    too_many = ("localhost", 80, 0, 0, 0, 0, 0)
    assert outcome(r.getaddrinfo, *too_many) == outcome(ORIG, *too_many)


# --- sharing: one upstream lookup per (name, family, lookup flags) ---


def test_ports_and_types_share_one_lookup(make: Make) -> None:
    r, backend = make()
    calls = [
        ("localhost", 80),
        ("localhost", 443),
        ("localhost", "http", 0, STREAM),
        ("localhost", None, 0, DGRAM),
        ("localhost", 0, 0, RAW),
    ]
    for call in calls:
        assert outcome(r.getaddrinfo, *call) == outcome(ORIG, *call)
    assert len(backend.calls) == 1
    assert r.stats().lookups == 1
    assert r.stats().entries == 1


def test_results_are_copies(make: Make) -> None:
    r, _ = make()
    expected = ORIG("localhost", 80)
    first = r.getaddrinfo("localhost", 80)
    first.append("junk")  # type: ignore[arg-type]
    second = r.getaddrinfo("localhost", 80)
    assert second == expected
    second.clear()
    third = r.getaddrinfo("localhost", 80)
    assert third == expected
    assert third is not second and third is not first


def test_case_shares_the_entry(make: Make) -> None:
    r, backend = make()
    r.getaddrinfo("localhost", 80)
    for host in ("LOCALHOST", "LocalHost", b"localhost", b"LOCALhost"):
        assert outcome(r.getaddrinfo, host, 80) == outcome(ORIG, host, 80)
    assert backend.hosts() == [b"localhost"]


def test_trailing_dot_of_a_hosts_file_name_is_its_own_entry(make: Make) -> None:
    # glibc's hosts file lookup does not match "localhost." against "localhost", so the
    # two must never share an answer. Here the dotted lookup is answered NXDOMAIN by the
    # counting backend instead of the network; test_parity checks the real answer of
    # "localhost." against dnsmasq in a namespace.
    r, backend = make()
    backend.errors[b"localhost."] = NONAME
    assert outcome(r.getaddrinfo, "localhost", 80) == outcome(ORIG, "localhost", 80)
    e = raised(r.getaddrinfo, "localhost.", 80)
    assert (type(e), e.args) == (socket.gaierror, NONAME)
    assert outcome(r.getaddrinfo, "localhost", 80) == outcome(ORIG, "localhost", 80)
    assert backend.hosts() == [b"localhost", b"localhost."]


def test_trailing_dot_of_other_names_follows_the_system_facts(make: Make) -> None:
    r, backend = make()
    backend.errors[b"name.test"] = NONAME
    backend.errors[b"name.test."] = NONAME
    for host in ("name.test", "Name.Test.", "name.test."):
        assert raised(r.getaddrinfo, host, 80).args == NONAME
    expected = [b"name.test"] if load_facts().dot_is_noise else [b"name.test", b"name.test."]
    assert backend.hosts() == expected


def test_idna_and_its_ascii_form_share_the_entry(make: Make) -> None:
    r, backend = make()
    backend.errors[b"xn--bcher-kva.example"] = NONAME
    for host in (
        "bücher.example",
        "BÜCHER.example",
        b"xn--bcher-kva.example",
        "XN--BCHER-KVA.EXAMPLE",
    ):
        assert raised(r.getaddrinfo, host, 80).args == NONAME
    assert backend.hosts() == [b"xn--bcher-kva.example"]


def test_families_and_lookup_flags_are_separate_entries(make: Make) -> None:
    r, backend = make()
    r.getaddrinfo("localhost", 80)
    r.getaddrinfo("localhost", 80, AF4)
    r.getaddrinfo("localhost", 80, 0, 0, 0, socket.AI_CANONNAME)
    r.getaddrinfo("localhost", 80, 0, 0, 0, socket.AI_PASSIVE)  # shapes tuples only
    r.getaddrinfo("localhost", 80, 0, 0, 0, socket.AI_NUMERICSERV)
    assert backend.calls == [
        (b"localhost", UNSPEC, 0),
        (b"localhost", AF4, 0),
        (b"localhost", UNSPEC, socket.AI_CANONNAME),
    ]


# --- time: positive and negative lifetimes under an injected clock ---


def test_positive_answer_lives_for_ttl(make: Make) -> None:
    clock = FakeClock(1000.0)
    r, backend = make(clock=clock, ttl=30.0, refresh=False, stale_ttl=0.0)
    expected = ORIG("localhost", 80)
    assert r.getaddrinfo("localhost", 80) == expected
    clock.now = 1029.999
    assert r.getaddrinfo("localhost", 80) == expected
    assert r.getaddrinfo("localhost", 8080, 0, STREAM) == ORIG("localhost", 8080, 0, STREAM)
    assert len(backend.calls) == 1
    clock.now = 1030.0
    assert r.getaddrinfo("localhost", 80) == expected
    assert len(backend.calls) == 2


@pytest.mark.parametrize("error", [NONAME, AGAIN])
def test_negative_answer_cached_for_negative_ttl(make: Make, error: tuple[int, str]) -> None:
    clock = FakeClock(1000.0)
    r, backend = make(clock=clock, negative_ttl=2.0)
    backend.errors[b"nx.test"] = error
    first = raised(r.getaddrinfo, "nx.test", 80)
    assert type(first) is socket.gaierror
    assert first.args == error and first.errno == error[0] and first.strerror == error[1]

    clock.now = 1001.999
    again = [
        raised(r.getaddrinfo, "nx.test", 80),  # hit path
        raised(r.getaddrinfo, "NX.test", 443, 0, STREAM),  # same entry, new arguments
    ]
    for e in again:
        assert (type(e), e.args) == (socket.gaierror, error)
        assert e is not first
    assert len(backend.calls) == 1
    stats = r.stats()
    assert (stats.lookups, stats.negative_hits) == (1, 2)

    clock.now = 1002.0  # negative_ttl is over: asked again
    assert raised(r.getaddrinfo, "nx.test", 80).args == error
    assert len(backend.calls) == 2
    # and a negative answer is never kept past its life as a stale one
    clock.now = 1002.0 + 86400.0
    backend.errors.pop(b"nx.test")
    backend.errors[b"nx.test"] = NONAME
    assert raised(r.getaddrinfo, "nx.test", 80).args == NONAME
    assert len(backend.calls) == 3


def test_errors_that_are_not_answers_are_not_cached(make: Make) -> None:
    r, backend = make()
    system = (socket.EAI_SYSTEM, "System error")
    backend.errors[b"odd.test"] = system
    for _ in range(3):
        e = raised(r.getaddrinfo, "odd.test", 80)
        assert (type(e), e.args) == (socket.gaierror, system)
    assert len(backend.calls) == 3
    assert r.stats().entries == 0


# --- concurrency ---


def _run(targets: list[Callable[[], Any]]) -> tuple[list[threading.Thread], list[Any]]:
    results: list[Any] = [None] * len(targets)

    def runner(i: int, target: Callable[[], Any]) -> None:
        try:
            results[i] = ("returned", target())
        except BaseException as exc:
            results[i] = ("raised", exc)

    threads = [
        threading.Thread(target=runner, args=(i, t), name=f"test-caller-{i}", daemon=True)
        for i, t in enumerate(targets)
    ]
    for t in threads:
        t.start()
    return threads, results


def _join(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(WAIT)
    assert not any(t.is_alive() for t in threads)


def test_single_flight(make: Make) -> None:
    r, backend = make()
    backend.blocked.add(b"localhost")
    threads, results = _run([lambda: r.getaddrinfo("localhost", 80, 0, STREAM)] * 20)
    assert backend.entered.wait(WAIT)
    wait_until_blocked(threads)  # one upstream, nineteen waiting for it
    assert len(backend.calls) == 1
    backend.gate.set()
    _join(threads)
    expected = ORIG("localhost", 80, 0, STREAM)
    assert results == [("returned", expected)] * 20
    assert len(backend.calls) == 1
    stats = r.stats()
    assert (stats.lookups, stats.misses, stats.entries) == (1, 20, 1)


def test_single_flight_across_spellings_and_ports(make: Make) -> None:
    r, backend = make()
    backend.blocked.add(b"localhost")
    calls = [
        lambda: r.getaddrinfo("localhost", 80),
        lambda: r.getaddrinfo("LOCALHOST", 443),
        lambda: r.getaddrinfo(b"localhost", "http", 0, STREAM),
        lambda: r.getaddrinfo("LocalHost", None, 0, DGRAM),
    ] * 3
    threads, results = _run(calls)
    assert backend.entered.wait(WAIT)
    wait_until_blocked(threads)
    backend.gate.set()
    _join(threads)
    assert len(backend.calls) == 1
    args = [("localhost", 80), ("LOCALHOST", 443), (b"localhost", "http", 0, STREAM)]
    args.append(("LocalHost", None, 0, DGRAM))
    assert results == [("returned", ORIG(*a)) for a in args] * 3


class Interrupt(BaseException):
    """Like KeyboardInterrupt, but not one."""


def test_interrupted_leader_does_not_poison_the_waiters(make: Make) -> None:
    r, backend = make()
    backend.blocked.add(b"localhost")
    backend.interrupt_once = Interrupt("leader interrupted")
    threads, results = _run([lambda: r.getaddrinfo("localhost", 80, 0, STREAM)] * 10)
    assert backend.entered.wait(WAIT)
    wait_until_blocked(threads)
    backend.gate.set()
    _join(threads)
    interrupted = [res for res in results if res[0] == "raised"]
    assert len(interrupted) == 1 and isinstance(interrupted[0][1], Interrupt)
    expected = ("returned", ORIG("localhost", 80, 0, STREAM))
    assert [res for res in results if res[0] != "raised"] == [expected] * 9
    assert len(backend.calls) == 2  # the interrupted one, and one retry for all
    assert r.getaddrinfo("localhost", 80, 0, STREAM) == expected[1]
    assert len(backend.calls) == 2


def test_interrupted_lone_caller_leaves_nothing_behind(make: Make) -> None:
    r, backend = make()
    backend.interrupt_once = Interrupt()
    with pytest.raises(Interrupt):
        r.getaddrinfo("localhost", 80)
    assert r.stats().entries == 0
    assert r.getaddrinfo("localhost", 80) == ORIG("localhost", 80)
    assert len(backend.calls) == 2


def test_hits_never_wait_for_another_keys_lookup(make: Make) -> None:
    r, backend = make()
    warm = r.getaddrinfo("localhost", 80, AF4, STREAM)
    backend.blocked.add(b"slow.test")
    backend.errors[b"slow.test"] = NONAME
    slow, slow_result = _run([lambda: r.getaddrinfo("slow.test", 80)])
    assert backend.entered.wait(WAIT)

    def others() -> list[Any]:
        return [
            r.getaddrinfo("localhost", 80, AF4, STREAM),  # the hit path
            r.getaddrinfo("localhost", 443, AF4, STREAM),  # same entry, new view (store lock)
            r.getaddrinfo("127.0.0.1", 80),  # literal
            r.getaddrinfo("localhost", 80, 0, STREAM, 0, socket.AI_CANONNAME),  # another miss
        ]

    fast, fast_result = _run([others])
    fast[0].join(WAIT)
    # Done while the slow lookup is still held upstream: nothing waited for it.
    assert not fast[0].is_alive()
    assert slow[0].is_alive() and not backend.gate.is_set()
    assert fast_result[0] == (
        "returned",
        [
            warm,
            ORIG("localhost", 443, AF4, STREAM),
            ORIG("127.0.0.1", 80),
            ORIG("localhost", 80, 0, STREAM, 0, socket.AI_CANONNAME),
        ],
    )
    backend.gate.set()
    _join(slow)
    assert slow_result[0][0] == "raised" and slow_result[0][1].args == NONAME


# --- bounded size ---


def test_lru_eviction(make: Make) -> None:
    r, backend = make(maxsize=2)
    a = ("localhost", 80, UNSPEC)
    b = ("localhost", 80, AF4)
    c = ("localhost", 80, UNSPEC, 0, 0, _ADDRCONFIG)
    r.getaddrinfo(*a)
    r.getaddrinfo(*b)
    r.getaddrinfo(*a)  # a hit: a is now more recent than b
    r.getaddrinfo(*c)  # evicts b
    assert r.stats().evictions == 1
    assert r.stats().entries == 2
    assert len(backend.calls) == 3
    assert r.getaddrinfo(*a) == ORIG(*a)  # kept
    assert r.getaddrinfo(*c) == ORIG(*c)
    assert len(backend.calls) == 3
    assert r.getaddrinfo(*b) == ORIG(*b)  # gone: asked again, and a (least recent) goes
    assert len(backend.calls) == 4
    assert r.stats().evictions == 2
    assert backend.calls[-1] == (b"localhost", AF4, 0)


def test_eviction_drops_the_views_too(make: Make) -> None:
    r, backend = make(maxsize=1)
    r.getaddrinfo("localhost", 80, UNSPEC)
    r.getaddrinfo("localhost", 80, AF4)
    assert r.getaddrinfo("localhost", 80, UNSPEC) == ORIG("localhost", 80, UNSPEC)
    assert len(backend.calls) == 3
    assert r.stats().entries == 1


# --- invalidate ---


def test_invalidate_one_host(make: Make) -> None:
    r, backend = make()
    backend.errors[b"other.test"] = NONAME
    r.getaddrinfo("localhost", 80)
    r.getaddrinfo("localhost", 80, AF4)
    raised(r.getaddrinfo, "other.test", 80)
    assert r.stats().entries == 3
    r.invalidate("LOCALHOST.")  # any spelling
    assert r.stats().entries == 1
    assert r.getaddrinfo("localhost", 80) == ORIG("localhost", 80)
    assert r.getaddrinfo("localhost", 80, AF4) == ORIG("localhost", 80, AF4)
    raised(r.getaddrinfo, "other.test", 80)
    assert backend.hosts() == [b"localhost", b"localhost", b"other.test"] + [b"localhost"] * 2
    r.invalidate(b"other.test")
    assert r.stats().entries == 2
    r.invalidate("never-seen.test")
    assert r.stats().entries == 2


def test_invalidate_reaches_every_spelling(make: Make) -> None:
    r, backend = make()
    backend.errors[b"Name.Test"] = NONAME
    backend.errors[b"name.test"] = NONAME
    canon = socket.AI_CANONNAME
    r.getaddrinfo("LOCALHOST", 80, 0, 0, 0, canon)
    r.getaddrinfo("localhost", 80, AF4)
    raised(r.getaddrinfo, "Name.Test", 80, 0, 0, 0, canon)
    raised(r.getaddrinfo, "name.test", 80)
    r.invalidate("localhost")
    r.invalidate("NAME.TEST.")
    assert r.stats().entries == 0
    calls = len(backend.calls)
    assert outcome(r.getaddrinfo, "LOCALHOST", 80, 0, 0, 0, canon) == outcome(
        ORIG, "LOCALHOST", 80, 0, 0, 0, canon
    )
    assert len(backend.calls) == calls + 1


def test_invalidate_everything(make: Make) -> None:
    r, backend = make()
    r.getaddrinfo("localhost", 80)
    r.getaddrinfo("localhost", 80, AF4)
    r.invalidate()
    assert r.stats().entries == 0
    assert r.stats().evictions == 0
    assert r.getaddrinfo("localhost", 80) == ORIG("localhost", 80)
    assert len(backend.calls) == 3


# --- static overrides (Config.hosts) ---


def test_overrides_per_family(make: Make) -> None:
    r, backend = make(
        hosts={"both.test": ["127.0.0.5", "::1"], "v4.test": ["127.0.0.6"], "v6.test": ["::1"]}
    )
    assert sorted(r.lookup("both.test")) == ["127.0.0.5", "::1"]
    assert r.lookup("both.test", AF4) == ["127.0.0.5"]
    assert r.lookup("both.test", AF6) == ["::1"]
    assert r.lookup("BOTH.Test.") == r.lookup("both.test")
    assert r.getaddrinfo("v4.test", 443, AF4, STREAM) == ORIG("127.0.0.6", 443, AF4, STREAM)
    assert r.getaddrinfo("v4.test", "http", 0, 0) == ORIG("127.0.0.6", "http", 0, 0)
    assert r.getaddrinfo("v6.test", 80, AF6, DGRAM) == ORIG("::1", 80, AF6, DGRAM)

    for host, family in (("v4.test", AF6), ("v6.test", AF4)):
        e = raised(r.getaddrinfo, host, 80, family)
        assert (type(e), e.args) == (socket.gaierror, NONAME)
        assert e.errno == socket.EAI_NONAME

    mapped = r.getaddrinfo("v4.test", 80, AF6, STREAM, 0, _V4MAPPED)
    assert mapped == ORIG("::ffff:127.0.0.6", 80, AF6, STREAM)
    # AI_ALL with AI_V4MAPPED: the IPv6 addresses and the mapped IPv4 ones.
    both = r.getaddrinfo("both.test", 80, AF6, STREAM, 0, _V4MAPPED | _ALL)
    assert [i[4][0] for i in both] == ["::1", "::ffff:127.0.0.5"]
    # Without AI_ALL, mapping is only for names without IPv6 addresses.
    assert r.lookup("both.test", AF6) == ["::1"]
    assert [i[4][0] for i in r.getaddrinfo("both.test", 80, AF6, STREAM, 0, _V4MAPPED)] == ["::1"]

    canon = r.getaddrinfo("v4.test", 80, AF4, STREAM, 0, socket.AI_CANONNAME)
    assert [i[3] for i in canon] == ["v4.test"]
    # Bad arguments still fail as the original fails.
    assert outcome(r.getaddrinfo, "v4.test", "nosuchservice") == outcome(
        ORIG, "localhost", "nosuchservice"
    )
    assert backend.calls == []
    assert r.stats().lookups == 0


def test_overrides_never_expire(make: Make) -> None:
    clock = FakeClock(0.0)
    r, backend = make(clock=clock, hosts={"svc.test": ["127.0.0.7"]}, ttl=1.0)
    assert r.lookup("svc.test") == ["127.0.0.7"]
    clock.now = 1e9
    assert r.lookup("svc.test") == ["127.0.0.7"]
    assert backend.calls == []


# --- disabled ---


def test_disabled_is_pure_pass_through(make: Make) -> None:
    seen: list[Any] = []
    r, backend = make(disabled=True, on_cache_miss=seen.append, hosts={"svc.test": ["127.0.0.7"]})
    for case in [*NAME_CASES[:6], *UNCACHED_CASES[:6]]:
        assert outcome(r.getaddrinfo, *case) == outcome(ORIG, *case)
        assert outcome(r.getaddrinfo, *case) == outcome(ORIG, *case)
    assert backend.calls == []
    assert seen == []
    assert r.stats() == Stats()


# --- hooks ---


def test_on_cache_miss(make: Make) -> None:
    seen: list[Any] = []
    r, _ = make(on_cache_miss=seen.append)
    r.getaddrinfo("localhost", 80)
    r.getaddrinfo("LOCALHOST", 443)
    r.getaddrinfo("127.0.0.1", 80)
    assert seen == ["localhost"]
    r.getaddrinfo("localhost", 80, AF4)
    assert seen == ["localhost", "localhost"]


def test_raising_hook_is_logged_and_never_breaks_the_lookup(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_hook(host: str) -> None:
        raise RuntimeError("hook bug")

    r, backend = make(on_cache_miss=broken_hook)
    with caplog.at_level(logging.DEBUG, logger="dnscache"):
        assert r.getaddrinfo("localhost", 80) == ORIG("localhost", 80)
        assert r.getaddrinfo("localhost", 80, AF4) == ORIG("localhost", 80, AF4)
    assert len(backend.calls) == 2
    records = [rec for rec in caplog.records if rec.exc_info and rec.name == "dnscache"]
    assert records, caplog.text
    assert any(rec.levelno >= logging.ERROR for rec in records)
    assert all(isinstance(rec.exc_info[1], RuntimeError) for rec in records if rec.exc_info)
    assert "broken_hook" in caplog.text


def _dnspython_resolver(make: Make, server: DNSServer, **options: Any) -> Resolver:
    r, _ = make(
        backend="dnspython",
        nameservers=[server.nameserver],
        refresh=False,
        stale_ttl=0.0,
        **options,
    )
    return r


def test_on_change(make: Make, dns_server: DNSServer) -> None:
    changes: list[tuple[str, list[str]]] = []
    clock = FakeClock(0.0)
    dns_server.set("svc.test", a=["127.0.0.2"], ttl=30)
    r = _dnspython_resolver(
        make, dns_server, clock=clock, on_change=lambda h, ips: changes.append((h, ips))
    )
    assert r.lookup("svc.test", AF4) == ["127.0.0.2"]
    clock.now = 31.0
    assert r.lookup("svc.test", AF4) == ["127.0.0.2"]  # same answer: no change
    assert changes == []
    dns_server.set("svc.test", a=["127.0.0.3", "127.0.0.4"], ttl=30)
    clock.now = 62.0
    assert sorted(r.lookup("SVC.test", AF4)) == ["127.0.0.3", "127.0.0.4"]
    assert len(changes) == 1
    host, ips = changes[0]
    assert host == "svc.test" and sorted(ips) == ["127.0.0.3", "127.0.0.4"]
    assert dns_server.queries("svc.test", "A") == 3


def test_raising_on_change_is_logged(
    make: Make, dns_server: DNSServer, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_on_change(host: str, ips: list[str]) -> None:
        raise ValueError("on_change bug")

    clock = FakeClock(0.0)
    dns_server.set("svc.test", a=["127.0.0.2"], ttl=30)
    r = _dnspython_resolver(make, dns_server, clock=clock, on_change=broken_on_change)
    r.lookup("svc.test", AF4)
    dns_server.set("svc.test", a=["127.0.0.3"], ttl=30)
    clock.now = 31.0
    with caplog.at_level(logging.DEBUG, logger="dnscache"):
        assert r.lookup("svc.test", AF4) == ["127.0.0.3"]
    assert "broken_on_change" in caplog.text
    assert any(rec.exc_info and rec.levelno >= logging.ERROR for rec in caplog.records)


# --- lookup, stats, close ---


def test_lookup(make: Make) -> None:
    r, backend = make()
    expected = list(dict.fromkeys(i[4][0] for i in ORIG("localhost", None, 0, STREAM)))
    assert r.lookup("localhost") == expected
    assert r.lookup(b"LOCALHOST") == expected
    assert r.lookup("localhost", AF4) == [i[4][0] for i in ORIG("localhost", None, AF4, STREAM)]
    backend.errors[b"nx.test"] = NONAME
    e = raised(r.lookup, "nx.test")
    assert (type(e), e.args) == (socket.gaierror, NONAME)


def test_stats(make: Make) -> None:
    r, backend = make()
    assert r.stats() == Stats()
    assert {f.name for f in fields(Stats)} >= {
        "hits",
        "misses",
        "negative_hits",
        "evictions",
        "lookups",
        "entries",
    }
    backend.errors[b"nx.test"] = NONAME
    r.getaddrinfo("localhost", 80)  # miss
    r.getaddrinfo("localhost", 80)  # hit (hit path)
    r.getaddrinfo("localhost", 443)  # hit (same entry, new view)
    r.getaddrinfo("127.0.0.1", 80)  # not cached: not counted
    raised(r.getaddrinfo, "nx.test", 80)  # miss
    raised(r.getaddrinfo, "nx.test", 80)  # negative hit
    stats = r.stats()
    assert (stats.hits, stats.misses, stats.negative_hits) == (2, 2, 1)
    assert (stats.lookups, stats.entries, stats.evictions) == (2, 2, 0)


def test_context_manager_closes(make: Make) -> None:
    with Resolver(_wrap_backend=CountingBackend) as r:
        backend = r._backend
        assert isinstance(backend, CountingBackend)
        assert r.getaddrinfo("localhost", 80) == ORIG("localhost", 80)
    assert backend.closed == 1
    assert not any(t.is_alive() for t in r.background_threads())
    # A closed resolver still answers.
    assert r.getaddrinfo("localhost", 80) == ORIG("localhost", 80)
    assert r.getaddrinfo("localhost", 80, AF4) == ORIG("localhost", 80, AF4)
    r.close()  # idempotent
    assert not any(t.is_alive() for t in r.background_threads())


def test_repr(make: Make) -> None:
    r, _ = make()
    r.getaddrinfo("localhost", 80)
    assert "entries=1" in repr(r)


def test_a_repeated_literal_costs_one_call_of_the_original() -> None:
    # A literal is never cached; once known as such, the next call must not pay for the
    # argument probe and the numeric check again (3-4x the original's cost before).
    calls: list[tuple[Any, ...]] = []
    original = dnscache.get_original("getaddrinfo")

    def counting(*args: Any) -> Any:
        calls.append(args)
        return original(*args)

    with dnscache.Resolver(_original=counting) as r:
        first = r.getaddrinfo("127.0.0.1", 443)
        before = len(calls)
        assert r.getaddrinfo("127.0.0.1", 443) == first == original("127.0.0.1", 443)
        assert calls[before:] == [("127.0.0.1", 443, 0, 0, 0, 0)]
        assert r.stats().lookups == 0
