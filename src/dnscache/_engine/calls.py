"""The slow path: from a call's arguments to an entry key, and from an entry to a finished view.

Everything the hit path could not answer comes here: arguments never seen,
views whose ``until`` passed (an answer due for refresh, a health penalty
that ended, the once-a-second check of the resolver's files, a note of use
for the persistent layer), and calls the original must answer (bad
arguments, IP literals, ``AI_NUMERICHOST``, families we do not cache,
re-entrant calls).

A miss asks libc once, for the name. What used to take a libc call each is
derived instead (``_core.addrinfo`` says why each is exact):

* the host is a name, not an address literal, when it cannot be one
  (``maybe_literal``); only hosts starting with a digit or holding a colon
  are put to libc with ``AI_NUMERICHOST``;
* the arguments are valid (the port, socket type, protocol and shaping flags,
  which glibc checks before it looks at the host): asked of the original
  once per *shape* of call, with a numeric host, and remembered; its answer
  is also the shape's template for that family;
* the tuples are built from the entry's addresses and the shape's templates,
  without a libc call per address (``addrinfo.build``).
"""

from __future__ import annotations

import math
import operator
import socket
from collections.abc import Callable
from typing import Any

from .._cache.entries import Entry, EntryKey, RawKey, View
from .._cache.store import Store
from .._connect.health import AddressHealth, order_addrinfos, order_expires_at
from .._core import addrinfo as ai
from .._core.config import Config
from .._core.names import encode_host, host_key
from .._sources.originals import lean
from .._sources.sysfiles import SystemFiles
from . import answers, callouts
from .lookup import Lookups
from .persisted import Persisted
from .stats import Counters

# Argument tuples already found not cacheable (IP literals above all) are
# remembered, so such a call costs the original's time plus a dict lookup, not a
# probe and a numeric check each time. Cleared when full.
MAX_PASSTHROUGH = 1024
# Shapes of call (port, its class, family, type, proto, flags) whose arguments the
# original accepted, with their templates per address family. A program uses a
# handful; cleared when full, and when the system's files change.
MAX_SHAPES = 1024

_index = operator.index
Shape = tuple[Any, ...]
Templates = dict[int, ai.Template]


def raw_key(host: Any, port: Any, family: Any, type: Any, proto: Any, flags: Any) -> RawKey | None:
    """The hit path's key for arguments it could not make one from, or None (not cacheable).

    The same tuple the hit path builds (see ``hitpath``), its four integers made
    plain ints with ``operator.index``: equal, and hashed alike.
    """
    try:
        key = (
            host,
            host.__class__,
            port,
            port.__class__,
            _index(family),
            _index(type),
            _index(proto),
            _index(flags),
        )
        hash(key)
    except Exception:
        return None
    return key


class Calls:
    """The slow path of one Resolver's ``getaddrinfo``."""

    def __init__(
        self,
        *,
        config: Config,
        original: ai.GetAddrInfo,
        store: Store,
        lookups: Lookups,
        files: SystemFiles,
        health: AddressHealth,
        persisted: Persisted,
        counters: Counters,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._original = lean(original)  # the stdlib's own, without its Enum calls
        self._store = store
        self._lookups = lookups
        self._files = files
        self._health = health
        self._persisted = persisted
        self._counters = counters
        self._clock = clock
        self._passthrough: dict[RawKey, None] = {}
        self._shapes: dict[Shape, Templates] = {}

    def call(
        self,
        host: Any,
        port: Any,
        family: Any,
        type: Any,
        proto: Any,
        flags: Any,
        raw: RawKey | None,
    ) -> list[ai.AddrInfo]:
        original = self._original
        if raw is None:
            raw = raw_key(host, port, family, type, proto, flags)
        if raw is None or self._config.disabled or raw in self._passthrough:
            return original(host, port, family, type, proto, flags)
        now = self._clock()
        if now >= self._files.next_check and self._files.check(now):
            with self._store.lock:  # as nscd does when /etc/hosts or resolv.conf change
                self._store.clear()
            self._shapes.clear()
        view = self._store.front.get(raw)
        if view is not None:
            entry = view.entry
            if now < entry.serve_until and now < view.health_until:
                return self._serve(view, entry, now)  # only a periodic check was due
            ekey = view.key
        else:
            decided = self._key_for(host, port, family, type, proto, flags, raw)
            if decided is None:
                if len(self._passthrough) >= MAX_PASSTHROUGH:
                    self._passthrough.clear()
                self._passthrough[raw] = None
                return original(host, port, family, type, proto, flags)
            ekey = decided
        found = self._lookups.entry_for(ekey, now)
        if found is None:  # a re-entrant call the cache cannot answer fresh
            return original(host, port, family, type, proto, flags)
        if view is None or view.entry is not found or now >= view.health_until:
            view = self._make_view(found, port, raw, now)
            with self._store.lock:
                self._store.add_view(raw, view)
        self._revalidate(view, found, now)
        return self._answer(view)

    def _serve(self, view: View, entry: Entry, now: float) -> list[ai.AddrInfo]:
        """A hit that the hit path sent here for a periodic check only."""
        self._store.reads.append(view.key)
        entry.hits += 1
        if view.result is not None:
            self._counters.hits += 1
        else:
            self._counters.negative_hits += 1
        self._revalidate(view, entry, now)
        return self._answer(view)

    def _revalidate(self, view: View, entry: Entry, now: float) -> None:
        """Note a use for the persistent layer if due; move the view's ``until``."""
        persisted = self._persisted
        touch_at = persisted.touch_due(entry, now)
        if now >= touch_at and not callouts.inside():
            persisted.touch(entry, now)
            touch_at = persisted.touch_due(entry, now)
        view.until = min(entry.serve_until, view.health_until, self._files.next_check, touch_at)

    @staticmethod
    def _answer(view: View) -> list[ai.AddrInfo]:
        if view.result is not None:
            return view.result.copy()
        raise socket.gaierror(*view.error)  # type: ignore[misc]

    def _key_for(
        self, host: Any, port: Any, family: Any, type: Any, proto: Any, flags: Any, raw: RawKey
    ) -> EntryKey | None:
        """The entry key for arguments not seen before, or None: straight to the original.

        None for what is never cached (anything but a str/bytes host, AI_NUMERICHOST,
        other families, IP literals) and for whatever the original rejects (it then
        raises its own exception). The literal check comes first: it may cost one
        numeric lookup and makes the argument probe pointless.
        """
        try:
            iflags = _index(flags)  # an IntFlag's & is Python code
        except TypeError:  # not an int at all: the original says what is wrong
            return None
        if (
            not isinstance(host, str | bytes)
            or iflags & ai.NUMERICHOST
            or family not in ai.CACHED_FAMILIES
        ):
            return None
        try:
            encoded = encode_host(host)
        except UnicodeError:
            return None
        if not encoded or b"\0" in encoded:
            return None
        if ai.maybe_literal(encoded, iflags) and ai.is_numeric_host(self._original, encoded):
            return None
        shape_known = raw[2:] in self._shapes
        if not shape_known and self._probe(port, family, type, proto, flags, raw) is None:
            return None
        keep_case = bool(iflags & ai.CANONNAME)
        return (
            host_key(encoded, self._files.facts, keep_case=keep_case),
            _index(family),
            ai.entry_flags(iflags),
        )

    def _probe(
        self, port: Any, family: Any, type: Any, proto: Any, flags: Any, raw: RawKey
    ) -> Templates | None:
        """The templates of a shape of call not seen yet; None if the original rejects it.

        glibc checks flags, family, socket type, protocol and service before it
        resolves the name, so a bad port must win over a bad host, with no query:
        the first call of a shape asks the original about a numeric host.
        """
        try:
            result = ai.probe_args(self._original, port, family, type, proto, flags)
        except Exception:
            return None
        templates: Templates = {}
        template = ai.template_of(result)
        if template is not None:
            templates[ai.AF_INET6 if family == ai.AF_INET6 else ai.AF_INET] = template
        if ai.numeric_port(port):
            # A service name is looked up in /etc/services (or NIS...) by every libc
            # call, which we do not watch: its templates are learnt again for each
            # view, as the original would look it up again for each call.
            shapes = self._shapes
            if len(shapes) >= MAX_SHAPES:
                shapes.clear()
            shapes[raw[2:]] = templates
        return templates

    def _tuples(self, entry: Entry, port: Any, raw: RawKey) -> list[ai.AddrInfo]:
        """The finished tuples of ``raw``'s call from ``entry`` (see the module docstring)."""
        family, type, proto, flags = raw[4:8]
        canon = bool(_index(flags) & ai.CANONNAME)
        templates = self._shapes.get(raw[2:])
        if templates is None:  # the shapes were cleared since this call's key was made
            templates = self._probe(port, family, type, proto, flags, raw)
        if templates is not None:
            result = ai.build(entry.packed, templates, entry.canonname, canon)
            if result is not None:
                return result
            # A family this shape has no template for yet (an IPv6 address of an
            # AF_UNSPEC answer, say): learn it once, from the original.
            learnt = False
            for af in (ai.AF_INET, ai.AF_INET6):
                if af not in templates:
                    try:
                        template = ai.learn(self._original, port, af, type, proto, flags)
                    except Exception:
                        continue
                    if template is not None:
                        templates[af] = template
                        learnt = True
            if learnt:
                result = ai.build(entry.packed, templates, entry.canonname, canon)
                if result is not None:
                    return result
        # What no template describes: ask libc about each address, as the original would.
        return ai.synthesize(
            self._original, entry.addresses, entry.canonname, port, type, proto, flags
        )

    def _make_view(self, entry: Entry, port: Any, raw: RawKey, now: float) -> View:
        if entry.error is not None:
            return View(entry, None, entry.error)
        result = self._tuples(entry, port, raw)
        until = math.inf
        records = self._health.records(answers.text(entry.host))
        if records:
            # Addresses that just failed to connect go last (and the one that last
            # worked first) until the penalty runs out: the view expires then.
            penalty = self._config.failure_penalty
            result = order_addrinfos(result, records, now, penalty)
            until = order_expires_at(records, records, now, penalty)
        return View(entry, result, None, until)
