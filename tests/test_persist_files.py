"""Files that are not ours are never opened for writing, modified or believed.

Real files, real owners: as root, "another user" is ``nobody`` (``os.chown``), so the
kernel's ownership is what the store sees. Every refusal is one warning, memory mode
(the process still remembers what it sees) and nothing modified, checked by a
fingerprint of content, mtime, mode and owner taken before and after.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dnscache._sources.persist import PersistentStore
from persisting import (
    T0,
    Clock,
    fingerprint,
    ips,
    other_uid,
    raw,
    stores,
    warnings_of,
)


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., PersistentStore]]:
    yield from stores(tmp_path)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def seeded_database(path: Path, rows: dict[str, str]) -> None:
    """A real dnscache database at ``path`` with one row per host (seen at T0)."""
    store = PersistentStore(str(path), clock=Clock())
    for host, ip in rows.items():
        store.record_seen(host, [ip])
    store.close()
    assert not store.degraded


def assert_refused(
    store: PersistentStore, caplog: pytest.LogCaptureFixture, why: str, *untouched: Path
) -> dict[Path, tuple[object, ...]]:
    """The store works in memory only, warned once naming ``why``; return fingerprints."""
    store.record_seen("mem.test", ["192.0.2.7"])
    store.flush()
    assert store.degraded
    assert ips(store.addresses("mem.test")) == ["192.0.2.7"]  # this process still remembers
    [warning] = warnings_of(caplog)
    assert why in warning and "memory" in warning, warning
    return {path: fingerprint(path) for path in untouched}


# --- the final component ---


@pytest.mark.parametrize("victim_kind", ["empty", "database"])
def test_a_symlink_to_another_users_file_is_refused(
    make_store: Callable[..., PersistentStore],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    victim_kind: str,
) -> None:
    """Today: an empty victim became our database; a victim database got our rows."""
    uid = other_uid()
    victims = tmp_path / "victim"
    victims.mkdir()
    victim = victims / "their.sqlite3"
    if victim_kind == "empty":
        victim.touch()
    else:
        seeded_database(victim, {"theirs.test": "192.0.2.50"})
    victim.chmod(0o666)
    os.chown(victim, uid, uid)
    link = tmp_path / "dns.sqlite3"
    link.symlink_to(victim)
    before = {p: fingerprint(p) for p in (victim, link)}
    time.sleep(0.01)  # so that a write would show in the mtime

    store = make_store(link)
    after = assert_refused(store, caplog, "symbolic link", victim, link)
    assert store.addresses("theirs.test") == []
    store.close()
    assert {p: fingerprint(p) for p in (victim, link)} == before == after
    assert sorted(p.name for p in victims.iterdir()) == ["their.sqlite3"]  # no -wal, no -shm
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dns.sqlite3", "victim"]


def test_a_symlink_as_final_component_is_refused_even_to_our_own_file(
    make_store: Callable[..., PersistentStore], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    real = tmp_path / "real.sqlite3"
    seeded_database(real, {"a.test": "192.0.2.1"})
    link = tmp_path / "dns.sqlite3"
    link.symlink_to(real.name)  # relative, in the same directory
    before = fingerprint(real)
    store = make_store(link, clock=Clock(T0 + 1))
    assert store.addresses("a.test") == []  # not read through the link
    assert_refused(store, caplog, "symbolic link")
    store.close()
    assert fingerprint(real) == before
    assert link.is_symlink()


def test_a_fifo_is_refused_without_hanging(
    make_store: Callable[..., PersistentStore], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "dns.sqlite3"
    os.mkfifo(path)
    store = make_store(path)
    assert_refused(store, caplog, "not a regular file")
    assert stat.S_ISFIFO(path.lstat().st_mode)


def test_another_users_writable_database_is_never_read(
    make_store: Callable[..., PersistentStore], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Today: a 0666 database owned by someone else was read, its planted row served."""
    uid = other_uid()
    path = tmp_path / "dns.sqlite3"
    seeded_database(path, {"bank.test": "6.6.6.6"})
    path.chmod(0o666)
    os.chown(path, uid, uid)
    before = fingerprint(path)
    time.sleep(0.01)

    store = make_store(path, clock=Clock(T0 + 1))
    assert store.addresses("bank.test") == []
    assert [h for h, _ in store.all_hosts()] == []
    assert_refused(store, caplog, f"belongs to uid {uid}")
    store.record_connected("bank.test", "192.0.2.9")
    store.close()
    assert fingerprint(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dns.sqlite3"]


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
@pytest.mark.parametrize("kind", ["foreign", "symlink"])
def test_a_sidecar_that_is_not_ours_is_refused(
    make_store: Callable[..., PersistentStore],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    suffix: str,
    kind: str,
) -> None:
    """sqlite opens -wal, -shm and -journal by name, following links: check them first."""
    uid = other_uid()
    path = tmp_path / "dns.sqlite3"
    seeded_database(path, {"a.test": "192.0.2.1"})
    victim = tmp_path / "victim"
    victim.write_bytes(b"not yours\n")
    os.chown(victim, uid, uid)
    sidecar = Path(f"{path}{suffix}")
    if kind == "symlink":
        sidecar.symlink_to(victim)
    else:
        sidecar.write_bytes(b"")
        os.chown(sidecar, uid, uid)
    before = {p: fingerprint(p) for p in (path, victim, sidecar)}
    store = make_store(path, clock=Clock(T0 + 1))
    assert store.addresses("a.test") == []
    assert_refused(store, caplog, "symbolic link" if kind == "symlink" else f"uid {uid}")
    store.close()
    assert {p: fingerprint(p) for p in (path, victim, sidecar)} == before


# --- the directory ---


def test_our_files_and_dnscache_directory_are_tightened(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    """Today: an existing 0644 database and 0755 directory were never tightened."""
    directory = tmp_path / "cache" / "dnscache"
    directory.mkdir(parents=True)
    path = directory / "dns.sqlite3"
    seeded_database(path, {"a.test": "192.0.2.1"})
    # Another program of ours holds the file open, so its -wal and -shm exist too.
    with sqlite3.connect(str(path)) as holder:
        holder.execute("SELECT count(*) FROM addresses").fetchall()
        sidecars = [Path(f"{path}-wal"), Path(f"{path}-shm")]
        for p in (path, *sidecars):
            p.chmod(0o644)
        directory.chmod(0o755)
        (tmp_path / "cache").chmod(0o755)

        store = make_store(path, clock=Clock(T0 + 1))
        assert ips(store.addresses("a.test")) == ["192.0.2.1"]
        assert not store.degraded
        assert mode(path) == 0o600
        assert [mode(p) for p in sidecars] == [0o600, 0o600]
        assert mode(directory) == 0o700
        assert mode(tmp_path / "cache") == 0o755  # not dnscache's: left alone
    holder.close()


def test_a_users_own_directory_keeps_its_mode(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    directory = tmp_path / "project"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    path = directory / "dns.sqlite3"
    path.write_bytes(b"")
    path.chmod(0o644)
    store = make_store(path)
    store.record_seen("a.test", ["192.0.2.1"])
    store.flush()
    assert not store.degraded
    assert mode(path) == 0o600  # the database is ours
    assert mode(directory) == 0o755  # the directory is the user's


@pytest.mark.parametrize("case", ["others-can-write", "sticky-tmp-like", "someone-elses"])
def test_a_directory_others_control_is_refused_and_nothing_is_created(
    make_store: Callable[..., PersistentStore],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    if case == "others-can-write":
        directory.chmod(0o777)
    elif case == "sticky-tmp-like":
        directory.chmod(0o1777)
    else:
        directory.chmod(0o755)
        uid = other_uid()
        os.chown(directory, uid, uid)
    before = fingerprint(directory)
    store = make_store(directory / "dns.sqlite3")
    assert_refused(store, caplog, "directory")
    store.close()
    assert list(directory.iterdir()) == []
    assert fingerprint(directory) == before


def test_a_dnscache_directory_of_ours_that_others_can_write_is_fixed(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    directory = tmp_path / "dnscache"
    directory.mkdir()
    directory.chmod(0o777)
    store = make_store(directory / "dns.sqlite3")
    store.record_seen("a.test", ["192.0.2.1"])
    store.flush()
    assert not store.degraded
    assert mode(directory) == 0o700


def test_a_dnscache_directory_of_someone_else_is_refused(
    make_store: Callable[..., PersistentStore], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uid = other_uid()
    directory = tmp_path / "dnscache"
    directory.mkdir()
    directory.chmod(0o777)
    os.chown(directory, uid, uid)
    before = fingerprint(directory)
    store = make_store(directory / "dns.sqlite3")
    assert_refused(store, caplog, f"uid {uid}")
    assert fingerprint(directory) == before
    assert list(directory.iterdir()) == []


# --- after the check: the name is checked again around every open ---


def test_a_swap_after_the_check_is_noticed_not_used(
    make_store: Callable[..., PersistentStore], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer opens its own connection later; by then the name may point elsewhere."""
    uid = other_uid()
    path = tmp_path / "dns.sqlite3"
    store = make_store(path, flush_interval=60.0, clock=Clock())
    assert store.addresses("a.test") == []  # prepared: the file was ours then
    victim = tmp_path / "victim.sqlite3"
    seeded_database(victim, {"theirs.test": "192.0.2.50"})
    os.chown(victim, uid, uid)
    path.unlink()
    path.symlink_to(victim)
    before = fingerprint(victim)
    time.sleep(0.01)
    store.record_seen("a.test", ["192.0.2.1"])
    store.flush()
    assert ips(store.addresses("a.test")) == ["192.0.2.1"]  # kept in memory
    store.close()
    assert fingerprint(victim) == before
    assert raw(victim, "SELECT host FROM addresses") == [(b"theirs.test",)]
    assert any("symbolic link" in w for w in warnings_of(caplog))


# --- read-only: a store that reads and never writes ---


def test_read_only_serves_the_file_and_changes_nothing(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    directory = tmp_path / "dnscache"
    directory.mkdir()
    path = directory / "dns.sqlite3"
    seeded_database(path, {"a.test": "192.0.2.1"})
    path.chmod(0o644)
    directory.chmod(0o755)  # modes a writing store would tighten
    before = {p: fingerprint(p) for p in (directory, path)}
    time.sleep(0.01)
    store = make_store(path, clock=Clock(T0 + 1), read_only=True)
    assert ips(store.addresses("a.test")) == ["192.0.2.1"]
    assert store.read_only and store.degraded
    store.record_seen("b.test", ["192.0.2.2"])  # kept in memory
    store.flush()
    assert [h for h, _ in store.all_hosts()] == ["a.test", "b.test"]
    assert store.prune(now=T0 + 10**9) == 1  # the memory row; the file's rows stay
    store.clear()
    store.close()
    assert {p: fingerprint(p) for p in (directory, path)} == before
    assert sorted(p.name for p in directory.iterdir()) == ["dns.sqlite3"]  # no -wal, no -shm


def test_read_only_sees_what_a_running_writer_has_not_checkpointed(
    make_store: Callable[..., PersistentStore], tmp_path: Path
) -> None:
    path = tmp_path / "dns.sqlite3"
    writer = make_store(path, clock=Clock())
    writer.record_seen("a.test", ["192.0.2.1"])
    writer.flush()  # in the -wal; the writer's connection stays open (and the -shm with it)
    assert Path(f"{path}-shm").exists()
    reader = make_store(path, clock=Clock(T0 + 1), read_only=True)
    assert ips(reader.addresses("a.test")) == ["192.0.2.1"]
    assert reader.read_only


def test_read_only_never_creates_anything(
    make_store: Callable[..., PersistentStore], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "missing" / "dns.sqlite3"
    store = make_store(path, read_only=True)
    assert store.addresses("a.test") == []
    assert store.degraded and not store.read_only
    assert list(tmp_path.iterdir()) == []
    assert len(warnings_of(caplog)) == 1


def test_read_only_refuses_what_is_not_ours(
    make_store: Callable[..., PersistentStore], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uid = other_uid()
    path = tmp_path / "dns.sqlite3"
    seeded_database(path, {"bank.test": "6.6.6.6"})
    os.chown(path, uid, uid)
    store = make_store(path, clock=Clock(T0 + 1), read_only=True)
    assert store.addresses("bank.test") == []
    assert not store.read_only
    [warning] = warnings_of(caplog)
    assert f"uid {uid}" in warning
