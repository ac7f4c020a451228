"""trio: a cached name is answered without trio's worker-thread hop.

``trio.socket.getaddrinfo`` first tries the arguments as numeric (in the
task, no thread), then encodes a ``str`` host with IDNA 2008, then asks the
run's *hostname resolver* if one is set (``trio.socket.set_custom_hostname_resolver``,
a ``RunVar``), and otherwise runs ``socket.getaddrinfo`` in a worker thread
(``trio.to_thread.run_sync(..., abandon_on_cancel=True)``). That thread is
taken for every call, cached or not: tens of microseconds for what the cache
answers in well under one.

Where we come in: the resolver slot. Everything that resolves in trio goes
through that one function body, which reads the module global
``trio._socket._resolver`` at call time: ``trio.socket.getaddrinfo``,
``open_tcp_stream`` and ``SocketType.connect`` (each of which bound the
*function* at its own import, so wrapping the function would take three
patches and would miss the bindings made before ``install()``), anyio's trio
backend, and so httpx under trio. While dnscache is installed, that global is
a :class:`Slot` standing in front of trio's ``RunVar``. When the run has no
resolver of its own, the slot answers with :class:`CachedResolver`, which
returns a fresh cached answer after one ``trio.lowlevel.checkpoint()`` (every
trio async function is a checkpoint, so a loop of hits still lets other tasks
run and still notices cancellation) and sends a miss to the very thread call
trio would have made, with its cancellation semantics: a cancelled caller is
released at once and the abandoned thread finishes the lookup, which the cache
keeps.

Why not register with ``set_custom_hostname_resolver`` itself: it is per run
(a ``RunVar``), and trio has no hook at the start of a run to call it from, so
every ``trio.run`` started before or after ``install()`` would have to be
found. The slot covers every run, and keeps trio's own steps before it (the
numeric fast path, IDNA 2008) and a program's own resolver, which always
wins. ``set_custom_hostname_resolver`` still returns exactly what the program
set (``None`` at first): the slot answers that function with the run's real
value.

Issue 10's rule: the slot hands out :class:`CachedResolver` only while
``socket.getaddrinfo`` is the cache's own; otherwise trio runs its default
path, which calls whatever ``socket.getaddrinfo`` is (a mock, gevent) in its
thread, exactly as without dnscache.
"""

from __future__ import annotations

import socket
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..._engine.resolver import Resolver

_NO_DEFAULT: Any = object()


class CachedResolver:
    """trio's default resolver with a cache in front (``trio.abc.HostnameResolver``'s methods)."""

    __slots__ = ("_ours", "_peek")

    def __init__(self, resolver: Resolver) -> None:
        self._peek = resolver.peek
        self._ours = resolver.getaddrinfo

    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> Any:
        trio = sys.modules["trio"]
        if socket.getaddrinfo is self._ours:
            try:
                result = self._peek(host, port, family, type, proto, flags)
            except socket.gaierror:  # a fresh cached failure: the same checkpoint first
                await trio.lowlevel.checkpoint()
                raise
            if result is not None:
                await trio.lowlevel.checkpoint()
                return result
        # trio's own default, word for word (trio/_socket.py, getaddrinfo).
        return await trio.to_thread.run_sync(
            socket.getaddrinfo, host, port, family, type, proto, flags, abandon_on_cancel=True
        )

    async def getnameinfo(self, sockaddr: Any, flags: int) -> tuple[str, str]:
        trio = sys.modules["trio"]
        result: tuple[str, str] = await trio.to_thread.run_sync(
            socket.getnameinfo, sockaddr, flags, abandon_on_cancel=True
        )
        return result


class Slot:
    """Stands in for ``trio._socket._resolver``, trio's per-run resolver ``RunVar``.

    ``get`` returns what the run set, if anything; otherwise, while
    ``socket.getaddrinfo`` is ours, a :class:`CachedResolver`. Everything else
    (``set``, ``reset``, names) is the RunVar's.
    """

    __dnscache__ = True

    def __init__(self, var: Any, resolver: Resolver, setter_code: Any) -> None:
        self.__wrapped__ = var
        self._ours = resolver.getaddrinfo
        self._resolver = resolver
        self._cached: Any = None
        self._setter_code = setter_code

    def get(self, default: Any = _NO_DEFAULT) -> Any:
        var = self.__wrapped__
        value = var.get() if default is _NO_DEFAULT else var.get(default)
        if (
            value is None
            and socket.getaddrinfo is self._ours
            # set_custom_hostname_resolver() returns the run's previous resolver: the
            # program's, never ours (it would return ours to a program that set none).
            and sys._getframe(1).f_code is not self._setter_code
        ):
            cached = self._cached
            if cached is None:
                cached = self._cached = CachedResolver(self._resolver)
            return cached
        return value

    def set(self, value: Any) -> Any:
        return self.__wrapped__.set(value)

    def reset(self, token: Any) -> None:
        self.__wrapped__.reset(token)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__wrapped__, name)

    def __repr__(self) -> str:
        return repr(self.__wrapped__)


def resolver_slot(resolver: Resolver) -> Slot:
    """The replacement for ``trio._socket._resolver``."""
    module = sys.modules["trio._socket"]
    setter = module.set_custom_hostname_resolver
    return Slot(module._resolver, resolver, setter.__code__)


__all__ = ["CachedResolver", "Slot", "resolver_slot"]
