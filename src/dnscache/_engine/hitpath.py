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
the host's class is too. The four integers are taken as they are (an
``IntEnum`` member or a bool hashes and compares like its int, and the
original takes it like its int), after one check that they are integers at
all: :data:`INTS` is indexed by their sum, which raises ``TypeError`` unless
the sum is an int, and it is one only when all four are (a float, a
``Decimal`` or a ``Fraction`` among them makes it one of theirs, and the
original rejects each of those). That is three additions the interpreter
specialises for ints and one tuple index; the ``family | 0`` per argument it
replaces was four generic operations, and on an ``IntFlag``
(``socket.AI_ADDRCONFIG``, as aiohttp passes it) a call into ``enum``'s Python
code. A sum outside the table (a socket type with ``SOCK_CLOEXEC`` in it, say)
raises ``IndexError``: such calls, and anything unhashable, go to the slow
path, which makes the same key with ``operator.index`` (``calls.raw_key``) or
lets the original raise its own exception. A ``str`` subclass gets views of
its own (cheap, and exact).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from .._cache.store import Store
from .stats import Counters

Miss = Callable[..., Any]

# Room for any family, socket type and protocol number plus glibc's largest flags
# (0x4ff, AI_NUMERICSERV and all below it); what the values are does not matter.
INTS_LIMIT = 2048
INTS: tuple[None, ...] = (None,) * INTS_LIMIT


def make_hit_path(
    store: Store, clock: Callable[[], float], counters: Counters, on_miss: Miss
) -> Any:
    """The hit path as a closure over local references; ``on_miss`` gets the rest.

    ``on_miss(host, port, family, type, proto, flags, key)`` is given the built
    key, or None when the arguments could not even be made into one.
    """
    front = store.front
    record_read = store.reads.append
    gaierror = socket.gaierror
    ints = INTS

    def getaddrinfo(
        host: Any, port: Any, family: Any = 0, type: Any = 0, proto: Any = 0, flags: Any = 0
    ) -> Any:
        try:
            key = (host, host.__class__, port, port.__class__, family, type, proto, flags)
            ints[family + type + proto + flags]  # TypeError unless all four are ints
            view = front[key]
        except KeyError:
            return on_miss(host, port, family, type, proto, flags, key)
        except Exception:  # unhashable or not an int: the slow path sorts it out
            return on_miss(host, port, family, type, proto, flags, None)
        if clock() < view.until:
            record_read(view.key)
            result = view.result
            if result is not None:
                counters.hits += 1
                return [*result]
            counters.negative_hits += 1
            raise gaierror(*view.error)  # type: ignore[misc]
        return on_miss(host, port, family, type, proto, flags, key)

    return getaddrinfo
