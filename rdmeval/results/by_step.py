"""The table's "by step" view of a checkpoint sweep (``rdmeval sweep``), and which step is best.

A sweep's run root holds one model folder per checkpoint, ``runs/step_0000180/<benchmark>/``, and
``sweep.json`` (the series: each step's weight file, the declared step, the suite and the settings).
For such a root the table gains, per benchmark, a ``by-step:<benchmark>`` section (rows: the steps;
columns: each GenEval task and Overall, or the PickScore mean; the scorers' values and intervals) and a
``selection`` section: per benchmark, the best step, its gain over the declared step, and how much of
that gain choosing on the test prompts explains (:mod:`rdmeval.results.selection`). A root without
step folders gets no such section.

In the ``by-step`` sections the best cell of each column carries ``extra["best"]`` and the declared
step's cells ``extra["declared"]``; the report's metric-vs-step charts read them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rdmeval.api.layout import RunLayout
from rdmeval.bootstrap import LEVEL, N_RESAMPLES, SEED
from rdmeval.errors import RdmevalError
from rdmeval.io import atomic_write_json
from rdmeval.prompts.geneval import TAGS
from rdmeval.results.columns import FAMILY_LABELS, scorer_family
from rdmeval.results.paired import _geneval_setup, read_geneval_images
from rdmeval.results.runroot import RunRoot
from rdmeval.results.selection import best_index, geneval_step_scores, pickscore_step_scores, select
from rdmeval.results.steps import is_step_label, label_step, step_label
from rdmeval.results.table_model import INCOMPLETE, NOT_RUN, NOT_SCORED, OK, UNAVAILABLE, Cell, Section, _int, _num, fmt_number

__all__ = ["SWEEP_RECORD", "SweepRecord", "by_step_sections", "is_step_label", "label_step", "read_sweep_record",
           "save_sweep_record", "step_label", "sweep_steps"]

SWEEP_RECORD = "sweep.json"
SWEEP_FORMAT = "rdmeval-sweep"
#: The scorer that fills a family's section when a benchmark was scored more than one way.
PREFERRED = {"geneval": "geneval-mmdet", "pickscore": "pickscore"}


# ----------------------------------------------------------------------------- sweep.json


@dataclass(frozen=True)
class SweepRecord:
    """``sweep.json``: what ``rdmeval sweep`` evaluated into a run root."""

    checkpoints: dict[int, str]  # step -> weight file
    declared_step: int
    suite: dict[str, Any] = field(default_factory=dict)
    benchmarks: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # what every run of the sweep shares (base, precision ...)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["checkpoints"] = [{"step": s, "label": step_label(s), "path": p} for s, p in sorted(self.checkpoints.items())]
        return {"format": SWEEP_FORMAT, "version": 1, **d}


def read_sweep_record(root: str | Path) -> SweepRecord | None:
    """The sweep record of a run root, or None when it has none."""
    path = Path(root) / SWEEP_RECORD
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise RdmevalError(f"{path}: unreadable sweep record ({exc}); delete it and run `rdmeval sweep` again") from None
    if raw.get("format") != SWEEP_FORMAT:
        raise RdmevalError(f"{path}: not an rdmeval sweep record (format {raw.get('format')!r})")
    try:
        return SweepRecord(checkpoints={int(c["step"]): str(c["path"]) for c in raw["checkpoints"]},
                           declared_step=int(raw["declared_step"]), suite=dict(raw.get("suite", {})),
                           benchmarks=list(raw.get("benchmarks", [])), settings=dict(raw.get("settings", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise RdmevalError(f"{path}: malformed sweep record ({type(exc).__name__}: {exc}); delete it and sweep again") from None


def save_sweep_record(root: str | Path, record: SweepRecord) -> Path:
    return atomic_write_json(Path(root) / SWEEP_RECORD, record.to_dict())


# ----------------------------------------------------------------------------- sections


def sweep_steps(rr: RunRoot) -> dict[str, int]:
    """The step folders of a run root (label -> step), in step order."""
    labels = set(rr.rows["_model_key"].astype(str)) if not rr.rows.empty else set()
    labels |= {m for m, _ in rr.runs}
    found = {m: label_step(m) for m in labels}
    return {m: s for m, s in sorted(((m, s) for m, s in found.items() if s is not None), key=lambda x: x[1])}


def step_title(step: int) -> str:
    return f"step {step}"


@dataclass(frozen=True)
class _Column:
    key: str
    label: str
    category: str
    metric: str
    unit: str
    decimals: int


def _columns(family: str, rows: pd.DataFrame) -> list[_Column]:
    if family == "pickscore":
        return [_Column("all", "PickScore (mean over prompts)", "all", "pickscore_mean", "", 3)]
    found = set(rows.loc[rows["metric"] == "accuracy", "category"].astype(str))
    tasks = [t for t in TAGS if t in found] + sorted(found - set(TAGS))
    return [_Column(t, t, t, "accuracy", "%", 1) for t in tasks] + [_Column("overall", "overall", "overall", "overall", "%", 2)]


def _benchmarks(rr: RunRoot, labels: list[str]) -> list[tuple[str, str]]:
    """(benchmark folder, scorer) of every benchmark a step was scored on, one scorer per family."""
    if rr.rows.empty:
        return []
    mine = rr.rows[rr.rows["_model_key"].isin(labels)]
    out: dict[tuple[str, str], str] = {}
    for bench, scorer in sorted(set(zip(mine["_bench_key"].astype(str), mine["scorer"].astype(str)))):
        fam = scorer_family(scorer)
        if fam is None:
            continue
        if (bench, fam) not in out or scorer == PREFERRED.get(fam):
            out[(bench, fam)] = scorer
    return [(bench, scorer) for (bench, fam), scorer in sorted(out.items(), key=lambda kv: (kv[0][1] != "geneval", kv[0]))]


class _Bench:
    """One benchmark of the sweep: its rows per step, its cells and its per-prompt files."""

    def __init__(self, rr: RunRoot, bench: str, scorer: str, steps: dict[str, int]):
        self.rr, self.bench, self.scorer, self.steps = rr, bench, scorer, steps
        self.family = str(scorer_family(scorer))
        rows = rr.rows[(rr.rows["_bench_key"] == bench) & (rr.rows["scorer"] == scorer)]
        self.by_label = {m: g for m, g in rows.groupby("_model_key") if m in steps}
        self.columns = _columns(self.family, rows)
        self.prompt_sets = sorted(set(rows["benchmark"].astype(str)))

    def cell(self, label: str, col: _Column) -> Cell:
        rows = self.by_label.get(label)
        cell = Cell(unit=col.unit, decimals=col.decimals)
        if rows is None:
            run = self.rr.runs.get((label, self.bench))
            cell.status, cell.why = (NOT_SCORED, "not scored") if run is not None else (NOT_RUN, "not run")
            return cell
        hit = rows[(rows["category"] == col.category) & (rows["metric"] == col.metric)]
        if hit.empty:
            cell.status, cell.why = UNAVAILABLE, f"no {col.category}/{col.metric} row"
            return cell
        row = hit.iloc[0]
        cell.value, cell.ci_low, cell.ci_high = _num(row["value"]), _num(row.get("ci_low")), _num(row.get("ci_high"))
        cell.n, cell.n_prompts = _int(row.get("n")), _int(row.get("n_prompts"))
        run = Path(str(row["_run_dir"]))
        cell.run = str(run.relative_to(self.rr.root)) if run.is_relative_to(self.rr.root) else str(run)
        if row.get("complete") is not None and not bool(row.get("complete")):
            cell.status, cell.why = INCOMPLETE, "incomplete run"
        return cell

    def complete_labels(self) -> list[str]:
        return [m for m in self.steps if m in self.by_label and bool(self.by_label[m]["complete"].fillna(False).all())]

    def scores_dir(self, label: str) -> Path:
        rows = self.by_label[label]
        return RunLayout(Path(str(rows["_run_dir"].iloc[0]))).scores(str(rows["_scorer_dir"].iloc[0]))

    def setting_mismatch(self, labels: list[str]) -> str | None:
        """Why the scores of these steps cannot be compared (a run rescored with other options), or None."""
        seen: dict[str, list[str]] = {}
        for m in labels:
            try:
                if self.family == "geneval":
                    key = json.dumps(_geneval_setup(read_geneval_images(self.scores_dir(m))), sort_keys=True)
                else:
                    df = pd.read_parquet(self.scores_dir(m) / "per_prompt.parquet")
                    key = json.dumps(sorted(map(str, set(df["scorer_identity"])))) if "scorer_identity" in df else "null"
            except (RdmevalError, OSError, KeyError, ValueError):
                continue  # unreadable here: the selection cell says so itself
            seen.setdefault(key, []).append(step_title(self.steps[m]))
        if len(seen) < 2:
            return None
        groups = " vs ".join(", ".join(steps) for steps in seen.values())
        return (f"the steps were scored with different {FAMILY_LABELS.get(self.family, self.family)} settings ({groups}); "
                "score every step with the same options")


def _by_step_section(b: _Bench, declared: int) -> Section:
    labels = list(b.steps)
    cells = {(m, c.key): b.cell(m, c) for m in labels for c in b.columns}
    bests = []
    for c in b.columns:
        shown = [cells[(m, c.key)] for m in labels]
        values = [x.value if x.status == OK else None for x in shown]
        i = best_index(values)  # the first maximum: ties go to the earliest step
        if i is not None:
            shown[i].extra["best"] = True
            bests.append(f"{c.label} {step_title(b.steps[labels[i]])} ({fmt_number(values[i], c.decimals, c.unit)})")
    for m in labels:
        if b.steps[m] == declared:
            for c in b.columns:
                cells[(m, c.key)].extra["declared"] = True
    row_labels = [step_title(b.steps[m]) + (" (declared)" if b.steps[m] == declared else "") for m in labels]
    mismatch = b.setting_mismatch([m for m in labels if m in b.by_label])
    fam = FAMILY_LABELS.get(b.family, b.family)
    on = "" if b.prompt_sets == [b.bench] else f" ({', '.join(b.prompt_sets)} prompts)"
    notes = [
        f"One row per checkpoint of the sweep, by training step; values and {'accuracies in %, ' if b.family == 'geneval' else ''}"
        "intervals are the scorers' result rows (percentile bootstrap over prompts"
        + ("; within each task; Overall = unweighted mean of the tasks)." if b.family == "geneval" else ")."),
        "Best step per column (ties: the earliest): " + ("; ".join(bests) if bests else "none scored") + ".",
        f"Declared step: {declared} (fixed before looking at test scores; `rdmeval sweep --declared-step`, "
        "by default the last checkpoint). Picking the best row instead is a selection on the test set: see the selection section.",
    ]
    if mismatch:
        notes.insert(0, f"WARNING: {mismatch}: these rows are not comparable, nor is the best step.")
    return Section(f"by-step:{b.bench}", f"{fam} on {b.bench}{on}: by step", "checkpoint", labels, row_labels,
                   [c.key for c in b.columns], [c.label for c in b.columns], cells, notes)


def _selection_cell(b: _Bench, declared: int, n_resamples: int, seed: int, level: float) -> Cell:
    col = b.columns[-1]  # GenEval Overall, or the PickScore mean
    labels = b.complete_labels()
    if not any(b.steps[m] == declared for m in labels):
        return Cell(status=UNAVAILABLE, why=f"declared step {declared} has no complete scored run on {b.bench}")
    mismatch = b.setting_mismatch(labels)
    if mismatch:
        return Cell(status=UNAVAILABLE, why=f"not comparable: {mismatch}")
    try:
        if b.family == "geneval":
            images = {b.steps[m]: read_geneval_images(b.scores_dir(m)) for m in labels}
            scores = geneval_step_scores(images, n_resamples=n_resamples, seed=seed)["overall"]
        else:
            per_prompt = {}
            for m in labels:
                df = pd.read_parquet(b.scores_dir(m) / "per_prompt.parquet", columns=["prompt_index", "pickscore"])
                per_prompt[b.steps[m]] = df.set_index("prompt_index")["pickscore"]
            scores = pickscore_step_scores(per_prompt, n_resamples=n_resamples, seed=seed)
        s = select(scores, declared, level=level, seed=seed)
    except (RdmevalError, OSError, KeyError, ValueError) as exc:
        return Cell(status=UNAVAILABLE, why=f"not comparable: {str(exc).splitlines()[0]}")
    extra = {"best": step_title(s.best_step), "best_score": s.best_score, "declared": step_title(s.declared_step),
             "declared_score": s.declared_score, "optimism": s.optimism, "p_best": f"{100 * s.p_best:.0f}%",
             "k": str(len(s.steps)), "n_prompts": s.n_prompts, "level": s.level, "best_step": s.best_step,
             "declared_step": s.declared_step}
    return Cell(value=s.gain, ci_low=s.gain_ci[0], ci_high=s.gain_ci[1], n_prompts=s.n_prompts, unit=col.unit,
                decimals=col.decimals, extra=extra)


def _selection_section(benches: list[_Bench], declared: int, n_resamples: int, seed: int, level: float) -> Section:
    keys, labels, cells = [], [], {}
    for b in benches:
        key = b.bench
        keys.append(key)
        labels.append(f"{FAMILY_LABELS.get(b.family, b.family)} on {b.bench}" + (" (Overall)" if b.family == "geneval" else ""))
        cells[(key, "gain")] = _selection_cell(b, declared, n_resamples, seed, level)
    scored = [(k, c) for k, c in cells.items() if c.status == OK]
    size = "; ".join(f"{k[0]}: optimism {fmt_number(c.extra['optimism'], c.decimals, c.unit, signed=True)}"
                     f"{' points' if c.unit == '%' else ''}, gain {fmt_number(c.value, c.decimals, c.unit, signed=True)}"
                     for k, c in scored)
    notes = [
        "WARNING: choosing the checkpoint on these test prompts is a selection on the test set. The best of k scores "
        "overstates what the chosen checkpoint scores on fresh prompts; report the declared step's score, or confirm "
        "the choice on other prompts (e.g. held-out GenEval, docs/heldout.md)." + (f" Here: {size}." if size else ""),
        "best - declared [interval]: the best step's score minus the declared step's, with a paired percentile "
        f"bootstrap interval ({n_resamples} resamples, seed {seed}; the same resampled prompts score every checkpoint; "
        "GenEval: prompts resampled within each task, Overall = mean of the task accuracies).",
        "optimism of best-of-k: mean over the resamples of the best checkpoint's resampled score minus the best "
        "observed score, the bootstrap estimate of how much reporting the maximum of k inflates it. A gain smaller "
        "than it, or an interval that includes 0, is what picking among k equally good checkpoints gives.",
        "best in resamples: the share of resamples in which the best step stays best (ties: the earliest step).",
    ]
    return Section("selection", "Which checkpoint? Best step per benchmark, and the cost of choosing it on the test set",
                   "benchmark", keys, labels, ["gain"], ["best - declared [interval]"], cells, notes,
                   extra_fields=[("best", "best step"), ("best_score", "best"), ("declared", "declared step"),
                                 ("declared_score", "declared"), ("optimism", "optimism of best-of-k"),
                                 ("p_best", "best in resamples"), ("k", "checkpoints")])


def by_step_sections(rr: RunRoot, *, n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> list[Section]:
    """The ``by-step:<benchmark>`` sections and the ``selection`` section of a sweep root ([] for other roots)."""
    steps = sweep_steps(rr)
    if not steps:
        return []
    record = read_sweep_record(rr.root)
    declared = record.declared_step if record is not None and record.declared_step in steps.values() else max(steps.values())
    benches = [_Bench(rr, bench, scorer, steps) for bench, scorer in _benchmarks(rr, list(steps))]
    if not benches:
        return []
    return [*(_by_step_section(b, declared) for b in benches), _selection_section(benches, declared, n_resamples, seed, level)]
