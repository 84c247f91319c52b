"""The in-distribution gap: student - teacher on GenEval, minus student - teacher on held-out GenEval.

Inputs are the per-image GenEval verdicts (``rdmeval.results.paired.read_geneval_images``: one
row per image with ``prompt_index``, ``tag``, ``correct``) of a teacher and a student on GenEval
and on ``geneval-heldout``. For every task (and Overall):

- each model's accuracy on each set (correct images / images, as GenEval counts a task);
- the paired difference ``student - teacher`` on each set;
- the gap = ``(student - teacher on GenEval) - (student - teacher on held-out)``.

Intervals are percentile bootstraps (``rdmeval.bootstrap``) over prompts. Within a set the two
models are paired (the same drawn prompts for both); the two sets share no prompt, so each set's
prompts are resampled independently, and a gap replicate is the GenEval replicate minus the
held-out replicate. Prompts are drawn within each task, as many as the task has. The draw order
from ``numpy.random.default_rng(seed)`` is fixed: for each task in GenEval's order, first the
GenEval draws ``(n_resamples, n_prompts)``, then, if the task is held out, the held-out draws.

Overall is the unweighted mean over tasks (GenEval's rule), taken over the tasks both sets have:
single_object cannot be held out (``rdmeval.contamination.heldout.NOT_HELD_OUT``), so its row has
GenEval numbers only and the Overall of every column here is the mean of the other five tasks (it
is therefore not GenEval's six-task Overall).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from rdmeval.bootstrap import LEVEL, N_RESAMPLES, SEED, check_level, check_n_resamples, percentile_interval, resample_indices
from rdmeval.contamination.heldout import NOT_HELD_OUT
from rdmeval.errors import RdmevalError
from rdmeval.prompts.geneval import TAGS
from rdmeval.results.paired import geneval_per_prompt


@dataclass(frozen=True)
class GapRow:
    """One task (or ``overall``). Held-out fields are None where the task is not held out."""

    category: str
    held_out: bool
    n_prompts_geneval: int
    n_prompts_heldout: int
    teacher_geneval: float
    student_geneval: float
    diff_geneval: float
    diff_geneval_ci: tuple[float, float]
    teacher_heldout: float | None
    student_heldout: float | None
    diff_heldout: float | None
    diff_heldout_ci: tuple[float, float] | None
    gap: float | None
    gap_ci: tuple[float, float] | None
    level: float
    n_resamples: int
    seed: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _paired(teacher: pd.DataFrame, student: pd.DataFrame, which: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-prompt hits of both models on one set, aligned by prompt index (the same prompts and tags)."""
    pt, ps = geneval_per_prompt(teacher), geneval_per_prompt(student)
    if set(pt.index) != set(ps.index):
        n = len(set(pt.index) ^ set(ps.index))
        raise RdmevalError(f"{which}: teacher and student were judged on different prompts ({n} differ); "
                           "complete both runs and score them again")
    ps = ps.reindex(pt.index)
    if not (pt["tag"] == ps["tag"]).all():
        raise RdmevalError(f"{which}: teacher and student give one prompt index different tags (different prompt files)")
    unknown = sorted(set(pt["tag"]) - set(TAGS))
    if unknown:
        raise RdmevalError(f"{which}: tags {unknown} are not GenEval tasks ({', '.join(TAGS)})")
    return pt, ps


class _Task:
    """Hits and images per prompt of one task on one set, and the paired bootstrap replicates."""

    def __init__(self, pt: pd.DataFrame, ps: pd.DataFrame, tag: str, rng: np.random.Generator, n_resamples: int):
        sel = (pt["tag"] == tag).to_numpy()
        ht, nt = pt["hits"].to_numpy()[sel], pt["n"].to_numpy()[sel]
        hs, ns = ps["hits"].to_numpy()[sel], ps["n"].to_numpy()[sel]
        self.n_prompts = int(sel.sum())
        self.teacher, self.student = float(ht.sum() / nt.sum()), float(hs.sum() / ns.sum())
        picks = resample_indices(rng, self.n_prompts, n_resamples)
        self.draws = hs[picks].sum(1) / ns[picks].sum(1) - ht[picks].sum(1) / nt[picks].sum(1)

    @property
    def diff(self) -> float:
        return self.student - self.teacher


def heldout_gap(
    teacher_geneval: pd.DataFrame,
    student_geneval: pd.DataFrame,
    teacher_heldout: pd.DataFrame,
    student_heldout: pd.DataFrame,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> list[GapRow]:
    """Rows per task in GenEval's order (those present on GenEval), then ``overall``."""
    n_resamples, level = check_n_resamples(n_resamples), check_level(level)
    gt, gs = _paired(teacher_geneval, student_geneval, "GenEval")
    ht, hs = _paired(teacher_heldout, student_heldout, "held-out GenEval")
    rng = np.random.default_rng(seed)
    common = dict(level=level, n_resamples=n_resamples, seed=int(seed))
    rows: list[GapRow] = []
    pairs: list[tuple[_Task, _Task]] = []
    for tag in TAGS:
        if tag not in set(gt["tag"]):
            continue
        g = _Task(gt, gs, tag, rng, n_resamples)
        held = tag in set(ht["tag"]) and tag not in NOT_HELD_OUT
        if not held:
            rows.append(GapRow(tag, False, g.n_prompts, 0, g.teacher, g.student, g.diff,
                               percentile_interval(g.draws, level), None, None, None, None, None, None,
                               note="not held out: every structure of this task is in GenEval", **common))
            continue
        h = _Task(ht, hs, tag, rng, n_resamples)
        pairs.append((g, h))
        rows.append(GapRow(tag, True, g.n_prompts, h.n_prompts, g.teacher, g.student, g.diff,
                           percentile_interval(g.draws, level), h.teacher, h.student, h.diff,
                           percentile_interval(h.draws, level), g.diff - h.diff,
                           percentile_interval(g.draws - h.draws, level), **common))
    extra = sorted(set(ht["tag"]) - set(gt["tag"]))
    if extra:
        raise RdmevalError(f"held-out GenEval has task(s) {extra} that the GenEval verdicts lack")
    if not pairs:
        raise RdmevalError("no task is on both sets: the held-out verdicts share no held-out task with GenEval's")
    mean = lambda values: float(np.mean(values))  # noqa: E731
    g_draws = np.mean(np.stack([g.draws for g, _ in pairs]), axis=0)
    h_draws = np.mean(np.stack([h.draws for _, h in pairs]), axis=0)
    d_g, d_h = mean([g.diff for g, _ in pairs]), mean([h.diff for _, h in pairs])
    rows.append(GapRow(
        "overall", True, sum(g.n_prompts for g, _ in pairs), sum(h.n_prompts for _, h in pairs),
        mean([g.teacher for g, _ in pairs]), mean([g.student for g, _ in pairs]), d_g, percentile_interval(g_draws, level),
        mean([h.teacher for _, h in pairs]), mean([h.student for _, h in pairs]), d_h, percentile_interval(h_draws, level),
        d_g - d_h, percentile_interval(g_draws - h_draws, level),
        note=f"mean over the {len(pairs)} held-out tasks ({', '.join(r.category for r in rows if r.held_out)})", **common,
    ))
    return rows
