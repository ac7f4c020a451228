"""Activation at interpreter start-up, for the ``.pth`` hook and ``sitecustomize``.

The wheel ships ``dnscache.pth`` holding :data:`PTH_LINE` (the file is generated
from this constant and a test keeps the two equal, as coverage.py does). The
line itself decides whether we are wanted: ``PYTHONDNSCACHE`` unset, empty,
``0``, ``false``, ``no`` or ``off``, or ``python -E``/``-I``
(``sys.flags.ignore_environment``), cost one environment lookup and import
nothing. Any other value imports this module (and the package's lazy
``__init__``) and calls :func:`activate`.

Activation then costs almost nothing either: a program that never imports
``socket`` has no use for us (``python -c pass`` does not), so :func:`activate`
only registers a post-import hook for the modules of ``targets.TARGETS`` and
returns. The installation (``Config`` from the environment, the Resolver, the
patch) happens inside the program's first ``import socket``, before that
statement returns, so ``from socket import getaddrinfo`` gets the cached
function. If that first import of ``socket`` comes from dnscache's own modules
(the program imports ``dnscache`` itself), it waits until they are loaded:
installing from inside their half-run code would fail. The public functions
of ``patch`` call :func:`settle` first, so they never see a pending activation.

Nothing here may stop a program from starting: every problem becomes one line
on stderr naming the variable or the missing piece, once per process, and the
program goes on without dnscache. This module imports only ``os`` and ``sys``
(already loaded by ``site``) and two small modules of ours.
"""

from __future__ import annotations

import _thread
import os
import sys

from . import pending, postimport
from .targets import MODULES

TYPE_CHECKING = False  # typing itself costs a millisecond at start-up
if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import ModuleType

    from .._engine.resolver import Resolver

ENV = "PYTHONDNSCACHE"
# The switch's spellings; the same sets as _core.config.env_flag (a test keeps them
# equal). Spelt out here because the .pth line must decide without importing us.
ON_VALUES = ("1", "true", "yes", "on")
OFF_VALUES = ("", "0", "false", "no", "off")

PTH_LINE = (
    "import os, sys; "
    f"os.environ.get({ENV!r}, '').strip().lower() not in {OFF_VALUES!r} "
    "and not sys.flags.ignore_environment "
    "and __import__('dnscache._activation.startup', fromlist=['activate']).activate()"
)


def _say(message: str) -> None:
    try:
        sys.stderr.write(message.rstrip("\n") + "\n")
    except Exception:  # a closed or missing stderr must not stop start-up either
        pass


# "idle": activate() has not run for this process; "waiting": for the first import
# of a target module; "done": installed, failed, or not wanted.
_state = "idle"
# Taken, never waited for, by the one thread that finishes a waiting activation: a
# thread that finds it taken may hold an import lock the finishing thread needs.
_finishing = _thread.allocate_lock()


def activate(environ: Mapping[str, str] | None = None) -> Resolver | None:
    """Install dnscache if ``PYTHONDNSCACHE`` says so; never raises.

    Without an argument (the ``.pth`` line, ``sitecustomize``): reads
    ``os.environ``, once per process (in a virtualenv whose ``lib64`` is a
    symlink to ``lib``, ``site`` runs every ``.pth`` file twice, and a
    sitecustomize may call us too), and not at all under ``python -E``/``-I``.
    Returns the installed Resolver, or None if dnscache is off or waits for the
    program's first ``import socket`` (see the module docstring).

    With a mapping: that environment, installed now (for tests and tools);
    the once-per-process guard is left alone.
    """
    global _state
    if environ is None:
        if _state != "idle":
            return _installed() if _state == "done" else None
        _state = "done"
        if sys.flags.ignore_environment:
            return None
    try:
        env = os.environ if environ is None else environ
        raw = env.get(ENV)
        switch = "" if raw is None else raw.strip().lower()
        if switch not in ON_VALUES:
            if switch not in OFF_VALUES:
                _say(
                    f"dnscache: ignoring {ENV}={raw!r} (use 1/true/yes/on to enable, "
                    "0/false/no/off to disable); dnscache stays off"
                )
            return None
        if environ is None and not _can_install_now():
            _state = "waiting"
            pending.wait_with(settle)
            for name in (*MODULES, "dnscache.*"):
                postimport.when_imported(name, _on_import)
            return None
        return _install(env)
    except Exception as exc:
        _say(f"dnscache: {ENV} is set but dnscache is not active ({type(exc).__name__}: {exc})")
        return None


def settle() -> None:
    """Finish a start-up activation that is still waiting, if it can finish now.

    Called by patch's public functions, so that ``is_installed()``, ``install()``
    and the rest always see what the environment asked for.
    """
    if _state == "waiting" and _can_install_now():
        _finish()


def _on_import(module: ModuleType) -> None:
    if _state == "waiting" and _can_install_now():
        _finish()


def _finish() -> None:
    global _state
    if not _finishing.acquire(blocking=False):
        return
    if _state != "waiting":
        return
    _state = "done"  # first: whatever happens below happens once
    for name in (*MODULES, "dnscache.*"):
        postimport.discard(name, _on_import)
    try:
        _install(os.environ)
    except Exception as exc:  # e.g. a dependency missing from a broken install
        _say(f"dnscache: {ENV} is set but dnscache is not active ({type(exc).__name__}: {exc})")


def _can_install_now() -> bool:
    return postimport.imported("socket") is not None and not _dnscache_loading()


def _dnscache_loading() -> bool:
    """True while a module of ours is half-way through its import (in any thread)."""
    for name in list(sys.modules):
        if (name == "dnscache" or name.startswith("dnscache.")) and (
            postimport.imported(name) is None and name in sys.modules
        ):
            return True
    return False


def _install(env: Mapping[str, str]) -> Resolver:
    from .._core.config import parse_env
    from . import patch

    config, problems = parse_env(env)
    for problem in problems:
        _say(problem)
    if patch._layers:  # the program (or a test) installed first: its choice stands
        resolver = patch.active_resolver()
        assert resolver is not None
        return resolver
    return patch.install(config)


def _installed() -> Resolver | None:
    from . import patch

    return patch.active_resolver()
