"""Helpers shared by the runtime tests (uvloop, trio, gevent, eventlet, gunicorn).

* :func:`http_server`: a real HTTP/1.0 server on 127.0.0.1 that counts the
  connections it accepted, so a client that quietly kept one connection alive
  (and so resolved once) cannot pass a test counting lookups per request;
* :func:`run_script`: a fresh interpreter running a script that prints one JSON
  object last, bounded by a timeout; monkey-patching (gevent, eventlet) is
  process-wide and cannot be undone, so every such test runs in its own process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SCRIPT_TIMEOUT = 120.0
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class _OkHandler(BaseHTTPRequestHandler):
    """200 "ok" to every GET, over HTTP/1.0: the server closes every connection."""

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class CountingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    connections = 0

    def get_request(self) -> tuple[Any, Any]:
        request = super().get_request()
        self.connections += 1
        return request

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@contextmanager
def http_server() -> Iterator[CountingHTTPServer]:
    server = CountingHTTPServer(("127.0.0.1", 0), _OkHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="runtimes-http"
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a child: no PYTHONDNSCACHE* or proxy variables, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PYTHONDNSCACHE") and key.lower() not in _PROXY_VARS
    }
    env.update(extra)
    return env


def order_script_env(order: str, nameserver: str) -> dict[str, str]:
    """A child's environment for an install-order test: "env" activates from the environment.

    The other orders ("before", "after" the runtime's import) call install() in the script.
    """
    env = clean_env()
    if order == "env":
        env.update(
            PYTHONDNSCACHE="1",
            PYTHONDNSCACHE_BACKEND="dnspython",
            PYTHONDNSCACHE_NAMESERVERS=nameserver,
        )
    return env


def run_script(
    script: str,
    env: Mapping[str, str] | None = None,
    *,
    args: tuple[str, ...] = (),
    timeout: float = SCRIPT_TIMEOUT,
) -> dict[str, Any]:
    """Run ``script`` in a fresh interpreter; the JSON object it printed last."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", script, *args],
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else clean_env(),
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        message = f"script timed out after {timeout}s\n{exc.stdout!r}\n{exc.stderr!r}"
        raise AssertionError(message) from None
    assert proc.returncode == 0, f"status {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output\n{proc.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result
