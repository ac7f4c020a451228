"""DNS over TLS and over HTTPS (issue 15 item 2), against a real unbound on loopback.

unbound (Debian's, started by :mod:`unbound` on free ports of 127.0.0.1) holds a
certificate from a private CA made for the test; its statistics witness what arrived over
which transport, and the kernel's socket table (``ss``) witnesses how many TCP connections
the client opened: a kept connection means one handshake for many lookups.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dnscache
import netns
import unbound
from dnscache._core.config import Config, ConfigWarning, parse_env, parse_nameserver
from dnscache._sources.dnspython import DnspythonBackend
from dnscache._sources.originals import get_original
from dnscache._sources.system import SystemBackend

V4, UNSPEC = socket.AF_INET, socket.AF_UNSPEC
RECORDS = {"svc.test": ["127.0.0.1", "::1"], "other.test": ["127.0.0.2"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[unbound.Unbound]:
    problem = unbound.missing()
    if problem is not None:
        netns.unavailable(problem)
    if not unbound.has_doh():
        netns.unavailable("this unbound has no DNS-over-HTTPS (built without nghttp2)")
    ports = [unbound.free_port() for _ in range(3)]
    with unbound.Unbound(
        RECORDS,
        ttl=30,
        port=ports[0],
        tls_port=ports[1],
        https_port=ports[2],
        workdir=tmp_path_factory.mktemp("unbound"),
    ) as srv:
        yield srv


@pytest.fixture
def backends() -> Iterator[Callable[..., DnspythonBackend]]:
    made: list[DnspythonBackend] = []

    def make(*nameservers: str, **kw: Any) -> DnspythonBackend:
        fallback = SystemBackend(get_original("getaddrinfo"))
        backend = DnspythonBackend(fallback, lambda: frozenset(), nameservers, **kw)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def _connections(port: int) -> int:
    """TCP connections to 127.0.0.1:port the kernel knows (open or in TIME-WAIT)."""
    ss = shutil.which("ss") or shutil.which("ss", path="/usr/sbin:/sbin")
    if ss is None:
        netns.unavailable("ss (iproute2) is not installed")
    out = subprocess.run(
        [ss, "-Htan", "dst", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=10,
        stdin=subprocess.DEVNULL,
    )
    return len([line for line in out.stdout.splitlines() if line.strip()])


def _ips(answer: Any) -> list[str]:
    return sorted(ip for _, (ip, *_) in answer.addresses)


@pytest.mark.parametrize("scheme", ["tls", "https"])
def test_lookups_reuse_one_connection(
    server: unbound.Unbound, backends: Callable[..., DnspythonBackend], scheme: str
) -> None:
    ns = server.tls_nameserver if scheme == "tls" else server.https_nameserver
    port = server.tls_port if scheme == "tls" else server.https_port
    assert port is not None
    counter = "num.query.tls" if scheme == "tls" else "num.query.https"
    before = server.stats().get(counter, 0)
    connections_before = _connections(port)
    backend = backends(ns, ca_bundle=str(server.certs["ca"]))
    for _ in range(20):
        assert _ips(backend.resolve(b"svc.test", UNSPEC, 0)) == ["127.0.0.1", "::1"]
    assert server.stats().get(counter, 0) - before == 40  # A and AAAA, 20 times, encrypted
    assert _connections(port) - connections_before == 1  # one handshake for 20 lookups
    assert backend.servers[0].connections_opened == 1


def test_concurrent_lookups_each_get_their_answer(
    server: unbound.Unbound, backends: Callable[..., DnspythonBackend]
) -> None:
    backend = backends(server.tls_nameserver, ca_bundle=str(server.certs["ca"]))
    results: list[Any] = []

    def ask(host: bytes) -> None:
        for _ in range(10):
            results.append((host, _ips(backend.resolve(host, V4, 0))))

    threads = [threading.Thread(target=ask, args=(h,)) for h in (b"svc.test", b"other.test") * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 60
    expected = {b"svc.test": ["127.0.0.1"], b"other.test": ["127.0.0.2"]}
    assert all(ips == expected[host] for host, ips in results)
    # At most one per concurrent lookup, and one reconnect each if the server dropped an idle
    # connection under load: 60 lookups, never a handshake per lookup.
    assert backend.servers[0].connections_opened <= 12


@pytest.mark.parametrize("scheme", ["tls", "https"])
def test_certificates_are_verified_by_default(
    server: unbound.Unbound, backends: Callable[..., DnspythonBackend], scheme: str
) -> None:
    """Without the private CA, the system trust store rejects the server: nothing is asked."""
    ns = server.tls_nameserver if scheme == "tls" else server.https_nameserver
    counter = "num.query.tls" if scheme == "tls" else "num.query.https"
    before = server.stats().get(counter, 0)
    backend = backends(ns)
    with pytest.raises(socket.gaierror) as failed:
        backend.resolve(b"svc.test", V4, 0)
    assert failed.value.errno == socket.EAI_AGAIN
    assert server.stats().get(counter, 0) == before


def test_the_certificate_must_name_the_server(
    server: unbound.Unbound, backends: Callable[..., DnspythonBackend]
) -> None:
    backend = backends(
        f"tls://127.0.0.1:{server.tls_port}#impostor.test", ca_bundle=str(server.certs["ca"])
    )
    with pytest.raises(socket.gaierror) as failed:
        backend.resolve(b"svc.test", V4, 0)
    assert failed.value.errno == socket.EAI_AGAIN


def test_a_connection_closed_by_a_restart_is_replaced(
    tmp_path: Path, backends: Callable[..., DnspythonBackend]
) -> None:
    problem = unbound.missing()
    if problem is not None:
        netns.unavailable(problem)
    with unbound.Unbound(RECORDS, tls_port=unbound.free_port(), workdir=tmp_path) as srv:
        backend = backends(srv.tls_nameserver, ca_bundle=str(srv.certs["ca"]))
        assert _ips(backend.resolve(b"svc.test", V4, 0)) == ["127.0.0.1"]
        srv.restart()  # the kept connection is dead now
        assert _ips(backend.resolve(b"svc.test", V4, 0)) == ["127.0.0.1"]
        assert backend.servers[0].connections_opened == 2


def test_close_wakes_a_lookup_stuck_in_a_tls_handshake(
    backends: Callable[..., DnspythonBackend], tmp_path: Path
) -> None:
    """A server that accepts and never speaks: only close() can end the wait early."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        backend = backends(f"tls://127.0.0.1:{port}", lifetime=60.0)
        box: list[Any] = []

        def lookup() -> None:
            try:
                box.append(backend.resolve(b"svc.test", V4, 0))
            except BaseException as exc:
                box.append(exc)

        thread = threading.Thread(target=lookup, daemon=True)
        thread.start()
        conn, _ = listener.accept()
        with conn:
            backend.close()
            thread.join(5.0)
            assert not thread.is_alive()
    assert isinstance(box[0], socket.gaierror) and box[0].errno == socket.EAI_AGAIN


def test_mixing_in_a_plaintext_server_warns_once_at_start(
    backends: Callable[..., DnspythonBackend],
) -> None:
    with pytest.warns(ConfigWarning, match="PYTHONDNSCACHE_NAMESERVERS.*127.0.0.9"):
        backends("tls://127.0.0.1:853", "127.0.0.9")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backends("tls://127.0.0.1:853", "https://127.0.0.1/dns-query")
        backends("127.0.0.1", "127.0.0.9")


def test_a_bad_ca_bundle_warns_and_falls_back_to_the_system_store(tmp_path: Path) -> None:
    config = Config(
        backend="dnspython",
        nameservers=("tls://127.0.0.1:853",),
        tls_ca_bundle=str(tmp_path / "missing.pem"),
    )
    with pytest.warns(ConfigWarning, match="PYTHONDNSCACHE_TLS_CA_BUNDLE"):
        backend = DnspythonBackend.from_config(
            config, SystemBackend(get_original("getaddrinfo")), lambda: frozenset()
        )
    backend.close()


def test_nameserver_syntax() -> None:
    assert parse_nameserver("tls://1.1.1.1").port == 853
    assert parse_nameserver("tls://1.1.1.1:8853#one.one.one.one").tls_name == "one.one.one.one"
    assert parse_nameserver("https://dns.example").path == "/dns-query"
    assert parse_nameserver("https://dns.example:8443/q").port == 8443
    with pytest.raises(ValueError, match="quic:// is not supported"):
        Config(nameservers=("quic://dns.example",))
    for bad in ("http://x", "tls://", "tls://a/b", "tls://a:0", "https://a b/"):
        with pytest.raises(ValueError):
            Config(nameservers=(bad,))


def test_ca_bundle_environment_twin(tmp_path: Path) -> None:
    config, problems = parse_env({"PYTHONDNSCACHE_TLS_CA_BUNDLE": str(tmp_path / "ca.pem")})
    assert problems == [] and config.tls_ca_bundle == str(tmp_path / "ca.pem")
    config, problems = parse_env({"PYTHONDNSCACHE_TLS_CA_BUNDLE": "relative.pem"})
    assert config.tls_ca_bundle is None
    assert len(problems) == 1 and "PYTHONDNSCACHE_TLS_CA_BUNDLE" in problems[0]


def test_resolver_over_tls_with_a_private_ca(server: unbound.Unbound) -> None:
    """Through the public API (the engine builds the backend with from_config())."""
    with dnscache.Resolver(
        backend="dnspython",
        nameservers=(server.tls_nameserver,),
        tls_ca_bundle=str(server.certs["ca"]),
    ) as resolver:
        assert resolver.lookup("other.test", V4) == ["127.0.0.2"]
