"""The store on its own: TLRU with the read buffer, bounded views, host index, flights."""

from __future__ import annotations

import socket
from typing import Any

from dnscache._cache.entries import Entry, EntryKey, Flight, View, open_gate, pass_gate
from dnscache._cache.store import MAX_VIEWS, Store
from dnscache._core.policy import lifetime

AF4 = int(socket.AF_INET)


def ekey(name: str, family: int = 0, flags: int = 0) -> EntryKey:
    return (name.encode(), family, flags)


def entry(name: str, *ips: str, now: float = 0.0, ttl: float = 60.0) -> Entry:
    addresses = tuple((AF4, (ip, 0)) for ip in (ips or ("127.0.0.1",)))
    return Entry(ekey(name), name, addresses, "", None, lifetime(now, ttl), "upstream")


def raw(name: str, port: Any = 80) -> tuple[Any, ...]:
    """A raw key as the hit path builds it (host, its class, port, its class, ints)."""
    return (name, str, port, type(port), 0, 0, 0, 0)


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(maxsize: int = 5, max_views: int = 1000, clock: Clock | None = None) -> Store:
    return Store(maxsize, max_views, clock or Clock())


def view(e: Entry) -> View:
    return View(e, [(AF4, socket.SOCK_STREAM, 6, "", (e.addresses[0][1][0], 80))], None)


def publish(store: Store, e: Entry, *raws: tuple[Any, ...]) -> None:
    for r in raws:
        store.add_view(r, view(e))


def names(store: Store) -> set[str]:
    return {e.name for e in store}


# --- LRU ---


def test_put_get_len() -> None:
    store = make(10)
    a = entry("a.test")
    assert store.put(a) is a
    assert store.get(a.key) is a
    assert store.get(ekey("b.test")) is None
    assert len(store) == 1
    assert list(store) == [a]


def test_lru_evicts_least_recently_inserted() -> None:
    store = make(2)
    for name in ("a", "b", "c"):
        store.put(entry(name))
    assert names(store) == {"b", "c"}
    assert store.evictions == 1


def test_get_is_a_use() -> None:
    store = make(2)
    store.put(entry("a"))
    store.put(entry("b"))
    store.get(ekey("a"))
    store.put(entry("c"))
    assert names(store) == {"a", "c"}
    assert store.evictions == 1


def test_read_buffer_counts_as_a_use() -> None:
    # The hit path records reads without the lock; the next insert replays them.
    store = make(2)
    store.put(entry("a"))
    store.put(entry("b"))
    store.reads.append(ekey("a"))
    store.put(entry("c"))
    assert names(store) == {"a", "c"}
    assert store.evictions == 1
    assert not store.reads  # replayed


def test_read_buffer_order_is_kept() -> None:
    store = make(3)
    for name in ("a", "b", "c"):
        store.put(entry(name))
    for name in ("c", "a", "b"):  # least recent is now c
        store.reads.append(ekey(name))
    store.put(entry("d"))
    assert names(store) == {"a", "b", "d"}


def test_reads_of_unknown_keys_are_ignored() -> None:
    store = make(2)
    store.put(entry("a"))
    store.reads.append(ekey("gone"))
    store.reads.append(ekey("a"))
    store.put(entry("b"))
    store.put(entry("c"))
    assert names(store) == {"b", "c"}


def test_clear_counts_no_evictions() -> None:
    store = make(2)
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
    store = make(5)
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
    store = make(5)
    a = entry("a")
    store.put(a)
    v = view(a)
    store.add_view(raw("a"), v)
    assert store.front[raw("a")] is v
    assert a.views == [raw("a")]


def test_add_view_of_an_entry_not_stored_is_ignored() -> None:
    store = make(5)
    a = entry("a")
    store.add_view(raw("a"), view(a))
    assert store.front == {}
    store.put(a)
    replaced = entry("a", "127.0.0.9")
    store.put(replaced)
    store.add_view(raw("a"), view(a))  # made from the old entry: too late
    assert store.front == {}


def test_add_view_twice_is_one_view() -> None:
    store = make(5)
    a = entry("a")
    store.put(a)
    store.add_view(raw("a"), view(a))
    store.add_view(raw("a"), view(a))
    assert a.views == [raw("a")]
    assert len(store.front) == 1


def test_views_are_bounded_per_entry_oldest_first() -> None:
    store = make(5)
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
    store = make(2)
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
    store = make(5)
    old = entry("a", "127.0.0.1")
    store.put(old)
    publish(store, old, raw("a", 80), raw("a", 443))
    new = entry("a", "127.0.0.2", now=10.0)
    assert store.put(new) is new
    assert store.get(new.key) is new
    assert store.front == {}
    assert store.evictions == 0


def test_renewal_with_the_same_answer_keeps_views() -> None:
    store = make(5)
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
    store = make(5)
    error = (socket.EAI_NONAME, "Name or service not known")
    first = Entry(ekey("nx"), "nx", (), "", error, lifetime(0.0, 1.0), "upstream")
    store.put(first)
    store.add_view(raw("nx"), View(first, None, error))
    second = Entry(ekey("nx"), "nx", (), "", error, lifetime(5.0, 1.0), "upstream")
    assert store.put(second) is first
    assert raw("nx") in store.front


# --- single flight ---


def test_flights_register_and_finish() -> None:
    store = make()
    k = ekey("a")
    assert store.flight(k) is None
    flight = Flight(deadline=10.0, started=0.0)
    store.begin(k, flight)
    assert store.flight(k) is flight
    assert store.in_flight() == 1
    a = entry("a")
    assert store.finish(k, flight, a) is a
    assert flight.entry is a
    assert store.get(k) is a
    assert store.flight(k) is None


def test_flight_finished_empty_stores_nothing() -> None:
    store = make()
    k = ekey("a")
    flight = Flight(deadline=10.0, started=0.0)
    store.begin(k, flight)
    assert store.finish(k, flight, None) is None
    assert flight.entry is None
    assert len(store) == 0
    assert store.in_flight() == 0


def test_flight_finish_renews_the_stored_entry() -> None:
    store = make()
    old = entry("a", now=0.0)
    store.put(old)
    flight = Flight(deadline=10.0, started=0.0)
    store.begin(old.key, flight)
    assert store.finish(old.key, flight, entry("a", now=30.0)) is old
    assert flight.entry is old


def test_a_finished_flight_left_registered_counts_as_none() -> None:
    # A leader interrupted between ending its flight and unregistering it must not
    # leave the key blocked: the registry ignores (and drops) finished flights.
    store = make()
    k = ekey("a")
    flight = Flight(deadline=10.0, started=0.0)
    store.begin(k, flight)
    flight.finish()
    assert store.flight(k) is None
    assert store.in_flight() == 0


def test_the_gate_exists_only_for_waiters_and_lets_them_all_through() -> None:
    flight = Flight(deadline=10.0, started=0.0)
    gate = flight.waiter_gate()
    assert gate is not None and flight.waiter_gate() is gate
    assert not pass_gate(gate, 0.01)  # closed until the flight ends
    assert flight.finish() is gate
    open_gate(gate)
    assert pass_gate(gate, 0.01) and pass_gate(gate, 0.01)  # each waiter hands it on
    open_gate(gate)  # opening twice is harmless
    assert flight.waiter_gate() is None  # ended: nothing to wait for
    unwaited = Flight(deadline=10.0, started=0.0)
    assert unwaited.finish() is None


# --- expiry (cachetools TLRUCache) ---


def test_entries_expire_at_the_end_of_their_stale_window() -> None:
    clock = Clock()
    store = make(clock=clock)
    a = entry("a", ttl=10.0)  # no stale window: stale_until == expires == 10
    store.put(a)
    publish(store, a, raw("a"))
    clock.now = 9.9
    assert store.get(a.key) is a
    clock.now = 10.0
    assert store.get(a.key) is None
    store.put(entry("b", now=10.0))  # a write: the cache drops what expired, and its views
    assert names(store) == {"b"}
    assert raw("a") not in store.front
    assert store.evictions == 0  # expiry is not eviction
    assert store.of_host(b"a") == []


def test_an_answer_already_past_its_window_is_not_kept() -> None:
    clock = Clock(100.0)
    store = make(clock=clock)
    store.put(entry("a", now=0.0, ttl=10.0))
    assert len(store) == 0
    assert store.of_host(b"a") == []


# --- the host index ---


def test_of_host_finds_every_family_and_spelling_of_a_host() -> None:
    store = make(3)
    v4 = Entry((b"svc.test", 2, 0), "svc.test", (), "", None, lifetime(0.0, 60.0), "upstream")
    dot = Entry((b"SVC.test.", 0, 0), "SVC.test.", (), "", None, lifetime(0.0, 60.0), "upstream")
    other = entry("other.test")
    for e in (v4, dot, other):
        store.put(e)
    assert {e.key for e in store.of_host(b"svc.test")} == {v4.key, dot.key}
    store.remove(v4.key)
    assert [e.key for e in store.of_host(b"svc.test")] == [dot.key]
    store.put(entry("x1"))
    store.put(entry("x2"))
    store.put(entry("x3"))  # evicts the least recently used
    assert store.of_host(b"svc.test") == []  # the index follows evictions too


def test_the_host_index_grows_and_shrinks_through_one_key_and_a_set() -> None:
    store = make(10)
    life = lifetime(0.0, 60.0)
    made = [Entry((b"h.test", f, 0), "h.test", (), "", None, life, "upstream") for f in (0, 2, 10)]
    for count, e in enumerate(made, 1):
        store.put(e)
        store.put(e)  # the same entry again changes nothing
        assert {x.key for x in store.of_host(b"h.test")} == {x.key for x in made[:count]}
    for gone in (made[1], made[0], made[2]):
        store.remove(gone.key)
        made.remove(gone)
        assert {x.key for x in store.of_host(b"h.test")} == {x.key for x in made}
    assert store._by_host == {}


# --- the total bound on views ---


def test_views_are_bounded_in_all_oldest_first() -> None:
    store = make(10, max_views=4)
    a, b = entry("a"), entry("b")
    store.put(a)
    store.put(b)
    publish(store, a, raw("a", 1), raw("a", 2), raw("a", 3))
    publish(store, b, raw("b", 1), raw("b", 2))
    assert len(store.front) == 4
    assert raw("a", 1) not in store.front
    assert a.views == [raw("a", 2), raw("a", 3)]


def test_a_rebuilt_view_replaces_the_old_one() -> None:
    # After a health penalty ends the view is rebuilt in the resolver's order: it must
    # be published, or that host never returns to the lock-free hit path.
    store = make()
    a = entry("a")
    store.put(a)
    first = view(a)
    store.add_view(raw("a"), first)
    second = view(a)
    assert store.add_view(raw("a"), second)
    assert store.front[raw("a")] is second
    assert a.views == [raw("a")]
