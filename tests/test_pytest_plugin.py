"""The pytest plugin (run inside pytester) and dnscache.testing."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import dnscache
from dnscache import testing
from dnscache._tools.dnsserver import DNSServer
from wheelenv import clean_env, wheel_python

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
    result.stdout.fnmatch_lines(
        [
            "*TypeError: @pytest.mark.dnscache() got an unexpected keyword argument 'tll'"
            " (did you mean 'ttl'?)",
            "*must be a dnscache.Config, not dict*",
        ]
    )


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.dnscache(config=None, **options):*"])


def test_plugin_comes_from_the_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--trace-config")
    result.stdout.fnmatch_lines(["*registered third-party plugins:*", "*pydnscache-*"])
    result.stdout.fnmatch_lines(["*dnscache.pytest_plugin*"])


def test_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_fixture="""
        def test_wants_fixture(dnscache):
            pass

        def test_no_hooks_of_ours(request):
            assert not request.config.pluginmanager.has_plugin("dnscache")
        """,
        test_marker="""
        import pytest

        @pytest.mark.dnscache(ttl=3)
        def test_marked():
            pass
        """,
    )
    # A subprocess: in-process runs share this process's plugin and markers.
    result = pytester.runpytest_subprocess("-p", "no:dnscache", "--continue-on-collection-errors")
    result.assert_outcomes(errors=2, passed=1)
    result.stdout.fnmatch_lines(["*fixture 'dnscache' not found*"])
    result.stdout.fnmatch_lines(["*'dnscache' not found in `markers` configuration option*"])


def test_unmarked_tests_get_no_fixture_of_ours(pytester: pytest.Pytester) -> None:
    # No autouse fixture: a test that uses neither the marker nor the fixture runs
    # exactly as it would without the plugin; parametrized siblings share one
    # fixture closure, and only the marked one gets the marker's fixture.
    pytester.makeini(INI)
    pytester.makepyfile(
        test_inner="""
        import socket

        import pytest

        def ours_active():
            return getattr(socket.getaddrinfo, "__dnscache__", False)

        def test_plain(request):
            assert not [name for name in request.fixturenames if "dnscache" in name]

        @pytest.fixture(scope="module")
        def shared():
            return ours_active()

        @pytest.mark.parametrize(
            "marked", [False, pytest.param(True, marks=pytest.mark.dnscache(ttl=3)), False]
        )
        def test_siblings(request, shared, marked):
            assert ("_dnscache_marker" in request.fixturenames) is marked
            assert bool(ours_active()) is marked
            assert shared is False  # a module-scoped fixture stays outside the block
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=4)


# --- pytest with dnscache activated at start-up (issue 10, repro r7) ---

R7_TESTS = """
import os
import socket
import sys


def test_activation_is_what_the_environment_asked_for():
    wanted = os.environ.get("PYTHONDNSCACHE") == "1"
    assert bool(getattr(socket.getaddrinfo, "__dnscache__", False)) is wanted


def test_plugin_is_what_the_command_line_asked_for(request):
    wanted = os.environ["EXPECT_PLUGIN"] == "1"
    assert request.config.pluginmanager.has_plugin("dnscache") is wanted


def test_the_plugin_costs_no_imports():
    # What a run that uses neither the fixture nor the marker has loaded of ours.
    if os.environ["EXPECT_MODULES"] != "*":
        loaded = sorted(m for m in sys.modules if m.startswith("dnscache"))
        assert loaded == os.environ["EXPECT_MODULES"].split()
"""


@pytest.fixture(scope="module")
def wheel_py(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wheel_python(tmp_path_factory.getbasetemp() / "wheelenv")


@pytest.mark.parametrize("activated", [False, True], ids=["unset", "PYTHONDNSCACHE=1"])
@pytest.mark.parametrize(
    ("filterwarnings", "disable"),
    [("error", False), ("default", False), ("error", True)],
    ids=["filterwarnings=error", "default-warnings", "error+no:dnscache"],
)
def test_pytest_starts_with_a_wheel_installed_dnscache(
    wheel_py: Path, tmp_path: Path, activated: bool, filterwarnings: str, disable: bool
) -> None:
    # As in urllib3, httpx, aiohttp and our own pyproject: warnings are errors, so
    # pytest's "Module already imported so cannot be rewritten" used to abort the run.
    (tmp_path / "pytest.ini").write_text(f"[pytest]\nfilterwarnings = {filterwarnings}\n")
    (tmp_path / "test_r7.py").write_text(R7_TESTS)
    modules = "*" if activated else "" if disable else "dnscache dnscache.pytest_plugin"
    env = clean_env(EXPECT_PLUGIN="0" if disable else "1", EXPECT_MODULES=modules)
    if activated:
        env["PYTHONDNSCACHE"] = "1"
    args = [str(wheel_py), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if disable:
        args += ["-p", "no:dnscache"]
    proc = subprocess.run(
        args,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "3 passed" in output, output
    assert "PytestAssertRewriteWarning" not in output
    assert "warning" not in output.lower(), output


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
