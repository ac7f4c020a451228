"""The system resolver's configuration files: read, parsed (``_core.names``) and watched.

The facts are re-read when a file changes; the check is done at most once a
second and only off the hit path. A change also tells the resolver to drop its
entries, as nscd does.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Sequence

from .._core.names import (
    SystemFacts,
    parse_hosts_names,
    parse_nsswitch_plain,
    parse_resolv_conf,
    parse_resolv_options,
)

HOSTS = "/etc/hosts"
RESOLV_CONF = "/etc/resolv.conf"
NSSWITCH = "/etc/nsswitch.conf"
CHECK_INTERVAL = 1.0  # seconds between stat() calls on the files above


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def load_facts(
    hosts: str = HOSTS, resolv_conf: str = RESOLV_CONF, nsswitch: str = NSSWITCH
) -> SystemFacts:
    resolv_text = _read(resolv_conf)
    has_search, nameservers = parse_resolv_conf(resolv_text)
    timeout, attempts = parse_resolv_options(resolv_text, os.environ.get("RES_OPTIONS", ""))
    # glibc takes the default domain from LOCALDOMAIN, else from a dotted hostname.
    if os.environ.get("LOCALDOMAIN", "").strip() or "." in socket.gethostname():
        has_search = True
    return SystemFacts(
        hosts_names=parse_hosts_names(_read_bytes(hosts)),
        has_search=has_search,
        plain_nss=parse_nsswitch_plain(_read(nsswitch)),
        nameservers=nameservers,
        timeout=timeout,
        attempts=attempts,
    )


def _stamp(paths: Sequence[str]) -> tuple[tuple[int, int, int] | None, ...]:
    out: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
        else:
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


class SystemFiles:
    """The resolver's configuration files, watched cheaply.

    ``check(now)`` stats the files at most once per CHECK_INTERVAL and returns
    True when one changed since the previous check; ``facts`` is then reloaded.
    Thread-safe.
    """

    def __init__(
        self,
        paths: Sequence[str] = (HOSTS, RESOLV_CONF, NSSWITCH),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._paths = tuple(paths)
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = _stamp(self._paths)
        self._checked = clock()
        self.next_check = self._checked + CHECK_INTERVAL  # read without the lock
        self.facts = load_facts(*self._paths)

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()

    def check(self, now: float | None = None) -> bool:
        now = self._clock() if now is None else now
        if now - self._checked < CHECK_INTERVAL:
            return False
        with self._lock:
            if now - self._checked < CHECK_INTERVAL:
                return False
            self._checked = now
            self.next_check = now + CHECK_INTERVAL
            stamp = _stamp(self._paths)
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            self.facts = load_facts(*self._paths)
            return True
