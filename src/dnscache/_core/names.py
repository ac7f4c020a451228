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
and glibc's ``LOCALDOMAIN`` variable (read and watched by ``_sources.sysfiles``);
everything here is pure: text in, facts and keys out.
"""

from __future__ import annotations

from .values import Value


class SystemFacts(Value):
    """What the system resolver's configuration says, as far as keys are concerned."""

    __slots__ = ("attempts", "has_search", "hosts_names", "nameservers", "plain_nss", "timeout")

    def __init__(
        self,
        hosts_names: frozenset[bytes],
        has_search: bool,
        plain_nss: bool,
        nameservers: tuple[str, ...],
        # resolv.conf's "options timeout:N attempts:N" (glibc's defaults: 5 s, 2 tries)
        timeout: float = 5.0,
        attempts: int = 2,
    ) -> None:
        self.hosts_names = hosts_names
        self.has_search = has_search
        self.plain_nss = plain_nss
        self.nameservers = nameservers
        self.timeout = timeout
        self.attempts = attempts

    @property
    def dot_is_noise(self) -> bool:
        return not self.has_search and self.plain_nss


def _lines(text: str) -> list[list[str]]:
    out = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            out.append(words)
    return out


def parse_hosts_names(data: bytes | str) -> frozenset[bytes]:
    """Every name that /etc/hosts gives an address to, as the exact bytes libc compares.

    glibc matches hosts-file names byte for byte, folding ASCII case only, so
    the names are kept as bytes and lower-cased with ``bytes.lower`` (ASCII only):
    two different non-ASCII names never become one ("?" did in 0.1).
    """
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")
    names: set[bytes] = set()
    for line in raw.splitlines():
        words = line.split(b"#", 1)[0].split()
        for name in words[1:]:
            names.add(name.lower().rstrip(b"."))
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


def parse_resolv_options(text: str, environ_options: str = "") -> tuple[float, int]:
    """(timeout, attempts) from resolv.conf's ``options`` lines, then ``RES_OPTIONS``.

    glibc clamps both (RES_MAXRETRANS 30 s, RES_MAXRETRY 5) and reads the
    ``RES_OPTIONS`` variable after the file, so it wins.
    """
    timeout, attempts = 5.0, 2
    words = [w for line in _lines(text) if line[0] == "options" for w in line[1:]]
    for word in [*words, *environ_options.split()]:
        name, _, value = word.partition(":")
        if not value.isdigit():
            continue
        if name == "timeout":
            timeout = float(min(max(int(value), 1), 30))
        elif name == "attempts":
            attempts = min(max(int(value), 1), 5)
    return timeout, attempts


def lookup_bound(facts: SystemFacts) -> float:
    """The longest glibc should take over one name: every try of every nameserver timing out.

    glibc asks A and AAAA in parallel, each server in turn, ``attempts`` rounds.
    """
    return facts.timeout * facts.attempts * max(1, min(len(facts.nameservers), 3))


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


def encode_host(host: str | bytes) -> bytes:
    """The bytes CPython's getaddrinfo hands to libc for ``host`` (may raise UnicodeError).

    ``str.encode(host, ...)``, not ``host.encode``: CPython's socket module
    encodes with the codec itself, whatever a ``str`` subclass defines.
    """
    if isinstance(host, str):
        # The idna codec's own ASCII fast path, without the codec machinery (about
        # 7,000 instructions): the same bytes whenever the codec would take it,
        # i.e. every label but a final empty one has 1 to 63 characters.
        # Only for a plain str: a subclass may redefine len, isascii or startswith.
        if (
            host.__class__ is str
            and len(host) < 64
            and host.isascii()
            and ".." not in host
            and not host.startswith(".")
        ):
            return str.encode(host, "ascii")
        return str.encode(host, "idna")
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
