"""End-to-end harness: run Python inside a throw-away network namespace with its own DNS server.

Two halves live here, because the code that runs *inside* the namespace has to import them
from somewhere and the tests directory is the one place both sides can see:

* Outside (the pytest process): :func:`e2e_requirements`, :func:`require_e2e` and
  :func:`run_in_netns`. Only ``unshare`` needs root; nothing in the caller's namespace is
  changed.
* Inside (the script given to :func:`run_in_netns`): :func:`start_dnsmasq` and
  :func:`start_http_server`. The script finds this module because :func:`run_in_netns` puts
  the tests directory (also exported as ``DNSCACHE_TESTS_DIR``) first on its ``sys.path``, so
  it can simply ``import netns``.

Why a namespace rather than pointing the library at a test server: the product wraps
``socket.getaddrinfo`` for *unmodified* programs, so the only honest end-to-end check is one
where glibc itself resolves through ``/etc/resolv.conf``. That file is system-wide, so each run
gets a private mount namespace in which a temp file is bind-mounted over it, and a private
network namespace whose only interface is ``lo``, so a mistake can never send a query, or a
request, to a real network. A private PID namespace on top makes the script PID 1: when it
exits, or is killed on a timeout, the kernel kills everything it started (dnsmasq included),
even if its ``finally`` blocks never ran.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import pytest

__all__ = [
    "ENV_IN_NETNS",
    "ENV_TESTS_DIR",
    "TESTS_DIR",
    "Dnsmasq",
    "QuietHTTPServer",
    "e2e_requirements",
    "require_e2e",
    "run_in_netns",
    "start_dnsmasq",
    "start_http_server",
]

TESTS_DIR = Path(__file__).resolve().parent
#: Exported to namespace scripts: the directory holding this module.
ENV_TESTS_DIR = "DNSCACHE_TESTS_DIR"
#: Set to "1" in namespace scripts; the inside-only helpers refuse to run without it, so nobody
#: accidentally starts a DNS server on the host's port 53.
ENV_IN_NETNS = "DNSCACHE_IN_NETNS"

# PID namespace + --kill-child: unshare's child (the bootstrap, then the script) is PID 1 of a
# fresh PID namespace and gets SIGKILL if unshare dies (e.g. killed on our timeout); when PID 1
# dies the kernel kills every other process in the namespace. --mount-proc keeps /proc
# consistent with the PIDs the script sees.
_UNSHARE_FLAGS = ("--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc")

# Runs inside the new namespaces, before the script. Everything is bind-mounted rather than
# edited: a bind mount in a private mount namespace is invisible outside it and disappears with
# it, whereas editing /etc/resolv.conf (even "temporarily") would change DNS for the whole
# machine and be left broken if the run were killed.
_BOOTSTRAP_SH = """\
set -eu
ip link set lo up
mount --bind "$1" /etc/resolv.conf
mount --bind "$2" /etc/hosts
if [ -n "$3" ]; then mount --bind "$3" /etc/nsswitch.conf; fi
shift 3
exec "$@"
"""

# Makes `import netns` work in the script without touching the script's text (so tracebacks
# keep their line numbers) and without PYTHONPATH (which would leak into the programs the
# script starts, which must stay unmodified).
_RUNNER_PY = (
    "import os, runpy, sys; "
    f"sys.path.insert(0, os.environ[{ENV_TESTS_DIR!r}]); "
    "sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)

# glibc reads resolver settings from these too; they would override our resolv.conf.
_RESOLVER_ENV = frozenset({"RES_OPTIONS", "LOCALDOMAIN", "HOSTALIASES"})
_PROXY_ENV = frozenset({"http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy"})

_RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:1 attempts:2\n"
_HOSTS = "127.0.0.1 localhost\n::1 localhost\n"


def _find_tool(name: str) -> str | None:
    # sbin is not always on PATH (e.g. under sudo -E or in minimal CI images).
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


# --------------------------------------------------------------------------------------------
# Outside the namespace
# --------------------------------------------------------------------------------------------


def e2e_requirements() -> str | None:
    """Return None if end-to-end tests can run here, else a short reason why not.

    Checks by doing rather than guessing: it actually creates the namespaces run_in_netns uses
    and brings ``lo`` up in them, since container runtimes often ship ``unshare`` but deny it.
    """
    if os.geteuid() != 0:
        return "end-to-end tests need root (to create namespaces and bind-mount resolv.conf)"
    unshare, ip, dnsmasq = _find_tool("unshare"), _find_tool("ip"), _find_tool("dnsmasq")
    if unshare is None:
        return "unshare (util-linux) is not installed"
    if ip is None:
        return "ip (iproute2) is not installed"
    if dnsmasq is None:
        return "dnsmasq is not installed (Debian: apt-get install dnsmasq-base)"
    try:
        probe = subprocess.run(
            [unshare, *_UNSHARE_FLAGS, "--", ip, "link", "set", "lo", "up"],
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run unshare: {exc}"
    if probe.returncode != 0:
        return f"unshare cannot create namespaces here: {probe.stderr.strip() or probe.returncode}"
    return None


def require_e2e() -> None:
    """Skip the calling test if the end-to-end environment is missing; fail it under CI.

    CI is where these tests are supposed to run, so there a missing requirement is a broken
    CI image, and a silent skip would let the suite go green without testing anything.
    """
    reason = e2e_requirements()
    if reason is None:
        return
    unavailable(f"end-to-end environment unusable: {reason}")


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test for a missing piece of environment; under CI=true, fail it.

    For every environmental skip in the suite (namespaces, IPv6, a kernel behaviour):
    a skip counted as a pass under CI would hide a test that never ran.
    """
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (a skip is a failure under CI=true)")
    pytest.skip(reason)


def _nsswitch_text() -> str | None:
    """The host's nsswitch.conf with its ``hosts:`` line forced to ``files dns``.

    Hosts that use systemd-resolved (``hosts: ... resolve ...``), mDNS or ``myhostname``
    would otherwise answer from outside our dnsmasq: resolved is reached over a Unix socket,
    which a network namespace does not cut off.
    """
    try:
        original = Path("/etc/nsswitch.conf").read_text()
    except OSError:
        return None
    lines = [ln for ln in original.splitlines() if not re.match(r"\s*hosts\s*:", ln)]
    return "\n".join([*lines, "hosts: files dns", ""])


def _script_env(tmpdir: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        # The script decides itself whether (and in which children) the cache is active.
        if not key.startswith("PYTHONDNSCACHE")
        # A proxy would make urllib & co. resolve the proxy's name instead of the target's.
        and key.lower() not in _PROXY_ENV
        and key not in _RESOLVER_ENV
    }
    env[ENV_TESTS_DIR] = str(TESTS_DIR)
    env[ENV_IN_NETNS] = "1"
    # Everything the script (and dnsmasq) writes lands here and is removed with the run.
    env["TMPDIR"] = tmpdir
    if extra:
        env.update(extra)
    return env


def _format_output(stdout: str | bytes | None, stderr: str | bytes | None) -> str:
    def text(stream: str | bytes | None) -> str:
        if isinstance(stream, bytes):
            return stream.decode(errors="replace")
        return stream or ""

    return f"--- stdout ---\n{text(stdout)}\n--- stderr ---\n{text(stderr)}"


def run_in_netns(
    script: str, *, timeout: float = 60, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run Python source in fresh mount+network(+PID) namespaces and return its JSON result.

    Inside, before the script starts: ``lo`` is up (127.0.0.1 and ::1), ``/etc/resolv.conf``
    names only 127.0.0.1 (``timeout:1 attempts:2`` so a dead server fails in seconds, not
    tens of seconds), ``/etc/hosts`` holds only ``localhost`` (so no host entry can answer a
    test name before DNS is asked), and ``hosts:`` in nsswitch.conf is ``files dns``.

    The script runs under ``sys.executable`` with this module importable as ``netns``; its
    environment is the caller's minus proxy, glibc-resolver and ``PYTHONDNSCACHE*`` variables,
    plus ``env``. It must print a JSON object as its last line of stdout, which is returned.
    A non-zero exit, a timeout or a missing/invalid JSON line raises AssertionError carrying
    the captured stdout and stderr.
    """
    unshare = _find_tool("unshare")
    if unshare is None:
        raise AssertionError("unshare not found; call require_e2e() first")
    with tempfile.TemporaryDirectory(prefix="dnscache-netns-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "resolv.conf").write_text(_RESOLV_CONF)
        (tmp / "hosts").write_text(_HOSTS)
        nsswitch = _nsswitch_text()
        if nsswitch is not None:
            (tmp / "nsswitch.conf").write_text(nsswitch)
        script_path = tmp / "netns_script.py"
        script_path.write_text(script)
        argv = [
            unshare,
            *_UNSHARE_FLAGS,
            "--",
            "/bin/sh",
            "-c",
            _BOOTSTRAP_SH,
            "netns-bootstrap",
            str(tmp / "resolv.conf"),
            str(tmp / "hosts"),
            str(tmp / "nsswitch.conf") if nsswitch is not None else "",
            sys.executable,
            "-c",
            _RUNNER_PY,
            str(script_path),
        ]
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                cwd=tmpdir,
                env=_script_env(tmpdir, env),
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"namespace script timed out after {timeout}s\n"
                + _format_output(exc.stdout, exc.stderr)
            ) from None
    output = _format_output(proc.stdout, proc.stderr)
    if proc.returncode != 0:
        raise AssertionError(f"namespace script exited with status {proc.returncode}\n{output}")
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise AssertionError(f"namespace script printed nothing\n{output}")
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError:
        raise AssertionError(f"last stdout line of the script is not JSON\n{output}") from None
    if not isinstance(result, dict):
        raise AssertionError(f"last stdout line of the script is not a JSON object\n{output}")
    return result


# --------------------------------------------------------------------------------------------
# Inside the namespace
# --------------------------------------------------------------------------------------------

_PROBE_SUFFIX = ".probe.netns.invalid"
_QUERY_LINE = re.compile(r"\bquery\[(?P<qtype>[A-Za-z0-9]+)\] (?P<name>\S+) from ")
_START_TIMEOUT = 10.0


def _require_inside_netns() -> None:
    if os.environ.get(ENV_IN_NETNS) != "1":
        raise RuntimeError(
            "this helper only runs inside run_in_netns(): outside it would bind the host's "
            "DNS port or serve on the host's network"
        )


def _normalise_name(name: str) -> str:
    return name.rstrip(".").lower()


def _validate_records(records: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Check names and insist on loopback addresses.

    Loopback only, because a client of these records will connect to what they say: any
    other address would send test traffic somewhere real.
    """
    checked: dict[str, list[str]] = {}
    for name, addresses in records.items():
        if not name or any(ch.isspace() for ch in name) or name.startswith("#"):
            raise ValueError(f"invalid host name {name!r}")
        if _normalise_name(name).endswith(_PROBE_SUFFIX):
            raise ValueError(f"{name!r} is reserved for the harness's readiness probes")
        if not addresses:
            raise ValueError(f"{name!r} has no addresses")
        for address in addresses:
            if not ipaddress.ip_address(address).is_loopback:
                raise ValueError(f"{name!r}: {address} is not a loopback address")
        checked[name] = list(addresses)
    return checked


def _dns_query_a(name: str, port: int, timeout: float) -> tuple[int, int] | None:
    """Send one A query to 127.0.0.1:port; return (rcode, answer count), or None if no reply.

    Hand-rolled (a dozen lines of RFC 1035) so the harness does not depend on the DNS library
    the code under test uses.
    """
    qid = int.from_bytes(os.urandom(2), "big")
    qname = b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.split("."))
    packet = struct.pack("!6H", qid, 0x0100, 1, 0, 0, 0) + qname + b"\0" + struct.pack("!2H", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        # Connected, so "nothing listening yet" comes back at once as ConnectionRefusedError.
        sock.connect(("127.0.0.1", port))
        try:
            sock.send(packet)
            while True:
                reply = sock.recv(4096)
                if len(reply) >= 12:
                    rid, flags, _qd, ancount = struct.unpack("!4H", reply[:8])
                    if rid == qid and flags & 0x8000:
                        return flags & 0x000F, ancount
        except (TimeoutError, ConnectionRefusedError):
            return None


class Dnsmasq:
    """A dnsmasq serving fixed records on 127.0.0.1, with its query log.

    Records are served from an ``--addn-hosts`` file rather than ``--host-record`` flags: a
    hosts file allows any number of addresses per family, and it can be swapped atomically and
    re-read on SIGHUP, so :meth:`set_records` changes answers without a window in which the
    server is down (use :meth:`restart` when you want that window). Answers carry
    ``--local-ttl`` as their TTL. ``--local=/#/`` makes dnsmasq authoritative for every name,
    so unknown names are NXDOMAIN and a missing family is NODATA (both without an SOA),
    instead of REFUSED ("not ready") as a forwarder with no upstream would answer.

    Readiness (after start, restart and set_records) is awaited by querying a name that is
    unique to each version of the hosts file, so it proves the new records are loaded, and it
    is ignored by :meth:`queries`.
    """

    def __init__(self, records: Mapping[str, list[str]], *, ttl: int, port: int) -> None:
        _require_inside_netns()
        binary = _find_tool("dnsmasq")
        if binary is None:
            raise RuntimeError("dnsmasq not found")
        self._binary = binary
        self.records = _validate_records(records)
        self.ttl = ttl
        self.port = port
        self.address = "127.0.0.1"
        self.workdir = Path(tempfile.mkdtemp(prefix="dnsmasq-"))
        self.hosts_path = self.workdir / "records.hosts"
        self.log_path = self.workdir / "dnsmasq.log"
        self.stderr_path = self.workdir / "dnsmasq.stderr"
        self._generation = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False

    # -- lifecycle -----------------------------------------------------------------------

    def _argv(self) -> list[str]:
        return [
            self._binary,
            "--keep-in-foreground",  # -k: stay our child so we can signal and reap it
            "--conf-file=/dev/null",  # ignore /etc/dnsmasq.conf and /etc/dnsmasq.d
            "--pid-file=",  # no pid file: /run is shared with the host and other runs
            "--user=root",  # don't drop to nobody: it could not re-read our 0700 workdir
            "--no-resolv",  # no upstream servers: never forward anything anywhere
            "--no-hosts",  # ignore /etc/hosts; our records come from the file below
            f"--addn-hosts={self.hosts_path}",
            "--local=/#/",  # authoritative for all names: NXDOMAIN/NODATA, never REFUSED
            f"--listen-address={self.address}",
            "--bind-interfaces",  # bind 127.0.0.1 only, not the wildcard address
            f"--port={self.port}",
            f"--local-ttl={self.ttl}",
            "--log-queries",
            f"--log-facility={self.log_path}",
        ]

    def _probe_name(self) -> str:
        return f"gen{self._generation}{_PROBE_SUFFIX}"

    def _write_hosts(self) -> None:
        lines = [f"{address} {name}" for name, addrs in self.records.items() for address in addrs]
        lines.append(f"127.0.0.1 {self._probe_name()}")
        tmp = self.hosts_path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.hosts_path)  # atomic: a SIGHUP never sees a half-written file

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + _START_TIMEOUT
        name = self._probe_name()
        while time.monotonic() < deadline:
            reply = _dns_query_a(name, self.port, timeout=0.2)
            if reply is not None and reply[0] == 0 and reply[1] > 0:
                return
            try:
                # The pause between polls doubles as a check that dnsmasq is still alive.
                self._proc.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(
                f"dnsmasq exited with status {self._proc.returncode}\n{self._diag()}"
            )
        self.stop()
        raise RuntimeError(f"dnsmasq did not serve {name} within {_START_TIMEOUT}s\n{self._diag()}")

    def _diag(self) -> str:
        parts = []
        for path in (self.stderr_path, self.log_path):
            if path.exists():
                parts.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def start(self) -> Dnsmasq:
        """Start dnsmasq (if not running) and wait until it answers with the current records."""
        if self.running:
            return self
        self._generation += 1
        self._write_hosts()
        with self.stderr_path.open("ab") as stderr:
            self._proc = subprocess.Popen(
                self._argv(), stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr
            )
        self._paused = False
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """SIGTERM dnsmasq and reap it (SIGKILL after 5 s). Safe to call repeatedly.

        The log file is kept, so :meth:`queries` still works after a stop.
        """
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        if self._paused:
            # A stopped process would not act on SIGTERM until continued.
            proc.send_signal(signal.SIGCONT)
            self._paused = False
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self, records: Mapping[str, list[str]] | None = None) -> None:
        """Stop and start again (optionally with new records) on the same port.

        Unlike :meth:`set_records` there is a moment with no server. The log is appended to,
        so query counts are cumulative across restarts.
        """
        if records is not None:
            self.records = _validate_records(records)
        self.stop()
        self.start()

    def set_records(self, records: Mapping[str, list[str]]) -> None:
        """Replace all records without downtime: rewrite the hosts file, SIGHUP, await reload."""
        self.records = _validate_records(records)
        if not self.running:
            self.start()
            return
        if self._paused:
            raise RuntimeError("resume() dnsmasq before changing its records")
        assert self._proc is not None
        self._generation += 1
        self._write_hosts()
        self._proc.send_signal(signal.SIGHUP)
        self._wait_ready()

    def pause(self) -> None:
        """SIGSTOP: queries go unanswered (clients time out) until :meth:`resume`."""
        if self._proc is None or self._paused:
            return
        self._proc.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`; queries sent meanwhile are then answered if still queued."""
        if self._proc is None or not self._paused:
            return
        self._proc.send_signal(signal.SIGCONT)
        self._paused = False

    def __enter__(self) -> Dnsmasq:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- observation ---------------------------------------------------------------------

    def _query_lines(self) -> Iterator[tuple[str, str]]:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return
        for match in _QUERY_LINE.finditer(text):
            name = _normalise_name(match["name"])
            if not name.endswith(_PROBE_SUFFIX):
                yield name, match["qtype"].upper()

    def queries(self, name: str | None = None, qtype: str | None = None) -> int:
        """How many queries dnsmasq received, optionally for one name and/or type ("A", ...).

        Counted from ``query[TYPE] name from ...`` lines of the log. dnsmasq writes each line
        before it sends the answer, so once a client has its answer the count includes it.
        The harness's own readiness probes are not counted.
        """
        want_name = _normalise_name(name) if name is not None else None
        want_type = qtype.upper() if qtype is not None else None
        return sum(
            1
            for got_name, got_type in self._query_lines()
            if (want_name is None or got_name == want_name)
            and (want_type is None or got_type == want_type)
        )


def start_dnsmasq(records: dict[str, list[str]], *, ttl: int = 60, port: int = 53) -> Dnsmasq:
    """Start dnsmasq on 127.0.0.1:port serving ``records`` (name -> loopback IPv4/IPv6 list).

    Returns once it answers. Use it as a context manager so it is stopped even if the script
    fails (the PID namespace kills it anyway when the script ends).
    """
    return Dnsmasq(records, ttl=ttl, port=port).start()


class _OkHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: the script's stderr is what a failing test shows, keep it for real errors.
        pass


class QuietHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer answering 200 "ok" to every GET, serving on a daemon thread.

    ``with server:`` (or :meth:`close`) stops the serving loop and closes the socket.
    """

    daemon_threads = True

    def close(self) -> None:
        self.shutdown()
        self.server_close()

    def __exit__(self, *args: object) -> None:
        self.close()


class _QuietHTTPServer6(QuietHTTPServer):
    address_family = socket.AF_INET6


def start_http_server(host: str = "127.0.0.1", port: int = 0) -> tuple[QuietHTTPServer, int]:
    """Serve 200 "ok" on (host, port) from a daemon thread; return the server and its port."""
    cls = _QuietHTTPServer6 if ":" in host else QuietHTTPServer
    server = cls((host, port), _OkHandler)
    thread = threading.Thread(target=server.serve_forever, name="netns-http", daemon=True)
    thread.start()
    return server, server.server_address[1]
