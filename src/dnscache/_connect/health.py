"""Address health: remember which addresses of a name connect, and order by it.

Happy Eyeballs (``_connect``) bounds what a dead address costs to one
Connection Attempt Delay per call, but a cache serves the same answer for the
record's whole lifetime, so without memory every connection pays that delay
again. RFC 8305 section 4 allows the sorted list to use "historical data" (it
names RTTs); we keep the simplest history that helps, per (host, ip):

* an address that failed to connect within ``failure_penalty`` seconds goes
  last, so the race reaches it only after everything else failed or the delay
  passed; several such addresses keep the order of their failures, the most
  recently failed last (the one that has had the most time to recover leads);
* among the others, the one that most recently connected goes first (a
  connection that worked is the best predictor of one that will), and the rest
  keep the resolver's order, which carries RFC 6724 and the server's intent
  (round-robin included), so we change as little of it as we can.

Only the latest event of an address counts: a success clears its failure, and a
failure withdraws its claim to go first. A failure older than
``failure_penalty`` is forgotten for ordering, leaving the address in the
resolver's place; the record stays so that callers can still see it.

The ordering is a pure function of the records and ``now``
(:func:`order_by_health`, :func:`order_addrinfos`, :func:`order_addresses`),
and :class:`AddressHealth` is the bounded, thread-safe store of the records.
``record`` says whether the change may alter *that host's* ordering, so a
cache of ordered results rebuilds only that host's results (it needs an index
by host for that: walking every entry per connect outcome was the cost of issue
11 item 11), and keeps them until the time from :func:`order_expires_at` (when
a penalty runs out) comes. ``version`` increases on every such change, for
callers that cache across hosts.

Each event costs O(1) plus a pass over that host's own addresses (at most
``DEFAULT_MAX_ADDRESSES``), under one lock that is never held while calling
anything outside this module (no logging, no callbacks): callers act on the
answer after the lock is released. The common event, a connect succeeding to
the address that already goes first, changes nothing and costs one dict read
without the lock (:meth:`AddressHealth.record_success`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from .._core.addrinfo import Address, AddrInfo
from .._core.values import Value

# One entry per host name that is connected to; 10,000 names is far more than a
# process talks to (a crawler being the exception that the LRU serves), and at a
# few hundred bytes each stays in the low megabytes.
DEFAULT_MAX_HOSTS = 10_000
# Per host: large round-robin pools answer with at most a few dozen addresses per
# response; a name whose answers rotate through more than this forgets the
# addresses it touched least recently, which costs only their history.
DEFAULT_MAX_ADDRESSES = 64

_T = TypeVar("_T")


class Record(Value):
    """What was last seen of one address: clock times, None for never."""

    __slots__ = ("last_failure", "last_success")

    def __init__(
        self, last_success: float | None = None, last_failure: float | None = None
    ) -> None:
        self.last_success = last_success
        self.last_failure = last_failure


def _failure(record: Record) -> float | None:
    """The time of the record's failure if that is its latest event (a tie counts as failure)."""
    failure = record.last_failure
    if failure is None or (record.last_success is not None and record.last_success > failure):
        return None
    return failure


def _penalty_end(record: Record | None, failure_penalty: float) -> float | None:
    """When the record's failure stops counting for ordering; None if it has none that counts."""
    failure = None if record is None else _failure(record)
    if failure is None or failure_penalty <= 0:
        return None
    return failure + failure_penalty


def is_penalised(record: Record | None, now: float, failure_penalty: float) -> bool:
    """True while a failure (the address's latest event) is younger than ``failure_penalty``."""
    end = _penalty_end(record, failure_penalty)
    return end is not None and now < end


def order_by_health(
    ips: Sequence[str], records: Mapping[str, Record], now: float, failure_penalty: float
) -> list[str]:
    """``ips`` (distinct, in the resolver's order) reordered by health (see module doc)."""
    healthy: list[str] = []
    penalised: list[tuple[float, str]] = []
    best = -1
    best_time = -math.inf
    for ip in ips:
        record = records.get(ip)
        if record is None:
            healthy.append(ip)
        elif (end := _penalty_end(record, failure_penalty)) is not None and now < end:
            # Sort by the failure time itself: with an infinite penalty every end is inf.
            penalised.append((record.last_failure or 0.0, ip))
        else:
            success = record.last_success
            if _failure(record) is None and success is not None and success > best_time:
                best, best_time = len(healthy), success
            healthy.append(ip)
    if best > 0:
        healthy.insert(0, healthy.pop(best))
    penalised.sort(key=lambda item: item[0])  # stable: equal times keep the resolver's order
    return healthy + [ip for _, ip in penalised]


def order_expires_at(
    ips: Iterable[str], records: Mapping[str, Record], now: float, failure_penalty: float
) -> float:
    """When :func:`order_by_health` may next answer differently without a new record (or inf)."""
    end = math.inf
    for ip in ips:
        ends = _penalty_end(records.get(ip), failure_penalty)
        if ends is not None and now < ends:
            end = min(end, ends)
    return end


def _regroup(
    items: Sequence[_T],
    ip_of: Callable[[_T], str],
    records: Mapping[str, Record],
    now: float,
    failure_penalty: float,
) -> list[_T]:
    if not records:
        return list(items)
    groups: dict[str, list[_T]] = {}
    for item in items:
        groups.setdefault(ip_of(item), []).append(item)
    ordered = order_by_health(list(groups), records, now, failure_penalty)
    return [item for ip in ordered for item in groups[ip]]


def order_addrinfos(
    addrinfos: Sequence[AddrInfo], records: Mapping[str, Record], now: float, failure_penalty: float
) -> list[AddrInfo]:
    """getaddrinfo tuples ordered by health, the tuples of each address kept together in order."""
    return _regroup(addrinfos, lambda info: str(info[4][0]), records, now, failure_penalty)


def order_addresses(
    addresses: Sequence[Address], records: Mapping[str, Record], now: float, failure_penalty: float
) -> list[Address]:
    """(family, sockaddr) pairs ordered by health, like :func:`order_addrinfos`."""
    return _regroup(addresses, lambda address: str(address[1][0]), records, now, failure_penalty)


def _preferred(addresses: Mapping[str, Record]) -> str | None:
    """The address that goes first when all are in the answer: unique latest success, or None."""
    best: str | None = None
    best_time = -math.inf
    tied = False
    for ip, record in addresses.items():
        success = record.last_success
        if success is None or _failure(record) is not None:
            continue
        if success > best_time:
            best, best_time, tied = ip, success, False
        elif success == best_time:
            tied = True
    return None if tied else best


class AddressHealth:
    """Connect outcomes per (host, ip): bounded LRU of hosts, thread-safe (one lock).

    Hosts are used as given: callers normalise them (case, trailing dot) the way
    their cache keys do. Times come from ``clock`` unless passed explicitly.
    """

    def __init__(
        self,
        max_hosts: int = DEFAULT_MAX_HOSTS,
        max_addresses: int = DEFAULT_MAX_ADDRESSES,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_hosts < 1 or max_addresses < 1:
            raise ValueError("max_hosts and max_addresses must be at least 1")
        self._max_hosts = max_hosts
        self._max_addresses = max_addresses
        self._clock = clock
        self._lock = threading.Lock()
        # host -> ip -> Record; both levels in least-recently-used-first order.
        self._hosts: OrderedDict[str, dict[str, Record]] = OrderedDict()
        # host -> the address that goes first (_preferred), for hosts that have one;
        # written under the lock, read without it by record_success.
        self._first: dict[str, str] = {}
        self._version = 0

    @property
    def version(self) -> int:
        """Increases whenever a change may alter some ordering; read without the lock."""
        return self._version

    def record(self, host: str, ip: str, ok: bool, now: float | None = None) -> bool:
        """Note a successful (``ok``) or failed connect to ``ip`` of ``host``.

        True if ``host``'s ordering may have changed. A host evicted to make room
        loses its records without being reported: its cached orders were made from
        what it knew, which stays a fair guess until they expire.
        """
        if now is None:
            now = self._clock()
        with self._lock:
            addresses = self._hosts.get(host)
            if addresses is None:
                addresses = self._hosts[host] = {}
                while len(self._hosts) > self._max_hosts:
                    evicted, _ = self._hosts.popitem(last=False)
                    self._first.pop(evicted, None)
                    self._version += 1
            else:
                self._hosts.move_to_end(host)
            old = addresses.get(ip)
            # Re-recording the address that already goes first changes no order.
            changed = not ok or old is None or self._first.get(host) != ip
            new = Record(now) if ok else Record(old.last_success if old else None, now)
            addresses.pop(ip, None)
            addresses[ip] = new  # at the end: most recently used
            while len(addresses) > self._max_addresses:
                del addresses[next(iter(addresses))]
                self._version += 1
                changed = True
            if changed:
                self._version += 1
                self._set_first(host, addresses)
            return changed

    def record_success(self, host: str, ip: str, now: float | None = None) -> bool:
        """:meth:`record` of a success; without the lock when ``ip`` already goes first.

        Skipping the new time keeps every ordering: while ``ip`` goes first its
        success is the latest of the host's, and any other address's success or
        any failure takes the locked path and is compared with it. The one
        exception is a tie, another address succeeding at the very clock reading
        of a skipped success: the other address then goes first, where with
        both times recorded the resolver's order would break the tie. With a
        nanosecond monotonic clock that takes two connects ending at once, and
        either choice is a fair one.
        """
        if self._first.get(host) == ip:
            return False
        return self.record(host, ip, True, now)

    def _set_first(self, host: str, addresses: Mapping[str, Record]) -> None:
        first = _preferred(addresses)
        if first is None:
            self._first.pop(host, None)
        else:
            self._first[host] = first

    def records(self, host: str) -> dict[str, Record]:
        """A copy of ``host``'s records (empty if none); counts as a use for the LRU."""
        with self._lock:
            addresses = self._hosts.get(host)
            if addresses is None:
                return {}
            self._hosts.move_to_end(host)
            return dict(addresses)

    def order(
        self, host: str, ips: Sequence[str], failure_penalty: float, now: float | None = None
    ) -> list[str]:
        """:func:`order_by_health` over ``host``'s records."""
        if now is None:
            now = self._clock()
        return order_by_health(ips, self.records(host), now, failure_penalty)

    def after_fork_in_child(self) -> None:
        """A fresh lock: the parent's may have been held by a thread the child lacks."""
        self._lock = threading.Lock()

    def forget_missing(self, host: str, ips: Iterable[str]) -> None:
        """Drop ``host``'s records of addresses no longer in its answer (``ips``)."""
        keep = set(ips)
        with self._lock:
            addresses = self._hosts.get(host)
            if addresses is None:
                return
            gone = [ip for ip in addresses if ip not in keep]
            for ip in gone:
                del addresses[ip]
            if not addresses:
                del self._hosts[host]
            if gone:
                self._version += 1
                self._set_first(host, addresses)

    def forget(self, host: str | None = None) -> None:
        """Drop ``host``'s records, or everything when None."""
        with self._lock:
            if host is None:
                changed = bool(self._hosts)
                self._hosts.clear()
                self._first.clear()
            else:
                changed = self._hosts.pop(host, None) is not None
                self._first.pop(host, None)
            if changed:
                self._version += 1

    def __len__(self) -> int:
        """The number of hosts with records."""
        return len(self._hosts)

    def __repr__(self) -> str:
        return f"<dnscache.AddressHealth hosts={len(self)} version={self._version}>"
