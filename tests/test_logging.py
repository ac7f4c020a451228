"""Logging as a library should: a NullHandler, no repeated prefix, one warning per degradation.

The program decides where records go. One that never configured logging gets nothing on
stderr from us (no ``logging.lastResort`` line, no hook traceback); one that did gets
records named by the ``dnscache`` logger, whose messages do not say "dnscache:" again.
Lines written straight to stderr (start-up problems, which have no logger name) keep it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import dnscache
from dnscache._core.logger import log

TIMEOUT = 60


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**environ, **env},
    )


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """What the ``dnscache`` logger emits at DEBUG and above, during the test."""
    got: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record)

    handler = Keep(logging.DEBUG)
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield got
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def warnings_in(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.levelno >= logging.WARNING]


def test_the_logger_has_one_null_handler() -> None:
    nulls = [h for h in logging.getLogger("dnscache").handlers if type(h) is logging.NullHandler]
    assert len(nulls) == 1


def test_a_program_that_never_configured_logging_hears_nothing() -> None:
    # Two warnings the engine gives (tracing asked for without OpenTelemetry, a hook that
    # raises, with its traceback): without the NullHandler both reached stderr.
    proc = run(
        """\
        import sys
        sys.modules["opentelemetry"] = None  # as if not installed
        import dnscache

        def hook(host):
            raise RuntimeError("hook failed")

        with dnscache.Resolver(trace=True, on_cache_miss=hook) as resolver:
            resolver.getaddrinfo("localhost", 80)
        print("done")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "done\n"
    assert proc.stderr == ""


def test_a_program_that_configured_logging_gets_named_records_without_a_prefix() -> None:
    proc = run(
        """\
        import logging, sys
        logging.basicConfig(format="%(name)s %(levelname)s: %(message)s")
        sys.modules["opentelemetry"] = None
        import dnscache

        for _ in range(3):  # three resolvers, one degradation: one warning
            dnscache.Resolver(trace=True).close()
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (
        "dnscache WARNING: trace=True but opentelemetry-api is not installed; no spans\n"
    )


def test_an_unusable_cache_file_is_one_warning_without_a_prefix(
    tmp_path: Path, records: list[logging.LogRecord]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    path = blocker / "sub" / "cache.sqlite"
    with dnscache.Resolver(persist=str(path), hosts={"pinned.test": ["127.0.0.1"]}) as r:
        for name in ("localhost", "pinned.test", "localhost", "nope.invalid", "localhost"):
            try:
                r.getaddrinfo(name, 80)
            except OSError:
                pass
    (warning,) = warnings_in(records)
    assert warning.startswith(f"cannot use {path} (")
    assert warning.endswith("keeping addresses in memory for this process only")
    assert not blocker.is_dir()


def test_no_message_repeats_the_loggers_name(
    tmp_path: Path, records: list[logging.LogRecord]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")

    def hook(host: str) -> None:
        raise RuntimeError("hook failed")

    with dnscache.Resolver(persist=str(blocker / "c.sqlite"), on_cache_miss=hook) as r:
        r.getaddrinfo("localhost", 80)
        r.getaddrinfo("localhost", 443)
    assert len(warnings_in(records)) == 2  # the unusable file, the hook (once)
    for record in records:
        assert not record.getMessage().startswith("dnscache"), record.getMessage()


def test_a_handler_that_resolves_while_the_cache_file_warns_does_not_hang(
    tmp_path: Path,
) -> None:
    # The persistent layer warns while it holds its sqlite lock; a handler that resolves
    # a name (HTTPHandler, a log shipper) must get an answer, not wait on that lock.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run(
        f"""\
        import logging, socket, sys
        import dnscache

        class Resolving(logging.Handler):
            def emit(self, record):
                print("handler:", socket.getaddrinfo("localhost", 80)[0][4][0], flush=True)

        logging.getLogger().addHandler(Resolving())
        with dnscache.patched(persist={str(blocker / "sub" / "c.sqlite")!r}):
            socket.getaddrinfo("localhost", 80)
        print("done")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "done"
    assert proc.stdout.count("handler:") == 1
