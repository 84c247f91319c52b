"""Suite specs (benchmarks/*.toml): which models run on which benchmarks, under which protocol."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rdmeval._assets import asset_dir
from rdmeval.api import Benchmark, Registry, SeedPolicy
from rdmeval.errors import RdmevalError
from rdmeval.generators.registry import MODELS
from rdmeval.scorers.registry import SCORERS

__all__ = ["SCORERS", "Suite", "SuiteBenchmark", "SuiteModel", "load_suite", "suites"]


@dataclass(frozen=True)
class SuiteModel:
    name: str
    preset: str


#: A suite's benchmark entry is the :class:`rdmeval.api.Benchmark` spec.
SuiteBenchmark = Benchmark


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    description: str
    models: tuple[SuiteModel, ...]
    benchmarks: tuple[SuiteBenchmark, ...]
    smoke: dict[str, Any]
    source: str

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "source": self.source}


def suites() -> Registry[Path]:
    """The suites shipped in benchmarks/, by name (``paper-table`` -> benchmarks/paper-table.toml)."""
    return Registry.of("suite", {p.stem: p for p in sorted(asset_dir("benchmarks").glob("*.toml"))},
                       suffix="; or pass the path of a suite TOML file")


def _need(table: dict[str, Any], key: str, where: str, kind: type) -> Any:
    if key not in table:
        raise RdmevalError(f"{where}: missing field '{key}'")
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RdmevalError(f"{where}: field '{key}' must be {kind.__name__}, got {value!r}")
    return value


def load_suite(path: str | Path) -> Suite:
    """Load and validate a suite; ``path`` may be a file or a name under benchmarks/ (e.g. 'paper-table')."""
    p = Path(path)
    if not p.exists() and not p.suffix:
        p = suites().get(str(path))
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RdmevalError(f"--suite {path}: no such file (suites live in benchmarks/, e.g. benchmarks/paper-table.toml)") from None
    except tomllib.TOMLDecodeError as exc:
        raise RdmevalError(f"{p}: invalid TOML ({exc})") from None
    models = []
    for i, m in enumerate(raw.get("models", [])):
        where = f"{p}: models[{i}]"
        preset = _need(m, "preset", where, str)
        if preset not in MODELS:
            raise RdmevalError(f"{where}: preset {preset!r} is not one of {', '.join(MODELS)}")
        models.append(SuiteModel(_need(m, "name", where, str), preset))
    benches = []
    for i, b in enumerate(raw.get("benchmarks", [])):
        where = f"{p}: benchmarks[{i}]"
        scorers = tuple(_need(b, "scorers", where, list))
        bad = [s for s in scorers if s not in SCORERS]
        if bad:
            raise RdmevalError(f"{where}: unknown scorer(s) {bad}; choose from {', '.join(SCORERS)}")
        try:
            seeds = SeedPolicy.parse(_need(b, "seed_policy", where, str))
        except RdmevalError as exc:
            raise RdmevalError(f"{where}: {exc}") from None
        benches.append(
            SuiteBenchmark(
                name=_need(b, "name", where, str),
                prompts=_need(b, "prompts", where, str),
                n_per_prompt=_need(b, "n_per_prompt", where, int),
                ctx_len=_need(b, "ctx_len", where, int),
                seed_policy=seeds,
                scorers=scorers,
                batch_size=_need(b, "batch_size", where, int),
                params=dict(b.get("params", {})),
            )
        )
    if not models or not benches:
        raise RdmevalError(f"{p}: a suite needs at least one [[models]] and one [[benchmarks]] entry")
    return Suite(
        name=_need(raw, "name", str(p), str),
        version=str(_need(raw, "version", str(p), str)),
        description=str(raw.get("description", "")),
        models=tuple(models),
        benchmarks=tuple(benches),
        smoke=dict(raw.get("smoke", {})),
        source=str(p),
    )
