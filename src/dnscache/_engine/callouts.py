"""Calling code we do not own: user hooks and logging, made safe to re-enter.

Every hang found in 0.1 came from a resource (a flight, a lock) held across a
call into code we don't own, or from such code calling back into us. Two
rules prevent both:

* The engine never calls out while it holds a lock or leads a flight: hooks,
  log records and spans are emitted before a flight starts or after it ended.
* While this thread is inside a call out (:func:`call_out`), dnscache
  itself stays out of the way: the slow path sees :func:`inside` and answers
  from a fresh entry or passes the call straight to the original
  ``getaddrinfo`` (no waiting, no leading, no logging), and :func:`say`
  drops the records it would log. So a logging handler that connects by name
  (``HTTPHandler``, ``SocketHandler``, a log shipper) resolves like the stdlib
  would, and a ``SocketHandler`` to a dead port cannot recurse through our own
  "connect failed" record; an ``on_cache_miss`` hook that resolves the same
  name gets the original's answer instead of waiting on itself.

The state is one thread-local counter, read only off the hit path.

And the quietest call out is the one not made: the lookup and connect paths
log nothing in normal operation (no "miss for ..." records at DEBUG), because a
record emitted from inside ``getaddrinfo`` or ``create_connection`` reaches the
application's handlers from inside the application's own network call; that
is how 0.1 made CPython's ``SocketHandler`` back off 30 s instead of 2.5 s.
Warnings are for degradations (once each) and failing hooks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .._core.logger import log

_T = TypeVar("_T")

_local = threading.local()
# logging's levels, without importing logging (see _core.logger).
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40

# Hooks that raised already, holding the hook itself: while it is held its id
# cannot be reused by another function (whose first failure must be loud too).
_failed_hooks: dict[int, Callable[..., object]] = {}
MAX_FAILED_HOOKS = 256


def inside() -> bool:
    """True while this thread runs code we called out to (a hook, a log handler)."""
    return getattr(_local, "depth", 0) > 0


def call_out(func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run ``func`` marked as a call out (see the module docstring).

    The mark is set inside the ``try`` and restored to its previous value in
    the ``finally``: an exception raised by a signal handler at any point can
    then leave it wrong only if it lands inside the ``finally`` itself (a
    ``contextlib.contextmanager`` would add windows of its own).
    """
    previous = getattr(_local, "depth", 0)
    try:
        _local.depth = previous + 1
        return func(*args, **kwargs)
    finally:
        _local.depth = previous


def say(level: int, message: str, *args: Any, exc_info: bool = False) -> None:
    """Log through the ``dnscache`` logger, unless we are inside a call out already."""
    if inside() or not log.isEnabledFor(level):
        return
    call_out(log.log, level, message, *args, exc_info=exc_info)


def call_hook(hook: Callable[..., object] | None, *args: Any) -> None:
    """Run a user hook; if it raises an Exception, log it (with its traceback once).

    A BaseException (KeyboardInterrupt, SystemExit) propagates: a hook runs in
    the caller's thread with nothing of ours held, so an interruption there is
    the caller's, and nothing is left to clean up.
    """
    if hook is not None:
        call_out(_run_hook, hook, args)


def _run_hook(hook: Callable[..., object], args: tuple[Any, ...]) -> None:
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
