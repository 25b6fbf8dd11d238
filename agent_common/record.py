"""Equality, repr and (optionally) immutability for small value classes, without dataclasses.

``import dataclasses`` pulls in inspect, ast, dis, tokenize and friends: about
1.3 MiB of resident memory that an idle agent would carry for its whole life
(its RSS is benchmarked). The value classes on the agents' paths therefore
write their ``__init__`` by hand and take the rest from here, behaving as the
dataclass they replace: ``__eq__`` compares the fields of two instances of the
same class, ``__repr__`` is ``Name(field=value, ...)``, a mutable record is
unhashable and a frozen one refuses assignment and hashes its fields.
"""
from __future__ import annotations


class Record:
    """Base of a mutable value class; a subclass lists its fields, in ``__init__`` order, in ``_fields``."""

    __slots__ = ()
    _fields: tuple = ()
    #: Fields left out of ``__repr__`` (a bulky or secret-bearing attribute).
    _repr_skip: frozenset = frozenset()

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable and compared by value, as an eq dataclass

    def __repr__(self) -> str:
        shown = ("%s=%r" % (name, getattr(self, name)) for name in self._fields if name not in self._repr_skip)
        return "%s(%s)" % (self.__class__.__qualname__, ", ".join(shown))


class FrozenRecord(Record):
    """Base of an immutable value class: ``__init__`` sets the fields through ``_freeze``."""

    __slots__ = ()

    def _freeze(self, *values: object) -> None:
        """Set the fields, given in ``_fields`` order; the only way to assign them."""
        for name, value in zip(self._fields, values):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("cannot assign to field %r of frozen %s" % (name, self.__class__.__qualname__))

    def __delattr__(self, name: str) -> None:
        raise AttributeError("cannot delete field %r of frozen %s" % (name, self.__class__.__qualname__))

    def __hash__(self) -> int:
        return hash(self._values())
