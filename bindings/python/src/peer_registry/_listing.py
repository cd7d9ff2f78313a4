"""Listing: the result of Registry.list_with_generation (a tuple, without importing typing)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers know it)
if TYPE_CHECKING:
    from typing import List

    from .types import ServerEntry

__all__ = ["Listing"]


class Listing(tuple):  # type: ignore[type-arg]
    """The live entries together with the file generation they were read at.

    A ``(generation, servers)`` tuple with those two names, like a ``NamedTuple``.
    """

    __slots__ = ()
    _fields = ("generation", "servers")

    def __new__(cls, generation: int, servers: "List[ServerEntry]") -> "Listing":
        return tuple.__new__(cls, (generation, servers))

    def __getnewargs__(self) -> "tuple[int, List[ServerEntry]]":
        return (self[0], self[1])

    @property
    def generation(self) -> int:
        value: int = self[0]
        return value

    @property
    def servers(self) -> "List[ServerEntry]":
        value: "List[ServerEntry]" = self[1]
        return value

    def __repr__(self) -> str:
        return f"Listing(generation={self[0]!r}, servers={self[1]!r})"
