"""Helpers for testing programs that use the network, with or without pytest.

* :class:`DNSServer`: a real DNS server on loopback with a zone you control
  (names, TTLs, delays, NXDOMAIN, SERVFAIL, silence), for code that talks DNS.
  Point a Resolver at it with ``backend="dnspython", nameservers=(srv.nameserver,)``.
* :func:`fake_hosts`: point host names at addresses for the duration of a
  ``with`` block, without touching ``/etc/hosts``: everything resolving through
  ``socket.getaddrinfo`` (urllib, requests, httpx, aiohttp's default resolver)
  sees them.

The pytest plugin (``dnscache.pytest_plugin``, loaded automatically) offers the
same as a fixture and a marker.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Unpack

from ._activation.patch import patched
from ._core.config import Config, Options, check_options
from ._engine.resolver import Resolver
from ._tools.dnsserver import DNSServer

__all__ = ["DNSServer", "fake_hosts"]


@contextmanager
def fake_hosts(
    mapping: Mapping[str, str | Iterable[str]], **options: Unpack[Options]
) -> Iterator[Resolver]:
    """``with fake_hosts({"api.example.com": ["127.0.0.1"]}):`` resolves those names there.

    A ``patched(hosts=mapping, **options)`` block: other names resolve as usual
    (and are cached); on exit ``socket.getaddrinfo`` is what it was before.
    """
    check_options(options, "fake_hosts()")
    if "hosts" in options:
        raise TypeError("fake_hosts() got multiple values for argument 'hosts'")
    with patched(Config().replace(hosts=mapping), **options) as resolver:
        yield resolver
