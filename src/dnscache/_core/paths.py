"""Where dnscache keeps files by default (pure: the environment is an argument)."""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["default_cache_path"]


def default_cache_path(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_CACHE_HOME/dnscache/dns.sqlite3``, else ``~/.cache/dnscache/dns.sqlite3``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative path is invalid and ignored
        home = env.get("HOME") or os.path.expanduser("~")
        base = os.path.join(home, ".cache")
    return os.path.join(base, "dnscache", "dns.sqlite3")
