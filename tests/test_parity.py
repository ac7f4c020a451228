"""Parity: the cached getaddrinfo against the original, argument for argument.

Every example is called on the cache twice (a miss, then a hit) and each answer must
equal the original's: the same tuples in the same order, or the same exception type
and args.

On the machine itself only calls that never reach DNS are used (names from the hosts
file, literals, invalid forms and arguments the original rejects), so the result does
not depend on a network. Names that do reach DNS are compared inside a private network
namespace whose only DNS server is dnsmasq (see ``netns.py``).
"""

from __future__ import annotations

import functools
import json
import operator
import socket
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import dnscache
import netns
from dnscache import Resolver

ORIG = dnscache.get_original("getaddrinfo")
AF4, AF6 = int(socket.AF_INET), int(socket.AF_INET6)

# --- what is compared ---

Outcome = tuple[Any, ...]


def outcome(func: Callable[..., Any], args: Sequence[Any]) -> Outcome:
    """A call's result with the classes of its fields, or its exception's type and args."""
    try:
        result = func(*args)
    except Exception as exc:
        return ("raised", type(exc), exc.args)
    return ("returned", result, [tuple(type(x) for x in item[:3]) for item in result])


def check(func: Callable[..., Any], args: Sequence[Any]) -> None:
    """Miss then hit: each equals a fresh call of the original."""
    for attempt in ("miss", "hit"):
        expected = outcome(ORIG, args)
        got = outcome(func, args)
        assert got == expected, f"{attempt} {args!r}:\n  got      {got!r}\n  original {expected!r}"


# --- the machine's own resolver: no DNS ---


def _localhost_has_ipv6() -> bool:
    try:
        text = Path("/etc/hosts").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) > 1 and ":" in words[0] and "localhost" in (w.lower() for w in words[1:]):
            return True
    return False


# Without an IPv6 line for localhost in /etc/hosts, glibc asks DNS for its AAAA.
LOCALHOST_V6 = _localhost_has_ipv6()

NAMES: list[Any] = ["localhost", "LOCALHOST", "LocalHost", "lOcAlHoSt", b"localhost", b"LocalHost"]
LITERALS: list[Any] = [
    "127.0.0.1",
    "127.1",
    "0x7f.0.0.1",
    "::1",
    "::ffff:127.0.0.1",
    "0:0:0:0:0:0:0:1",
    b"127.0.0.1",
    b"::1",
    None,
]
INVALID: list[Any] = [
    "",
    b"",
    "a..b",
    b"a..b",
    "a" * 64 + ".test",
    b"a" * 64 + b".test",
    "x" * 300,
    "localhost\x00junk",
    b"localhost\x00junk",
    "\udcff.test",
    "ü" * 64 + ".test",
    b"b\xc3\xbccher.example",
    b"\xff\xfe",
    bytearray(b"localhost"),
    1.5,
]
PORTS: list[Any] = [
    0,
    80,
    65535,
    -1,
    70000,
    "80",
    "0",
    "http",
    "ssh",
    "domain",
    "nosuchservice",
    None,
    80.0,
    b"80",
    b"http",
]
FAMILIES = [0, AF4, AF6, int(socket.AF_UNIX), 12345]
TYPES = [0, socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW, 99]
PROTOS = [0, 6, 17, 132, 999]
FLAG_BITS = [
    socket.AI_PASSIVE,
    socket.AI_CANONNAME,
    socket.AI_NUMERICHOST,
    socket.AI_NUMERICSERV,
    socket.AI_ADDRCONFIG,
    socket.AI_V4MAPPED,
    socket.AI_ALL,
    0x40000,  # not a flag: the original says EAI_BADFLAGS
]

flags = st.sets(st.sampled_from(FLAG_BITS)).map(
    lambda bits: functools.reduce(operator.or_, bits, 0)
)
# Each group equally likely, so that calls which reach the cache are common.
hosts = st.one_of(st.sampled_from(NAMES), st.sampled_from(LITERALS), st.sampled_from(INVALID))
ports = st.one_of(st.sampled_from([80, "http", None, 0]), st.sampled_from(PORTS))
types = st.one_of(st.sampled_from([0, socket.SOCK_STREAM]), st.sampled_from(TYPES))
protos = st.one_of(st.just(0), st.sampled_from(PROTOS))


def _offline(args: tuple[Any, ...]) -> bool:
    host, family = args[0], args[2]
    return LOCALHOST_V6 or not (host in NAMES and family == AF6)


calls = st.tuples(hosts, ports, st.sampled_from(FAMILIES), types, protos, flags).filter(_offline)

PARITY = settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples on every run: a failure is never luck
    suppress_health_check=[HealthCheck.filter_too_much],
)

_CANON, _MAPPED = socket.AI_CANONNAME, socket.AI_V4MAPPED | socket.AI_ALL
# Calls every parity run includes, whatever hypothesis draws.
EXAMPLES: list[tuple[Any, ...]] = [
    ("localhost", 80, 0, 0, 0, 0),
    ("LocalHost", "http", AF4, socket.SOCK_STREAM, 0, _CANON),
    (b"LOCALHOST", None, 0, socket.SOCK_DGRAM, 0, socket.AI_ADDRCONFIG),
    ("localhost", 80, 0, 0, 0, 0x40000),
    ("localhost", 443, AF4, 0, 0, _CANON | 0x40000),
    ("localhost", 80.0, 0, 0, 0, 0),
    ("localhost", 70000, 0, socket.SOCK_RAW, 0, 0),
    ("127.1", "ssh", 0, 0, 6, 0),
    ("::ffff:127.0.0.1", 0, AF6, 0, 0, _MAPPED),
    ("a..b", 80, 0, 0, 0, 0),
    (b"localhost\x00junk", 80, 0, 0, 0, 0),
]


def with_examples(test: Any) -> Any:
    for args in EXAMPLES:
        test = example(args=args)(test)
    return test


@PARITY
@given(args=calls)
@with_examples
def test_fresh_resolver_matches_original(args: tuple[Any, ...]) -> None:
    with Resolver() as r:
        check(r.getaddrinfo, args)


def test_long_lived_resolver_matches_original() -> None:
    # One resolver for every example: entries and views made for one call are met by
    # the next ones, in hypothesis' order.
    with Resolver() as r:

        @PARITY
        @given(args=st.lists(calls, min_size=1, max_size=8))
        @example(args=EXAMPLES)
        def run(args: list[tuple[Any, ...]]) -> None:
            for one in args:
                check(r.getaddrinfo, one)

        run()


@settings(PARITY, max_examples=150)
@given(args=calls)
@with_examples
def test_patched_socket_getaddrinfo_matches_original(args: tuple[Any, ...]) -> None:
    with dnscache.patched():
        check(socket.getaddrinfo, args)


@settings(PARITY, max_examples=100)
@given(
    host=st.sampled_from(NAMES + LITERALS),
    port=st.sampled_from([80, "http", None, 0]),
    family=st.sampled_from([0, AF4]),
    type=st.sampled_from([0, socket.SOCK_STREAM]),
    flags=flags,
)
def test_keyword_calls_match_original(
    host: Any, port: Any, family: int, type: int, flags: int
) -> None:
    kwargs = {"host": host, "port": port, "family": family, "type": type, "flags": flags}
    with Resolver() as r:
        for _ in range(2):
            assert outcome(lambda: r.getaddrinfo(**kwargs), ()) == outcome(
                lambda: ORIG(**kwargs), ()
            )


# --- real DNS names, inside a network namespace with dnsmasq ---

# Loopback addresses only (the harness insists). alias-name.test has the same
# addresses as example-name.test under its own name (no CNAME).
NETNS_RECORDS = {
    "example-name.test": ["127.0.0.2", "127.0.0.3", "::1"],
    "alias-name.test": ["127.0.0.2", "127.0.0.3", "::1"],
    "single.test": ["127.0.0.2", "::1"],
    "v4only.test": ["127.0.0.4"],
    "v6only.test": ["::1"],
    "1host.test": ["127.0.0.5", "::1"],  # starts with a digit: libc says whether it is a literal
}
NETNS_HOSTS: list[Any] = [
    "example-name.test",
    "Example-Name.TEST.",
    "EXAMPLE-NAME.test",
    "alias-name.test",
    "single.test",
    "Single.Test.",
    b"single.test",
    "v4only.test",
    "localhost",
    "LOCALHOST",
    "localhost.",
    "nope.test",
    "nope.test.",
    "bücher.example",
    "loc\x00al",
    "v6only.test",
    "1host.test",
    "1.2.3.4.5",
]
NETNS_PORTS: list[Any] = [80, "http", None]
NETNS_FAMILIES = [0, AF4, AF6]
NETNS_TYPES = [0, int(socket.SOCK_STREAM)]
NETNS_FLAGS = [
    0,
    int(socket.AI_CANONNAME),
    int(socket.AI_ADDRCONFIG),
    int(socket.AI_V4MAPPED),
    int(socket.AI_V4MAPPED | socket.AI_ALL),
]


def comparable(result: Outcome) -> Outcome:
    """An outcome with the order of equally preferred addresses left out.

    dnsmasq rotates the records of a name on every answer, and glibc's RFC 6724 sort
    keeps that order among addresses of equal rank, so two calls of the original
    itself differ there. Everything else is kept: the family, type, protocol and
    canonical name at each position, the element classes, and the multiset of
    (family, type, protocol, address) tuples.
    """
    if result[0] != "returned":
        return result
    rows = result[1]
    shape = [(int(f), int(t), p, canon) for f, t, p, canon, _ in rows]
    tuples = sorted(repr((int(f), int(t), p, sa)) for f, t, p, _, sa in rows)
    return (
        "returned",
        shape,
        tuples,
        result[2] == [(socket.AddressFamily, socket.SocketKind, int)] * len(rows),
    )


# Every shape of call the tuples are built for from templates (the socket type, protocol,
# service and shaping flags glibc expands), on names of one, two and three addresses.
SHAPE_HOSTS = ["example-name.test", "v6only.test", "1host.test", "single.test"]
SHAPE_PORTS: list[Any] = [80, "http", "domain", "80", 0, None, b"ssh"]
SHAPE_TYPES = [0, int(socket.SOCK_STREAM), int(socket.SOCK_DGRAM), int(socket.SOCK_RAW)]
SHAPE_PROTOS = [0, 6, 17]
SHAPE_FLAGS = [
    0,
    int(socket.AI_PASSIVE),
    int(socket.AI_NUMERICSERV),
    int(socket.AI_CANONNAME | socket.AI_ADDRCONFIG),
    int(socket.AI_V4MAPPED | socket.AI_ALL),
]


def _compare(getaddrinfo: Callable[..., Any], args: tuple[Any, ...], out: list[str]) -> None:
    for attempt in ("miss", "hit"):
        expected = comparable(outcome(ORIG, args))
        got = comparable(outcome(getaddrinfo, args))
        if got != expected:
            out.append(f"{attempt} {args!r}: got {got!r}, original {expected!r}"[:600])


def netns_grid(getaddrinfo: Callable[..., Any]) -> list[str]:
    """Run the grids on ``getaddrinfo`` (inside the namespace); describe every mismatch."""
    mismatches: list[str] = []
    for host in NETNS_HOSTS:
        for port in NETNS_PORTS:
            for family in NETNS_FAMILIES:
                for type_ in NETNS_TYPES:
                    for fl in NETNS_FLAGS:
                        _compare(getaddrinfo, (host, port, family, type_, 0, fl), mismatches)
    for host in SHAPE_HOSTS:
        for port in SHAPE_PORTS:
            for family in NETNS_FAMILIES:
                for type_ in SHAPE_TYPES:
                    for proto in SHAPE_PROTOS:
                        for fl in SHAPE_FLAGS:
                            _compare(
                                getaddrinfo, (host, port, family, type_, proto, fl), mismatches
                            )
    return mismatches


NETNS_SCRIPT = textwrap.dedent(
    """\
    import json, socket

    import dnscache
    import netns
    import test_parity as t

    out = {}
    with netns.start_dnsmasq(t.NETNS_RECORDS) as dns:
        # Two spellings, one entry: the second is answered without a query.
        with dnscache.Resolver() as r:
            first = r.getaddrinfo("example-name.test", 80, 0, socket.SOCK_STREAM)
            after_first = dns.queries("example-name.test")
            second = r.getaddrinfo("Example-Name.TEST.", 80, 0, socket.SOCK_STREAM)
            out["share"] = {
                "same_answer": first == second,
                "addresses": sorted(i[4][0] for i in first),
                "queries_after_first": after_first,
                "queries_after_second": dns.queries("example-name.test"),
                "lookups": r.stats().lookups,
                "original": sorted(
                    i[4][0]
                    for i in t.ORIG("Example-Name.TEST.", 80, 0, socket.SOCK_STREAM)
                ),
            }
        with dnscache.Resolver() as r:
            out["grid"] = t.netns_grid(r.getaddrinfo)
            out["grid_lookups"] = r.stats().lookups
        with dnscache.patched():
            assert socket.getaddrinfo.__dnscache__
            out["patched"] = t.netns_grid(socket.getaddrinfo)
    print(json.dumps(out))
    """
)


def test_parity_with_real_dns_in_a_namespace() -> None:
    netns.require_e2e()
    result = netns.run_in_netns(NETNS_SCRIPT, timeout=120)
    share = result["share"]
    assert share["addresses"] == ["127.0.0.2", "127.0.0.3", "::1"], share
    assert share["original"] == share["addresses"], share
    assert share["queries_after_first"] >= 1, share
    assert share["queries_after_second"] == share["queries_after_first"], share
    assert share["lookups"] == 1 and share["same_answer"], share
    assert result["grid_lookups"] > 0
    grid = result["grid"]
    assert grid == [], f"{len(grid)} mismatches:\n" + "\n".join(grid[:20])
    patched = result["patched"]
    assert patched == [], f"{len(patched)} mismatches:\n" + "\n".join(patched[:20])


def test_comparable_ignores_only_the_rotation() -> None:
    a = (AF4, socket.SOCK_STREAM, 6, "", ("127.0.0.2", 80))
    b = (AF4, socket.SOCK_STREAM, 6, "", ("127.0.0.3", 80))
    c = (AF6, socket.SOCK_STREAM, 6, "", ("::1", 80, 0, 0))
    types = [(int, int, int)] * 3
    assert comparable(("returned", [c, a, b], types)) == comparable(("returned", [c, b, a], types))
    assert comparable(("returned", [c, a, b], types)) != comparable(("returned", [a, b, c], types))
    named = (AF6, socket.SOCK_STREAM, 6, "x.test", ("::1", 80, 0, 0))
    assert comparable(("returned", [named, a], types)) != comparable(("returned", [c, a], types))
    assert json.dumps(NETNS_RECORDS)  # the script gets them by import
