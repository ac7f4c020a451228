"""Where the table lives on disk: the default path, private directories, the file and its set.

* **Mode 0600, directories 0700.** The table is a history of every host this
  user's programs talked to: private. We create the file ourselves with
  ``os.open(..., 0o600)`` (and ``fchmod``, since the umask can only remove
  bits) before sqlite opens it, and each directory we create with mode 0700
  (XDG's rule for cache directories). sqlite's unix VFS creates ``-wal`` and
  ``-shm`` with the database file's own permissions, so they are 0600 too; we
  also ``chmod`` them once they exist, in case someone else created them. We
  never touch the umask: it is process-global and changing it races with
  every other thread creating files.
* **Corruption.** A damaged file is renamed to ``<path>.corrupt-<UTC
  timestamp>``, with any ``-wal``/``-journal`` next to it (so the set can still
  be examined, and none of it is replayed into a new file).
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Mapping

__all__ = [
    "create_private_file",
    "default_path",
    "looks_like_sqlite",
    "make_private_dirs",
    "move_aside",
    "tighten_sidecars",
]

SQLITE_HEADER = b"SQLite format 3\x00"


def default_path(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_CACHE_HOME/dnscache/dns.sqlite3``, else ``~/.cache/dnscache/dns.sqlite3``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative path is invalid and ignored
        home = env.get("HOME") or os.path.expanduser("~")
        base = os.path.join(home, ".cache")
    return os.path.join(base, "dnscache", "dns.sqlite3")


def looks_like_sqlite(path: str) -> bool:
    """True for an empty file or one starting with sqlite's header: ours to repair."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError:
        return False
    return head in (b"", SQLITE_HEADER)


def make_private_dirs(directory: str) -> None:
    """Create ``directory`` and any missing parents with mode 0700 (XDG's rule).

    ``os.makedirs(mode=...)`` applies the mode only to the leaf, and the umask
    still filters it, hence one mkdir + chmod per created directory. A directory
    that already exists (or that another process creates first) keeps its mode.
    """
    missing = []
    current = os.path.abspath(directory)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not os.path.isdir(path):  # a regular file in the way: this location is unusable
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path) from None
            continue
        os.chmod(path, 0o700)


def create_private_file(path: str) -> os.stat_result:
    """Make sure ``path`` exists (created with mode 0600); OSError if we cannot write it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)  # EACCES, EROFS, EISDIR: unusable
    else:
        os.fchmod(fd, 0o600)  # the umask may have removed bits we need
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def tighten_sidecars(path: str) -> None:
    """Make our ``-wal``/``-shm`` files 0600 if someone created them wider."""
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(OSError):
            st = os.stat(path + suffix)
            if st.st_uid == os.geteuid() and st.st_mode & 0o077:
                os.chmod(path + suffix, 0o600)


def move_aside(path: str, now: float) -> str:
    """Rename a corrupt file, with its journals, out of the way; return the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = f"{path}.corrupt-{stamp}"
    n = 1
    while os.path.lexists(target):
        target = f"{path}.corrupt-{stamp}-{n}"
        n += 1
    os.replace(path, target)
    for suffix in ("-wal", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(path + suffix, target + suffix)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path + "-shm")  # only an index of the -wal, rebuilt on open
    return target
