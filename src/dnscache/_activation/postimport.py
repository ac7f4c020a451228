"""Post-import hooks: call a function the moment a module's code has run.

``patch.py`` uses them to patch asyncio, urllib3 (and any other entry of
``targets.TARGETS``) when the program first imports them, and start-up uses
them to wait for ``socket``: a ``python -c pass`` never imports ``socket``, so
with ``PYTHONDNSCACHE=1`` it pays for this module and nothing else.

Why not ``wrapt.register_post_import_hook``: importing any part of wrapt 2
runs its ``__init__``, which imports ``asyncio`` (``wrapt.synchronization``)
and ``importlib.metadata`` (``wrapt.importer``), about 25 ms and two large
modules in every program. wrapt's hook is also not re-run by
``importlib.reload`` (its docstring says so), and a reload wipes out a patch.

How, in the PEP 369 style wrapt follows: a finder at the front of
``sys.meta_path`` answers only for watched names. For those it asks the
finders behind it, exactly as the import system would, and wraps the loader of
the spec they return. The wrapper puts the real loader back into
``module.__loader__`` and ``module.__spec__.loader`` before the module's code
runs (so the module itself, ``inspect``, ``importlib.resources`` and pytest
see the real loader), runs that code, then calls the callbacks, before the
``import`` statement returns: ``from socket import getaddrinfo`` gets what a
callback put there. Everything else is delegated untouched: other finders,
zipimport, ``python -m`` (runpy reads the code through the wrapper's
attributes), loaders without ``exec_module`` (not wrapped at all).

Contract for callbacks: they run in the importing thread while it holds the
module's import lock, so they must not import anything that may not be fully
imported yet, nor wait for a lock held by a thread that might. One that
raises is ignored: an import hook must never break the application's import.
Thread safety: the import system calls ``find_spec`` under its global import
lock; registration is a dict/list update under the GIL.

Start-up cost matters here: this module imports only ``sys``.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing itself costs a millisecond at start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    Callback = Callable[[ModuleType], object]

_callbacks: dict[str, list[Callback]] = {}  # module name -> callbacks, in registration order
_package_callbacks: dict[str, list[Callback]] = {}  # "pkg." -> callbacks for every submodule
_busy: set[str] = set()  # names whose spec we are looking up behind us (no recursion)
_running: list[str] = []  # names whose callbacks run now: their code has finished


def when_imported(name: str, callback: Callback) -> None:
    """Call ``callback(module)`` each time module ``name`` has been executed by an import.

    That is its first import and every ``importlib.reload``. A name ending in
    ``.*`` means every submodule of that package. A module already imported is
    not reported: the caller looks at :func:`imported` first.
    """
    if name.endswith(".*"):
        _package_callbacks.setdefault(name[:-1], []).append(callback)
    else:
        _callbacks.setdefault(name, []).append(callback)
    _install_finder()


def discard(name: str, callback: Callback) -> None:
    """Undo :func:`when_imported` (harmless if it was not registered)."""
    table = _package_callbacks if name.endswith(".*") else _callbacks
    key = name[:-1] if name.endswith(".*") else name
    callbacks = table.get(key, [])
    if callback in callbacks:
        callbacks.remove(callback)
    if not callbacks:
        table.pop(key, None)


def imported(name: str) -> ModuleType | None:
    """``sys.modules[name]`` once its code has finished running, else None.

    A module whose import is still running (it is in ``sys.modules`` with
    ``__spec__._initializing`` set) is not imported yet, unless its callbacks
    are running now: its code is complete, only the import statement has not
    returned.
    """
    module = sys.modules.get(name)
    if module is None:
        return None
    if getattr(getattr(module, "__spec__", None), "_initializing", False) and name not in _running:
        return None
    return module


def _watched(name: str) -> bool:
    if name in _callbacks:
        return True
    return any(name.startswith(prefix) for prefix in _package_callbacks)


def _callbacks_for(name: str) -> list[Callback]:
    found = list(_callbacks.get(name, ()))
    for prefix, callbacks in _package_callbacks.items():
        if name.startswith(prefix):
            found.extend(callbacks)
    return found


def _run_callbacks(name: str, module: ModuleType) -> None:
    # Only the module the import system keeps: a copy executed by hand
    # (importlib.util.module_from_spec + exec_module) is nobody's business.
    if sys.modules.get(name) is not module:
        return
    # The import system binds a submodule on its package only after the code ran
    # (right after we return). Do it now, so that a callback's ``import a.b`` then
    # ``a.b.attr`` works, as it will for everybody a moment later.
    parent_name, _, child = name.rpartition(".")
    parent = sys.modules.get(parent_name) if parent_name else None
    if parent is not None:
        try:
            setattr(parent, child, module)
        except Exception:
            pass
    _running.append(name)
    try:
        for callback in _callbacks_for(name):
            try:
                callback(module)
            except Exception:  # never break the application's import
                pass
    finally:
        _running.remove(name)


class _Loader:
    """The real loader, plus callbacks once the module's code has run."""

    def __init__(self, loader: object, name: str) -> None:
        self._loader = loader
        self._name = name

    def __getattr__(self, attr: str) -> object:
        # get_code (runpy), get_source, is_package, get_resource_reader, ...
        return getattr(self._loader, attr)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[attr-defined, no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        loader = self._loader
        if getattr(module, "__loader__", None) is self:
            try:
                module.__loader__ = loader  # type: ignore[assignment]
            except AttributeError:
                pass
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = loader
        loader.exec_module(module)  # type: ignore[attr-defined]
        _run_callbacks(self._name, module)


class _Finder:
    """Wraps the loader of watched modules; says nothing about any other."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> ModuleSpec | None:
        if fullname in _busy or not _watched(fullname):
            return None
        _busy.add(fullname)
        try:
            spec = _find_behind(self, fullname, path, target)
        finally:
            _busy.discard(fullname)
        loader = getattr(spec, "loader", None)
        if (
            spec is not None
            and loader is not None
            and hasattr(loader, "exec_module")
            and hasattr(loader, "create_module")
        ):
            spec.loader = _Loader(loader, fullname)  # type: ignore[assignment]
        return spec


def _find_behind(me: _Finder, fullname: str, path: object, target: object) -> ModuleSpec | None:
    """What the finders after ``me`` in ``sys.meta_path`` find, as importlib would ask them."""
    meta_path = list(sys.meta_path)
    start = meta_path.index(me) + 1 if me in meta_path else 0
    for finder in meta_path[start:]:
        if finder is me:
            continue
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:  # a legacy finder: let the import system ask it itself
            return None
        spec: ModuleSpec | None = find_spec(fullname, path, target)
        if spec is not None:
            return spec
    return None


_finder: _Finder | None = None


def _install_finder() -> None:
    global _finder
    if _finder is None:
        _finder = _Finder()
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
