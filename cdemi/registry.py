"""A tiny name -> factory registry; the project keeps one per concern.

Each concern (architectures, datasets, MI hosts, condensation methods) owns one
:class:`Registry`.  A name in ``params.yaml`` maps to exactly one registered
factory; an unknown name fails with the list of known ones.
"""
from __future__ import annotations

from typing import Callable, Dict, Generic, Iterator, TypeVar

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """Maps names to factories.

    :param kind: what the registry holds, used in error messages ("architecture").
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``fn`` under ``name``; a name may be taken once."""

        def wrap(fn: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = fn
            return fn

        return wrap

    def get(self, name: str) -> T:
        """The factory registered under ``name``.

        :raises KeyError: naming the unknown value and every known one.
        """
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
