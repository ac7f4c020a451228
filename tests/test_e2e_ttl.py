"""TTL learning for the system backend (issue 15 item 1), through glibc, in a private namespace.

Each script gets the answer from the real ``getaddrinfo`` (glibc reads the namespace's
resolv.conf, hosts and nsswitch) and hands it to :class:`TtlLearner`, which must find the
TTL of the records glibc resolved, or None when glibc's answer did not come from DNS.
The servers are a real dnsmasq (``--local-ttl``) and, where a CNAME chain with its own TTLs
is needed, the project's DNSServer on port 53 of the namespace.
"""

from __future__ import annotations

import textwrap
from typing import Any

import netns

PRELUDE = textwrap.dedent(
    """\
    import json, socket, time

    from dnscache._core.addrinfo import addresses_of, canonname_of
    from dnscache._sources.answer import Answer
    from dnscache._sources.originals import get_original
    from dnscache._sources.sysfiles import load_facts
    from dnscache._sources.ttl import TtlLearner
    import netns

    ORIGINAL = get_original("getaddrinfo")

    def libc(host, family=0, flags=0):
        result = ORIGINAL(host, None, family, socket.SOCK_STREAM, 0, flags)
        return Answer(addresses_of(result), canonname_of(result), None)

    def learn(learner, host, family=0, flags=0):
        return learner.learn(host, family, flags, libc(host, family, flags))

    def hosts_names():
        return load_facts().hosts_names
    """
)


def run(body: str) -> dict[str, Any]:
    return netns.run_in_netns(PRELUDE + textwrap.dedent(body), timeout=60)


def test_learner_finds_the_record_ttl_libc_did_not_report() -> None:
    netns.require_e2e()
    result = run(
        """\
        records = {"svc.test": ["127.0.0.2", "::1"], "v4.test": ["127.0.0.3"]}
        with netns.start_dnsmasq(records, ttl=7) as dns:
            learner = TtlLearner(hosts_names)
            try:
                out = {
                    "unspec": learn(learner, b"svc.test"),
                    "v4": learn(learner, b"svc.test", socket.AF_INET),
                    "v6": learn(learner, b"svc.test", socket.AF_INET6),
                    "mapped": learn(
                        learner, b"v4.test", socket.AF_INET6,
                        socket.AI_V4MAPPED | socket.AI_CANONNAME,
                    ),
                    "localhost": learn(learner, b"localhost"),
                    "asked": dns.queries("svc.test"),
                }
            finally:
                learner.close()
        print(json.dumps(out))
        """
    )
    assert result["unspec"] == 7.0
    assert result["v4"] == 7.0
    assert result["v6"] == 7.0
    assert result["mapped"] == 7.0
    assert result["localhost"] is None  # from /etc/hosts: files, not DNS
    # libc: A+AAAA, A, AAAA; the learner: the same again.
    assert result["asked"] == 8


def test_learner_follows_the_search_list_and_the_cname_chain() -> None:
    netns.require_e2e()
    result = run(
        """\
        from dnscache._tools.dnsserver import DNSServer

        with open("/etc/resolv.conf", "a") as conf:  # the namespace's private copy
            conf.write("search corp.test\\n")
        with DNSServer("127.0.0.1", 53) as server:
            server.set("db.corp.test", cname="real.corp.test", ttl=30)
            server.set("real.corp.test", a=["127.0.0.4"], ttl=5)
            server.set("db.test", a=["127.0.0.99"], ttl=300)  # not what libc resolves
            learner = TtlLearner(hosts_names)
            try:
                out = {
                    "short": learn(learner, b"db", socket.AF_INET),
                    "canon": learn(learner, b"db", socket.AF_INET, socket.AI_CANONNAME),
                    "libc": [a[1][0] for a in libc(b"db", socket.AF_INET).addresses],
                }
            finally:
                learner.close()
        print(json.dumps(out))
        """
    )
    assert result["libc"] == ["127.0.0.4"]
    assert result["short"] == 5.0  # the minimum over the chain: the A record's 5, not 30
    assert result["canon"] == 5.0


def test_learner_returns_none_when_libc_answered_from_elsewhere() -> None:
    netns.require_e2e()
    result = run(
        """\
        with open("/etc/hosts", "a") as hosts:  # the namespace's private copy
            hosts.write("127.0.0.5 svc.test\\n")
        with netns.start_dnsmasq({"svc.test": ["127.0.0.2"]}, ttl=7):
            blind = TtlLearner(lambda: frozenset())  # a learner that can't see the file...
            seeing = TtlLearner(hosts_names)
            try:
                out = {
                    "libc": [a[1][0] for a in libc(b"svc.test", socket.AF_INET).addresses],
                    # ...still refuses: DNS says 127.0.0.2, libc said 127.0.0.5.
                    "blind": learn(blind, b"svc.test", socket.AF_INET),
                    "seeing": learn(seeing, b"svc.test", socket.AF_INET),
                }
            finally:
                blind.close()
                seeing.close()
        print(json.dumps(out))
        """
    )
    assert result["libc"] == ["127.0.0.5"]
    assert result["blind"] is None
    assert result["seeing"] is None


def test_learner_gives_up_on_a_dead_server_within_its_lifetime() -> None:
    netns.require_e2e()
    result = run(
        """\
        with netns.start_dnsmasq({"svc.test": ["127.0.0.2"]}, ttl=7) as dns:
            answer = libc(b"svc.test", socket.AF_INET)
            dns.pause()
            learner = TtlLearner(hosts_names, lifetime=0.5)
            try:
                started = time.monotonic()
                ttl = learner.learn(b"svc.test", socket.AF_INET, 0, answer)
                took = time.monotonic() - started
            finally:
                learner.close()
                dns.resume()
        print(json.dumps({"ttl": ttl, "took": took}))
        """
    )
    assert result["ttl"] is None
    assert result["took"] < 10.0, result  # lifetime 0.5 s; a hang would hit the script timeout


def test_changed_record_is_picked_up_within_its_ttl_while_hits_continue() -> None:
    """End to end through the public API; needs the engine to call TtlLearner (see ttl.py).

    dnsmasq serves a 2 s TTL; the resolver's fixed ``ttl`` is an hour. With
    ``ttl_source="dns"`` the learned TTL re-times the entry, so refresh-ahead picks up the
    changed record within the TTL (plus the refresh) while every call keeps answering.
    """
    netns.require_e2e()
    result = run(
        """\
        import dnscache

        with netns.start_dnsmasq({"svc.test": ["127.0.0.2"]}, ttl=2) as dns:
            dnscache.install(ttl=3600.0, ttl_source="dns", refresh_at=0.5)
            try:
                def ask():
                    infos = socket.getaddrinfo("svc.test", 80, socket.AF_INET)
                    return sorted({info[4][0] for info in infos})

                first = ask()
                time.sleep(0.5)  # the learner runs in the background
                dns.set_records({"svc.test": ["127.0.0.3"]})
                changed_at = time.monotonic()
                answers, seen_new_after = [], None
                while time.monotonic() - changed_at < 8.0:
                    got = ask()
                    answers.append(got)
                    if got == ["127.0.0.3"] and seen_new_after is None:
                        seen_new_after = time.monotonic() - changed_at
                    time.sleep(0.05)
            finally:
                dnscache.uninstall()
        print(json.dumps({"first": first, "answers": answers, "after": seen_new_after}))
        """
    )
    assert result["first"] == ["127.0.0.2"]
    assert all(a in (["127.0.0.2"], ["127.0.0.3"]) for a in result["answers"]), result
    assert result["after"] is not None, "the changed record was never picked up"
    # Picked up within the 8 s window (2 s TTL, refresh-ahead, slack), not after the hour,
    # and never lost again.
    first_new = result["answers"].index(["127.0.0.3"])
    assert all(a == ["127.0.0.3"] for a in result["answers"][first_new:])
