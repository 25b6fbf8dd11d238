"""Small value classes without dataclasses: fields declared once, one constructor, equality and repr.

``import dataclasses`` pulls in inspect, ast, dis, tokenize and friends: about
1.3 MiB of resident memory that an idle agent would carry for its whole life.
The value classes on the measured start-up paths therefore declare their fields
as class annotations, as a dataclass would, and take the rest from here: a
keyword-or-positional ``__init__`` with defaults (``fresh`` for a mutable one),
``__eq__`` comparing the fields of two instances of the same class, ``__repr__``
as ``Name(field=value, ...)``; a mutable record is unhashable and a frozen one
refuses assignment and hashes its fields.  Annotations stay strings
(``from __future__ import annotations``), so ``typing`` is not imported.

On the idle agent's and the hook start paths: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable


class _Fresh:
    """A default made anew for each instance."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def fresh(make: Callable[[], Any]) -> Any:
    """A field default built by calling ``make`` for each instance: ``groups: Dict[str, Any] = fresh(dict)``."""
    return _Fresh(make)


class Record:
    """Base of a mutable value class: its annotated public class attributes are its fields, in order.

    A field with a class-level value has that default; one without is required.
    """

    __slots__ = ()
    #: The field names in declaration order (the ``__init__`` positional order); set per subclass.
    _fields: tuple = ()
    #: Field name → default (a ``fresh`` one is built per instance); set per subclass.
    _defaults: dict = {}
    #: Fields left out of ``__repr__`` (a bulky or secret-bearing attribute).
    _repr_skip: frozenset = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = [name for name in cls.__dict__.get("__annotations__", {}) if not name.startswith("_")]
        if not own:
            return
        cls._fields = cls._fields + tuple(own)
        cls._defaults = dict(cls._defaults)
        for name in own:
            if name in cls.__dict__:
                cls._defaults[name] = cls.__dict__[name]
                delattr(cls, name)  # the instance always holds the value; no class attribute to shadow it

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        name_of = self.__class__.__qualname__
        if len(args) > len(self._fields):
            raise TypeError("%s takes at most %d arguments (%d given)" % (name_of, len(self._fields), len(args)))
        values = dict(zip(self._fields, args))
        for name, value in kwargs.items():
            if name not in self._fields:
                raise TypeError("%s got an unexpected keyword argument %r" % (name_of, name))
            if name in values:
                raise TypeError("%s got multiple values for argument %r" % (name_of, name))
            values[name] = value
        for name in self._fields:
            if name not in values:
                if name not in self._defaults:
                    raise TypeError("%s missing required argument %r" % (name_of, name))
                default = self._defaults[name]
                values[name] = default.make() if isinstance(default, _Fresh) else default
            object.__setattr__(self, name, values[name])

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    # Defining __eq__ without __hash__ leaves instances unhashable, as an eq dataclass: they are mutable.

    def __repr__(self) -> str:
        shown = ("%s=%r" % (name, getattr(self, name)) for name in self._fields if name not in self._repr_skip)
        return "%s(%s)" % (self.__class__.__qualname__, ", ".join(shown))


class FrozenRecord(Record):
    """Base of an immutable value class: fields are set once, by ``__init__``."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("cannot assign to field %r of frozen %s" % (name, self.__class__.__qualname__))

    def __delattr__(self, name: str) -> None:
        raise AttributeError("cannot delete field %r of frozen %s" % (name, self.__class__.__qualname__))

    def __hash__(self) -> int:
        return hash(self._values())
