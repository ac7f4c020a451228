"""The hit path: a closure that answers a cached call with a dict lookup and one clock read.

It builds a key from the caller's arguments, looks it up in the store's
``front`` dict of views, compares one time stamp, records the read and returns
a copy of the finished result. Anything else goes to ``on_miss`` (the slow
path), which also re-validates views: a view's ``until`` is the earliest of
the moments it must be looked at again (its entry's refresh point, the end of
a health penalty, the next check of /etc/hosts and friends, the next note of
use for the persistent layer), so all of those cost the hit path nothing.

The key is type-tagged so that equal-but-different arguments never share a
view: ``80`` and ``80.0`` (or ``Decimal(80)``) hash alike, but the original
rejects a float port, so the port's class is part of the key; ``b"x"`` and
``memoryview(b"x")`` hash alike, but the original rejects a memoryview host, so
the host's class is too. ``family | 0`` (and the same for type, proto and
flags) raises ``TypeError`` for anything the original would not take as an
integer, sending it to the slow path, which lets the original raise its own
exception. A ``str`` subclass gets views of its own (cheap, and exact).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from .._cache.store import Store
from .stats import Counters

Miss = Callable[..., Any]


def make_hit_path(
    store: Store, clock: Callable[[], float], counters: Counters, on_miss: Miss
) -> Any:
    """The hit path as a closure over local references; ``on_miss`` gets the rest.

    ``on_miss(host, port, family, type, proto, flags, key)`` is given the built
    key, or None when the arguments could not even be made into one.
    """
    front_get = store.front.get
    record_read = store.reads.append
    gaierror = socket.gaierror

    def getaddrinfo(
        host: Any, port: Any, family: Any = 0, type: Any = 0, proto: Any = 0, flags: Any = 0
    ) -> Any:
        try:
            key = (
                host,
                host.__class__,
                port,
                port.__class__,
                family | 0,
                type | 0,
                proto | 0,
                flags | 0,
            )
            view = front_get(key)
        except TypeError:  # unhashable or not an integer: the original says what is wrong
            return on_miss(host, port, family, type, proto, flags, None)
        if view is not None and clock() < view.until:
            record_read(view.key)
            result = view.result
            if result is not None:
                counters.hits += 1
                return result.copy()
            counters.negative_hits += 1
            raise gaierror(*view.error)  # type: ignore[misc]
        return on_miss(host, port, family, type, proto, flags, key)

    return getaddrinfo
