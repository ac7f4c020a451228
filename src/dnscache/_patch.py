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
import socket
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._config import Config, make_config
from ._resolver import Resolver

F = TypeVar("F", bound=Callable[..., Any])
_lock = threading.RLock()


@dataclass(eq=False)
class _Layer:
    resolver: Resolver
    installed_by: str  # "install" or "patched"
    installed: dict[str, Any] = field(default_factory=dict)
    replaced: dict[str, Any] = field(default_factory=dict)


_layers: list[_Layer] = []


def _targets(resolver: Resolver) -> dict[str, Any]:
    return {
        "getaddrinfo": resolver.getaddrinfo,
        "create_connection": resolver.create_connection,
    }


def _push(resolver: Resolver, installed_by: str) -> _Layer:
    with _lock:
        layer = _Layer(resolver, installed_by)
        for name, func in _targets(resolver).items():
            layer.replaced[name] = getattr(socket, name)
            layer.installed[name] = func
            setattr(socket, name, func)
        _layers.append(layer)
        return layer


def _pop(layer: _Layer) -> None:
    with _lock:
        if layer not in _layers:
            return
        index = _layers.index(layer)
        above = _layers[index + 1] if index + 1 < len(_layers) else None
        for name, func in layer.installed.items():
            if above is not None:
                above.replaced[name] = layer.replaced[name]
            elif getattr(socket, name) is func:
                setattr(socket, name, layer.replaced[name])
            else:
                warnings.warn(
                    f"dnscache: socket.{name} was replaced by something else after dnscache "
                    "was installed; leaving that in place",
                    RuntimeWarning,
                    stacklevel=3,
                )
        del _layers[index]
    layer.resolver.close()


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
        return resolver


def uninstall() -> None:
    """Restore what install() replaced and stop its background work. Harmless if not installed."""
    with _lock:
        layer = next((layer for layer in _layers if layer.installed_by == "install"), None)
    if layer is not None:
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
