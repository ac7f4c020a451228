"""Host names as cache keys, and the system files that decide when two spellings are one."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from dnscache._core.names import (
    SystemFacts,
    encode_host,
    host_key,
    parse_hosts_names,
    parse_nsswitch_plain,
    parse_resolv_conf,
)
from dnscache._sources import sysfiles as _names
from dnscache._sources.sysfiles import CHECK_INTERVAL, SystemFiles, load_facts


def facts(
    hosts: Sequence[bytes] = (b"localhost",), *, search: bool = False, plain: bool = True
) -> SystemFacts:
    return SystemFacts(
        hosts_names=frozenset(hosts), has_search=search, plain_nss=plain, nameservers=()
    )


NOISE = facts()  # no search domain, files+dns only: a final dot changes nothing


# --- parsers ---


def test_parse_hosts_names() -> None:
    text = (
        "# The following lines are desirable for IPv4 capable hosts\n"
        "127.0.0.1\tlocalhost  LocalHost.LocalDomain.\n"
        "\n"
        "   ::1 ip6-localhost ip6-loopback # trailing comment\n"
        "192.0.2.7 Web.Example.COM web\n"
        "192.0.2.8\n"
        "#192.0.2.9 commented.out\n"
    )
    assert parse_hosts_names(text) == {
        b"localhost",
        b"localhost.localdomain",
        b"ip6-localhost",
        b"ip6-loopback",
        b"web.example.com",
        b"web",
    }


def test_parse_hosts_names_empty() -> None:
    assert parse_hosts_names("") == frozenset()
    assert parse_hosts_names("# nothing\n\n   \n") == frozenset()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (False, ())),
        ("nameserver 10.0.0.1\n", (False, ("10.0.0.1",))),
        (
            "# generated\nnameserver 10.0.0.1\nnameserver ::1 # local\noptions ndots:2\n",
            (False, ("10.0.0.1", "::1")),
        ),
        ("search example.com corp.example\nnameserver 10.0.0.1\n", (True, ("10.0.0.1",))),
        ("domain example.com\n", (True, ())),
        ("search\n", (False, ())),
        ("nameserver\n", (False, ())),
        ("#search example.com\n", (False, ())),
        ("\tsearch\texample.com\n", (True, ())),
    ],
)
def test_parse_resolv_conf(text: str, expected: tuple[bool, tuple[str, ...]]) -> None:
    assert parse_resolv_conf(text) == expected


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("", True),  # glibc's default: dns [!UNAVAIL=return] files
        ("passwd: files\ngroup: files\n", True),
        ("hosts: files dns\n", True),
        ("hosts:          files dns\n", True),
        ("hosts: dns files\n", True),
        ("hosts: files [NOTFOUND=return] dns\n", True),
        ("hosts: files\n", True),
        ("  hosts: files dns # comment\n", True),
        ("#hosts: files mdns4_minimal dns\nhosts: files dns\n", True),
        ("hosts: files mdns4_minimal [NOTFOUND=return] dns\n", False),
        ("hosts: files myhostname dns\n", False),
        ("hosts: resolve [!UNAVAIL=return] files dns\n", False),
        ("hosts: files dns wins\n", False),
        # glibc ends the database name at ':' or white space and then skips both
        # (nss/nss_database.c, process_line), so these are hosts lines too.
        ("hosts:files mdns4_minimal dns\n", False),
        ("hosts : files mdns4_minimal dns\n", False),
        # ...and a later hosts line replaces an earlier one.
        ("hosts: files dns\nhosts: files mdns4_minimal dns\n", False),
    ],
)
def test_parse_nsswitch_plain(text: str, plain: bool) -> None:
    assert parse_nsswitch_plain(text) is plain


def test_load_facts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCALDOMAIN", raising=False)
    monkeypatch.setattr(_names.socket, "gethostname", lambda: "box")
    hosts, resolv, nss = tmp_path / "hosts", tmp_path / "resolv.conf", tmp_path / "nsswitch"
    hosts.write_text("127.0.0.1 localhost Box\n")
    resolv.write_text("nameserver 127.0.0.53\n")
    nss.write_text("hosts: files dns\n")
    got = load_facts(str(hosts), str(resolv), str(nss))
    assert got == SystemFacts(frozenset({b"localhost", b"box"}), False, True, ("127.0.0.53",))
    assert got.dot_is_noise


def test_load_facts_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCALDOMAIN", raising=False)
    monkeypatch.setattr(_names.socket, "gethostname", lambda: "box")
    missing = str(tmp_path / "nope")
    assert load_facts(missing, missing, missing) == SystemFacts(frozenset(), False, True, ())


def test_localdomain_and_dotted_hostname_mean_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\n")
    missing = str(tmp_path / "nope")
    monkeypatch.setattr(_names.socket, "gethostname", lambda: "box")
    monkeypatch.setenv("LOCALDOMAIN", "corp.example")
    assert load_facts(missing, str(resolv), missing).has_search
    monkeypatch.delenv("LOCALDOMAIN")
    assert not load_facts(missing, str(resolv), missing).has_search
    monkeypatch.setattr(_names.socket, "gethostname", lambda: "box.corp.example")
    assert load_facts(missing, str(resolv), missing).has_search


def test_dot_is_noise() -> None:
    assert facts().dot_is_noise
    assert not facts(search=True).dot_is_noise
    assert not facts(plain=False).dot_is_noise


# --- encode_host ---


def test_encode_host() -> None:
    assert encode_host("Example.COM") == b"Example.COM"
    assert encode_host(b"Example.COM") == b"Example.COM"
    assert encode_host("bücher.example") == b"xn--bcher-kva.example"
    assert encode_host("BÜCHER.example.") == b"xn--bcher-kva.example."
    assert encode_host(b"b\xc3\xbccher.example") == b"b\xc3\xbccher.example"  # bytes as they are
    assert encode_host("") == b""


@pytest.mark.parametrize("host", ["a..b", "x" * 64 + ".test", "\udcff.test"])
def test_encode_host_rejects_what_cpython_rejects(host: str) -> None:
    with pytest.raises(UnicodeError):
        encode_host(host)
    with pytest.raises(UnicodeError):
        host.encode("idna")


# --- host_key ---


def key(host: str | bytes, f: SystemFacts = NOISE) -> bytes:
    return host_key(encode_host(host), f)


def test_case_is_folded() -> None:
    assert key("LocalHost") == key("localhost") == b"localhost"
    assert key("Example.COM") == b"example.com"
    assert key("EXAMPLE.com", facts(search=True, plain=False)) == b"example.com"


def test_str_and_bytes_share_a_key() -> None:
    assert key("Example.com") == key(b"EXAMPLE.COM") == key(b"example.com")


def test_idna() -> None:
    assert key("bücher.example") == b"xn--bcher-kva.example"
    assert key("BÜCHER.Example.") == b"xn--bcher-kva.example"
    assert key(b"XN--BCHER-KVA.example") == b"xn--bcher-kva.example"


def test_trailing_dot_dropped_when_it_is_noise() -> None:
    assert key("example.com.") == key("example.com") == b"example.com"
    assert key("Single.") == b"single"


@pytest.mark.parametrize(
    "f",
    [facts(search=True), facts(plain=False), facts(search=True, plain=False)],
    ids=["search-domain", "nsswitch-not-plain", "both"],
)
def test_trailing_dot_kept_when_it_may_matter(f: SystemFacts) -> None:
    assert key("example.com.", f) == b"example.com."
    assert key("example.com", f) == b"example.com"


def test_trailing_dot_kept_for_names_in_the_hosts_file() -> None:
    # glibc's files backend does not match "localhost." against "localhost".
    assert key("localhost.") == b"localhost."
    assert key("LOCALHOST.") == b"localhost."
    assert key("web.example.", facts([b"web.example"])) == b"web.example."


def test_keep_case_for_canonical_names() -> None:
    # With AI_CANONNAME the answer carries the name as the caller spelled it.
    assert host_key(b"Example.COM", NOISE, keep_case=True) == b"Example.COM"
    assert host_key(b"Example.COM.", NOISE, keep_case=True) == b"Example.COM"
    assert host_key(b"Example.COM.", facts(search=True), keep_case=True) == b"Example.COM."
    assert host_key(b"LocalHost.", NOISE, keep_case=True) == b"LocalHost."  # in the hosts file
    assert host_key(b"example.com", NOISE, keep_case=True) == b"example.com"


@pytest.mark.parametrize(("host", "expected"), [(".", b"."), ("a..", b"a.."), ("..", b"..")])
def test_odd_dots_are_left_alone(host: str, expected: bytes) -> None:
    assert host_key(host.encode(), NOISE) == expected


# --- SystemFiles ---


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str) -> None:
    # Through a new inode, so the change is seen even within one mtime tick.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    hosts, resolv, nss = tmp_path / "hosts", tmp_path / "resolv.conf", tmp_path / "nsswitch.conf"
    hosts.write_text("127.0.0.1 localhost\n")
    resolv.write_text("nameserver 127.0.0.53\n")
    nss.write_text("hosts: files dns\n")
    return hosts, resolv, nss


def test_system_files_check(
    files: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts, resolv, nss = files
    clock = Clock(1000.0)
    watched = SystemFiles(tuple(map(str, files)), clock=clock)
    assert watched.facts.hosts_names == {b"localhost"}
    assert not watched.facts.has_search

    stats: list[int] = []
    real_stamp = _names._stamp

    def counting_stamp(paths: Sequence[str]) -> object:
        stats.append(len(paths))
        return real_stamp(paths)

    monkeypatch.setattr(_names, "_stamp", counting_stamp)

    write(hosts, "127.0.0.1 localhost\n127.0.0.2 newname\n")
    write(resolv, "search corp.example\nnameserver 127.0.0.53\n")
    # Within the interval: no stat at all, so no change seen yet.
    for now in (1000.0, 1000.5, 1000.0 + CHECK_INTERVAL - 1e-6):
        assert watched.check(now) is False
    assert stats == []
    assert watched.facts.hosts_names == {b"localhost"}

    # At the interval: one stat of the files, the change is seen and the facts reloaded.
    assert watched.check(1000.0 + CHECK_INTERVAL) is True
    assert len(stats) == 1
    assert watched.facts.hosts_names == {b"localhost", b"newname"}
    assert watched.facts.has_search

    # The next interval starts at that check.
    assert watched.check(1000.0 + 1.5 * CHECK_INTERVAL) is False
    assert len(stats) == 1
    assert watched.check(1000.0 + 2 * CHECK_INTERVAL) is False  # stat, nothing changed
    assert len(stats) == 2

    nss.unlink()  # a file that disappears is a change too
    assert watched.check(1000.0 + 3 * CHECK_INTERVAL) is True
    assert watched.facts.plain_nss is True


def test_system_files_check_uses_the_injected_clock(files: tuple[Path, Path, Path]) -> None:
    hosts = files[0]
    clock = Clock(50.0)
    watched = SystemFiles(tuple(map(str, files)), clock=clock)
    write(hosts, "127.0.0.1 localhost other\n")
    clock.now = 50.5
    assert watched.check() is False
    clock.now = 51.0
    assert watched.check() is True
    assert b"other" in watched.facts.hosts_names


def test_system_files_no_change_no_reload(files: tuple[Path, Path, Path]) -> None:
    clock = Clock(0.0)
    watched = SystemFiles(tuple(map(str, files)), clock=clock)
    before = watched.facts
    for i in range(1, 5):
        assert watched.check(float(i)) is False
    assert watched.facts is before


def test_system_files_default_paths() -> None:
    watched = SystemFiles()
    assert watched.facts == load_facts()
