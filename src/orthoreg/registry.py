"""One registry type for every kind of plug-in: regularisers, relaxation rules, models, datasets,
attacks, report tables and figures.

A name is written once, where its thing is registered; lists, help text, the CLI's choices and the
error for an unknown name are derived from the registry. Every kind uses the same verbs: `register`
(refusing a second, different entry under a taken name), `get` (whose error lists what is
available), `names`, `describe`. `Registry.all()` lists every registry, so tests isolate them in one
loop. This module imports nothing of orthoreg: every other module may import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

Entry = TypeVar("Entry")


@dataclass(frozen=True)
class Registered(Generic[Entry]):
    """What a registry holds for one name: the entry and its one-line description."""

    entry: Entry
    description: str


class Registry(Generic[Entry]):
    """Named entries of one kind (`kind` names it in messages: "regulariser", "model", ...)."""

    _every: list[Registry] = []

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Registered[Entry]] = {}
        Registry._every.append(self)

    def register(self, name: str, entry: Entry, description: str = "") -> Entry:
        """File `entry` under `name`; registering the same entry again (a re-imported module) is a
        no-op, a different one under a taken name is refused."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        known = self._entries.get(name)
        if known is not None and not _same(known.entry, entry):
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = Registered(entry, description)
        return entry

    def decorator(self, name: str, description: str = "") -> Callable[[Entry], Entry]:
        """`@registry.decorator(name, description)` registers the decorated function or class."""

        def decorate(entry: Entry) -> Entry:
            return self.register(name, entry, description)

        return decorate

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            available = ", ".join(self.names()) or "none"
            raise ValueError(f"unknown {self.kind} {name!r}; available: {available}")
        return self._entries[name].entry

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._entries)

    def in_order(self) -> list[Entry]:
        """Every entry in registration order (report tables and figures are built in this order)."""
        return [registered.entry for registered in self._entries.values()]

    def describe(self) -> dict[str, str]:
        """Every name with its one-line description, sorted by name."""
        return {name: self._entries[name].description for name in self.names()}

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    @contextmanager
    def isolated(self) -> Iterator[None]:
        """Registrations made inside the block are forgotten when it ends (for tests)."""
        saved = dict(self._entries)
        try:
            yield
        finally:
            self._entries = saved

    @classmethod
    def all(cls) -> list[Registry]:
        """Every registry created so far, one per kind."""
        return list(cls._every)


def _same(known: object, entry: object) -> bool:
    """Two registrations are the same when they are the same object, or equal specs of one function."""
    return known is entry or known == entry
