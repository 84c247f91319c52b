"""The published numbers (``results/published.toml``): loaded, validated and looked up.

Every published figure lives in that one file with its source; the table and the report read it
here, and tests rebuild the card's aggregates from it instead of retyping numbers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from rdmeval.errors import RdmevalError
from rdmeval.prompts.geneval import TAGS
from rdmeval.specs import SpecError, Where, array_of_tables, check_keys, from_mapping, keys_of, read_toml

PUBLISHED_FILE = "published.toml"
FORMAT = 1

#: The benchmarks of the card and the (category, metric) pairs a published value may have on each.
BENCHMARKS: dict[str, str] = {
    "geneval": "GenEval (553 prompts x 4 images, mmdet scorer)",
    "coco-val": "PickScore on COCO-val captions",
    "pickapic-test": "PickScore on the 499 Pick-a-Pic test prompts",
}
GENEVAL_OVERALL = ("overall", "overall")
PICKSCORE_MEAN = ("all", "pickscore_mean")

class PublishedFileError(SpecError):
    """``published.toml`` is malformed; the message names the entry and the field."""


@dataclass(frozen=True)
class PublishedRun:
    id: str
    label: str
    source: str
    description: str = ""
    primary: bool = False
    protocol: str = ""  # the protocol the source states it used (printed beside its numbers)


@dataclass(frozen=True)
class PublishedValue:
    run: str
    model: str
    benchmark: str
    category: str
    metric: str
    value: float
    text: str
    decimals: int
    approx: bool = False
    same_weights: bool = True  # False: another checkpoint than the one rdmeval reproduces (no delta)
    note: str = ""
    differs: str = ""  # how the source's protocol differs from rdmeval's; non-empty: flagged, no delta
    source: str = ""  # the run's source unless the entry names its own

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.run, self.model, self.benchmark, self.category, self.metric)


_VALUE_FIELDS = keys_of(PublishedValue)  # the keys of a [[values]] table, in file-format order


@dataclass(frozen=True)
class Published:
    path: Path
    version: str
    runs: dict[str, PublishedRun]
    values: tuple[PublishedValue, ...]

    @property
    def primary(self) -> PublishedRun:
        return next(r for r in self.runs.values() if r.primary)

    def get(
        self, model: str, benchmark: str, category: str, metric: str, run: str | None = None
    ) -> PublishedValue | None:
        """The value of ``run`` (default: the primary run) for this cell, or None if it was not published."""
        run = run or self.primary.id
        for v in self.values:
            if v.key == (run, model, benchmark, category, metric):
                return v
        return None

    def select(self, **fields: str) -> list[PublishedValue]:
        """Values whose fields equal all of ``fields`` (e.g. ``run="card", model="student"``), file order."""
        for name in fields:
            if name not in _VALUE_FIELDS:
                raise RdmevalError(f"published values have no field {name!r}; fields: {', '.join(_VALUE_FIELDS)}")
        return [v for v in self.values if all(getattr(v, k) == want for k, want in fields.items())]

    def task_values(self, model: str, run: str | None = None, benchmark: str = "geneval") -> dict[str, PublishedValue]:
        """The published GenEval task accuracies of one model in one run, in GenEval's task order."""
        run = run or self.primary.id
        found = {v.category: v for v in self.select(run=run, model=model, benchmark=benchmark, metric="accuracy")}
        return {tag: found[tag] for tag in TAGS if tag in found}

    def other_runs(self) -> list[PublishedRun]:
        return [r for r in self.runs.values() if not r.primary]


def _parse_runs(raw: Any, top: Where) -> dict[str, PublishedRun]:
    if not isinstance(raw, dict) or not raw:
        raise PublishedFileError(f"{top.file}: needs a [runs.<id>] table for every reported run (found none)")
    runs: dict[str, PublishedRun] = {}
    for run_id, spec in raw.items():
        where = top.child("runs").child(run_id)
        run = from_mapping(PublishedRun, spec, where, error=PublishedFileError, id=run_id)
        for field in ("label", "source"):
            if not getattr(run, field).strip():
                raise PublishedFileError(f"{where}: key '{field}' is required (a non-empty string naming where the numbers were published)")
        runs[run_id] = run
    primaries = [r.id for r in runs.values() if r.primary]
    if len(primaries) != 1:
        raise PublishedFileError(
            f"{top.file}: exactly one run must have primary = true (the table's published column), found {primaries or 'none'}"
        )
    return runs


def _check_value_semantics(where: str, v: PublishedValue) -> None:
    if v.benchmark not in BENCHMARKS:
        raise PublishedFileError(f"{where}: benchmark {v.benchmark!r} is not one of {', '.join(BENCHMARKS)}")
    if not math.isfinite(v.value):
        raise PublishedFileError(f"{where}: value must be a finite number, got {v.value!r}")
    if v.decimals < 0 or v.decimals > 6:
        raise PublishedFileError(f"{where}: decimals must be 0..6 (the decimals the source printed), got {v.decimals}")
    if v.benchmark == "geneval":
        allowed = {GENEVAL_OVERALL} | {(tag, "accuracy") for tag in TAGS}
        if (v.category, v.metric) not in allowed:
            raise PublishedFileError(
                f"{where}: a GenEval value needs category 'overall' with metric 'overall', or a task "
                f"({', '.join(TAGS)}) with metric 'accuracy'; got category {v.category!r}, metric {v.metric!r}"
            )
        if not 0.0 <= v.value <= 1.0:
            raise PublishedFileError(
                f"{where}: GenEval values are fractions in [0, 1] (write 99.4 % as 0.994), got {v.value}"
            )
    elif (v.category, v.metric) != PICKSCORE_MEAN:
        raise PublishedFileError(
            f"{where}: a PickScore value needs category 'all' and metric 'pickscore_mean', got {v.category!r}/{v.metric!r}"
        )
    # The printed text must say the same number as the value (a typo in one of them is caught here).
    shown = v.text.strip().lstrip("~≈").rstrip("%").strip()
    try:
        printed = float(shown)
    except ValueError:
        raise PublishedFileError(f"{where}: text {v.text!r} is not a number as printed (e.g. '0.8258', '~0.42', '99.4')") from None
    scale = 100.0 if (v.benchmark == "geneval" and v.metric == "accuracy") else 1.0
    if abs(printed / scale - v.value) > 0.5 * 10.0 ** (-v.decimals) + 1e-12:
        raise PublishedFileError(
            f"{where}: text {v.text!r} and value {v.value} disagree at {v.decimals} decimals "
            f"({'per-task GenEval text is in %, value a fraction' if scale != 1 else 'they must print the same number'})"
        )
    if v.text.strip().startswith(("~", "≈")) and not v.approx:
        raise PublishedFileError(f"{where}: text {v.text!r} is approximate; set approx = true")


def _parse_values(raw: Any, runs: dict[str, PublishedRun], top: Where) -> tuple[PublishedValue, ...]:
    if not isinstance(raw, list) or not raw:
        raise PublishedFileError(f"{top.file}: needs [[values]] entries (found none)")
    array_of_tables({"values": raw}, "values", top, PublishedFileError)
    out: list[PublishedValue] = []
    seen: dict[tuple[str, ...], Where] = {}
    for i, entry in enumerate(raw):
        where = top.child("values").item(i)
        value = from_mapping(PublishedValue, entry, where, error=PublishedFileError)
        if value.run not in runs:
            raise PublishedFileError(f"{where}: run {value.run!r} has no [runs.{value.run}] table; known runs: {', '.join(runs)}")
        value = dataclasses.replace(value, value=float(value.value), source=value.source or runs[value.run].source)
        where = top.child("values").item(i, f"{value.run}/{value.model}/{value.benchmark}/{value.category}")
        _check_value_semantics(str(where), value)
        if value.key in seen:
            raise PublishedFileError(f"{where}: duplicates entry {seen[value.key]} (same run, model, benchmark, category, metric)")
        seen[value.key] = where
        out.append(value)
    return tuple(out)


def parse_published(data: dict[str, Any], path: str | Path = PUBLISHED_FILE) -> Published:
    """Validate the parsed TOML document ``data`` (``path`` only names it in messages)."""
    path = Path(path)
    if data.get("format") != FORMAT:
        raise PublishedFileError(f"{path}: 'format' must be {FORMAT} (this rdmeval reads format {FORMAT}), got {data.get('format')!r}")
    if not isinstance(data.get("version"), str):
        raise PublishedFileError(f"{path}: 'version' must be a string (bump it when a number or source changes)")
    top = Where(str(path))
    check_keys(data, ("format", "version", "runs", "values"), top, PublishedFileError)
    runs = _parse_runs(data.get("runs"), top)
    values = _parse_values(data.get("values"), runs, top)
    return Published(path=path, version=data["version"], runs=runs, values=values)


def published_path() -> Path:
    from rdmeval._assets import asset_dir

    return asset_dir("results") / PUBLISHED_FILE


def load_published(path: str | Path | None = None) -> Published:
    """Load and validate ``results/published.toml`` (or ``path``)."""
    p = Path(path) if path is not None else published_path()
    return parse_published(read_toml(p, PublishedFileError, f"published numbers file not found: {p}"), p)


def task_mean(values: Iterable[PublishedValue]) -> float:
    """Unweighted mean of task accuracies (GenEval's overall rule), for checking a published overall."""
    vals = [v.value for v in values]
    if not vals:
        raise RdmevalError("no task values to average")
    return sum(vals) / len(vals)
