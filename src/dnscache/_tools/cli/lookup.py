"""``dnscache lookup``: resolve names as a program would, and say where each answer came from.

Each name goes through a Resolver built from the ``PYTHONDNSCACHE_*`` variables
(and the options), exactly as in a program. Around it, ``lookup`` works out
what the engine does not report:

* the *source* of the answer, from the counters the lookup moved, the entry it
  left and the system's files: ``hosts`` (the hosts file, which libc reads
  first), ``upstream`` (a DNS server), ``cache`` (a fresh entry, no query),
  ``stale`` (an expired entry served while the upstream failed), ``override``
  (``PYTHONDNSCACHE_HOSTS``), ``persisted``/``preload`` (the persistent layer),
  ``literal`` (an IP address: nothing to resolve) and ``disabled`` (the cache
  is off, so libc answered directly);
* *why an upstream failed*, from one explicit query per nameserver
  (:mod:`.diagnose`): refused, unreachable, timeout, NXDOMAIN, SERVFAIL.

The engine's lookup runs on a worker thread so that the diagnosis can start
when the answer is late: if every server is down hard (refused or unreachable)
the lookup cannot succeed before its lifetime runs out, and ``lookup`` says so
at once instead of waiting the lifetime (5 s) for EAI_AGAIN, as dig does.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import diagnose
from .common import env_config
from .options import FAILED, OK, PROG, Command, Opts
from .output import emit_json, fmt_ns, say, table

if TYPE_CHECKING:
    from ..._core.config import Config
    from ..._engine.resolver import Resolver, Stats

_FAMILIES = {"4": socket.AF_INET, "6": socket.AF_INET6}
# A healthy resolver answers within this (a round trip to a recursive resolver's
# cache); past it, one extra query to each server to learn what is wrong costs less
# than the user's wait. Only late or failed lookups are probed.
PROBE_AFTER = 0.1
# The dnspython backend's query lifetime: the engine's rule (Resolver.__init__ passes
# max(resolve_timeout, 5.0)), repeated here to bound the diagnosis by the same time.
MIN_LIFETIME = 5.0
# The system backend: glibc's RES_TIMEOUT (resolv.h), its wait per server and try.
LIBC_TIMEOUT = 5.0
# A lookup that outlives every bound above (a stuck libc): give up waiting.
JOIN_LIMIT = 60.0
# Errors that mean "no answer from upstream", worth asking the servers about.
_UPSTREAM_ERRORS = frozenset(
    getattr(socket, name)
    for name in ("EAI_AGAIN", "EAI_FAIL", "EAI_NONAME", "EAI_NODATA")
    if hasattr(socket, name)
)


@dataclass
class _Outcome:
    addresses: list[str] | None = None
    error: BaseException | None = None


def _entry_for(resolver: Resolver, host: str, family: int) -> Any:
    """The cache entry a lookup of ``host`` in ``family`` just used, if any.

    Typed ``Any``: only the attributes ``Resolver.entries()`` documents are read, and
    the entry class itself belongs to the store, which moves.
    """
    from ..._core.names import encode_host

    try:
        bare = encode_host(host).lower().rstrip(b".")
    except UnicodeError:
        return None
    for entry in resolver.entries():
        if entry.key[1] == family and entry.key[0].rstrip(b".") == bare:
            return entry
    return None


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.partition("%")[0])  # an IPv6 scope id is libc's business
    except ValueError:
        return False
    return True


def _in_hosts_file(host: str, hosts_names: frozenset[bytes]) -> bool:
    from ..._core.names import encode_host

    try:
        return encode_host(host).lower().rstrip(b".") in hosts_names
    except UnicodeError:
        return False


def source_of(
    host: str,
    config: Config,
    hosts_names: frozenset[bytes],
    before: Stats,
    after: Stats,
    entry: Any,
) -> tuple[str, str | None]:
    """(source, origin): how a lookup was answered, and where a cached answer came from."""
    if config.disabled:
        return "disabled", None
    if _is_literal(host):
        return "literal", None
    if entry is None:
        return "passthrough", None  # not cacheable (flags, family): libc answered
    origin = str(entry.source)
    if origin == "upstream" and _in_hosts_file(host, hosts_names):
        origin = "hosts"  # libc (or the dnspython backend's hand-off to it) read the file
    if after.stale_hits > before.stale_hits:
        return "stale", origin
    if after.persisted_hits > before.persisted_hits:
        return origin, origin  # "persisted" or "preload"
    if after.lookups > before.lookups or origin == "override":
        return origin, origin
    return "cache", origin


def _servers(config: Config, nameservers: tuple[str, ...]) -> list[str]:
    """The servers the engine asks: the configured ones, else resolv.conf's."""
    return list(config.nameservers) if config.nameservers else list(nameservers)


def _budget(config: Config) -> float:
    if config.backend == "dnspython":
        return max(config.resolve_timeout, MIN_LIFETIME)
    return LIBC_TIMEOUT


def _resolve(
    resolver: Resolver, host: str, family: int, servers: list[str], budget: float
) -> tuple[_Outcome, list[diagnose.ServerResult] | None, bool]:
    """(outcome, diagnosis, finished): the engine's answer, and the servers' when it was late.

    ``finished`` is False when the diagnosis showed every server down hard and
    the engine's lookup was left to fail on its own (it is interrupted by close()).
    """
    outcome = _Outcome()

    def work() -> None:
        try:
            outcome.addresses = resolver.lookup(host, family)
        except BaseException as exc:  # reported to the user, never raised on this thread
            outcome.error = exc

    # Not named dnscache-*: the engine treats its own threads as background workers.
    worker = threading.Thread(target=work, name="cli-lookup", daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(PROBE_AFTER)
    diagnosis = None
    rdtype = "AAAA" if family == socket.AF_INET6 else "A"
    if worker.is_alive() and servers:
        left = budget - (time.monotonic() - started)
        diagnosis = diagnose.probe(
            servers, host, rdtype, max(left, 0.5), stop=lambda: not worker.is_alive()
        )
        if diagnosis and all(r.hard_down for r in diagnosis) and worker.is_alive():
            return outcome, diagnosis, False
    worker.join(JOIN_LIMIT)
    if worker.is_alive():
        outcome.error = TimeoutError(f"no answer after {JOIN_LIMIT:.0f} s")
        return outcome, diagnosis, False
    error = outcome.error
    failed_upstream = isinstance(error, socket.gaierror) and error.errno in _UPSTREAM_ERRORS
    if failed_upstream and servers and not diagnosis:  # the engine failed fast: ask now
        left = budget - (time.monotonic() - started)
        diagnosis = diagnose.probe(servers, host, rdtype, min(max(left, 0.5), budget))
    return outcome, diagnosis, True


def _failure(
    host: str,
    error: BaseException | None,
    diagnosis: list[diagnose.ServerResult] | None,
    finished: bool,
    elapsed_ns: int,
) -> dict[str, Any]:
    if error is None:  # gave up early: every server is down hard
        error = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    result: dict[str, Any] = {
        "host": host,
        "error": str(error),
        "errno": getattr(error, "errno", None),
        "reason": diagnose.reason(diagnosis) if diagnosis else None,
        "upstream": [vars(r) for r in diagnosis] if diagnosis else [],
        "resolver_finished": finished,
        "time_ms": round(elapsed_ns / 1e6, 3),
    }
    line = f"{PROG}: {host}: {error}"
    if diagnosis:
        line += f" (upstream {diagnose.describe(diagnosis)})"
    if not finished:
        line += "; not waiting for the resolver's timeout"
    say(line)
    return result


def run(args: argparse.Namespace) -> int:
    from ..._engine.resolver import Resolver
    from ..._sources.sysfiles import load_facts

    config = env_config(args.backend, args.nameserver or ())
    family = _FAMILIES.get(args.family or "", socket.AF_UNSPEC)
    facts = load_facts()
    servers = _servers(config, facts.nameservers) if not config.disabled else []
    results: list[dict[str, Any]] = []
    status = OK
    resolver = Resolver(config)
    try:
        for host in args.hosts:
            before = resolver.stats()
            start = time.perf_counter_ns()
            # A literal or a hosts-file name never reaches a server: nothing to ask.
            local = _is_literal(host) or _in_hosts_file(host, facts.hosts_names)
            outcome, diagnosis, finished = _resolve(
                resolver, host, family, [] if local else servers, _budget(config)
            )
            elapsed = time.perf_counter_ns() - start
            if outcome.addresses is None:
                status = FAILED
                results.append(_failure(host, outcome.error, diagnosis, finished, elapsed))
                continue
            entry = _entry_for(resolver, host, family)
            source, origin = source_of(
                host, config, facts.hosts_names, before, resolver.stats(), entry
            )
            ttl: float | None = None
            if entry is not None:
                ttl = entry.life.expires - time.monotonic()
                ttl = None if math.isinf(ttl) else max(ttl, 0.0)
            results.append(
                {
                    "host": host,
                    "family": {socket.AF_INET: 4, socket.AF_INET6: 6}.get(family),
                    "addresses": outcome.addresses,
                    "canonname": entry.canonname if entry is not None else "",
                    "source": source,
                    "origin": origin,
                    "ttl": None if ttl is None else round(ttl, 3),
                    "permanent": entry is not None and math.isinf(entry.life.expires),
                    "time_ms": round(elapsed / 1e6, 3),
                }
            )
    finally:
        resolver.close()
    if args.json:
        emit_json(results)
        return status
    found = [r for r in results if "error" not in r]
    if found:
        rows = [["HOST", "SOURCE", "TTL", "TIME", "ADDRESSES"]]
        for r in found:
            if r["permanent"]:
                ttl_text = "forever"
            elif r["ttl"] is None:
                ttl_text = "-"
            else:
                ttl_text = f"{r['ttl']:.0f}s"
            rows.append(
                [
                    r["host"],
                    r["source"],
                    ttl_text,
                    fmt_ns(r["time_ms"] * 1e6),
                    " ".join(r["addresses"]),
                ]
            )
        print(table(rows, right=[False, False, True, True, False]))
    return status


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hosts", nargs="+", metavar="HOST")
    family = parser.add_mutually_exclusive_group()
    for opt in (Opts.ipv4, Opts.ipv6, Opts.family):
        opt.add(family)


COMMAND = Command(
    name="lookup",
    help="resolve names with the environment's configuration",
    description="Resolve each HOST with a Resolver configured from PYTHONDNSCACHE_* "
    "variables and the options below; show its addresses, where the answer came from "
    "(hosts, upstream, cache, stale, override, persisted, preload, literal, disabled), "
    "the TTL left and the time taken. When a name does not resolve, ask each nameserver "
    "why (refused, unreachable, timeout, NXDOMAIN, SERVFAIL) and exit 1.",
    run=run,
    configure=_configure,
    options=(Opts.json, Opts.backend, Opts.nameserver),
)
