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

Imported only once the Resolver is built (``logging`` costs milliseconds, and
``python -c pass`` with ``PYTHONDNSCACHE=1`` must not pay them), never by the
start-up hook itself.
"""

from __future__ import annotations

import logging

log = logging.getLogger("dnscache")
if not any(isinstance(handler, logging.NullHandler) for handler in log.handlers):
    log.addHandler(logging.NullHandler())
