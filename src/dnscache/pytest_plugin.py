"""The pytest plugin (entry point ``pytest11: dnscache``): a fixture and a marker.

* ``@pytest.mark.dnscache(hosts={"api.example.com": ["127.0.0.1"]}, ttl=5)``
  runs the test inside ``dnscache.patched(...)`` with those options: name
  overrides without touching ``/etc/hosts``, or any other Config option. The
  marker alone is enough; the fixture is not needed.
* The ``dnscache`` fixture yields the Resolver of that block (so a test can
  look at ``stats()`` or ``entries()``); without a marker it patches with the
  defaults.

Markers on a class or module apply to every test in it; a closer marker's
options win over a farther one's. Nothing here imports ``dnscache`` until a
test asks for it, so the plugin costs nothing in test suites that never do
(and coverage of dnscache itself starts before dnscache is imported).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._core.config import Config
    from ._engine.resolver import Resolver

MARKER = "dnscache"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(config=None, **options): run the test with socket.getaddrinfo cached by "
        "dnscache.patched(config, **options); e.g. hosts={'api.example.com': ['127.0.0.1']} "
        "points a name at a local server.",
    )


def _marker_config(node: pytest.Item) -> Config | None:
    """The Config of the dnscache markers on ``node`` and its parents; None if there are none."""
    markers = list(node.iter_markers(MARKER))  # closest first
    if not markers:
        return None
    from ._core.config import Config

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
            config = config.replace(**mark.kwargs)
    return config


def _patched(node: pytest.Item) -> Any:
    from ._activation.patch import patched

    return patched(_marker_config(node))


@pytest.fixture
def dnscache(request: pytest.FixtureRequest) -> Iterator[Resolver]:
    """The Resolver answering ``socket.getaddrinfo`` during this test (options from the marker)."""
    node = request.node
    assert isinstance(node, pytest.Item)
    with _patched(node) as resolver:
        yield resolver


@pytest.fixture(autouse=True)
def _dnscache_marker(request: pytest.FixtureRequest) -> Iterator[None]:
    """Apply a dnscache marker to a test that does not request the fixture."""
    node = request.node
    if (
        not isinstance(node, pytest.Item)
        or node.get_closest_marker(MARKER) is None
        or MARKER in request.fixturenames
    ):
        yield
        return
    with _patched(node):
        yield
