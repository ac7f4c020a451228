"""The dnspython backend, as the engine sees it: a light facade over :mod:`.stub`.

The engine imports this module at start-up whatever the backend; dnspython (and
:mod:`.stub`, :mod:`.transports`, :mod:`.rfc6724`) is imported only when a
``DnspythonBackend`` is built, so a program on the system backend never pays
for it. What the backend does (glibc's search order, byte-exact names, both
families in flight at once, the lifetime, the caller's signals, encrypted
transports) is described in :mod:`.stub`.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .._core.config import Config, ConfigWarning, env_name
from .answer import Answer, Backend

if TYPE_CHECKING:
    from .stub import StubResolver

# A cold miss must get at least this long, even with resolve_timeout=0 (which
# means "never wait when a stale answer exists", not "never wait at all").
MIN_LIFETIME = 0.5


def lifetime_for(resolve_timeout: float) -> float:
    """The backend's lookup lifetime for a ``resolve_timeout``: at least MIN_LIFETIME,
    at most what ``threading``/``poll`` accept."""
    return min(max(resolve_timeout, MIN_LIFETIME), threading.TIMEOUT_MAX)


class DnspythonBackend:
    """A stub resolver with real record TTLs (the :class:`~.answer.Backend` protocol).

    ``lifetime`` bounds a whole lookup (both families, every search candidate,
    server, retry and TCP fallback); :meth:`from_config` sets it from
    ``resolve_timeout``. ``nameservers`` are ``Config.nameservers`` strings
    (resolv.conf's when empty); ``ca_bundle`` replaces the system trust store
    for ``tls://`` and ``https://`` servers.
    """

    def __init__(
        self,
        fallback: Backend,
        hosts_names: Callable[[], frozenset[bytes]],
        nameservers: Sequence[str] = (),
        lifetime: float = 5.0,
        *,
        ca_bundle: str | None = None,
        resolve_host: Callable[[str, int], list[str]] | None = None,
    ) -> None:
        from .stub import StubResolver  # imports dnspython: only when this backend is chosen

        self._stub: StubResolver = StubResolver(
            fallback,
            hosts_names,
            nameservers,
            lifetime_for(lifetime),
            ca_bundle=ca_bundle,
            resolve_host=resolve_host,
        )

    @classmethod
    def from_config(
        cls, config: Config, fallback: Backend, hosts_names: Callable[[], frozenset[bytes]]
    ) -> DnspythonBackend:
        """The backend a Resolver with ``config`` uses (the entry point for the engine).

        The lifetime is ``resolve_timeout`` (at least MIN_LIFETIME): a cold miss
        against a silent server fails with EAI_AGAIN after ``resolve_timeout``.
        """
        ca_bundle = config.tls_ca_bundle
        if ca_bundle is not None and not os.path.isfile(ca_bundle):
            warnings.warn(
                f"dnscache: {env_name('tls_ca_bundle')}={ca_bundle!r} is not a readable "
                "file; using the system trust store",
                ConfigWarning,
                stacklevel=2,
            )
            ca_bundle = None
        return cls(
            fallback,
            hosts_names,
            config.nameservers,
            lifetime=config.resolve_timeout,
            ca_bundle=ca_bundle,
        )

    def resolve(self, host: bytes, family: int, flags: int, *, background: bool = False) -> Answer:
        return self._stub.resolve(host, family, flags, background=background)

    @property
    def servers(self) -> list[Any]:
        return self._stub.servers

    @property
    def stub(self) -> StubResolver:
        return self._stub

    def close(self) -> None:
        """Wake every query blocked on a socket (they fail at once); drop kept connections."""
        self._stub.close()

    def after_fork_in_child(self) -> None:
        self._stub.after_fork_in_child()
