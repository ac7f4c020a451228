"""RFC 6724 rule 1 kept per prefix, and forgotten when the interfaces change (issue 12 item 2).

In a private network namespace (only ``lo``), 10.9.9.9 has no route, so rule 1 calls it
unusable; adding an address (and with it a route) must be seen by the very next lookup,
through the netlink announcement, not after some expiry.
"""

from __future__ import annotations

import textwrap

import netns


def test_rule_1_answer_is_forgotten_when_an_address_is_added() -> None:
    netns.require_e2e()
    result = netns.run_in_netns(
        textwrap.dedent(
            """\
            import json, socket, subprocess, time
            from dnscache._sources import rfc6724

            probes = []
            def probe(address):
                probes.append(address[1][0])
                return rfc6724.probe(address)

            cache = rfc6724.SourceCache(probe)
            far, near = (socket.AF_INET, ("10.9.9.9", 0)), (socket.AF_INET, ("127.0.0.1", 0))
            before = [cache.reachable(far), cache.reachable(far), cache.reachable(near)]
            probes_before = len(probes)
            subprocess.run(["ip", "addr", "add", "10.9.9.1/24", "dev", "lo"], check=True)
            time.sleep(0.2)  # the kernel's announcements (address, routes) are all queued
            after = [cache.reachable(far), cache.reachable(far)]
            order = [a[1][0] for a in cache.order([far, near])]
            cache.close()
            print(json.dumps({"before": before, "after": after, "probes_before": probes_before,
                              "probes": len(probes), "order": order,
                              "watching": rfc6724._RouteWatcher().working}))
            """
        ),
        timeout=30,
    )
    assert result["watching"], "netlink is not available in the namespace"
    assert result["before"] == [False, False, True]
    assert result["probes_before"] == 2  # the second ask of 10.9.9.9 came from the cache
    assert result["after"] == [True, True]  # the route appeared: asked again, once
    # Everything was forgotten: 10.9.9.9 once, and 127.0.0.1 again for the order.
    assert result["probes"] == 4
    assert result["order"] == ["10.9.9.9", "127.0.0.1"]  # both usable: precedence, stable
