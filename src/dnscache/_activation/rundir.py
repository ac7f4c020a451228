"""Where control endpoints live: the user's private runtime directory and its socket files.

Shared by the endpoint (:mod:`.control`) and its clients (``dnscache ps`` and the
rest), so both sides apply the same fences:

* the directory is ``$XDG_RUNTIME_DIR/dnscache`` (the XDG base directory spec
  makes ``$XDG_RUNTIME_DIR`` the user's own, mode 0700; checked, not trusted),
  else ``/tmp/dnscache-<uid>``. It is created 0700 and used only if it is a
  real directory (not a symlink) owned by the effective user with no access for
  group or others; ``/tmp`` is shared, so one made there first by someone else
  is refused, never adopted;
* an endpoint is ``<pid>.sock`` in it, a socket owned by the effective user;
  anything else found there is ignored and never removed;
* the peer of every connection is known from ``SO_PEERCRED``, the kernel's
  record of who connected, not the client's claim.

A process killed without closing its endpoint leaves a dead socket file:
:func:`sweep` removes those whose pid is gone, and clients remove those nobody
listens on.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import stat
import struct
from collections.abc import Iterable, Mapping

SWEEP_LIMIT = 1_000  # directory entries examined for dead sockets at a time
# sun_path is 108 bytes on Linux, with the final NUL (unix(7)).
MAX_SOCKET_PATH = 107
SOCKET_NAME = re.compile(r"^(\d+)\.sock$")
TEMPORARY_NAME = re.compile(r"^\.(\d+)\.[0-9a-f]+\.tmp$")  # bound, not yet renamed
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def check_private_dir(path: str) -> str | None:
    """None if ``path`` is a directory only we can use, else why not."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory (or a symlink)"
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not {os.geteuid()}"
    if st.st_mode & 0o077:
        return f"mode {stat.S_IMODE(st.st_mode):04o} lets others in (want 0700)"
    return None


def runtime_dirs(environ: Mapping[str, str] | None = None) -> list[str]:
    """Where endpoints may live, most preferred first (clients look in all of them)."""
    env = os.environ if environ is None else environ
    dirs = []
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(xdg):  # the spec: a relative path is invalid and ignored
        dirs.append(os.path.join(xdg, "dnscache"))
    dirs.append(os.path.join("/tmp", f"dnscache-{os.geteuid()}"))
    return dirs


def _usable(directory: str, create: bool, parent_private: bool) -> bool:
    # Room for the temporary name ".<pid>.<8 hex>.tmp" with a 7-digit pid (pid_max 2**22).
    if len(os.path.join(directory, ".4194304.00000000.tmp").encode()) > MAX_SOCKET_PATH:
        return False
    if create and (not parent_private or check_private_dir(os.path.dirname(directory)) is None):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
    return check_private_dir(directory) is None


def private_dir(create: bool = False) -> str | None:
    """The directory this process's endpoint goes in: the first candidate that is private.

    Inside $XDG_RUNTIME_DIR only if that is itself private (the spec's promise, checked);
    the fallback under the shared /tmp is made by us or refused (check_private_dir).
    """
    candidates = runtime_dirs()
    for i, directory in enumerate(candidates):
        try:
            if _usable(directory, create, parent_private=i < len(candidates) - 1):
                return directory
        except OSError:
            continue
    return None


def socket_path(directory: str, pid: int) -> str:
    return os.path.join(directory, f"{pid}.sock")


def endpoint_files(directory: str) -> list[tuple[int, str]]:
    """(pid, path) of every socket file in ``directory`` that we own, by pid."""
    found = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names[:SWEEP_LIMIT]:
        match = SOCKET_NAME.match(name)
        if match is None:
            continue
        path = os.path.join(directory, name)
        if is_our_socket(path):
            found.append((int(match[1]), path))
    return sorted(found)


def is_our_socket(path: str) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISSOCK(st.st_mode) and st.st_uid == os.geteuid()


def remove_if_ours(path: str) -> bool:
    """Unlink ``path`` if it is still a socket we own; True if it is gone."""
    if not is_our_socket(path):
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True


def _pid_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: alive, someone else's (a reused pid)
        return False
    return False


def sweep(directory: str, keep: int) -> None:
    """Remove the sockets of processes that no longer exist (killed without close())."""
    for pid, path in endpoint_files(directory):
        if pid != keep and _pid_is_gone(pid):
            remove_if_ours(path)
    with contextlib.suppress(OSError):
        for name in os.listdir(directory)[:SWEEP_LIMIT]:
            match = TEMPORARY_NAME.match(name)
            if match is not None and int(match[1]) != keep and _pid_is_gone(int(match[1])):
                remove_if_ours(os.path.join(directory, name))


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, as the kernel saw it connect."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


def all_endpoints() -> Iterable[tuple[int, str]]:
    """(pid, path) of every endpoint file in every private runtime directory."""
    seen: set[str] = set()
    for directory in runtime_dirs():
        if check_private_dir(directory) is not None:
            continue
        for pid, path in endpoint_files(directory):
            if path not in seen:
                seen.add(path)
                yield pid, path
