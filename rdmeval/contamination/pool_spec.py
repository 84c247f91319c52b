"""Pool composition specs: which sources make up a training pool, and how often each row is drawn.

A spec is a TOML file::

    name = "rdm-s180-generator"
    description = "..."
    total_draws = 1843200          # optional: training draws (steps x batch), for expected draws per prompt

    [[source]]
    name = "coco-train2014"
    kind = "coco"                  # txt | jsonl | csv | parquet | coco | prompt_set | geneval_templates
    path = "${RDMEVAL_COCO_TRAIN2014_CAPTIONS}"
    captions = "first"             # coco: "first" caption per image (sorted by image id) or "all"
    weight = 1                     # replication: each row stands for `weight` pool rows
    expected_rows = 82783          # optional check on the number of rows read

    [[source]]
    name = "geneval-x32"
    kind = "prompt_set"
    prompt_set = "geneval"         # any registered prompt set (or a prompt file in `path`)
    weight = 32

A source gives either ``weight`` (rows per row read; default 1) or ``rows`` (the total rows it
contributes, spread evenly over the rows read: ``weight = rows / rows_read``), for blocks whose
per-row counts are unknown. Paths may use ``${ENV_VAR}`` and ``~``; relative paths are relative to
the spec file. Any source key can be overridden from the command line with
``--set SOURCE.KEY=VALUE`` (``overrides``).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from rdmeval.errors import RdmevalError

KINDS: tuple[str, ...] = ("txt", "jsonl", "csv", "parquet", "coco", "prompt_set", "geneval_templates")
_EXT_KIND = {".txt": "txt", ".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_SOURCE_KEYS = {
    "name", "kind", "path", "prompt_set", "weight", "rows", "field", "id_field", "captions",
    "expected_rows", "seed", "n_per_task", "classes_from", "note",
}
_SPEC_KEYS = {"name", "description", "total_draws", "source", "note"}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class PoolSpecError(RdmevalError):
    """A pool composition spec is malformed; the message names the file, source and key."""


@dataclass(frozen=True)
class PoolSource:
    """One block of a training pool."""

    name: str
    kind: str
    path: Path | None = None
    prompt_set: str | None = None
    weight: Fraction | None = None
    rows: int | None = None
    field: str | None = None
    id_field: str | None = None
    captions: str = "first"
    expected_rows: int | None = None
    seed: int = 0
    n_per_task: int = 100
    classes_from: str = "geneval"
    note: str = ""

    def row_weight(self, rows_read: int) -> Fraction:
        """The replication weight of each row once the source has been read."""
        if self.rows is not None:
            if rows_read == 0:
                raise PoolSpecError(f"source '{self.name}': rows = {self.rows} but the source holds no rows")
            return Fraction(self.rows, rows_read)
        return self.weight if self.weight is not None else Fraction(1)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.path is not None:
            d["path"] = str(self.path)
        if self.prompt_set:
            d["prompt_set"] = self.prompt_set
        if self.rows is not None:
            d["rows"] = self.rows
        else:
            w = self.weight if self.weight is not None else Fraction(1)
            d["weight"] = int(w) if w.denominator == 1 else float(w)
        if self.kind == "coco":
            d["captions"] = self.captions
        if self.kind == "geneval_templates":
            d.update(seed=self.seed, n_per_task=self.n_per_task)
        if self.expected_rows is not None:
            d["expected_rows"] = self.expected_rows
        if self.note:
            d["note"] = self.note
        return d


@dataclass(frozen=True)
class PoolSpec:
    name: str
    sources: tuple[PoolSource, ...]
    description: str = ""
    total_draws: int | None = None
    file: Path | None = None
    overrides: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "file": str(self.file) if self.file else None,
            "total_draws": self.total_draws,
            "overrides": dict(self.overrides),
            "sources": [s.describe() for s in self.sources],
        }


def parse_overrides(items: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """``["coco.path=/x.json", "geneval.weight=16"]`` -> ``{"coco": {"path": "/x.json", "weight": 16}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        source, dot, attr = key.strip().rpartition(".")
        if not sep or not dot or not source or not attr:
            raise PoolSpecError(f"--set {item!r}: expected SOURCE.KEY=VALUE, e.g. --set coco-train2014.path=/data/captions_train2014.json")
        if attr not in _SOURCE_KEYS:
            raise PoolSpecError(f"--set {item!r}: unknown source key '{attr}'; valid keys: {', '.join(sorted(_SOURCE_KEYS))}")
        out.setdefault(source, {})[attr] = _toml_value(value.strip())
    return out


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _expand(value: str, where: str) -> str:
    def sub(m: re.Match[str]) -> str:
        var = m.group(1)
        if var not in os.environ or not os.environ[var]:
            raise PoolSpecError(
                f"{where}: path uses ${{{var}}}, which is not set. Set it (export {var}=/path/to/file) "
                f"or override the path with --set SOURCE.path=/path/to/file"
            )
        return os.environ[var]

    return os.path.expanduser(_ENV.sub(sub, value))


def _int(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PoolSpecError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


def _source(raw: Mapping[str, Any], i: int, base: Path | None, where: str) -> PoolSource:
    loc = f"{where} source #{i + 1}"
    unknown = set(raw) - _SOURCE_KEYS
    if unknown:
        raise PoolSpecError(f"{loc}: unknown key(s) {sorted(unknown)}; valid keys: {', '.join(sorted(_SOURCE_KEYS))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise PoolSpecError(f"{loc}: every source needs a 'name' (a short label used in reports and --set)")
    loc = f"{where} source '{name}'"
    path: Path | None = None
    if raw.get("path") not in (None, ""):
        if not isinstance(raw["path"], str):
            raise PoolSpecError(f"{loc}: 'path' must be a string")
        path = Path(_expand(raw["path"], loc))
        if not path.is_absolute() and base is not None:
            path = base / path
    kind = raw.get("kind")
    if kind is None:
        if raw.get("prompt_set"):
            kind = "prompt_set"
        elif path is not None and path.suffix.lower() in _EXT_KIND:
            kind = _EXT_KIND[path.suffix.lower()]
        elif path is not None and path.suffix.lower() == ".json":
            kind = "coco"
        else:
            raise PoolSpecError(f"{loc}: cannot tell the source kind; add kind = one of {', '.join(KINDS)}")
    if kind not in KINDS:
        raise PoolSpecError(f"{loc}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if kind == "prompt_set" and not raw.get("prompt_set") and path is None:
        raise PoolSpecError(f"{loc}: a prompt_set source needs prompt_set = NAME (e.g. \"geneval\") or a path")
    if kind in ("txt", "jsonl", "csv", "parquet", "coco") and path is None:
        raise PoolSpecError(f"{loc}: kind '{kind}' needs a path (set it in the spec or with --set {name}.path=FILE)")
    if "weight" in raw and "rows" in raw:
        raise PoolSpecError(f"{loc}: give either 'weight' (per row) or 'rows' (total for the source), not both")
    weight: Fraction | None = None
    if "weight" in raw:
        w = raw["weight"]
        if isinstance(w, bool) or not isinstance(w, (int, float, str)):
            raise PoolSpecError(f"{loc}: 'weight' must be a number, got {w!r}")
        try:
            weight = Fraction(w) if not isinstance(w, float) else Fraction(w).limit_denominator(10**9)
        except (ValueError, ZeroDivisionError):
            raise PoolSpecError(f"{loc}: 'weight' must be a number, got {w!r}") from None
        if weight < 0:
            raise PoolSpecError(f"{loc}: 'weight' must be >= 0, got {w!r}")
    rows = _int(raw["rows"], f"{loc}: 'rows'") if "rows" in raw else None
    captions = raw.get("captions", "first")
    if captions not in ("first", "all"):
        raise PoolSpecError(f"{loc}: captions must be \"first\" or \"all\", got {captions!r}")
    expected = raw.get("expected_rows")
    return PoolSource(
        name=name,
        kind=kind,
        path=path,
        prompt_set=raw.get("prompt_set") or None,
        weight=weight,
        rows=rows,
        field=raw.get("field") or None,
        id_field=raw.get("id_field") or None,
        captions=captions,
        expected_rows=_int(expected, f"{loc}: 'expected_rows'") if expected not in (None, 0) else None,
        seed=_int(raw.get("seed", 0), f"{loc}: 'seed'"),
        n_per_task=_int(raw.get("n_per_task", 100), f"{loc}: 'n_per_task'", 1),
        classes_from=str(raw.get("classes_from", "geneval")),
        note=str(raw.get("note", "")),
    )


def pool_spec_from_dict(
    raw: Mapping[str, Any],
    *,
    file: Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> PoolSpec:
    where = str(file) if file else "pool spec"
    unknown = set(raw) - _SPEC_KEYS
    if unknown:
        raise PoolSpecError(f"{where}: unknown top-level key(s) {sorted(unknown)}; valid: {', '.join(sorted(_SPEC_KEYS))}")
    sources_raw = raw.get("source")
    if not isinstance(sources_raw, list) or not sources_raw:
        raise PoolSpecError(f"{where}: no sources; add at least one [[source]] table")
    overrides = {k: dict(v) for k, v in (overrides or {}).items()}
    names = [s.get("name") for s in sources_raw if isinstance(s, Mapping)]
    missing = set(overrides) - set(names)
    if missing:
        raise PoolSpecError(f"--set: no source named {sorted(missing)} in {where}; its sources are {names}")
    base = file.parent if file else None
    sources = []
    for i, s in enumerate(sources_raw):
        if not isinstance(s, Mapping):
            raise PoolSpecError(f"{where}: source #{i + 1} must be a table ([[source]])")
        merged = {**s, **overrides.get(s.get("name"), {})}
        if "rows" in overrides.get(s.get("name"), {}):
            merged.pop("weight", None)
        if "weight" in overrides.get(s.get("name"), {}):
            merged.pop("rows", None)
        sources.append(_source(merged, i, base, where))
    seen: set[str] = set()
    for s in sources:
        if s.name in seen:
            raise PoolSpecError(f"{where}: two sources are named '{s.name}'; names must be unique")
        seen.add(s.name)
    total = raw.get("total_draws")
    return PoolSpec(
        name=str(raw.get("name") or (file.stem if file else "pool")),
        description=str(raw.get("description", "")),
        sources=tuple(sources),
        total_draws=_int(total, f"{where}: total_draws", 1) if total is not None else None,
        file=file,
        overrides={f"{src}.{k}": str(v) for src, kv in overrides.items() for k, v in kv.items()},
    )


def load_pool_spec(path: str | os.PathLike[str], overrides: Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None) -> PoolSpec:
    """Read a TOML composition spec; ``overrides`` as ``SOURCE.KEY=VALUE`` strings or a nested dict."""
    file = Path(path).expanduser()
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PoolSpecError(f"{file}: no such pool spec (a TOML file with [[source]] tables)") from None
    except tomllib.TOMLDecodeError as exc:
        raise PoolSpecError(f"{file}: invalid TOML ({exc})") from None
    if overrides is None or isinstance(overrides, Mapping):
        parsed = overrides
    else:
        parsed = parse_overrides(overrides)
    return pool_spec_from_dict(raw, file=file.resolve(), overrides=parsed)
