"""Helpers more than one command needs: the environment's Config, the cache file's path."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .options import UsageError
from .output import say

if TYPE_CHECKING:
    from ..._core.config import Config


def env_config(backend: str | None = None, nameservers: Sequence[str] = ()) -> Config:
    """Config.from_env() with problems printed as one line each, plus command-line overrides."""
    from ..._core.config import parse_env

    config, problems = parse_env()
    for problem in problems:
        say(problem)
    options: dict[str, Any] = {}
    if nameservers:
        options["nameservers"] = tuple(nameservers)
        if backend is None:
            backend = "dnspython"  # nameservers mean nothing to libc
    if backend is not None:
        options["backend"] = backend
    try:
        return config.replace(**options)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def cache_path(path: str | None, environ: Mapping[str, str] | None = None) -> str:
    """--path, else PYTHONDNSCACHE_PERSIST (a path, or a switch meaning the default path)."""
    from ..._core.config import env_flag
    from ..._sources.persist.store import default_path

    if path:
        return path
    env = os.environ if environ is None else environ
    raw = env.get("PYTHONDNSCACHE_PERSIST")
    if raw is not None and raw.strip() and env_flag(raw) is None:
        return raw
    return default_path(env)
