"""The persistent layer (after Delta Chat): every address seen per host, in one sqlite file.

Why: a process that starts while DNS is down has an empty in-memory cache and
cannot connect anywhere, even though the servers it talked to an hour ago are
still up at the same addresses. Delta Chat solved this for its mail client
with a table of every address a host name ever resolved to, when it was last
seen and when a connection to it last succeeded; after a failed lookup (or
next to a live answer) those addresses are tried too.

:class:`PersistentStore` is that table, in one sqlite file shared by every
process of the user (see :mod:`.store` for the design); the pure rules the
engine orders and merges addresses with are in :mod:`.rules`
(:func:`fallback_addresses`, :func:`merged_addresses`).
"""

from __future__ import annotations

from .files import default_path
from .rules import (
    DEFAULT_MAX_AGE,
    MAX_ADDRESSES,
    Seen,
    display_host,
    fallback_addresses,
    fallback_order,
    is_alive,
    merge_order,
    merged_addresses,
)
from .sqlfile import SCHEMA_VERSION
from .store import PersistentStore

__all__ = [
    "DEFAULT_MAX_AGE",
    "MAX_ADDRESSES",
    "SCHEMA_VERSION",
    "PersistentStore",
    "Seen",
    "default_path",
    "display_host",
    "fallback_addresses",
    "fallback_order",
    "is_alive",
    "merge_order",
    "merged_addresses",
]
