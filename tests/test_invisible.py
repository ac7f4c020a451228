"""Issue "Invisible", engine side: what other projects' suites met under PYTHONDNSCACHE=1.

Each test runs a small program the way a user's process meets dnscache: a fresh
interpreter with ``PYTHONDNSCACHE=1`` (the ``.pth`` activation), or calling ``install()``
itself, talking only to loopback, with a watchdog so that a regression (a deadlock) fails
in bounded time instead of hanging the run. They are the project's own versions of the
reproductions r2, r5 and r5b (r1, r3 and r6 are in test_connect_fidelity.py, r7 in
test_pytest_plugin.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

TIMEOUT = 60

# A thread that kills the process if the program is still running after 10 s: a hang
# becomes exit status 3 with a message, never a stuck test run.
WATCHDOG = textwrap.dedent(
    """\
    import os, sys, threading
    def _watchdog():
        if not _done.wait(10):
            sys.stderr.write("HUNG\\n"); sys.stderr.flush(); os._exit(3)
    _done = threading.Event()
    threading.Thread(target=_watchdog, daemon=True).start()
    """
)


def run(body: str, *, activate: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONDNSCACHE")}
    if activate:
        env["PYTHONDNSCACHE"] = "1"
    code = WATCHDOG + textwrap.dedent(body) + "\n_done.set()\n"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, env=env
    )


def test_the_first_lookup_leaves_no_thread_behind() -> None:
    # r2: CPython's own threading_helper counts threads around a block; the first lookup
    # of the process started a permanent "dnscache-sweeper" inside that block in 0.1.
    proc = run(
        """
        import socket
        from test.support import threading_helper
        import dnscache

        server = socket.create_server(("127.0.0.1", 0))
        try:
            with threading_helper.wait_threads_exit(timeout=2.0):
                socket.create_connection(("localhost", server.getsockname()[1])).close()
            assert dnscache.is_installed()
            print("OK")
        finally:
            server.close()
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "OK\n"


def test_a_logging_handler_that_connects_by_name_does_not_deadlock() -> None:
    # r5: with the root logger at DEBUG and an HTTPHandler to "localhost", the handler's
    # own lookup of the name used to wait on the flight of the lookup that logged.
    proc = run(
        """
        import http.server, logging, logging.handlers, threading
        import dnscache

        received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                received.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        handler = logging.handlers.HTTPHandler(
            f"localhost:{server.server_port}", "/log", method="GET"
        )
        logging.basicConfig(level=logging.DEBUG, handlers=[handler])
        logging.getLogger("app").error("hello")
        server.shutdown()
        assert dnscache.is_installed()
        # Exactly the application's record: dnscache logs nothing of its own on this path.
        assert len(received) == 1 and "hello" in received[0], received
        print("OK")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "OK\n"


def test_a_hook_that_resolves_the_same_name_does_not_deadlock() -> None:
    # r5b: the on_cache_miss hook's own lookup of the name waited on its own flight.
    proc = run(
        """
        import socket
        import dnscache

        seen = []

        def hook(host):
            seen.append(host)
            socket.getaddrinfo(host, 80)  # passes straight to the original: no recursion

        dnscache.install(on_cache_miss=hook)
        infos = socket.getaddrinfo("localhost", 80)
        assert infos == dnscache.get_original("getaddrinfo")("localhost", 80)
        assert seen == ["localhost"], seen
        dnscache.uninstall()
        print("OK")
        """,
        activate=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "OK\n"


def test_a_hook_that_logs_through_a_connecting_handler_does_not_recurse() -> None:
    # Hooks and logging together: the hook logs, the handler connects by name, the
    # handler's lookup passes through; one record, no recursion, no hang.
    proc = run(
        """
        import logging, logging.handlers, socket
        import dnscache

        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        port = dead.getsockname()[1]
        dead.close()  # nothing listens there
        handler = logging.handlers.SocketHandler("localhost", port)
        logging.basicConfig(level=logging.DEBUG, handlers=[handler])
        dnscache.install(on_cache_miss=lambda host: logging.getLogger("app").info("miss %s", host))
        socket.getaddrinfo("localhost", 80)
        dnscache.uninstall()
        print("OK")
        """,
        activate=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "OK\n"
    assert "RecursionError" not in proc.stderr
