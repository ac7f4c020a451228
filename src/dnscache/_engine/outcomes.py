"""What a finished lookup tells others: counters, spans, hooks, address health, the file.

Everything here runs after the lookup's flight ended, with no lock of ours held
while it calls out (``callouts``): a span exporter, an ``on_change`` hook or a
log handler may resolve names themselves, even the same name, and must find
nothing of ours to wait on. It also holds the two pieces of state that outlive
entries: what ``on_change`` was last told per host, and (with
``ttl_source="dns"``) the record TTL learning scheduled after each libc answer.
"""

from __future__ import annotations

import socket
import time

from .._cache.entries import Entry, EntryKey
from .._cache.store import Store
from .._connect.health import AddressHealth
from .._core import addrinfo as ai
from .._core.config import Config
from .._core.policy import clamp_ttl, lifetime
from .._sources.answer import Answer
from . import answers, callouts, trace
from .background import Background, Job
from .persisted import Persisted
from .stats import Counters

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .._sources.ttl import TtlLearner


class Outcomes:
    """The after-effects of one Resolver's upstream lookups."""

    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        background: Background,
        counters: Counters,
        persisted: Persisted,
        health: AddressHealth,
        telemetry: trace.Telemetry | None,
        learner: TtlLearner | None,
    ) -> None:
        self._config = config
        self._store = store
        self._background = background
        self._counters = counters
        self._persisted = persisted
        self._health = health
        self._telemetry = telemetry
        self._learner = learner  # the system backend's record TTLs (ttl_source="dns")
        self._known: dict[bytes, dict[int, tuple[str, ...]]] = {}  # per host: ips per family

    def after(
        self,
        ekey: EntryKey,
        stored: Entry | None,
        answer: Entry | None,
        background: bool,
        started_ns: int,
        started: int,
        failure: BaseException | None,
        origin: trace.Origin | None,
    ) -> None:
        """Everything a lookup tells others, with no lock or flight held (see callouts)."""
        name = answers.text(ekey[0])
        elapsed = time.monotonic_ns() - started
        self._counters.durations.observe(elapsed / 1e9)
        if background and stored is None:
            self._counters.refresh_failures += 1
        if self._telemetry is not None:
            trace.record_lookup(
                self._telemetry,
                name,
                ekey[1],
                background,
                started_ns,
                elapsed,
                stored,
                answer,
                failure,
                origin,
            )
        if stored is None:
            return
        if stored.error is None:
            if self._learner is not None and stored.source == "upstream":
                self._learn_ttl(stored)
            ips = ai.ip_strings(stored.addresses)
            self._health.forget_missing(answers.text(stored.host), ips)
            self._persisted.seen(stored.host, ips)
            if self._config.on_change is not None:
                change = self._host_change(stored)
                if change is not None:
                    callouts.call_hook(self._config.on_change, answers.text(stored.host), change)

    def _learn_ttl(self, entry: Entry) -> None:
        """Ask DNS, in the background, for the TTL of what libc just answered; re-time the entry.

        libc reports no TTL, so the answer was stored for ``ttl``; once the record's
        own TTL is known the entry's life is recomputed from its birth (clamped by
        min_ttl/max_ttl), unless a newer answer replaced it meanwhile. Names libc
        answered from files or mDNS get None from the learner and keep ``ttl``.
        """
        learner = self._learner
        assert learner is not None
        born = entry.life.born
        host, family, flags = entry.key

        def run() -> None:
            ttl = learner.learn(host, family, flags, Answer(entry.addresses, entry.canonname, None))
            if ttl is None:
                return
            c = self._config
            life = lifetime(
                born,
                clamp_ttl(ttl, c.ttl, c.min_ttl, c.max_ttl),
                refresh=c.refresh,
                refresh_at=c.refresh_at,
                stale_ttl=c.stale_ttl,
            )
            store = self._store
            with store.lock:
                if store.peek(entry.key) is entry and entry.life.born == born:
                    entry.renew(life, entry.source)
                    store.put(entry)  # its new time-to-use
                    store.drop_views(entry)  # they were timed for the old life

        self._background.submit(("ttl", entry.key), Job(run, lambda: None))

    def _host_change(self, stored: Entry) -> list[str] | None:
        """The host's full new address list if this answer changed it, else None.

        on_change fires once per host per change (Delta Chat's contract), not once
        per (family, flags) entry: a host's list is its AF_UNSPEC answer when it has
        one (answers of one family then change nothing by themselves), else the
        union of its AF_INET and AF_INET6 answers. What was last seen per family
        outlives the entries (which expire), bounded like the store.
        """
        with self._store.lock:
            known = self._known.pop(stored.host, None)
            before = _full(known) if known else None
            known = dict(known or {})
            known[stored.key[1]] = tuple(ai.ip_strings(stored.addresses))
            self._known[stored.host] = known
            while len(self._known) > self._config.maxsize:
                del self._known[next(iter(self._known))]
        after = _full(known)
        if before is None or set(after) == set(before):
            return None
        return after


def _full(known: dict[int, tuple[str, ...]]) -> list[str]:
    """A host's address list from what was last seen per family (see _host_change)."""
    if socket.AF_UNSPEC in known:
        return list(known[socket.AF_UNSPEC])
    return list(dict.fromkeys(ip for ips in known.values() for ip in ips))
