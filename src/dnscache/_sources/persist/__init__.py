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

# Loaded on first use (PEP 562): the engine reaches for these only with ``persist`` or
# ``preload`` set, and ``sqlite3`` alone costs a few milliseconds at the first
# ``import socket`` of every program started with PYTHONDNSCACHE=1.
_LAZY = {
    "DEFAULT_MAX_AGE": ".rules",
    "MAX_ADDRESSES": ".rules",
    "Seen": ".rules",
    "display_host": ".rules",
    "fallback_addresses": ".rules",
    "fallback_order": ".rules",
    "is_alive": ".rules",
    "merge_order": ".rules",
    "merged_addresses": ".rules",
    "SCHEMA_VERSION": ".sqlfile",
    "PersistentStore": ".store",
    "default_path": ".files",
}

__all__ = sorted(_LAZY)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .files import default_path as default_path
    from .rules import DEFAULT_MAX_AGE as DEFAULT_MAX_AGE
    from .rules import MAX_ADDRESSES as MAX_ADDRESSES
    from .rules import Seen as Seen
    from .rules import display_host as display_host
    from .rules import fallback_addresses as fallback_addresses
    from .rules import fallback_order as fallback_order
    from .rules import is_alive as is_alive
    from .rules import merge_order as merge_order
    from .rules import merged_addresses as merged_addresses
    from .sqlfile import SCHEMA_VERSION as SCHEMA_VERSION
    from .store import PersistentStore as PersistentStore
else:

    def __getattr__(name: str) -> object:
        try:
            module = _LAZY[name]
        except KeyError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        value = getattr(__import__(__name__ + module, fromlist=[name]), name)
        globals()[name] = value
        return value
