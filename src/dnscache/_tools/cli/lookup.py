"""``dnscache lookup``: resolve names as a program would, and say where each answer came from."""

from __future__ import annotations

import argparse
import math
import socket
import time
from typing import TYPE_CHECKING, Any

from .common import env_config
from .options import PROG, Command, Opts
from .output import emit_json, fmt_ns, say, table

if TYPE_CHECKING:
    from ..._cache.store import Entry
    from ..._engine.resolver import Resolver, Stats

_FAMILIES = {"4": socket.AF_INET, "6": socket.AF_INET6}


def _entry_for(resolver: Resolver, host: str, family: int) -> Entry | None:
    """The cache entry a lookup of ``host`` in ``family`` just used, if any."""
    from ..._core.names import encode_host

    try:
        bare = encode_host(host).lower().rstrip(b".")
    except UnicodeError:
        return None
    for entry in resolver.entries():
        if entry.key[1] == family and entry.key[0].rstrip(b".") == bare:
            return entry
    return None


def _source(before: Stats, after: Stats, entry: Entry | None) -> str:
    """How a lookup was answered, from the counters it moved and the entry's source."""
    if entry is None:
        return "literal"  # IP literals and uncacheable calls go straight to libc
    if after.stale_hits > before.stale_hits:
        return "stale"
    if getattr(after, "persisted_hits", 0) > getattr(before, "persisted_hits", 0):
        return "persisted"
    if after.lookups > before.lookups:
        return str(entry.source)
    # Answered without a lookup: from the cache, unless the entry says more.
    return "cache" if entry.source == "upstream" else str(entry.source)


def run(args: argparse.Namespace) -> int:
    from ..._engine.resolver import Resolver

    config = env_config(args.backend, args.nameserver or ())
    family = _FAMILIES.get(args.family or "", socket.AF_UNSPEC)
    results: list[dict[str, Any]] = []
    status = 0
    resolver = Resolver(config)
    try:
        for host in args.hosts:
            before = resolver.stats()
            start = time.perf_counter_ns()
            try:
                addresses = resolver.lookup(host, family)
            except (OSError, UnicodeError) as exc:
                status = 1
                say(f"{PROG}: {host}: {exc}")
                results.append(
                    {"host": host, "error": str(exc), "errno": getattr(exc, "errno", None)}
                )
                continue
            elapsed = time.perf_counter_ns() - start
            after = resolver.stats()
            entry = _entry_for(resolver, host, family)
            ttl: float | None = None
            if entry is not None:
                ttl = entry.life.expires - time.monotonic()
                ttl = None if math.isinf(ttl) else max(ttl, 0.0)
            results.append(
                {
                    "host": host,
                    "family": {socket.AF_INET: 4, socket.AF_INET6: 6}.get(family),
                    "addresses": addresses,
                    "canonname": entry.canonname if entry is not None else "",
                    "source": _source(before, after, entry),
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


COMMAND = Command(
    name="lookup",
    help="resolve names with the environment's configuration",
    description="Resolve each HOST with a Resolver configured from PYTHONDNSCACHE_* "
    "variables and the options below; show its addresses, where the answer came from, "
    "the TTL left and the time taken. Exit 1 if any name does not resolve.",
    run=run,
    configure=_configure,
    options=(Opts.family, Opts.json, Opts.backend, Opts.nameserver),
)
