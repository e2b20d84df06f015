"""A base for small value classes that stay off ``typing.NamedTuple``.

Creating a ``NamedTuple`` class costs about 0.2 ms of import time (``typing``
compiles its annotations), and the Lambda adapter's cold start imports over
a dozen of them. Subclasses list their fields in ``_fields`` and set them in
``__init__``; this base gives them equality, hashing, a ``repr`` and
``_replace`` the way a ``NamedTuple`` would.
"""

from __future__ import annotations

# typing.TYPE_CHECKING without importing typing (docs/cold-start.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar

    _V = TypeVar("_V", bound="Value")


class Value:
    """Equality, hash, ``repr`` and ``_replace`` from the fields in ``_fields``."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Value)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"

    def _replace(self: _V, **changes: Any) -> _V:
        """A copy with the given fields changed (no validation, as NamedTuple)."""
        unknown = set(changes) - set(self._fields)
        if unknown:
            raise ValueError(f"got unexpected field names: {sorted(unknown)!r}")
        copy = object.__new__(type(self))
        for name in self._fields:
            object.__setattr__(copy, name, changes.get(name, getattr(self, name)))
        return copy
