"""The executor (``_engine.lookup``) driven by a scripted source under a fake clock.

In the style of trio's connect tests: a ``Script`` plays the upstream (answers, gates that
hold a lookup until the test opens them, failures, interruptions), and the clock only moves
when the test says so, so every expectation about who waits, who leads and what is served
is exact. Real-server versions of the same stories are in test_unbreakable.py.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dnscache import Resolver
from dnscache._engine import lookup as lookup_module
from dnscache._sources.answer import Answer, Backend
from dnscache._sources.sysfiles import SystemFiles

V4 = socket.AF_INET
AGAIN = (socket.EAI_AGAIN, "Temporary failure in name resolution")
WAIT = 10.0  # the longest any step may take before the test fails instead of hanging


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Script:
    """A scripted upstream: per-host answers, gates, failures and one-off interruptions."""

    answers: dict[bytes, list[str]] = field(default_factory=dict)
    gates: dict[bytes, threading.Event] = field(default_factory=dict)
    failing: set[bytes] = field(default_factory=set)
    interrupt: dict[bytes, BaseException] = field(default_factory=dict)
    calls: list[bytes] = field(default_factory=list)
    entered: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def backend(self, _real: Backend) -> Backend:
        return _Scripted(self)

    def hold(self, host: str) -> threading.Event:
        gate = self.gates[host.encode()] = threading.Event()
        return gate

    def count(self, host: str) -> int:
        with self.lock:
            return self.calls.count(host.encode())

    def wait_entered(self) -> None:
        assert self.entered.acquire(timeout=WAIT), "no lookup reached the upstream"


class _Scripted:
    def __init__(self, script: Script) -> None:
        self.script = script

    def resolve(self, host: bytes, family: int, flags: int, *, background: bool = False) -> Answer:
        s = self.script
        with s.lock:
            s.calls.append(host)
            interrupt = s.interrupt.pop(host, None)
        gate = s.gates.get(host)
        if gate is not None:
            s.entered.release()
            assert gate.wait(WAIT), "the test never opened the gate"
        if interrupt is not None:
            raise interrupt
        if host in s.failing:
            raise socket.gaierror(*AGAIN)
        ips = s.answers[host]
        return Answer(tuple((V4, (ip, 0)) for ip in ips), "", None)

    def close(self) -> None:
        pass

    def after_fork_in_child(self) -> None:
        pass


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make(script: Script, clock: Clock, tmp_path: Path) -> Iterator[Callable[..., Resolver]]:
    # resolv.conf with a 1 s timeout and one try: a waiter's patience is that plus the margin.
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n")
    (tmp_path / "nsswitch.conf").write_text("hosts: files dns\n")
    made: list[Resolver] = []

    def factory(**options: Any) -> Resolver:
        files = SystemFiles(
            paths=[str(tmp_path / n) for n in ("hosts", "resolv.conf", "nsswitch.conf")],
            clock=clock,
        )
        r = Resolver(clock=clock, _files=files, _wrap_backend=script.backend, **options)
        made.append(r)
        return r

    yield factory
    for gate in script.gates.values():
        gate.set()
    for r in made:
        r.close()


def in_thread(func: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(func())
        except BaseException as exc:  # the test looks at it
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def timed(func: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = func()
    return result, time.monotonic() - start


def until(predicate: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


# --- hot names never wait -------------------------------------------------------------------


def test_a_hot_name_is_served_at_once_while_its_refresh_is_stuck(
    script: Script, clock: Clock, make: Callable[..., Resolver]
) -> None:
    script.answers[b"hot.test"] = ["127.0.0.1"]
    r = make(ttl=4, resolve_timeout=5.0)
    assert r.lookup("hot.test", V4) == ["127.0.0.1"]
    gate = script.hold("hot.test")
    clock.now += 2.5  # past refresh_at: the refresh-ahead starts and gets stuck upstream
    assert r.lookup("hot.test", V4) == ["127.0.0.1"]
    script.wait_entered()
    # Expired while the refresh is still stuck (within libc's own bound: resolv.conf's
    # 1 s x 1 try plus the margin; past it the flight would count as lost).
    clock.now += 2
    for _ in range(20):
        got, took = timed(lambda: r.lookup("hot.test", V4))
        assert got == ["127.0.0.1"] and took < WAIT / 4
    assert r.stats().stale_hits == 20
    script.answers[b"hot.test"] = ["127.0.0.2"]
    gate.set()
    assert until(lambda: r.lookup("hot.test", V4) == ["127.0.0.2"])
    assert script.count("hot.test") == 2


def test_a_known_failing_upstream_is_retried_in_the_background(
    script: Script, clock: Clock, make: Callable[..., Resolver]
) -> None:
    script.answers[b"svc.test"] = ["127.0.0.1"]
    r = make(ttl=10)
    r.lookup("svc.test", V4)
    script.failing.add(b"svc.test")
    clock.now += 11  # expired: the first caller waits for the (failing) lookup
    assert r.lookup("svc.test", V4) == ["127.0.0.1"]
    assert script.count("svc.test") == 2
    clock.now += lookup_module.STALE_RETRY + 1  # the retry timer ran out
    gate = script.hold("svc.test")
    got, took = timed(lambda: r.lookup("svc.test", V4))  # stale now; the retry is not waited for
    assert got == ["127.0.0.1"] and took < WAIT / 4
    script.wait_entered()
    gate.set()


# --- no lookup waits behind another name ----------------------------------------------------


def test_a_healthy_name_does_not_queue_behind_two_stuck_refreshes(
    script: Script, clock: Clock, make: Callable[..., Resolver]
) -> None:
    for name in ("a.test", "b.test", "c.test"):
        script.answers[name.encode()] = ["127.0.0.1"]
    r = make(ttl=10, resolve_timeout=5.0)
    for name in ("a.test", "b.test", "c.test"):
        r.lookup(name, V4)
    gates = [script.hold("a.test"), script.hold("b.test")]
    clock.now += 6
    r.lookup("a.test", V4)  # two refresh-aheads take both refresh workers, and hang
    r.lookup("b.test", V4)
    script.wait_entered()
    script.wait_entered()
    script.answers[b"c.test"] = ["127.0.0.3"]
    clock.now += 5  # c.test expired; its upstream answers at once
    got, took = timed(lambda: r.lookup("c.test", V4))
    assert got == ["127.0.0.3"], "the healthy name was served stale"
    assert took < WAIT / 4
    for gate in gates:
        gate.set()


def test_a_queued_refresh_is_promoted_when_a_caller_needs_it(
    script: Script, clock: Clock, make: Callable[..., Resolver]
) -> None:
    names = [f"n{i}.test" for i in range(4)]
    for name in names:
        script.answers[name.encode()] = ["127.0.0.1"]
    r = make(ttl=10, resolve_timeout=5.0)
    for name in names:
        r.lookup(name, V4)
    gates = [script.hold(names[0]), script.hold(names[1])]
    clock.now += 6
    for name in names:  # four refresh-aheads: two hang on the workers, two queue behind
        r.lookup(name, V4)
    script.wait_entered()
    script.wait_entered()
    script.answers[names[3].encode()] = ["127.0.0.9"]
    clock.now += 5
    got, took = timed(lambda: r.lookup(names[3], V4))
    assert got == ["127.0.0.9"] and took < WAIT / 4
    for gate in gates:
        gate.set()


# --- flights cannot leak ----------------------------------------------------------------------


def test_an_interrupted_leader_does_not_block_the_name(
    script: Script, make: Callable[..., Resolver]
) -> None:
    script.answers[b"svc.test"] = ["127.0.0.1"]
    script.interrupt[b"svc.test"] = KeyboardInterrupt()
    r = make()
    with pytest.raises(KeyboardInterrupt):
        r.lookup("svc.test", V4)
    got, took = timed(lambda: r.lookup("svc.test", V4))
    assert got == ["127.0.0.1"] and took < WAIT / 4


def test_waiters_of_an_interrupted_leader_get_an_answer(
    script: Script, make: Callable[..., Resolver]
) -> None:
    script.answers[b"svc.test"] = ["127.0.0.1"]
    script.interrupt[b"svc.test"] = KeyboardInterrupt()
    gate = script.hold("svc.test")
    r = make()
    leader, lbox = in_thread(lambda: r.lookup("svc.test", V4))
    script.wait_entered()
    waiters = [in_thread(lambda: r.lookup("svc.test", V4)) for _ in range(8)]
    del script.gates[b"svc.test"]  # the next leader's lookup goes through
    gate.set()
    for thread, _box in [(leader, lbox), *waiters]:
        thread.join(WAIT)
        assert not thread.is_alive()
    assert isinstance(lbox[0], KeyboardInterrupt)
    assert all(box == [["127.0.0.1"]] for _, box in waiters)


def test_a_hook_raising_base_exception_propagates_and_blocks_nothing(
    script: Script, make: Callable[..., Resolver]
) -> None:
    script.answers[b"svc.test"] = ["127.0.0.1"]
    raised = []

    def hook(host: str) -> None:
        if not raised:
            raised.append(host)
            raise KeyboardInterrupt

    r = make(on_cache_miss=hook)
    with pytest.raises(KeyboardInterrupt):
        r.lookup("svc.test", V4)
    got, took = timed(lambda: r.lookup("svc.test", V4))
    assert got == ["127.0.0.1"] and took < WAIT / 4


def test_a_lost_leader_costs_its_deadline_not_a_hang(
    script: Script, clock: Clock, make: Callable[..., Resolver], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A leader stuck forever (a lookup that never returns): a waiter gives up at the
    # flight's deadline (resolv.conf's 1 s x 1 try + the margin) and looks up on its own.
    monkeypatch.setattr(lookup_module, "FLIGHT_MARGIN", 0.2)
    script.answers[b"svc.test"] = ["127.0.0.1"]
    gate = script.hold("svc.test")
    r = make()
    stuck, _ = in_thread(lambda: r.lookup("svc.test", V4))
    script.wait_entered()
    del script.gates[b"svc.test"]
    got, took = timed(lambda: r.lookup("svc.test", V4))
    assert got == ["127.0.0.1"]
    assert 0.9 < took < 1.2 + WAIT / 4
    gate.set()
    stuck.join(WAIT)


# --- close() --------------------------------------------------------------------------------


def test_close_with_a_full_queue_leaves_no_caller_waiting(
    script: Script, clock: Clock, make: Callable[..., Resolver]
) -> None:
    names = [f"q{i}.test" for i in range(6)]
    for name in names:
        script.answers[name.encode()] = ["127.0.0.1"]
    r = make(ttl=10, resolve_timeout=30.0)
    for name in names:
        r.lookup(name, V4)
    gates = [script.hold(names[0]), script.hold(names[1])]
    clock.now += 6
    for name in names:
        r.lookup(name, V4)  # 2 stuck on workers, 4 queued
    script.wait_entered()
    script.wait_entered()
    for name in names:
        script.answers[name.encode()] = ["127.0.0.2"]
    closing, _ = in_thread(r.close)  # drops the queued refreshes: their flights must end
    for gate in gates:
        gate.set()
    closing.join(WAIT)
    assert not closing.is_alive()
    clock.now += 11  # all expired: a closed resolver looks up in the caller's thread
    for name in names:
        got, took = timed(lambda name=name: r.lookup(name, V4))  # type: ignore[misc]
        assert got == ["127.0.0.2"] and took < WAIT / 4
    assert r.background_threads() == []


def test_workers_exit_soon_after_the_last_job(
    script: Script, clock: Clock, make: Callable[..., Resolver]
) -> None:
    script.answers[b"svc.test"] = ["127.0.0.1"]
    r = make(ttl=10)
    before = set(threading.enumerate())
    r.lookup("svc.test", V4)
    assert set(threading.enumerate()) == before  # a miss starts no thread
    clock.now += 6
    r.lookup("svc.test", V4)  # refresh-ahead: one worker
    assert until(lambda: script.count("svc.test") == 2)
    start = time.monotonic()
    assert until(lambda: set(threading.enumerate()) == before)
    assert time.monotonic() - start < 0.5
