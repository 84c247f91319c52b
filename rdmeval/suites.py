"""Suite specs (benchmarks/*.toml): which models run on which benchmarks, under which protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdmeval._assets import asset_dir
from rdmeval.api import Benchmark, Registry, SeedPolicy
from rdmeval.errors import RdmevalError
from rdmeval.generators.registry import MODELS, is_model
from rdmeval.specs import SpecError, Where, array_of_tables, check_keys, did_you_mean, from_mapping, read_toml
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
    sweep_subset: tuple[str, ...] = ()  # benchmarks `rdmeval sweep` runs by default (all when empty)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "source": self.source}


def suites() -> Registry[Path]:
    """The suites shipped in benchmarks/, by name (``paper-table`` -> benchmarks/paper-table.toml)."""
    return Registry.of("suite", {p.stem: p for p in sorted(asset_dir("benchmarks").glob("*.toml"))},
                       suffix="; or pass the path of a suite TOML file")


@dataclass(frozen=True)
class _ModelTable:
    """A ``[[models]]`` table as written in the file."""

    name: str
    preset: str


@dataclass(frozen=True)
class _BenchmarkTable:
    """A ``[[benchmarks]]`` table as written in the file."""

    name: str
    prompts: str
    n_per_prompt: int
    ctx_len: int
    seed_policy: str
    scorers: list[str]
    batch_size: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _SmokeTable:
    """The ``[smoke]`` table: the suite on tiny offline models (per-benchmark tables keyed by benchmark name)."""

    resolution: int = 64
    prompts: dict[str, str] = field(default_factory=dict)
    n_per_prompt: dict[str, int] = field(default_factory=dict)
    detector_test_scale: list[int] | None = None
    limit: int | None = None
    also: list[str] = field(default_factory=list)  # suites a smoke run also runs into the same run root


@dataclass(frozen=True)
class _SuiteFile:
    """The top level of a suite file."""

    name: str
    version: str
    description: str = ""
    models: list[dict[str, Any]] = field(default_factory=list)
    benchmarks: list[dict[str, Any]] = field(default_factory=list)
    smoke: dict[str, Any] = field(default_factory=dict)
    sweep_subset: list[str] = field(default_factory=list)


def _one_of(value: str, choices: tuple[str, ...] | dict[str, Any], what: str, where: Where) -> None:
    if value not in choices:
        raise SpecError(f"{where}: {what} {value!r} is not one of {', '.join(choices)}{did_you_mean(value, choices)}")


def smoke_also_file(suite_file: Path, name: str) -> Path:
    """A suite named in ``[smoke] also``: a name under benchmarks/, or a path relative to the suite file."""
    if name.endswith(".toml"):
        file = (Path(suite_file).parent / name).resolve()
        if not file.is_file():
            raise RdmevalError(f"no suite file {name} beside {Path(suite_file).name}")
        return file
    return suites().get(name)


def load_suite(path: str | Path) -> Suite:
    """Load and validate a suite; ``path`` may be a file or a name under benchmarks/ (e.g. 'paper-table')."""
    p = Path(path)
    if not p.exists() and not p.suffix:
        p = suites().get(str(path))
    raw = read_toml(p, missing=f"--suite {path}: no such file (suites live in benchmarks/, e.g. benchmarks/paper-table.toml)")
    top = Where(str(p))
    for key in ("models", "benchmarks"):
        array_of_tables(raw, key, top)
    suite = from_mapping(_SuiteFile, raw, top)
    models = []
    for i, m in enumerate(suite.models):
        where = top.child("models").item(i)
        model = from_mapping(_ModelTable, m, where)
        if not is_model(model.preset):
            _one_of(model.preset, tuple(MODELS) + ("diffusers:<hub id or folder>",), "preset", where)
        models.append(SuiteModel(model.name, model.preset))
    benches = []
    for i, b in enumerate(suite.benchmarks):
        where = top.child("benchmarks").item(i)
        bench = from_mapping(_BenchmarkTable, b, where)
        for s in bench.scorers:
            _one_of(s, SCORERS, "scorer", where)
        try:
            seeds = SeedPolicy.parse(bench.seed_policy)
        except RdmevalError as exc:
            raise SpecError(f"{where}: key 'seed_policy': {exc}") from None
        benches.append(
            SuiteBenchmark(
                name=bench.name,
                prompts=bench.prompts,
                n_per_prompt=bench.n_per_prompt,
                ctx_len=bench.ctx_len,
                seed_policy=seeds,
                scorers=tuple(bench.scorers),
                batch_size=bench.batch_size,
                params=dict(bench.params),
            )
        )
    if not models or not benches:
        raise SpecError(f"{p}: a suite needs at least one [[models]] and one [[benchmarks]] entry")
    smoke = from_mapping(_SmokeTable, suite.smoke, top.child("smoke"))
    names = [b.name for b in benches]
    for key in ("prompts", "n_per_prompt"):
        check_keys(getattr(smoke, key), names, top.child(f"smoke.{key}"))
    for name in suite.sweep_subset:
        _one_of(name, tuple(names), "benchmark", top.child("sweep_subset"))
    for other in smoke.also:
        try:
            smoke_also_file(p, other)
        except RdmevalError as exc:
            raise SpecError(f"{top.child('smoke.also')}: {exc}") from None
    return Suite(
        name=suite.name,
        version=suite.version,
        description=suite.description,
        models=tuple(models),
        benchmarks=tuple(benches),
        smoke=dict(suite.smoke),
        source=str(p),
        sweep_subset=tuple(suite.sweep_subset),
    )
