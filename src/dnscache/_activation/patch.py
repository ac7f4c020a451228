"""The only module that rebinds ``socket.*``: install(), uninstall(), patched().

Each activation is a *layer* that remembers exactly what it replaced. Layers
stack (time-machine style): the innermost ``patched()`` block wins and the one
below comes back when it exits. Removing a layer puts back what it replaced
only if ``socket.getaddrinfo`` is still ours; if somebody wrapped it after us,
we leave their wrapper in place and warn, rather than silently unpatching them
(the mistake dnspython's ``restore_system_resolver`` makes). Removing a layer
that is not on top splices it out: the layer above inherits what it replaced.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import wrapt

from .._activation import adapters as _adapters
from .._core.config import Config, make_config
from .._engine.resolver import Resolver

F = TypeVar("F", bound=Callable[..., Any])
_lock = threading.RLock()
log = logging.getLogger("dnscache")


def _reset_lock_in_child() -> None:
    global _lock
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_reset_lock_in_child)


@dataclass(frozen=True)
class _Target:
    """One function we replace: ``module.owner.attr`` (owner "" = the module itself)."""

    module: str
    owner: str
    attr: str
    make: Callable[[Resolver], Any]

    @property
    def name(self) -> str:
        return ".".join(p for p in (self.module, self.owner, self.attr) if p)

    def holder(self) -> Any:
        module = sys.modules[self.module]
        return getattr(module, self.owner) if self.owner else module


# socket is always there. asyncio and urllib3 are patched only once imported
# (importing them ourselves would slow every program's start-up): a wrapt
# post-import hook applies the active layers when they are first imported.
TARGETS = (
    _Target("socket", "", "getaddrinfo", lambda r: r.getaddrinfo),
    _Target("socket", "", "create_connection", lambda r: r.create_connection),
    _Target("asyncio.base_events", "BaseEventLoop", "getaddrinfo", _adapters.asyncio_getaddrinfo),
    _Target(
        "urllib3.util.connection", "", "create_connection", _adapters.urllib3_create_connection
    ),
)


@dataclass(eq=False)
class _Layer:
    resolver: Resolver
    installed_by: str  # "install" or "patched"
    installed: dict[_Target, Any] = field(default_factory=dict)
    replaced: dict[_Target, Any] = field(default_factory=dict)

    def apply(self, target: _Target) -> None:
        if target in self.installed or target.module not in sys.modules:
            return
        holder = target.holder()
        func = target.make(self.resolver)
        self.replaced[target] = (
            holder.__dict__[target.attr] if target.owner else getattr(holder, target.attr)
        )
        self.installed[target] = func
        setattr(holder, target.attr, func)


_layers: list[_Layer] = []
_hooked: set[str] = set()


def _on_import(module: Any) -> None:
    """wrapt post-import hook: apply every active layer, bottom first, to a new module."""
    try:
        with _lock:
            for layer in _layers:
                for target in TARGETS:
                    if target.module == module.__name__:
                        layer.apply(target)
    except Exception:  # an import hook must never break the application's import
        log.debug(
            "dnscache: could not patch %s", getattr(module, "__name__", module), exc_info=True
        )


def _push(resolver: Resolver, installed_by: str) -> _Layer:
    with _lock:
        layer = _Layer(resolver, installed_by)
        _layers.append(layer)
        for target in TARGETS:
            if target.module in sys.modules:
                layer.apply(target)
            elif target.module not in _hooked:
                _hooked.add(target.module)
                wrapt.register_post_import_hook(_on_import, target.module)
        return layer


def _pop(layer: _Layer) -> None:
    with _lock:
        if layer not in _layers:
            return
        index = _layers.index(layer)
        above = _layers[index + 1] if index + 1 < len(_layers) else None
        foreign: list[str] = []
        for target, func in layer.installed.items():
            if above is not None and target in above.replaced:
                above.replaced[target] = layer.replaced[target]
                continue
            holder = target.holder()
            if getattr(holder, target.attr) is func or (
                target.owner and holder.__dict__.get(target.attr) is func
            ):
                setattr(holder, target.attr, layer.replaced[target])
            else:
                foreign.append(target.name)
        del _layers[index]
    layer.resolver.close()
    # Warn only once everything is undone: under -W error the warning raises.
    for name in foreign:
        warnings.warn(
            f"dnscache: {name} was replaced by something else after dnscache "
            "was installed; leaving that in place",
            RuntimeWarning,
            stacklevel=3,
        )


def install(config: Config | None = None, **options: Any) -> Resolver:
    """Patch socket.getaddrinfo and socket.create_connection; returns the active Resolver.

    Idempotent: a second call returns the Resolver already installed.
    """
    with _lock:
        for layer in _layers:
            if layer.installed_by == "install":
                return layer.resolver
        resolver = Resolver(make_config(config, options))
        _push(resolver, "install")
        from .control import attach  # opens the control endpoint only if it was asked for

        attach(resolver)
        return resolver


def uninstall() -> None:
    """Restore what install() replaced and stop its background work. Harmless if not installed."""
    with _lock:
        layer = next((layer for layer in _layers if layer.installed_by == "install"), None)
    if layer is not None:
        from .control import detach

        detach(layer.resolver)
        _pop(layer)


def is_installed() -> bool:
    """True while a dnscache layer (install() or a patched() block) is active."""
    return bool(_layers)


def active_resolver() -> Resolver | None:
    """The Resolver answering socket.getaddrinfo now, if any."""
    with _lock:
        return _layers[-1].resolver if _layers else None


class patched:
    """``with dnscache.patched(ttl=5) as resolver:`` / ``@dnscache.patched()``.

    A context manager (sync and async) yielding a fresh Resolver and a decorator
    for sync and async functions (each call gets its own Resolver). Nestable:
    the inner block wins and the outer is restored on exit, also on exceptions.
    """

    def __init__(self, config: Config | None = None, **options: Any) -> None:
        self.config = make_config(config, options)
        self._layers: list[_Layer] = []

    def __enter__(self) -> Resolver:
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
