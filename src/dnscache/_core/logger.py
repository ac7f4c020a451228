"""The ``dnscache`` logger, with the ``NullHandler`` a library owes the program it runs in.

Every module that logs takes :data:`log` from here, so the handler is in place
before the first record. Without it, a program that never configured logging
would get our warnings on stderr through ``logging.lastResort`` (and a hook's
traceback), as if they were its own; with it, records go wherever the program
sends the ``dnscache`` logger's (or the root logger's) records, and nowhere if
it sends them nowhere (the logging HOWTO's "Configuring Logging for a
Library"). The few problems a user must see whatever their logging set-up
(start-up activation that failed, a bad ``PYTHONDNSCACHE_*`` value) are written
to stderr or raised as warnings instead, and carry a ``dnscache:`` prefix there,
having no logger name to say whose they are.

``logging`` itself is imported only when a record could go anywhere: a record
can reach a handler only if somebody imported ``logging`` (to configure it), so
until then every call on :data:`log` is a no-op and the program's first
``import socket`` does not pay for ``logging``, ``traceback`` and ``string``
(about 4 ms). Once ``logging`` is in ``sys.modules`` the real logger is made,
with its handler, and used from then on.
"""

from __future__ import annotations

import sys
from typing import Any


def _nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


class _Log:
    """The ``dnscache`` logger, made on first use once ``logging`` is imported."""

    _logger: Any = None

    def _real(self) -> Any:
        if self._logger is None:
            import logging

            logger = logging.getLogger("dnscache")
            if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
                logger.addHandler(logging.NullHandler())
            self._logger = logger
        return self._logger

    def isEnabledFor(self, level: int) -> bool:
        if self._logger is None and "logging" not in sys.modules:
            return False
        return bool(self._real().isEnabledFor(level))

    def __getattr__(self, name: str) -> Any:
        if self._logger is None and "logging" not in sys.modules:
            return _nothing  # no handler can exist yet: nothing to emit
        return getattr(self._real(), name)


TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging

    log: logging.Logger
else:
    log = _Log()
