"""The only module that rebinds anything: install(), uninstall(), patched().

Each activation is a *layer* that remembers exactly what it replaced. Layers
stack (time-machine style): the innermost ``patched()`` block wins and the one
below comes back when it exits. Removing a layer puts back what it replaced
only if the attribute is still ours; if somebody wrapped it after us, we leave
their wrapper in place and warn, rather than silently unpatching them (the
mistake dnspython's ``restore_system_resolver`` makes). Removing a layer that
is not on top splices it out: the layer above inherits what it replaced.

What is replaced is the table ``targets.TARGETS``. A target whose module is not
imported yet is patched by a post-import hook (``postimport``) the moment it
is, by every active layer, bottom first; the same hook re-applies the layers
after ``importlib.reload`` of a target module, which re-runs the module's code
and so wipes out whatever was patched.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from .._core.config import Config, check_options, make_config

if TYPE_CHECKING:
    from .._core.options import Options
from .._engine.resolver import Resolver
from . import pending, postimport
from .targets import TARGETS, Target

F = TypeVar("F", bound=Callable[..., Any])
_lock = threading.RLock()
_MISSING: Any = object()  # the holder inherited the attribute: restoring means deleting ours


def _reset_lock_in_child() -> None:
    global _lock
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_reset_lock_in_child)


def _holder(target: Target) -> Any:
    holder: Any = sys.modules[target.module]
    for part in target.holder.split(".") if target.holder else ():
        holder = getattr(holder, part)
    return holder


def _own(holder: Any, attr: str) -> Any:
    """The holder's own value of ``attr`` (not one inherited from a base class)."""
    return vars(holder).get(attr, _MISSING)


def _fabric() -> tuple[Any, ...]:
    """What a Resolver is made of that green runtimes replace: its locks, threads, sockets."""
    import socket

    return (threading.Lock, threading.Thread, socket.socket)


@dataclass(eq=False)
class _Layer:
    resolver: Resolver
    installed_by: str  # "install" or "patched"
    installed: dict[Target, Any] = field(default_factory=dict)
    replaced: dict[Target, Any] = field(default_factory=dict)
    fabric: tuple[Any, ...] = field(default_factory=_fabric)

    def apply(self, target: Target) -> None:
        holder = _holder(target)
        _patched_modules[target.module] = weakref.ref(sys.modules[target.module])
        func = target.factory(self.resolver)
        current = _own(holder, target.attr)
        for other, installed in self.installed.items():
            if installed is current and other is not target:
                # A re-export of what this layer already patched (eventlet's package
                # copies patcher.monkey_patch after the hook patched it): it replaced
                # what the first place held, and gets that back.
                current = self.replaced[other]
                break
        self.replaced[target] = current
        self.installed[target] = func
        setattr(holder, target.attr, func)


_layers: list[_Layer] = []
_watched: set[str] = set()  # target modules whose import _on_import is told about
# The module object our layers were applied to, per module name. eventlet's and gevent's
# import_patched() execute a *second copy* of a module (eventlet's socket, at `import
# eventlet`) while sys.modules briefly holds the copy: patching the copy would overwrite
# the layers' records of the real module, which uninstall() then could not restore.
_patched_modules: dict[str, weakref.ref[ModuleType]] = {}


def _on_import(module: ModuleType) -> None:
    """Post-import hook: apply every active layer, bottom first, to a module just (re)executed."""
    with _lock:
        seen = _patched_modules.get(module.__name__)
        if seen is not None and seen() not in (None, module):
            return  # a copy of a module already patched: not the one the program uses
        for target in TARGETS:
            if target.module != module.__name__ or not _layers:
                continue
            try:
                current = _own(_holder(target), target.attr)
                if any(layer.installed.get(target) is current for layer in _layers):
                    continue  # already ours: not a reload
                for layer in _layers:
                    layer.apply(target)
            except Exception:  # an import hook must never break the application's import
                continue


def _push(resolver: Resolver, installed_by: str) -> _Layer:
    with _lock:
        for target in TARGETS:
            if target.module not in _watched:
                postimport.when_imported(target.module, _on_import)
                _watched.add(target.module)
        layer = _Layer(resolver, installed_by)
        _layers.append(layer)
        for target in TARGETS:
            # A module still being imported is left to _on_import: its code has
            # not finished, and importing it here could deadlock on its import lock.
            if postimport.imported(target.module) is not None:
                try:
                    layer.apply(target)
                except Exception:  # e.g. a library version whose attribute moved: the
                    continue  # others are still patched, as _on_import would leave them
        return layer


def _pop(layer: _Layer) -> None:
    foreign = _remove(layer)
    layer.resolver.close()
    # Warn only once everything is undone: under -W error the warning raises.
    for name in foreign:
        warnings.warn(
            f"dnscache: {name} was replaced by something else after dnscache "
            "was installed; leaving that in place",
            RuntimeWarning,
            stacklevel=3,
        )


def _remove(layer: _Layer) -> list[str]:
    """Take ``layer`` off: put back what it replaced where it is still ours.

    Returns the names of the targets something else replaced since (left in place).
    """
    with _lock:
        if layer not in _layers:
            return []
        index = _layers.index(layer)
        above = _layers[index + 1] if index + 1 < len(_layers) else None
        foreign: list[str] = []
        for target, func in layer.installed.items():
            if above is not None and target in above.replaced:
                above.replaced[target] = layer.replaced[target]
                continue
            try:
                holder = _holder(target)
            except (KeyError, AttributeError):  # the module is gone: nothing left to restore
                continue
            if _own(holder, target.attr) is func:
                original = layer.replaced[target]
                if original is _MISSING:
                    delattr(holder, target.attr)
                else:
                    setattr(holder, target.attr, original)
            else:
                foreign.append(target.name)
        del _layers[index]
        return foreign


def install(config: Config | None = None, **options: Unpack[Options]) -> Resolver:
    """Patch socket.getaddrinfo, socket.create_connection and the other targets; returns
    the installed Resolver.

    Without arguments a second call returns the Resolver already installed (also one
    that ``PYTHONDNSCACHE=1`` installed at start-up). Arguments while installed are
    applied, never ignored: if ``make_config(config, options)`` (the defaults plus these
    options; the ``PYTHONDNSCACHE_*`` variables are not merged in, pass
    ``Config.from_env().replace(...)`` for that) equals the active configuration, the
    installed Resolver is returned; otherwise a new Resolver with that configuration
    replaces it everywhere dnscache patched (also under ``patched()`` blocks still open,
    which keep winning until they exit) and the old one is closed. Code that took a
    reference before (``from socket import getaddrinfo``) keeps the old Resolver, which
    still answers but does no background work. If something else wrapped a patched
    function since, the new Resolver cannot be put under it: RuntimeError naming it,
    and nothing changes.
    """
    check_options(options, "install()")
    pending.settle()
    wanted = None if config is None and not options else make_config(config, options)
    with _lock:
        layer = next((layer for layer in _layers if layer.installed_by == "install"), None)
        if layer is not None and (wanted is None or _same_config(layer.resolver.config, wanted)):
            return layer.resolver
    # Built outside the lock: a Resolver may import modules (dnspython, sqlite3), and a
    # post-import hook waiting for the lock must never wait for an import of ours.
    resolver = Resolver(wanted if wanted is not None else Config())
    old: Resolver | None = None
    with _lock:
        layer = next((layer for layer in _layers if layer.installed_by == "install"), None)
        if layer is None:
            _push(resolver, "install")
        elif wanted is None or _same_config(layer.resolver.config, wanted):
            resolver.close()  # another thread installed meanwhile, and it is what we want
            return layer.resolver
        else:
            try:
                old = _replace(layer, resolver)
            except BaseException:
                resolver.close()
                raise
    # The control endpoint (opened only if asked for) follows the installed Resolver:
    # outside the lock, like everything that may import or start a thread.
    if old is not None:
        _detach_control(old)
        old.close()
    if _control_wanted(resolver):  # the endpoint's module loads only when asked for
        from .control import attach

        attach(resolver)
    return resolver


def _control_wanted(resolver: Resolver) -> bool:
    """The option, or the variable (control.wanted's rule, without importing control)."""
    switch = os.environ.get("PYTHONDNSCACHE_CONTROL", "").strip().lower()
    return resolver.config.control or switch in ("1", "true", "yes", "on")


def _detach_control(resolver: Resolver) -> None:
    control = sys.modules.get(__package__ + ".control")  # never loaded: nothing to close
    if control is not None:
        control.detach(resolver)


def _same_config(a: Config, b: Config) -> bool:
    # Hooks are compare=False in Config (a function has no useful equality): same object.
    return a == b and all(
        getattr(a, f.name) is getattr(b, f.name) for f in fields(Config) if not f.compare
    )


def _replace(layer: _Layer, resolver: Resolver) -> Resolver:
    """Put ``resolver``'s functions where ``layer``'s are (caller holds the lock); the old one."""
    index = _layers.index(layer)
    above = _layers[index + 1] if index + 1 < len(_layers) else None
    places: list[tuple[Target, Any]] = []
    for target, func in layer.installed.items():
        if above is not None and target in above.replaced:
            if above.replaced[target] is not func:
                raise RuntimeError(_wrapped_since(target))
            places.append((target, above))
        else:
            holder = _holder(target)
            if _own(holder, target.attr) is not func:
                raise RuntimeError(_wrapped_since(target))
            places.append((target, holder))
    for target, place in places:
        func = target.factory(resolver)
        layer.installed[target] = func
        if isinstance(place, _Layer):
            place.replaced[target] = func
        else:
            setattr(place, target.attr, func)
    old, layer.resolver = layer.resolver, resolver
    return old


def _wrapped_since(target: Target) -> str:
    return (
        f"dnscache.install(): {target.name} was wrapped by something else after dnscache "
        "was installed, so a new configuration cannot be put under it; call "
        "dnscache.uninstall() first, or use dnscache.patched(...) for a block"
    )


def uninstall() -> None:
    """Restore what install() replaced and stop its background work. Harmless if not installed."""
    pending.settle()
    with _lock:
        layer = next((layer for layer in _layers if layer.installed_by == "install"), None)
    if layer is not None:
        _detach_control(layer.resolver)
        _pop(layer)


def rebase() -> Resolver | None:
    """Rebuild install()'s layer on top of what a green runtime just monkey-patched in.

    gevent and eventlet replace ``socket.getaddrinfo`` and ``create_connection``
    (over ours, when dnscache was installed first) and ``threading``'s locks and
    threads. Called right after they did (``runtimes/green.py``): a new Resolver
    with the same configuration is built now, so that it is made of the runtime's
    locks and threads and wraps the runtime's functions; the old layer is removed
    without a warning (the runtime's functions stay where they are, what is still
    ours is put back) and closed, and the new one pushed and applied everywhere.
    The cache starts empty. Returns the new Resolver, or None when nothing was
    done: dnscache is not installed, the runtime changed nothing we are made of
    (it patched before install(), or patches again), or ``patched()`` blocks are
    open (each keeps the Resolver it yielded; they are left as they are).
    """
    pending.settle()
    with _lock:
        if len(_layers) != 1 or _layers[0].installed_by != "install":
            return None
        old = _layers[0]
        if old.fabric == _fabric() and all(
            _own(_holder(target), target.attr) is func
            for target, func in old.installed.items()
            if target.module == "socket"
        ):
            return None  # patched before we were installed, or nothing changed: keep the cache
    resolver = Resolver(old.resolver.config)  # outside the lock, as in install()
    with _lock:
        if _layers != [old]:  # changed meanwhile: what is there now stands
            resolver.close()
            return None
        # Off first, then on again: the new layer must record the runtime's functions
        # as what it replaced (uninstall() gives them back), not the old originals.
        _remove(old)
        _push(resolver, "install")
    from .control import attach, detach

    detach(old.resolver)
    old.resolver.close()
    attach(resolver)
    return resolver


def is_installed() -> bool:
    """True while a dnscache layer (install() or a patched() block) is active."""
    pending.settle()
    return bool(_layers)


def active_resolver() -> Resolver | None:
    """The Resolver answering socket.getaddrinfo now, if any."""
    pending.settle()
    with _lock:
        return _layers[-1].resolver if _layers else None


class patched:
    """``with dnscache.patched(ttl=5) as resolver:`` / ``@dnscache.patched()``.

    A context manager (sync and async) yielding a fresh Resolver and a decorator
    for sync and async functions (each call gets its own Resolver). Nestable:
    the inner block wins and the outer is restored on exit, also on exceptions.
    """

    def __init__(self, config: Config | None = None, **options: Unpack[Options]) -> None:
        check_options(options, "patched()")
        self.config = make_config(config, options)
        self._layers: list[_Layer] = []

    def __enter__(self) -> Resolver:
        pending.settle()
        layer = _push(Resolver(self.config), "patched")
        self._layers.append(layer)
        return layer.resolver

    def __exit__(self, *exc: object) -> None:
        _pop(self._layers.pop())

    async def __aenter__(self) -> Resolver:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def __call__(self, func: F) -> F:
        import functools
        import inspect  # 10 ms of imports: only for the decorator form

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with patched(self.config):
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with patched(self.config):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


__all__ = ["active_resolver", "install", "is_installed", "patched", "uninstall"]
