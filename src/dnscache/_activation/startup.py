"""Activation at interpreter start-up, for the ``.pth`` hook and ``sitecustomize``.

The wheel ships ``dnscache.pth`` holding :data:`PTH_LINE` (the file is generated
from this constant and a test keeps the two equal, as coverage.py does). When
``PYTHONDNSCACHE`` is unset, the line's only work is one environment lookup:
``dnscache`` is not even imported. When it is set to a true value, we install
from ``Config.from_env()``. Nothing here may stop a program from starting: every
problem becomes one line on stderr naming the variable, and start-up goes on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._engine.resolver import Resolver

PTH_LINE = (
    "import os; os.environ.get('PYTHONDNSCACHE') and "
    "__import__('dnscache._activation.startup', fromlist=['activate']).activate()"
)


def _say(message: str) -> None:
    try:
        sys.stderr.write(message.rstrip("\n") + "\n")
    except Exception:  # a closed or missing stderr must not stop start-up either
        pass


_activated = False


def activate(environ: Mapping[str, str] | None = None) -> Resolver | None:
    """Install dnscache if PYTHONDNSCACHE is true; never raises. Returns the Resolver or None.

    Runs once per process: in a virtualenv whose ``lib64`` is a symlink to ``lib``,
    ``site`` processes every ``.pth`` file twice, and a sitecustomize may call us too.
    """
    global _activated
    if _activated and environ is None:
        from .._activation.patch import active_resolver

        return active_resolver()
    if environ is None:
        _activated = True
    env = os.environ if environ is None else environ
    try:
        from .._activation.patch import install, is_installed
        from .._core.config import env_flag, parse_env

        raw = env.get("PYTHONDNSCACHE")
        enabled = env_flag(raw)
        if enabled is None:
            if raw is not None:
                _say(
                    f"dnscache: ignoring PYTHONDNSCACHE={raw!r} (use 1/true/yes/on to enable, "
                    "0/false/no/off to disable); dnscache stays off"
                )
            return None
        if not enabled:
            return None
        config, problems = parse_env(env)
        for problem in problems:
            _say(problem)
        if is_installed():
            from .._activation.patch import active_resolver

            return active_resolver()
        return install(config)
    except Exception as exc:
        _say(f"dnscache: not activated ({type(exc).__name__}: {exc})")
        return None
