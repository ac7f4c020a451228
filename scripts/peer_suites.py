#!/usr/bin/env python3
"""Other projects' test suites as dnscache's own test (issue 10, item 7).

The promise of ``PYTHONDNSCACHE=1`` is that nothing changes but speed. The most demanding
users of ``socket.getaddrinfo`` and ``socket.create_connection`` we know are the test suites
of the HTTP clients themselves: they mock the resolver, subclass sockets, count threads,
assert on log records and turn every warning into an error. So we run them, as their
maintainers published them, twice each: without and with the variable, and fail on any
test whose outcome changes.

How, and why:

- The projects come from their sdists on the package index, at the exact versions in
  PROJECTS below (their tests ship in the sdist, and CI reaches the package index only).
  Each gets a venv of its own with the project built from that sdist, the test
  requirements it needs, and dnscache built as a wheel from this repository: a user meets
  dnscache as an installed wheel with its ``.pth``, never as an editable checkout.
- Every pytest run happens in a new network namespace with only loopback up
  (``unshare -n``): the suites' own servers work, nothing reaches the internet, and a test
  that needs the internet fails the same way in both runs. A private mount namespace gives
  it an /etc/hosts where localhost has both loopback addresses (EXTRA_HOSTS). A pytest
  still there a minute after writing its results is stuck at exit: it is killed, and that
  is reported (a hang with the variable only counts as a difference).
- Outcomes are read per test from ``--junitxml``. A test whose outcome differs is run again
  on its own, RERUNS times in each mode. A difference that holds is a difference. An
  outcome seen with the variable but never without is one too (dnscache made the test
  flaky or order-dependent). A test whose outcome also changes without the variable is
  flaky on its own: it is listed as flaky, not counted.
- pytest failing to start with the variable set (as it does in projects with
  ``filterwarnings = error`` while dnscache's plugin collides with its start-up hook) is
  a failure of its own, reported as such; so is a run in which ``PYTHONDNSCACHE=1`` did not
  activate dnscache (a green result would then prove nothing).

Downloads, the projects' venvs and pip's cache live under ``~/.cache/dnscache-peers/``
(``--cache-dir`` or ``DNSCACHE_PEERS_CACHE`` to move it), keyed by the versions below, so a
second run only rebuilds the dnscache wheel and runs the tests. Needs root, ``unshare``
(util-linux), ``ip`` (iproute2) and ``mount``; outside CI their absence skips the script,
under ``CI=true`` it fails. On this 2-core machine: about 5 minutes from an empty cache,
3 to 4 minutes warm.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import heapq
import itertools
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

# The versions under test: the ones in dnscache's dev venv when this script was written.
# All four sdists ship their test suites (checked with
# `pip download --no-deps --no-binary :all: NAME==VERSION`).
VERSIONS: Mapping[str, str] = {
    "urllib3": "2.8.0",
    "requests": "2.34.2",
    "httpx": "0.28.1",
    "aiohttp": "3.14.5",
}


@dataclasses.dataclass(frozen=True)
class Project:
    """How one project's suite is installed and run."""

    name: str
    # Installed as NAME[extras] from the sdist: the extras the suite tests.
    extras: str
    # What the suite imports, pinned so that a new release elsewhere cannot change a result.
    test_requirements: tuple[str, ...]
    # Which tests (paths relative to the sdist's top).
    tests: tuple[str, ...]
    # Other pytest arguments: overrides of the project's own addopts.
    options: tuple[str, ...] = ()
    # A source package at the top of the sdist (flat layout): removed from the test tree
    # so that the tests import the installed package, not the unbuilt source.
    flat_package: str | None = None
    uninstall: tuple[str, ...] = ()

    @property
    def version(self) -> str:
        return VERSIONS[self.name]


# In the order their runs queue for a process slot: the longest suite first.
PROJECTS: tuple[Project, ...] = (
    Project(
        name="urllib3",
        extras="brotli,zstd,socks,h2",
        # urllib3's [dependency-groups] test, and trustme/cryptography for its dummyserver.
        # Its own CI takes hypercorn from a fork (tool.uv.sources); the index has the
        # release, which is what a downstream packager uses too.
        test_requirements=(
            "anyio[trio]==4.16.0",
            "cryptography==50.0.2",
            "h2==4.4.1",
            "httpx==0.28.1",
            "hypercorn==0.18.0",
            "pyopenssl==26.4.0",
            "pysocks==1.7.1",
            "pytest==9.2.0",
            "pytest-socket==0.8.1",
            "pytest-timeout==2.4.0",
            "quart==0.22.0",
            "quart-trio==0.12.0",
            "trio==0.35.0",
            "trustme==1.2.1",
        ),
        tests=("test",),
    ),
    Project(
        name="aiohttp",
        extras="speedups",
        # From requirements/test-common.in, at the pins of requirements/test-common.txt;
        # without coverage, mypy, codspeed (benchmarks) and docker (autobahn).
        test_requirements=(
            "blockbuster==1.5.29",
            # pytest.ini's filterwarnings names a coverage warning: without it pytest stops.
            "coverage==7.17.5",
            "freezegun==1.5.5",
            "isal==1.9.1",
            "proxy.py==2.4.10",
            "pytest==9.2.0",
            "pytest-mock==3.17.0",
            "pytest-timeout==2.4.0",
            "trustme==1.2.1",
            "uvloop==0.23.0",
            "zlib-ng==1.1.0",
        ),
        # The modules that connect and resolve. pytest.ini's addopts would add xdist,
        # coverage and doctests of the (removed) source tree; keep only its marker filter
        # and --strict-markers.
        tests=(
            "tests/test_connector.py",
            "tests/test_resolver.py",
            "tests/test_client_functional.py",
        ),
        options=(
            "-o",
            "addopts=",
            "--strict-markers",
            "-m",
            "not dev_mode and not autobahn and not internal",
        ),
        flat_package="aiohttp",
        # aiodns (from the speedups extra, with Brotli and zstd) would answer aiohttp's
        # lookups itself; without it they go through loop.getaddrinfo, which is ours.
        uninstall=("aiodns",),
    ),
    Project(
        name="requests",
        extras="socks",
        # requests' [dependency-groups] test, less coverage and xdist.
        test_requirements=(
            "httpbin==0.10.4",
            "pytest==9.2.0",
            "pytest-httpbin==2.1.0",
            "pytest-mock==3.17.0",
            "pytest-timeout==2.4.0",
            "trustme==1.2.1",
        ),
        # Drop addopts' --doctest-modules: the doctests live in src/, which is not in the
        # test tree (the installed package is what we test).
        tests=("tests",),
        options=("-o", "addopts="),
    ),
    Project(
        name="httpx",
        extras="brotli,cli,http2,socks,zstd",
        # The sdist has no requirements file: these are what tests/ imports, at the versions
        # of httpx's own pins for this release where today's fail its suite (chardet 6+
        # names encodings differently, click 8.2+ deprecates what test_main uses, uvicorn
        # and pytest of today change what its caplog tests see).
        test_requirements=(
            "chardet==5.2.0",
            "click==8.1.8",
            "cryptography==50.0.2",
            "pytest==8.3.4",
            "pytest-timeout==2.4.0",
            "trio==0.27.0",
            "trustme==1.2.1",
            "uvicorn==0.32.1",
        ),
        tests=("tests",),
        flat_package="httpx",
    ),
)

# Tests left out, with the reason for each: (project, node id prefix, reason).
_TARPIT_HANG = (
    "needs a route to TARPIT_HOST (10.255.255.1): offline, connect fails at once instead of "
    "timing out, and the test's thread pool either fails it or blocks pytest's exit for good; "
    "seen both ways, without dnscache too"
)
DESELECTED: tuple[tuple[str, str, str], ...] = tuple(
    (
        "urllib3",
        f"test/{module}::TestHTTPS_{tls}::test_http2_probe_blocked_per_thread",
        _TARPIT_HANG,
    )
    for module in ("with_dummyserver/test_https.py", "contrib/test_pyopenssl.py")
    for tls in ("TLSv1_2", "TLSv1_3")
)

# How often a differing test runs again, on its own, in each mode.
RERUNS = 3
# More differences than this in one project are not re-run (it would take longer than the
# whole suite, and a difference that large is no flake).
MAX_RERUN = 60
# Per test (pytest-timeout): a hang fails one test in bounded time, not the whole run.
TEST_TIMEOUT = 90
# Per process: urllib3's suite, the longest, takes 80 to 110 s on this machine.
RUN_TIMEOUT = 600
# A pytest process still there this long after writing its junit file is stuck at exit.
EXIT_GRACE = 60

# Set-up steps queue first for a process slot (see Gate); then the test runs, in the order
# of PROJECTS.
SETUP_RANK = 0
MODES = ("off", "on")
# Outcomes of a re-run that say nothing about the test itself.
UNKNOWN = frozenset({"not-found", "not-started"})
# What each mode sets. "off" sets nothing.
MODE_ENV: Mapping[str, Mapping[str, str]] = {"off": {}, "on": {"PYTHONDNSCACHE": "1"}}

# Stands for the test tree's path inside test ids (see node_id).
TREE = "{tree}"
REPO = Path(__file__).resolve().parent.parent
# In the namespace, /etc/hosts is this machine's plus what most machines answer for
# localhost (a private bind mount; the real file is never touched): Debian's `::1 localhost`,
# which containers often lack, so the suites' IPv6 and dual-stack tests run; and the
# RFC 6761 `localhost.`, which a resolver would answer but the namespace has none.
EXTRA_HOSTS = (
    "\n# added by dnscache's scripts/peer_suites.py\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "127.0.0.1\tlocalhost.\n"
    "::1\tlocalhost.\n"
)
NETNS_SH = 'mount --bind "$1" /etc/hosts && shift && ip link set lo up && exec "$@"'
# Run in the test venv, in the namespace, in each mode: where dnscache is imported from and
# whether the environment activated it, without importing it when it was not.
PROBE = (
    "import sys; m = sys.modules.get('dnscache'); "
    "print('active' if m is not None and m.is_installed() else 'inactive', "
    "m.__file__ if m is not None else '-')"
)

_print_lock = threading.Lock()
_t0 = time.monotonic()


def say(message: str) -> None:
    with _print_lock:
        print(f"[{time.monotonic() - _t0:6.1f}s] {message}", file=sys.stderr, flush=True)


class Gate:
    """At most `slots` processes at once; the most urgent waiter (lowest rank) goes first.

    Set-up outranks test runs (aiohttp compiles for a minute: waiting behind a suite would
    put that minute on the critical path), and a longer suite outranks a shorter one.
    """

    def __init__(self, slots: int) -> None:
        self._slots = slots
        self._cond = threading.Condition()
        self._queue: list[tuple[int, int]] = []
        self._tickets = itertools.count()

    @contextlib.contextmanager
    def __call__(self, rank: int) -> Iterator[None]:
        ticket = (rank, next(self._tickets))
        with self._cond:
            heapq.heappush(self._queue, ticket)
            self._cond.wait_for(lambda: self._slots > 0 and self._queue[0] == ticket)
            heapq.heappop(self._queue)
            self._slots -= 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._slots += 1
                self._cond.notify_all()


class SetupError(Exception):
    """A step outside the tests failed: the script cannot say anything about dnscache."""


# --- commands ---------------------------------------------------------------------------


def clean_env(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """The caller's environment without anything that would activate or steer dnscache."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHONDNSCACHE", "DNSCACHE_"))
        and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env.update(extra)
    return env


@dataclasses.dataclass(frozen=True)
class Exit:
    """How a process ended: its status (None if we killed it), its time, and why we did."""

    status: int | None
    seconds: float
    killed: str = ""


def run_logged(
    cmd: Sequence[str | Path],
    log: Path,
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float = RUN_TIMEOUT,
    finished: Path | None = None,
) -> Exit:
    """Run cmd with its output appended to log.

    A new session, so that a kill ends the whole tree (namespace, pytest, its servers).
    Killed after timeout seconds, or EXIT_GRACE seconds after the file `finished` appears
    (pytest writes its junit file last: a process still there after that is stuck at exit,
    joining a thread some test left blocked).
    """
    started = time.monotonic()
    with log.open("ab") as out:
        out.write(("$ " + " ".join(map(str, cmd)) + "\n").encode())
        out.flush()
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
        seen_finished: float | None = None
        killed = ""
        while proc.poll() is None:
            now = time.monotonic()
            if finished is not None and seen_finished is None and finished.exists():
                seen_finished = now
            if seen_finished is not None and now - seen_finished > EXIT_GRACE:
                killed = f"stuck at exit: killed {EXIT_GRACE} s after pytest finished"
            elif now - started > timeout:
                killed = f"killed after {timeout:.0f} s"
            if killed:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=30)
                break
            time.sleep(0.5)
    status = None if killed else proc.returncode
    return Exit(status, time.monotonic() - started, killed)


def tail(log: Path, lines: int = 15) -> str:
    text = log.read_text(errors="replace").splitlines()
    return "\n".join("    " + line for line in text[-lines:])


class Pip:
    """pip with our cache directory and a log; every failure is a SetupError."""

    def __init__(self, cache: Path, gate: Gate) -> None:
        self.env = clean_env(
            {
                "PIP_CACHE_DIR": str(cache / "pip"),
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "PIP_NO_INPUT": "1",
            }
        )
        self.gate = gate

    def __call__(self, python: Path | str, args: Sequence[str | Path], log: Path) -> None:
        with self.gate(SETUP_RANK):
            done = run_logged([python, "-m", "pip", *args], log, env=self.env)
        if done.status != 0:
            raise SetupError(f"pip {args[0]} failed (log: {log}):\n{tail(log)}")


def in_namespace(cmd: Sequence[str | Path], hosts: Path) -> list[str | Path]:
    """cmd in new network and mount namespaces: loopback only, hosts as /etc/hosts."""
    return ["unshare", "--net", "--mount", "--", "sh", "-c", NETNS_SH, "sh", hosts, *cmd]


def namespace_problem(hosts: Path) -> str | None:
    """Why loopback-only namespaces are unavailable here, or None."""
    if os.geteuid() != 0:
        return "not root (unshare -n needs CAP_SYS_ADMIN)"
    for tool, package in (("unshare", "util-linux"), ("ip", "iproute2"), ("mount", "mount")):
        if shutil.which(tool) is None:
            return f"no `{tool}` on PATH (Debian package {package})"
    try:
        probe = subprocess.run(
            in_namespace(["true"], hosts), capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return "unshare -n did not finish in 30 s"
    if probe.returncode != 0:
        return f"unshare -n failed: {probe.stderr.strip()}"
    return None


# --- artefacts --------------------------------------------------------------------------


def download_sdist(project: Project, cache: Path, pip: Pip, log: Path) -> Path:
    target = cache / "sdists" / f"{project.name}-{project.version}.tar.gz"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        pip(
            sys.executable,
            [
                "download",
                "--no-deps",
                "--no-binary",
                project.name,
                "-d",
                tmp,
                f"{project.name}=={project.version}",
            ],
            log,
        )
        found = [p for p in Path(tmp).iterdir() if p.name.endswith(".tar.gz")]
        if len(found) != 1:
            raise SetupError(f"{project.name}: expected one sdist, pip gave {found}")
        os.replace(found[0], target)
    return target


def build_wheel(out: Path, pip: Pip, log: Path) -> Path:
    pip(sys.executable, ["wheel", "--no-deps", "-w", out, REPO], log)
    wheels = sorted(out.glob("pydnscache-*.whl"))
    if len(wheels) != 1:
        raise SetupError(f"expected one pydnscache wheel in {out}, found {wheels}")
    return wheels[0]


def venv_key(project: Project) -> str:
    spec = "\n".join(
        [
            sys.version,
            project.name,
            project.version,
            project.extras,
            *project.test_requirements,
            *project.uninstall,
        ]
    )
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


def project_venv(project: Project, sdist: Path, cache: Path, pip: Pip, log: Path) -> Path:
    """The project's venv: built from its sdist with its test requirements, reused."""
    venv = cache / "venvs" / f"{project.name}-{project.version}-{venv_key(project)}"
    ready = venv / ".ready"
    if ready.is_file():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    say(f"{project.name}: building its venv (from {sdist.name})")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    python = venv / "bin" / "python"
    target = f"{project.name}[{project.extras}] @ {sdist.as_uri()}"
    if not project.extras:
        target = f"{project.name} @ {sdist.as_uri()}"
    pip(python, ["install", "-q", target, *project.test_requirements], log)
    if project.uninstall:
        pip(python, ["uninstall", "-y", *project.uninstall], log)
    ready.write_text("ok\n")
    return venv


def install_wheel(venv: Path, wheel: Path, pip: Pip, log: Path) -> None:
    """This run's dnscache in the project's venv (replacing the last run's)."""
    python = venv / "bin" / "python"
    pip(python, ["uninstall", "-y", "-q", "pydnscache"], log)
    pip(python, ["install", "-q", wheel], log)


def test_tree(sdist: Path, project: Project, dest: Path) -> Path:
    """A fresh copy of the sdist's tree to run the tests in, without a flat source package."""
    dest.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # Python < 3.11.4: the sdist comes from the index we trust for everything else
            tar.extractall(dest)
    (root,) = dest.iterdir()
    if project.flat_package:
        shutil.rmtree(root / project.flat_package)
    return root


# --- outcomes ---------------------------------------------------------------------------


def node_id(classname: str, name: str, root: Path) -> str:
    """The pytest node id behind a junit testcase (classname is the dotted path + classes).

    Each run has a tree of its own, and some parameters hold paths inside it (requests'
    test_utils): those become TREE, so that the same test has the same id in every run.
    """
    parts = classname.split(".") if classname else []
    name = name.replace(str(root), TREE)
    for k in range(len(parts), 0, -1):
        path = "/".join(parts[:k]) + ".py"
        if (root / path).is_file():
            return "::".join([path, *parts[k:], name])
    return "::".join([*parts, name])


def parse_junit(path: Path, root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Per test: its outcome, and the first line of its failure or error message."""
    outcomes: dict[str, str] = {}
    messages: dict[str, str] = {}
    for case in ET.parse(path).iter("testcase"):
        test = node_id(case.get("classname", ""), case.get("name", ""), root)
        kinds: list[str] = []
        for child in case:
            if child.tag in ("failure", "error"):
                kinds.append("failed" if child.tag == "failure" else "error")
                message = child.get("message") or (child.text or "").strip()
                messages.setdefault(test, message.splitlines()[0] if message else "")
            elif child.tag == "skipped":
                kinds.append("xfailed" if child.get("type") == "pytest.xfail" else "skipped")
        outcome = "+".join(sorted(set(kinds))) or "passed"
        if test in outcomes and outcomes[test] != outcome:
            outcome = "+".join(sorted(set(outcomes[test].split("+")) | set(kinds)))
        outcomes[test] = outcome
    return outcomes, messages


@dataclasses.dataclass
class Run:
    """One pytest process: one project, one mode."""

    project: Project
    mode: str
    log: Path
    status: int | None = None
    seconds: float = 0.0
    started: bool = False
    activation: str = ""
    outcomes: dict[str, str] = dataclasses.field(default_factory=dict)
    messages: dict[str, str] = dataclasses.field(default_factory=dict)
    why_not_started: str = ""
    # Why we killed it, if we did (see run_logged).
    killed: str = ""

    def counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for outcome in self.outcomes.values():
            kinds = outcome.split("+")
            if "error" in kinds:
                counts["error"] += 1
            elif "failed" in kinds:
                counts["failed"] += 1
            elif "skipped" in kinds or "xfailed" in kinds:
                counts["skipped"] += 1
            else:
                counts["passed"] += 1
        return counts


def start_failure(log: Path) -> str:
    """The line that says why pytest did not start, as well as we can find it."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    for marker in ("PytestAssertRewriteWarning", "Error:", "ERROR:", "error:"):
        for line in lines:
            if marker in line:
                return line[:300]
    return next((line for line in reversed(lines) if line), "no output")[:300]


@dataclasses.dataclass(frozen=True)
class Context:
    """What every project's pipeline shares."""

    cache: Path
    # This run's files: the wheel, test trees, junit files and logs.
    work: Path
    wheel: Path
    pip: Pip
    # Held by every pip or pytest process: --jobs of them at once.
    gate: Gate
    hosts: Path
    extra_args: tuple[str, ...]


@dataclasses.dataclass
class Suite:
    """One project's suite, set up: its runs and re-runs."""

    project: Project
    ctx: Context
    venv: Path = Path()
    sdist: Path = Path()
    runs: dict[str, Run] = dataclasses.field(default_factory=dict)
    reruns: dict[str, dict[str, list[str]]] = dataclasses.field(default_factory=dict)
    rerun_skipped: str = ""
    setup_error: str = ""

    @property
    def rank(self) -> int:
        """Its place in the queue for a process slot (see Gate)."""
        return SETUP_RANK + 1 + PROJECTS.index(self.project)

    def pytest(self, mode: str, tag: str, tests: Sequence[str] = ()) -> Run:
        """One pytest run of this suite in mode, in a fresh tree and a fresh namespace."""
        name = f"{self.project.name}-{mode}-{tag}"
        run = Run(self.project, mode, self.ctx.work / f"{name}.log")
        root = test_tree(self.sdist, self.project, self.ctx.work / name)
        junit = self.ctx.work / f"{name}.xml"
        env = clean_env(MODE_ENV[mode])
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        python = self.venv / "bin" / "python"
        probe = run_logged(
            in_namespace([python, "-c", PROBE], self.ctx.hosts),
            run.log,
            env=env,
            cwd=root,
            timeout=120,
        )
        probed = run.log.read_text(errors="replace").splitlines()
        run.activation = probed[-1] if probe.status == 0 and probed else "probe failed"
        selection = [t.replace(TREE, str(root)) for t in tests]
        selection = selection or [*self.project.tests, *self.deselect_args()]
        cmd: list[str | Path] = [
            self.venv / "bin" / "pytest",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            "-o",
            "junit_family=xunit1",
            f"--timeout={TEST_TIMEOUT}",
            "-q",
            *self.project.options,
            *selection,
            *self.ctx.extra_args,
        ]
        with self.ctx.gate(self.rank + (len(PROJECTS) if tests else 0)):
            done = run_logged(
                in_namespace(cmd, self.ctx.hosts), run.log, env=env, cwd=root, finished=junit
            )
        run.status, run.seconds, run.killed = done.status, done.seconds, done.killed
        run.started = junit.is_file()
        if run.started:
            run.outcomes, run.messages = parse_junit(junit, root)
        elif done.killed:
            run.why_not_started = done.killed
        else:
            run.why_not_started = start_failure(run.log)
        return run

    def deselect_args(self) -> list[str]:
        args: list[str] = []
        for project, test, _reason in DESELECTED:
            if project == self.project.name:
                args += ["--deselect", test]
        return args


# --- comparison -------------------------------------------------------------------------


def differing(off: Run, on: Run) -> list[str]:
    tests = set(off.outcomes) | set(on.outcomes)
    return sorted(t for t in tests if off.outcomes.get(t) != on.outcomes.get(t))


def verdict(suite: Suite, test: str) -> str:
    """'differs', 'flaky' (changes without dnscache too, never beyond) or 'differs-flaky'."""
    off_seen = [suite.runs["off"].outcomes.get(test, "absent")]
    on_seen = [suite.runs["on"].outcomes.get(test, "absent")]
    again = suite.reruns.get(test, {})
    # A re-run that did not find or did not start the test tells nothing about it.
    off_seen += [o for o in again.get("off", []) if o not in UNKNOWN]
    on_seen += [o for o in again.get("on", []) if o not in UNKNOWN]
    if len(set(off_seen)) > 1 and set(on_seen) <= set(off_seen):
        return "flaky"
    if len(set(on_seen)) > 1:
        return "differs-flaky"
    return "differs"


def rerun(suite: Suite, tests: list[str]) -> None:
    """Run each differing test again on its own, RERUNS times in each mode."""
    if len(tests) > MAX_RERUN:
        suite.rerun_skipped = f"{len(tests)} differences (> {MAX_RERUN}): not re-run"
        return
    for test in tests:
        suite.reruns[test] = {"off": [], "on": []}
    for round_ in range(RERUNS):
        for mode in MODES:
            run = suite.pytest(mode, f"rerun{round_}", tests)
            for test in tests:
                outcome = run.outcomes.get(test, "not-found") if run.started else "not-started"
                suite.reruns[test][mode].append(outcome)


def problems(suite: Suite) -> int:
    """How many reasons this suite gives to fail."""
    if suite.setup_error:
        return 1
    off, on = suite.runs["off"], suite.runs["on"]
    count = 0
    count += not off.started
    count += not on.started
    count += not off.activation.startswith("inactive")
    count += not on.activation.startswith("active")
    # A run that hangs only with the variable set is a hang dnscache caused.
    count += bool(on.killed) and not off.killed
    if off.started and on.started:
        count += sum(verdict(suite, t) != "flaky" for t in differing(off, on))
    return count


def report(suites: list[Suite]) -> None:
    def pair(a: object, b: object) -> str:
        return f"{a}/{b}"

    header = (
        "project",
        "started",
        "passed",
        "failed",
        "skipped",
        "error",
        "differ",
        "flaky",
        "seconds",
    )
    rows: list[tuple[str, ...]] = [header, ("", "off/on", *(["off/on"] * 4), "", "", "off/on")]
    for suite in suites:
        label = f"{suite.project.name} {suite.project.version}"
        if suite.setup_error:
            rows.append((label, "setup failed", *[""] * 7))
            continue
        off, on = suite.runs["off"], suite.runs["on"]
        oc, nc = off.counts(), on.counts()
        diffs = differing(off, on) if off.started and on.started else []
        flaky = [t for t in diffs if verdict(suite, t) == "flaky"]
        rows.append(
            (
                label,
                pair("yes" if off.started else "NO", "yes" if on.started else "NO"),
                *(pair(oc[k], nc[k]) for k in ("passed", "failed", "skipped", "error")),
                str(len(diffs) - len(flaky)) if diffs or (off.started and on.started) else "-",
                str(len(flaky)),
                pair(f"{off.seconds:.0f}", f"{on.seconds:.0f}"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    print()
    for r in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
    for suite in suites:
        label = f"{suite.project.name} {suite.project.version}"
        if suite.setup_error:
            print(f"\n{label}: set-up failed\n{suite.setup_error}")
            continue
        print(f"\n{label}:")
        for mode in MODES:
            run = suite.runs[mode]
            print(f"  {mode}: dnscache {run.activation}; pytest exit status {run.status}")
            if run.killed:
                print(f"  {mode}: pytest {run.killed}")
            if not run.started:
                print(f"  {mode}: pytest DID NOT START: {run.why_not_started}")
        left_out = [(t, why) for p, t, why in DESELECTED if p == suite.project.name]
        for why in dict.fromkeys(why for _, why in left_out):
            print(f"  deselected (both modes), because it {why}:")
            for test, _ in (entry for entry in left_out if entry[1] == why):
                print(f"        {test}")
        off, on = suite.runs["off"], suite.runs["on"]
        if not (off.started and on.started):
            continue
        diffs = differing(off, on)
        if suite.rerun_skipped:
            print(f"  {suite.rerun_skipped}")
        if not diffs:
            print("  no test changed outcome")
        for test in diffs:
            kind = verdict(suite, test)
            again = suite.reruns.get(test)
            line = (
                f"  {'FLAKY' if kind == 'flaky' else 'DIFF '} {test}\n"
                f"        off: {off.outcomes.get(test, 'absent')}"
                f"  on: {on.outcomes.get(test, 'absent')}"
            )
            if again:
                line += f"  (re-runs off: {','.join(again['off'])}; on: {','.join(again['on'])})"
            if kind == "differs-flaky":
                line += "\n        outcome with PYTHONDNSCACHE=1 varies; never so without it"
            message = on.messages.get(test) or off.messages.get(test)
            if message:
                line += f"\n        {message[:200]}"
            print(line)


# --- main -------------------------------------------------------------------------------


def cache_dir(option: str | None) -> Path:
    if option:
        return Path(option)
    if os.environ.get("DNSCACHE_PEERS_CACHE"):
        return Path(os.environ["DNSCACHE_PEERS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dnscache-peers"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    names = [p.name for p in PROJECTS]
    parser.add_argument(
        "--projects",
        default=",".join(names),
        help=f"comma-separated subset of {','.join(names)} (default: all)",
    )
    parser.add_argument(
        "--wheel", type=Path, help="test this dnscache wheel instead of building one"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep this run's test trees, junit files and logs, and say where (the venvs "
        "are always kept: they are the cache)",
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="processes (pip or pytest) at once (default 2)"
    )
    parser.add_argument(
        "--cache-dir", help="default: $DNSCACHE_PEERS_CACHE or ~/.cache/dnscache-peers"
    )
    parser.add_argument(
        "--pytest-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for every pytest run, both modes (experiments only)",
    )
    args = parser.parse_args(argv)
    unknown = set(args.projects.split(",")) - set(names)
    if unknown:
        parser.error(f"unknown project(s): {', '.join(sorted(unknown))}")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return args


def pipeline(project: Project, ctx: Context) -> Suite:
    """Set up one project, run both modes side by side, then re-run what differs."""
    suite = Suite(project, ctx)
    log = ctx.work / f"{project.name}-setup.log"
    try:
        suite.sdist = download_sdist(project, ctx.cache, ctx.pip, log)
        suite.venv = project_venv(project, suite.sdist, ctx.cache, ctx.pip, log)
        install_wheel(suite.venv, ctx.wheel, ctx.pip, log)
    except (SetupError, OSError, subprocess.SubprocessError) as exc:
        say(f"{project.name}: set-up failed")
        suite.setup_error = str(exc)
        return suite
    say(f"{project.name}: running its suite in both modes")
    threads = [
        threading.Thread(
            target=lambda m=mode: suite.runs.__setitem__(m, suite.pytest(m, "full")),
            name=f"{project.name}-{mode}",
        )
        for mode in MODES
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    off, on = suite.runs["off"], suite.runs["on"]
    say(
        f"{project.name}: off {off.seconds:.0f} s, on {on.seconds:.0f} s"
        + ("" if on.started else " (pytest did not start with PYTHONDNSCACHE=1)")
    )
    if off.started and on.started:
        diffs = differing(off, on)
        if diffs:
            say(f"{project.name}: {len(diffs)} tests differ; re-running them")
            rerun(suite, diffs)
    return suite


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    cache = cache_dir(args.cache_dir)
    (cache / "runs").mkdir(parents=True, exist_ok=True)
    hosts = cache / "hosts"
    hosts.write_text(Path("/etc/hosts").read_text() + EXTRA_HOSTS)
    problem = namespace_problem(hosts)
    if problem is not None:
        if os.environ.get("CI") == "true":
            print(f"peer suites: FAILED: {problem} (required under CI=true)", file=sys.stderr)
            return 1
        print(f"peer suites: SKIPPED: {problem}", file=sys.stderr)
        return 0
    work = Path(tempfile.mkdtemp(prefix="run-", dir=cache / "runs"))
    gate = Gate(args.jobs)
    pip = Pip(cache, gate)
    selected = [p for p in PROJECTS if p.name in args.projects.split(",")]
    try:
        if args.wheel:
            wheel = args.wheel.resolve()
        else:
            say("building the dnscache wheel")
            wheel = build_wheel(work / "wheel", pip, work / "wheel.log")
        ctx = Context(cache, work, wheel, pip, gate, hosts, tuple(args.pytest_arg))
        with concurrent.futures.ThreadPoolExecutor(len(selected)) as pool:
            suites = list(pool.map(lambda p: pipeline(p, ctx), selected))
        report(suites)
        if ctx.extra_args:
            print(f"\nEXPERIMENT: every pytest run had extra arguments {list(ctx.extra_args)}")
        failures = sum(problems(s) for s in suites)
        on_runs = [(s.project.name, s.runs.get("on")) for s in suites]
        print(
            "\npytest started with PYTHONDNSCACHE=1: "
            + ", ".join(f"{name} {'yes' if r and r.started else 'NO'}" for name, r in on_runs)
        )
        print(f"\npeer suites: {failures} problem(s) in {time.monotonic() - started:.0f} s")
        # The plain closing line CI reads: projects whose suites agree in both modes.
        bad = sum(problems(s) > 0 for s in suites)
        print(f"projects: {len(suites) - bad} passed, {bad} failed")
        return 1 if failures else 0
    except SetupError as exc:
        print(f"peer suites: set-up failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"peer suites: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
