"""Fixtures for the whole suite: leak checks on every test, and a loopback DNS server.

The leak check is autouse: a test fails if, after it, dnscache is still installed,
``socket.getaddrinfo``/``socket.create_connection`` are not the functions this module
saw at import, or a thread whose name starts with ``dnscache`` (started during the
test) is still alive after a grace period. Whatever leaked is cleaned up first, so
one leaky test does not make the rest of the suite fail with it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import settings

import dnscache
from dnscache._tools.dnsserver import DNSServer

# Under CI, every property test draws the same examples on every run (hypothesis'
# advice for CI): main stays green or red for a reason, not a seed. A developer's
# run draws new ones; what it finds becomes an @example.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")

# A run started with PYTHONDNSCACHE=1 has the cache installed by the .pth before
# pytest starts: take it off, so "the originals" really are the originals.
if dnscache.is_installed():
    dnscache.uninstall()
    while dnscache.is_installed():  # patched() layers cannot exist yet, but be exact
        dnscache._activation.patch._pop(dnscache._activation.patch._layers[-1])

ORIGINAL_GETADDRINFO = socket.getaddrinfo
ORIGINAL_CREATE_CONNECTION = socket.create_connection

THREAD_PREFIX = "dnscache"
THREAD_GRACE = 1.0  # seconds a test's dnscache threads get to finish after it ends


def _dnscache_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX) and t.is_alive()}


def _restore() -> list[str]:
    """Undo every kind of leak; return a description of each."""
    problems = []
    if dnscache.is_installed():
        problems.append("dnscache is still installed (install() or patched() not undone)")
        layers = dnscache._activation.patch._layers
        while layers:
            layer = layers[-1]
            try:
                dnscache._activation.patch._pop(layer)
            except Warning:  # warnings are errors in this suite; finish the job by hand
                if layer in layers:
                    layers.remove(layer)
                layer.resolver.close()
    if socket.getaddrinfo is not ORIGINAL_GETADDRINFO:
        problems.append(f"socket.getaddrinfo is {socket.getaddrinfo!r}, not the original")
        socket.getaddrinfo = ORIGINAL_GETADDRINFO
    if socket.create_connection is not ORIGINAL_CREATE_CONNECTION:
        problems.append(
            f"socket.create_connection is {socket.create_connection!r}, not the original"
        )
        socket.create_connection = ORIGINAL_CREATE_CONNECTION
    return problems


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    """Fail a test that leaves dnscache installed, socket patched or dnscache threads alive."""
    before = _dnscache_threads()
    yield
    problems = _restore()
    deadline = time.monotonic() + THREAD_GRACE
    leaked = _dnscache_threads() - before
    while leaked and time.monotonic() < deadline:
        time.sleep(0.01)
        leaked = {t for t in leaked if t.is_alive()}
    if leaked:
        names = sorted(t.name for t in leaked)
        problems.append(f"dnscache threads still alive {THREAD_GRACE}s after the test: {names}")
    if problems:
        pytest.fail("leak: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def dns_server() -> Iterator[DNSServer]:
    """A started loopback DNS server (``dnscache.testing.DNSServer``), stopped afterwards."""
    server = DNSServer(default_ttl=60).start()
    try:
        yield server
    finally:
        server.stop()
