"""One validation layer for rdmeval's spec files (suites, pool specs, published numbers, prompt sets).

Each file format is declared as a plain dataclass whose annotations are the raw TOML/JSON types;
``from_mapping`` checks a parsed table against it and builds the instance. The rules are the same
for every spec:

- an unknown key is an error, with a did-you-mean suggestion (``difflib``) and the valid keys;
- a missing required key (a field without a default) names the key and the expected type;
- a value of the wrong type names the key, the expected type and what was found.

Every message starts with a ``Where`` (the file and the table, e.g. ``benchmarks/x.toml:
benchmarks[2]``), so a user can go straight to the line to fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rdmeval.errors import RdmevalError

T = TypeVar("T")


class SpecError(RdmevalError):
    """A spec file is malformed; the message names the file, the table and the key, and what is expected."""


@dataclass(frozen=True)
class Where:
    """A place in a spec file: the file and a table path such as ``benchmarks[2]`` ('' = the top level)."""

    file: str
    table: str = ""

    def __str__(self) -> str:
        return f"{self.file}: {self.table}" if self.table else f"{self.file}: top level"

    def child(self, table: str) -> Where:
        """A table inside this one: ``Where(f, 'runs').child('card')`` is ``runs.card``."""
        return Where(self.file, f"{self.table}.{table}" if self.table else table)

    def item(self, i: int, label: str = "") -> Where:
        """Entry ``i`` (from 0) of the array of tables at this place, e.g. ``benchmarks[2]``."""
        return Where(self.file, f"{self.table}[{i}]" + (f" ({label})" if label else ""))


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or '' when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_keys(raw: Mapping[str, Any], allowed: Collection[str], where: Where, error: type[SpecError] = SpecError) -> None:
    """Raise ``error`` naming every key of ``raw`` that is not in ``allowed``, each with a did-you-mean."""
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        listed = "; ".join(f"'{k}'{did_you_mean(k, allowed)}" for k in unknown)
        noun = "key" if len(unknown) == 1 else "keys"
        raise error(f"{where}: unknown {noun} {listed}; valid keys: {', '.join(sorted(allowed))}")


def describe(annotation: Any) -> str:
    """A readable name for a raw type annotation: 'an integer', 'a list of strings', ..."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return "any value"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args if a is not type(None))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is list:
        return f"a list of {_plural(args[0])}" if args and args[0] is not Any else "a list"
    if origin is dict:
        return "a table" + (f" of {_plural(args[1])}" if len(args) == 2 and args[1] is not Any else "")
    return _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a table", list: "a list"}


def _plural(annotation: Any) -> str:
    return {str: "strings", int: "integers", float: "numbers", bool: "booleans"}.get(annotation, describe(annotation))


def conforms(value: Any, annotation: Any) -> bool:
    """Whether ``value`` (as parsed from TOML/JSON) has the raw type ``annotation``.

    bool is not an int here (TOML ``true`` is no count), and an int is a valid float (``value = 1``).
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return True
    if annotation is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if origin is list:
        return isinstance(value, list) and all(conforms(v, args[0]) for v in value) if args else isinstance(value, list)
    if origin is dict:
        if not isinstance(value, Mapping):
            return False
        return all(conforms(k, args[0]) and conforms(v, args[1]) for k, v in value.items()) if args else True
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _shown(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def from_mapping(cls: type[T], raw: Any, where: Where, *, error: type[SpecError] = SpecError, **fixed: Any) -> T:
    """Validate the table ``raw`` against the dataclass ``cls`` and build it.

    The dataclass's annotations are the raw types (``str``, ``int``, ``list[str]``, ``dict[str, Any]``,
    ``X | None``, ``Literal[...]``); fields without a default are required. ``fixed`` gives fields
    that do not come from the file (e.g. the ``name`` of a ``[name]`` table); they are not valid keys.
    """
    if not isinstance(raw, Mapping):
        raise error(f"{where}: must be a table, got {_shown(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in fixed}  # type: ignore[arg-type]
    check_keys(raw, fields, where, error)
    for name, f in fields.items():
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise error(f"{where}: key '{name}' is required ({describe(hints[name])})")
            continue
        if not conforms(raw[name], hints[name]):
            raise error(f"{where}: key '{name}' must be {describe(hints[name])}, got {_shown(raw[name])}")
    return cls(**{**raw, **fixed})


def keys_of(cls: type) -> tuple[str, ...]:
    """The keys a table of dataclass ``cls`` may hold, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.init)


def read_toml(path: Path, error: type[SpecError] = SpecError, missing: str = "") -> dict[str, Any]:
    """Parse a TOML spec file; a missing file or bad TOML raises ``error`` naming the file.

    ``missing`` replaces the default 'no such file' message (e.g. to say where such files live).
    """
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(missing or f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: invalid TOML ({exc})") from None


def array_of_tables(raw: Mapping[str, Any], key: str, where: Where, error: type[SpecError] = SpecError) -> list[Mapping[str, Any]]:
    """``raw[key]`` as a list of tables (``[[key]]``), [] when absent; anything else names the key."""
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise error(f"{where}: key '{key}' must be an array of tables ([[{key}]]), got {_shown(value)}")
    for i, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            raise error(f"{where.child(key).item(i)}: must be a table ([[{key}]]), got {_shown(entry)}")
    return value
