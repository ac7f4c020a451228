"""Delta Chat's rules for persisted addresses: which rows live, in what order, and what is junk.

Pure functions: no I/O, no clock (``now`` is an argument), no locks. Everything
the sqlite file, the memory rows and the engine decide about a row's worth is
here, so it can be tested exhaustively.

Rows carry wall-clock seconds (``time.time()``): see :mod:`.store` for why.
"""

from __future__ import annotations

import ipaddress
import math
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_AGE",
    "MAX_ADDRESSES",
    "MAX_HOST_LENGTH",
    "MAX_ROWS_PER_HOST",
    "MIN_TIME",
    "Seen",
    "Times",
    "clean_host",
    "clean_ip",
    "clean_row",
    "clean_time",
    "combine",
    "display_host",
    "fallback_addresses",
    "fallback_order",
    "is_alive",
    "merge_order",
    "merged_addresses",
    "newer",
    "order_key",
    "sane_time",
]

# Long enough to ride out a DNS outage that spans a holiday-long laptop sleep; short
# enough that a server's old address, renumbered away, is forgotten within a month.
DEFAULT_MAX_AGE = 30 * 86400.0
MAX_HOST_LENGTH = 253  # RFC 1035 2.3.4: 255 octets on the wire, 253 as a dotted name


@dataclass(frozen=True, slots=True)
class Seen:
    """One persisted address of a host."""

    ip: str
    last_seen: float  # wall-clock seconds (time.time())
    last_connected: float | None  # wall-clock seconds, None if never connected


Times = tuple[float, float | None]  # (last_seen, last_connected)


# --- ordering: Delta Chat's, exactly ---
#
# deltachat-core-rust, src/net/dns.rs (commit 8a5a67d6, March 2025):
#
# * lookup_cache() reads a host's persisted addresses with
#       WHERE ? < dns_cache.timestamp + CACHE_TTL
#       ORDER BY IFNULL(connection_history.timestamp, dns_cache.timestamp) DESC LIMIT 50
#   one key: when a connection to the address last succeeded, else when it was last
#   seen (our last_connected and last_seen; a row dies max_age after it was seen);
# * lookup_host_with_cache() appends the preloaded (built-in) addresses not already
#   among them;
# * merge_with_cache(resolved, cache) keeps the first two resolved addresses, then the
#   cache, then the rest of resolved, skipping repeats, and stops at 10. A failed
#   lookup is merge_with_cache([], cache): the cap holds there too.

MAX_ADDRESSES = 10  # merge_with_cache's "At most 10 results are returned"
MAX_ROWS_PER_HOST = 50  # lookup_cache's LIMIT 50: what one read of a host may return


def is_alive(last_seen: float, now: float, max_age: float) -> bool:
    """Whether a row last seen at ``last_seen`` is still usable at ``now``.

    It dies exactly ``max_age`` seconds after it was seen (Delta Chat: ``now <
    timestamp + CACHE_TTL``). A row more than ``max_age`` in the future was
    written under a wrong clock and is dead too.
    """
    return now - max_age < last_seen <= now + max_age


def order_key(row: Seen) -> float:
    """``IFNULL(last_connected, last_seen)``: larger is tried first."""
    return row.last_seen if row.last_connected is None else row.last_connected


def fallback_order(rows: Sequence[Seen]) -> list[str]:
    """The IPs of ``rows`` by :func:`order_key`, descending; no repeats, no cap.

    An address recently connected to beats one merely seen earlier, and one seen
    recently beats one connected to long ago. Ties keep the order of ``rows``.
    """
    return _unique(row.ip for row in sorted(rows, key=order_key, reverse=True))


def merged_addresses(
    live: Sequence[str],
    rows: Sequence[Seen],
    preload: Sequence[str],
    now: float,
    max_age: float,
    *,
    family: int = 0,
    limit: int = MAX_ADDRESSES,
) -> list[str]:
    """Delta Chat's addresses to try, at most ``limit`` (10), no repeats.

    The first two distinct live addresses (the resolver's own preference, and
    typically both families under RFC 6724/8305 ordering; distinct because
    getaddrinfo repeats an address once per socket type), then the persisted
    addresses alive at ``now`` in :func:`fallback_order`, then the preloaded
    ones, then the rest of the live answer. ``family`` (``AF_INET`` or
    ``AF_INET6``; 0 for both) keeps only that family's addresses *before* the
    cap, so a list for one family is not cut short by the other's.
    """
    keep = _family_filter(family)
    fresh = [ip for ip in _unique(live) if keep(ip)]
    alive = [row for row in rows if is_alive(row.last_seen, now, max_age) and keep(row.ip)]
    ordered = [*fresh[:2], *fallback_order(alive), *filter(keep, preload), *fresh[2:]]
    return _unique(ordered)[: max(limit, 0)]


def fallback_addresses(
    rows: Sequence[Seen],
    preload: Sequence[str],
    now: float,
    max_age: float,
    *,
    family: int = 0,
    limit: int = MAX_ADDRESSES,
) -> list[str]:
    """What a failed live lookup answers: persisted then preloaded, at most ``limit`` (10).

    Delta Chat's ``merge_with_cache([], cache)``: the same in both persist modes.
    """
    return merged_addresses((), rows, preload, now, max_age, family=family, limit=limit)


def merge_order(
    live: Sequence[str],
    rows: Sequence[Seen],
    preload: Sequence[str],
    now: float,
    max_age: float,
    limit: int = MAX_ADDRESSES,
) -> list[str]:
    """:func:`merged_addresses` under its first name (the engine imports this one today)."""
    return merged_addresses(live, rows, preload, now, max_age, limit=limit)


def _family_filter(family: int) -> Callable[[str], bool]:
    if family == socket.AF_INET:
        return lambda ip: ":" not in ip
    if family == socket.AF_INET6:
        return lambda ip: ":" in ip
    return lambda ip: True


def _unique(ips: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ips))


def combine(
    found: Iterable[Sequence[object]], extra: Mapping[str, Times], now: float, max_age: float
) -> list[Seen]:
    """Rows read from the file and rows kept in memory as one validated, live list.

    ``found``: (ip, last_seen, last_connected) as read back (untrusted); ``extra``:
    memory rows by ip. Each address once, with the later of its times, in
    Delta Chat's order (:func:`order_key`, descending).
    """
    best: dict[str, Times] = {}
    candidates = [*found, *((ip, seen, conn) for ip, (seen, conn) in extra.items())]
    for ip, last_seen, last_connected in candidates:
        row = clean_row(ip, last_seen, last_connected, now, max_age)
        if row is None or not is_alive(row.last_seen, now, max_age):
            continue
        times: Times = (row.last_seen, row.last_connected)
        old = best.get(row.ip)
        best[row.ip] = times if old is None else newer(old, times)
    rows = [Seen(ip, seen, connected) for ip, (seen, connected) in best.items()]
    return sorted(rows, key=order_key, reverse=True)


def newer(a: Times, b: Times) -> Times:
    """Both times moved forward to the later of the two."""
    if a[1] is None:
        connected = b[1]
    elif b[1] is None:
        connected = a[1]
    else:
        connected = max(a[1], b[1])
    return (max(a[0], b[0]), connected)


# --- validation of what goes in and what comes out ---
#
# Rows come back from a file that other processes of this user, other versions of
# dnscache, a disk error or a hand with the sqlite3 shell may have written: they are
# untrusted input. A row is used only if every part of it is something we could have
# written ourselves; anything else is skipped, never "repaired".

# 2000-01-01T00:00:00Z. No row of ours is older (dnscache did not exist), and a clock
# that reads earlier (an embedded board booting at 1970 without an RTC) writes nothing.
MIN_TIME = 946_684_800.0

# 0.0.0.0/8 is "this network" (RFC 1122 3.2.1.3: never a destination; Linux even
# connects 0.0.0.0 to the local host), 255.255.255.255 the limited broadcast
# (RFC 919/922). Multicast and the unspecified addresses are not a host's address.
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_CONTROL = bytes([*range(0x20), 0x7F])  # NUL and the other C0 controls, DEL
_LIMITED_BROADCAST = ipaddress.ip_address("255.255.255.255")


def clean_host(host: object) -> bytes | None:
    """The key ``host`` is kept under, exactly as libc sees it, or None if it cannot be a name.

    Keys are bytes, compared byte for byte: two different names never share a
    row (issue 11 item 8; a lossy text form such as ``decode("ascii",
    "replace")`` made ``caf\xc3\xa9`` and ``caf\xc3\xa8`` one name). A ``str``
    is taken only when it is ASCII (an already-encoded key) and anything else
    is refused rather than guessed at. Refused too: the empty name, a NUL (libc
    never sees past it), control characters (no resolver returns addresses for
    them, and ``dnscache cache show`` would print them) and more than 253
    octets besides a final dot (RFC 1035 2.3.4).
    """
    if isinstance(host, str):
        if not host.isascii():
            return None
        host = host.encode("ascii")
    if type(host) is not bytes or not host:
        return None
    if len(host.removesuffix(b".")) > MAX_HOST_LENGTH:
        return None
    if host.translate(None, _CONTROL) != host:
        return None
    return host


def display_host(host: bytes) -> str:
    """``host`` as text to show a person: UTF-8 where it is, escapes for the rest.

    A byte that is not UTF-8 shows as ``\\xNN``, a character that is not
    printable (a bidi override, a zero-width space) as ``\\UNNNNNNNN``, and a
    backslash is doubled, so two keys never look alike and nothing reaches a
    terminal that could rewrite what is around it.
    """
    text = host.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\U{ord(c):08x}" for c in text)


def clean_ip(ip: object) -> str | None:
    """The canonical text of a unicast, scope-less IP address, or None.

    A scope (``fe80::1%eth0``) names an interface of the machine that wrote the
    row, which may not exist here: glibc answers EAI_NONAME for an unknown one,
    and that error would hide every good row of the host (issue 11 item 9).
    """
    if not isinstance(ip, str) or "%" in ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    v4 = address if isinstance(address, ipaddress.IPv4Address) else address.ipv4_mapped
    if address.is_unspecified or address.is_multicast:
        return None
    if v4 is not None and (v4 in _THIS_NETWORK or v4 == _LIMITED_BROADCAST or v4.is_multicast):
        return None
    return str(address)


def clean_time(value: object) -> float | None:
    """``value`` as a finite float, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def sane_time(value: object, now: float, max_age: float) -> float | None:
    """``value`` if it is a time a row of ours could carry at ``now``, else None.

    Not before :data:`MIN_TIME`, not more than ``max_age`` ahead of ``now`` (a
    clock that was that wrong wrote garbage; see :func:`is_alive`).
    """
    t = clean_time(value)
    return t if t is not None and MIN_TIME <= t <= now + max_age else None


def clean_row(
    ip: object, last_seen: object, last_connected: object, now: float, max_age: float
) -> Seen | None:
    """A row read back from the file (or memory) at ``now``, or None if any part is junk.

    A connection counts as seen, so a ``last_connected`` later than
    ``last_seen`` is something we never write: it is capped at ``last_seen``, so
    that a hand-edited row cannot jump ahead in :func:`fallback_order`.
    """
    clean = clean_ip(ip)
    seen = sane_time(last_seen, now, max_age)
    connected = None if last_connected is None else sane_time(last_connected, now, max_age)
    if clean is None or seen is None or (last_connected is not None and connected is None):
        return None
    return Seen(clean, seen, None if connected is None else min(connected, seen))
