"""The frozen Config: every option, its default, its environment twin and its meaning.

This module is the one options table of the project. Each field carries its
documentation and the parser of its ``PYTHONDNSCACHE_<FIELD>`` twin in its
metadata; ``python -m dnscache doctor`` and the README table are generated from
it (a test keeps the README in step).

Two kinds of bad input are treated differently, on purpose:

* a bad *argument* (``Config(ttl=-1)``, ``install(tll=3)``) is a programming
  error and raises ``ValueError``/``TypeError`` at once;
* a bad *environment value* must never stop a program from starting, so
  :func:`parse_env` returns the default together with one message naming the
  variable, and the caller decides how to show it.

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

import dataclasses
import importlib
import ipaddress
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

ENV_PREFIX = "PYTHONDNSCACHE"

# Below every platform's cap on a wait (see the module docstring) with room to
# spare; nobody waits a day for a DNS answer or between two connection attempts.
MAX_WAIT = 86400.0
# Ten years: longer than any TTL, stale window or retention anyone asks for, and
# small enough that a sum of a few added to any clock stays exact and finite.
MAX_LIFETIME = 10 * 365 * 86400.0
# Sweeps more often than every 10 ms would only burn CPU under the store's lock
# (an interval of 1e-300 made the sweeper spin).
MIN_CLEANUP_INTERVAL = 0.01
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


# --- parsers for environment values: str -> value, raising ValueError with a short reason ---


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a finite number >= 0")
    return value + 0.0  # -0.0 -> 0.0


def _parse_int(text: str) -> int:
    return int(text.strip())


def _parse_bool(text: str) -> bool:
    value = env_flag(text)
    if value is None:
        raise ValueError("must be one of 1/0, true/false, yes/no, on/off")
    return value


def _parse_hosts(text: str) -> dict[str, tuple[str, ...]]:
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


def _parse_persist(text: str) -> str | None:
    """``1``/true: the default path; ``0``/false/empty: off; anything else: a path."""
    flag = env_flag(text)
    if flag is False:
        return None
    if flag is True:
        from .._sources.persist.store import default_path

        return default_path()
    return text


def _parse_hook(text: str) -> Hook:
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


def _opt(default: Any, doc: str, parse: Callable[[str], Any] | None, **kw: Any) -> Any:
    """A Config field with its documentation and environment parser in its metadata."""
    meta = {"doc": doc, "parse": parse}
    if isinstance(default, dict):
        # hash=False: a mapping is not hashable, and a frozen Config should be.
        return field(default_factory=lambda: MappingProxyType({}), metadata=meta, hash=False, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass(frozen=True)
class Config:
    """Every dnscache option. Frozen; build a changed copy with :meth:`replace`."""

    ttl: float = _opt(
        60.0,
        "Seconds an answer stays fresh when the resolver reports no TTL (the system "
        "resolver never does); at most 10 years.",
        _parse_float,
    )
    negative_ttl: float = _opt(
        1.0,
        "Seconds a failed lookup (gaierror) is answered from the cache with the same error; "
        "at most 10 years.",
        _parse_float,
    )
    maxsize: int = _opt(
        10000,
        "Most (host, family) entries kept; the least recently used is evicted.",
        _parse_int,
    )
    disabled: bool = _opt(False, "Pure pass-through: nothing is cached.", _parse_bool)
    hosts: Mapping[str, tuple[str, ...]] = _opt(
        {},
        "Static overrides like curl's --resolve: {name: [ip, ...]}; env form "
        "`name=ip,ip;name2=ip`.",
        _parse_hosts,
    )
    on_cache_miss: Hook | None = _opt(
        None,
        "Called as on_cache_miss(host) before an upstream lookup; env form `module:function`.",
        _parse_hook,
        compare=False,
    )
    on_change: Hook | None = _opt(
        None,
        "Called as on_change(host, ips) when a new answer for a host has a different "
        "set of addresses; env form `module:function`.",
        _parse_hook,
        compare=False,
    )

    refresh: bool = _opt(
        True,
        "Refresh-ahead: a hit on an answer past refresh_at of its TTL starts one background "
        "refresh and returns at once.",
        _parse_bool,
    )
    refresh_at: float = _opt(
        0.5,
        "Fraction of the TTL after which a hit triggers the refresh (0 < x <= 1).",
        _parse_float,
    )
    stale_ttl: float = _opt(
        86400.0,
        "Seconds past expiry an answer may still be served when the upstream fails "
        "(RFC 8767 serve-stale); 0 turns it off; at most 10 years.",
        _parse_float,
    )
    resolve_timeout: float = _opt(
        1.8,
        "Most seconds a caller holding an expired answer waits for the upstream before it "
        "gets the stale answer (RFC 8767's client response timer); at most 86400 (a day).",
        _parse_float,
    )
    backend: str = _opt(
        "system",
        "Where answers come from: `system` (libc's getaddrinfo; no TTLs) or `dnspython` "
        "(a stub resolver with real record TTLs).",
        str,
    )
    nameservers: tuple[str, ...] = _opt(
        (),
        "For backend=dnspython: servers as `ip`, `ip:port` or `[v6]:port`; default: "
        "resolv.conf's. Env form: comma-separated.",
        lambda text: tuple(x.strip() for x in text.split(",") if x.strip()),
    )
    min_ttl: float = _opt(
        0.0, "Record TTLs are raised to at least this (at most 10 years).", _parse_float
    )
    max_ttl: float = _opt(
        3600.0, "Record TTLs are cut to at most this (at most 10 years).", _parse_float
    )
    cleanup_interval: float = _opt(
        60.0,
        "Seconds between sweeps that drop answers past their stale window; 0 = off "
        "(maxsize still bounds memory), else from 0.01 to 86400 (a day).",
        _parse_float,
    )

    happy_eyeballs_delay: float = _opt(
        0.25,
        "Seconds before create_connection starts the next address while one is still "
        "connecting (RFC 8305); 0 = strictly one after another; at most 86400 (a day).",
        _parse_float,
    )
    failure_penalty: float = _opt(
        60.0,
        "Seconds an address that failed to connect is ordered last, in create_connection "
        "and in what getaddrinfo returns; at most 10 years.",
        _parse_float,
    )

    persist: str | None = _opt(
        None,
        "Path of an sqlite file remembering every address seen, so a restart during a DNS "
        "outage still connects; None = off. Env: a path, or `1` for "
        "`$XDG_CACHE_HOME/dnscache/dns.sqlite3`.",
        _parse_persist,
    )
    persist_mode: str = _opt(
        "fallback",
        "`fallback`: persisted addresses answer only when the live lookup fails; `merge`: "
        "Delta Chat's merge on every answer (for authenticated connections only).",
        str,
    )
    persist_max_age: float = _opt(
        30 * 86400.0,
        "Seconds a persisted address lives after it was last seen (> 0, at most 10 years).",
        _parse_float,
    )
    preload: Mapping[str, tuple[str, ...]] = _opt(
        {},
        "Fallback addresses shipped with the application, used after the persisted ones; "
        "env form as for hosts.",
        _parse_hosts,
    )
    trace: bool = _opt(
        False,
        "OpenTelemetry spans for upstream lookups and events for cache hits "
        "(needs opentelemetry-api).",
        _parse_bool,
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name not in _VALIDATORS:
                continue
            value = getattr(self, f.name)
            fixed = _VALIDATORS[f.name](f.name, value)
            if fixed is not value:
                object.__setattr__(self, f.name, fixed)

    def replace(self, **options: Any) -> Config:
        """A copy with the given options changed (unknown names raise TypeError)."""
        return dataclasses.replace(self, **options)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Build a Config from PYTHONDNSCACHE_* variables; bad values warn and use the default."""
        config, problems = parse_env(environ)
        for problem in problems:
            warnings.warn(problem, ConfigWarning, stacklevel=2)
        return config


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
                checked.append(str(ipaddress.ip_address(ip)))
            except ValueError:
                raise ValueError(f"{name}: {ip!r} for {host!r} is not an IP address") from None
        if not checked:
            raise ValueError(f"{name}: no addresses for {host!r}")
        out[host] = tuple(checked)
    return MappingProxyType(out)


def _check_persist(name: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be a path or None, not {type(value).__name__}")
    return os.fspath(value)


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


def _check_nameservers(name: str, value: Any) -> Any:
    if isinstance(value, str):
        value = (value,)
    out = tuple(value)
    for server in out:
        split_nameserver(server)  # raises ValueError naming the bad one
    return out


def split_nameserver(server: str) -> tuple[str, int]:
    """``"ip"``, ``"ip:port"`` or ``"[v6]:port"`` -> (ip, port)."""
    text = server.strip()
    port = 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad nameserver {server!r}")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = int(p)
    else:
        host = text
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"bad nameserver {server!r}: not an IP address") from None
    if not 0 < port < 65536:
        raise ValueError(f"bad nameserver {server!r}: port out of range")
    return host, port


_VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
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
    "persist": _check_persist,
    "persist_mode": _check_persist_mode,
    "persist_max_age": _check_positive,
    "preload": _check_hosts,
    "ttl": _check_number,
    "negative_ttl": _check_number,
    "maxsize": _check_maxsize,
    "disabled": _check_bool,
    "hosts": _check_hosts,
    "on_cache_miss": _check_hook,
    "on_change": _check_hook,
}


def env_name(field_name: str) -> str:
    """The environment twin of a Config field."""
    return f"{ENV_PREFIX}_{field_name.upper()}"


def parse_env(environ: Mapping[str, str] | None = None) -> tuple[Config, list[str]]:
    """Config from the environment plus one message per variable whose value was unusable.

    Never raises: a value that does not parse, or that Config rejects, is
    reported and its default kept.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for f in fields(Config):
        name = env_name(f.name)
        raw = env.get(name)
        if raw is None:
            continue
        parse = f.metadata["parse"]
        try:
            value = parse(raw)
            if f.name in _VALIDATORS:
                try:
                    _VALIDATORS[f.name](f.name, value)
                except OutOfRange as exc:
                    value = _VALIDATORS[f.name](f.name, exc.nearest)
                    problems.append(f"dnscache: clamping {name}={raw!r} ({exc}); using {value!r}")
        except Exception as exc:  # any failure, including an import in a hook
            default = _default_of(f)
            problems.append(
                f"dnscache: ignoring {name}={raw!r} ({exc}); using the default {default!r}"
            )
            continue
        values[f.name] = value
    return Config(**values), problems


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return dict(f.default_factory())
    return None


def options_table() -> list[tuple[str, str, str, str]]:
    """(field, env var, default, meaning) for every option, in declaration order."""
    rows = []
    for f in fields(Config):
        default = _default_of(f)
        rows.append((f.name, env_name(f.name), repr(default), f.metadata["doc"]))
    return rows


def render_options_table() -> str:
    """The README's options table (Markdown), generated so that it cannot drift."""
    lines = ["| option | environment variable | default | meaning |", "|---|---|---|---|"]
    for name, env, default, doc in options_table():
        lines.append(f"| `{name}` | `{env}` | `{default}` | {doc} |")
    return "\n".join(lines)


def make_config(config: Config | None, options: Mapping[str, Any]) -> Config:
    """The config for install()/patched()/Resolver(): a Config, keyword options, or both."""
    if config is not None and not isinstance(config, Config):
        raise TypeError(f"config must be a dnscache.Config, not {type(config).__name__}")
    base = config if config is not None else Config()
    return base.replace(**options) if options else base
