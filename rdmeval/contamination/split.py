"""Clean/dirty split of scored runs, with bootstrap intervals over prompts.

Input: per-prompt (or per-image) scores as a DataFrame with a prompt index column (``prompt_idx``,
``prompt_index``, ``index``, ``idx``), a score column (``score``, ``correct``, ``pickscore``,
``value``) and optionally ``tag``. Several rows per prompt (GenEval's 4 images) are averaged
first, so every prompt weighs the same.

The score of a subset is the plain mean over its prompts, or with ``aggregate="task_mean"``
(the default when a ``tag`` column is present: GenEval's overall) the unweighted mean of the
per-tag means over the tags present in the subset. Intervals are percentile bootstraps that
resample prompts with replacement (within each tag for ``task_mean``; :mod:`rdmeval.bootstrap`). The paired
student-minus-teacher difference is computed per prompt and bootstrapped jointly, so prompt
difficulty cancels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from rdmeval.bootstrap import LEVEL, N_RESAMPLES, SEED, check_level, check_n_resamples, percentile_interval, resample_indices
from rdmeval.errors import RdmevalError

INDEX_COLUMNS: tuple[str, ...] = ("prompt_idx", "prompt_index", "index", "idx")
SCORE_COLUMNS: tuple[str, ...] = ("score", "correct", "pickscore", "value")


@dataclass(frozen=True)
class SubsetScore:
    subset: str
    n_prompts: int
    value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class PairedSubset:
    subset: str
    n_prompts: int
    student: float
    teacher: float
    difference: float
    ci_low: float
    ci_high: float


def per_prompt_scores(df: pd.DataFrame, *, index_col: str | None = None, score_col: str | None = None,
                      where: str = "scores") -> pd.DataFrame:
    """One row per prompt: index ``prompt``, columns ``score`` (mean over its rows), ``n_rows``, optional ``tag``."""
    idx = index_col or next((c for c in INDEX_COLUMNS if c in df.columns), None)
    if idx is None or idx not in df.columns:
        raise RdmevalError(f"{where}: no prompt index column; need one of {', '.join(INDEX_COLUMNS)} (found {list(df.columns)})")
    col = score_col or next((c for c in SCORE_COLUMNS if c in df.columns), None)
    if col is None or col not in df.columns:
        raise RdmevalError(f"{where}: no score column; need one of {', '.join(SCORE_COLUMNS)} (found {list(df.columns)})")
    scores = pd.to_numeric(df[col].astype("float64") if df[col].dtype == bool else df[col], errors="coerce")
    if scores.isna().any():
        bad = int(scores.isna().idxmax())
        raise RdmevalError(f"{where}: column '{col}' has a missing or non-numeric value (row {bad})")
    frame = pd.DataFrame({"prompt": df[idx].astype("int64").to_numpy(), "score": scores.to_numpy(dtype="float64")})
    if "tag" in df.columns:
        frame["tag"] = df["tag"].astype(str).to_numpy()
    g = frame.groupby("prompt", sort=True)
    out = pd.DataFrame({"score": g["score"].mean(), "n_rows": g["score"].size()})
    if "tag" in frame.columns:
        tags = g["tag"].nunique()
        if (tags > 1).any():
            raise RdmevalError(f"{where}: prompt {int(tags.idxmax())} has rows with different tags")
        out["tag"] = g["tag"].first()
    return out


def _dirty_mask(prompts: pd.Index, dirty: Mapping[int, bool] | pd.Series, where: str) -> np.ndarray:
    d = pd.Series(dirty) if not isinstance(dirty, pd.Series) else dirty
    missing = prompts.difference(d.index)
    if len(missing):
        raise RdmevalError(
            f"{where}: {len(missing)} scored prompt(s) are not in the audit (e.g. index {int(missing[0])}); "
            "audit the same benchmark the scores are for"
        )
    return d.reindex(prompts).astype(bool).to_numpy()


def _statistic(values: np.ndarray, strata: list[np.ndarray] | None) -> float:
    if len(values) == 0:
        return float("nan")
    if strata is None:
        return float(values.mean())
    return float(np.mean([values[s].mean() for s in strata]))


def _bootstrap(values: np.ndarray, strata: list[np.ndarray] | None, n_resamples: int, rng: np.random.Generator,
               level: float) -> tuple[float, float]:
    """Interval of :func:`_statistic`; an empty subset has none (NaN, NaN)."""
    if len(values) == 0:
        return float("nan"), float("nan")
    groups = strata if strata is not None else [np.arange(len(values))]
    acc = np.zeros(n_resamples)
    for g in groups:
        acc += values[g][resample_indices(rng, len(g), n_resamples)].mean(axis=1)
    stats = acc / len(groups) if strata is not None else acc
    return percentile_interval(stats, level)


def _strata(tags: np.ndarray | None) -> list[np.ndarray] | None:
    if tags is None:
        return None
    return [np.nonzero(tags == t)[0] for t in pd.unique(tags)]


def _resolve_aggregate(aggregate: str | None, has_tag: bool) -> str:
    agg = aggregate or ("task_mean" if has_tag else "mean")
    if agg not in ("mean", "task_mean"):
        raise RdmevalError(f"aggregate must be 'mean' or 'task_mean', got {agg!r}")
    if agg == "task_mean" and not has_tag:
        raise RdmevalError("aggregate='task_mean' needs a 'tag' column in the scores")
    return agg


def split_scores(scores: pd.DataFrame, dirty: Mapping[int, bool] | pd.Series, *, aggregate: str | None = None,
                 n_resamples: int = N_RESAMPLES, level: float = LEVEL, seed: int = SEED,
                 where: str = "scores") -> list[SubsetScore]:
    """Score on all / clean / dirty prompts with bootstrap intervals."""
    n_resamples, level = check_n_resamples(n_resamples), check_level(level)
    per = per_prompt_scores(scores, where=where)
    agg = _resolve_aggregate(aggregate, "tag" in per.columns)
    mask = _dirty_mask(per.index, dirty, where)
    rng = np.random.default_rng(seed)
    out = []
    for name, sel in (("all", np.ones(len(per), bool)), ("clean", ~mask), ("dirty", mask)):
        vals = per["score"].to_numpy()[sel]
        strata = _strata(per["tag"].to_numpy()[sel]) if agg == "task_mean" else None
        lo, hi = _bootstrap(vals, strata, n_resamples, rng, level)
        out.append(SubsetScore(name, int(sel.sum()), _statistic(vals, strata), lo, hi))
    return out


def paired_difference(student: pd.DataFrame, teacher: pd.DataFrame, dirty: Mapping[int, bool] | pd.Series, *,
                      aggregate: str | None = None, n_resamples: int = N_RESAMPLES, level: float = LEVEL,
                      seed: int = SEED) -> list[PairedSubset]:
    """Student minus teacher on all / clean / dirty prompts, paired by prompt."""
    n_resamples, level = check_n_resamples(n_resamples), check_level(level)
    s = per_prompt_scores(student, where="student scores")
    t = per_prompt_scores(teacher, where="teacher scores")
    if not s.index.equals(t.index):
        only_s = s.index.difference(t.index)
        only_t = t.index.difference(s.index)
        raise RdmevalError(
            f"student and teacher scores cover different prompts ({len(only_s)} only in student, {len(only_t)} only "
            "in teacher); score both runs on the same prompt set"
        )
    agg = _resolve_aggregate(aggregate, "tag" in s.columns)
    mask = _dirty_mask(s.index, dirty, "scores")
    rng = np.random.default_rng(seed)
    diff = s["score"].to_numpy() - t["score"].to_numpy()
    out = []
    for name, sel in (("all", np.ones(len(s), bool)), ("clean", ~mask), ("dirty", mask)):
        strata = _strata(s["tag"].to_numpy()[sel]) if agg == "task_mean" else None
        lo, hi = _bootstrap(diff[sel], strata, n_resamples, rng, level)
        out.append(PairedSubset(
            name, int(sel.sum()),
            _statistic(s["score"].to_numpy()[sel], strata),
            _statistic(t["score"].to_numpy()[sel], strata),
            _statistic(diff[sel], strata), lo, hi,
        ))
    return out


def read_scores(path: str, where: str | None = None) -> pd.DataFrame:
    """Read a scores table (.parquet, .csv, .jsonl/.json lines)."""
    from pathlib import Path

    p = Path(path).expanduser()
    where = where or str(p)
    if not p.is_file():
        raise RdmevalError(f"--scores {p}: no such file")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suffix == ".csv":
            return pd.read_csv(p)
        if suffix in (".jsonl", ".json"):
            return pd.read_json(p, lines=True)
    except ValueError as exc:
        raise RdmevalError(f"--scores {p}: cannot read it ({exc})") from None
    raise RdmevalError(f"--scores {p}: unsupported file type '{suffix}'; use .parquet, .csv or .jsonl")


def to_records(items: list[Any]) -> list[dict[str, Any]]:
    return [asdict(x) for x in items]
