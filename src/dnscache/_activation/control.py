"""The control endpoint: look into and flush a running process's cache, from the same user only.

Operators reach for ``resolvectl statistics``/``flush-caches``, ``unbound-control
dump_cache`` or ``nscd -i hosts`` first; ``dnscache ps``, ``stats``, ``dump`` and
``flush`` are the same for a Python process. They talk to this endpoint, which a
process opens only when asked (``PYTHONDNSCACHE_CONTROL=1`` or ``control=True``,
with ``install()`` or start-up activation; never for ``patched()`` blocks).

Who may talk to it: the user, and nobody else. The socket lives in the user's
private runtime directory (:mod:`.rundir`: 0700, owner checked), is itself mode
0600 (bound under a temporary name, chmod-ed, then renamed into place, so its
final name never has looser permissions nor exists without a listener), and the
peer of every connection is checked with ``SO_PEERCRED``: another uid gets the
connection closed without a byte, as ssh-agent and systemd's user sockets do.

What it may do: report (``hello``, ``stats``, ``dump``) and forget (``flush``),
through the Resolver's public methods only (``stats()``, ``entries()``,
``invalidate()`` and, where the engine has it, ``address_health(host)``). A
request is one line of JSON of at most ``MAX_REQUEST`` bytes that must arrive
within ``REQUEST_TIMEOUT``; the reply is written within ``REPLY_TIMEOUT``. Bad
input gets an error reply or a closed connection, never an exception in the
listener, which serves one connection at a time on one daemon thread named
``dnscache-control``.

Lifecycle: the thread and the socket exist only while the option is on;
``close()`` stops the thread, closes the socket and removes its file. A forked
child closes the listening socket it inherited (the parent's: the child never
answers on it) and opens its own under its own pid. A process killed without
``close()`` leaves a dead socket file, which the next start or ``dnscache ps``
removes.

Why one module of about 420 lines: the listener, its request protocol and its
security checks (directory, socket mode, peer credentials) are one boundary, and
reading them together is how one convinces oneself nothing else gets through;
the private-directory rules shared with the client are in ``rundir``.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core.logger import log
from .rundir import peer_credentials, private_dir, runtime_dirs, socket_path, sweep

if TYPE_CHECKING:
    from .._engine.resolver import Resolver

ENV = "PYTHONDNSCACHE_CONTROL"
THREAD_NAME = "dnscache-control"
PROTOCOL = 1
MAX_REQUEST = 4096  # bytes: a request names a command and at most one host
REQUEST_TIMEOUT = 1.0  # seconds a client has to send its request, in total
REPLY_TIMEOUT = 2.0  # seconds to write a reply (sendall's total since Python 3.5)
JOIN_TIMEOUT = 1.0  # close() waits this long for the listener (it wakes at once)
BACKLOG = 8  # pending connections; beyond it clients wait in connect or fail
DEFAULT_DUMP = 1_000  # entries in a dump unless the client asks for more
MAX_DUMP = 10_000  # ... and never more: Config.maxsize's default, a few MB of JSON
MAX_ARGV = 32  # items of sys.argv reported by hello, each cut to MAX_ARG characters
MAX_ARG = 256


class ControlError(Exception):
    """A request the endpoint will not carry out; its text is the reply's error."""


# --- what the endpoint answers ---


def _process_uptime(fallback_start: float) -> float:
    """Seconds since this process started (/proc), else since the endpoint did."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = f.read().rpartition(")")[2].split()
        with open("/proc/uptime", encoding="ascii") as f:
            system_uptime = float(f.read().split()[0])
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime
        return max(0.0, system_uptime - started)
    except (OSError, ValueError, IndexError):
        return time.monotonic() - fallback_start


def _version() -> str:
    """The installed distribution's version (read here: the package's top imports us)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pydnscache")
    except PackageNotFoundError:
        return "unknown"


def _finite(value: float) -> float | None:
    return round(value, 3) if math.isfinite(value) else None


def _family(number: int) -> int:
    return {int(socket.AF_INET): 4, int(socket.AF_INET6): 6}.get(number, 0)


def _state(life: Any, now: float) -> str:
    """fresh, refresh-due, stale or expired (policy.Lifetime's stages, by its instants)."""
    if now < life.refresh_at:
        return "fresh"
    if now < life.expires:
        return "refresh-due"
    return "stale" if now < life.stale_until else "expired"


def _describe(entry: Any, now: float, health: Callable[[str], Any] | None) -> dict[str, Any]:
    """One cache entry as plain data, from the attributes ``Resolver.entries()`` documents."""
    life = entry.life
    addresses = [str(sockaddr[0]) for _family_, sockaddr in entry.addresses]
    item: dict[str, Any] = {
        "host": entry.name,
        "family": _family(entry.key[1]),
        "source": entry.source,
        "state": _state(life, now),
        "ttl": _finite(life.expires - now),
        "stale_for": _finite(life.stale_until - now),
        "age": _finite(now - life.born),
        "hits": entry.hits,
        "addresses": addresses,
        "canonname": entry.canonname,
        "error": list(entry.error) if entry.error is not None else None,
    }
    if health is not None:
        records = health(entry.name.lower().rstrip("."))
        item["health"] = {
            ip: {
                "last_success_ago": _finite(now - r.last_success)
                if r.last_success is not None
                else None,
                "last_failure_ago": _finite(now - r.last_failure)
                if r.last_failure is not None
                else None,
            }
            for ip, r in records.items()
        }
    return item


def _matches(entry: Any, host: str | None) -> bool:
    if host is None:
        return True
    return str(entry.name).lower().rstrip(".") == host.lower().rstrip(".")


def _host_argument(request: dict[str, Any]) -> str | None:
    host = request.get("host")
    if host is None:
        return None
    if not isinstance(host, str) or not host or len(host) > 255 or not host.isprintable():
        raise ControlError("host must be a host name")
    return host


def answer(resolver: Resolver, request: dict[str, Any], started: float) -> dict[str, Any]:
    """The reply to one request (pure but for the resolver's own methods)."""
    command = request.get("command")
    if command == "hello":
        return {
            "pid": os.getpid(),
            "argv": [str(arg)[:MAX_ARG] for arg in sys.argv[:MAX_ARGV]],
            "executable": sys.executable,
            "python": sys.version.split()[0],
            "version": _version(),
            "uptime": round(_process_uptime(started), 3),
            "entries": resolver.stats().entries,
        }
    if command == "stats":
        return {"pid": os.getpid(), "stats": dataclasses.asdict(resolver.stats())}
    if command == "dump":
        host = _host_argument(request)
        limit = request.get("limit", DEFAULT_DUMP)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ControlError("limit must be a positive whole number")
        limit = min(limit, MAX_DUMP)
        health = getattr(resolver, "address_health", None)
        now = time.monotonic()
        chosen = [e for e in resolver.entries() if _matches(e, host)]
        return {
            "pid": os.getpid(),
            "total": len(chosen),
            "health_available": health is not None,
            "entries": [_describe(e, now, health) for e in chosen[:limit]],
        }
    if command == "flush":
        host = _host_argument(request)
        before = sum(1 for e in resolver.entries() if _matches(e, host))
        resolver.invalidate(host)
        return {"pid": os.getpid(), "host": host, "flushed": before}
    raise ControlError(f"unknown command {command!r}")


# --- the listener ---


class Handle:
    """A running endpoint: the socket file, the listening socket and its thread."""

    def __init__(self, resolver: Resolver, directory: str) -> None:
        self.resolver = resolver
        self.pid = os.getpid()
        self.path = socket_path(directory, self.pid)
        self._uid = os.geteuid()
        self._started = time.monotonic()
        self._closed = threading.Event()
        import secrets  # here, not at the top: install() imports this module

        sweep(directory, keep=self.pid)
        temporary = os.path.join(directory, f".{self.pid}.{secrets.token_hex(4)}.tmp")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(temporary)
            try:
                os.chmod(temporary, 0o600)
                listener.listen(BACKLOG)
                os.replace(temporary, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
            self._inode = os.lstat(self.path).st_ino
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        state = "closed" if self._closed.is_set() else "open"
        return f"<dnscache control endpoint {self.path} {state}>"

    def close(self) -> None:
        """Stop the listener (joined within about a second), close the socket, remove its file."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT)
        self._remove_file()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def abandon_after_fork(self) -> None:
        """In a forked child: drop the parent's socket without touching its file or thread."""
        self._closed.set()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def _remove_file(self) -> None:
        with contextlib.suppress(OSError):
            if os.lstat(self.path).st_ino == self._inode and os.getpid() == self.pid:
                os.unlink(self.path)

    def _serve(self) -> None:
        import selectors

        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self._listener, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while not self._closed.is_set():
                    for key, _ in selector.select():
                        if key.fileobj is self._listener and not self._closed.is_set():
                            self._accept()
        except Exception:  # the socket was closed under us; nothing else reaches here
            log.debug("control endpoint stopped", exc_info=True)

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with conn:
            try:
                self._handle(conn)
            except Exception:  # bad input or a vanished client must never stop the listener
                log.debug("control request failed", exc_info=True)

    def _handle(self, conn: socket.socket) -> None:
        import json

        _pid, uid, _gid = peer_credentials(conn)
        if uid != self._uid:
            return  # another user: not one byte
        line = _read_line(conn, MAX_REQUEST, REQUEST_TIMEOUT)
        if line is None:
            reply: dict[str, Any] = {"ok": False, "error": "request too long, late or unended"}
        else:
            reply = self._reply(line)
        conn.settimeout(REPLY_TIMEOUT)
        conn.sendall(json.dumps(reply, separators=(",", ":")).encode() + b"\n")

    def _reply(self, line: bytes) -> dict[str, Any]:
        import json

        try:
            request = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return {"ok": False, "error": "not JSON"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request is a JSON object"}
        try:
            return {
                "ok": True,
                "protocol": PROTOCOL,
                **answer(self.resolver, request, self._started),
            }
        except ControlError as exc:
            return {"ok": False, "error": str(exc)}


def _read_line(conn: socket.socket, limit: int, timeout: float) -> bytes | None:
    """Bytes up to the first newline, or None if too long, too late or never ended."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or len(data) > limit:
            return None
        conn.settimeout(left)
        try:
            chunk = conn.recv(limit + 1 - len(data))
        except (TimeoutError, OSError):
            return None
        if not chunk:
            return None
        data += chunk
    line = data.partition(b"\n")[0]
    return line if len(line) <= limit else None


# --- what install() and uninstall() call ---

_lock = threading.Lock()
_current: Handle | None = None
_hooks_registered = False


def wanted(resolver: Resolver) -> bool:
    """Whether this resolver's process asked for an endpoint (the option or the variable)."""
    from .._core.config import env_flag

    return bool(getattr(resolver.config, "control", False)) or bool(env_flag(os.environ.get(ENV)))


def start(resolver: Resolver) -> Handle:
    """Open an endpoint for ``resolver``; raises OSError when no private directory is usable."""
    directory = private_dir(create=True)
    if directory is None:
        dirs = ", ".join(runtime_dirs())
        raise OSError(f"no private directory for the control socket (tried {dirs})")
    return Handle(resolver, directory)


def attach(resolver: Resolver) -> None:
    """install(): open the endpoint if asked. Never raises (one warning if it cannot open)."""
    global _current, _hooks_registered
    try:
        if not wanted(resolver):
            return
        with _lock:
            if _current is not None:
                return
            _current = start(resolver)
            if not _hooks_registered:
                _hooks_registered = True
                os.register_at_fork(after_in_child=_after_fork_in_child)
                atexit.register(_close_at_exit)
    except Exception as exc:
        log.warning("no control endpoint (%s, control=True) was opened: %s", ENV, exc)


def detach(resolver: Resolver) -> None:
    """uninstall(): close the endpoint of ``resolver``, if it has one. Never raises."""
    global _current
    with _lock:
        handle = _current if _current is not None and _current.resolver is resolver else None
        if handle is not None:
            _current = None
    if handle is not None:
        try:
            handle.close()
        except Exception:
            log.debug("closing the control endpoint failed", exc_info=True)


def current() -> Handle | None:
    """The endpoint open in this process, if any (for tests and ``doctor``)."""
    return _current


def _close_at_exit() -> None:
    handle = _current
    if handle is not None:
        with contextlib.suppress(Exception):
            handle.close()


def _after_fork_in_child() -> None:
    """The parent's endpoint is not ours: let go of it and open the child's own."""
    global _lock, _current
    _lock = threading.Lock()  # may have been held by a thread the child does not have
    handle, _current = _current, None
    if handle is None:
        return
    try:
        handle.abandon_after_fork()
        _current = start(handle.resolver)
    except Exception:  # a fork must never fail because of us
        log.debug("no control endpoint in the forked child", exc_info=True)
