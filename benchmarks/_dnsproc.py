"""The embedded DNS server in a child process, for the benchmarks.

Why a process and not a thread: ``DNSServer`` is Python code (dnspython parses
and renders every message). In the benchmark's own process its threads would
compete for the GIL with the very calls being timed, so a measured hit could
include a few milliseconds of the *server's* work, a cost no real program pays
(its resolver is another process or another machine). In a child process the
server only costs CPU, and on a 2-core machine it can be pinned to the other core.

The child is started with the ``spawn`` method (no inherited threads or locks)
and driven over a ``multiprocessing`` pipe with tuples: ``("set", name, a, ttl)``,
``("counts",)`` (queries received, by record type), ``("reset",)``, ``("stop",)``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from dnscache._tools.dnsserver import DNSServer

START_TIMEOUT = 30.0  # seconds: a spawned child re-imports everything, slowly on a busy box


def _serve(conn: Connection, cpu: int | None) -> None:
    """The child: run a DNSServer on 127.0.0.1 and obey the parent's commands."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    server = DNSServer("127.0.0.1").start()
    conn.send(server.nameserver)
    try:
        while True:
            try:
                command: tuple[Any, ...] = conn.recv()
            except EOFError:  # the parent went away
                return
            op = command[0]
            if op == "set":
                _, name, a, ttl = command
                server.set(name, a=a, ttl=ttl)
                conn.send(None)
            elif op == "counts":
                conn.send(dict(Counter(rtype for _, rtype in server.log)))
            elif op == "reset":
                server.reset_counts()
                conn.send(None)
            elif op == "stop":
                conn.send(None)
                return
    finally:
        server.stop()


class ServerProcess:
    """A DNSServer running in a child process; ``nameserver`` is its ``"127.0.0.1:PORT"``."""

    def __init__(self, cpu: int | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve, args=(child, cpu), name="bench-dnsserver", daemon=True
        )
        self._process.start()
        child.close()
        if not self._conn.poll(START_TIMEOUT):
            self._process.kill()
            raise RuntimeError("the DNS server process did not start")
        self.nameserver: str = self._conn.recv()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def _ask(self, *command: Any) -> Any:
        self._conn.send(command)
        return self._conn.recv()

    def set(self, name: str, a: Sequence[str], ttl: int) -> None:
        self._ask("set", name, list(a), ttl)

    def counts(self) -> dict[str, int]:
        """Queries received since the last reset, by record type ("A", "AAAA", ...)."""
        counts: dict[str, int] = self._ask("counts")
        return counts

    def reset(self) -> None:
        self._ask("reset")

    def stop(self) -> None:
        if self._process.is_alive():
            try:
                self._ask("stop")
            except (OSError, EOFError):
                pass
        self._process.join(5.0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
