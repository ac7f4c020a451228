"""Durations are bounded to what the platform's waits accept (issue 11, item 4).

Every duration option ends up in ``Event.wait``/``Thread.join``/a selector or is added
to a clock reading. A programmatic value out of range raises ``ValueError``; a finite
environment value beyond its bound is clamped with one message naming the variable;
NaN, infinities and negatives warn and keep the default. No accepted value may make a
later call raise: the end-to-end test runs a process with the worst values set.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import selectors
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnscache import Config
from dnscache._core.checks import (
    MAX_LIFETIME,
    MAX_WAIT,
    MIN_CLEANUP_INTERVAL,
    VALIDATORS,
    OutOfRange,
    _check_number,
)
from dnscache._core.config import parse_env
from dnscache._tools.dnsserver import DNSServer

WAITS = {"resolve_timeout", "happy_eyeballs_delay", "cleanup_interval"}
DURATIONS = sorted(
    f.name
    for f in dataclasses.fields(Config)
    if f.type in ("float", float) and f.name != "refresh_at"
)
# Smallest positive value each accepts (0 itself is allowed unless noted).
LEAST = {"cleanup_interval": MIN_CLEANUP_INTERVAL, "persist_max_age": 5e-324}


def _bounds(name: str) -> tuple[float, float]:
    return LEAST.get(name, 0.0), MAX_WAIT if name in WAITS else MAX_LIFETIME


def _allowed(name: str, value: float) -> bool:
    least, most = _bounds(name)
    zero_ok = name != "persist_max_age"
    return (value == 0 and zero_ok) or least <= value <= most


def test_the_durations_are_the_ones_we_think() -> None:
    assert set(DURATIONS) >= WAITS | {"ttl", "negative_ttl", "stale_ttl", "persist_max_age"}
    for name in DURATIONS:  # every duration goes through the bounded number check
        assert VALIDATORS[name] is not None


NUMBERS = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.sampled_from(
        [
            0,
            -0.0,
            5e-324,
            1e-300,
            MIN_CLEANUP_INTERVAL,
            MAX_WAIT,
            MAX_WAIT + 1,
            1e10,
            MAX_LIFETIME,
            MAX_LIFETIME * (1 + 1e-15),
            threading.TIMEOUT_MAX,
            1e308,
            10**400,
        ]
    )
)


@pytest.mark.parametrize("name", DURATIONS)
@settings(max_examples=150, deadline=None)
@given(value=NUMBERS)
def test_programmatic_value_is_accepted_exactly_when_in_range(name: str, value: Any) -> None:
    in_range = not (isinstance(value, float) and math.isnan(value)) and _allowed(name, value)
    if in_range:
        got = getattr(Config(**{name: value}), name)
        assert type(got) is float and got == value and math.copysign(1, got) == 1
    else:
        with pytest.raises(ValueError, match=name):  # never OverflowError or TypeError
            Config(**{name: value})


def _env_texts() -> st.SearchStrategy[str]:
    return (
        st.floats(allow_nan=True, allow_infinity=True).map(repr)
        | st.integers(min_value=-(10**30), max_value=10**400).map(str)
        | st.sampled_from(["1e10", "1e308", "1e400", "inf", "-inf", "nan", "-0", " 5 ", "1e-300"])
    )


@pytest.mark.parametrize("name", DURATIONS)
@settings(max_examples=150, deadline=None)
@given(raw=_env_texts())
def test_env_value_is_used_clamped_or_defaulted_with_one_message(name: str, raw: str) -> None:
    var = f"PYTHONDNSCACHE_{name.upper()}"
    config, problems = parse_env({var: raw})
    got = getattr(config, name)
    least, most = _bounds(name)
    try:
        number = float(raw)
    except ValueError:  # int strings over 4300 digits
        number = math.nan
    if math.isnan(number) or number < 0 or math.isinf(number):
        assert got == getattr(Config(), name)
        assert len(problems) == 1 and var in problems[0]
    elif number > most:
        assert got == most
        assert len(problems) == 1 and var in problems[0] and "clamping" in problems[0]
    elif 0 < number < least:
        assert got == least
        assert len(problems) == 1 and var in problems[0]
    elif number == 0 and name == "persist_max_age":
        assert got == getattr(Config(), name) and len(problems) == 1
    else:
        assert got == number and problems == []


def test_out_of_range_is_a_value_error_that_knows_the_nearest_value() -> None:
    with pytest.raises(OutOfRange) as info:
        _check_number("ttl", 10**400)
    assert isinstance(info.value, ValueError) and info.value.nearest == MAX_LIFETIME
    with pytest.raises(ValueError, match="at most 86400"):
        Config(resolve_timeout=1e10)


def test_clamping_is_one_config_warning_naming_the_variable() -> None:
    with pytest.warns(UserWarning) as record:
        config = Config.from_env({"PYTHONDNSCACHE_RESOLVE_TIMEOUT": "1e10"})
    assert config.resolve_timeout == MAX_WAIT
    assert len(record) == 1 and "PYTHONDNSCACHE_RESOLVE_TIMEOUT" in str(record[0].message)


@pytest.fixture
def ready_socket() -> Iterator[socket.socket]:
    a, b = socket.socketpair()
    b.send(b"x")
    try:
        yield a
    finally:
        a.close()
        b.close()


def test_the_wait_bound_is_accepted_by_every_wait_the_options_reach(
    ready_socket: socket.socket,
) -> None:
    # Each call validates its timeout before it would block, and returns at once here.
    assert threading.Lock().acquire(timeout=MAX_WAIT)
    done = threading.Thread(target=lambda: None)
    done.start()
    done.join(MAX_WAIT)
    with selectors.DefaultSelector() as selector:  # dnspython's and Happy Eyeballs' waits
        selector.register(ready_socket, selectors.EVENT_READ)
        assert selector.select(MAX_WAIT)
    with selectors.PollSelector() as selector:
        selector.register(ready_socket, selectors.EVENT_READ)
        assert selector.select(MAX_WAIT)
    ready_socket.settimeout(MAX_WAIT)
    # The lifetimes: a sum of a few added to a clock still fits a thread wait.
    assert 4 * MAX_LIFETIME + 2e9 < threading.TIMEOUT_MAX


def test_the_selectors_cap_is_real(ready_socket: socket.socket) -> None:
    """Why MAX_WAIT is not threading.TIMEOUT_MAX: epoll refuses 2**31 ms and more."""
    with selectors.DefaultSelector() as selector:
        selector.register(ready_socket, selectors.EVENT_READ)
        with pytest.raises(OverflowError):
            selector.select(2**31 / 1000 + 1)


# --- end to end: a process with the worst values set still answers every call ---

WORST = {
    "PYTHONDNSCACHE": "1",
    "PYTHONDNSCACHE_BACKEND": "dnspython",
    # Tiny lifetimes: every answer is expired at once, so every call goes through the
    # expired path, where a caller waits up to resolve_timeout for the refresh ...
    "PYTHONDNSCACHE_TTL": "1e-300",
    "PYTHONDNSCACHE_MAX_TTL": "1e-300",
    "PYTHONDNSCACHE_REFRESH_AT": "1e-300",
    # ... which, like every wait, is set far past what select() and Event.wait() take.
    "PYTHONDNSCACHE_RESOLVE_TIMEOUT": "1e10",
    "PYTHONDNSCACHE_HAPPY_EYEBALLS_DELAY": "1e10",
    "PYTHONDNSCACHE_CLEANUP_INTERVAL": "1e-300",
    "PYTHONDNSCACHE_STALE_TTL": "1e300",
    "PYTHONDNSCACHE_NEGATIVE_TTL": "1e300",
    "PYTHONDNSCACHE_FAILURE_PENALTY": "1e300",
    "PYTHONDNSCACHE_PERSIST_MAX_AGE": "1e300",
    "PYTHONDNSCACHE_MIN_TTL": "0",
}

SCRIPT = textwrap.dedent(
    """
    import json, socket, sys, threading, time
    import dnscache

    results = {"installed": dnscache.is_installed()}
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        for i in range(3):  # a miss, then the expired path (twice)
            infos = socket.getaddrinfo("host.test", port)
            results.setdefault("addresses", sorted({ai[4][0] for ai in infos}))
            time.sleep(0.05)
        for i in range(2):  # a negative answer, then the cached one
            try:
                socket.getaddrinfo("missing.test", 80)
            except socket.gaierror as exc:
                results.setdefault("missing", []).append(exc.errno)
        with socket.create_connection(("host.test", port), timeout=5) as conn:
            results["connected"] = conn.getpeername()[0]
        system = dnscache.Resolver(
            config=dnscache.active_resolver().config.replace(backend="system")
        )
        try:
            for i in range(2):
                system.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
                time.sleep(0.05)
            results["system"] = "ok"
        finally:
            system.close()
        results["config"] = {
            name: getattr(dnscache.active_resolver().config, name)
            for name in ("resolve_timeout", "happy_eyeballs_delay", "cleanup_interval",
                         "stale_ttl", "ttl")
        }
    finally:
        listener.close()
        dnscache.uninstall()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        t.name.startswith("dnscache") for t in threading.enumerate()
    ):
        time.sleep(0.05)
    results["threads_left"] = sorted(
        t.name for t in threading.enumerate() if t.name.startswith("dnscache")
    )
    print(json.dumps(results))
    """
)


def test_worst_environment_values_leave_every_call_working(dns_server: DNSServer) -> None:
    dns_server.set("host.test", a=["127.0.0.1"], aaaa=["::1"], ttl=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")}
    env.update(WORST, PYTHONDNSCACHE_NAMESERVERS=f"127.0.0.1:{dns_server.port}")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results["installed"] is True
    assert results["addresses"] == ["127.0.0.1", "::1"]
    assert results["missing"] == [socket.EAI_NONAME] * 2
    assert results["connected"] == "127.0.0.1"
    assert results["system"] == "ok"
    assert results["config"] == {
        "resolve_timeout": MAX_WAIT,
        "happy_eyeballs_delay": MAX_WAIT,
        "cleanup_interval": MIN_CLEANUP_INTERVAL,
        "stale_ttl": MAX_LIFETIME,
        "ttl": 1e-300,
    }
    assert results["threads_left"] == []
    # One line per clamped variable, naming it; nothing else on stderr (no traceback).
    clamped = [line for line in proc.stderr.splitlines() if line.strip()]
    named = sorted(v for v in WORST if any(f"{v}=" in line for line in clamped))
    assert named == sorted(
        f"PYTHONDNSCACHE_{n}"
        for n in (
            "RESOLVE_TIMEOUT",
            "HAPPY_EYEBALLS_DELAY",
            "CLEANUP_INTERVAL",
            "STALE_TTL",
            "NEGATIVE_TTL",
            "FAILURE_PENALTY",
            "PERSIST_MAX_AGE",
        )
    ), proc.stderr
    assert len(clamped) == len(named), proc.stderr
