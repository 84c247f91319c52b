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
``--set SOURCE.KEY=VALUE`` (``overrides``); a relative ``--set SOURCE.path`` is relative to the
working directory.
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

from rdmeval._assets import asset_dir
from rdmeval.api import Registry
from rdmeval.specs import SpecError, Where, array_of_tables, did_you_mean, from_mapping, keys_of, read_toml

KINDS: tuple[str, ...] = ("txt", "jsonl", "csv", "parquet", "coco", "prompt_set", "geneval_templates")
_EXT_KIND = {".txt": "txt", ".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class PoolSpecError(SpecError):
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


@dataclass(frozen=True)
class _SourceTable:
    """A ``[[source]]`` table as written in the file (or after ``--set`` overrides)."""

    name: str = ""
    kind: str | None = None
    path: str | None = None
    prompt_set: str | None = None
    weight: int | float | str | None = None
    rows: int | None = None
    field: str | None = None
    id_field: str | None = None
    captions: str = "first"
    expected_rows: int | None = None
    seed: int = 0
    n_per_task: int = 100
    classes_from: str = "geneval"
    note: str = ""


@dataclass(frozen=True)
class _SpecFile:
    """The top level of a pool spec file."""

    name: str = ""
    description: str = ""
    total_draws: int | None = None
    source: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


_SOURCE_KEYS = keys_of(_SourceTable)


def parse_overrides(items: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """``["coco.path=/x.json", "geneval.weight=16"]`` -> ``{"coco": {"path": "/x.json", "weight": 16}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        source, dot, attr = key.strip().rpartition(".")
        if not sep or not dot or not source or not attr:
            raise PoolSpecError(f"--set {item!r}: expected SOURCE.KEY=VALUE, e.g. --set coco-train2014.path=/data/captions_train2014.json")
        if attr not in _SOURCE_KEYS:
            raise PoolSpecError(
                f"--set {item!r}: unknown source key '{attr}'{did_you_mean(attr, _SOURCE_KEYS)}; "
                f"valid keys: {', '.join(sorted(_SOURCE_KEYS))}"
            )
        out.setdefault(source, {})[attr] = _toml_value(value.strip())
    return out


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def unset_variables(value: str) -> list[str]:
    """The ``${VAR}`` names in ``value`` that are not set (or empty) in the environment."""
    return [v for v in _ENV.findall(value) if not os.environ.get(v)]


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


def _source(raw: Mapping[str, Any], where: Where, base: Path | None) -> PoolSource:
    src = from_mapping(_SourceTable, raw, where, error=PoolSpecError)
    if not src.name:
        raise PoolSpecError(f"{where}: every source needs a 'name' (a short label used in reports and --set)")
    loc = f"{where.file} source '{src.name}'"
    path: Path | None = None
    if src.path:
        path = Path(_expand(src.path, loc))
        if not path.is_absolute() and base is not None:
            path = base / path
    kind = src.kind
    if kind is None:
        if src.prompt_set:
            kind = "prompt_set"
        elif path is not None and path.suffix.lower() in _EXT_KIND:
            kind = _EXT_KIND[path.suffix.lower()]
        elif path is not None and path.suffix.lower() == ".json":
            kind = "coco"
        else:
            raise PoolSpecError(f"{loc}: cannot tell the source kind; add kind = one of {', '.join(KINDS)}")
    if kind not in KINDS:
        raise PoolSpecError(f"{loc}: kind {kind!r} is not one of {', '.join(KINDS)}{did_you_mean(kind, KINDS)}")
    if kind == "prompt_set" and not src.prompt_set and path is None:
        raise PoolSpecError(f"{loc}: a prompt_set source needs prompt_set = NAME (e.g. \"geneval\") or a path")
    if kind in ("txt", "jsonl", "csv", "parquet", "coco") and path is None:
        raise PoolSpecError(f"{loc}: kind '{kind}' needs a path (set it in the spec or with --set {src.name}.path=FILE)")
    if src.weight is not None and src.rows is not None:
        raise PoolSpecError(f"{loc}: give either 'weight' (per row) or 'rows' (total for the source), not both")
    weight: Fraction | None = None
    if src.weight is not None:
        w = src.weight
        try:
            weight = Fraction(w) if not isinstance(w, float) else Fraction(w).limit_denominator(10**9)
        except (ValueError, ZeroDivisionError):
            raise PoolSpecError(f"{loc}: key 'weight' must be a number, got {w!r}") from None
        if weight < 0:
            raise PoolSpecError(f"{loc}: key 'weight' must be >= 0, got {w!r}")
    if src.captions not in ("first", "all"):
        raise PoolSpecError(f"{loc}: captions must be \"first\" or \"all\", got {src.captions!r}")
    return PoolSource(
        name=src.name,
        kind=kind,
        path=path,
        prompt_set=src.prompt_set or None,
        weight=weight,
        rows=_int(src.rows, f"{loc}: key 'rows'") if src.rows is not None else None,
        field=src.field or None,
        id_field=src.id_field or None,
        captions=src.captions,
        expected_rows=_int(src.expected_rows, f"{loc}: key 'expected_rows'") if src.expected_rows else None,
        seed=_int(src.seed, f"{loc}: key 'seed'"),
        n_per_task=_int(src.n_per_task, f"{loc}: key 'n_per_task'", 1),
        classes_from=src.classes_from,
        note=src.note,
    )


def pool_spec_from_dict(
    raw: Mapping[str, Any],
    *,
    file: Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> PoolSpec:
    top = Where(str(file) if file else "pool spec")
    sources_raw = array_of_tables(raw, "source", top, PoolSpecError)
    spec = from_mapping(_SpecFile, raw, top, error=PoolSpecError)
    if not sources_raw:
        raise PoolSpecError(f"{top.file}: no sources; add at least one [[source]] table")
    overrides = {k: dict(v) for k, v in (overrides or {}).items()}
    names = [s.get("name") for s in sources_raw]
    missing = set(overrides) - set(names)
    if missing:
        raise PoolSpecError(f"--set: no source named {sorted(missing)} in {top.file}; its sources are {names}")
    base = file.parent if file else None
    sources = []
    for i, s in enumerate(sources_raw):
        merged = {**s, **overrides.get(s.get("name"), {})}
        if "rows" in overrides.get(s.get("name"), {}):
            merged.pop("weight", None)
        if "weight" in overrides.get(s.get("name"), {}):
            merged.pop("rows", None)
        label = merged.get("name") if isinstance(merged.get("name"), str) else ""
        # a path given with --set is relative to the working directory, like any other command-line path
        paths_base = Path.cwd() if "path" in overrides.get(s.get("name"), {}) else base
        sources.append(_source(merged, top.child("source").item(i, label), paths_base))
    seen: set[str] = set()
    for src in sources:
        if src.name in seen:
            raise PoolSpecError(f"{top.file}: two sources are named '{src.name}'; names must be unique")
        seen.add(src.name)
    return PoolSpec(
        name=spec.name or (file.stem if file else "pool"),
        description=spec.description,
        sources=tuple(sources),
        total_draws=_int(spec.total_draws, f"{top}: key 'total_draws'", 1) if spec.total_draws is not None else None,
        file=file,
        overrides={f"{src}.{k}": str(v) for src, kv in overrides.items() for k, v in kv.items()},
    )


def pool_specs() -> Registry[Path]:
    """The pool specs shipped in benchmarks/pools/, by name (``rdm-s180-generator`` -> its TOML file)."""
    return Registry.of("pool spec", {p.stem: p for p in sorted((asset_dir("benchmarks") / "pools").glob("*.toml"))},
                       suffix="; or pass the path of a pool spec TOML file")


def pool_spec_file(path: str | os.PathLike[str]) -> Path:
    """The spec file of ``path``: the path itself, or a packaged spec by name (``rdm-s180-generator``)."""
    file = Path(path).expanduser()
    if not file.exists() and not file.suffix:
        file = pool_specs().get(str(path))
    return file


def load_pool_spec(path: str | os.PathLike[str], overrides: Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None) -> PoolSpec:
    """Read a TOML composition spec, by path or by the name of a packaged one (``rdm-s180-generator``);
    ``overrides`` as ``SOURCE.KEY=VALUE`` strings or a nested dict. Relative paths inside a spec resolve
    against the spec's own folder, so a packaged spec works from any working directory; a relative path
    given as an override (``--set SOURCE.path=FILE``) resolves against the working directory."""
    file = pool_spec_file(path)
    raw = read_toml(file, PoolSpecError, f"{file}: no such pool spec (a TOML file with [[source]] tables)")
    if overrides is None or isinstance(overrides, Mapping):
        parsed = overrides
    else:
        parsed = parse_overrides(overrides)
    return pool_spec_from_dict(raw, file=file.resolve(), overrides=parsed)
