"""The functions dnscache replaces, as they were before any dnscache layer.

Everything that must reach the real resolver (the system backend, refreshes,
address synthesis) asks here, so it never calls a patched function and never
caches twice. Our own replacements carry ``__dnscache__ = True`` and
``__wrapped__`` pointing at what they replaced, so the original is found by
unwrapping only our layers: a wrapper installed by someone else before us
(gevent, a tracer) is kept, as it would be without dnscache.
"""

from __future__ import annotations

import socket
from typing import Any


def unwrap_ours(func: Any) -> Any:
    """``func`` with every dnscache layer peeled off."""
    while getattr(func, "__dnscache__", False):
        func = func.__wrapped__
    return func


def get_original(name: str) -> Any:
    """The ``socket`` module's ``name`` as it is without dnscache (e.g. "getaddrinfo")."""
    return unwrap_ours(getattr(socket, name))
