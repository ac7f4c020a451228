"""Delta Chat's rules for persisted addresses: which rows live, in what order, and what is junk.

Pure functions: no I/O, no clock (``now`` is an argument), no locks. Everything
the sqlite file, the memory rows and the engine decide about a row's worth is
here, so it can be tested exhaustively.

Rows carry wall-clock seconds (``time.time()``): see :mod:`.store` for why.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_AGE",
    "MAX_HOST_LENGTH",
    "MIN_TIME",
    "Seen",
    "Times",
    "clean_host",
    "clean_ip",
    "clean_row",
    "clean_time",
    "display_host",
    "fallback_order",
    "is_alive",
    "merge_order",
    "newer",
    "recency",
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


# --- ordering ---


def is_alive(last_seen: float, now: float, max_age: float) -> bool:
    """Whether a row last seen at ``last_seen`` is still usable at ``now``.

    It dies exactly ``max_age`` seconds after it was seen. A row more than
    ``max_age`` in the future was written under a wrong clock and is dead too.
    """
    return now - max_age < last_seen <= now + max_age


def recency(row: Seen) -> tuple[float, float]:
    """The sort key of :func:`fallback_order` (larger is tried first)."""
    connected = row.last_connected if row.last_connected is not None else -math.inf
    return (connected, row.last_seen)


def fallback_order(rows: Sequence[Seen]) -> list[str]:
    """The IPs of ``rows``: most recently connected first, then most recently seen; no repeats.

    An address a connection succeeded to, however long ago, beats one that was only
    ever seen in an answer. Ties keep the order of ``rows``.
    """
    return _unique(row.ip for row in sorted(rows, key=recency, reverse=True))


def merge_order(
    live: Sequence[str],
    rows: Sequence[Seen],
    preload: Sequence[str],
    now: float,
    max_age: float,
    limit: int = 10,
) -> list[str]:
    """Delta Chat's order of addresses to try, at most ``limit`` of them, no repeats.

    The first two distinct live addresses (the resolver's own preference, and
    typically both families under RFC 6724/8305 ordering; distinct because
    getaddrinfo repeats an address once per socket type), then the persisted
    addresses still alive at ``now`` in :func:`fallback_order`, then the
    preloaded (built-in) ones, then the rest of the live answer.
    """
    fresh = _unique(live)
    alive = [row for row in rows if is_alive(row.last_seen, now, max_age)]
    ordered = [*fresh[:2], *fallback_order(alive), *preload, *fresh[2:]]
    return _unique(ordered)[: max(limit, 0)]


def _unique(ips: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ips))


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
