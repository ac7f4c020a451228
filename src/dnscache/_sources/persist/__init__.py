"""The persistent layer (after Delta Chat): every address seen per host, in one sqlite file.

:class:`PersistentStore` is the table; the pure rules the engine orders and
merges addresses with live in :mod:`.rules`. See :mod:`.store` for the design.
"""

from __future__ import annotations

from .files import default_path
from .rules import DEFAULT_MAX_AGE, Seen, fallback_order, is_alive, merge_order
from .sqlfile import SCHEMA_VERSION
from .store import PersistentStore

__all__ = [
    "DEFAULT_MAX_AGE",
    "SCHEMA_VERSION",
    "PersistentStore",
    "Seen",
    "default_path",
    "fallback_order",
    "is_alive",
    "merge_order",
]
