"""Each shortcut of the lean miss and hit paths, against what it replaces.

The whole-resolver comparison with the original is ``test_parity.py``; here each
piece that spares a libc call, a codec call or an ``Enum`` call is compared with
the thing it stands for, over far more inputs than a resolver run can afford:

* ``originals.stdlib_getaddrinfo`` against the stdlib's ``socket.getaddrinfo``;
* ``names.encode_host`` against ``str.encode(host, "idna")``;
* ``addrinfo.maybe_literal``: whatever it calls a name, libc does not take for a
  literal;
* templates (``addrinfo.build``) against one numeric libc call per address (the
  previous way, itself checked against names by the parity suite), and the
  addresses a template must not serve (text libc would rewrite, scope ids);
* packed addresses against the pairs they came from;
* the slow path's key against the hit path's, and the table behind the latter.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import socket
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import dnscache
from dnscache._cache.store import Store
from dnscache._core import addrinfo as ai
from dnscache._core.names import encode_host
from dnscache._engine.calls import raw_key
from dnscache._engine.hitpath import INTS_LIMIT, make_hit_path
from dnscache._engine.stats import Counters
from dnscache._sources import originals
from test_parity import FLAG_BITS, PORTS, PROTOS, TYPES, outcome

ORIG = socket.getaddrinfo  # the stdlib's own (conftest keeps socket unpatched)
AF4, AF6 = int(socket.AF_INET), int(socket.AF_INET6)
SHORTCUT = settings(max_examples=400, deadline=None, database=None, derandomize=True)


def attempt(func: Callable[[], Any]) -> tuple[Any, ...]:
    """What ``func()`` returned, or the type and args of what it raised."""
    try:
        return ("returned", func())
    except Exception as exc:
        return ("raised", type(exc), exc.args)


flag_sets = st.sets(st.sampled_from(FLAG_BITS)).map(
    lambda bits: functools.reduce(int.__or__, bits, 0)
)


# --- the stdlib's getaddrinfo without its Enum calls ---


@SHORTCUT
@given(
    host=st.sampled_from(["localhost", "127.0.0.1", "::1", "127.1", "", "a..b", None, 1.5]),
    port=st.sampled_from(PORTS),
    family=st.sampled_from([0, AF4, AF6, int(socket.AF_UNIX), 12345, socket.AF_INET, 2.0]),
    type=st.sampled_from([*TYPES, socket.SOCK_DGRAM, "1"]),
    proto=st.sampled_from(PROTOS),
    flags=st.one_of(flag_sets, st.just(socket.AI_CANONNAME | socket.AI_ADDRCONFIG)),
)
def test_stdlib_getaddrinfo_is_the_stdlibs(
    host: Any, port: Any, family: Any, type: Any, proto: Any, flags: Any
) -> None:
    args = (host, port, family, type, proto, flags)
    got = outcome(originals.stdlib_getaddrinfo, args)
    assert got == outcome(ORIG, args)
    if got[0] == "returned":  # the very members, not equal ints
        for mine, theirs in zip(got[1], ORIG(*args), strict=True):
            assert mine[0] is theirs[0] and mine[1] is theirs[1]


def test_only_the_stdlibs_own_function_is_replaced() -> None:
    assert originals.is_stdlib(ORIG)
    assert originals.lean(ORIG) is originals.stdlib_getaddrinfo

    @functools.wraps(ORIG)
    def wrapped(*args: Any) -> Any:
        return ORIG(*args)

    class Proxy:  # as wrapt's FunctionWrapper or a tracer's: forwards every attribute
        def __init__(self, wrapped: Any) -> None:
            self.__wrapped = wrapped

        def __getattr__(self, name: str) -> Any:
            return getattr(self.__wrapped, name)

        def __call__(self, *args: Any) -> Any:
            return self.__wrapped(*args)

    proxy = Proxy(ORIG)
    assert proxy.__globals__ is vars(socket) and proxy.__code__ is ORIG.__code__
    for other in (wrapped, proxy, lambda *a: ORIG(*a), originals.stdlib_getaddrinfo):
        assert originals.lean(other) is other
    assert not originals.is_stdlib(proxy)  # a proxy forwards __globals__ but is no function


# --- CPython's idna encoding of a str host ---

labels = st.text(alphabet="abcxyz019-_.", min_size=0, max_size=70)


@SHORTCUT
@given(
    host=st.one_of(
        labels, st.text(max_size=20), st.from_regex(r"[a-z]{1,70}(\.[a-z]{0,70}){0,3}\.?")
    )
)
@example(host="a" * 63 + ".test")
@example(host="a" * 64 + ".test")
@example(host="x." * 31 + "y" * 63)
@example(host=".")
@example(host="")
@example(host="a.")
@example(host=".a")
@example(host="ü.test")
def test_encode_host_is_the_idna_codec(host: str) -> None:
    assert attempt(lambda: encode_host(host)) == attempt(lambda: host.encode("idna"))


def test_encode_host_of_bytes_and_str_subclasses() -> None:
    class Host(str):
        # CPython's socket module encodes a str with the idna codec, which calls
        # ``input.encode("ascii")``: a subclass's own encode is what libc gets.
        def encode(self, *args: Any) -> bytes:
            return b"127.0.0.7"

    class Liar(str):  # the fast path must not believe a subclass's own methods
        def isascii(self) -> bool:
            return True

        def __len__(self) -> int:
            return 1

    numeric = ORIG(Host("localhost"), 80, AF4, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    assert numeric[0][4] == ("127.0.0.7", 80)
    assert encode_host(Host("localhost")) == b"127.0.0.7"
    assert encode_host(b"Mixed.Case") == b"Mixed.Case"
    for host in ("ü.test", "a" * 70 + ".test"):
        liar = Liar(host)
        assert attempt(functools.partial(encode_host, liar)) == attempt(
            functools.partial(host.encode, "idna")
        )


# --- hosts that cannot be literals ---

literal_bytes = st.text(alphabet="0123456789abcdefxX.:%-_ \tzA", max_size=24).map(str.encode)


def numeric(host: bytes, family: int = 0) -> bool:
    try:
        ORIG(host, None, family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return False
    return True


@SHORTCUT
@given(host=literal_bytes, family=st.sampled_from([0, AF4, AF6]))
@example(host=b"127.0.0.1", family=0)
@example(host=b"0x7f.1", family=0)
@example(host=b"fe80::1%lo", family=AF6)
@example(host=b"::ffff:127.0.0.1", family=0)
@example(host=b" 127.0.0.1", family=0)
@example(host=b"a127.0.0.1", family=0)
def test_what_maybe_literal_rules_out_libc_never_takes_for_a_literal(
    host: bytes, family: int
) -> None:
    if not ai.maybe_literal(host, 0):
        assert not numeric(host, family), host


def test_ai_idn_always_asks_libc() -> None:
    assert ai.maybe_literal(b"example.test", ai.AI_IDN)


# --- templates against one numeric libc call per address ---


def _v4(i: int) -> ai.Address:
    return (AF4, (f"127.3.{i // 200}.{i % 200 + 1}", 0))


def _v6(i: int, scope: int = 0) -> ai.Address:
    return (AF6, (str(ipaddress.IPv6Address(0xFD00 << 112 | i)), 0, 0, scope))


addresses = st.lists(
    st.one_of(
        st.integers(0, 5000).map(_v4),
        st.integers(0, 5000).map(_v6),
        st.integers(1, 9).map(lambda i: (AF6, (f"::ffff:127.0.0.{i}", 0, 0, 0))),
    ),
    min_size=1,
    max_size=5,
)


def synthesized(args: tuple[Any, ...]) -> Any:
    return outcome(lambda: ai.synthesize(ORIG, *args), ())


@settings(SHORTCUT, max_examples=300)
@given(
    addrs=addresses,
    port=st.sampled_from([80, 0, 65535, "http", "domain", "80", None, b"ssh"]),
    type=st.sampled_from([0, socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW]),
    proto=st.sampled_from([0, 6, 17]),
    flags=st.sets(
        st.sampled_from([socket.AI_PASSIVE, socket.AI_NUMERICSERV, socket.AI_CANONNAME])
    ).map(lambda bits: functools.reduce(int.__or__, bits, 0)),
    canon=st.sampled_from(["", "name.test", "Name.TEST"]),
)
def test_templates_give_what_libc_gives_per_address(
    addrs: list[ai.Address], port: Any, type: int, proto: int, flags: int, canon: str
) -> None:
    expected = synthesized((addrs, canon, port, type, proto, flags))
    templates: dict[int, ai.Template] = {}
    for family in (AF4, AF6):
        try:
            template = ai.learn(ORIG, port, family, type, proto, flags)
        except OSError:
            continue
        if template is not None:
            templates[family] = template
    built = ai.build(ai.pack(addrs), templates, canon, bool(flags & ai.CANONNAME))
    if expected[0] == "raised":
        return  # the argument probe sends such calls to the original
    assert built is not None
    assert outcome(lambda: list(built), ()) == expected


@settings(SHORTCUT, max_examples=200)
@given(
    port=st.sampled_from([80, "http", None, "domain"]),
    family=st.sampled_from([0, AF4, AF6]),
    type=st.sampled_from([0, socket.SOCK_STREAM, socket.SOCK_DGRAM]),
    flags=flag_sets,
)
def test_the_probe_teaches_the_same_template_as_a_numeric_call(
    port: Any, family: int, type: int, flags: int
) -> None:
    try:
        probed = ai.template_of(ai.probe_args(ORIG, port, family, type, 0, flags))
    except OSError:
        return
    target = AF6 if family == AF6 else AF4
    assert probed == ai.learn(ORIG, port, target, type, 0, flags)


# --- what a template must not serve: libc would not give it back as it is ---


@pytest.mark.parametrize(
    "address",
    [
        (AF6, ("::ffff:102:304", 0, 0, 0)),  # Python's text for ::ffff:1.2.3.4 (an override)
        (AF6, ("::0:1", 0, 0, 0)),  # not what inet_ntop writes
        (AF6, ("FD00::1", 0, 0, 0)),  # upper case
        (AF6, ("fe80::1", 0, 0, 1)),  # a scope id (1: lo)
        (AF6, ("::1", 0, 5, 0)),  # a flow label
        (AF4, ("127.1", 0)),  # inet_aton's shorthand
        (AF4, ("::1", 0)),  # no such pair comes from libc
        (AF6, ("127.0.0.1", 0, 0, 0)),
    ],
)
def test_what_libc_would_rewrite_is_asked_of_libc(address: ai.Address) -> None:
    templates = {af: ai.learn(ORIG, 80, af, socket.SOCK_STREAM, 0, 0) for af in (AF4, AF6)}
    assert all(templates.values())
    plain: list[ai.Address] = [(AF4, ("127.0.0.9", 0)), (AF6, ("::1", 0, 0, 0))]
    assert ai.pack([address]) == (address,)  # kept as the pair it was
    assert ai.build(ai.pack([*plain, address]), templates, "", False) is None
    assert ai.build(ai.pack(plain), templates, "", False) == ai.synthesize(
        ORIG, plain, "", 80, socket.SOCK_STREAM, 0, 0
    )


def test_an_override_libc_would_rewrite_is_served_as_libc_writes_it() -> None:
    # Config.hosts keeps Python's text of an address; the tuples are libc's.
    with dnscache.Resolver(hosts={"mapped.test": ["::ffff:1.2.3.4"]}) as r:
        for _ in range(2):
            got = r.getaddrinfo("mapped.test", 80, AF6, socket.SOCK_STREAM)
            assert got == ORIG("::ffff:1.2.3.4", 80, AF6, socket.SOCK_STREAM)


# --- packed addresses ---

pairs = st.lists(
    st.one_of(
        st.integers(0, 9).map(_v4),
        st.integers(0, 9).map(_v6),
        st.tuples(st.just(AF4), st.tuples(st.just("127.0.0.1"), st.integers(0, 65535))),
        st.tuples(
            st.just(AF6),
            st.tuples(st.just("::1"), st.integers(0, 9), st.integers(0, 9), st.integers(0, 9)),
        ),
        st.just((AF4, ("::1", 0))),  # no such pair comes from libc: kept as it is
        st.just((AF6, ("127.0.0.1", 0, 0, 0))),
        st.just((AF6, ("::ffff:102:304", 0, 0, 0))),  # Python's text, not libc's
        st.just((AF4, ("127.0.0.1", 0, 0))),
    ),
    max_size=6,
).map(tuple)


@SHORTCUT
@given(addrs=pairs)
def test_packed_addresses_give_back_the_pairs(addrs: tuple[ai.Address, ...]) -> None:
    packed = ai.pack(addrs)
    assert ai.unpack(packed) == addrs
    for item, (family, sockaddr) in zip(packed, addrs, strict=True):
        if isinstance(item, str):  # only what a template can serve is packed
            assert item is sockaddr[0]
            assert ORIG(item, 0, family, 0, 0, socket.AI_NUMERICHOST)[0][4] == sockaddr


# --- the keys of the hit path and of the slow path ---


class Small(enum.IntEnum):
    TWO = 2


numbers = st.one_of(
    st.integers(-3000, 3000),
    st.sampled_from([True, False, socket.AF_INET, socket.SOCK_STREAM, socket.AI_CANONNAME]),
    st.sampled_from([Small.TWO, 2**40, -(2**40)]),
    st.sampled_from([2.0, 0.0, "2", None, Decimal(2), Fraction(2), complex(2)]),
)


def hit_key(args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The key the hit path builds for ``args`` (None when it could not make one)."""
    seen: list[Any] = []
    store = Store(10, 10, lambda: 0.0)
    getaddrinfo = make_hit_path(store, lambda: 0.0, Counters(), lambda *a: seen.append(a[-1]))
    getaddrinfo(*args)
    return seen[0]  # type: ignore[no-any-return]


@SHORTCUT
@given(
    host=st.sampled_from(["x.test", b"x.test", bytearray(b"x"), None]),
    port=st.sampled_from([443, 443.0, "https", None, True]),
    family=numbers,
    type=numbers,
    proto=numbers,
    flags=numbers,
)
def test_the_slow_path_makes_the_hit_paths_key(
    host: Any, port: Any, family: Any, type: Any, proto: Any, flags: Any
) -> None:
    args = (host, port, family, type, proto, flags)
    fast, slow = hit_key(args), raw_key(*args)
    ints = all(isinstance(x, int) for x in args[2:])
    if fast is not None:
        assert ints  # nothing that merely compares equal to an int makes a key
        assert slow == fast and hash(slow) == hash(fast)
    elif ints and isinstance(host, str | bytes):
        assert not -INTS_LIMIT <= sum(args[2:]) < INTS_LIMIT  # only a sum past the table
    if slow is not None:
        assert all(x.__class__ is int for x in slow[4:])
        assert slow[4:] == tuple(int(x) for x in args[2:])


def test_arguments_past_the_table_are_still_cached() -> None:
    # A flag bit the hit path's table has no room for (here one this original
    # ignores): the hit path cannot key the call, the slow path does, and serves it.
    big = 0x10000

    def original(host: Any, port: Any, *args: Any) -> Any:
        *rest, flags = args
        return ORIG(host, port, *rest, flags & ~big)

    with dnscache.Resolver(_original=original) as r:
        for _ in range(3):
            assert r.getaddrinfo("localhost", 80, 0, 0, 0, big) == ORIG("localhost", 80)
        stats = r.stats()
        assert (stats.misses, stats.hits) == (1, 2)


def test_a_float_never_hits_the_view_of_its_int() -> None:
    with dnscache.Resolver() as r:
        r.getaddrinfo("localhost", 443, 2)
        assert outcome(r.getaddrinfo, ("localhost", 443, 2.0)) == outcome(
            ORIG, ("localhost", 443, 2.0)
        )


def test_a_service_name_is_looked_up_again_for_each_new_view() -> None:
    # Only numeric ports keep their templates: a service name's port is whatever
    # /etc/services says at the time of the call, which dnscache does not watch.
    services = {"dnscache-svc": 1000}

    def original(host: Any, port: Any, *args: Any) -> Any:
        return ORIG(host, services.get(port, port), *args)

    hosts = {"a.test": ["127.0.0.1"], "b.test": ["127.0.0.2"]}
    with dnscache.Resolver(_original=original, hosts=hosts) as r:
        for host, port in (("a.test", 1000), ("b.test", 2000)):
            services["dnscache-svc"] = port
            got = r.getaddrinfo(host, "dnscache-svc", 0, socket.SOCK_STREAM)
            assert got == ORIG(hosts[host][0], port, 0, socket.SOCK_STREAM)
        # A numeric port's template is kept and serves every host.
        assert r.getaddrinfo("a.test", 443) == ORIG("127.0.0.1", 443)
        assert r.getaddrinfo("b.test", 443) == ORIG("127.0.0.2", 443)


@pytest.mark.parametrize(
    ("port", "numeric"),
    [
        (None, True),
        (80, True),
        (True, True),
        ("80", True),
        (b"443", True),
        ("http", False),
        (" 80", False),
        ("+80", False),
        ("٨٠", False),
        (b"http", False),
        (80.0, False),
    ],
)
def test_numeric_port(port: Any, numeric: bool) -> None:
    assert ai.numeric_port(port) is numeric
