"""The pytest plugin (run inside pytester) and dnscache.testing."""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.request
from collections.abc import Iterator

import pytest

import dnscache
from dnscache import testing
from dnscache._tools.dnsserver import DNSServer

pytest_plugins = ["pytester"]


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello from {self.headers['Host']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    """A real HTTP server on 127.0.0.1, answering every GET with "hello from <Host>"."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http", daemon=True
    )
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider
filterwarnings = error
"""

# The inner test file; PORT is filled in. urllib goes through http.client, which
# connects with socket.create_connection -> socket.getaddrinfo: the patched path.
TESTS = """
import socket
import urllib.request

import pytest

import dnscache

PORT = {port}
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))


def fetch(host):
    with NO_PROXY.open(f"http://{{host}}:{{PORT}}/", timeout=5) as response:
        return response.read().decode()


def patched_now():
    return getattr(socket.getaddrinfo, "__dnscache__", False)


@pytest.mark.dnscache(hosts={{"api.example.com": ["127.0.0.1"]}})
def test_marker_alone():
    assert patched_now()
    assert fetch("api.example.com") == f"hello from api.example.com:{{PORT}}"


@pytest.mark.dnscache(hosts={{"api.example.com": ["127.0.0.1"]}}, ttl=7)
def test_fixture_with_marker(dnscache):
    assert dnscache is dnscache_module().active_resolver()
    assert dnscache.config.ttl == 7.0
    assert fetch("api.example.com") == f"hello from api.example.com:{{PORT}}"
    assert {{e.name: e.source for e in dnscache.entries()}} == {{"api.example.com": "override"}}


@pytest.fixture
def greeting():
    return fetch("api.example.com")


@pytest.mark.dnscache(hosts={{"api.example.com": ["127.0.0.1"]}})
def test_marker_covers_the_tests_fixtures(greeting):
    assert greeting == f"hello from api.example.com:{{PORT}}"


def test_fixture_alone(dnscache):
    assert patched_now()
    assert dnscache.config == dnscache_module().Config()


def test_unmarked_test_is_not_patched():
    assert not patched_now()
    assert not dnscache_module().is_installed()


@pytest.mark.dnscache(ttl=3, hosts={{"class.example.com": ["127.0.0.1"]}})
class TestClassMarker:
    def test_class_marker_applies(self, dnscache):
        assert dnscache.config.ttl == 3.0

    @pytest.mark.dnscache(ttl=4)
    def test_closer_marker_wins(self, dnscache):
        assert dnscache.config.ttl == 4.0
        assert fetch("class.example.com") == f"hello from class.example.com:{{PORT}}"


@pytest.mark.dnscache(dnscache.Config(negative_ttl=9), ttl=2)
def test_marker_with_a_config(dnscache):
    assert (dnscache.config.negative_ttl, dnscache.config.ttl) == (9.0, 2.0)


def dnscache_module():
    return dnscache
"""


def test_fixture_and_marker(pytester: pytest.Pytester, http_port: int) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_inner=TESTS.format(port=http_port))
    result = pytester.runpytest()
    result.assert_outcomes(passed=8)
    assert not dnscache.is_installed()


def test_bad_marker_arguments_fail_the_test(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_inner="""
        import pytest

        @pytest.mark.dnscache(tll=3)
        def test_typo():
            pass

        @pytest.mark.dnscache({"ttl": 3})
        def test_not_a_config():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*TypeError*tll*", "*must be a dnscache.Config, not dict*"])


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.dnscache(config=None, **options):*"])


def test_plugin_comes_from_the_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--trace-config")
    result.stdout.fnmatch_lines(["*registered third-party plugins:*", "*pydnscache-*"])
    result.stdout.fnmatch_lines(["*dnscache.pytest_plugin*"])


def test_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
        def test_wants_fixture(dnscache):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:dnscache")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'dnscache' not found*"])


# --- dnscache.testing ---


def test_fake_hosts(http_port: int) -> None:
    with testing.fake_hosts({"fake.example.com": "127.0.0.1"}) as resolver:
        assert socket.getaddrinfo("fake.example.com", 80, socket.AF_INET)[0][4] == (
            "127.0.0.1",
            80,
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://fake.example.com:{http_port}/", timeout=5) as response:
            assert response.read() == f"hello from fake.example.com:{http_port}".encode()
        assert resolver is dnscache.active_resolver()
    assert not dnscache.is_installed()


def test_fake_hosts_takes_options() -> None:
    with testing.fake_hosts({"a.example.com": ["127.0.0.1", "::1"]}, ttl=5) as resolver:
        assert resolver.config.ttl == 5.0
        assert resolver.config.hosts == {"a.example.com": ("127.0.0.1", "::1")}


def test_testing_exports_the_dns_server() -> None:
    assert testing.DNSServer is DNSServer
    assert set(testing.__all__) == {"DNSServer", "fake_hosts"}
