"""Where the table lives on disk: the default path, and which files and directories are ours.

* **Mode 0600, directories 0700.** The table is a history of every host this
  user's programs talked to: private. We create the file ourselves with
  ``os.open(..., 0o600)`` (and ``fchmod``, since the umask can only remove
  bits) before sqlite opens it, and each directory we create with mode 0700
  (XDG's rule for cache directories). sqlite's unix VFS creates ``-wal`` and
  ``-shm`` with the database file's own permissions, so they are 0600 too. We
  never touch the umask: it is process-global and changing it races with
  every other thread creating files.
* **Only what is ours, and only through what is ours.** The final component
  is opened with ``O_NOFOLLOW``: a symbolic link there is refused, whatever it
  points to. A file, ``-wal``, ``-shm`` or ``-journal`` not owned by the
  effective uid, or not a regular file, is refused; so is the directory
  holding them when someone else could replace its entries (owned by another
  user than us or root, or writable by group or others). Refused means
  :class:`Untouchable`: one warning, memory mode, nothing modified. What is
  ours and too open is tightened: our file and its sidecars to 0600 once the
  file is known to be a dnscache database, and the directory to 0700 when it
  is dnscache's own (one we created, or one named ``dnscache``, as the default
  path's is; a directory the user chose for other things keeps its mode, and
  is refused only if others can write to it).
* **Checked, then opened by name.** sqlite opens files by name, so there is a
  window between our check and its open. We close it rather than race it: the
  directory check above means nobody but us (and root) can create, rename or
  replace an entry in that directory, so the name keeps pointing at the inode
  we checked; and every connection checks again, around its open, that the
  name is a regular file of ours and the same inode before and after
  (:func:`check_file`), so a swap that slipped through is noticed instead of
  used. Directories above the one holding the file are not checked (a
  symlinked ``~/.cache`` is common and legitimate).
* **Corruption.** A damaged file is renamed to ``<path>.corrupt-<UTC
  timestamp>``, with any ``-wal``/``-journal`` next to it (so the set can still
  be examined, and none of it is replayed into a new file).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Mapping

from ..._core.paths import default_cache_path

__all__ = [
    "Untouchable",
    "check_directory",
    "check_file",
    "check_sidecars",
    "default_path",
    "is_dedicated",
    "looks_like_sqlite",
    "make_private",
    "make_private_dirs",
    "move_aside",
    "open_private_file",
    "same_file",
    "tighten_sidecars",
]

SQLITE_HEADER = b"SQLite format 3\x00"
SIDECARS = ("-wal", "-shm", "-journal")  # the files sqlite opens next to the database by name

# O_NONBLOCK: opening a FIFO planted under our name must not hang us.
_FILE = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_FILE_RO = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class Untouchable(Exception):
    """The file is not ours to modify (someone else's, a symlink, a newer schema...)."""


def default_path(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_CACHE_HOME/dnscache/dns.sqlite3``, else ``~/.cache/dnscache/dns.sqlite3``."""
    return default_cache_path(environ)


def looks_like_sqlite(fd: int) -> bool:
    """True for an empty file or one starting with sqlite's header: ours to repair."""
    try:
        head = os.pread(fd, len(SQLITE_HEADER), 0)
    except OSError:
        return False
    return head in (b"", SQLITE_HEADER)


def make_private_dirs(directory: str) -> list[str]:
    """Create ``directory`` and any missing parents with mode 0700 (XDG's rule); return them.

    ``os.makedirs(mode=...)`` applies the mode only to the leaf, and the umask
    still filters it, hence one mkdir + fchmod per created directory. A directory
    that already exists (or that another process creates first) is not created.
    """
    missing = []
    current = os.path.abspath(directory)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    created = []
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not os.path.isdir(path):  # a regular file in the way: this location is unusable
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path) from None
            continue
        fd = os.open(path, _DIRECTORY | os.O_NOFOLLOW)  # fchmod what we made, not a swap
        try:
            if os.fstat(fd).st_uid == os.geteuid():
                os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
        created.append(path)
    return created


def check_directory(directory: str, *, dedicated: bool, fix: bool = True) -> None:
    """Refuse a directory others could change entries of; make dnscache's own private.

    ``dedicated``: the directory is dnscache's own (we created it, or it is
    named ``dnscache``), so its mode is ours to fix (unless ``fix`` is False:
    then a mode we would fix is refused like any other).
    """
    fd = os.open(directory, _DIRECTORY)
    try:
        st = os.fstat(fd)
        euid = os.geteuid()
        if st.st_uid == euid and dedicated and fix:
            if st.st_mode & 0o077:
                os.fchmod(fd, 0o700)
        elif st.st_uid not in (euid, 0):
            raise Untouchable(f"the directory {directory} belongs to uid {st.st_uid}, not to us")
        elif st.st_mode & 0o022:
            raise Untouchable(
                f"others can write to the directory {directory} (mode {st.st_mode & 0o7777:04o})"
            )
    finally:
        os.close(fd)


def is_dedicated(directory: str, created: list[str]) -> bool:
    """Whether ``directory`` is dnscache's own (see :func:`check_directory`)."""
    return directory in created or os.path.basename(directory) == "dnscache"


def check_file(path: str) -> os.stat_result:
    """``lstat(path)`` if it is a regular file owned by the effective uid; else Untouchable."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise Untouchable(f"{path} is a symbolic link")
    if not stat.S_ISREG(st.st_mode):
        raise Untouchable(f"{path} is not a regular file")
    if st.st_uid != os.geteuid():
        raise Untouchable(f"{path} belongs to uid {st.st_uid}, not to us")
    return st


def open_private_file(path: str) -> int:
    """An fd of ``path`` opened read-write without following a symlink, created 0600 if missing.

    Untouchable if the existing file is not ours (:func:`check_file`); OSError
    if we cannot write it (EACCES, EROFS: the location is unusable).
    """
    try:
        fd = os.open(path, _FILE | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        os.fchmod(fd, 0o600)  # the umask may have removed bits we need
        return fd
    checked = check_file(path)
    fd = os.open(path, _FILE)  # ELOOP if a symlink was swapped in since
    if not same_file(os.fstat(fd), checked):
        os.close(fd)
        raise Untouchable(f"{path} changed while it was being checked")
    return fd


def check_sidecars(path: str) -> None:
    """Refuse a ``-wal``, ``-shm`` or ``-journal`` that is not a regular file of ours."""
    for suffix in SIDECARS:
        with contextlib.suppress(FileNotFoundError):
            check_file(path + suffix)


def make_private(fd: int) -> None:
    """Mode 0600 for a file of ours (by fd)."""
    if os.fstat(fd).st_mode & 0o077:
        os.fchmod(fd, 0o600)


def tighten_sidecars(path: str) -> None:
    """Make our ``-wal``/``-shm``/``-journal`` 0600 if they are wider (never through a symlink)."""
    for suffix in SIDECARS:
        try:
            fd = os.open(path + suffix, _FILE_RO)
        except OSError:
            continue  # missing, a symlink (ELOOP): nothing of ours to fix
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077:
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


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
