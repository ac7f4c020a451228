"""dnscache: a faithful, cached ``socket.getaddrinfo`` for every Python program.

Importing this package never patches anything. Turn it on with
:func:`install`, with ``PYTHONDNSCACHE=1`` in the environment, or for a block
with :func:`patched`.
"""

from __future__ import annotations

from ._activation.patch import active_resolver, install, is_installed, patched, uninstall
from ._core.config import Config, ConfigWarning
from ._engine.resolver import Resolver, Stats
from ._sources.originals import get_original
from ._tools.prometheus import DnscacheCollector
from ._tools.prometheus import register as register_prometheus

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigWarning",
    "DnscacheCollector",
    "Resolver",
    "Stats",
    "active_resolver",
    "get_original",
    "install",
    "is_installed",
    "patched",
    "register_prometheus",
    "uninstall",
]
