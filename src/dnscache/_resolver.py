"""Resolver: a cached ``getaddrinfo`` with the original's exact contract.

The hit path (``Resolver.getaddrinfo``) is a closure over local references: it
builds a key from the caller's arguments, looks it up in the store's ``front``
dict, checks one time stamp, records the read and returns a copy of the
finished result. Everything else (validation, misses, refresh, negative
answers) happens in ``_slow``.

The key is type-tagged so that equal-but-different arguments never share a
view: ``80`` and ``80.0`` hash alike, but the original rejects a float port, so
the port's class is part of the key, and ``family | 0`` (and the same for
type, proto and flags) raises ``TypeError`` for anything the original would
not take as an integer, sending it to the slow path, which lets the original
raise its own exception. A ``str`` subclass needs no tag: CPython encodes hosts
with the C codec, not the subclass's ``encode``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from . import _addrinfo as ai
from . import _connect
from ._backends import Answer, Backend, SystemBackend
from ._config import Config, make_config
from ._names import SystemFiles, encode_host, host_key
from ._originals import get_original
from ._policy import (
    Freshness,
    lifetime,
    negative_lifetime,
    permanent_lifetime,
)
from ._store import Entry, EntryKey, Flight, RawKey, Store, View

log = logging.getLogger("dnscache")

# gaierrors that describe the name (or the resolver's reachability), and so may
# be cached. Errors about the arguments (EAI_BADFLAGS, EAI_SERVICE, ...) never
# reach here (the probe catches them) and EAI_MEMORY/EAI_SYSTEM are not answers.
CACHEABLE_ERRORS = frozenset(
    getattr(socket, name)
    for name in ("EAI_NONAME", "EAI_NODATA", "EAI_AGAIN", "EAI_FAIL", "EAI_ADDRFAMILY")
    if hasattr(socket, name)
)
_NONAME = (socket.EAI_NONAME, "Name or service not known")


@dataclass(frozen=True)
class Stats:
    """Counters since the Resolver was created."""

    hits: int = 0
    misses: int = 0
    negative_hits: int = 0
    stale_hits: int = 0
    refreshes: int = 0
    refresh_failures: int = 0
    evictions: int = 0
    persisted_hits: int = 0
    lookups: int = 0  # upstream lookups made (misses and refreshes)
    entries: int = 0  # entries held now


def _call_hook(hook: Callable[..., object] | None, *args: Any) -> None:
    """Run a user hook; a hook that raises is logged, never propagated."""
    if hook is None:
        return
    try:
        hook(*args)
    except Exception:
        log.exception("dnscache: hook %r raised; ignored", hook)


class Resolver:
    """A caching resolver with ``socket.getaddrinfo``'s exact contract.

    Usable on its own (``Resolver().getaddrinfo(...)``) or installed in place of
    ``socket.getaddrinfo`` by :func:`dnscache.install` / :func:`dnscache.patched`.
    Thread-safe: hits take no lock; misses on one key make one upstream lookup.
    """

    getaddrinfo: Callable[..., list[ai.AddrInfo]]
    create_connection: Callable[..., socket.socket]

    def __init__(
        self,
        config: Config | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        **options: Any,
    ) -> None:
        self.config = make_config(config, options)
        self._clock = clock
        self._original: ai.GetAddrInfo = get_original("getaddrinfo")
        self._store = Store(self.config.maxsize)
        self._files = SystemFiles(clock=clock)
        self._backend: Backend = SystemBackend(self._original)
        self._overrides = {
            encode_host(name).lower().rstrip(b"."): ips for name, ips in self.config.hosts.items()
        }
        self._hits = 0
        self._negative_hits = 0
        self._misses = 0
        self._lookups = 0
        self._closed = False
        self.getaddrinfo = self._make_getaddrinfo()  # type: ignore[method-assign]
        self.create_connection = self._make_create_connection()  # type: ignore[method-assign]

    # --- the hit path ---

    def _make_getaddrinfo(self) -> Callable[..., list[ai.AddrInfo]]:
        front_get = self._store.front.get
        record_read = self._store.reads.append
        clock = self._clock
        slow = self._slow
        gaierror = socket.gaierror
        resolver = self

        def getaddrinfo(
            host: Any, port: Any, family: Any = 0, type: Any = 0, proto: Any = 0, flags: Any = 0
        ) -> list[ai.AddrInfo]:
            try:
                key = (host, port, port.__class__, family | 0, type | 0, proto | 0, flags | 0)
                view = front_get(key)
            except TypeError:  # unhashable or not an integer: the original says what is wrong
                return slow(host, port, family, type, proto, flags, None)
            if view is not None:
                entry = view.entry
                if clock() < entry.serve_until:
                    record_read(entry.key)
                    result = view.result
                    if result is not None:
                        resolver._hits += 1
                        return result.copy()
                    resolver._negative_hits += 1
                    raise gaierror(*view.error)  # type: ignore[misc]
            return slow(host, port, family, type, proto, flags, key)

        getaddrinfo.__doc__ = socket.getaddrinfo.__doc__
        getaddrinfo.__wrapped__ = self._original  # type: ignore[attr-defined]
        getaddrinfo.__dnscache__ = True  # type: ignore[attr-defined]
        return getaddrinfo

    def _make_create_connection(self) -> Callable[..., socket.socket]:
        getaddrinfo = self.getaddrinfo

        def create_connection(
            address: tuple[Any, Any],
            timeout: Any = _connect._GLOBAL_DEFAULT_TIMEOUT,
            source_address: Any = None,
            *,
            all_errors: bool = False,
        ) -> socket.socket:
            return _connect.create_connection(
                getaddrinfo, address, timeout, source_address, all_errors=all_errors
            )

        create_connection.__doc__ = socket.create_connection.__doc__
        create_connection.__wrapped__ = get_original("create_connection")  # type: ignore[attr-defined]
        create_connection.__dnscache__ = True  # type: ignore[attr-defined]
        return create_connection

    # --- everything else ---

    def _slow(
        self, host: Any, port: Any, family: Any, type: Any, proto: Any, flags: Any, raw: RawKey | None
    ) -> list[ai.AddrInfo]:
        original = self._original
        if raw is None or self.config.disabled:
            return original(host, port, family, type, proto, flags)
        view = self._store.front.get(raw)
        if view is None:
            # Arguments not seen before: decide whether they are cacheable at all.
            if (
                not isinstance(host, str | bytes)
                or flags & socket.AI_NUMERICHOST
                or family not in ai.CACHED_FAMILIES
            ):
                return original(host, port, family, type, proto, flags)
            try:
                encoded = encode_host(host)
            except UnicodeError:
                return original(host, port, family, type, proto, flags)
            if not encoded or b"\0" in encoded:
                return original(host, port, family, type, proto, flags)
            try:
                ai.probe_args(original, port, family, type, proto, flags)
            except Exception:
                return original(host, port, family, type, proto, flags)
            if ai.is_numeric_host(original, encoded):
                return original(host, port, family, type, proto, flags)
            now = self._clock()
            self._check_files(now)
            ekey: EntryKey = (
                host_key(encoded, self._files.facts),
                int(family),
                ai.entry_flags(int(flags)),
            )
        else:
            now = self._clock()
            self._check_files(now)
            ekey = view.entry.key
        entry = self._entry_for(ekey, now)
        if view is None or view.entry is not entry:
            view = self._make_view(entry, port, type, proto, flags)
            with self._store.lock:
                self._store.add_view(raw, view)
        if view.result is not None:
            return view.result.copy()
        raise socket.gaierror(*view.error)  # type: ignore[misc]

    def _make_view(self, entry: Entry, port: Any, type: Any, proto: Any, flags: Any) -> View:
        if entry.error is not None:
            return View(entry, None, entry.error)
        result = ai.synthesize(
            self._original, entry.addresses, entry.canonname, port, type, proto, flags
        )
        return View(entry, result, None)

    def _check_files(self, now: float) -> None:
        """Drop everything when hosts/resolv.conf/nsswitch change, as nscd does."""
        if self._files.check(now):
            log.debug("dnscache: resolver configuration changed; cache cleared")
            with self._store.lock:
                self._store.clear()

    def _entry_for(self, ekey: EntryKey, now: float) -> Entry:
        """The entry to answer from, looking up upstream (once for all callers) if needed."""
        store = self._store
        while True:
            with store.lock:
                entry = store.get(ekey)
                if entry is None and ekey[0].rstrip(b".") in self._overrides:
                    entry = store.put(self._override_entry(ekey, now))
                if entry is not None:
                    state = entry.life.classify(now)
                    if state is Freshness.FRESH or state is Freshness.REFRESH_DUE:
                        self._count_hit(entry)
                        return entry
                flight, leader = store.begin(ekey)
            if leader:
                return self._lead(ekey, flight)
            flight.done.wait()
            if flight.entry is not None:
                self._count_hit(flight.entry, joined=True)
                return flight.entry
            # The leader ended without an answer (interrupted, or an uncacheable
            # error it raised to its own caller): try again, perhaps as leader.
            now = self._clock()

    def _count_hit(self, entry: Entry, joined: bool = False) -> None:
        if joined:
            self._misses += 1
        elif entry.error is not None:
            self._negative_hits += 1
        else:
            self._hits += 1
        entry.hits += 1

    def _lead(self, ekey: EntryKey, flight: Flight) -> Entry:
        """Look ``ekey`` up upstream as the leader of ``flight``; always ends the flight."""
        store = self._store
        self._misses += 1
        name = ekey[0].decode("ascii", "replace")
        _call_hook(self.config.on_cache_miss, name)
        entry: Entry | None = None
        previous: Entry | None = None
        try:
            entry = self._fetch(ekey, name)
        finally:
            with store.lock:
                previous = store.get(ekey)
                stored = store.end(ekey, flight, entry)
            flight.done.set()
        assert stored is not None  # _fetch returned, so entry is set
        self._notify_change(previous, stored)
        return stored

    def _fetch(self, ekey: EntryKey, name: str) -> Entry:
        """One upstream lookup turned into an entry (a cacheable gaierror becomes a negative one)."""
        self._lookups += 1
        host, family, flags = ekey
        try:
            answer = self._backend.resolve(host, family, flags)
        except socket.gaierror as exc:
            if exc.errno not in CACHEABLE_ERRORS:
                raise
            now = self._clock()
            return Entry(
                ekey, name, (), "", (exc.errno, exc.strerror), negative_lifetime(now, self.config.negative_ttl), "upstream"
            )
        return self._positive(ekey, name, answer, self._clock(), "upstream")

    def _positive(self, ekey: EntryKey, name: str, answer: Answer, now: float, source: str) -> Entry:
        ttl = self.config.ttl if answer.ttl is None else answer.ttl
        return Entry(ekey, name, answer.addresses, answer.canonname, None, lifetime(now, ttl), source)

    def _notify_change(self, previous: Entry | None, current: Entry) -> None:
        if previous is None or previous is current or current.error is not None:
            return
        if previous.error is not None:
            return
        old, new = ai.ip_strings(previous.addresses), ai.ip_strings(current.addresses)
        if set(old) != set(new):
            _call_hook(self.config.on_change, current.name, new)

    def _override_entry(self, ekey: EntryKey, now: float) -> Entry:
        """An entry from Config.hosts, filtered to the family as the system would."""
        host, family, flags = ekey
        ips = self._overrides[host.rstrip(b".")]
        v4 = [(socket.AF_INET, (ip, 0)) for ip in ips if ":" not in ip]
        v6 = [(socket.AF_INET6, (ip, 0, 0, 0)) for ip in ips if ":" in ip]
        addresses: list[ai.Address]
        if family == socket.AF_INET:
            addresses = v4
        elif family == socket.AF_INET6:
            addresses = v6
            if flags & socket.AI_V4MAPPED and (not v6 or flags & socket.AI_ALL):
                addresses += [(socket.AF_INET6, (f"::ffff:{a[1][0]}", 0, 0, 0)) for a in v4]
        else:
            addresses = [(socket.AF_INET6, (ip, 0, 0, 0)) if ":" in ip else (socket.AF_INET, (ip, 0)) for ip in ips]
        name = host.decode("ascii", "replace")
        life = permanent_lifetime(now)
        if not addresses:
            return Entry(ekey, name, (), "", _NONAME, life, "override")
        return Entry(ekey, name, tuple(addresses), name, None, life, "override")

    # --- public API beyond getaddrinfo ---

    def lookup(self, host: str | bytes, family: int = 0) -> list[str]:
        """The IP addresses of ``host`` as strings, in the resolver's order (raises gaierror)."""
        result = self.getaddrinfo(host, None, family, socket.SOCK_STREAM)
        return ai.ip_strings(ai.addresses_of(result))

    def stats(self) -> Stats:
        return Stats(
            hits=self._hits,
            misses=self._misses,
            negative_hits=self._negative_hits,
            evictions=self._store.evictions,
            lookups=self._lookups,
            entries=len(self._store),
        )

    def invalidate(self, host: str | bytes | None = None) -> None:
        """Forget ``host`` (every family and spelling), or everything when None."""
        store = self._store
        with store.lock:
            if host is None:
                store.clear()
                return
            bare = encode_host(host).lower().rstrip(b".")
            for key in store.keys():
                if key[0].rstrip(b".") == bare:
                    store.remove(key)

    def entries(self) -> Iterator[Entry]:
        with self._store.lock:
            return iter(list(self._store))

    def close(self) -> None:
        """Stop background work. Idempotent; the resolver still answers (uncached work stops)."""
        self._closed = True
        self._backend.close()

    def __enter__(self) -> Resolver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<dnscache.Resolver entries={len(self._store)} {self.stats()}>"
