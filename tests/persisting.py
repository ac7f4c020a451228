"""Helpers for the persistent layer's tests: an injected wall clock, stores closed after
each test, raw sqlite access, and files that belong to another user."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import netns
from dnscache._sources.persist import PersistentStore, Seen

T0 = 1_800_000_000.0  # a wall-clock instant (2027-01-15) for the injected clock


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "dnscache-persist" and t.is_alive()]


def stores(tmp_path: Path) -> Iterator[Callable[..., PersistentStore]]:
    """For a ``make_store`` fixture: PersistentStore(path or tmp_path/dns.sqlite3, **options),
    closed after the test."""
    stores: list[PersistentStore] = []

    def make(path: Path | str | None = None, **kw: Any) -> PersistentStore:
        store = PersistentStore(str(path or tmp_path / "dns.sqlite3"), **kw)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def raw(path: Path | str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(str(path))) as conn, conn:
        return conn.execute(sql, params).fetchall()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "dnscache" and r.levelno >= logging.WARNING
    ]


def ips(rows: list[Seen]) -> list[str]:
    return [row.ip for row in rows]


def other_uid() -> int:
    """A uid that is not ours (nobody's), to chown files to; needs root."""
    if os.geteuid() != 0:
        netns.unavailable("needs root to give files to another user")
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        return 65534


def fingerprint(path: Path) -> tuple[Any, ...]:
    """Everything a modification would change: content (a symlink's target text, a
    directory's names), mtime, mode, owner; never following a final symlink."""
    st = path.lstat()
    if path.is_symlink():
        content: object = os.readlink(path)
    elif path.is_dir():
        content = sorted(p.name for p in path.iterdir())
    else:
        content = path.read_bytes()
    return (content, st.st_mtime_ns, st.st_mode, st.st_uid, st.st_gid)
