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

Durations are bounded: see :mod:`.checks`.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from .checks import (
    MAX_LIFETIME,
    MAX_WAIT,
    MIN_CLEANUP_INTERVAL,
    VALIDATORS,
    OutOfRange,
)
from .envvars import (
    ENV_PREFIX,
    ConfigWarning,
    Hook,
    env_flag,
    env_name,
    parse_bool,
    parse_float,
    parse_hook,
    parse_hosts,
    parse_int,
    parse_persist,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .nameservers import Nameserver as Nameserver
    from .nameservers import parse_nameserver as parse_nameserver
    from .nameservers import split_nameserver as split_nameserver
    from .options import Options as Options
else:
    # Re-exported on first use: at start-up nothing needs them (typing's TypedDict
    # and the nameserver parser cost milliseconds at every program's first import
    # of socket).
    _ELSEWHERE = {
        "Nameserver": ".nameservers",
        "parse_nameserver": ".nameservers",
        "split_nameserver": ".nameservers",
        "Options": ".options",
    }

    def __getattr__(name: str) -> object:
        try:
            module = _ELSEWHERE[name]
        except KeyError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        value = getattr(__import__(__package__ + module, fromlist=[name]), name)
        globals()[name] = value
        return value


__all__ = [
    "ENV_PREFIX",
    "MAX_LIFETIME",
    "MAX_WAIT",
    "MIN_CLEANUP_INTERVAL",
    "Config",
    "ConfigWarning",
    "Hook",
    "Nameserver",
    "Options",
    "OutOfRange",
    "check_options",
    "env_flag",
    "env_name",
    "make_config",
    "options_table",
    "parse_env",
    "parse_nameserver",
    "render_options_table",
    "split_nameserver",
]


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
        parse_float,
    )
    negative_ttl: float = _opt(
        1.0,
        "Seconds a failed lookup (gaierror) is answered from the cache with the same error; "
        "at most 10 years.",
        parse_float,
    )
    maxsize: int = _opt(
        10000,
        "Most (host, family) entries kept; the least recently used is evicted.",
        parse_int,
    )
    max_views: int = _opt(
        20000,
        "Most finished results (one per distinct (host, port, family, type, proto, flags) "
        "call) kept for the hit path across all hosts, at most 32 per entry; one is about "
        "0.5-2 KB, so the default bounds them to about 10-40 MB.",
        parse_int,
    )
    disabled: bool = _opt(False, "Pure pass-through: nothing is cached.", parse_bool)
    hosts: Mapping[str, tuple[str, ...]] = _opt(
        {},
        "Static overrides like curl's --resolve: {name: [ip, ...]}; env form "
        "`name=ip,ip;name2=ip`.",
        parse_hosts,
    )
    on_cache_miss: Hook | None = _opt(
        None,
        "Called as on_cache_miss(host) before an upstream lookup; env form `module:function`.",
        parse_hook,
        compare=False,
    )
    on_change: Hook | None = _opt(
        None,
        "Called as on_change(host, ips) when a new answer for a host has a different "
        "set of addresses; env form `module:function`.",
        parse_hook,
        compare=False,
    )

    refresh: bool = _opt(
        True,
        "Refresh-ahead: a hit on an answer past refresh_at of its TTL starts one background "
        "refresh and returns at once.",
        parse_bool,
    )
    refresh_at: float = _opt(
        0.5,
        "Fraction of the TTL after which a hit triggers the refresh (0 < x <= 1).",
        parse_float,
    )
    stale_ttl: float = _opt(
        86400.0,
        "Seconds past expiry an answer may still be served when the upstream fails "
        "(RFC 8767 serve-stale); 0 turns it off; at most 10 years.",
        parse_float,
    )
    resolve_timeout: float = _opt(
        1.8,
        "Most seconds a caller holding an expired answer waits for the upstream before it "
        "gets the stale answer (RFC 8767's client response timer); at most 86400 (a day).",
        parse_float,
    )
    backend: str = _opt(
        "system",
        "Where answers come from: `system` (libc's getaddrinfo; no TTLs) or `dnspython` "
        "(a stub resolver with real record TTLs).",
        str,
    )
    nameservers: tuple[str, ...] = _opt(
        (),
        "For backend=dnspython: servers as `ip`, `ip:port`, `[v6]:port` (plain DNS), "
        "`tls://host[:port][#name]` (DNS over TLS, RFC 7858) or `https://host[:port]/path` "
        "(DNS over HTTPS, RFC 8484; needs the `doh` extra); `#name` is the name the "
        "certificate must carry when host is an IP. Default: resolv.conf's. Env form: "
        "comma-separated.",
        lambda text: tuple(x.strip() for x in text.split(",") if x.strip()),
    )
    min_ttl: float = _opt(
        0.0, "Record TTLs are raised to at least this (at most 10 years).", parse_float
    )
    max_ttl: float = _opt(
        3600.0, "Record TTLs are cut to at most this (at most 10 years).", parse_float
    )
    cleanup_interval: float = _opt(
        60.0,
        "Accepted for compatibility and ignored: answers past their stale window are "
        "dropped by the cache itself (cachetools' TLRUCache) on every write, so no "
        "sweeper thread runs. Still validated: 0, or from 0.01 to 86400 (a day).",
        parse_float,
    )

    happy_eyeballs_delay: float = _opt(
        0.25,
        "Seconds before create_connection starts the next address while one is still "
        "connecting (RFC 8305); 0 = strictly one after another; at most 86400 (a day).",
        parse_float,
    )
    failure_penalty: float = _opt(
        60.0,
        "Seconds an address that failed to connect is ordered last, in create_connection "
        "and in what getaddrinfo returns; at most 10 years.",
        parse_float,
    )

    persist: str | None = _opt(
        None,
        "Path of an sqlite file remembering every address seen, so a restart during a DNS "
        "outage still connects; None = off. Env: a path, or `1` for "
        "`$XDG_CACHE_HOME/dnscache/dns.sqlite3`.",
        parse_persist,
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
        parse_float,
    )
    preload: Mapping[str, tuple[str, ...]] = _opt(
        {},
        "Fallback addresses shipped with the application, used after the persisted ones; "
        "env form as for hosts.",
        parse_hosts,
    )
    trace: bool = _opt(
        False,
        "OpenTelemetry spans for upstream lookups, events for cache hits and the "
        "`dns.lookup.duration` histogram (needs opentelemetry-api).",
        parse_bool,
    )
    control: bool = _opt(
        False,
        "A control endpoint for `dnscache ps`, `stats`, `dump` and `flush`: a Unix socket "
        "only this user can reach, served by one thread (with install() or PYTHONDNSCACHE=1).",
        parse_bool,
    )

    tls_ca_bundle: str | None = _opt(
        None,
        "PEM file of the certificate authorities trusted for `tls://` and `https://` "
        "nameservers, instead of the system trust store (for a private resolver's CA). "
        "Certificates are always verified.",
        str,
    )
    ttl_source: str = _opt(
        "fixed",
        "For backend=system: `fixed` keeps every answer `ttl` seconds; `dns` learns the "
        "record TTL with one DNS query (in the background) for the name libc resolved, "
        "clamped by min_ttl/max_ttl; names libc answered from files or mDNS keep `ttl`. "
        "Off by default: it imports dnspython and costs a query per answer.",
        str,
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name not in VALIDATORS:
                continue
            value = getattr(self, f.name)
            fixed = VALIDATORS[f.name](f.name, value)
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
            if f.name in VALIDATORS:
                try:
                    VALIDATORS[f.name](f.name, value)
                except OutOfRange as exc:
                    value = VALIDATORS[f.name](f.name, exc.nearest)
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


def check_options(options: Mapping[str, object], where: str) -> None:
    """Raise ``TypeError`` naming an unknown option, as Python does for a bad keyword.

    The known names are Config's fields, which the ``Options`` TypedDict mirrors
    for type checkers (a test keeps the two in step); the TypedDict itself is not
    needed at run time.
    """
    known = _field_names()
    for name in options:
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"{where} got an unexpected keyword argument {name!r}{hint}")


_FIELD_NAMES: list[str] = []


def _field_names() -> list[str]:
    if not _FIELD_NAMES:
        _FIELD_NAMES.extend(f.name for f in fields(Config))
    return _FIELD_NAMES
