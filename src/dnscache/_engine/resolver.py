"""Resolver: a cached ``getaddrinfo`` with the original's exact contract, wired from parts.

The facade builds and connects the parts, and answers the public API:

* ``hitpath``: the lock-free closure that answers cached calls;
* ``calls``: the slow path (arguments to entry keys, entries to finished views);
* ``lookup``: the executor of ``_core.decide`` (single flight, refresh,
  serve-stale), with ``background`` for the work no caller waits on;
* ``_cache.store``: entries, views, recency, flights;
* a backend from ``_sources`` (libc or dnspython), the resolver's files
  (``_sources.sysfiles``), address health (``_connect.health``) and the
  persistent layer (``persisted``).

See ARCHITECTURE.md for the path of a hit, a miss, a refresh and a connect.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Unpack

from .._cache.entries import Entry
from .._cache.store import Store
from .._connect import happy_eyeballs
from .._connect.connector import Connector, health_name, make_create_connection
from .._connect.health import AddressHealth, Record
from .._core import addrinfo as ai
from .._core.config import Config, check_options, make_config

if TYPE_CHECKING:
    from .._core.options import Options
    from .._sources.ttl import TtlLearner
from .._core.names import bare, encode_host, lookup_bound
from .._sources.answer import Backend
from .._sources.originals import get_original
from .._sources.sysfiles import SystemFiles
from .._sources.system import SystemBackend
from . import lifecycle, trace
from .background import Background
from .calls import Calls
from .hitpath import make_hit_path
from .lookup import Lookups
from .persisted import Persisted
from .stats import Counters, Durations, Stats


class Resolver:
    """A caching resolver with ``socket.getaddrinfo``'s exact contract.

    Usable on its own (``Resolver().getaddrinfo(...)``) or installed in place of
    ``socket.getaddrinfo`` by :func:`dnscache.install` / :func:`dnscache.patched`.
    Thread-safe: hits take no lock; misses on one key make one upstream lookup.
    """

    getaddrinfo: Callable[..., list[ai.AddrInfo]]
    create_connection: Callable[..., socket.socket]
    traced: bool  # trace=True took effect: spans, events and dns.lookup.duration are recorded

    def __init__(
        self,
        config: Config | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        _original: ai.GetAddrInfo | None = None,
        _files: SystemFiles | None = None,
        _wrap_backend: Callable[[Backend], Backend] | None = None,
        **options: Unpack[Options],
    ) -> None:
        # The underscored keywords are injection points for tests (a counting
        # original, files at other paths, a scripted backend), as the clock is.
        check_options(options, "Resolver()")
        self.config = config = make_config(config, options)
        self._clock = clock
        self._original: ai.GetAddrInfo = _original or get_original("getaddrinfo")
        self._store = Store(config.maxsize, config.max_views, clock)
        self._files = _files or SystemFiles(clock=clock)
        self._backend = self._make_backend()
        if _wrap_backend is not None:
            self._backend = _wrap_backend(self._backend)
        self._health = AddressHealth(clock=clock)
        self._background = Background()
        self._persisted = Persisted(config)
        self._telemetry = trace.get_telemetry(config.trace)
        self.traced = self._telemetry is not None  # spans and events are recorded
        # Traced, the counters also mark which calls the cache answered (hit events).
        self._counters = Counters() if self._telemetry is None else trace.MarkingCounters()
        self._learner: TtlLearner | None = None
        if config.backend == "system" and config.ttl_source == "dns":  # dnspython loads then
            from .._sources.ttl import TtlLearner

            self._learner = TtlLearner.from_config(config, self._hosts_names)
        self._lookups = Lookups(
            config=config,
            store=self._store,
            backend=self._backend,
            background=self._background,
            counters=self._counters,
            persisted=self._persisted,
            health=self._health,
            clock=clock,
            bound=self._lookup_bound,
            telemetry=self._telemetry,
            learner=self._learner,
        )
        calls = Calls(
            config=config,
            original=self._original,
            store=self._store,
            lookups=self._lookups,
            files=self._files,
            health=self._health,
            persisted=self._persisted,
            counters=self._counters,
            clock=clock,
        )
        self._closed = False
        self.getaddrinfo = _as_getaddrinfo(
            make_hit_path(self._store, clock, self._counters, calls.call), self._original
        )
        self._peek = make_hit_path(self._store, clock, self._counters, _no_answer)
        if self._telemetry is not None:  # untraced, the hit path is not even wrapped
            self.getaddrinfo = trace.traced(self.getaddrinfo)
            self._peek = trace.traced(self._peek)
        self.connector = Connector(
            self.getaddrinfo,  # exactly the function installed as socket.getaddrinfo
            self._health,
            original=self._original,
            delay=config.happy_eyeballs_delay,
            on_health_changed=self._health_changed,
            on_connected=self._connected,
        )
        self.create_connection = make_create_connection(
            self.connector, get_original("create_connection")
        )
        lifecycle.track(self)

    def _make_backend(self) -> Backend:
        system = SystemBackend(self._original)
        if self.config.backend != "dnspython":
            return system
        from .._sources.dnspython import DnspythonBackend  # only for this backend

        return DnspythonBackend.from_config(self.config, system, self._hosts_names)

    def _hosts_names(self) -> frozenset[bytes]:
        return self._files.facts.hosts_names

    def _lookup_bound(self) -> float:
        """Seconds one upstream lookup may take at most (a waiter's patience)."""
        if self.config.backend == "dnspython":
            from .._sources.dnspython import lifetime_for

            return lifetime_for(self.config.resolve_timeout)
        return lookup_bound(self._files.facts)

    # --- the public API ---

    def peek(
        self, host: Any, port: Any, family: Any = 0, type: Any = 0, proto: Any = 0, flags: Any = 0
    ) -> list[ai.AddrInfo] | None:
        """A fresh cached result for exactly these arguments, or None; never looks anything up.

        Raises the cached gaierror for a fresh negative answer, as getaddrinfo would.
        """
        return self._peek(host, port, family, type, proto, flags)  # type: ignore[no-any-return]

    def connect(
        self,
        host: Any,
        port: Any,
        timeout: Any = happy_eyeballs._GLOBAL_DEFAULT_TIMEOUT,
        source_address: Any = None,
        *,
        family: int = 0,
        all_errors: bool = False,
        socket_options: Any = None,
    ) -> socket.socket:
        """Resolve ``host`` through the cache and connect with Happy Eyeballs (RFC 8305).

        Each attempt's outcome is remembered per address, so an address that just
        failed is tried last next time, here and in what getaddrinfo returns.
        """
        return self.connector.connect(
            host,
            port,
            timeout,
            source_address,
            family=family,
            all_errors=all_errors,
            socket_options=socket_options,
        )

    def lookup(self, host: str | bytes, family: int = 0) -> list[str]:
        """The IP addresses of ``host`` as strings, in the resolver's order (raises gaierror)."""
        result = self.getaddrinfo(host, None, family, socket.SOCK_STREAM)
        return ai.ip_strings(ai.addresses_of(result))

    def stats(self) -> Stats:
        store = self._store
        with store.lock:
            entries = len(store)
        return self._counters.snapshot(store.evictions, entries)

    def lookup_durations(self) -> Durations:
        """How long this resolver's upstream lookups took (misses and refreshes): a histogram."""
        return self._counters.durations.snapshot()

    def invalidate(self, host: str | bytes | None = None) -> None:
        """Forget ``host`` (every family and spelling), or everything when None."""
        store = self._store
        with store.lock:
            if host is None:
                store.clear()
                return
            for entry in store.of_host(bare(encode_host(host))):
                store.remove(entry.key)

    def address_health(self, host: str | bytes) -> dict[str, Record]:
        """What connects to ``host``'s addresses taught: {ip: Record} (monotonic times).

        Each ``Record`` has ``last_success`` and ``last_failure`` (None for never);
        ``dnscache dump`` shows it. Empty for a host never connected to.
        """
        name = health_name(host)
        return {} if name is None else self._health.records(name)

    # --- connect outcomes (called by the connector, with no lock held) ---

    def _health_changed(self, name: str) -> None:
        """``name``'s address order may have changed: re-publish that host's views only."""
        store = self._store
        with store.lock:
            for entry in store.of_host(name.encode("ascii", "surrogateescape")):
                store.drop_views(entry)

    def _connected(self, name: str, ip: str) -> None:
        self._persisted.connected(name.encode("ascii", "surrogateescape"), ip)

    def entries(self) -> Iterator[Entry]:
        """A snapshot of what is cached, one object per (host, family, flags).

        Each has ``name``, ``addresses`` ((family, sockaddr) pairs), ``source``
        ("upstream", "override", "persisted", "preload"), ``error`` (errno and
        message of a cached failure, or None), ``life`` (monotonic born /
        refresh_at / expires / stale_until) and ``hits``. Read-only by contract.
        ``hits`` counts the calls the slow path served from the entry (a view's
        first call, revalidations): the lock-free hit path counts only in
        ``stats().hits``, to stay a dict lookup and a copy.
        """
        with self._store.lock:
            return iter(list(self._store))

    def close(self) -> None:
        """Stop background work and join its threads (within about a second). Idempotent.

        A closed resolver still answers: what background workers did (refreshes,
        bounded waits for a stale answer) callers then do in their own thread.
        """
        self._closed = True
        # Order matters: workers must stop taking jobs before the backend is closed
        # (a queued refresh run against a closed backend would mark a healthy name as
        # failing); then closing the backend wakes the lookups the workers are stuck
        # in, so that joining them is prompt.
        self._background.shutdown()  # ends the flights of every job it drops
        self._backend.close()
        if self._learner is not None:
            self._learner.close()
        self._background.close()
        self._persisted.close()  # flushes queued writes
        lifecycle.forget(self)

    def background_threads(self) -> list[Any]:
        """The threads this resolver runs now (for tests and ``doctor``)."""
        return self._background.threads()

    # --- fork (called by lifecycle for every live resolver) ---

    def _before_fork(self) -> None:
        self._fork_locked = self._store.lock.acquire(timeout=1.0)

    def _after_fork_in_parent(self) -> None:
        if getattr(self, "_fork_locked", False):
            self._fork_locked = False
            self._store.lock.release()

    def _after_fork_in_child(self) -> None:
        # The child has only the forking thread: no workers, no flights, and
        # locks that may have been held by threads that no longer exist.
        self._fork_locked = False
        self._store.reset_after_fork()
        self._files.reset_after_fork()
        self._background.after_fork_in_child()
        self._backend.after_fork_in_child()
        if self._learner is not None:
            self._learner.after_fork_in_child()
        self._health.after_fork_in_child()
        self._persisted.reset_after_fork()
        self._counters.durations.reset_after_fork()

    def __enter__(self) -> Resolver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<dnscache.Resolver entries={len(self._store)} {self.stats()}>"


def _no_answer(*_args: Any) -> None:
    return None


def _as_getaddrinfo(func: Any, original: ai.GetAddrInfo) -> Any:
    # The name is what Python puts in its own TypeErrors ("getaddrinfo() missing 1
    # required positional argument: 'port'"): the same text as the original's.
    func.__name__ = func.__qualname__ = "getaddrinfo"
    func.__doc__ = socket.getaddrinfo.__doc__
    func.__wrapped__ = original
    func.__dnscache__ = True
    return func


__all__ = ["Resolver", "Stats"]
