"""Which runtimes resolve through the cache in this interpreter: ``is_active(runtime)``.

``doctor`` asks for each runtime it lists. The answer is True when its lookups
are answered by the active resolver now, or will be once it is imported (the
post-import hook patches it then); False when dnscache has an adapter for it
that is not in effect (dnscache not installed, or something replaced what we
put in place); None for a runtime we have no adapter for.

Every adapter uses the cache only while ``socket.getaddrinfo`` is the cache's
own function (issue 10's rule), so that comes first for all of them. gevent
and eventlet replace ``socket.getaddrinfo`` when they monkey-patch; dnscache
then puts itself back on top (``runtimes/green.py``), so for them "covered"
is that rule plus the way we hear of their patching: eventlet's wrapped
``monkey_patch``, gevent's plugin entry point in our package metadata.

Nothing here imports a runtime: a module not imported yet is judged by what
will happen when it is.
"""

from __future__ import annotations

import socket
import sys

from . import patch
from .targets import TARGETS, Target

# runtime -> the targets that must hold our replacement once their module is imported
_ADAPTERS: dict[str, tuple[str, ...]] = {
    "asyncio": ("asyncio.base_events.BaseEventLoop.getaddrinfo",),
    "urllib3": ("urllib3.util.connection.create_connection",),
    "uvloop": ("uvloop.Loop.getaddrinfo", "uvloop.Loop.create_connection"),
    "trio": ("trio._socket._resolver",),
    "gevent": (),  # gevent calls our plugin: see _gevent_plugin_registered()
    "eventlet": ("eventlet.patcher.monkey_patch", "eventlet.monkey_patch"),
}
GEVENT_PLUGIN_GROUP = "gevent.plugins.monkey.did_patch_module"


def runtimes() -> tuple[str, ...]:
    """The runtimes dnscache has an adapter for."""
    return tuple(_ADAPTERS)


def is_active(runtime: str) -> bool | None:
    """True if ``runtime``'s lookups go (or will go, once imported) through the cache."""
    names = _ADAPTERS.get(runtime)
    if names is None:
        return None
    if not patch.is_installed() or not getattr(socket.getaddrinfo, "__dnscache__", False):
        return False
    if runtime == "gevent" and not _gevent_plugin_registered():
        return False
    by_name = {target.name: target for target in TARGETS}
    return all(_in_place(by_name[name]) for name in names)


def _in_place(target: Target) -> bool:
    module = sys.modules.get(target.module)
    if module is None:
        return True  # the post-import hook patches it on import
    holder: object = module
    try:
        for part in target.holder.split(".") if target.holder else ():
            holder = getattr(holder, part)
        current = getattr(holder, target.attr)
    except AttributeError:  # a version that moved it: the patch could not apply either
        return False
    return bool(getattr(current, "__dnscache__", False))


def _gevent_plugin_registered() -> bool:
    """True if gevent will find our plugin (it reads entry points from package metadata)."""
    from importlib.metadata import entry_points

    return any(
        point.value.startswith("dnscache.") for point in entry_points(group=GEVENT_PLUGIN_GROUP)
    )


__all__ = ["GEVENT_PLUGIN_GROUP", "is_active", "runtimes"]
