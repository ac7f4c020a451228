"""The control endpoint, for real: a second Python process with ``PYTHONDNSCACHE_CONTROL=1``
resolving against the loopback DNS server, asked by ``dnscache ps/stats/dump/flush``.

Every process here has a timeout; every socket is a real Unix socket in a private
runtime directory made for the test (``XDG_RUNTIME_DIR``). The other-user tests
run a client as ``nobody`` (root's ``os.setuid`` in the child, after its imports).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

import dnscache
import netns
from dnscache._activation import control, rundir
from dnscache._tools.dnsserver import DNSServer

TIMEOUT = 60
NOBODY = 65534

# The process under inspection: resolves what it reads on stdin, one name per line
# ("connect NAME PORT" opens and closes a connection), answers "ok" after each, and
# exits at end of input. SIGALRM bounds its life if the test dies first.
SERVER = textwrap.dedent(
    """
    import os, signal, socket, sys
    signal.alarm(120)
    import dnscache
    print("ready", os.getpid(), flush=True)
    for line in sys.stdin:
        words = line.split()
        try:
            if words[0] == "resolve":
                socket.getaddrinfo(words[1], 80, socket.AF_INET)
            elif words[0] == "connect":
                socket.create_connection((words[1], int(words[2])), timeout=5).close()
        except OSError as exc:
            print("error", exc, flush=True)
            continue
        print("ok", flush=True)
    """
)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A private XDG_RUNTIME_DIR for the test's processes (the spec's mode 0700)."""
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    return path


def base_env(run_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")}
    env["XDG_RUNTIME_DIR"] = str(run_dir)
    env.update(extra)
    return env


def cli(run_dir: Path, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dnscache", *args],
        capture_output=True,
        text=True,
        env=base_env(run_dir),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def cli_json(run_dir: Path, *args: str) -> Any:
    proc = cli(run_dir, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


class Child:
    """A Python process with dnscache and its control endpoint on, driven through stdin."""

    def __init__(self, run_dir: Path, server: DNSServer, script: str = SERVER) -> None:
        env = base_env(
            run_dir,
            PYTHONDNSCACHE="1",
            PYTHONDNSCACHE_CONTROL="1",
            PYTHONDNSCACHE_BACKEND="dnspython",
            PYTHONDNSCACHE_NAMESERVERS=server.nameserver,
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, "an-argument"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.stderr: str | None = None
        words = self.readline().split()
        assert words[:1] == ["ready"], words
        self.pid = int(words[1])
        self.socket = run_dir / "dnscache" / f"{self.pid}.sock"

    def readline(self, timeout: float = 30) -> str:
        """One line of the child's stdout, within ``timeout`` seconds."""
        box: list[str] = []
        stdout: IO[str] | None = self.proc.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        assert box, f"no line from the child within {timeout} s"
        return box[0]

    def do(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.readline().strip()

    def stop(self) -> str:
        """End the child (end of input), wait for it; its stderr. Idempotent."""
        if self.stderr is None:
            try:  # communicate() closes stdin: end of input
                _, err = self.proc.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _, err = self.proc.communicate(timeout=TIMEOUT)
            self.stderr = err
        return self.stderr


@pytest.fixture
def child(run_dir: Path, dns_server: DNSServer) -> Iterator[Child]:
    dns_server.set("api.ctl.test", a=["127.0.0.10"], ttl=300)
    dns_server.set("db.ctl.test", a=["127.0.0.11"], ttl=120)
    c = Child(run_dir, dns_server)
    try:
        yield c
    finally:
        err = c.stop()
        assert "Traceback" not in err, err


# --- a real second process ---


def test_ps_stats_dump_flush_against_a_running_process(
    run_dir: Path, child: Child, dns_server: DNSServer
) -> None:
    assert child.do("resolve api.ctl.test") == "ok"
    assert child.do("resolve api.ctl.test") == "ok"  # a hit
    assert child.do("resolve db.ctl.test") == "ok"
    assert oct(child.socket.stat().st_mode & 0o777) == "0o600"
    assert oct((run_dir / "dnscache").stat().st_mode & 0o777) == "0o700"

    (process,) = cli_json(run_dir, "ps")["processes"]
    assert process["pid"] == child.pid
    assert process["argv"] == ["-c", "an-argument"]
    assert process["entries"] == 2
    assert process["uptime"] >= 0
    assert process["responding"] is True

    stats = cli_json(run_dir, "stats", str(child.pid))
    assert stats["pid"] == child.pid
    assert {k: stats["stats"][k] for k in ("hits", "misses", "lookups", "entries")} == {
        "hits": 1,
        "misses": 2,
        "lookups": 2,
        "entries": 2,
    }

    dump = cli_json(run_dir, "dump", str(child.pid))
    entries = {e["host"]: e for e in dump["entries"]}
    assert set(entries) == {"api.ctl.test", "db.ctl.test"}
    api = entries["api.ctl.test"]
    assert (api["family"], api["source"], api["state"], api["addresses"]) == (
        4,
        "upstream",
        "fresh",
        ["127.0.0.10"],
    )
    assert 0 < api["ttl"] <= 300
    assert isinstance(api["hits"], int)  # the engine counts slow-path hits only (see report)
    assert 0 < entries["db.ctl.test"]["ttl"] <= 120

    text = cli(run_dir, "dump", str(child.pid), "API.ctl.test.")
    assert text.returncode == 0, text.stderr
    header, row = text.stdout.splitlines()
    assert header.split() == ["HOST", "FAMILY", "SOURCE", "STATE", "TTL", "HITS", "ADDRESSES"]
    assert row.split()[:4] == ["api.ctl.test", "inet", "upstream", "fresh"]
    assert row.split()[-1] == "127.0.0.10"

    # flush one host: the process asks the server again on its next lookup
    assert cli_json(run_dir, "flush", str(child.pid), "api.ctl.test")["flushed"] == 1
    before = dns_server.queries("api.ctl.test")
    assert child.do("resolve api.ctl.test") == "ok"
    assert dns_server.queries("api.ctl.test") == before + 1
    assert child.do("resolve db.ctl.test") == "ok"  # still cached
    assert dns_server.queries("db.ctl.test") == 1

    text = cli(run_dir, "flush", str(child.pid))
    assert (text.returncode, text.stdout) == (
        0,
        f"pid {child.pid}: flushed 2 entries (everything)\n",
    )
    assert cli_json(run_dir, "stats", str(child.pid))["stats"]["entries"] == 0

    child.stop()
    assert not child.socket.exists()  # closed at exit, file removed


def test_dump_shows_address_health(run_dir: Path, child: Child, dns_server: DNSServer) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        dns_server.set("web.ctl.test", a=["127.0.0.1"], ttl=300)
        dns_server.set("down.ctl.test", a=["127.0.0.3"], ttl=300)  # nothing there: refused
        assert child.do(f"connect web.ctl.test {port}") == "ok"
        assert child.do(f"connect down.ctl.test {port}").startswith("error")
    dump = cli_json(run_dir, "dump", str(child.pid))
    assert dump["health_available"] is True
    health = {e["host"]: e["health"] for e in dump["entries"]}
    web, down = health["web.ctl.test"]["127.0.0.1"], health["down.ctl.test"]["127.0.0.3"]
    assert web["last_success_ago"] >= 0
    assert web["last_failure_ago"] is None
    assert down["last_failure_ago"] >= 0
    assert down["last_success_ago"] is None
    text = cli(run_dir, "dump", str(child.pid)).stdout
    assert "127.0.0.1(ok " in text
    assert "127.0.0.3(failed " in text


def test_unknown_pid_and_bad_pid(run_dir: Path) -> None:
    proc = cli(run_dir, "stats", "1")
    assert proc.returncode == 1
    assert proc.stderr.startswith("dnscache stats: error: no control endpoint for pid 1 ")
    proc = cli(run_dir, "dump", "not-a-pid")
    assert proc.returncode == 2
    proc = cli(run_dir, "flush", "1", "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["status"] == 1
    assert cli_json(run_dir, "ps") == {"processes": [], "removed_dead_endpoints": []}


def test_a_stopped_process_costs_the_timeout_not_a_hang(run_dir: Path, child: Child) -> None:
    os.kill(child.pid, signal.SIGSTOP)
    try:
        proc = cli(run_dir, "stats", str(child.pid), "--timeout", "0.5")
        assert proc.returncode == 1
        assert proc.stderr == (
            f"dnscache stats: error: pid {child.pid} did not answer within 0.5 s\n"
        )
        (process,) = cli_json(run_dir, "ps", "--timeout", "0.5")["processes"]
        assert (process["pid"], process["responding"]) == (child.pid, False)
        assert child.socket.exists()  # alive: never removed
    finally:
        os.kill(child.pid, signal.SIGCONT)
    assert cli_json(run_dir, "stats", str(child.pid))["pid"] == child.pid


# --- dead sockets ---


def _dead_socket(path: Path) -> None:
    """A socket file nobody listens on, as a killed process leaves it."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))


def test_ps_removes_dead_endpoints(run_dir: Path) -> None:
    directory = run_dir / "dnscache"
    directory.mkdir(mode=0o700)
    gone = directory / f"{_exited_pid()}.sock"
    alive_but_deaf = directory / f"{os.getpid()}.sock"  # our pid: alive, not listening
    _dead_socket(gone)
    _dead_socket(alive_but_deaf)
    (directory / "notes.txt").write_text("not ours to remove\n")
    result = cli_json(run_dir, "ps")
    assert result["processes"] == []
    assert sorted(result["removed_dead_endpoints"]) == sorted([str(gone), str(alive_but_deaf)])
    assert sorted(p.name for p in directory.iterdir()) == ["notes.txt"]


def _exited_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=TIMEOUT)
    return proc.pid


def test_the_next_start_removes_a_killed_processs_socket(
    run_dir: Path, dns_server: DNSServer
) -> None:
    first = Child(run_dir, dns_server)
    first.proc.kill()  # SIGKILL: no atexit, the socket file stays
    first.proc.wait(timeout=TIMEOUT)
    first.stop()
    assert first.socket.exists()
    second = Child(run_dir, dns_server)
    try:
        assert not first.socket.exists()
        assert second.socket.exists()
    finally:
        second.stop()


# --- fork ---

FORKING = textwrap.dedent(
    """
    import os, signal, sys, warnings
    signal.alarm(120)
    warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
    import dnscache
    from dnscache._activation import control
    parent = control.current()
    print("ready", os.getpid(), flush=True)
    pid = os.fork()
    if pid == 0:
        signal.alarm(120)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exit runs atexit
        mine = control.current()
        print("child", os.getpid(), mine is not None and mine is not parent,
              mine.path if mine else "-", flush=True)
        while True:
            signal.pause()
    sys.stdin.readline()
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
    print("child exited", flush=True)
    sys.stdin.readline()
    """
)


def test_a_forked_child_answers_on_its_own_socket_never_the_parents(
    run_dir: Path, dns_server: DNSServer
) -> None:
    parent = Child(run_dir, dns_server, script=FORKING)
    try:
        words = parent.readline().split()
        assert words[0] == "child"
        child_pid, new_handle, child_path = int(words[1]), words[2], words[3]
        assert new_handle == "True"
        assert child_path == str(run_dir / "dnscache" / f"{child_pid}.sock")
        pids = {p["pid"] for p in cli_json(run_dir, "ps")["processes"]}
        assert pids == {parent.pid, child_pid}
        for _ in range(20):  # the parent's socket: only ever the parent answers
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(5)
                sock.connect(str(parent.socket))
                sock.sendall(b'{"command": "hello"}\n')
                assert json.loads(sock.makefile().readline())["pid"] == parent.pid
        assert cli_json(run_dir, "stats", str(child_pid))["pid"] == child_pid
        assert parent.do("stop the child") == "child exited"
        assert not Path(child_path).exists()  # the child removed its own file...
        assert parent.socket.exists()  # ... and not the parent's
        assert _hello_pid(str(parent.socket)) == parent.pid
    finally:
        parent.stop()


# --- another user ---


def _as_nobody(code: str) -> Any:
    """Run ``code`` as nobody (imports first, then setuid); its last stdout line as JSON."""
    script = (
        "import encodings.idna, json, os, socket, struct, sys\n"
        "import dnscache._tools.cli.main, dnscache._activation.rundir\n"
        f"os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})\n" + textwrap.dedent(code)
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.fixture
def shared_run_dir() -> Iterator[Path]:
    """An XDG_RUNTIME_DIR outside pytest's 0700 tree, so perms below it decide who gets in."""
    if os.geteuid() != 0:
        netns.unavailable("the other-user tests need root (to become nobody)")
    top = Path(tempfile.mkdtemp(prefix="dnscache-ctl-"))
    top.chmod(0o755)
    path = top / "run"
    path.mkdir(mode=0o700)
    try:
        yield path
    finally:
        shutil.rmtree(top)


def test_another_user_can_neither_reach_nor_get_an_answer(
    shared_run_dir: Path, dns_server: DNSServer
) -> None:
    c = Child(shared_run_dir, dns_server)
    try:
        path = str(c.socket)
        # 1. The fences: the private directory keeps nobody out.
        reached = _as_nobody(
            f"""
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect({path!r}); print(json.dumps("connected"))
            except OSError as exc:
                print(json.dumps(exc.errno))
            """
        )
        assert reached == 13  # EACCES
        # nobody's own `dnscache ps` does not even look there (not its directory)
        code = (
            "os.environ['XDG_RUNTIME_DIR'] = sys.argv[1]\n"
            "sys.argv[1:] = ['ps', '--json']\n"
            "dnscache._tools.cli.main.main()\n"
        )
        listed = subprocess.run(
            [
                sys.executable,
                "-c",
                "import encodings.idna, gettext, json, locale, os, sys\n"
                "import dnscache._tools.cli.main  # gettext, locale: argparse on 3.13\n"
                "import dnscache._tools.cli.ps, dnscache._tools.cli.endpoint\n"
                f"os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})\n" + code,
                str(shared_run_dir),
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert listed.returncode == 0, listed.stderr
        assert c.pid not in [p["pid"] for p in json.loads(listed.stdout)["processes"]]

        # 2. With the fences opened by hand, SO_PEERCRED still refuses: not one byte.
        shared_run_dir.chmod(0o711)
        (shared_run_dir / "dnscache").chmod(0o711)
        c.socket.chmod(0o666)
        got = _as_nobody(
            f"""
            s = socket.socket(socket.AF_UNIX); s.settimeout(10)
            s.connect({path!r})
            data = b""
            try:  # the server may close first: a broken pipe or a reset, never a reply
                s.sendall(b'{{"command": "hello"}}\\n')
                while chunk := s.recv(4096):
                    data += chunk
            except (BrokenPipeError, ConnectionResetError):
                pass
            print(json.dumps(data.decode()))
            """
        )
        assert got == ""
        # A client refuses a directory others can enter, so close the fences again;
        # the listener has lived on for its own user.
        assert cli(shared_run_dir, "stats", str(c.pid)).returncode == 1
        shared_run_dir.chmod(0o700)
        (shared_run_dir / "dnscache").chmod(0o700)
        c.socket.chmod(0o600)
        assert cli_json(shared_run_dir, "stats", str(c.pid))["pid"] == c.pid
    finally:
        err = c.stop()
    assert "Traceback" not in err


def test_a_directory_others_can_enter_is_never_used(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    assert "lets others in" in (rundir.check_private_dir(str(loose)) or "")
    link = tmp_path / "link"
    link.symlink_to(loose)
    assert "not a directory" in (rundir.check_private_dir(str(link)) or "")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    assert rundir.check_private_dir(str(private)) is None
    if os.geteuid() == 0:
        os.chown(private, NOBODY, NOBODY)
        assert f"owned by uid {NOBODY}" in (rundir.check_private_dir(str(private)) or "")


def test_an_unsafe_xdg_runtime_dir_falls_back_to_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o755)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(loose))
    monkeypatch.delenv(control.ENV, raising=False)
    with dnscache.Resolver() as resolver:
        handle = control.start(resolver)
        try:
            assert Path(handle.path).parent == Path(f"/tmp/dnscache-{os.geteuid()}")
            assert not (loose / "dnscache").exists()
        finally:
            handle.close()
    assert not Path(handle.path).exists()


# --- the listener itself, in this process ---


def _exchange(path: str, data: bytes, *, half_close: bool = True) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        if data:
            sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def _hello_pid(path: str) -> int:
    reply = json.loads(_exchange(path, b'{"command": "hello"}\n'))
    assert reply["ok"] is True
    return int(reply["pid"])


@pytest.fixture
def endpoint(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[control.Handle]:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run_dir))
    with dnscache.Resolver(hosts={"pinned.ctl.test": ["192.0.2.1"]}) as resolver:
        handle = control.start(resolver)
        try:
            yield handle
        finally:
            handle.close()


@pytest.mark.parametrize(
    ("request_bytes", "error"),
    [
        (b"garbage\n", "not JSON"),
        (b"\xff\xfe\n", "not JSON"),
        (b"[1, 2]\n", "a request is a JSON object"),
        (b'{"command": "rm -rf"}\n', "unknown command 'rm -rf'"),
        (b'{"command": "dump", "limit": 0}\n', "limit must be a positive whole number"),
        (b'{"command": "dump", "limit": true}\n', "limit must be a positive whole number"),
        (b'{"command": "flush", "host": 7}\n', "host must be a host name"),
        (b'{"command": "flush", "host": "a\\u0000b"}\n', "host must be a host name"),
        (b'{"command": "hello"}', "request too long, late or unended"),  # no newline, EOF
    ],
)
def test_bad_input_gets_an_error_and_the_listener_lives_on(
    endpoint: control.Handle, request_bytes: bytes, error: str
) -> None:
    reply = json.loads(_exchange(endpoint.path, request_bytes))
    assert reply == {"ok": False, "error": error}
    assert _hello_pid(endpoint.path) == os.getpid()


def test_an_oversized_request_is_cut_off(endpoint: control.Handle) -> None:
    # The server stops reading at MAX_REQUEST: the reply may be lost to the reset that
    # closing on unread data causes, but nothing more is read and the listener goes on.
    try:
        reply = _exchange(endpoint.path, b"x" * (control.MAX_REQUEST * 4) + b"\n")
    except (ConnectionResetError, BrokenPipeError):
        reply = b""
    assert reply in (b"", b'{"ok":false,"error":"request too long, late or unended"}\n')
    assert _hello_pid(endpoint.path) == os.getpid()


def test_a_silent_client_is_dropped_after_the_request_timeout(endpoint: control.Handle) -> None:
    with socket.socket(socket.AF_UNIX) as silent:
        silent.settimeout(control.REQUEST_TIMEOUT + 10)
        silent.connect(endpoint.path)
        reply = silent.makefile("rb").readline()  # sends nothing; the server gives up
    assert json.loads(reply) == {"ok": False, "error": "request too long, late or unended"}
    assert _hello_pid(endpoint.path) == os.getpid()


def test_dump_and_flush_in_process(endpoint: control.Handle) -> None:
    resolver = endpoint.resolver
    resolver.getaddrinfo("pinned.ctl.test", 443)
    reply = json.loads(
        _exchange(endpoint.path, b'{"command": "dump", "host": "PINNED.ctl.test"}\n')
    )
    (entry,) = reply["entries"]
    assert (entry["host"], entry["source"], entry["ttl"], entry["addresses"]) == (
        "pinned.ctl.test",
        "override",
        None,  # forever
        ["192.0.2.1"],
    )
    reply = json.loads(_exchange(endpoint.path, b'{"command": "flush", "host": "other.test"}\n'))
    assert reply["flushed"] == 0
    assert resolver.stats().entries == 1
    reply = json.loads(_exchange(endpoint.path, b'{"command": "flush"}\n'))
    assert reply["flushed"] == 1
    assert resolver.stats().entries == 0


def test_close_stops_the_thread_and_removes_the_file(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run_dir))
    with dnscache.Resolver() as resolver:
        handle = control.start(resolver)
        assert [t.name for t in threading.enumerate()].count(control.THREAD_NAME) == 1
        handle.close()
        handle.close()  # idempotent
    assert control.THREAD_NAME not in [t.name for t in threading.enumerate()]
    assert not Path(handle.path).exists()


# --- only when asked ---


def test_install_opens_and_uninstall_closes_only_when_asked(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run_dir))
    monkeypatch.delenv(control.ENV, raising=False)
    dnscache.install()
    try:
        assert control.current() is None
        assert control.THREAD_NAME not in [t.name for t in threading.enumerate()]
    finally:
        dnscache.uninstall()
    assert not (run_dir / "dnscache").exists()

    dnscache.install(control=True)
    try:
        handle = control.current()
        assert handle is not None and handle.resolver is dnscache.active_resolver()
        assert _hello_pid(handle.path) == os.getpid()
    finally:
        dnscache.uninstall()
    assert control.current() is None
    assert not Path(handle.path).exists()
    assert control.THREAD_NAME not in [t.name for t in threading.enumerate()]

    with dnscache.patched(control=True):  # patched() blocks never open one
        assert control.current() is None


def test_no_thread_and_no_file_in_a_process_that_did_not_ask(run_dir: Path) -> None:
    code = (
        "import socket, threading; socket.getaddrinfo('localhost', 80); "
        "print(sorted(t.name for t in threading.enumerate()))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=base_env(run_dir, PYTHONDNSCACHE="1"),
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    assert control.THREAD_NAME not in proc.stdout
    assert list(run_dir.iterdir()) == []


def test_a_fallback_directory_someone_else_made_is_refused_with_one_warning() -> None:
    # The attack /tmp invites: another user creates /tmp/dnscache-<uid> first. Here root
    # makes nobody's; a process of nobody asking for an endpoint must refuse it, say so
    # once, and run as if it had not asked.
    if os.geteuid() != 0:
        netns.unavailable("needs root (to make a directory for nobody, and become nobody)")
    trap = Path(f"/tmp/dnscache-{NOBODY}")
    if trap.exists():
        netns.unavailable(f"{trap} exists on this machine")
    trap.mkdir(mode=0o777)
    trap.chmod(0o777)
    try:
        code = (
            "import encodings.idna, logging, os, socket, sys, threading\n"
            "import dnscache, dnscache._activation.control, dnscache._activation.patch\n"
            "import dnscache._engine.resolver  # before dropping root: nobody cannot read ~root\n"
            f"os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})\n"
            "os.environ.pop('XDG_RUNTIME_DIR', None)\n"
            "logging.basicConfig(format='%(name)s %(levelname)s: %(message)s')\n"
            "dnscache.install(control=True)\n"
            "socket.getaddrinfo('localhost', 80)\n"
            "print(dnscache._activation.control.current(), "
            "'dnscache-control' in [t.name for t in threading.enumerate()])\n"
            "dnscache.uninstall()\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")},
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "None False\n"
        (warning,) = proc.stderr.splitlines()
        assert warning.startswith(  # through the program's logging: the logger names us
            "dnscache WARNING: no control endpoint (PYTHONDNSCACHE_CONTROL, control=True) was "
            "opened: "
            "no private directory for the control socket"
        )
        assert list(trap.iterdir()) == []
    finally:
        trap.rmdir()


def test_doctor_reports_the_endpoint_of_its_own_process(run_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dnscache", "doctor", "--json"],
        capture_output=True,
        text=True,
        env=base_env(run_dir, PYTHONDNSCACHE="1", PYTHONDNSCACHE_CONTROL="1"),
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stdout
    endpoint = json.loads(proc.stdout)["control"]
    assert endpoint["asked"] is True
    assert endpoint["directory"] == str(run_dir / "dnscache")
    path = Path(endpoint["this_process"])
    assert path.parent == run_dir / "dnscache"
    assert endpoint["endpoints"] == [int(path.name.removesuffix(".sock"))]
    assert not path.exists()  # removed when doctor exited
