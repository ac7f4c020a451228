"""gevent and eventlet: the cache on top of their cooperative resolvers, in either import order.

Both runtimes *monkey-patch*: they replace ``socket.getaddrinfo`` and
``socket.create_connection`` (and ``threading``'s locks and threads, ``select``,
``time.sleep``...) with cooperative versions that yield to their hub instead
of blocking the process. gevent's ``getaddrinfo`` asks its configured resolver
(by default a pool of real threads calling libc; ``GEVENT_RESOLVER=dnspython``
a dnspython client on cooperative sockets); eventlet's is ``greendns``
(dnspython on green sockets), or libc itself with ``EVENTLET_NO_GREENDNS=yes``.

**Monkey-patch first, dnscache second** needs nothing from us: dnscache wraps
what it finds, so its cache sits on top of the cooperative ``getaddrinfo``
(a hit never reaches the hub; a miss asks the runtime's resolver) and every
lock, condition and thread it makes from then on is the runtime's (a worker
"thread" is a greenlet, a lock wait yields to the hub).

**dnscache first, monkey-patch second** (``PYTHONDNSCACHE=1`` under gunicorn's
gevent or eventlet worker, which patches in the worker after start-up) is the
one that needs this module. The runtime replaces our functions with its own,
so without us the cache would simply never be asked; and the resolver we
built before holds real locks and, as its original ``getaddrinfo``, the
blocking libc call. So right after the runtime patched ``socket`` or
``threading``, :func:`rebase` builds a new Resolver with the same
configuration (now out of the runtime's primitives, over the runtime's
``getaddrinfo`` and ``create_connection``) and puts dnscache's functions back
on top, through ``patch.rebase``; the old resolver is closed. How we hear of it:

* gevent announces every patch to its plugins: the entry point
  ``gevent.plugins.monkey.did_patch_module`` in our package metadata names
  :func:`gevent_did_patch_module`, which gevent loads and calls itself (so
  dnscache need not have been imported, nor gevent watched, beforehand);
* eventlet announces nothing, so ``eventlet.monkey_patch`` (and its alias
  ``eventlet.patcher.monkey_patch``) are wrapped while dnscache is installed:
  the wrapper calls eventlet's, then rebases.

Nothing here may break the runtime's patching: every failure of ours is
swallowed (gevent propagates a subscriber's exception into ``patch_all``).
"""

from __future__ import annotations

import sys
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..._engine.resolver import Resolver

# gevent's names for the modules whose patching changes what a Resolver is made of.
_GEVENT_MODULES = frozenset({"socket", "thread", "threading"})


def rebase() -> None:
    """Put dnscache back on top after a green runtime patched ``socket`` or ``threading``."""
    patch = sys.modules.get("dnscache._activation.patch")
    if patch is None:  # dnscache was never installed in this process: nothing to move
        return
    try:
        patch.rebase()
    except Exception:  # never break the runtime's monkey-patching
        pass


def gevent_did_patch_module(event: Any) -> None:
    """gevent plugin (entry point ``gevent.plugins.monkey.did_patch_module``)."""
    try:
        if getattr(event, "module_name", None) in _GEVENT_MODULES:
            rebase()
    except Exception:  # gevent re-raises a plugin's exception out of patch_all()
        pass


# One wrapper per resolver and original: eventlet's package re-exports
# ``patcher.monkey_patch`` (``eventlet.monkey_patch``), and both names must hold the
# same object, so that patch.py sees one replacement in two places.
_wrappers: weakref.WeakKeyDictionary[Resolver, dict[Any, Any]] = weakref.WeakKeyDictionary()


def eventlet_monkey_patch(resolver: Resolver) -> Any:
    """``eventlet.patcher.monkey_patch``: eventlet's, then :func:`rebase`."""
    return _monkey_patch_for(resolver, sys.modules["eventlet.patcher"].monkey_patch)


def eventlet_package_monkey_patch(resolver: Resolver) -> Any:
    """``eventlet.monkey_patch``, the package's re-export: the same wrapper."""
    return _monkey_patch_for(resolver, sys.modules["eventlet"].monkey_patch)


def _monkey_patch_for(resolver: Resolver, current: Any) -> Any:
    from ..._sources.originals import unwrap_ours

    # What eventlet defined, under any wrapper of ours: the wrapper only has to call
    # it and rebase, so one level is enough whatever install() or patched() did before.
    original = unwrap_ours(current)
    made = _wrappers.setdefault(resolver, {})
    wrapper = made.get(original)
    if wrapper is None:
        wrapper = made[original] = _wrap_monkey_patch(original)
    return wrapper


def _wrap_monkey_patch(original: Any) -> Any:
    def monkey_patch(**on: Any) -> None:
        original(**on)
        rebase()

    monkey_patch.__name__ = monkey_patch.__qualname__ = "monkey_patch"
    monkey_patch.__doc__ = original.__doc__
    monkey_patch.__module__ = original.__module__
    monkey_patch.__wrapped__ = original  # type: ignore[attr-defined]
    monkey_patch.__dnscache__ = True  # type: ignore[attr-defined]
    return monkey_patch


__all__ = [
    "eventlet_monkey_patch",
    "eventlet_package_monkey_patch",
    "gevent_did_patch_module",
    "rebase",
]
