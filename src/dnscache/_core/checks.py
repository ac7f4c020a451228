"""Checks of programmatic option values, and the bounds every duration lives within.

Durations are bounded, because every one of them ends up either in a wait
(``Event.wait``, ``Thread.join``, a selector's ``select()``, dnspython's query
lifetime) or added to a clock reading. CPython refuses a wait longer than
``threading.TIMEOUT_MAX`` (292 years on Linux, 49.7 days on Windows) with
``OverflowError``, and the ``selectors`` module's ``epoll``/``poll`` refuse more
than 2**31 - 1 milliseconds (24.8 days): ``PYTHONDNSCACHE_RESOLVE_TIMEOUT=1e10``
was accepted and then made every dnspython-backend lookup raise. So an option
that is waited on is at most :data:`MAX_WAIT` (a day), every other duration at
most :data:`MAX_LIFETIME` (ten years, which no DNS answer needs). A finite
environment value beyond its bound is clamped to it, with one message; a
programmatic one raises ``ValueError``. NaN, infinities and negatives are bad
values like any other.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

# Below every platform's cap on a wait (see the module docstring) with room to
# spare; nobody waits a day for a DNS answer or between two connection attempts.
MAX_WAIT = 86400.0
# Ten years: longer than any TTL, stale window or retention anyone asks for, and
# small enough that a sum of a few added to any clock stays exact and finite.
MAX_LIFETIME = 10 * 365 * 86400.0
# cleanup_interval no longer drives a sweeper (expiry is on the write path), but it is
# still checked as 0.1 checked it: 0, or at least 10 ms (1e-300 made that sweeper spin).
MIN_CLEANUP_INTERVAL = 0.01

# --- validation of programmatic values ---


class OutOfRange(ValueError):
    """A number beyond an option's bounds; ``nearest`` is the closest value allowed.

    :func:`parse_env` clamps an environment value to ``nearest`` (with one message);
    a programmatic value raises it as the ``ValueError`` it is.
    """

    def __init__(self, message: str, nearest: float) -> None:
        super().__init__(message)
        self.nearest = nearest


def _check_number(name: str, value: Any, most: float = MAX_LIFETIME) -> Any:
    """A duration in seconds: a real number in [0, most], returned as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    # Compared before any float(): an int too big for a float must not raise OverflowError.
    if value != value or value < 0 or value == math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
    if value > most:
        raise OutOfRange(f"{name} must be at most {most:g}, not {value!r}", most)
    return float(value) + 0.0  # -0.0 -> 0.0


def _check_wait(name: str, value: Any) -> Any:
    """A duration that is waited on: at most MAX_WAIT."""
    return _check_number(name, value, MAX_WAIT)


def _check_cleanup_interval(name: str, value: Any) -> Any:
    """0 (off) or a wait of at least MIN_CLEANUP_INTERVAL."""
    value = _check_wait(name, value)
    if 0 < value < MIN_CLEANUP_INTERVAL:
        raise OutOfRange(
            f"{name} must be 0 (off) or at least {MIN_CLEANUP_INTERVAL:g}, not {value!r}",
            MIN_CLEANUP_INTERVAL,
        )
    return value


def _check_maxsize(name: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, not {value!r}")
    return value


def _check_bool(name: str, value: Any) -> Any:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def _check_hook(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None")
    return value


def _check_hosts(name: str, value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping of host name to IP addresses")
    out: dict[str, tuple[str, ...]] = {}
    for host, ips in value.items():
        if not isinstance(host, str) or not host.strip(".") or "\x00" in host:
            raise ValueError(f"{name}: bad host name {host!r}")
        try:
            host.rstrip(".").encode("idna")  # what CPython does to a host before libc sees it
        except UnicodeError as exc:
            raise ValueError(f"{name}: bad host name {host!r} ({exc})") from None
        if isinstance(ips, str):
            ips = (ips,)
        checked = []
        for ip in ips:
            try:
                checked.append(str(_ip_address(ip)))
            except ValueError:
                raise ValueError(f"{name}: {ip!r} for {host!r} is not an IP address") from None
        if not checked:
            raise ValueError(f"{name}: no addresses for {host!r}")
        out[host] = tuple(checked)
    return MappingProxyType(out)


def _check_absolute_path(name: str, value: Any) -> Any:
    """An absolute str path (a file we open: persist, tls_ca_bundle), or None for unset."""
    if value is None or value == "":
        return None
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be a path or None, not {type(value).__name__}")
    path = os.fspath(value)
    if not isinstance(path, str):
        raise TypeError(f"{name} must be a str path or None, not {type(path).__name__}")
    if "\x00" in path or not os.path.isabs(path):
        raise ValueError(f"{name} must be an absolute path or None, not {path!r}")
    return path


def _check_persist_mode(name: str, value: Any) -> Any:
    if value not in ("fallback", "merge"):
        raise ValueError(f"{name} must be 'fallback' or 'merge', not {value!r}")
    return value


def _check_positive(name: str, value: Any) -> Any:
    value = _check_number(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, not {value!r}")
    return value


def _check_fraction(name: str, value: Any) -> Any:
    value = _check_number(name, value)
    if not 0 < value <= 1:
        raise ValueError(f"{name} must be in (0, 1], not {value!r}")
    return value


def _check_backend(name: str, value: Any) -> Any:
    if value not in ("system", "dnspython"):
        raise ValueError(f"{name} must be 'system' or 'dnspython', not {value!r}")
    return value


def _check_ttl_source(name: str, value: Any) -> Any:
    if value not in ("fixed", "dns"):
        raise ValueError(f"{name} must be 'fixed' or 'dns', not {value!r}")
    return value


def _ip_address(text: str) -> object:
    import ipaddress  # only when a hosts or preload mapping is given

    return ipaddress.ip_address(text)


def _check_nameservers(name: str, value: Any) -> Any:
    if isinstance(value, tuple | list) and not value:
        return ()  # the default: resolv.conf's servers
    from .nameservers import check_nameservers  # only when nameservers are given

    return check_nameservers(name, value)


VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "refresh": _check_bool,
    "refresh_at": _check_fraction,
    "stale_ttl": _check_number,
    "resolve_timeout": _check_wait,
    "backend": _check_backend,
    "nameservers": _check_nameservers,
    "min_ttl": _check_number,
    "max_ttl": _check_number,
    "cleanup_interval": _check_cleanup_interval,
    "happy_eyeballs_delay": _check_wait,
    "failure_penalty": _check_number,
    "trace": _check_bool,
    "control": _check_bool,
    "persist": _check_absolute_path,
    "persist_mode": _check_persist_mode,
    "persist_max_age": _check_positive,
    "preload": _check_hosts,
    "ttl": _check_number,
    "negative_ttl": _check_number,
    "maxsize": _check_maxsize,
    "max_views": _check_maxsize,
    "disabled": _check_bool,
    "hosts": _check_hosts,
    "on_cache_miss": _check_hook,
    "on_change": _check_hook,
    "tls_ca_bundle": _check_absolute_path,
    "ttl_source": _check_ttl_source,
}
