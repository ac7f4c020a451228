"""Process events for every live Resolver: fork hooks and the flush at exit.

One set of fork hooks for all resolvers: ``os.register_at_fork`` cannot
unregister, so per-resolver hooks would pile up in a test suite creating
thousands of them.
"""

from __future__ import annotations

import atexit
import os
import weakref
from collections.abc import Callable
from typing import Any

_live: weakref.WeakSet[Any] = weakref.WeakSet()


def track(resolver: Any) -> None:
    _live.add(resolver)


def forget(resolver: Any) -> None:
    _live.discard(resolver)


def _each(method: str) -> Callable[[], None]:
    def run() -> None:
        for resolver in list(_live):
            try:
                getattr(resolver, method)()
            except Exception:  # a fork hook must never break the fork
                pass

    return run


@atexit.register
def _flush_at_exit() -> None:
    """Write what the persistent layers still hold queued (their writers are daemons)."""
    for resolver in list(_live):
        try:
            resolver._persisted.close()
        except Exception:  # exit must go on
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_each("_before_fork"),
        after_in_parent=_each("_after_fork_in_parent"),
        after_in_child=_each("_after_fork_in_child"),
    )
