"""GenEval's summary (``evaluation/summary_scores.py``) and the official ``results.jsonl`` rows.

Definitions (docs/geneval.md, "The official scoring rules", Summary), over one row per image:

- a prompt is identified by its ``metadata`` string (``json.dumps`` of the metadata dict);
- a task's score is the per-image accuracy within its tag;
- Overall is the unweighted mean of the scores of the tags present (not the per-image mean);
- "% correct prompts" counts a prompt as correct if any of its images is.

Tasks are listed in order of first appearance in the rows, like the official script.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rdmeval.errors import RdmevalError
from rdmeval.io import atomic_write_text
from rdmeval.geneval_official import REQUIRED_COLUMNS, read_official_results  # noqa: F401 (re-exported)
from rdmeval.bootstrap import (
    GENEVAL_N_RESAMPLES,
    LEVEL,
    SEED,
    check_level,
    check_n_resamples,
    percentile_interval,
    resample_indices,
)
from rdmeval.scorers.geneval.judge import Verdict

#: The columns of the official ``results.jsonl``, in the official order.
OFFICIAL_COLUMNS: tuple[str, ...] = ("filename", "tag", "prompt", "correct", "reason", "metadata", "details")


@dataclass(frozen=True)
class TaskScore:
    tag: str
    n_images: int
    n_correct: int
    n_prompts: int
    accuracy: float  # n_correct / n_images


@dataclass(frozen=True)
class GenevalSummary:
    n_images: int
    n_prompts: int
    frac_correct_images: float
    frac_correct_prompts: float
    tasks: tuple[TaskScore, ...]
    overall: float  # unweighted mean of the task accuracies

    def task(self, tag: str) -> TaskScore:
        for t in self.tasks:
            if t.tag == tag:
                return t
        raise KeyError(tag)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BootstrapCI:
    """Percentile bootstrap intervals, resampling prompts with replacement within each task.

    ``images`` and ``prompts`` are the intervals of the fractions of correct images and of
    correct prompts (any image correct), from the same resamples as Overall and the tasks.
    """

    overall: tuple[float, float]
    tasks: dict[str, tuple[float, float]]
    images: tuple[float, float]
    prompts: tuple[float, float]
    level: float
    n_resamples: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": list(self.overall),
            "tasks": {k: list(v) for k, v in self.tasks.items()},
            "images": list(self.images),
            "prompts": list(self.prompts),
            "level": self.level,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "resampling": "prompts within each task, with replacement",
        }


def _checked(df: pd.DataFrame) -> pd.DataFrame:
    """The rows with a validated bool ``correct`` column; clear errors for anything else."""
    if not isinstance(df, pd.DataFrame):
        raise RdmevalError(f"GenEval summary needs a pandas DataFrame of per-image rows, got {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise RdmevalError(
            f"GenEval per-image rows lack column(s) {missing}; need {', '.join(REQUIRED_COLUMNS)} "
            f"(got {', '.join(map(str, df.columns))})"
        )
    if len(df) == 0:
        raise RdmevalError("GenEval summary of zero images: there are no per-image rows to summarize")
    for col in ("tag", "metadata"):
        bad = df.index[~df[col].map(lambda v: isinstance(v, str))].tolist()
        if bad:
            raise RdmevalError(f"GenEval rows column '{col}' must hold strings; rows {bad[:10]} do not")
    correct = df["correct"]
    if correct.dtype != bool:
        ok = correct.map(
            lambda v: isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, np.integer)) and v in (0, 1))
        )
        if not ok.all():
            bad = df.index[~ok].tolist()
            raise RdmevalError(f"GenEval rows column 'correct' must be True/False; rows {bad[:10]} are not")
        df = df.assign(correct=correct.astype(bool))
    return df


def summarize(df: pd.DataFrame) -> GenevalSummary:
    """The numbers of the official summary (§4) for per-image rows (columns tag, metadata, correct)."""
    df = _checked(df)
    tasks: list[TaskScore] = []
    for tag, rows in df.groupby("tag", sort=False):
        n_correct = int(rows["correct"].sum())
        tasks.append(
            TaskScore(
                tag=str(tag),
                n_images=len(rows),
                n_correct=n_correct,
                n_prompts=int(rows["metadata"].nunique()),
                accuracy=float(rows["correct"].mean()),
            )
        )
    return GenevalSummary(
        n_images=len(df),
        n_prompts=int(df["metadata"].nunique()),
        frac_correct_images=float(df["correct"].mean()),
        frac_correct_prompts=float(df.groupby("metadata", sort=False)["correct"].any().mean()),
        tasks=tuple(tasks),
        overall=float(np.mean([t.accuracy for t in tasks])),
    )


def format_official_summary(df: pd.DataFrame) -> str:
    """Exactly what the official ``summary_scores.py`` prints for these rows (with the final newline)."""
    s = summarize(df)
    lines = [
        "Summary",
        "=======",
        f"Total images: {s.n_images}",
        f"Total prompts: {s.n_prompts}",
        f"% correct images: {s.frac_correct_images:.2%}",
        f"% correct prompts: {s.frac_correct_prompts:.2%}",
        "",
        "Task breakdown",
        "==============",
        *(f"{t.tag:<16} = {t.accuracy:.2%} ({t.n_correct} / {t.n_images})" for t in s.tasks),
        "",
        f"Overall score (avg. over tasks): {s.overall:.5f}",
    ]
    return "\n".join(lines) + "\n"


def _resample(df: pd.DataFrame, n_resamples: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Per task (in order of first appearance): the drawn prompts' summed ``hits`` (correct images),
    ``sizes`` (images) and ``anys`` (prompts with a correct image), each ``(n_resamples,)``, plus the
    task's prompt count ``n_prompts``. One ``integers`` call per task, from ``default_rng(seed)``."""
    n_resamples = check_n_resamples(n_resamples)
    df = _checked(df)
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, np.ndarray]] = {}
    for tag, rows in df.groupby("tag", sort=False):
        if tag == "overall":
            raise RdmevalError("a GenEval task may not be named 'overall' (it is the name of the mean)")
        per_prompt = rows.groupby("metadata", sort=False)["correct"].agg(["sum", "count", "any"])
        picks = resample_indices(rng, len(per_prompt), n_resamples)
        out[str(tag)] = {
            "hits": per_prompt["sum"].to_numpy(dtype=np.int64)[picks].sum(axis=1),
            "sizes": per_prompt["count"].to_numpy(dtype=np.int64)[picks].sum(axis=1),
            "anys": per_prompt["any"].to_numpy(dtype=np.int64)[picks].sum(axis=1),
            "n_prompts": np.int64(len(per_prompt)),
        }
    return out


def bootstrap_draws(df: pd.DataFrame, n_resamples: int = GENEVAL_N_RESAMPLES, seed: int = SEED) -> dict[str, np.ndarray]:
    """The bootstrap replicates behind :func:`bootstrap_ci`: ``{tag: (n_resamples,)}`` plus ``"overall"``.

    Each resample draws, for every task independently, as many prompts as the task has, with
    replacement, and recomputes the per-image task accuracy from the drawn prompts' images; Overall is
    the mean of the resampled task scores. Uses ``numpy.random.default_rng(seed)`` with tasks in order of
    first appearance, so given rows and seed always give the same replicates. (A task named
    ``overall`` would collide with the Overall key and is refused.)
    """
    draws = {tag: d["hits"] / d["sizes"] for tag, d in _resample(df, n_resamples, seed).items()}
    draws["overall"] = np.mean(np.stack(list(draws.values())), axis=0)
    return draws


def bootstrap_ci(
    df: pd.DataFrame, n_resamples: int = GENEVAL_N_RESAMPLES, seed: int = SEED, level: float = LEVEL
) -> BootstrapCI:
    """Percentile bootstrap CI of Overall, of each task score and of the % correct images / prompts.

    See :func:`bootstrap_draws` for the resampling (prompts within each task); the interval is the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the replicates.
    """
    level = check_level(level)
    tasks = _resample(df, n_resamples, seed)
    scores = {tag: d["hits"] / d["sizes"] for tag, d in tasks.items()}
    total = {key: sum(d[key] for d in tasks.values()) for key in ("hits", "sizes", "anys", "n_prompts")}
    return BootstrapCI(
        overall=percentile_interval(np.mean(np.stack(list(scores.values())), axis=0), level),
        tasks={tag: percentile_interval(values, level) for tag, values in scores.items()},
        images=percentile_interval(total["hits"] / total["sizes"], level),
        prompts=percentile_interval(total["anys"] / total["n_prompts"], level),
        level=level,
        n_resamples=int(n_resamples),
        seed=int(seed),
    )


# ----------------------------------------------------------------------------- official results.jsonl


def official_row(filename: str | os.PathLike[str], metadata: Mapping[str, Any], verdict: Verdict) -> dict[str, Any]:
    """One row of the official ``results.jsonl`` (fields and encodings as in evaluate_images.py)."""
    for key in ("tag", "prompt"):
        if not isinstance(metadata.get(key), str):
            raise RdmevalError(f"GenEval metadata for {filename} needs a string '{key}', got {metadata.get(key)!r}")
    return {
        "filename": os.fspath(filename),
        "tag": metadata["tag"],
        "prompt": metadata["prompt"],
        "correct": bool(verdict.correct),
        "reason": verdict.reason,
        "metadata": json.dumps(dict(metadata)),
        "details": json.dumps(verdict.details),
    }


def write_official_results(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write rows as the official JSONL (pandas ``to_json(orient="records", lines=True)``), atomically."""
    rows = list(rows)
    for i, row in enumerate(rows):
        missing = [c for c in OFFICIAL_COLUMNS if c not in row]
        if missing:
            raise RdmevalError(f"official results row {i} lacks field(s) {missing}; build rows with official_row()")
    frame = pd.DataFrame([{c: row[c] for c in OFFICIAL_COLUMNS} for row in rows], columns=list(OFFICIAL_COLUMNS))
    text = frame.to_json(orient="records", lines=True) if rows else ""
    return atomic_write_text(path, text)
