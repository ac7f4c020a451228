"""Tests for the loopback DNS server used by the demo, the benchmarks and the test-suite.

Every test talks to a real server over real sockets with dnspython's client.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest

import netns
from dnscache._tools.dnsserver import DNSServer

TIMEOUT = 2.0


@pytest.fixture
def server() -> Iterator[DNSServer]:
    with DNSServer(default_ttl=60) as srv:
        yield srv


def udp(
    srv: DNSServer,
    name: str,
    rdtype: str = "A",
    *,
    timeout: float = TIMEOUT,
    payload: int | None = None,
) -> dns.message.Message:
    if payload is None:
        query = dns.message.make_query(name, rdtype)
    else:
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=payload)
    return dns.query.udp(query, srv.host, port=srv.port, timeout=timeout)


def tcp(srv: DNSServer, name: str, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return dns.query.tcp(query, srv.host, port=srv.port, timeout=TIMEOUT)


def answer_of(msg: dns.message.Message, name: str, rdtype: str) -> dns.rrset.RRset:
    return msg.find_rrset(
        msg.answer, dns.name.from_text(name), dns.rdataclass.IN, dns.rdatatype.from_text(rdtype)
    )


def addresses(msg: dns.message.Message, name: str, rdtype: str) -> set[str]:
    return {rd.to_text() for rd in answer_of(msg, name, rdtype)}


def resolver_for(srv: DNSServer) -> dns.resolver.Resolver:
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [srv.host]
    res.port = srv.port
    res.timeout = res.lifetime = TIMEOUT
    res.cache = None
    return res


def test_a_and_aaaa_answers_with_ttl(server: DNSServer) -> None:
    server.set("host.test", a=["192.0.2.1", "192.0.2.2"], aaaa=["2001:db8::1"], ttl=123)
    server.set("plain.test", a=["192.0.2.9"])

    msg = udp(server, "host.test", "A")
    assert msg.rcode() == dns.rcode.NOERROR
    assert msg.flags & dns.flags.AA
    rrset = answer_of(msg, "host.test", "A")
    assert rrset.ttl == 123
    assert addresses(msg, "host.test", "A") == {"192.0.2.1", "192.0.2.2"}

    msg = udp(server, "host.test", "AAAA")
    assert answer_of(msg, "host.test", "AAAA").ttl == 123
    assert addresses(msg, "host.test", "AAAA") == {"2001:db8::1"}

    msg = udp(server, "plain.test", "A")
    assert answer_of(msg, "plain.test", "A").ttl == 60  # the server's default_ttl


def test_header_echoes_query(server: DNSServer) -> None:
    server.set("host.test", a=["192.0.2.1"])
    for flags in (dns.flags.RD, 0):
        query = dns.message.make_query("host.test", "A")
        query.flags = flags
        query.id = 4321
        msg = dns.query.udp(query, server.host, port=server.port, timeout=TIMEOUT)
        assert msg.id == 4321
        assert msg.flags & dns.flags.QR
        assert msg.flags & dns.flags.AA
        assert msg.flags & dns.flags.RA
        assert (msg.flags & dns.flags.RD) == flags
        assert msg.question == query.question
        assert msg.edns < 0  # no EDNS in the query: none in the answer


def test_edns_is_echoed(server: DNSServer) -> None:
    server.set("host.test", a=["192.0.2.1"])
    msg = udp(server, "host.test", "A", payload=1232)
    assert msg.edns == 0
    assert msg.rcode() == dns.rcode.NOERROR


def test_nodata_has_soa(server: DNSServer) -> None:
    server.set("v4only.test", a=["192.0.2.1"], ttl=30)
    for rdtype in ("AAAA", "MX", "TXT"):
        msg = udp(server, "v4only.test", rdtype)
        assert msg.rcode() == dns.rcode.NOERROR
        assert msg.answer == []
        assert [rrset.rdtype for rrset in msg.authority] == [dns.rdatatype.SOA]
        assert msg.authority[0][0].minimum == 60
    with pytest.raises(dns.resolver.NoAnswer):
        resolver_for(server).resolve("v4only.test", "AAAA")


def test_nxdomain(server: DNSServer) -> None:
    msg = udp(server, "unknown.test")
    assert msg.rcode() == dns.rcode.NXDOMAIN
    assert msg.answer == []
    assert [rrset.rdtype for rrset in msg.authority] == [dns.rdatatype.SOA]

    server.set("gone.test", a=["192.0.2.1"])
    assert udp(server, "gone.test").rcode() == dns.rcode.NOERROR
    server.nxdomain("gone.test")
    msg = udp(server, "gone.test", "AAAA")
    assert msg.rcode() == dns.rcode.NXDOMAIN
    assert msg.flags & dns.flags.AA
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver_for(server).resolve("gone.test", "A")


def test_remove_forgets_name(server: DNSServer) -> None:
    server.set("host.test", a=["192.0.2.1"])
    assert udp(server, "host.test").rcode() == dns.rcode.NOERROR
    server.remove("HOST.test.")
    assert udp(server, "host.test").rcode() == dns.rcode.NXDOMAIN
    server.remove("never-there.test")  # no error


def test_servfail(server: DNSServer) -> None:
    server.servfail("broken.test")
    msg = udp(server, "broken.test")
    assert msg.rcode() == dns.rcode.SERVFAIL
    assert msg.answer == []
    with pytest.raises(dns.resolver.NoNameservers):
        resolver_for(server).resolve("broken.test", "A")


def test_cname_chain(server: DNSServer) -> None:
    server.set("www.test", cname="alias.test", ttl=300)
    server.set("alias.test.", cname="real.test")
    server.set("real.test", a=["192.0.2.7"], aaaa=["2001:db8::7"], ttl=20)

    msg = udp(server, "www.test", "A")
    assert msg.rcode() == dns.rcode.NOERROR
    first = answer_of(msg, "www.test", "CNAME")
    assert first.ttl == 300
    assert first[0].target == dns.name.from_text("alias.test")
    assert answer_of(msg, "alias.test", "CNAME")[0].target == dns.name.from_text("real.test")
    assert answer_of(msg, "real.test", "A").ttl == 20
    assert addresses(msg, "real.test", "A") == {"192.0.2.7"}

    answer = resolver_for(server).resolve("www.test", "AAAA")
    assert answer.canonical_name == dns.name.from_text("real.test")
    assert {rd.to_text() for rd in answer} == {"2001:db8::7"}

    # A CNAME query gets just the alias record.
    msg = udp(server, "www.test", "CNAME")
    assert [rrset.rdtype for rrset in msg.answer] == [dns.rdatatype.CNAME]

    # An alias to an unknown name: the CNAME plus NXDOMAIN.
    server.set("dangling.test", cname="nowhere.test")
    msg = udp(server, "dangling.test", "A")
    assert msg.rcode() == dns.rcode.NXDOMAIN
    assert answer_of(msg, "dangling.test", "CNAME")


def test_cname_loop_is_servfail(server: DNSServer) -> None:
    server.set("a.test", cname="b.test")
    server.set("b.test", cname="a.test")
    assert udp(server, "a.test").rcode() == dns.rcode.SERVFAIL


def test_names_are_case_insensitive_and_trailing_dot_optional(server: DNSServer) -> None:
    server.set("MiXeD.Example.", a=["192.0.2.3"])
    for name in ("mixed.example", "MIXED.EXAMPLE.", "Mixed.Example"):
        msg = udp(server, name)
        assert msg.rcode() == dns.rcode.NOERROR
        assert addresses(msg, name, "A") == {"192.0.2.3"}
    assert server.queries("mixed.EXAMPLE.") == 3
    assert server.queries("mixed.example", "a") == 3
    assert {name for name, _ in server.log} == {"mixed.example"}


def test_set_validates_input(server: DNSServer) -> None:
    with pytest.raises(ValueError):
        server.set("bad.test", a=["300.1.2.3"])
    with pytest.raises(ValueError):
        server.set("bad.test", aaaa=["192.0.2.1"])
    with pytest.raises(ValueError):
        server.set("bad.test", a=["192.0.2.1"], cname="other.test")
    with pytest.raises(ValueError):
        server.set("bad.test", a=["192.0.2.1"], ttl=-1)
    with pytest.raises(ValueError):
        DNSServer("localhost")
    assert udp(server, "bad.test").rcode() == dns.rcode.NXDOMAIN


def test_per_name_delay_does_not_block_other_queries(server: DNSServer) -> None:
    server.set("slow.test", a=["192.0.2.1"], delay=0.5)
    server.set("fast.test", a=["192.0.2.2"])
    result: dict[str, float] = {}

    def slow_query() -> None:
        start = time.monotonic()
        msg = udp(server, "slow.test")
        assert addresses(msg, "slow.test", "A") == {"192.0.2.1"}
        result["slow"] = time.monotonic() - start

    thread = threading.Thread(target=slow_query)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while server.queries("slow.test") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.monotonic()
    msg = udp(server, "fast.test")
    fast = time.monotonic() - start
    thread.join(TIMEOUT)
    assert addresses(msg, "fast.test", "A") == {"192.0.2.2"}
    assert fast < 0.3
    assert 0.5 <= result["slow"] < 0.5 + 1.5


def test_global_delay(server: DNSServer) -> None:
    server.set("host.test", a=["192.0.2.1"], delay=0.1)
    server.delay = 0.2
    start = time.monotonic()
    udp(server, "host.test")
    assert time.monotonic() - start >= 0.3
    start = time.monotonic()
    assert udp(server, "unknown.test").rcode() == dns.rcode.NXDOMAIN
    assert time.monotonic() - start >= 0.2
    server.delay = 0.0
    start = time.monotonic()
    tcp(server, "unknown.test")
    assert time.monotonic() - start < 0.2


def test_tcp_delay(server: DNSServer) -> None:
    server.set("slow.test", a=["192.0.2.1"], delay=0.3)
    start = time.monotonic()
    msg = tcp(server, "slow.test")
    assert time.monotonic() - start >= 0.3
    assert addresses(msg, "slow.test", "A") == {"192.0.2.1"}


def test_drop_times_out(server: DNSServer) -> None:
    server.drop("blackhole.test")
    start = time.monotonic()
    with pytest.raises(dns.exception.Timeout):
        udp(server, "blackhole.test", timeout=0.3)
    assert time.monotonic() - start >= 0.3
    assert server.queries("blackhole.test", "A") == 1
    # A dropped alias target drops the whole answer.
    server.set("alias.test", cname="blackhole.test")
    with pytest.raises(dns.exception.Timeout):
        udp(server, "alias.test", timeout=0.3)
    server.set("blackhole.test", a=["192.0.2.1"])
    assert udp(server, "blackhole.test").rcode() == dns.rcode.NOERROR


def test_paused(server: DNSServer) -> None:
    server.set("host.test", a=["192.0.2.1"])
    server.paused = True
    with pytest.raises(dns.exception.Timeout):
        udp(server, "host.test", timeout=0.3)
    assert server.queries("host.test") == 1  # received, counted, not answered
    server.paused = False
    assert addresses(udp(server, "host.test"), "host.test", "A") == {"192.0.2.1"}


def test_query_counting(server: DNSServer) -> None:
    server.set("one.test", a=["192.0.2.1"], aaaa=["2001:db8::1"])
    assert server.queries() == 0
    udp(server, "one.test", "A")
    udp(server, "one.test", "AAAA")
    udp(server, "ONE.test.", "A")
    tcp(server, "two.test", "A")
    assert server.queries() == 4
    assert server.queries("one.test") == 3
    assert server.queries("one.test", "A") == 2
    assert server.queries("one.test", "AAAA") == 1
    assert server.queries(rtype="A") == 3
    assert server.queries("two.test", "AAAA") == 0
    assert server.log == [
        ("one.test", "A"),
        ("one.test", "AAAA"),
        ("one.test", "A"),
        ("two.test", "A"),
    ]
    log = server.log
    log.clear()  # a copy
    assert len(server.log) == 4
    server.reset_counts()
    assert server.queries() == 0
    assert server.log == []


def test_restart_keeps_port_and_zone(server: DNSServer) -> None:
    server.set("host.test", a=["192.0.2.1"])
    port = server.port
    assert port > 0
    tcp(server, "host.test")  # leave a TCP connection behind in TIME_WAIT
    server.restart()
    assert server.port == port
    assert addresses(udp(server, "host.test"), "host.test", "A") == {"192.0.2.1"}
    assert addresses(tcp(server, "host.test"), "host.test", "A") == {"192.0.2.1"}


def _server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dnscache-testdns")]


def test_stop_joins_threads_and_is_idempotent() -> None:
    srv = DNSServer().start()
    names = {t.name for t in _server_threads()}
    assert {"dnscache-testdns-udp", "dnscache-testdns-tcp"} <= names
    assert all(t.daemon for t in _server_threads())
    srv.set("slow.test", a=["192.0.2.1"], delay=5.0)
    # A delayed answer in flight and an open TCP connection must not hold stop() up.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(dns.message.make_query("slow.test", "A").to_wire(), (srv.host, srv.port))
        with socket.create_connection((srv.host, srv.port), timeout=TIMEOUT):
            deadline = time.monotonic() + TIMEOUT
            while len(_server_threads()) < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(_server_threads()) >= 4
            start = time.monotonic()
            srv.stop()
            assert time.monotonic() - start < 1.0
    assert _server_threads() == []
    srv.stop()
    assert _server_threads() == []
    # The port is really closed.
    with pytest.raises(dns.exception.Timeout):
        udp(srv, "slow.test", timeout=0.2)


def test_tcp_several_queries_per_connection(server: DNSServer) -> None:
    server.set("host.test", a=["192.0.2.1"], aaaa=["2001:db8::1"])
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        for rdtype, expected in (("A", "192.0.2.1"), ("AAAA", "2001:db8::1"), ("A", "192.0.2.1")):
            query = dns.message.make_query("host.test", rdtype)
            msg = dns.query.tcp(query, server.host, port=server.port, timeout=TIMEOUT, sock=sock)
            assert msg.id == query.id
            assert addresses(msg, "host.test", rdtype) == {expected}
    assert server.queries("host.test") == 3


def test_truncation_and_tcp_fallback(server: DNSServer) -> None:
    many = [f"10.0.{i // 256}.{i % 256}" for i in range(40)]
    server.set("big.test", a=many)

    msg = udp(server, "big.test")
    assert msg.flags & dns.flags.TC
    assert msg.rcode() == dns.rcode.NOERROR

    msg = tcp(server, "big.test")
    assert not msg.flags & dns.flags.TC
    assert addresses(msg, "big.test", "A") == set(many)

    # With a large enough EDNS payload the UDP answer fits ...
    msg = udp(server, "big.test", payload=4096)
    assert not msg.flags & dns.flags.TC
    assert addresses(msg, "big.test", "A") == set(many)
    # ... and with a small one it does not.
    msg = udp(server, "big.test", payload=512)
    assert msg.flags & dns.flags.TC

    assert server.queries("big.test") == 4

    # A resolver falls back to TCP by itself: a truncated UDP answer, then TCP.
    server.reset_counts()
    answer = resolver_for(server).resolve("big.test", "A")
    assert {rd.to_text() for rd in answer} == set(many)
    assert server.queries("big.test") == 2


def test_malformed_packets_are_ignored(server: DNSServer) -> None:
    server.set("host.test", a=["192.0.2.1"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for junk in (b"", b"\x00", b"\xff" * 11, b"\x12\x34" + b"\x01" * 40):
            sock.sendto(junk, (server.host, server.port))
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"\x00\x05hello")
        query = dns.message.make_query("host.test", "A")
        msg = dns.query.tcp(query, server.host, port=server.port, timeout=TIMEOUT, sock=sock)
        assert addresses(msg, "host.test", "A") == {"192.0.2.1"}
    assert addresses(udp(server, "host.test"), "host.test", "A") == {"192.0.2.1"}
    assert server.queries() == 2


def test_ipv6_server() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        netns.unavailable("cannot bind ::1")
    with DNSServer("::1") as srv:
        assert srv.nameserver == f"[::1]:{srv.port}"
        srv.set("v6.test", aaaa=["2001:db8::6"], ttl=5)
        msg = udp(srv, "v6.test", "AAAA")
        assert addresses(msg, "v6.test", "AAAA") == {"2001:db8::6"}
        assert answer_of(msg, "v6.test", "AAAA").ttl == 5
        msg = tcp(srv, "v6.test", "AAAA")
        assert addresses(msg, "v6.test", "AAAA") == {"2001:db8::6"}
    assert _server_threads() == []


def test_nameserver_and_resolver(server: DNSServer) -> None:
    assert server.nameserver == f"127.0.0.1:{server.port}"
    server.set("host.test", a=["192.0.2.1"], ttl=42)
    answer = resolver_for(server).resolve("host.test", "A")
    assert answer.rrset is not None
    assert answer.rrset.ttl == 42
    assert [rd.to_text() for rd in answer] == ["192.0.2.1"]
