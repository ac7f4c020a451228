"""A start-up activation still waiting for the program's first ``import socket``.

``startup`` registers the step that finishes it; ``patch``'s public functions run it
first (:func:`settle`), so that ``is_installed()``, ``install()`` and the rest always
see what the environment asked for. A module of its own so that neither of the two
imports the other for it (``startup`` imports ``patch`` to install).
"""

from __future__ import annotations

TYPE_CHECKING = False  # start-up path: not even typing or collections.abc
if TYPE_CHECKING:
    from collections.abc import Callable

_finish: Callable[[], None] | None = None


def wait_with(finish: Callable[[], None]) -> None:
    """Remember how to finish the waiting activation (``startup`` calls this)."""
    global _finish
    _finish = finish


def settle() -> None:
    """Finish a waiting start-up activation, if one is registered and can finish now."""
    finish = _finish
    if finish is not None:
        finish()
