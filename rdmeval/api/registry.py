"""``Registry[T]``: named plugins (generators, scorers, prompt sets, suites), looked up lazily.

An entry is the object itself or a ``"package.module:attribute"`` placeholder, imported on first
``get``: listing names never imports a heavy backend (mmdet, diffusers). An unknown name is an
error that suggests the closest known one; registering a name twice is an error.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from rdmeval.errors import RdmevalError

T = TypeVar("T")


class UnknownName(RdmevalError):
    """A name that is not in a registry (the message says which names are)."""


class Registry(Generic[T]):
    """Names -> plugins of one kind (``kind`` names it in messages, e.g. "scorer")."""

    def __init__(self, kind: str, *, suffix: str = "") -> None:
        self.kind = kind
        self.suffix = suffix  # appended to the unknown-name message (another way out, e.g. "or pass a file")
        self._entries: dict[str, T | str] = {}
        self._descriptions: dict[str, str] = {}

    @classmethod
    def of(cls, kind: str, entries: Mapping[str, T], *, suffix: str = "") -> "Registry[T]":
        """A registry holding ``entries`` (already built objects)."""
        reg: Registry[T] = cls(kind, suffix=suffix)
        for name, value in entries.items():
            reg.register(name, value)
        return reg

    def register(self, name: str, target: T | str, description: str = "") -> None:
        """Add ``name``: an object, or ``"module:attribute"`` to import when first asked for."""
        if name in self._entries:
            raise RdmevalError(f"{self.kind} '{name}' is registered twice; each {self.kind} needs its own name")
        if isinstance(target, str) and ":" not in target:
            raise RdmevalError(f"{self.kind} '{name}': a lazy entry is 'package.module:attribute', got {target!r}")
        self._entries[name] = target
        self._descriptions[name] = description

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests and notebooks that register a plugin for a while)."""
        self._check(name)
        del self._entries[name], self._descriptions[name]

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def description(self, name: str) -> str:
        self._check(name)
        return self._descriptions[name]

    def get(self, name: str) -> T:
        """The plugin called ``name`` (imported now if it was registered lazily)."""
        self._check(name)
        target = self._entries[name]
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            self._entries[name] = target = obj
        return target  # type: ignore[return-value]

    def _check(self, name: str) -> None:
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), self._entries, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise UnknownName(f"unknown {self.kind} '{name}'.{hint} Available: {', '.join(sorted(self._entries))}{self.suffix}")
