"""The functions dnscache replaces, as they were before any dnscache layer.

Everything that must reach the real resolver (the system backend, refreshes,
address synthesis) asks here, so it never calls a patched function and never
caches twice. Our own replacements carry ``__dnscache__ = True`` and
``__wrapped__`` pointing at what they replaced, so the original is found by
unwrapping only our layers: a wrapper installed by someone else before us
(gevent, a tracer) is kept, as it would be without dnscache.

When what we replaced is the stdlib's own ``socket.getaddrinfo``, the engine
calls :func:`stdlib_getaddrinfo` instead (:func:`lean`): the same function,
tuple for tuple and member for member, without the ``Enum`` call the stdlib
makes for the family and the socket type of every tuple (about 5,000
instructions each, more than a numeric lookup in libc).
"""

from __future__ import annotations

import _socket
import socket
import types
from typing import Any

from .._core.addrinfo import AddrInfo, GetAddrInfo


def unwrap_ours(func: Any) -> Any:
    """``func`` with every dnscache layer peeled off."""
    while getattr(func, "__dnscache__", False):
        func = func.__wrapped__
    return func


def get_original(name: str) -> Any:
    """The ``socket`` module's ``name`` as it is without dnscache (e.g. "getaddrinfo")."""
    return unwrap_ours(getattr(socket, name))


# socket.getaddrinfo's own conversions, as dict lookups (see the module docstring).
# The maps are the enums' own, so a member added at run time is seen.
_FAMILIES: dict[Any, Any] = socket.AddressFamily._value2member_map_
_KINDS: dict[Any, Any] = socket.SocketKind._value2member_map_


def stdlib_getaddrinfo(
    host: Any, port: Any, family: Any = 0, type: Any = 0, proto: Any = 0, flags: Any = 0
) -> list[AddrInfo]:
    """``socket.getaddrinfo`` exactly, with its per-tuple ``Enum`` calls as dict lookups.

    The stdlib calls ``_intenum_converter(af, AddressFamily)``, which returns
    ``AddressFamily(af)`` (a lookup in its ``_value2member_map_``) or ``af``
    itself when that raises ValueError, the same for the socket type.
    """
    families = _FAMILIES
    kinds = _KINDS
    return [
        (families.get(af, af), kinds.get(kind, kind), pr, canon, sa)
        for af, kind, pr, canon, sa in _socket.getaddrinfo(host, port, family, type, proto, flags)
    ]


def is_stdlib(func: Any) -> bool:
    """True for the stdlib's own ``socket.getaddrinfo`` (not a wrapper or a proxy of it)."""
    return (
        type(func) is types.FunctionType
        and func.__globals__ is vars(socket)
        and func.__code__.co_name == "getaddrinfo"
    )


def lean(original: GetAddrInfo) -> GetAddrInfo:
    """``original``, or :func:`stdlib_getaddrinfo` when ``original`` is the stdlib's own.

    Anything else (gevent's, a tracer's wrapper, a test's counting function) is
    used as it is: dnscache calls whatever it replaced.
    """
    return stdlib_getaddrinfo if is_stdlib(original) else original
