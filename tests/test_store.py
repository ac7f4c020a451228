"""The store on its own: LRU with the read buffer, bounded views, single-flight bookkeeping."""

from __future__ import annotations

import socket
from typing import Any

from dnscache._cache.store import MAX_VIEWS, Entry, EntryKey, Store, View
from dnscache._core.policy import lifetime

AF4 = int(socket.AF_INET)


def ekey(name: str, family: int = 0, flags: int = 0) -> EntryKey:
    return (name.encode(), family, flags)


def entry(name: str, *ips: str, now: float = 0.0, ttl: float = 60.0) -> Entry:
    addresses = tuple((AF4, (ip, 0)) for ip in (ips or ("127.0.0.1",)))
    return Entry(ekey(name), name, addresses, "", None, lifetime(now, ttl), "upstream")


def raw(name: str, port: Any = 80) -> tuple[Any, ...]:
    """A raw key as the resolver builds it (host, port, port class, family, type, proto, flags)."""
    return (name, port, type(port), 0, 0, 0, 0)


def view(e: Entry) -> View:
    return View(e, [(AF4, socket.SOCK_STREAM, 6, "", (e.addresses[0][1][0], 80))], None)


def publish(store: Store, e: Entry, *raws: tuple[Any, ...]) -> None:
    for r in raws:
        store.add_view(r, view(e))


def names(store: Store) -> set[str]:
    return {e.name for e in store}


# --- LRU ---


def test_put_get_len() -> None:
    store = Store(10)
    a = entry("a.test")
    assert store.put(a) is a
    assert store.get(a.key) is a
    assert store.get(ekey("b.test")) is None
    assert len(store) == 1
    assert list(store) == [a]


def test_lru_evicts_least_recently_inserted() -> None:
    store = Store(2)
    for name in ("a", "b", "c"):
        store.put(entry(name))
    assert names(store) == {"b", "c"}
    assert store.evictions == 1


def test_get_is_a_use() -> None:
    store = Store(2)
    store.put(entry("a"))
    store.put(entry("b"))
    store.get(ekey("a"))
    store.put(entry("c"))
    assert names(store) == {"a", "c"}
    assert store.evictions == 1


def test_read_buffer_counts_as_a_use() -> None:
    # The hit path records reads without the lock; the next insert replays them.
    store = Store(2)
    store.put(entry("a"))
    store.put(entry("b"))
    store.reads.append(ekey("a"))
    store.put(entry("c"))
    assert names(store) == {"a", "c"}
    assert store.evictions == 1
    assert not store.reads  # replayed


def test_read_buffer_order_is_kept() -> None:
    store = Store(3)
    for name in ("a", "b", "c"):
        store.put(entry(name))
    for name in ("c", "a", "b"):  # least recent is now c
        store.reads.append(ekey(name))
    store.put(entry("d"))
    assert names(store) == {"a", "b", "d"}


def test_reads_of_unknown_keys_are_ignored() -> None:
    store = Store(2)
    store.put(entry("a"))
    store.reads.append(ekey("gone"))
    store.reads.append(ekey("a"))
    store.put(entry("b"))
    store.put(entry("c"))
    assert names(store) == {"b", "c"}


def test_clear_counts_no_evictions() -> None:
    store = Store(2)
    a = entry("a")
    store.put(a)
    publish(store, a, raw("a"))
    store.reads.append(a.key)
    store.clear()
    assert len(store) == 0
    assert store.front == {}
    assert not store.reads
    assert store.evictions == 0
    # Still bounded by the same maxsize after a clear.
    for name in ("x", "y", "z"):
        store.put(entry(name))
    assert names(store) == {"y", "z"}


def test_remove() -> None:
    store = Store(5)
    a, b = entry("a"), entry("b")
    store.put(a)
    store.put(b)
    publish(store, a, raw("a", 80), raw("a", 443))
    publish(store, b, raw("b"))
    store.remove(a.key)
    assert names(store) == {"b"}
    assert set(store.front) == {raw("b")}
    store.remove(ekey("never-there"))  # harmless
    assert store.evictions == 0


# --- views ---


def test_add_view_publishes_for_the_hit_path() -> None:
    store = Store(5)
    a = entry("a")
    store.put(a)
    v = view(a)
    store.add_view(raw("a"), v)
    assert store.front[raw("a")] is v
    assert a.views == [raw("a")]


def test_add_view_of_an_entry_not_stored_is_ignored() -> None:
    store = Store(5)
    a = entry("a")
    store.add_view(raw("a"), view(a))
    assert store.front == {}
    store.put(a)
    replaced = entry("a", "127.0.0.9")
    store.put(replaced)
    store.add_view(raw("a"), view(a))  # made from the old entry: too late
    assert store.front == {}


def test_add_view_twice_is_one_view() -> None:
    store = Store(5)
    a = entry("a")
    store.put(a)
    store.add_view(raw("a"), view(a))
    store.add_view(raw("a"), view(a))
    assert a.views == [raw("a")]
    assert len(store.front) == 1


def test_views_are_bounded_per_entry_oldest_first() -> None:
    store = Store(5)
    a, b = entry("a"), entry("b")
    store.put(a)
    store.put(b)
    publish(store, b, raw("b"))
    ports = range(1, MAX_VIEWS + 6)
    publish(store, a, *(raw("a", p) for p in ports))
    assert len(a.views) == MAX_VIEWS
    a_raws = {r for r in store.front if r[0] == "a"}
    assert a_raws == {raw("a", p) for p in list(ports)[-MAX_VIEWS:]}
    assert raw("b") in store.front  # another entry's views are untouched


def test_views_dropped_on_eviction() -> None:
    store = Store(2)
    a, b = entry("a"), entry("b")
    store.put(a)
    store.put(b)
    publish(store, a, raw("a", 80), raw("a", 443))
    publish(store, b, raw("b"))
    store.put(entry("c"))
    assert store.evictions == 1
    assert set(store.front) == {raw("b")}
    assert a.views == []


def test_replacement_with_a_different_answer_drops_views() -> None:
    store = Store(5)
    old = entry("a", "127.0.0.1")
    store.put(old)
    publish(store, old, raw("a", 80), raw("a", 443))
    new = entry("a", "127.0.0.2", now=10.0)
    assert store.put(new) is new
    assert store.get(new.key) is new
    assert store.front == {}
    assert store.evictions == 0


def test_renewal_with_the_same_answer_keeps_views() -> None:
    store = Store(5)
    old = entry("a", "127.0.0.1", now=0.0, ttl=60.0)
    store.put(old)
    publish(store, old, raw("a", 80), raw("a", 443))
    views_before = dict(store.front)
    same = entry("a", "127.0.0.1", now=100.0, ttl=60.0)
    assert store.put(same) is old  # the stored entry is renewed, not replaced
    assert store.get(old.key) is old
    assert old.life == same.life
    assert old.serve_until == same.life.refresh_at == 160.0
    assert store.front == views_before
    assert old.views == [raw("a", 80), raw("a", 443)]


def test_negative_entries_renew_too() -> None:
    store = Store(5)
    error = (socket.EAI_NONAME, "Name or service not known")
    first = Entry(ekey("nx"), "nx", (), "", error, lifetime(0.0, 1.0), "upstream")
    store.put(first)
    store.add_view(raw("nx"), View(first, None, error))
    second = Entry(ekey("nx"), "nx", (), "", error, lifetime(5.0, 1.0), "upstream")
    assert store.put(second) is first
    assert raw("nx") in store.front


# --- single flight ---


def test_flights() -> None:
    store = Store(5)
    k = ekey("a")
    flight, leader = store.begin(k)
    assert leader
    again, leader2 = store.begin(k)
    assert again is flight and not leader2
    assert store.in_flight() == 1
    other, leader3 = store.begin(ekey("b"))
    assert leader3 and other is not flight

    a = entry("a")
    assert store.end(k, flight, a) is a
    assert flight.entry is a
    assert store.get(k) is a
    assert store.in_flight() == 1

    nxt, leader4 = store.begin(k)
    assert leader4 and nxt is not flight


def test_flight_ended_empty_stores_nothing() -> None:
    store = Store(5)
    k = ekey("a")
    flight, _ = store.begin(k)
    assert store.end(k, flight, None) is None
    assert flight.entry is None
    assert len(store) == 0
    assert store.in_flight() == 0


def test_flight_end_renews_the_stored_entry() -> None:
    store = Store(5)
    old = entry("a", now=0.0)
    store.put(old)
    flight, _ = store.begin(old.key)
    assert store.end(old.key, flight, entry("a", now=30.0)) is old
    assert flight.entry is old
