"""The environment's side of the options: the switch, the variables' names, their parsers.

Every option has a ``PYTHONDNSCACHE_<FIELD>`` twin. A parser turns the
variable's text into a value or raises ``ValueError`` with a short reason;
:func:`dnscache._core.config.parse_env` turns that into one message naming the
variable, and the default applies (start-up never fails on a bad value).
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from typing import Any

ENV_PREFIX = "PYTHONDNSCACHE"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

Hook = Callable[..., object]


class ConfigWarning(UserWarning):
    """A PYTHONDNSCACHE_* variable had a value we could not use; the default applies."""


def env_flag(value: str | None) -> bool | None:
    """Parse a boolean the way every PYTHONDNSCACHE* switch does; None if not a boolean."""
    if value is None:
        return None
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    return None


def env_name(field_name: str) -> str:
    """The environment twin of a Config field."""
    return f"{ENV_PREFIX}_{field_name.upper()}"


# --- parsers for environment values: str -> value, raising ValueError with a short reason ---


def parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a finite number >= 0")
    return value + 0.0  # -0.0 -> 0.0


def parse_int(text: str) -> int:
    return int(text.strip())


def parse_bool(text: str) -> bool:
    value = env_flag(text)
    if value is None:
        raise ValueError("must be one of 1/0, true/false, yes/no, on/off")
    return value


def parse_hosts(text: str) -> dict[str, tuple[str, ...]]:
    """``name=ip,ip;name2=ip`` -> {"name": ("ip", "ip"), "name2": ("ip",)}."""
    hosts: dict[str, tuple[str, ...]] = {}
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        name, sep, ips = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{item!r} is not name=ip[,ip...]")
        hosts[name.strip()] = tuple(ip.strip() for ip in ips.split(",") if ip.strip())
    return hosts


def parse_persist(text: str) -> str | None:
    """``1``/true/yes/on: the default path; ``0``/false/no/off/empty: off; else an absolute path.

    Anything else (``2``, ``nan``, ``merge``, ``None``, ``~/x``, a relative path) is
    refused, so nothing is created: a relative path would put a database in whatever
    directory each process happens to start in (issue 11 item 5).
    """
    flag = env_flag(text)
    if flag is False:
        return None
    if flag is True:
        from .paths import default_cache_path

        return default_cache_path()
    if not os.path.isabs(text):
        raise ValueError("must be an absolute path, 1/true/yes/on (the default path) or 0/off")
    return text


def parse_hook(text: str) -> Hook:
    """``package.module:function`` -> the callable it names."""
    module_name, sep, attr = text.strip().partition(":")
    if not sep or not module_name or not attr:
        raise ValueError("must be module:function")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{text!r} is not callable")
    return target  # type: ignore[no-any-return]
