"""Turning what a source said into cache entries: answers, failures, overrides, fallbacks.

All of it is bookkeeping over values: no lock, no I/O. The persistent layer's
rows are read by the caller and passed in.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping

from .._cache.entries import Entry, EntryKey
from .._core.addrinfo import Address
from .._core.config import Config
from .._core.names import bare, encode_host
from .._core.policy import Lifetime, clamp_ttl, lifetime, negative_lifetime, permanent_lifetime
from .._sources.answer import Answer

_NONAME = (socket.EAI_NONAME, "Name or service not known")
# A name known only from the persistent layer or the preload list is served
# (while the upstream fails) for at least this long past the moment it was used.
MIN_FALLBACK_WINDOW = 60.0


def text(host: bytes) -> str:
    """A host key as text, losslessly: distinct bytes give distinct strings.

    Keys are IDNA-encoded (ASCII) for ``str`` hosts, but a ``bytes`` host
    reaches libc as it is, so non-ASCII bytes become lone surrogates rather
    than "?" (which made ``b"caf\\xc3\\xa9"`` and ``b"caf\\xc3\\xa8"`` one name).
    """
    return host.decode("ascii", "surrogateescape")


def by_key(mapping: Mapping[str, tuple[str, ...]]) -> dict[bytes, tuple[str, ...]]:
    """A Config host mapping keyed like the cache (IDNA, lower case, no final dot)."""
    return {bare(encode_host(name)): ips for name, ips in mapping.items()}


def addresses_for(ips: Iterable[str], family: int, flags: int) -> list[Address]:
    """IP strings as cache addresses for ``family``, filtered and mapped as glibc would."""
    inet, inet6 = int(socket.AF_INET), int(socket.AF_INET6)
    both: list[Address] = [(inet6, (ip, 0, 0, 0)) if ":" in ip else (inet, (ip, 0)) for ip in ips]
    if family == socket.AF_INET:
        return [a for a in both if a[0] == inet]
    if family == socket.AF_INET6:
        v6 = [a for a in both if a[0] == inet6]
        if flags & socket.AI_V4MAPPED and (not v6 or flags & socket.AI_ALL):
            v6 += [(inet6, (f"::ffff:{a[1][0]}", 0, 0, 0)) for a in both if a[0] == inet]
        return v6
    return both


def positive(ekey: EntryKey, answer: Answer, now: float, config: Config, source: str) -> Entry:
    c = config
    ttl = clamp_ttl(answer.ttl, c.ttl, c.min_ttl, c.max_ttl)
    life = lifetime(now, ttl, refresh=c.refresh, refresh_at=c.refresh_at, stale_ttl=c.stale_ttl)
    return Entry(ekey, text(ekey[0]), answer.addresses, answer.canonname, None, life, source)


def negative(ekey: EntryKey, error: tuple[int, str], now: float, config: Config) -> Entry:
    life = negative_lifetime(now, config.negative_ttl)
    return Entry(ekey, text(ekey[0]), (), "", error, life, "upstream")


def override(ekey: EntryKey, ips: Iterable[str], now: float) -> Entry:
    """An entry from Config.hosts: permanent, filtered to the family as the system would."""
    host, family, flags = ekey
    addresses = addresses_for(ips, family, flags)
    name = text(host)
    life = permanent_lifetime(now)
    if not addresses:
        return Entry(ekey, name, (), "", _NONAME, life, "override")
    return Entry(ekey, name, tuple(addresses), name, None, life, "override")


def fallback(
    ekey: EntryKey, ips: Iterable[str], source: str, now: float, config: Config
) -> Entry | None:
    """An entry from remembered addresses (persisted, preloaded), born expired.

    It is looked up as if its answer had just expired: the caller waits at most
    ``resolve_timeout`` for the upstream and otherwise gets these addresses.
    """
    addresses = addresses_for(ips, ekey[1], ekey[2])
    if not addresses:
        return None
    window = max(config.stale_ttl, MIN_FALLBACK_WINDOW)
    life = Lifetime(born=now, refresh_at=now, expires=now, stale_until=now + window)
    name = text(ekey[0])
    return Entry(ekey, name, tuple(addresses), name, None, life, source)
