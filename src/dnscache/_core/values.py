"""Small value records: equality, hashing and a repr from ``__slots__``, nothing else.

The engine's internal records (an answer's life, a decision, a backend's answer,
the resolver's file facts, an address's health) were dataclasses. Each
``@dataclass`` costs about a millisecond to *create* (it compiles its methods
with ``exec``), paid by every program at its first ``import socket`` when
``PYTHONDNSCACHE=1``, and a frozen dataclass's ``__init__`` goes through
``object.__setattr__`` on every miss. A plain class with ``__slots__`` and a
hand-written ``__init__`` costs neither. They are immutable by convention:
nothing assigns to them after construction.
"""

from __future__ import annotations

from typing import Any


class Value:
    """Base of a slotted record: fields are the ``__slots__`` of the class, in order."""

    __slots__ = ()

    def _fields(self) -> tuple[Any, ...]:
        names: tuple[str, ...] = self.__slots__
        return tuple(getattr(self, name) for name in names)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Value)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        names: tuple[str, ...] = self.__slots__
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({inner})"
