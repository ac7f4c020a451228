"""dnscache: a faithful, cached ``socket.getaddrinfo`` for every Python program.

Importing this package never patches anything. Turn it on with
:func:`install`, with ``PYTHONDNSCACHE=1`` in the environment, or for a block
with :func:`patched`.

PYTEST_DONT_REWRITE
"""

# Why the marker above: pytest marks every top-level package of a distribution
# that has a ``pytest11`` entry point for assertion rewriting
# (``Config._mark_plugins_for_rewrite`` -> ``AssertionRewritingHook.mark_rewrite``)
# and warns ``Module already imported so cannot be rewritten; dnscache`` when that
# package is already in ``sys.modules``, which it is whenever ``PYTHONDNSCACHE=1``
# activated us at start-up. Under ``filterwarnings = error`` that warning stops
# pytest before it collects anything, and ``-p no:dnscache`` cannot help because
# the marking happens for every installed plugin distribution. ``mark_rewrite``
# skips the warning for a module whose docstring holds ``PYTEST_DONT_REWRITE``
# (``AssertionRewriter.is_rewrite_disabled``). Moving the plugin to another
# top-level module would not help: that module belongs to the same distribution,
# so ``dnscache`` would still be marked. The marker disables rewriting of this
# file only, which has no asserts; submodules imported later are rewritten as
# for any plugin.

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
