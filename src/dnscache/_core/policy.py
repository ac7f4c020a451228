"""Pure decisions about time: how long an answer lives and what may be done with it now.

Nothing here sleeps, locks, reads a clock or opens a socket: every function
takes ``now`` (a ``time.monotonic()`` reading) and returns a decision, so the
rules are tested exhaustively and fast.

An answer's life, for an answer obtained at ``born`` with time-to-live ``ttl``::

    born ----- refresh_at ----- expires ---------------- stale_until
      FRESH        REFRESH_DUE       STALE (servable)        EXPIRED

* FRESH: served as it is.
* REFRESH_DUE: served as it is, and one background refresh is started
  (refresh-ahead: only names that are used get refreshed; the first hit past
  ``refresh_at`` pays nothing).
* STALE: expired. The caller waits for a new answer, but if the upstream
  fails (RFC 8767 "serve-stale") the old answer is served instead, for at most
  ``stale_ttl`` seconds past expiry.
* EXPIRED: gone; only a new answer will do.

Negative answers never refresh and are never served stale: a name that did not
resolve must not outlive its ``negative_ttl`` (RFC 2308's spirit, and RFC 8767
section 5: stale data is for positive answers).
"""

from __future__ import annotations

import enum
import math

from .values import Value


class Freshness(enum.Enum):
    FRESH = "fresh"
    REFRESH_DUE = "refresh-due"
    STALE = "stale"
    EXPIRED = "expired"


class Lifetime(Value):
    """The four instants of one answer's life (monotonic seconds)."""

    __slots__ = ("born", "expires", "refresh_at", "stale_until")

    def __init__(self, born: float, refresh_at: float, expires: float, stale_until: float) -> None:
        self.born = born
        self.refresh_at = refresh_at
        self.expires = expires
        self.stale_until = stale_until

    def classify(self, now: float) -> Freshness:
        if now < self.refresh_at:
            return Freshness.FRESH
        if now < self.expires:
            return Freshness.REFRESH_DUE
        if now < self.stale_until:
            return Freshness.STALE
        return Freshness.EXPIRED


FOREVER = math.inf


def lifetime(
    now: float,
    ttl: float,
    *,
    refresh: bool = False,
    refresh_at: float = 0.5,
    stale_ttl: float = 0.0,
) -> Lifetime:
    """The life of an answer born ``now`` that is fresh for ``ttl`` seconds.

    With ``refresh`` the refresh instant is ``refresh_at`` of the way through the
    TTL; without it, it coincides with expiry (no refresh-ahead).
    """
    expires = now + ttl
    due = now + ttl * refresh_at if refresh else expires
    return Lifetime(born=now, refresh_at=due, expires=expires, stale_until=expires + stale_ttl)


def negative_lifetime(now: float, negative_ttl: float) -> Lifetime:
    """A failed lookup: fresh for ``negative_ttl``, then gone (never refreshed, never stale)."""
    end = now + negative_ttl
    return Lifetime(born=now, refresh_at=end, expires=end, stale_until=end)


def permanent_lifetime(now: float) -> Lifetime:
    """A static override: fresh forever."""
    return Lifetime(born=now, refresh_at=FOREVER, expires=FOREVER, stale_until=FOREVER)


def clamp_ttl(ttl: float | None, default: float, min_ttl: float, max_ttl: float) -> float:
    """The TTL to use: the record's own clamped to [min_ttl, max_ttl], or ``default``.

    The system resolver reports no TTL, hence ``default`` (Config.ttl). A record TTL
    of 0 means "do not cache" (RFC 1035 3.2.1); ``min_ttl`` lets an application
    override that, as unbound's cache-min-ttl does.
    """
    if ttl is None:
        return default
    return min(max(ttl, min_ttl), max(max_ttl, min_ttl))
