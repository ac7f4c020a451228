"""The client side of the control endpoint: find processes' sockets, ask, read the reply.

The server is :mod:`dnscache._activation.control`; the directories and the
fences around them are :mod:`dnscache._activation.rundir`'s. Every step is
bounded by one timeout (connect, send, and the whole reply), and the server's
identity is checked with ``SO_PEERCRED`` before a byte is sent: only a process
of our own user is ever asked anything.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from ..._activation.rundir import all_endpoints, peer_credentials, remove_if_ours
from .options import CommandError, Opt, seconds

TIMEOUT = 2.0  # seconds for one request, reply included; the server's own bound is 3 s
MAX_REPLY = 64 * 1024 * 1024  # bytes: a dump of 10,000 entries is a few MB

TIMEOUT_OPT = Opt(
    ("--timeout",),
    {
        "type": seconds,
        "default": TIMEOUT,
        "metavar": "SECONDS",
        "help": "give up on a process that has not answered after this long (%(default)s)",
    },
)


class Gone(Exception):
    """Nobody listens on the socket: its process died without closing it."""


class NoReply(Exception):
    """The process did not answer in time (stopped, or very busy)."""


@dataclass(frozen=True)
class Endpoint:
    pid: int
    path: str


def find_all() -> list[Endpoint]:
    return [Endpoint(pid, path) for pid, path in all_endpoints()]


def find(pid: int) -> Endpoint:
    for endpoint in find_all():
        if endpoint.pid == pid:
            return endpoint
    raise CommandError(
        f"no control endpoint for pid {pid} (is it running with PYTHONDNSCACHE_CONTROL=1 "
        "as this user? see 'dnscache ps')"
    )


def request(endpoint: Endpoint, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send one request and return the reply's fields; raises Gone, NoReply or CommandError."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(endpoint.path)
        except (ConnectionRefusedError, FileNotFoundError):
            raise Gone(endpoint.path) from None
        except TimeoutError:
            raise NoReply(endpoint.path) from None
        _pid, uid, _gid = peer_credentials(sock)
        if uid != os.geteuid():  # cannot happen in a private directory; never trust it
            raise CommandError(f"{endpoint.path} is served by uid {uid}, not by us; not asking")
        try:
            sock.sendall(json.dumps(payload).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NoReply(endpoint.path)
                sock.settimeout(left)
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
                if len(data) > MAX_REPLY:
                    raise CommandError(f"pid {endpoint.pid}: reply larger than {MAX_REPLY} bytes")
        except TimeoutError:
            raise NoReply(endpoint.path) from None
        except (ConnectionResetError, BrokenPipeError):
            data = b""
    try:
        reply = json.loads(data)
    except ValueError:
        raise CommandError(f"pid {endpoint.pid}: no valid reply") from None
    if not isinstance(reply, dict):
        raise CommandError(f"pid {endpoint.pid}: no valid reply")
    if not reply.get("ok"):
        raise CommandError(f"pid {endpoint.pid}: {reply.get('error', 'request refused')}")
    return {k: v for k, v in reply.items() if k not in ("ok", "protocol")}


def ask(pid: int, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
    """``request`` to the endpoint of ``pid``, with its failures as one-line CommandErrors."""
    endpoint = find(pid)
    try:
        return request(endpoint, payload, timeout)
    except Gone:
        remove_if_ours(endpoint.path)
        raise CommandError(f"pid {pid} has exited; removed its dead endpoint") from None
    except NoReply:
        raise CommandError(f"pid {pid} did not answer within {timeout:g} s") from None
