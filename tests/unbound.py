"""A real shared resolver for the tests: Debian's unbound on loopback, with DoT and DoH.

Like :mod:`netns`, this module has two users: the end-to-end tests run it *inside* a
namespace made by ``netns.run_in_netns`` (so it may take port 53 and 853 there), and the
benchmarks and the unit tests of the encrypted transports run it on free high ports of the
host's loopback. Nothing here touches a file outside its own temporary directory.

* :func:`make_certificates` makes a private CA and a server certificate for ``dns.test``,
  127.0.0.1 and ::1 with the ``openssl`` command (a Debian package, like unbound), so
  clients verify the server exactly as they would a public one, with the CA as bundle.
* :class:`Unbound` writes a configuration (``local-data`` records with their TTLs,
  ``serve-expired: yes``, statistics on, remote control on a Unix socket), starts
  ``unbound -d`` as a child, waits until it answers, and reads its statistics with
  ``unbound-control stats_noreset`` (:meth:`Unbound.stats`): those counters, not anything
  the client says, witness how many queries arrived and over which transport.
* Listeners are chosen per instance: plain UDP/TCP, TLS (``tls-port``) and HTTPS
  (``https-port``, when the build has nghttp2: :func:`has_doh`). A test that proves
  queries arrive encrypted starts one with no plain listener at all.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

_START_TIMEOUT = 15.0
_CONTROL_TIMEOUT = 10.0


def find(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def missing() -> str | None:
    """None when unbound, unbound-control and openssl are installed, else what is missing."""
    for tool in ("unbound", "unbound-control", "openssl"):
        if find(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install unbound openssl)"
    return None


def has_doh() -> bool:
    """Does this unbound serve DNS over HTTPS (built with libnghttp2)?"""
    binary = find("unbound")
    if binary is None:
        return False
    out = subprocess.run(
        [binary, "-V"], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL
    )
    return "nghttp2" in out.stdout


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (racy, as any such helper)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def make_certificates(directory: Path, name: str = "dns.test") -> dict[str, Path]:
    """A private CA (``ca``) and a server key and certificate (``key``, ``cert``) signed by it.

    The server certificate names ``name``, 127.0.0.1 and ::1.
    """
    openssl = find("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not installed")
    d = directory
    paths = {
        "ca": d / "ca.pem",
        "ca_key": d / "ca.key",
        "key": d / "server.key",
        "csr": d / "server.csr",
        "cert": d / "server.pem",
        "ext": d / "server.ext",
    }
    paths["ext"].write_text(
        f"subjectAltName=DNS:{name},IP:127.0.0.1,IP:::1\n"
        "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    commands = [
        [openssl, "req", "-x509", *ec, "-keyout", paths["ca_key"], "-out", paths["ca"],
         "-days", "2", "-subj", "/CN=dnscache test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", *ec, "-keyout", paths["key"], "-out", paths["csr"],
         "-subj", f"/CN={name}"],
        [openssl, "x509", "-req", "-in", paths["csr"], "-CA", paths["ca"],
         "-CAkey", paths["ca_key"], "-CAcreateserial", "-out", paths["cert"], "-days", "2",
         "-extfile", paths["ext"]],
    ]  # fmt: skip
    for argv in commands:
        subprocess.run(
            [str(a) for a in argv],
            check=True,
            capture_output=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    return paths


class Unbound:
    """unbound serving ``records`` ({name: [ip, ...]}) with ``ttl`` from local-data.

    ``port``, ``tls_port`` and ``https_port`` choose the listeners (None: not served).
    Everything is on 127.0.0.1; the work directory holds the configuration, the
    certificates, the control socket and the log.
    """

    def __init__(
        self,
        records: Mapping[str, list[str]],
        *,
        ttl: int = 60,
        port: int | None = None,
        tls_port: int | None = None,
        https_port: int | None = None,
        workdir: Path | None = None,
    ) -> None:
        problem = missing()
        if problem is not None:
            raise RuntimeError(problem)
        self.records = dict(records)
        self.ttl = ttl
        self.port, self.tls_port, self.https_port = port, tls_port, https_port
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="unbound-"))
        self.certs = make_certificates(self.workdir)
        self.conf = self.workdir / "unbound.conf"
        self.control = self.workdir / "control.sock"
        self.log = self.workdir / "unbound.log"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- configuration -------------------------------------------------------------------

    def _config(self) -> str:
        lines = [
            "server:",
            f'  directory: "{self.workdir}"',
            '  chroot: ""',
            '  username: ""',
            '  pidfile: ""',
            f'  logfile: "{self.log}"',
            "  use-syslog: no",
            "  verbosity: 1",
            "  num-threads: 1",
            "  do-ip6: no",
            "  do-daemonize: no",
            '  module-config: "iterator"',  # no DNSSEC validator: no trust anchor to read
            "  access-control: 127.0.0.0/8 allow",
            "  serve-expired: yes",
            "  extended-statistics: yes",
            "  statistics-cumulative: yes",
            f'  tls-service-key: "{self.certs["key"]}"',
            f'  tls-service-pem: "{self.certs["cert"]}"',
            '  local-zone: "test." static',  # unknown test names: NXDOMAIN, never recursion
        ]
        for port in (self.port, self.tls_port, self.https_port):
            if port is not None:
                lines.append(f"  interface: 127.0.0.1@{port}")
        if self.tls_port is not None:
            lines.append(f"  tls-port: {self.tls_port}")
        if self.https_port is not None:
            lines += [f"  https-port: {self.https_port}", '  http-endpoint: "/dns-query"']
            lines.append("  http-notls-downstream: no")
        for name, addresses in self.records.items():
            for address in addresses:
                kind = "AAAA" if ":" in address else "A"
                lines.append(f'  local-data: "{name}. {self.ttl} IN {kind} {address}"')
        lines += [
            "remote-control:",
            "  control-enable: yes",
            f'  control-interface: "{self.control}"',
            "  control-use-cert: no",
        ]
        return "\n".join(lines) + "\n"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Unbound:
        if self.running:
            return self
        self.conf.write_text(self._config())
        binary = find("unbound")
        assert binary is not None
        with (self.workdir / "unbound.stderr").open("ab") as err:
            self._proc = subprocess.Popen(
                [binary, "-d", "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"unbound exited with {self._proc.returncode}\n{self.diag()}")
            if self._control_ok():
                return
            time.sleep(0.05)
        raise RuntimeError(f"unbound did not start within {_START_TIMEOUT}s\n{self.diag()}")

    def _control_ok(self) -> bool:
        try:
            self._control("status")
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return True

    def diag(self) -> str:
        parts = []
        for path in (self.workdir / "unbound.stderr", self.log):
            if path.exists():
                parts.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """SIGTERM and reap (SIGKILL after 5 s). Statistics start again at the next start."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Unbound:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- observation ---------------------------------------------------------------------

    def _control(self, *command: str) -> str:
        binary = find("unbound-control")
        assert binary is not None
        out = subprocess.run(
            [binary, "-c", str(self.conf), *command],
            capture_output=True,
            text=True,
            timeout=_CONTROL_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        if out.returncode != 0:
            raise RuntimeError(f"unbound-control {' '.join(command)}: {out.stderr or out.stdout}")
        return out.stdout

    def stats(self) -> dict[str, float]:
        """unbound's counters: ``total.num.queries``, ``num.query.type.A``, ``num.query.tls``..."""
        values: dict[str, float] = {}
        for line in self._control("stats_noreset").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                try:
                    values[key.strip()] = float(value)
                except ValueError:
                    continue
        return values

    def queries(self, qtype: str | None = None) -> int:
        """Queries unbound received (of one type: "A", "AAAA"), over every transport."""
        stats = self.stats()
        key = f"num.query.type.{qtype}" if qtype else "total.num.queries"
        return int(stats.get(key, 0))

    @property
    def tls_nameserver(self) -> str:
        return f"tls://127.0.0.1:{self.tls_port}#dns.test"

    @property
    def https_nameserver(self) -> str:
        return f"https://127.0.0.1:{self.https_port}/dns-query#dns.test"

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"


__all__ = ["Unbound", "free_port", "has_doh", "make_certificates", "missing"]
