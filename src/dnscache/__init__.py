"""dnscache: a faithful, cached ``socket.getaddrinfo`` for every Python program.

Importing this package never patches anything. Turn it on with
:func:`install`, with ``PYTHONDNSCACHE=1`` in the environment (the ``.pth``
hook, or :func:`activate` from a ``sitecustomize``), or for a block with
:func:`patched`.

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

# Lazy (PEP 562): ``PYTHONDNSCACHE=1`` imports this package at every interpreter
# start-up, and the pytest plugin imports it in every pytest run, so importing it
# must cost nothing. The public names load their modules on first use.
TYPE_CHECKING = False  # typing itself costs a millisecond at start-up
if TYPE_CHECKING:
    from ._activation.patch import active_resolver, install, is_installed, patched, uninstall
    from ._activation.startup import activate
    from ._cache.entries import Entry
    from ._connect.health import Record
    from ._core.config import Config, ConfigWarning
    from ._core.policy import Lifetime
    from ._core.version import __version__ as __version__
    from ._engine.resolver import Resolver, Stats
    from ._sources.originals import get_original
    from ._tools.prometheus import DnscacheCollector
    from ._tools.prometheus import register as register_prometheus


__all__ = [
    "Config",
    "ConfigWarning",
    "DnscacheCollector",
    "Entry",
    "Lifetime",
    "Record",
    "Resolver",
    "Stats",
    "activate",
    "active_resolver",
    "get_original",
    "install",
    "is_installed",
    "patched",
    "register_prometheus",
    "uninstall",
]

# public name -> (submodule, attribute); a test keeps it in step with __all__
_LAZY = {
    "Config": ("._core.config", "Config"),
    "ConfigWarning": ("._core.config", "ConfigWarning"),
    "DnscacheCollector": ("._tools.prometheus", "DnscacheCollector"),
    "Entry": ("._cache.entries", "Entry"),  # what Resolver.entries() yields (read-only)
    "Lifetime": ("._core.policy", "Lifetime"),  # an Entry's life
    "Record": ("._connect.health", "Record"),  # what Resolver.address_health() maps to
    "Resolver": ("._engine.resolver", "Resolver"),
    "Stats": ("._engine.resolver", "Stats"),
    "activate": ("._activation.startup", "activate"),
    "active_resolver": ("._activation.patch", "active_resolver"),
    "get_original": ("._sources.originals", "get_original"),
    "install": ("._activation.patch", "install"),
    "is_installed": ("._activation.patch", "is_installed"),
    "patched": ("._activation.patch", "patched"),
    "register_prometheus": ("._tools.prometheus", "register"),
    "uninstall": ("._activation.patch", "uninstall"),
    "__version__": ("._core.version", "__version__"),  # the one source (read by hatch too)
}


if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all

    def __getattr__(name: str) -> object:
        try:
            module_name, attr = _LAZY[name]
        except KeyError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        value = getattr(__import__(__name__ + module_name, fromlist=[attr]), attr)
        globals()[name] = value  # later look-ups are plain attribute reads
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "__version__"})
