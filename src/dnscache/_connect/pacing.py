"""When Happy Eyeballs starts the next connection attempt: pure rules, no sockets.

The numbers and the two orderings behind ``happy_eyeballs.create_connection``
(whose essay says why the race exists): :func:`interleave` orders the
addresses (RFC 8305 section 4), :func:`schedule` says when the next attempt is
due and how long an attempt runs alone (section 5, under the caller's
deadline). Both are pure functions, tested exhaustively; the race applies them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from itertools import chain, zip_longest
from typing import Any

from .._core.addrinfo import AddrInfo

# RFC 8305 section 5 recommends 250 ms, the figure Chrome and Firefox use (and
# trio's DEFAULT_DELAY): long enough that a healthy first address almost always
# answers before a second attempt adds load, short enough that a dead one costs
# a quarter of a second instead of a timeout.
DEFAULT_DELAY = 0.25
# RFC 8305 section 4 lets a client try more than one address of the preferred
# family before the first of the other; strict alternation (one) is what the
# issue asks for and what makes a broken family cost a single delay.
FIRST_ADDRESS_FAMILY_COUNT = 1
# The longest single wait we ask of the platform: poll(2) takes an int of
# milliseconds (CPython raises OverflowError above INT_MAX), settimeout and
# Event.wait at most threading.TIMEOUT_MAX seconds. A longer wait is several.
MAX_WAIT = min(threading.TIMEOUT_MAX, (2**31 - 1) / 1000)
# With attempts strictly one after another (delay 0) under a deadline, each gets
# its share of the time left, but not less than this (unless less is left): a
# slow but live first address deserves a real chance. Go's net package uses the
# same figure ("saneMinimum") for the same purpose.
SANE_MINIMUM = 2.0


def interleave(
    addrinfos: Sequence[AddrInfo], first_family_count: int = FIRST_ADDRESS_FAMILY_COUNT
) -> list[AddrInfo]:
    """Reorder for RFC 8305 section 4: alternate families, the first entry's family first.

    The first ``first_family_count`` entries of the preferred family lead, then
    one of each family in turn; within a family the order is kept. Idempotent.
    """
    if first_family_count < 1:
        raise ValueError("first_family_count must be at least 1")
    by_family: dict[Any, list[AddrInfo]] = {}
    for info in addrinfos:
        by_family.setdefault(info[0], []).append(info)
    if len(by_family) < 2:
        return list(addrinfos)
    lists = list(by_family.values())
    head = lists[0][: first_family_count - 1]
    lists[0] = lists[0][first_family_count - 1 :]
    rest = chain.from_iterable(zip_longest(*lists))
    return head + [info for info in rest if info is not None]


def schedule(left: float, delay: float, following: int) -> tuple[float, float]:
    """For an attempt starting now: (when the next may start, how long this one runs alone).

    Seconds from now; ``left`` is the time to the call's deadline (inf: none),
    ``following`` the number of addresses after this one. The next attempt is
    due after ``delay`` (RFC 8305), or sooner under a deadline: once this
    attempt has had its share of what is left, so that every address is tried
    before the deadline (Go's ``net.Dialer`` divides the time left evenly among
    the addresses left in the same way). With ``delay`` 0 attempts never
    overlap, and the share is how long this one may take before it is given up,
    never cut below ``SANE_MINIMUM`` unless less than that is left (Go's rule).
    """
    if following == 0:
        return math.inf, left
    share = left / (following + 1)
    if delay == 0:
        return math.inf, (share if share >= SANE_MINIMUM else min(left, SANE_MINIMUM))
    pace = min(delay, share)
    return pace, pace
