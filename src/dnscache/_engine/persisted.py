"""The engine's side of the persistent layer and the preload list (after Delta Chat).

What the engine reads before a lookup (remembered addresses for a name it has
no usable answer for), what it merges into a live answer in ``merge`` mode,
and what it writes after (addresses seen, connections made, answers used).
Reads touch sqlite, so they are made without any lock held; writes only queue.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence

from .._cache.entries import Entry, EntryKey
from .._core import addrinfo as ai
from .._core.config import Config
from .._core.names import bare
from .._sources.answer import Answer
from . import answers, callouts

# last_seen is refreshed for answers served from memory at most this often per
# entry (Delta Chat's last_seen says when an address was last returned).
TOUCH_INTERVAL = 60.0


def _family(family: int, flags: int) -> int:
    """Which persisted addresses can answer a lookup of ``family``: 0 for both.

    AF_INET6 with AI_V4MAPPED may answer with (mapped) IPv4 addresses too.
    """
    if family == socket.AF_INET6 and flags & socket.AI_V4MAPPED:
        return 0
    return family if family in (socket.AF_INET, socket.AF_INET6) else 0


class Persisted:
    """Remembered addresses for one Resolver: the sqlite layer (optional) and the preload list.

    Hosts are the cache's own bytes keys without case or final dot: exactly what
    libc was asked, so two different names never share a row.
    """

    def __init__(self, config: Config) -> None:
        self._config = config
        self.preload = answers.by_key(config.preload)
        self.store: PersistentStore | None = None
        if config.persist:  # sqlite3 and the file layer load only then
            from .._sources.persist.store import PersistentStore

            # Its warnings are call outs: a handler that resolves a name must not
            # wait on the sqlite lock the warning may be emitted under.
            self.store = PersistentStore(
                config.persist, max_age=config.persist_max_age, say=callouts.say
            )

    @property
    def active(self) -> bool:
        return self.store is not None or bool(self.preload)

    def fallback(self, ekey: EntryKey, now: float) -> Entry | None:
        """An entry from the file, then the preload list, or None (reads sqlite: no lock held)."""
        if not self.active:
            return None
        from .._sources.persist.rules import fallback_addresses

        host = bare(ekey[0])
        rows = self.store.addresses(host) if self.store is not None else []
        ips = fallback_addresses(
            rows,
            self.preload.get(host, ()),
            time.time(),  # rows carry wall-clock times
            self._config.persist_max_age,
            family=_family(ekey[1], ekey[2]),
        )
        source = "persisted" if {row.ip for row in rows} & set(ips) else "preload"
        return answers.fallback(ekey, ips, source, now, self._config)

    def merged(self, ekey: EntryKey, answer: Answer) -> Answer:
        """Delta Chat's merge of a live answer with persisted and preloaded addresses."""
        if self.store is None or self._config.persist_mode != "merge":
            return answer
        from .._sources.persist.rules import merged_addresses

        host = bare(ekey[0])
        live = {ai.ip_strings([a])[0]: a for a in answer.addresses}
        order = merged_addresses(
            list(live),
            self.store.addresses(host),
            self.preload.get(host, ()),
            time.time(),
            self._config.persist_max_age,
            family=_family(ekey[1], ekey[2]),
        )
        extra = answers.addresses_for([ip for ip in order if ip not in live], ekey[1], ekey[2])
        by_ip = {**{ai.ip_strings([a])[0]: a for a in extra}, **live}
        merged = tuple(by_ip[ip] for ip in order if ip in by_ip)
        return Answer(merged, answer.canonname, answer.ttl)

    def seen(self, host: bytes, ips: Sequence[str]) -> None:
        if self.store is not None and ips:
            self.store.record_seen(bare(host), ips)

    def connected(self, host: bytes, ip: str) -> None:
        if self.store is not None:
            self.store.record_connected(bare(host), ip)

    def touch_due(self, entry: Entry, now: float) -> float:
        """When ``entry``'s use must next be noted (inf when nothing is kept for it).

        Only live answers are noted: a remembered (persisted, preloaded) or
        overridden answer must not keep itself alive in the file.
        """
        if self.store is None or entry.error is not None or entry.source != "upstream":
            return float("inf")
        return entry.touched + TOUCH_INTERVAL

    def touch(self, entry: Entry, now: float) -> None:
        """Note that ``entry``'s addresses were just served (last_seen), at most once a minute."""
        if self.store is not None and now >= self.touch_due(entry, now):
            entry.touched = now
            self.store.touch(entry.host, ai.ip_strings(entry.addresses))

    def close(self) -> None:
        if self.store is not None:
            self.store.close()  # flushes queued writes

    def reset_after_fork(self) -> None:
        if self.store is not None:
            self.store.reset_after_fork()
