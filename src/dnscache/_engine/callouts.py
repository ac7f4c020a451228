"""Calling code we do not own: user hooks and logging, made safe to re-enter.

Every hang found in 0.1 came from a resource (a flight, a lock) held across a
call into code we don't own, or from such code calling back into us. Two
rules prevent both:

* The engine never calls out while it holds a lock or leads a flight: hooks,
  log records and spans are emitted before a flight starts or after it ended.
* While this thread is inside a call out (:func:`calling_out`), dnscache
  itself stays out of the way: the slow path sees :func:`inside` and answers
  from a fresh entry or passes the call straight to the original
  ``getaddrinfo`` (no waiting, no leading, no logging), and :func:`say`
  drops the records it would log. So a logging handler that connects by name
  (``HTTPHandler``, ``SocketHandler``, a log shipper) resolves like the stdlib
  would, and a ``SocketHandler`` to a dead port cannot recurse through our own
  "connect failed" record; an ``on_cache_miss`` hook that resolves the same
  name gets the original's answer instead of waiting on itself.

The state is one thread-local counter, read only off the hit path.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger("dnscache")
_local = threading.local()

# Hooks that raised already, holding the hook itself: while it is held its id
# cannot be reused by another function (whose first failure must be loud too).
_failed_hooks: dict[int, Callable[..., object]] = {}
MAX_FAILED_HOOKS = 256


def inside() -> bool:
    """True while this thread runs code we called out to (a hook, a log handler)."""
    return getattr(_local, "depth", 0) > 0


@contextlib.contextmanager
def calling_out() -> Iterator[None]:
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1


def say(level: int, message: str, *args: Any, exc_info: bool = False) -> None:
    """Log through the ``dnscache`` logger, unless we are inside a call out already."""
    if inside() or not log.isEnabledFor(level):
        return
    with calling_out():
        log.log(level, message, *args, exc_info=exc_info)


def call_hook(hook: Callable[..., object] | None, *args: Any) -> None:
    """Run a user hook; if it raises an Exception, log it (with its traceback once).

    A BaseException (KeyboardInterrupt, SystemExit) propagates: a hook runs in
    the caller's thread with nothing of ours held, so an interruption there is
    the caller's, and nothing is left to clean up.
    """
    if hook is None:
        return
    with calling_out():
        try:
            hook(*args)
        except Exception:
            first = _failed_hooks.get(id(hook)) is not hook
            if first:
                if len(_failed_hooks) >= MAX_FAILED_HOOKS:  # bounded: forget, log loudly again
                    _failed_hooks.clear()
                _failed_hooks[id(hook)] = hook
                log.exception("hook %r raised; ignored", hook)
            else:
                log.debug("hook %r raised again; ignored", hook, exc_info=True)
