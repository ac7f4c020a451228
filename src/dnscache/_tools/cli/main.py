"""The command line: ``dnscache`` / ``python -m dnscache``.

Commands, in the order a newcomer meets them:

* ``demo``: the README's first command. Starts the embedded loopback DNS server
  with a 20 ms answer delay standing in for the network, then runs the same
  lookups without and with the cache and prints what reached the server.
* ``lookup``: resolve names the way a program would with the environment's
  configuration, and say where each answer came from.
* ``run``: run a command with the cache switched on through ``PYTHONDNSCACHE``
  (the ``.pth`` hook does the rest in the child).
* ``cache``: look at, prune or clear the persistent (sqlite) cache.
* ``bench``: hit and miss latencies against the embedded server.
* ``doctor``: is activation installed, what is configured, what is patched, and
  what in this environment would bypass ``socket.getaddrinfo`` altogether.

Rules every command keeps: a user error (bad flag, bad value, unknown name) is
one line on stderr and a non-zero exit, never a traceback; bad usage exits 2
(argparse's convention), a failed lookup 1, and ``run`` passes its child's
status through (127 when the command does not exist, as a shell does).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import site
import socket
import statistics
import sys
import time
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

if TYPE_CHECKING:
    from ..._cache.entries import Entry
    from ..._core.config import Config
    from ..._engine.resolver import Resolver, Stats
    from ..._sources.persist.store import PersistentStore
    from ..._tools.dnsserver import DNSServer

PROG = "dnscache"

# The demo's and the bench's zone: names under .test (RFC 6761 reserves it, so
# they can never be real), answered with loopback addresses only.
DEMO_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "api.demo.test": (("127.0.0.10",), ("::1",)),
    "db.demo.test": (("127.0.0.11",), ()),
    "cdn.demo.test": (("127.0.0.12", "127.0.0.13"), ("::1",)),
    "auth.demo.test": (("127.0.0.14",), ()),
    "queue.demo.test": (("127.0.0.15",), ("::1",)),
}
DEMO_TTL = 300  # seconds: longer than the demo, so every cached answer stays fresh
DEMO_DELAY_MS = 20.0  # a typical round trip to an ISP's or a public resolver
DEMO_COUNT = 200
BENCH_COUNT = 1000
PATCHED_CALLS = 100

# Clients whose name resolution never goes through socket.getaddrinfo, and why.
BYPASSES = {
    "uvloop": "asyncio's loop.getaddrinfo() runs libuv's uv_getaddrinfo in C, "
    "not socket.getaddrinfo (only with uvloop's event loop installed)",
    "aiodns": "queries DNS itself through c-ares; aiohttp's AsyncResolver uses it, "
    "so pick aiohttp's ThreadedResolver to go through the cache",
    "pycares": "c-ares bindings: a complete DNS client in C that never calls socket.getaddrinfo",
    "pycurl": "libcurl resolves names in C (its threaded resolver or c-ares); "
    "use CURLOPT_RESOLVE for overrides",
    "grpc": "gRPC core resolves names in C (c-ares or its native resolver); "
    "set GRPC_DNS_RESOLVER=native to at least use the system's resolver",
}


class UsageError(Exception):
    """Bad input from the user: shown as one line, exit status 2."""


class CommandError(Exception):
    """A command could not do its work: shown as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: "dnscache lookup: error: ... (see --help)"."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --- small helpers --------------------------------------------------------------------


def _say(message: str, stream: TextIO | None = None) -> None:
    print(message, file=sys.stderr if stream is None else stream)


def _micro() -> str:
    """The micro sign where the output can show it, else "us"."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "µ".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "us"
    return "µs"


def fmt_ns(ns: float) -> str:
    """A duration in nanoseconds, in the unit that reads best."""
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.1f} {_micro()}"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.1f} ms"
    return f"{ns / 1_000_000_000:.2f} s"


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 is a latency that happened)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def table(rows: Sequence[Sequence[str]], right: Sequence[bool] = ()) -> str:
    """Rows of cells as aligned columns; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            align_right = i < len(right) and right[i]
            cells.append(cell.rjust(widths[i]) if align_right else cell.ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


class Progress:
    """A progress bar on stderr when it is a terminal; otherwise one line per phase, or nothing."""

    WIDTH = 30
    INTERVAL = 0.05  # seconds between redraws: drawing must not cost what we measure

    def __init__(self, stream: TextIO | None = None, *, plain: bool = True) -> None:
        self._stream = sys.stderr if stream is None else stream
        self._plain = plain
        isatty = getattr(self._stream, "isatty", None)
        self._tty = bool(isatty and isatty())
        self._label = ""
        self._total = 1
        self._drawn = 0.0

    def phase(self, label: str, total: int) -> None:
        self._label, self._total, self._drawn = label, max(total, 1), 0.0
        if self._tty:
            self.update(0, force=True)
        elif self._plain:
            self._stream.write(f"{PROG}: {label} ({total})...\n")
            self._stream.flush()

    def update(self, done: int, force: bool = False) -> None:
        if not self._tty:
            return
        now = time.monotonic()
        if not force and now - self._drawn < self.INTERVAL:
            return
        self._drawn = now
        filled = self.WIDTH * done // self._total
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self._stream.write(f"\r{self._label:<24} [{bar}] {done}/{self._total}\x1b[K")
        self._stream.flush()

    def close(self) -> None:
        if self._tty:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


@contextlib.contextmanager
def _demo_server(delay_ms: float) -> Iterator[DNSServer]:
    from ..._tools.dnsserver import DNSServer

    server = DNSServer("127.0.0.1", default_ttl=DEMO_TTL)
    for name, (a, aaaa) in DEMO_NAMES.items():
        server.set(name, a=a, aaaa=aaaa, ttl=DEMO_TTL)
    server.delay = delay_ms / 1000
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _uncached_options() -> dict[str, Any]:
    """Resolver options that send every call to the backend.

    Not ``disabled=True``: a disabled Resolver passes calls to the *system*
    getaddrinfo, which knows nothing of the embedded server's names. A zero TTL
    (RFC 1035: "do not cache") with no refresh and no stale window makes each
    call an upstream lookup through the same dnspython backend as the cached run.
    """
    return {"max_ttl": 0.0, "stale_ttl": 0.0, "refresh": False, "negative_ttl": 0.0}


def _timed_calls(
    call: Callable[[str], object], names: Sequence[str], count: int, progress: Progress
) -> list[int]:
    """Call ``call(name)`` ``count`` times, cycling through ``names``; per-call ns."""
    clock = time.perf_counter_ns
    samples: list[int] = []
    for i in range(count):
        name = names[i % len(names)]
        start = clock()
        call(name)
        samples.append(clock() - start)
        progress.update(i + 1)
    return samples


# --- demo -----------------------------------------------------------------------------


def _stats_row(label: str, samples: Sequence[int], queries: int | str) -> list[str]:
    return [
        label,
        str(len(samples)),
        str(queries),
        fmt_ns(statistics.median(samples)),
        fmt_ns(percentile(samples, 0.99)),
        fmt_ns(sum(samples)),
    ]


def cmd_demo(args: argparse.Namespace) -> int:
    import dnscache

    names = list(DEMO_NAMES)[: args.names]
    count = args.count
    progress = Progress(plain=False)
    with _demo_server(args.delay) as server:
        ns = server.nameserver
        print(f"{PROG} demo: {count} lookups of {len(names)} names, without and with the cache.")
        print()
        print(f"A DNS server on {ns} stands in for your network's resolver: it waits")
        print(f"{args.delay:g} ms before every answer to play the part of network latency.")
        print("Its names are under .test and all point at loopback addresses.")
        print()

        def gai(resolver: Any) -> Callable[[str], object]:
            return lambda name: resolver.getaddrinfo(name, 443, 0, socket.SOCK_STREAM)

        common: dict[str, Any] = {"backend": "dnspython", "nameservers": (ns,)}
        runs: dict[str, tuple[int, list[int]]] = {}
        try:
            for label, extra in (("uncached", _uncached_options()), ("cached", {})):
                server.reset_counts()
                with dnscache.Resolver(**common, **extra) as resolver:
                    progress.phase(f"{label} lookups", count)
                    samples = _timed_calls(gai(resolver), names, count, progress)
                runs[label] = (server.queries(), samples)
        finally:
            progress.close()

        q_un, s_un = runs["uncached"]
        q_ca, s_ca = runs["cached"]
        rows = [["", "lookups", "DNS queries", "median", "p99", "total"]]
        rows.append(_stats_row("uncached", s_un, q_un))
        rows.append(_stats_row("cached", s_ca, q_ca))
        hits = s_ca[len(names) :]  # the first round (one call per name) were the misses
        if hits:
            rows.append(_stats_row("  of which hits", hits, 0))
        print(table(rows, right=[False, True, True, True, True, True]))
        print()
        print(f"DNS queries: {q_un} uncached, {q_ca} cached (A and AAAA once per name).")
        speedup = sum(s_un) / max(sum(s_ca), 1)
        print(f"Speed-up: {speedup:,.0f}x in total time", end="")
        if hits:
            hit_speedup = statistics.median(s_un) / max(statistics.median(hits), 1)
            print(f"; a hit is {hit_speedup:,.0f}x faster than a lookup at the median.")
        else:
            print(".")
        print()

        # The same, for code that never heard of dnscache: socket.getaddrinfo itself.
        host = names[0]
        print(f'with dnscache.patched(backend="dnspython", nameservers=["{ns}"]):')
        print(f'    for _ in range({PATCHED_CALLS}): socket.getaddrinfo("{host}", 443)')
        server.reset_counts()
        before = server.queries()
        with dnscache.patched(backend="dnspython", nameservers=(ns,)) as resolver:
            patched_now = bool(getattr(socket.getaddrinfo, "__dnscache__", False))
            for _ in range(PATCHED_CALLS):
                socket.getaddrinfo(host, 443)
            hit_count = resolver.stats().hits
        after = server.queries()
        restored = not getattr(socket.getaddrinfo, "__dnscache__", False)
        yes = {True: "yes", False: "no"}
        print(f"  socket.getaddrinfo is dnscache's inside the block: {yes[patched_now]}")
        print(
            f"  DNS queries: {before} before the block, {after} after it "
            f"({PATCHED_CALLS} calls, {hit_count} of them hits)"
        )
        print(f"  socket.getaddrinfo is the original again after it: {yes[restored]}")
        print()
        print("Turn it on for any program:  PYTHONDNSCACHE=1 python app.py")
        print(f"                         or:  {PROG} run -- python app.py")
    return 0


# --- lookup ---------------------------------------------------------------------------

_FAMILIES = {"4": socket.AF_INET, "6": socket.AF_INET6}


def _env_config(backend: str | None = None, nameservers: Sequence[str] = ()) -> Config:
    """Config.from_env() with problems printed as one line each, plus command-line overrides."""
    from ..._core.config import parse_env

    config, problems = parse_env()
    for problem in problems:
        _say(problem)
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


def cmd_lookup(args: argparse.Namespace) -> int:
    from ..._engine.resolver import Resolver

    config = _env_config(args.backend, args.nameserver or ())
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
                _say(f"{PROG}: {host}: {exc}")
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
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
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


# --- run ------------------------------------------------------------------------------


def _is_callable_type(tp: Any) -> bool:
    """True for ``Callable[...]`` and unions containing one (the hooks)."""
    if tp is Callable or typing.get_origin(tp) is Callable:
        return True
    return any(_is_callable_type(arg) for arg in typing.get_args(tp))


def run_fields() -> list[dataclasses.Field[Any]]:
    """The Config fields ``run`` offers as options: all but the hooks (callables)."""
    from ..._core.config import Config

    try:
        hints = typing.get_type_hints(Config)
    except Exception:  # an annotation only a type checker can resolve: read the text
        hints = {}
    fields = []
    for f in dataclasses.fields(Config):
        if f.name in hints:
            hook = _is_callable_type(hints[f.name])
        else:
            hook = any(word in str(f.type) for word in ("Callable", "Hook"))
        if not hook:
            fields.append(f)
    return fields


def _option(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _run_env(args: argparse.Namespace) -> dict[str, str]:
    """The child's environment: ours, PYTHONDNSCACHE=1 and one variable per option given."""
    from ..._core.config import ENV_PREFIX, Config, env_name

    env = dict(os.environ)
    env[ENV_PREFIX] = "1"
    for f in run_fields():
        raw = getattr(args, f.name)
        if raw is None:
            continue
        try:
            value = f.metadata["parse"](raw)
            Config(**{f.name: value})  # the same checks the child will make
        except Exception as exc:
            raise UsageError(f"argument {_option(f.name)}: {raw!r}: {exc}") from None
        env[env_name(f.name)] = raw
    return env


def cmd_run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("no command to run")
    env = _run_env(args)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        # exec, not a child: the command gets our pid, terminal and signals, and
        # its exit status is ours without any translation.
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        _say(f"{PROG}: {command[0]}: command not found")
        return 127
    except PermissionError:
        _say(f"{PROG}: {command[0]}: permission denied")
        return 126
    except OSError as exc:
        _say(f"{PROG}: {command[0]}: {exc.strerror or exc}")
        return 126


# --- cache ----------------------------------------------------------------------------


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


def _ago(wall: float | None, now: float) -> str:
    if wall is None:
        return "never"
    seconds = max(0.0, now - wall)
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f}h ago"
    return f"{seconds / 86400:.0f}d ago"


SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every sqlite database


def _check_cache_file(path: str) -> None:
    """Refuse a --path that is not an sqlite file, before the store may "repair" it.

    The store treats a file that is not a database as a corrupt cache and moves
    it aside; right for its own file, wrong for a mistyped ``--path ~/.bashrc``.
    """
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory")
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head and head != SQLITE_MAGIC:
        raise UsageError(f"{path} is not an sqlite database; leaving it alone")


@contextlib.contextmanager
def _open_store(path: str, max_age: float | None) -> Iterator[PersistentStore]:
    from ..._sources.persist.store import DEFAULT_MAX_AGE, PersistentStore

    store = PersistentStore(path, max_age=DEFAULT_MAX_AGE if max_age is None else max_age)
    try:
        yield store
    finally:
        store.close()


def cmd_cache(args: argparse.Namespace) -> int:
    path = cache_path(args.path)
    action = args.cache_command
    if not os.path.exists(path):
        # Never create a database just to say it is empty.
        print(f"no persistent cache at {path}")
        return 0
    _check_cache_file(path)
    with _open_store(path, args.max_age) as store:
        if action == "show":
            hosts = store.all_hosts()
            if args.host:
                wanted = args.host.lower().rstrip(".")
                hosts = [(h, seen) for h, seen in hosts if h.lower().rstrip(".") == wanted]
            if store.degraded:
                raise CommandError(f"cannot read {path}")
            if not hosts:
                print(f"{path}: {'no addresses for ' + args.host if args.host else 'empty'}")
                return 0
            now = time.time()
            rows = [["HOST", "ADDRESS", "LAST SEEN", "LAST CONNECTED"]]
            for host, seen in hosts:
                for s in seen:
                    rows.append([host, s.ip, _ago(s.last_seen, now), _ago(s.last_connected, now)])
            print(f"{path}:")
            print(table(rows))
        elif action == "prune":
            removed = store.prune()
            if store.degraded:
                raise CommandError(f"cannot prune {path}")
            print(f"{path}: pruned {removed} old record{'s' if removed != 1 else ''}")
        else:
            store.clear()
            if store.degraded:
                raise CommandError(f"cannot clear {path}")
            print(f"{path}: cleared")
    return 0


# --- bench ----------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace) -> int:
    from ..._engine.resolver import Resolver
    from ..._sources.originals import get_original

    count, names = args.count, list(DEMO_NAMES)[: args.names]
    progress = Progress()
    rows = [["", "calls", "DNS queries", "median", "p99", "mean", "calls/s"]]

    def add(label: str, samples: list[int], queries: int | None) -> None:
        mean = statistics.fmean(samples)
        rows.append(
            [
                label,
                str(len(samples)),
                "-" if queries is None else str(queries),
                fmt_ns(statistics.median(samples)),
                fmt_ns(percentile(samples, 0.99)),
                fmt_ns(mean),
                f"{1e9 / mean:,.0f}" if mean else "-",
            ]
        )

    with _demo_server(args.delay) as server:
        common: dict[str, Any] = {"backend": "dnspython", "nameservers": (server.nameserver,)}
        try:
            server.reset_counts()
            with Resolver(**common, **_uncached_options()) as resolver:
                progress.phase("uncached (upstream)", count)
                samples = _timed_calls(
                    lambda n: resolver.getaddrinfo(n, 443, 0, socket.SOCK_STREAM),
                    names,
                    count,
                    progress,
                )
            add("uncached (upstream)", samples, server.queries())

            server.reset_counts()
            with Resolver(**common) as resolver:
                progress.phase("first lookups (misses)", len(names))
                misses = _timed_calls(
                    lambda n: resolver.getaddrinfo(n, 443, 0, socket.SOCK_STREAM),
                    names,
                    len(names),
                    progress,
                )
                progress.phase("cache hits", count)
                hits = _timed_calls(
                    lambda n: resolver.getaddrinfo(n, 443, 0, socket.SOCK_STREAM),
                    names,
                    count,
                    progress,
                )
            add("cached: first lookup", misses, server.queries())
            add("cached: hit", hits, 0)

            original = get_original("getaddrinfo")
            progress.phase("libc: localhost", count)
            libc = _timed_calls(
                lambda n: original("localhost", 443, 0, socket.SOCK_STREAM),
                names,
                count,
                progress,
            )
            add("libc, /etc/hosts (reference)", libc, None)
        finally:
            progress.close()
    delay = f"{args.delay:g} ms added delay" if args.delay else "no added delay"
    print(
        f"{PROG} bench: {len(names)} names over the embedded DNS server on loopback "
        f"({delay}); backend dnspython"
    )
    print()
    print(table(rows, right=[False] + [True] * 6))
    print()
    speedup = statistics.median(samples) / max(statistics.median(hits), 1)
    print(f"median hit is {speedup:,.0f}x faster than an upstream lookup over loopback")
    return 0


# --- doctor ---------------------------------------------------------------------------


def _site_dirs() -> list[str]:
    dirs: list[str] = []
    with contextlib.suppress(AttributeError):  # virtualenv's old site.py lacks these
        dirs.extend(site.getsitepackages())
    with contextlib.suppress(AttributeError):
        dirs.append(site.getusersitepackages())
    seen: list[str] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def _show(value: Any) -> str:
    if isinstance(value, typing.Mapping):
        return repr({k: list(v) if isinstance(v, tuple) else v for k, v in value.items()})
    if callable(value):
        return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', value)!r}"
    return repr(value)


def cmd_doctor(args: argparse.Namespace) -> int:
    import dnscache

    from ..._activation.startup import PTH_LINE
    from ..._core.config import ENV_PREFIX, env_flag, env_name, parse_env
    from ..._sources.sysfiles import load_facts

    print(f"{PROG} {dnscache.__version__} on Python {sys.version.split()[0]} ({sys.executable})")

    print("\nStart-up activation (dnscache.pth)")
    found = []
    for directory in _site_dirs():
        path = os.path.join(directory, "dnscache.pth")
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as pth:
                    content = pth.read()
            except OSError as exc:
                print(f"  {path}: unreadable ({exc.strerror})")
                continue
            ok = content.strip() == PTH_LINE
            found.append(ok)
            state = "ok" if ok else "differs from this version's PTH_LINE: reinstall pydnscache"
            print(f"  {path}: {state}")
    if not found:
        print("  not installed in any site directory: PYTHONDNSCACHE=1 will do nothing;")
        print("  reinstall pydnscache, or call dnscache.install() from sitecustomize.py")
    if sys.flags.no_site:
        print("  this interpreter runs with -S: site-packages .pth files are not processed")
    raw = os.environ.get(ENV_PREFIX)
    flag = env_flag(raw)
    if raw is None:
        print(f"  {ENV_PREFIX} is not set: the .pth does nothing (set {ENV_PREFIX}=1)")
    elif flag is None:
        print(f"  {ENV_PREFIX}={raw!r} is not a switch: the cache stays off (use 1 or 0)")
    elif flag:
        fires = "fires at start-up" if any(found) else "would fire, but no valid .pth is installed"
        print(f"  {ENV_PREFIX}={raw!r}: activation {fires}")
    else:
        print(f"  {ENV_PREFIX}={raw!r}: switched off")

    config, problems = parse_env()
    print(f"\nConfiguration ({ENV_PREFIX}_* variables)")
    rows = [["option", "value", "from"]]
    for f in dataclasses.fields(config):
        name = env_name(f.name)
        if name not in os.environ:
            origin = "default"
        elif any(f"ignoring {name}=" in problem for problem in problems):
            origin = f"default ({name} ignored)"
        else:
            origin = name
        rows.append([f.name, _show(getattr(config, f.name)), origin])
    print("  " + table(rows).replace("\n", "\n  "))
    for problem in problems:
        print(f"  problem: {problem}")

    print("\nPatched in this interpreter")
    for name in ("getaddrinfo", "create_connection"):
        ours = getattr(getattr(socket, name), "__dnscache__", False)
        print(f"  socket.{name}: {'dnscache' if ours else 'the original'}")
    active = dnscache.active_resolver()
    if active is not None:
        counters = dataclasses.asdict(active.stats())
        print("  active resolver: " + " ".join(f"{k}={v}" for k, v in counters.items()))

    print("\nInstalled clients that bypass socket.getaddrinfo")
    bypassing = [name for name in BYPASSES if importlib.util.find_spec(name) is not None]
    for name in bypassing:
        print(f"  {name}: {BYPASSES[name]}")
    if not bypassing:
        print(f"  none of {', '.join(BYPASSES)}")

    print("\nNameservers")
    facts = load_facts()
    system = ", ".join(facts.nameservers) or "none listed"
    print(f"  /etc/resolv.conf: {system}")
    if config.backend == "dnspython":
        mine = ", ".join(config.nameservers) or "resolv.conf's"
        print(f"  backend dnspython asks: {mine}")
    else:
        print("  backend system: libc's getaddrinfo decides (hosts file, nsswitch, resolv.conf)")

    path = cache_path(None)
    state = "exists" if os.path.exists(path) else "not created yet"
    print(f"\nPersistent cache\n  {path}: {state}")
    return 0


# --- the parser -----------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _delay_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be between 0 and 1000 ms")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _names_count(text: str) -> int:
    value = _positive_int(text)
    if value > len(DEMO_NAMES):
        raise argparse.ArgumentTypeError(f"at most {len(DEMO_NAMES)}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="A faithful, cached socket.getaddrinfo: try it, check it, run with it.",
        epilog=f"Start with '{PROG} demo'. Every command has --help.",
    )
    from ... import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command_name", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "demo",
        help="see the cache at work against a local DNS server (start here)",
        description="Resolve the same names without and with the cache against an embedded "
        "loopback DNS server that adds a delay standing in for the network, and show the "
        "queries it received and the latencies.",
    )
    p.add_argument(
        "--count", type=_positive_int, default=DEMO_COUNT, help="lookups per run (%(default)s)"
    )
    p.add_argument(
        "--names", type=_names_count, default=len(DEMO_NAMES), help="names used (%(default)s)"
    )
    p.add_argument(
        "--delay",
        type=_delay_ms,
        default=DEMO_DELAY_MS,
        metavar="MS",
        help="the server's delay per answer in ms (%(default)s)",
    )
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser(
        "lookup",
        help="resolve names with the environment's configuration",
        description="Resolve each HOST with a Resolver configured from PYTHONDNSCACHE_* "
        "variables and the options below; show its addresses, where the answer came from, "
        "the TTL left and the time taken. Exit 1 if any name does not resolve.",
    )
    p.add_argument("hosts", nargs="+", metavar="HOST")
    p.add_argument("--family", choices=["4", "6"], help="IPv4 or IPv6 only (default: both)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--backend", choices=["system", "dnspython"], help="where answers come from")
    p.add_argument(
        "--nameserver",
        action="append",
        metavar="IP[:PORT]",
        help="a server for the dnspython backend (repeatable; implies --backend dnspython)",
    )
    p.set_defaults(handler=cmd_lookup)

    p = sub.add_parser(
        "run",
        help="run a command with the cache on",
        description="Run COMMAND with PYTHONDNSCACHE=1 and each option below as its "
        "PYTHONDNSCACHE_<OPTION> variable, so every Python program it starts caches DNS. "
        "Exits with COMMAND's status (127 if it is not found).",
        usage=f"{PROG} run [OPTIONS] [--] COMMAND [ARGS...]",
    )
    for f in run_fields():
        doc = str(f.metadata.get("doc", "")).replace("%", "%%")
        from ..._core.config import env_name

        p.add_argument(
            _option(f.name),
            dest=f.name,
            metavar="VALUE",
            help=f"{doc} [{env_name(f.name)}]",
        )
    p.add_argument("command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser(
        "cache",
        help="show, prune or clear the persistent cache",
        description="The persistent (sqlite) cache of addresses seen. The path defaults to "
        "PYTHONDNSCACHE_PERSIST when it names a file, else $XDG_CACHE_HOME/dnscache/"
        "dns.sqlite3 (or ~/.cache/dnscache/dns.sqlite3).",
    )
    cache_sub = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    for action, text in (
        ("show", "list the hosts and addresses recorded"),
        ("prune", "drop records older than the maximum age"),
        ("clear", "delete every record"),
    ):
        q = cache_sub.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        if action == "show":
            q.add_argument("host", nargs="?", metavar="HOST", help="only this host")
        q.add_argument("--path", help="the database file")
        if action != "clear":
            q.add_argument(
                "--max-age",
                type=_seconds,
                metavar="SECONDS",
                help="records not seen for this long are dead (default: 30 days)",
            )
        else:
            q.set_defaults(max_age=None)
        q.set_defaults(handler=cmd_cache)

    p = sub.add_parser(
        "bench",
        help="measure hit and miss latency",
        description="Benchmark uncached against cached lookups over the embedded loopback DNS "
        "server: per-call median, p99 and mean (time.perf_counter_ns).",
    )
    p.add_argument(
        "--count", type=_positive_int, default=BENCH_COUNT, help="calls per case (%(default)s)"
    )
    p.add_argument(
        "--names", type=_names_count, default=len(DEMO_NAMES), help="names used (%(default)s)"
    )
    p.add_argument(
        "--delay",
        type=_delay_ms,
        default=0.0,
        metavar="MS",
        help="the server's delay per answer in ms (%(default)s)",
    )
    p.set_defaults(handler=cmd_bench)

    p = sub.add_parser(
        "doctor",
        help="check activation, configuration and what bypasses the cache",
        description="Report whether start-up activation is installed and would fire, the "
        "configuration from the environment (with any bad values), what is patched in this "
        "interpreter, installed clients that bypass socket.getaddrinfo, and the nameservers.",
    )
    p.set_defaults(handler=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``dnscache`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, bad usage: argparse has said why
        return exc.code if isinstance(exc.code, int) else 2
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (UsageError, CommandError) as exc:
        command = " ".join(
            part for part in (PROG, args.command_name, getattr(args, "cache_command", None)) if part
        )
        _say(f"{command}: error: {exc}")
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        _say(f"{PROG}: interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (`dnscache lookup ... | head`): not an error of ours.
        # Point stdout at devnull so the interpreter's final flush does not complain.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
