"""The engine's side of connecting: resolve through the cache, race, remember outcomes.

``create_connection`` (the function installed as ``socket.create_connection``)
and ``connect`` resolve through the resolver's ``getaddrinfo``, connect with
Happy Eyeballs (``_connect.happy_eyeballs``) and record each attempt's outcome
in address health. A change in a host's order re-publishes only that host's
views (the store's host index), never walks the whole store.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import TYPE_CHECKING, Any

from .._cache.store import Store
from .._connect import happy_eyeballs
from .._connect.health import AddressHealth
from .._core.names import bare, encode_host
from .._sources.originals import get_original
from . import answers, callouts
from .persisted import Persisted

if TYPE_CHECKING:
    from .resolver import Resolver

# Connect errors that say something about the destination address. Others
# (EMFILE, EADDRINUSE from source_address, EAFNOSUPPORT...) are ours, not its.
_ADDRESS_FAULTS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
    }
)


def _is_address_fault(error: BaseException) -> bool:
    return isinstance(error, TimeoutError) or (
        isinstance(error, OSError) and error.errno in _ADDRESS_FAULTS
    )


def _new_socket(family: int, type: int, proto: int) -> socket.socket:
    """socket.socket looked up per call, so gevent/eventlet patching after import applies."""
    return socket.socket(family, type, proto)


def health_key(host: Any) -> bytes | None:
    """The key address health is kept under: the cache key without case or final dot."""
    try:
        return bare(encode_host(host))
    except (TypeError, UnicodeError):
        return None


class Connecting:
    """Connect for one Resolver, keeping its address health."""

    def __init__(
        self, resolver: Resolver, health: AddressHealth, store: Store, persisted: Persisted
    ) -> None:
        self._resolver = resolver
        self._health = health
        self._store = store
        self._persisted = persisted

    def make_create_connection(self) -> Any:
        connect = self.connect

        def create_connection(
            address: tuple[Any, Any],
            timeout: Any = happy_eyeballs._GLOBAL_DEFAULT_TIMEOUT,
            source_address: Any = None,
            *,
            all_errors: bool = False,
        ) -> socket.socket:
            host, port = address
            return connect(host, port, timeout, source_address, all_errors=all_errors)

        create_connection.__name__ = create_connection.__qualname__ = "create_connection"
        create_connection.__doc__ = socket.create_connection.__doc__
        create_connection.__wrapped__ = get_original("create_connection")  # type: ignore[attr-defined]
        create_connection.__dnscache__ = True  # type: ignore[attr-defined]
        return create_connection

    def connect(
        self,
        host: Any,
        port: Any,
        timeout: Any = happy_eyeballs._GLOBAL_DEFAULT_TIMEOUT,
        source_address: Any = None,
        *,
        family: int = 0,
        all_errors: bool = False,
        socket_options: Any = None,
    ) -> socket.socket:
        resolver = self._resolver
        infos = resolver.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        key = health_key(host)

        def attempt_done(address: tuple[int, Any], error: BaseException | None) -> None:
            try:
                if key is not None:
                    self._record(key, str(address[1][0]), error)
            except Exception:  # bookkeeping must never break a connect
                callouts.say(logging.DEBUG, "could not record a connect outcome", exc_info=True)

        return happy_eyeballs.create_connection(
            infos,  # already in health order: cached results are rebuilt when health changes
            timeout,
            source_address,
            all_errors=all_errors,
            delay=resolver.config.happy_eyeballs_delay,
            socket_options=socket_options,
            on_attempt_done=attempt_done,
            socket_factory=_new_socket,
        )

    def _record(self, host: bytes, ip: str, error: BaseException | None) -> None:
        """Remember a connect outcome; a change in order re-publishes the host's views."""
        if error is not None and not _is_address_fault(error):
            return  # EMFILE, a bad source_address...: not the destination's fault
        if error is None:
            self._persisted.connected(host, ip)
        health = self._health
        before = health.version
        health.record(answers.text(host), ip, error is None)
        if health.version != before:
            store = self._store
            with store.lock:
                for entry in store.of_host(host):
                    store.drop_views(entry)
