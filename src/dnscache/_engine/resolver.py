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

import atexit
import logging
import math
import os
import socket
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .._cache.store import Entry, EntryKey, Flight, RawKey, Store, View
from .._connect import happy_eyeballs as _connect
from .._connect.connector import Connector, make_create_connection
from .._connect.health import AddressHealth, order_addrinfos, order_expires_at
from .._core import addrinfo as ai
from .._core.config import Config, make_config
from .._core.names import bare, encode_host, host_key
from .._core.policy import (
    Freshness,
    Lifetime,
    clamp_ttl,
    lifetime,
    negative_lifetime,
    permanent_lifetime,
)
from .._engine import trace as _trace
from .._engine.background import Background
from .._sources.answer import Answer, Backend
from .._sources.dnspython import DnspythonBackend
from .._sources.originals import get_original
from .._sources.persist.store import PersistentStore, fallback_order, merge_order
from .._sources.sysfiles import SystemFiles
from .._sources.system import SystemBackend

log = logging.getLogger("dnscache")

# gaierrors that describe the name (or the resolver's reachability), and so may
# be cached. Errors about the arguments (EAI_BADFLAGS, EAI_SERVICE, ...) never
# reach here (the probe catches them) and EAI_MEMORY/EAI_SYSTEM are not answers.
CACHEABLE_ERRORS = frozenset(
    getattr(socket, name)
    for name in ("EAI_NONAME", "EAI_NODATA", "EAI_AGAIN", "EAI_FAIL", "EAI_ADDRFAMILY")
    if hasattr(socket, name)
)
# Of those, the ones that say "the resolver could not answer", as opposed to
# "the name has no address": only these may be papered over with a stale answer
# (RFC 8767 section 4: NXDOMAIN is an answer and is never masked).
TRANSIENT_ERRORS = frozenset({socket.EAI_AGAIN, socket.EAI_FAIL})
_NONAME = (socket.EAI_NONAME, "Name or service not known")
# While serving stale, the upstream is retried at most this often (RFC 8767
# section 5 suggests a "failure recheck timer" of 30 s; we retry sooner because a
# client library sees few names and an outage usually ends in seconds).
STALE_RETRY = 5.0
# Argument tuples already found not cacheable (IP literals above all) are
# remembered, so such a call costs the original's time plus a dict lookup, not a
# probe and a numeric check each time. Cleared when full.
MAX_PASSTHROUGH = 1024


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


def _by_key(mapping: Any) -> dict[bytes, tuple[str, ...]]:
    """A Config host mapping keyed like the cache (IDNA, lower case, no final dot)."""
    return {bare(encode_host(name)): ips for name, ips in mapping.items()}


def _addresses_for(ips: Any, family: int, flags: int) -> list[ai.Address]:
    """IP strings as cache addresses for ``family``, filtered and mapped as glibc would."""
    inet, inet6 = int(socket.AF_INET), int(socket.AF_INET6)
    both: list[ai.Address] = [
        (inet6, (ip, 0, 0, 0)) if ":" in ip else (inet, (ip, 0)) for ip in ips
    ]
    if family == socket.AF_INET:
        return [a for a in both if a[0] == inet]
    if family == socket.AF_INET6:
        v6 = [a for a in both if a[0] == inet6]
        if flags & socket.AI_V4MAPPED and (not v6 or flags & socket.AI_ALL):
            v6 += [(inet6, (f"::ffff:{a[1][0]}", 0, 0, 0)) for a in both if a[0] == inet]
        return v6
    return both


def _outcome(entry: Entry | None) -> str:
    if entry is None:
        return "kept-old-answer"
    if entry.error is not None:
        return f"error {entry.error[0]}"
    return " ".join(ai.ip_strings(entry.addresses))


# Hooks that raised already, by id, holding the hook itself: while it is held its
# id cannot be reused by another function (whose first failure must be loud too).
_failed_hooks: dict[int, Callable[..., object]] = {}


def _call_hook(hook: Callable[..., object] | None, *args: Any) -> None:
    """Run a user hook; a hook that raises is logged (with its traceback once), never raised."""
    if hook is None:
        return
    try:
        hook(*args)
    except Exception:
        if _failed_hooks.get(id(hook)) is hook:
            log.debug("dnscache: hook %r raised again; ignored", hook, exc_info=True)
        else:
            if len(_failed_hooks) >= 256:  # bounded: forget, and log loudly once more
                _failed_hooks.clear()
            _failed_hooks[id(hook)] = hook
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
        system = SystemBackend(self._original)
        self._backend: Backend = system
        if self.config.backend == "dnspython":
            self._backend = DnspythonBackend(
                system,
                lambda: self._files.facts.hosts_names,
                self.config.nameservers,
                lifetime=max(self.config.resolve_timeout, 5.0),
            )
        self._health = AddressHealth(clock=clock)
        self._background = Background(periodic=self._sweep, interval=self.config.cleanup_interval)
        self._overrides = _by_key(self.config.hosts)
        self._preload = _by_key(self.config.preload)
        self._persist = (
            PersistentStore(self.config.persist, max_age=self.config.persist_max_age)
            if self.config.persist
            else None
        )
        self._hits = 0
        self._negative_hits = 0
        self._misses = 0
        self._lookups = 0
        self._stale_hits = 0
        self._refreshes = 0
        self._refresh_failures = 0
        self._persisted_hits = 0
        self._passthrough: dict[RawKey, None] = {}
        self._closed = False
        _live.add(self)
        self._tracer = _trace.get_tracer(self.config.trace)
        self.getaddrinfo = self._make_getaddrinfo()
        if self._tracer is not None:
            self.getaddrinfo = _trace.traced_getaddrinfo(self.getaddrinfo, self)
        self._peek = self._hit_path(lambda *args: None)
        self.connector = Connector(
            self.getaddrinfo,
            self._health,
            original=self._original,
            delay=self.config.happy_eyeballs_delay,
            on_health_changed=self._health_changed,
            on_connected=self._persist.record_connected if self._persist is not None else None,
        )
        self.create_connection = make_create_connection(
            self.connector, get_original("create_connection")
        )

    # --- the hit path ---

    def _make_getaddrinfo(self) -> Callable[..., list[ai.AddrInfo]]:
        getaddrinfo = self._hit_path(self._slow)
        # The name is what Python puts in its own TypeErrors ("getaddrinfo() missing 1
        # required positional argument: 'port'"): the same text as the original's.
        getaddrinfo.__name__ = getaddrinfo.__qualname__ = "getaddrinfo"
        getaddrinfo.__doc__ = socket.getaddrinfo.__doc__
        getaddrinfo.__wrapped__ = self._original  # type: ignore[attr-defined]
        getaddrinfo.__dnscache__ = True  # type: ignore[attr-defined]
        return getaddrinfo

    def _hit_path(self, on_miss: Callable[..., Any]) -> Callable[..., Any]:
        """The hit path as a closure over local references; ``on_miss`` gets the rest."""
        front_get = self._store.front.get
        record_read = self._store.reads.append
        clock = self._clock
        gaierror = socket.gaierror
        resolver = self

        def getaddrinfo(
            host: Any, port: Any, family: Any = 0, type: Any = 0, proto: Any = 0, flags: Any = 0
        ) -> Any:
            try:
                key = (host, port, port.__class__, family | 0, type | 0, proto | 0, flags | 0)
                view = front_get(key)
            except TypeError:  # unhashable or not an integer: the original says what is wrong
                return on_miss(host, port, family, type, proto, flags, None)
            if view is not None:
                entry = view.entry
                now = clock()
                if now < entry.serve_until and now < view.until:
                    record_read(entry.key)
                    result = view.result
                    if result is not None:
                        resolver._hits += 1
                        return result.copy()
                    resolver._negative_hits += 1
                    raise gaierror(*view.error)  # type: ignore[misc]
            return on_miss(host, port, family, type, proto, flags, key)

        return getaddrinfo

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
        timeout: Any = _connect._GLOBAL_DEFAULT_TIMEOUT,
        source_address: Any = None,
        *,
        family: int = 0,
        all_errors: bool = False,
        socket_options: Any = None,
    ) -> socket.socket:
        """Resolve ``host`` through the cache and connect with Happy Eyeballs (RFC 8305)."""
        return self.connector.connect(
            host,
            port,
            timeout,
            source_address,
            family=family,
            all_errors=all_errors,
            socket_options=socket_options,
        )

    def _health_changed(self, host: str) -> None:
        """A connect outcome may have changed ``host``'s order: rebuild its cached results."""
        store = self._store
        with store.lock:
            for entry in store:
                if entry.host == host:
                    store.drop_views(entry)

    # --- everything else ---

    def _slow(
        self,
        host: Any,
        port: Any,
        family: Any,
        type: Any,
        proto: Any,
        flags: Any,
        raw: RawKey | None,
    ) -> list[ai.AddrInfo]:
        original = self._original
        if raw is None or self.config.disabled or raw in self._passthrough:
            return original(host, port, family, type, proto, flags)
        view = self._store.front.get(raw)
        now = self._clock()
        self._check_files(now)
        if view is not None:
            ekey = view.entry.key
        else:
            decided = self._key_for(host, port, family, type, proto, flags)
            if decided is None:
                if len(self._passthrough) >= MAX_PASSTHROUGH:
                    self._passthrough.clear()
                self._passthrough[raw] = None
                return original(host, port, family, type, proto, flags)
            ekey = decided
        entry = self._entry_for(ekey, now)
        if view is None or view.entry is not entry or now >= view.until:
            view = self._make_view(entry, port, type, proto, flags)
            with self._store.lock:
                self._store.add_view(raw, view)
        if view.result is not None:
            return view.result.copy()
        raise socket.gaierror(*view.error)  # type: ignore[misc]

    def _key_for(
        self, host: Any, port: Any, family: Any, type: Any, proto: Any, flags: Any
    ) -> EntryKey | None:
        """The entry key for arguments not seen before, or None: straight to the original.

        None for what is never cached (anything but a str/bytes host, AI_NUMERICHOST,
        other families, IP literals) and for whatever the original rejects (it then
        raises its own exception). The literal check comes first: it costs one numeric
        lookup and makes the argument probe pointless.
        """
        original = self._original
        if (
            not isinstance(host, str | bytes)
            or flags & socket.AI_NUMERICHOST
            or family not in ai.CACHED_FAMILIES
        ):
            return None
        try:
            encoded = encode_host(host)
        except UnicodeError:
            return None
        if not encoded or b"\0" in encoded or ai.is_numeric_host(original, encoded):
            return None
        try:
            ai.probe_args(original, port, family, type, proto, flags)
        except Exception:
            return None
        keep_case = bool(flags & socket.AI_CANONNAME)
        return (
            host_key(encoded, self._files.facts, keep_case=keep_case),
            int(family),
            ai.entry_flags(int(flags)),
        )

    def _make_view(self, entry: Entry, port: Any, type: Any, proto: Any, flags: Any) -> View:
        if entry.error is not None:
            return View(entry, None, entry.error)
        result = ai.synthesize(
            self._original, entry.addresses, entry.canonname, port, type, proto, flags
        )
        until = math.inf
        records = self._health.records(entry.host)
        if records:
            # Addresses that just failed to connect go last (and the one that last
            # worked first) until the penalty runs out: the view expires then.
            now = self._clock()
            penalty = self.config.failure_penalty
            result = order_addrinfos(result, records, now, penalty)
            until = order_expires_at(records, records, now, penalty)
        return View(entry, result, None, until)

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
            stale: Entry | None = None
            flight: Flight | None
            # Read the persistent layer (sqlite) before taking the store's lock, for a
            # name not in memory or only there expired (a long-running process's own
            # expired answer must not hide what the file knows).
            known = store.peek(ekey)
            usable = known is not None and known.life.classify(now) is not Freshness.EXPIRED
            fallback = None if usable else self._fallback_entry(ekey, now)
            with store.lock:
                entry = store.get(ekey)
                if entry is None and bare(ekey[0]) in self._overrides:
                    entry = store.put(self._override_entry(ekey, now))
                if fallback is not None and (
                    entry is None or entry.life.classify(now) is Freshness.EXPIRED
                ):
                    # A name we know from an earlier run (or the preload list): look it
                    # up as if its answer had just expired, so the caller waits at most
                    # resolve_timeout and an outage is bridged by the remembered answer.
                    entry = store.put(fallback)
                state = entry.life.classify(now) if entry is not None else Freshness.EXPIRED
                if entry is not None and state is Freshness.FRESH:
                    self._count_hit(entry)
                    return entry
                if entry is not None and state is Freshness.REFRESH_DUE:
                    # Refresh-ahead: answer now, refresh once in the background, and
                    # let hits take the fast path again until the answer expires.
                    self._count_hit(entry)
                    if entry.error is None:
                        flight, leader = self._start_background(ekey, urgent=False)
                        if leader:  # refused: skip this refresh, the answer is still good
                            store.end(ekey, flight, None)
                            flight.entry = entry
                            flight.done.set()
                        entry.serve_until = entry.life.expires
                    return entry
                if entry is not None and state is Freshness.STALE and entry.error is None:
                    if now < entry.retry_after:  # the upstream failed moments ago
                        self._count_stale(entry)
                        return entry
                    stale = entry
                    flight, leader = self._start_background(ekey)
                else:
                    flight, leader = store.begin(ekey, now)
            if stale is not None:
                if leader:  # no background worker took it (closed, or queue full)
                    got = self._complete(ekey, flight, background=False)
                    if got is not None and got is not stale:
                        return got
                    self._count_stale(stale)
                    return stale
                return self._await_or_stale(stale, flight)
            assert flight is not None
            if leader:
                got = self._complete(ekey, flight, background=False)
                assert got is not None
                return got
            flight.done.wait()
            if flight.entry is not None:
                self._count_hit(flight.entry, joined=True)
                return flight.entry
            # The leader ended without an answer (interrupted, or an uncacheable
            # error it raised to its own caller): try again, perhaps as leader.
            now = self._clock()

    def _await_or_stale(self, stale: Entry, flight: Flight) -> Entry:
        """Wait up to resolve_timeout for a new answer, else serve the expired one.

        The wait counts from the start of the lookup, not of this call: a caller
        arriving while a refresh has been stuck for longer gets the stale answer
        at once instead of waiting another resolve_timeout.
        """
        life = stale.life  # renew() replaces it: tells a fresh answer from a kept one
        wait = self.config.resolve_timeout - (self._clock() - flight.started)
        if flight.done.wait(max(wait, 0.0)):
            got = flight.entry
            if got is not None and (got is not stale or got.life is not life):
                self._count_hit(got, joined=True)
                return got
        self._count_stale(stale)
        return stale

    def _count_stale(self, entry: Entry) -> None:
        if entry.source in ("persisted", "preload"):
            self._persisted_hits += 1
        else:
            self._stale_hits += 1
        entry.hits += 1
        log.debug("dnscache: serving stale answer for %s", entry.name)

    def _count_hit(self, entry: Entry, joined: bool = False) -> None:
        if joined:
            self._misses += 1
        elif entry.error is not None:
            self._negative_hits += 1
        else:
            self._hits += 1
        entry.hits += 1

    def _start_background(self, ekey: EntryKey, *, urgent: bool = True) -> tuple[Flight, bool]:
        """Begin (or join) a background lookup of ``ekey``; called with the store lock held.

        Returns the flight and whether the caller must lead it itself: True when no
        background worker would take it (the resolver is closed, or the queue full).
        """
        flight, leader = self._store.begin(ekey, self._clock())
        if not leader:
            return flight, False

        def job() -> None:
            self._complete(ekey, flight, background=True)

        if self._closed or not self._background.submit(ekey, job, urgent=urgent):
            return flight, True
        return flight, False

    def _complete(self, ekey: EntryKey, flight: Flight, *, background: bool) -> Entry | None:
        """Do the upstream lookup of ``flight`` and end it; returns the entry to answer from.

        A transient failure while an answer is still servable (refresh-ahead, or
        serve-stale) keeps that answer and schedules the next try STALE_RETRY
        later; any other failure becomes a negative entry (or, for errors that
        are not answers, ends the flight empty and re-raises).
        """
        store = self._store
        name = ekey[0].decode("ascii", "replace")
        now = self._clock()
        with store.lock:
            current = store.get(ekey)
        keep = current
        if keep is not None and (
            keep.error is not None
            or keep.life.classify(now) not in (Freshness.REFRESH_DUE, Freshness.STALE)
        ):
            keep = None
        if background:
            self._refreshes += 1
            log.debug("dnscache: refreshing %s", name)
        else:
            self._misses += 1
            log.debug("dnscache: miss for %s", name)
            _call_hook(self.config.on_cache_miss, name)
        self._background.start_periodic()
        entry: Entry | None = None
        try:
            with _trace.lookup_span(self._tracer, name, ekey[1], background) as span:
                entry = self._fetch(ekey, name, keep is not None)
                if span is not None:
                    span.set_attribute("dnscache.outcome", _outcome(entry))
        finally:
            with store.lock:
                stored = store.end(ekey, flight, entry)
                if stored is None and keep is not None and store.get(ekey) is keep:
                    keep.retry_after = self._clock() + STALE_RETRY
                    flight.entry = keep
            flight.done.set()
            if background and entry is None:
                self._refresh_failures += 1
        if stored is not None:
            if stored.error is None:
                self._health.forget_missing(stored.host, ai.ip_strings(stored.addresses))
            self._notify_change(current, stored)
        return flight.entry

    def _fetch(self, ekey: EntryKey, name: str, have_servable: bool) -> Entry | None:
        """One upstream lookup as an entry; None when a servable answer should be kept."""
        self._lookups += 1
        host, family, flags = ekey
        try:
            answer = self._backend.resolve(host, family, flags)
        except socket.gaierror as exc:
            if exc.errno not in CACHEABLE_ERRORS:
                raise
            if have_servable and exc.errno in TRANSIENT_ERRORS:
                log.debug(
                    "dnscache: upstream failed for %s (%s); keeping the old answer", name, exc
                )
                return None
            now = self._clock()
            life = negative_lifetime(now, self.config.negative_ttl)
            error = (int(exc.errno or 0), str(exc.strerror))
            return Entry(ekey, name, (), "", error, life, "upstream")
        if self._persist is not None:
            self._persist.record_seen(
                bare(host).decode("ascii", "replace"), ai.ip_strings(answer.addresses)
            )
            if self.config.persist_mode == "merge":
                answer = self._merged(ekey, name, answer)
        return self._positive(ekey, name, answer, self._clock(), "upstream")

    def _merged(self, ekey: EntryKey, name: str, answer: Answer) -> Answer:
        """Delta Chat's merge of the live answer with persisted and preloaded addresses."""
        assert self._persist is not None
        c = self.config
        live = {ai.ip_strings([a])[0]: a for a in answer.addresses}
        order = merge_order(
            list(live),
            self._persist.addresses(bare(ekey[0]).decode("ascii", "replace")),
            self._preload.get(bare(ekey[0]), ()),
            time.time(),  # rows carry wall-clock times
            c.persist_max_age,
        )
        extra = _addresses_for([ip for ip in order if ip not in live], ekey[1], ekey[2])
        by_ip = {**{ai.ip_strings([a])[0]: a for a in extra}, **live}
        merged = tuple(by_ip[ip] for ip in order if ip in by_ip)
        return Answer(merged, answer.canonname, answer.ttl)

    def _fallback_entry(self, ekey: EntryKey, now: float) -> Entry | None:
        """An entry from the persistent layer, then the preload list, or None."""
        if self._persist is None and not self._preload:
            return None
        host = bare(ekey[0])
        name = host.decode("ascii", "replace")
        ips = fallback_order(self._persist.addresses(name)) if self._persist else []
        source = "persisted" if ips else "preload"
        ips += [ip for ip in self._preload.get(host, ()) if ip not in ips]
        addresses = _addresses_for(ips, ekey[1], ekey[2])
        if not addresses:
            return None
        window = max(self.config.stale_ttl, 60.0)
        life = Lifetime(born=now, refresh_at=now, expires=now, stale_until=now + window)
        return Entry(ekey, name, tuple(addresses), name, None, life, source)

    def _positive(
        self, ekey: EntryKey, name: str, answer: Answer, now: float, source: str
    ) -> Entry:
        c = self.config
        ttl = clamp_ttl(answer.ttl, c.ttl, c.min_ttl, c.max_ttl)
        life = lifetime(now, ttl, refresh=c.refresh, refresh_at=c.refresh_at, stale_ttl=c.stale_ttl)
        return Entry(ekey, name, answer.addresses, answer.canonname, None, life, source)

    def _sweep(self) -> None:
        """Drop entries past their stale window (the periodic cleanup)."""
        now = self._clock()
        with self._store.lock:
            for entry in self._store:
                if entry.life.classify(now) is Freshness.EXPIRED:
                    self._store.remove(entry.key)

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
        ips = self._overrides[bare(host)]
        addresses = _addresses_for(ips, family, flags)
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
            stale_hits=self._stale_hits,
            refreshes=self._refreshes,
            refresh_failures=self._refresh_failures,
            persisted_hits=self._persisted_hits,
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
            wanted = bare(encode_host(host))
            for entry in store:
                if bare(entry.key[0]) == wanted:
                    store.remove(entry.key)

    def entries(self) -> Iterator[Entry]:
        """A snapshot of what is cached, one object per (host, family, flags).

        Each has ``name``, ``addresses`` ((family, sockaddr) pairs), ``source``
        ("upstream", "override", "persisted", "preload"), ``error`` (errno and
        message of a cached failure, or None), ``life`` (monotonic born /
        refresh_at / expires / stale_until) and ``hits``. Read-only by contract.
        """
        with self._store.lock:
            return iter(list(self._store))

    def close(self) -> None:
        """Stop and join background threads (within about a second). Idempotent.

        A closed resolver still answers; it just does no more background work.
        """
        self._closed = True
        self._backend.close()  # first: it interrupts the queries the threads are stuck in
        self._background.close()
        if self._persist is not None:
            self._persist.close()  # flushes queued writes
        _live.discard(self)

    def background_threads(self) -> list[Any]:
        """The threads this resolver runs now (for tests and ``doctor``)."""
        return self._background.threads()

    # --- fork ---

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
        self._health.after_fork_in_child()
        if self._persist is not None:
            self._persist.reset_after_fork()

    def __enter__(self) -> Resolver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<dnscache.Resolver entries={len(self._store)} {self.stats()}>"


# One set of fork hooks for all resolvers (os.register_at_fork cannot unregister,
# so per-resolver hooks would pile up in a test suite creating thousands).
_live: weakref.WeakSet[Resolver] = weakref.WeakSet()


def _each(method: str) -> Callable[[], None]:
    def run() -> None:
        for resolver in list(_live):
            try:
                getattr(resolver, method)()
            except Exception:  # a fork hook must never break the fork
                pass

    return run


@atexit.register
def _flush_at_exit() -> None:
    """Write what the persistent layers still hold queued (their writers are daemons)."""
    for resolver in list(_live):
        try:
            if resolver._persist is not None:
                resolver._persist.close()
        except Exception:  # exit must go on
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_each("_before_fork"),
        after_in_parent=_each("_after_fork_in_parent"),
        after_in_child=_each("_after_fork_in_child"),
    )
