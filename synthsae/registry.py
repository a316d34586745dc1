"""A tiny name -> object registry, used instead of if/else chains (SAE variants, geometries, ...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from synthsae.errors import unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (usually classes). `kind` is used in error messages.

    >>> GEOMETRIES = Registry("dictionary geometry")
    >>> @GEOMETRIES.register("gaussian")
    ... class Gaussian: ...
    >>> GEOMETRIES.get("gaussian") is Gaussian
    True
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return decorate

    def get(self, name: str) -> T:
        if name not in self._items:
            unknown_name(self.kind, name, self._items)
        return self._items[name]

    def available(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self):
        return iter(self.available())
