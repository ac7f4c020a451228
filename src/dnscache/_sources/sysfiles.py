"""Host names as cache keys, and the system files that decide when two names are one.

Never serve one host's answer for another: two spellings share a cache entry
only when the system resolver is certain to treat them identically.

* Case: DNS (RFC 4343) and glibc's hosts-file lookup both compare ASCII case
  insensitively, so ``Example.COM`` and ``example.com`` are one entry.
* ``str`` and ``bytes``: CPython encodes a ``str`` host with the ``idna`` codec
  and passes bytes through as they are, so we do exactly that and key on bytes.
* The trailing dot is the subtle one. ``example.com.`` is an absolute name: the
  resolver never appends a search domain to it, and glibc's hosts-file lookup
  does not match it against ``example.com`` (on this project's CI machine
  ``getaddrinfo("localhost.")`` fails while ``"localhost"`` resolves). So the dot
  is dropped from the key only when (a) no search domain is in effect, (b) the
  name is not in the hosts file and (c) nsswitch consults nothing but ``files``
  and ``dns``. Otherwise ``x.`` and ``x`` are separate entries, which costs one
  extra lookup and is always correct.

The facts come from ``/etc/hosts``, ``/etc/resolv.conf``, ``/etc/nsswitch.conf``
and glibc's ``LOCALDOMAIN`` variable, re-read when a file changes; the check is
done at most once a second and only off the hit path. A change also tells the
resolver to drop its entries, as nscd does.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

HOSTS = "/etc/hosts"
RESOLV_CONF = "/etc/resolv.conf"
NSSWITCH = "/etc/nsswitch.conf"
CHECK_INTERVAL = 1.0  # seconds between stat() calls on the files above


@dataclass(frozen=True)
class SystemFacts:
    """What the system resolver's configuration says, as far as keys are concerned."""

    hosts_names: frozenset[bytes]
    has_search: bool
    plain_nss: bool
    nameservers: tuple[str, ...]

    @property
    def dot_is_noise(self) -> bool:
        return not self.has_search and self.plain_nss


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _lines(text: str) -> list[list[str]]:
    out = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            out.append(words)
    return out


def parse_hosts_names(text: str) -> frozenset[bytes]:
    """Every name (lower-cased) that /etc/hosts gives an address to."""
    names: set[bytes] = set()
    for words in _lines(text):
        for name in words[1:]:
            names.add(name.lower().encode("ascii", "replace").rstrip(b"."))
    return frozenset(names)


def parse_resolv_conf(text: str) -> tuple[bool, tuple[str, ...]]:
    """(whether a search list is configured, nameservers) from resolv.conf's text."""
    has_search = False
    nameservers: list[str] = []
    for words in _lines(text):
        if words[0] in ("search", "domain") and len(words) > 1:
            has_search = True
        elif words[0] == "nameserver" and len(words) > 1:
            nameservers.append(words[1])
    return has_search, tuple(nameservers)


def parse_nsswitch_plain(text: str) -> bool:
    """True when the hosts database is served by files and dns only.

    Conservative: every ``hosts`` line counts (however it is spaced), and any
    other source (mdns, myhostname, resolve, ...) makes the answer False.
    """
    plain = True
    for line in text.splitlines():
        key, colon, rest = line.split("#", 1)[0].partition(":")
        if colon and key.strip() == "hosts":
            sources = {w for w in rest.split() if not w.startswith("[")}
            plain = plain and sources <= {"files", "dns"}
    return plain  # no entry: glibc's default "dns [!UNAVAIL=return] files"


def load_facts(
    hosts: str = HOSTS, resolv_conf: str = RESOLV_CONF, nsswitch: str = NSSWITCH
) -> SystemFacts:
    has_search, nameservers = parse_resolv_conf(_read(resolv_conf))
    # glibc takes the default domain from LOCALDOMAIN, else from a dotted hostname.
    if os.environ.get("LOCALDOMAIN", "").strip() or "." in socket.gethostname():
        has_search = True
    return SystemFacts(
        hosts_names=parse_hosts_names(_read(hosts)),
        has_search=has_search,
        plain_nss=parse_nsswitch_plain(_read(nsswitch)),
        nameservers=nameservers,
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
            stamp = _stamp(self._paths)
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            self.facts = load_facts(*self._paths)
            return True


def encode_host(host: str | bytes) -> bytes:
    """The bytes CPython's getaddrinfo hands to libc for ``host`` (may raise UnicodeError)."""
    if isinstance(host, str):
        return host.encode("idna")
    return bytes(host)


def bare(key: bytes) -> bytes:
    """A host key reduced to what overrides, health and persistence are kept under."""
    return key.lower().rstrip(b".")


def host_key(encoded: bytes, facts: SystemFacts, *, keep_case: bool = False) -> bytes:
    """The cache key for an encoded host name (see the module docstring).

    ``keep_case`` is for ``AI_CANONNAME``: without a CNAME, the canonical name a
    DNS server returns is the question as it was spelled (``Example.COM``), so
    different spellings may not share that entry.
    """
    key = encoded if keep_case else encoded.lower()
    if key.endswith(b".") and len(key) > 1 and facts.dot_is_noise:
        bare = key[:-1]
        if not bare.endswith(b".") and bare.lower() not in facts.hosts_names:
            return bare
    return key
