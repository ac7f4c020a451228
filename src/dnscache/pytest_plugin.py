"""The pytest plugin (entry point ``pytest11: dnscache``): a fixture and a marker.

* ``@pytest.mark.dnscache(hosts={"api.example.com": ["127.0.0.1"]}, ttl=5)``
  runs the test inside ``dnscache.patched(...)`` with those options: name
  overrides without touching ``/etc/hosts``, or any other Config option. The
  marker alone is enough; the fixture is not needed.
* The ``dnscache`` fixture yields the Resolver of that block (so a test can
  look at ``stats()`` or ``entries()``); without a marker it patches with the
  defaults.

Markers on a class or module apply to every test in it; a closer marker's
options win over a farther one's. ``-p no:dnscache`` removes the fixture, the
marker and every hook below.

What the plugin costs a run that does not use it: registering the marker, and
one look for the marker on each collected test. There is no autouse fixture
(time-machine's and pytest-freezer's lesson): the marker's fixture is added at
collection to the tests that carry the marker, and only to them. Nothing here
imports more of ``dnscache`` than its lazy package until a test asks for it, so
coverage of dnscache itself starts before dnscache is imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._core.config import Config
    from ._engine.resolver import Resolver

MARKER = "dnscache"
# The fixture that applies a marker; private, so that a project's own fixture
# called "dnscache" (the name is also ours for the public fixture) never shadows it.
MARKER_FIXTURE = "_dnscache_marker"
_RESOLVER = pytest.StashKey["Resolver"]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(config=None, **options): run the test with socket.getaddrinfo cached by "
        "dnscache.patched(config, **options); e.g. hosts={'api.example.com': ['127.0.0.1']} "
        "points a name at a local server.",
    )


@pytest.hookimpl(trylast=True)  # after -k/-m and other plugins have deselected what won't run
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker(MARKER) is not None:
            _request_marker_fixture(item)


def _request_marker_fixture(item: pytest.Item) -> None:
    """Make ``item`` set up the marker's fixture before its own function-scoped fixtures.

    So the test's other fixtures run patched too, as they did when this was an
    autouse fixture; higher-scoped fixtures (a session's server) stay outside,
    as they would with an autouse one. A new list, not an insert: the
    parametrized siblings of a test share one closure list, and only the
    marked ones may get the fixture.
    """
    names = getattr(item, "fixturenames", None)
    if not isinstance(names, list) or MARKER_FIXTURE in names:
        return
    defs: Any = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    at = 0
    for at, name in enumerate(names):  # noqa: B007 (the index is the answer)
        fixturedefs = defs.get(name)
        if not fixturedefs or fixturedefs[-1].scope == "function":
            break
    else:
        at = len(names)
    item.fixturenames = [*names[:at], MARKER_FIXTURE, *names[at:]]  # type: ignore[attr-defined]


def _marker_config(node: pytest.Item) -> Config | None:
    """The Config of the dnscache markers on ``node`` and its parents; None if there are none."""
    markers = list(node.iter_markers(MARKER))  # closest first
    if not markers:
        return None
    from ._core.config import Config, check_options

    config = Config()
    for mark in reversed(markers):  # farthest first, so closer options win
        if len(mark.args) > 1:
            raise TypeError(f"@pytest.mark.{MARKER} takes at most one positional argument")
        if mark.args:
            base = mark.args[0]
            if not isinstance(base, Config):
                raise TypeError(
                    f"@pytest.mark.{MARKER}: the positional argument must be a dnscache.Config, "
                    f"not {type(base).__name__}"
                )
            config = base
        if mark.kwargs:
            check_options(mark.kwargs, f"@pytest.mark.{MARKER}()")
            config = config.replace(**mark.kwargs)
    return config


@contextmanager
def _patched(node: pytest.Item) -> Iterator[Resolver]:
    from ._activation.patch import patched

    with patched(_marker_config(node)) as resolver:
        node.stash[_RESOLVER] = resolver
        try:
            yield resolver
        finally:
            del node.stash[_RESOLVER]


@pytest.fixture(name=MARKER_FIXTURE)
def _dnscache_marker(request: pytest.FixtureRequest) -> Iterator[None]:
    """Apply the test's dnscache marker (added by collection to marked tests only)."""
    node = request.node
    assert isinstance(node, pytest.Item)
    with _patched(node):
        yield


@pytest.fixture
def dnscache(request: pytest.FixtureRequest) -> Iterator[Resolver]:
    """The Resolver answering ``socket.getaddrinfo`` during this test (options from the marker)."""
    node = request.node
    assert isinstance(node, pytest.Item)
    resolver = node.stash.get(_RESOLVER, None)
    if resolver is not None:  # the marker's block is already open
        yield resolver
        return
    with _patched(node) as resolver:
        yield resolver
