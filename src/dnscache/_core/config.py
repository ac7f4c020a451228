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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, TypedDict

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
    max_views: int = _opt(
        20000,
        "Most finished results (one per distinct (host, port, family, type, proto, flags) "
        "call) kept for the hit path across all hosts, at most 32 per entry; one is about "
        "0.5-2 KB, so the default bounds them to about 10-40 MB.",
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
        "For backend=dnspython: servers as `ip`, `ip:port`, `[v6]:port` (plain DNS), "
        "`tls://host[:port][#name]` (DNS over TLS, RFC 7858) or `https://host[:port]/path` "
        "(DNS over HTTPS, RFC 8484; needs the `doh` extra); `#name` is the name the "
        "certificate must carry when host is an IP. Default: resolv.conf's. Env form: "
        "comma-separated.",
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
        "Accepted for compatibility and ignored: answers past their stale window are "
        "dropped by the cache itself (cachetools' TLRUCache) on every write, so no "
        "sweeper thread runs. Still validated: 0, or from 0.01 to 86400 (a day).",
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
        "OpenTelemetry spans for upstream lookups, events for cache hits and the "
        "`dns.lookup.duration` histogram (needs opentelemetry-api).",
        _parse_bool,
    )
    control: bool = _opt(
        False,
        "A control endpoint for `dnscache ps`, `stats`, `dump` and `flush`: a Unix socket "
        "only this user can reach, served by one thread (with install() or PYTHONDNSCACHE=1).",
        _parse_bool,
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


def _check_nameservers(name: str, value: Any) -> Any:
    if isinstance(value, str):
        value = (value,)
    out = tuple(value)
    for server in out:
        if not isinstance(server, str):
            raise TypeError(f"{name}: a nameserver is a string, not {type(server).__name__}")
        parse_nameserver(server)  # raises ValueError naming the bad one
    return out


@dataclass(frozen=True)
class Nameserver:
    """One parsed ``nameservers`` item.

    ``scheme`` is ``dns`` (plain UDP, TCP on truncation), ``tls`` (RFC 7858) or
    ``https`` (RFC 8484). ``host`` is an IP literal or a name (a name is resolved
    with the system resolver when a connection is opened); ``tls_name`` is what
    the server's certificate must say (the ``#name`` part, else ``host``).
    """

    scheme: str
    host: str
    port: int
    path: str = ""
    tls_name: str = ""

    @property
    def encrypted(self) -> bool:
        return self.scheme != "dns"


_DEFAULT_PORTS = {"dns": 53, "tls": 853, "https": 443}


def parse_nameserver(server: str) -> Nameserver:
    """``ip``, ``ip:port``, ``[v6]:port``, ``tls://host[:port][#name]``, ``https://host/path``."""
    text = server.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        host, port = split_nameserver(text)
        return Nameserver("dns", host, port)
    scheme = scheme.lower()
    if scheme == "quic":
        # dnspython's DoQ needs aioquic (with cryptography and pylsqpack): not a
        # dependency we add for one transport.
        raise ValueError(f"bad nameserver {server!r}: quic:// is not supported")
    if scheme not in ("tls", "https"):
        raise ValueError(f"bad nameserver {server!r}: scheme must be tls:// or https://")
    rest, _, tls_name = rest.partition("#")
    authority, slash, path = rest.partition("/")
    if scheme == "tls" and slash and path:
        raise ValueError(f"bad nameserver {server!r}: tls:// takes no path")
    if scheme == "https":
        path = "/" + path if slash else "/dns-query"  # RFC 8484's customary path
    host, port = _split_authority(server, authority, _DEFAULT_PORTS[scheme])
    tls_name = tls_name or host
    if not _is_hostname(tls_name):
        raise ValueError(f"bad nameserver {server!r}: {tls_name!r} is not a host name")
    return Nameserver(scheme, host, port, path, tls_name)


def _is_hostname(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    return bool(text) and all(
        0 < len(label) < 64 and label.isascii() and label.replace("-", "").isalnum()
        for label in labels
    )


def _split_authority(server: str, authority: str, default_port: int) -> tuple[str, int]:
    port = default_port
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad nameserver {server!r}")
        port_text = rest[1:] if rest else ""
    elif authority.count(":") == 1:
        host, _, port_text = authority.partition(":")
    else:
        host, port_text = authority, ""
    if port_text:
        if not port_text.isdigit():
            raise ValueError(f"bad nameserver {server!r}: bad port")
        port = int(port_text)
    if not _is_hostname(host):
        raise ValueError(f"bad nameserver {server!r}: {host!r} is not a host name or IP")
    if not 0 < port < 65536:
        raise ValueError(f"bad nameserver {server!r}: port out of range")
    return host, port


def split_nameserver(server: str) -> tuple[str, int]:
    """``"ip"``, ``"ip:port"`` or ``"[v6]:port"`` -> (ip, port)."""
    text = server.strip()
    port = 53
    try:
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
    except ValueError:
        raise ValueError(f"bad nameserver {server!r}: bad port") from None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"bad nameserver {server!r}: not an IP address") from None
    if not 0 < port < 65536:
        raise ValueError(f"bad nameserver {server!r}: port out of range")
    return host, port


def _check_ca_bundle(name: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be a path or None, not {type(value).__name__}")
    path = os.fspath(value)
    if not os.path.isabs(path):
        raise ValueError(f"{name} must be an absolute path, not {path!r}")
    return path


def _check_ttl_source(name: str, value: Any) -> Any:
    if value not in ("fixed", "dns"):
        raise ValueError(f"{name} must be 'fixed' or 'dns', not {value!r}")
    return value


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
    "control": _check_bool,
    "persist": _check_persist,
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
    "tls_ca_bundle": _check_ca_bundle,
    "ttl_source": _check_ttl_source,
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


# --- the options as typed keywords ---


class Options(TypedDict, total=False):
    """The keyword options of ``install()``, ``patched()`` and ``Resolver()``: Config's fields.

    Used as ``**options: Unpack[Options]``, so a type checker rejects a misspelt
    or mistyped option. Each key and its type follow the Config field of the same
    name, in the same order (a test keeps them in step); four accept more than the
    field stores, because the validators normalise them: ``hosts`` and ``preload``
    take any iterable of addresses (or one string) per name, ``nameservers`` one
    string or any iterable, ``persist`` a path-like.
    """

    ttl: float
    negative_ttl: float
    maxsize: int
    max_views: int
    disabled: bool
    hosts: Mapping[str, str | Iterable[str]]
    on_cache_miss: Hook | None
    on_change: Hook | None
    refresh: bool
    refresh_at: float
    stale_ttl: float
    resolve_timeout: float
    backend: str
    nameservers: str | Iterable[str]
    min_ttl: float
    max_ttl: float
    cleanup_interval: float
    happy_eyeballs_delay: float
    failure_penalty: float
    persist: str | os.PathLike[str] | None
    persist_mode: str
    persist_max_age: float
    preload: Mapping[str, str | Iterable[str]]
    trace: bool
    control: bool
    tls_ca_bundle: str | None
    ttl_source: str


def check_options(options: Mapping[str, object], where: str) -> None:
    """Raise ``TypeError`` naming an unknown option, as Python does for a bad keyword."""
    known = Options.__annotations__
    for name in options:
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"{where} got an unexpected keyword argument {name!r}{hint}")
