"""Paired comparisons of two scored runs on the same prompts (student vs teacher, say).

Two runs of the same prompt set share every prompt, so their difference is measured far more
precisely by resampling prompts *together* (a paired bootstrap) than by comparing two
independent intervals.

- GenEval: per-prompt hits (correct images of 4) from each run's ``scores/geneval/per_image.parquet``
  (or the official ``results.jsonl``). Each resample draws, within every task, as many prompts as
  the task has, with replacement, the same prompts for both runs; a task's difference is
  acc_A - acc_B on the drawn prompts, Overall's the unweighted mean of the task differences
  (the same rule as GenEval's Overall, and the resampling of ``scorers.geneval.summary.bootstrap_draws``).
- PickScore: ``rdmeval.results.pickscore_compare.compare_runs`` (per-prompt means, pairs kept
  together), which also checks that prompt sets, prompts and scorer settings agree.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rdmeval.api.layout import IMAGE_PATH_PATTERN, PER_IMAGE, RunLayout, image_name
from rdmeval.bootstrap import LEVEL, N_RESAMPLES, SEED, check_level, check_n_resamples, percentile_interval, resample_indices
from rdmeval.errors import RdmevalError


@dataclass(frozen=True)
class PairedResult:
    """A - B on the prompts both runs share, with a paired percentile-bootstrap interval."""

    benchmark: str
    category: str  # GenEval task or "overall"; "all" for PickScore
    metric: str  # accuracy / overall / pickscore_mean
    model_a: str
    model_b: str
    run_a: str
    run_b: str
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    n_prompts: int
    wins: int  # prompts where A scores higher than B
    losses: int
    ties: int
    level: float
    n_resamples: int
    seed: int
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- GenEval per-image rows


def read_geneval_images(scores_dir: str | Path) -> pd.DataFrame:
    """One row per judged image: ``prompt_index, sample_index, tag, prompt, correct, reason, details, image``.

    Reads ``per_image.parquet`` (the tidy file ``rdmeval score geneval`` writes); a folder with only
    the official ``results.jsonl`` also works (prompt and sample indices are then taken from the
    ``<idx:05d>/samples/<j:04d>.png`` file names).
    """
    scores_dir = Path(scores_dir)
    parquet = scores_dir / PER_IMAGE
    if parquet.is_file():
        df = pd.read_parquet(parquet)
        missing = [c for c in ("prompt_index", "tag", "correct") if c not in df.columns]
        if missing:
            raise RdmevalError(f"{parquet} lacks column(s) {missing}; rescore the run with `rdmeval score geneval`")
    else:
        jsonl = scores_dir / "results.jsonl"
        if not jsonl.is_file():
            raise RdmevalError(
                f"no GenEval per-image results in {scores_dir} (per_image.parquet or results.jsonl); "
                "score the run with `rdmeval score geneval RUN_DIR`"
            )
        from rdmeval.geneval_official import read_official_results

        df = read_official_results(jsonl)
        idx = df["filename"].astype(str).str.extract(IMAGE_PATH_PATTERN)
        if idx.isna().any().any():
            bad = df.loc[idx.isna().any(axis=1), "filename"].head(3).tolist()
            raise RdmevalError(f"{jsonl}: file names {bad} do not end in <idx:05d>/samples/<j:04d>.png")
        df = df.assign(prompt_index=idx[0].astype(int), sample_index=idx[1].astype(int))
        df = df.assign(image=[image_name(p, j) for p, j in zip(df["prompt_index"], df["sample_index"])])
    df = df.copy()
    df["correct"] = df["correct"].astype(bool)
    for col, default in (("reason", ""), ("details", "{}"), ("prompt", "")):
        if col not in df.columns:
            df[col] = default
    return df


def geneval_per_prompt(images: pd.DataFrame) -> pd.DataFrame:
    """Per prompt: ``tag``, ``prompt``, ``hits`` (correct images) and ``n`` (images), indexed by prompt_index."""
    g = images.groupby("prompt_index", sort=True)
    out = pd.DataFrame({"tag": g["tag"].first(), "prompt": g["prompt"].first(),
                        "hits": g["correct"].sum().astype(np.int64), "n": g["correct"].size().astype(np.int64)})
    if (g["tag"].nunique() > 1).any():
        raise RdmevalError("a GenEval prompt index carries two different tags; the per-image rows are corrupt")
    return out


def paired_geneval(
    a: pd.DataFrame,
    b: pd.DataFrame,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
    labels: tuple[str, str] = ("A", "B"),
    runs: tuple[str, str] = ("", ""),
    benchmark: str = "geneval",
) -> list[PairedResult]:
    """Paired bootstrap of GenEval task accuracies and Overall, A - B, resampling prompts within tasks.

    ``a`` and ``b`` are per-image rows (:func:`read_geneval_images`) of two runs of the same prompt
    set. Both must hold the same prompts with the same tags (else the comparison is refused).
    Returns one result per task (in order of first appearance) and one for ``overall``.
    """
    n_resamples, level = check_n_resamples(n_resamples), check_level(level)
    pa, pb = geneval_per_prompt(a), geneval_per_prompt(b)
    if set(pa.index) != set(pb.index):
        only_a, only_b = sorted(set(pa.index) - set(pb.index)), sorted(set(pb.index) - set(pa.index))
        raise RdmevalError(
            f"the two runs judged different prompts ({len(only_a)} only in {labels[0]}, {len(only_b)} only in "
            f"{labels[1]}, e.g. {(only_a + only_b)[:5]}); complete both runs and score them again"
        )
    pb = pb.reindex(pa.index)
    if not (pa["tag"] == pb["tag"]).all():
        raise RdmevalError("the two runs give the same prompt index different tags: they were made from different prompt files")
    rng = np.random.default_rng(seed)
    tags = list(dict.fromkeys(pa["tag"]))
    results: list[PairedResult] = []
    task_draws, task_points = [], []
    common = dict(model_a=labels[0], model_b=labels[1], run_a=runs[0], run_b=runs[1], level=float(level),
                  n_resamples=int(n_resamples), seed=int(seed), benchmark=benchmark)
    for tag in tags:
        sel = (pa["tag"] == tag).to_numpy()
        ha, na = pa["hits"].to_numpy()[sel], pa["n"].to_numpy()[sel]
        hb, nb = pb["hits"].to_numpy()[sel], pb["n"].to_numpy()[sel]
        picks = resample_indices(rng, len(ha), n_resamples)
        draws = ha[picks].sum(1) / na[picks].sum(1) - hb[picks].sum(1) / nb[picks].sum(1)
        acc_a, acc_b = ha.sum() / na.sum(), hb.sum() / nb.sum()
        fa, fb = ha / na, hb / nb
        lo, hi = percentile_interval(draws, level)
        results.append(PairedResult(
            category=tag, metric="accuracy", mean_a=float(acc_a), mean_b=float(acc_b), diff=float(acc_a - acc_b),
            ci_low=lo, ci_high=hi, n_prompts=int(len(ha)), wins=int((fa > fb).sum()), losses=int((fa < fb).sum()),
            ties=int((fa == fb).sum()), method="paired bootstrap, prompts resampled within the task", **common,
        ))
        task_draws.append(draws)
        task_points.append(results[-1])
    overall_draws = np.mean(np.stack(task_draws), axis=0)
    lo, hi = percentile_interval(overall_draws, level)
    results.append(PairedResult(
        category="overall", metric="overall",
        mean_a=float(np.mean([r.mean_a for r in task_points])), mean_b=float(np.mean([r.mean_b for r in task_points])),
        diff=float(np.mean([r.diff for r in task_points])), ci_low=lo, ci_high=hi,
        n_prompts=int(len(pa)), wins=sum(r.wins for r in task_points), losses=sum(r.losses for r in task_points),
        ties=sum(r.ties for r in task_points),
        method="paired bootstrap, prompts resampled within each task; Overall = mean of the task differences", **common,
    ))
    return results


def _geneval_setup(images: pd.DataFrame) -> dict[str, Any]:
    """What must agree between two GenEval runs for their verdicts to be comparable."""
    out: dict[str, Any] = {}
    for col in ("judge_options", "detector_key", "scorer_version"):
        if col in images.columns:
            out[col] = sorted(map(str, images[col].dropna().unique()))
    return out


def compare_geneval_runs(
    run_a: str | Path,
    run_b: str | Path,
    *,
    labels: tuple[str, str] = ("A", "B"),
    scores_a: str | Path | None = None,
    scores_b: str | Path | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> list[PairedResult]:
    """:func:`paired_geneval` on two run directories, after checking they share prompt set and scorer setup."""
    from rdmeval.store import RunStore, diff_requests

    run_a, run_b = Path(run_a), Path(run_b)
    ma, mb = RunStore(run_a).read_manifest(), RunStore(run_b).read_manifest()
    keys = ("name", "version", "sha256", "params")
    psa = {k: ma.get("request", {}).get("prompt_set", {}).get(k) for k in keys}
    psb = {k: mb.get("request", {}).get("prompt_set", {}).get(k) for k in keys}
    diffs = diff_requests(psa, psb)
    if diffs:
        raise RdmevalError(f"{run_a} and {run_b} come from different prompt sets: " + "; ".join(diffs))
    ia = read_geneval_images(scores_a or RunLayout(run_a).scores("geneval"))
    ib = read_geneval_images(scores_b or RunLayout(run_b).scores("geneval"))
    sa, sb = _geneval_setup(ia), _geneval_setup(ib)
    if sa != sb:
        raise RdmevalError(
            f"the two runs were judged with different GenEval settings ({json.dumps(sa)} vs {json.dumps(sb)}); "
            "rescore one of them with the other's options"
        )
    return paired_geneval(ia, ib, labels=labels, runs=(str(run_a), str(run_b)), n_resamples=n_resamples,
                          seed=seed, level=level, benchmark=str(psa["name"]))


def compare_pickscore_runs(
    run_a: str | Path,
    run_b: str | Path,
    *,
    labels: tuple[str, str] = ("A", "B"),
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> PairedResult:
    """The PickScore scorer's own paired comparison (``compare_runs``), as a :class:`PairedResult`."""
    from rdmeval.results.pickscore_compare import compare_runs

    cmp = compare_runs(run_a, run_b, n_resamples=n_resamples, seed=seed, level=level)
    p = cmp.paired
    return PairedResult(
        benchmark=str(cmp.a.prompt_set.get("name", "?")), category="all", metric="pickscore_mean",
        model_a=labels[0], model_b=labels[1], run_a=str(run_a), run_b=str(run_b),
        mean_a=p.mean_a, mean_b=p.mean_b, diff=p.mean_diff, ci_low=p.ci_low, ci_high=p.ci_high, n_prompts=p.n,
        wins=p.wins, losses=p.losses, ties=p.ties, level=p.level, n_resamples=p.n_resamples, seed=p.seed,
        method=f"paired bootstrap over prompts (rdmeval.results.pickscore_compare); win rate of A {p.win_rate:.3f}",
    )
