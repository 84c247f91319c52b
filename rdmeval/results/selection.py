"""Choosing a checkpoint on the test prompts: which step is best, and how much of that is selection.

A sweep scores k checkpoints of one training run on the same prompts. Publishing the step with the
highest score is a selection on the test set: the highest of k noisy scores overstates what that
checkpoint would score on fresh prompts. This module measures it with one paired bootstrap: every
resample draws prompts with replacement (GenEval: within each task, as its scorer does) and the *same*
drawn prompts score every checkpoint. With ``S[k]`` the observed score of checkpoint k and ``S*[k, b]``
its score in resample b:

- **best**: ``argmax_k S[k]`` (ties: the earliest step);
- **gain** over the declared step D (the one fixed before looking at test scores):
  ``S[best] - S[D]``, with the percentile interval of ``S*[best, b] - S*[D, b]``;
- **optimism** of the best-of-k score: ``mean_b max_k S*[k, b] - max_k S[k]``, the bootstrap estimate
  of the bias of reporting the maximum (``E[max_k S_k] - max_k E[S_k]``); 0 for one checkpoint, and
  about ``sigma * E[max of k standard normals]`` for k equally good checkpoints;
- **p_best**: the share of resamples in which ``best`` is still the best (ties: the earliest step).

A gain smaller than the optimism, or whose interval includes 0, is what choosing among k equally good
checkpoints would give.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from rdmeval.bootstrap import LEVEL, N_RESAMPLES, SEED, check_level, check_n_resamples, percentile_interval, resample_indices
from rdmeval.errors import RdmevalError
from rdmeval.results.paired import geneval_per_prompt


@dataclass(frozen=True)
class StepScores:
    """Observed scores ``(k,)`` and paired bootstrap replicates ``(k, n_resamples)`` of k checkpoints."""

    steps: tuple[int, ...]
    observed: np.ndarray
    draws: np.ndarray
    n_prompts: int


@dataclass(frozen=True)
class Selection:
    """The best step of a sweep on one metric and the size of the selection effect (module docstring)."""

    steps: tuple[int, ...]
    scores: tuple[float, ...]
    best_step: int
    best_score: float
    declared_step: int
    declared_score: float
    gain: float
    gain_ci: tuple[float, float]
    optimism: float
    p_best: float
    n_prompts: int
    level: float
    n_resamples: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def geneval_step_scores(images: Mapping[int, pd.DataFrame], *, n_resamples: int = N_RESAMPLES,
                        seed: int = SEED) -> dict[str, StepScores]:
    """Per GenEval task and ``overall``: every step's accuracy and its paired replicates.

    ``images``: step -> per-image rows (:func:`rdmeval.results.paired.read_geneval_images`). Within each
    task, each resample draws as many prompts as the task has (one draw shared by all steps); a task's
    accuracy is correct images / images of the drawn prompts, Overall the mean of the task accuracies.
    Every step must have judged the same prompts with the same tags."""
    n_resamples = check_n_resamples(n_resamples)
    steps = tuple(sorted(images))
    if not steps:
        raise RdmevalError("no checkpoint to compare")
    per = {s: geneval_per_prompt(images[s]) for s in steps}
    ref = per[steps[0]]
    for s in steps[1:]:
        if set(per[s].index) != set(ref.index) or not (per[s].reindex(ref.index)["tag"] == ref["tag"]).all():
            raise RdmevalError(f"steps {steps[0]} and {s} judged different GenEval prompts; complete and score both runs "
                               "on the same prompt set")
    rng = np.random.default_rng(seed)
    out: dict[str, StepScores] = {}
    tasks = list(dict.fromkeys(ref["tag"]))
    for tag in tasks:
        sel = (ref["tag"] == tag).to_numpy()
        idx = ref.index[sel]
        hits = np.stack([per[s].loc[idx, "hits"].to_numpy(dtype=np.int64) for s in steps])  # (k, n)
        sizes = np.stack([per[s].loc[idx, "n"].to_numpy(dtype=np.int64) for s in steps])
        picks = resample_indices(rng, len(idx), n_resamples)  # (B, n), shared by every step
        draws = hits[:, picks].sum(axis=2) / sizes[:, picks].sum(axis=2)  # (k, B)
        out[tag] = StepScores(steps, hits.sum(axis=1) / sizes.sum(axis=1), draws, int(len(idx)))
    out["overall"] = StepScores(steps, np.mean([out[t].observed for t in tasks], axis=0),
                                np.mean([out[t].draws for t in tasks], axis=0), int(len(ref)))
    return out


def pickscore_step_scores(per_prompt: Mapping[int, pd.Series], *, n_resamples: int = N_RESAMPLES,
                          seed: int = SEED) -> StepScores:
    """Every step's mean PickScore over prompts (``per_prompt[step]``: per-prompt means indexed by
    prompt index) and its paired replicates (prompts resampled, the same draw for every step)."""
    n_resamples = check_n_resamples(n_resamples)
    steps = tuple(sorted(per_prompt))
    if not steps:
        raise RdmevalError("no checkpoint to compare")
    index = per_prompt[steps[0]].sort_index().index
    for s in steps[1:]:
        if set(per_prompt[s].index) != set(index):
            raise RdmevalError(f"steps {steps[0]} and {s} scored different prompts; complete and score both runs")
    values = np.stack([per_prompt[s].reindex(index).to_numpy(dtype=np.float64) for s in steps])  # (k, n)
    picks = resample_indices(np.random.default_rng(seed), len(index), n_resamples)
    return StepScores(steps, values.mean(axis=1), values[:, picks].mean(axis=2), int(len(index)))


def select(scores: StepScores, declared_step: int, *, level: float = LEVEL, seed: int = SEED) -> Selection:
    """The best step, its gain over ``declared_step``, the optimism of best-of-k and p_best (module docstring)."""
    level = check_level(level)
    steps = list(scores.steps)
    if declared_step not in steps:
        raise RdmevalError(f"declared step {declared_step} is not among the scored steps {steps}")
    best = int(np.argmax(scores.observed))  # the first maximum: ties go to the earliest step
    d = steps.index(declared_step)
    draws = scores.draws
    return Selection(
        steps=tuple(steps),
        scores=tuple(float(v) for v in scores.observed),
        best_step=steps[best],
        best_score=float(scores.observed[best]),
        declared_step=declared_step,
        declared_score=float(scores.observed[d]),
        gain=float(scores.observed[best] - scores.observed[d]),
        gain_ci=percentile_interval(draws[best] - draws[d], level),
        optimism=float(draws.max(axis=0).mean() - scores.observed.max()),
        p_best=float(np.mean(np.argmax(draws, axis=0) == best)),
        n_prompts=scores.n_prompts,
        level=level,
        n_resamples=int(draws.shape[1]),
        seed=int(seed),
    )


def best_index(values: Sequence[float | None]) -> int | None:
    """The position of the highest value (the first on ties), ignoring None; None when there is none."""
    known = [(v, -i) for i, v in enumerate(values) if v is not None]
    return -max(known)[1] if known else None
