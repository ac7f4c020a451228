"""What dnscache replaces: one :class:`Target` per attribute, in :data:`TARGETS`.

To cover another library (uvloop, trio, gevent, eventlet...), add one entry:

    Target("uvloop", "Loop", "getaddrinfo", runtime("uvloop_loop", "getaddrinfo")),

* ``module``: the module that holds the attribute. It is patched as soon as it
  is imported (or at once, if it already is); dnscache never imports it itself,
  so an unused library costs nothing.
* ``holder``: a dotted attribute path inside the module to the object whose
  attribute we replace (a class, usually); ``""`` for the module itself.
* ``attr``: the attribute's name.
* ``factory``: ``factory(resolver)`` returns the replacement. Use
  :func:`adapter` for a function of ``_activation/adapters.py``, or
  :func:`runtime` for one of ``_activation/runtimes/<module>.py``: that module
  is imported only when a factory first runs (it imports ``socket``).

``patch.py`` is the only code that reads this table and the only code that
rebinds anything: it records what each replacement replaced, puts it back on
``uninstall()`` only if it is still ours, stacks ``patched()`` blocks, and
re-applies a replacement after ``importlib.reload`` of its module. The
replacement must keep the original's signature and behaviour exactly, carry
``__dnscache__ = True`` and ``__wrapped__`` (the function it replaced), and
must not import modules that may not be imported yet (it runs inside the
import of ``module``). This file is imported at start-up: keep it free of
imports.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs a millisecond at start-up
if TYPE_CHECKING:
    from collections.abc import Callable

    from .._engine.resolver import Resolver

    Factory = Callable[[Resolver], object]


class Target:
    """One attribute dnscache replaces: ``module.holder.attr`` (holder "" = the module)."""

    __slots__ = ("attr", "factory", "holder", "module")

    def __init__(self, module: str, holder: str, attr: str, factory: Factory) -> None:
        self.module = module
        self.holder = holder
        self.attr = attr
        self.factory = factory

    @property
    def name(self) -> str:
        return ".".join(part for part in (self.module, self.holder, self.attr) if part)

    def __repr__(self) -> str:
        return f"Target({self.name})"


def adapter(name: str) -> Factory:
    """The factory ``adapters.<name>``, imported when it first runs."""

    def factory(resolver: Resolver) -> object:
        from . import adapters

        make: Factory = getattr(adapters, name)
        return make(resolver)

    factory.__qualname__ = f"adapter({name!r})"
    return factory


def runtime(module: str, name: str) -> Factory:
    """The factory ``runtimes.<module>.<name>``, imported when it first runs."""

    def factory(resolver: Resolver) -> object:
        from importlib import import_module

        make: Factory = getattr(import_module(f"{__package__}.runtimes.{module}"), name)
        return make(resolver)

    factory.__qualname__ = f"runtime({module!r}, {name!r})"
    return factory


def _getaddrinfo(resolver: Resolver) -> object:
    return resolver.getaddrinfo


def _create_connection(resolver: Resolver) -> object:
    return resolver.create_connection


TARGETS: tuple[Target, ...] = (
    Target("socket", "", "getaddrinfo", _getaddrinfo),
    Target("socket", "", "create_connection", _create_connection),
    Target("asyncio.base_events", "BaseEventLoop", "getaddrinfo", adapter("asyncio_getaddrinfo")),
    Target(
        "urllib3.util.connection", "", "create_connection", adapter("urllib3_create_connection")
    ),
    # uvloop.Loop is a Python subclass of the Cython loop: the methods are inherited, so
    # uninstall() deletes ours and uvloop's show through again.
    Target("uvloop", "Loop", "getaddrinfo", runtime("uvloop_loop", "getaddrinfo")),
    Target("uvloop", "Loop", "create_connection", runtime("uvloop_loop", "create_connection")),
    # trio's per-run hostname resolver slot, read at call time by trio.socket.getaddrinfo.
    Target("trio._socket", "", "_resolver", runtime("trio_resolver", "resolver_slot")),
    # eventlet tells nobody it monkey-patched: its monkey_patch (and the package's
    # re-export of it) are wrapped to put dnscache back on top afterwards. gevent
    # calls our plugin itself (an entry point in pyproject.toml), so it needs no target.
    Target("eventlet.patcher", "", "monkey_patch", runtime("green", "eventlet_monkey_patch")),
    Target("eventlet", "", "monkey_patch", runtime("green", "eventlet_package_monkey_patch")),
)

# The modules whose import start-up waits for (socket first: every other one imports it).
MODULES: tuple[str, ...] = tuple(dict.fromkeys(target.module for target in TARGETS))
