"""Rows from any file are untrusted input: properties of their validation, and of a real
file full of arbitrary values read back through the store.

The oracle (:func:`usable`) is written here from the rules (issue 11 item 9), not from
the code: a unicast, scope-less address; times finite, not before 2000 and not more
than ``max_age`` ahead; ``last_connected`` never after ``last_seen``.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnscache._sources.persist import PersistentStore, Seen
from dnscache._sources.persist.rules import MIN_TIME, clean_row, is_alive
from persisting import T0, Clock

MAX_AGE = 30 * 86400.0
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def usable(address: Address) -> bool:
    """The rule: unicast and scope-less (no unspecified, 'this network', broadcast, multicast)."""
    v4 = address if isinstance(address, ipaddress.IPv4Address) else address.ipv4_mapped
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None or address == ipaddress.IPv6Address("::"):
            return False
        if address.packed[0] == 0xFF:  # ff00::/8
            return False
    if v4 is not None:
        first = v4.packed[0]
        if first == 0 or 224 <= first <= 239 or v4 == ipaddress.IPv4Address("255.255.255.255"):
            return False
    return True


def sane(t: object, now: float) -> bool:
    return (isinstance(t, float) and math.isfinite(t) and MIN_TIME <= t <= now + MAX_AGE) or (
        isinstance(t, int) and not isinstance(t, bool) and MIN_TIME <= t <= now + MAX_AGE
    )


NOW = st.floats(min_value=MIN_TIME, max_value=4e9)
SCOPED = st.builds(
    lambda a, scope: f"{a}%{scope}",
    st.ip_addresses(v=6),
    st.sampled_from(["eth0", "1", "nosuchif", ""]),
)
BAD_LOOKING = st.sampled_from(
    ["0.0.0.0", "0.1.2.3", "::", "255.255.255.255", "224.0.0.1", "239.255.255.250",
     "ff02::1", "ff05::1:3", "::ffff:224.0.0.1", "::ffff:0.0.0.0", "::ffff:255.255.255.255"]
)  # fmt: skip
ANY_IP: st.SearchStrategy[Any] = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses().map(lambda a: a.exploded),  # valid, not canonical
    SCOPED,
    BAD_LOOKING,
    st.text(max_size=45),
    st.binary(max_size=16),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),  # what sqlite can hold
    st.none(),
)
ANY_TIME: st.SearchStrategy[Any] = st.one_of(
    st.floats(),  # nan, inf, 1e300, negatives...
    st.floats(min_value=MIN_TIME - 1e6, max_value=4e9 + 2 * MAX_AGE),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.text(max_size=8),
    st.none(),
)


@given(ip=ANY_IP, seen=ANY_TIME, connected=ANY_TIME, now=NOW)
def test_a_clean_row_is_always_one_we_could_have_written(
    ip: Any, seen: Any, connected: Any, now: float
) -> None:
    row = clean_row(ip, seen, connected, now, MAX_AGE)
    if row is None:
        return
    address = ipaddress.ip_address(ip)  # it was an address ...
    assert row.ip == str(address) and "%" not in row.ip  # ... given canonically, without scope
    assert usable(address)
    assert sane(seen, now) and row.last_seen == float(seen)
    if connected is None:
        assert row.last_connected is None
    else:
        assert sane(connected, now)
        assert row.last_connected == min(float(connected), float(seen))


@given(
    address=st.ip_addresses(),
    seen=st.floats(min_value=MIN_TIME, max_value=4e9),
    connected=st.one_of(st.none(), st.floats(min_value=MIN_TIME, max_value=4e9)),
    now=NOW,
)
def test_every_usable_row_is_kept(
    address: Address, seen: float, connected: float | None, now: float
) -> None:
    row = clean_row(str(address), seen, connected, now, MAX_AGE)
    ok = usable(address) and seen <= now + MAX_AGE
    ok = ok and (connected is None or connected <= now + MAX_AGE)
    assert (row is not None) == ok
    if row is not None:
        assert row.ip == str(address)


@pytest.mark.parametrize(
    ("ip", "seen", "connected"),
    [
        ("fe80::1%nosuchif", T0, None),
        ("192.0.2.1", T0, 1e300),
        ("192.0.2.1", 1e300, None),
        ("192.0.2.1", MIN_TIME - 1, None),
        ("192.0.2.1", T0, MIN_TIME - 1),
        ("192.0.2.1", T0, math.inf),
        ("192.0.2.1", math.nan, None),
        ("192.0.2.1", True, None),
        ("::ffff:239.1.1.1", T0, None),
    ],
)
def test_known_junk(ip: str, seen: float, connected: float | None) -> None:
    assert clean_row(ip, seen, connected, T0, MAX_AGE) is None


# --- a real file full of arbitrary values ---

SQLITE_VALUE: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),  # sqlite stores NaN as NULL
    st.floats(min_value=T0 - MAX_AGE, max_value=T0 + 2 * MAX_AGE),
    st.text(max_size=12),
    st.binary(max_size=8),
)
RAW_ROW = st.tuples(
    st.one_of(ANY_IP.filter(lambda v: v is not None), st.ip_addresses().map(str)),
    SQLITE_VALUE.filter(lambda v: v is not None),  # last_seen is NOT NULL
    SQLITE_VALUE,
)
_files = itertools.count()


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rows")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_rows=st.lists(RAW_ROW, max_size=12))
def test_whatever_the_file_holds_only_usable_rows_come_back(
    directory: Path, raw_rows: list[tuple[Any, Any, Any]]
) -> None:
    path = directory / f"dns{next(_files)}.sqlite3"
    empty = PersistentStore(str(path), clock=Clock())
    assert empty.addresses("h.test") == []  # prepares a current, empty database
    empty.close()
    inserted = []
    with closing(sqlite3.connect(str(path))) as conn, conn:
        for ip, seen, connected in raw_rows:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO addresses VALUES (?, ?, ?, ?)",
                (b"h.test", ip, seen, connected),
            )
            if cursor.rowcount:
                inserted.append((ip, seen, connected))
        stored = conn.execute("SELECT ip, last_seen, last_connected FROM addresses").fetchall()
    store = PersistentStore(str(path), clock=Clock())
    try:
        got = store.addresses("h.test")
        hosts = store.all_hosts()
    finally:
        store.close()
    assert [h for h, _ in hosts] == (["h.test"] if got else [])
    assert len({row.ip for row in got}) == len(got)  # one row per address
    by_ip: dict[str, list[Seen]] = {}
    for ip, seen, connected in stored:  # what sqlite made of the values (type affinity)
        row = clean_row(ip, seen, connected, T0, MAX_AGE)
        if row is not None and is_alive(row.last_seen, T0, MAX_AGE):
            by_ip.setdefault(row.ip, []).append(row)
    assert {row.ip for row in got} == set(by_ip)
    for row in got:
        address = ipaddress.ip_address(row.ip)
        assert usable(address) and "%" not in row.ip
        assert is_alive(row.last_seen, T0, MAX_AGE) and sane(row.last_seen, T0)
        assert row.last_connected is None or MIN_TIME <= row.last_connected <= row.last_seen
        assert row.last_seen == max(r.last_seen for r in by_ip[row.ip])
