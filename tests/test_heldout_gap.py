"""The in-distribution gap's arithmetic and intervals, against a direct computation on synthetic verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rdmeval.errors import RdmevalError
from rdmeval.results.heldout_gap import heldout_gap

TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")


def verdicts(hits_per_prompt: dict[str, list[int]], n: int = 4) -> pd.DataFrame:
    """Per-image rows: prompt k of the listing gets hits[k] correct images out of n."""
    rows, idx = [], 0
    for tag, hits in hits_per_prompt.items():
        for h in hits:
            rows += [{"prompt_index": idx, "sample_index": j, "tag": tag, "prompt": f"p{idx}", "correct": j < h}
                     for j in range(n)]
            idx += 1
    return pd.DataFrame(rows)


def test_a_hand_computed_example():
    # GenEval: two_object has 2 prompts, counting 1; held-out: the same tasks.
    tg = verdicts({"two_object": [4, 0], "counting": [2]})  # teacher: 4/8 = 0.5, 2/4 = 0.5
    sg = verdicts({"two_object": [4, 4], "counting": [3]})  # student: 1.0, 0.75
    th = verdicts({"two_object": [2, 2], "counting": [1]})  # teacher: 0.5, 0.25
    sh = verdicts({"two_object": [3, 1], "counting": [1]})  # student: 0.5, 0.25
    rows = {r.category: r for r in heldout_gap(tg, sg, th, sh, n_resamples=50)}
    two, cnt, overall = rows["two_object"], rows["counting"], rows["overall"]
    assert (two.teacher_geneval, two.student_geneval, two.diff_geneval) == (0.5, 1.0, 0.5)
    assert (two.teacher_heldout, two.student_heldout, two.diff_heldout, two.gap) == (0.5, 0.5, 0.0, 0.5)
    assert (cnt.diff_geneval, cnt.diff_heldout, cnt.gap) == (0.25, 0.0, 0.25)
    assert overall.diff_geneval == pytest.approx(0.375, abs=1e-15)  # (0.5 + 0.25) / 2: one rounding at most
    assert overall.gap == pytest.approx(0.375, abs=1e-15)
    # One counting prompt per set: every resample is that prompt, so its interval is the point.
    assert cnt.gap_ci == (0.25, 0.25)


def reference_gap(tg, sg, th, sh, n_resamples, seed, level):
    """An independent loop: per task, draw prompts (GenEval, then held-out) and compute the replicates."""
    rng = np.random.default_rng(seed)
    q = [(1 - level) / 2, (1 + level) / 2]

    def hits(df, tag):  # per prompt (hits, images), in prompt order
        d = df[df.tag == tag]
        return [(int(g.correct.sum()), len(g)) for _, g in d.groupby("prompt_index", sort=True)]

    def acc(rows, picks):
        return sum(rows[i][0] for i in picks) / sum(rows[i][1] for i in picks)

    out, per_task = {}, []
    for tag in TAGS:
        a, b = hits(tg, tag), hits(sg, tag)
        if not a:
            continue
        gpicks = rng.integers(0, len(a), size=(n_resamples, len(a)))
        gdraw = np.array([acc(b, p) - acc(a, p) for p in gpicks])
        if tag == "single_object":
            out[tag] = (acc(b, range(len(b))) - acc(a, range(len(a))), tuple(np.quantile(gdraw, q)), None, None)
            continue
        c, d = hits(th, tag), hits(sh, tag)
        hpicks = rng.integers(0, len(c), size=(n_resamples, len(c)))
        hdraw = np.array([acc(d, p) - acc(c, p) for p in hpicks])
        dg = acc(b, range(len(b))) - acc(a, range(len(a)))
        dh = acc(d, range(len(d))) - acc(c, range(len(c)))
        out[tag] = (dg, tuple(np.quantile(gdraw, q)), dh, dg - dh, tuple(np.quantile(gdraw - hdraw, q)))
        per_task.append((dg, dh, gdraw, hdraw))
    k = len(per_task)
    g_all = sum(t[2] for t in per_task) / k
    h_all = sum(t[3] for t in per_task) / k
    dg = sum(t[0] for t in per_task) / k
    dh = sum(t[1] for t in per_task) / k
    out["overall"] = (dg, tuple(np.quantile(g_all, q)), dh, dg - dh, tuple(np.quantile(g_all - h_all, q)))
    return out


@pytest.mark.parametrize("seed", [0, 7])
def test_synthetic_verdicts_match_a_direct_computation(seed):
    gen = np.random.default_rng(100 + seed)
    geneval_sizes = {"single_object": 8, "two_object": 9, "counting": 8, "colors": 7, "position": 10, "color_attr": 10}
    heldout_sizes = {t: n + 2 for t, n in geneval_sizes.items() if t != "single_object"}

    def draw(sizes, p):
        return verdicts({t: list(gen.binomial(4, p, size=n)) for t, n in sizes.items()})

    tg, sg, th, sh = draw(geneval_sizes, 0.5), draw(geneval_sizes, 0.7), draw(heldout_sizes, 0.5), draw(heldout_sizes, 0.55)
    rows = {r.category: r for r in heldout_gap(tg, sg, th, sh, n_resamples=300, seed=seed, level=0.9)}
    ref = reference_gap(tg, sg, th, sh, 300, seed, 0.9)
    assert list(rows) == list(TAGS) + ["overall"]
    # Tolerance: the same integer sums and divisions, but means of 5 task values may be summed in
    # another order (a few ulp of numbers <= 1).
    tol = 1e-12
    so = rows["single_object"]
    assert not so.held_out and so.gap is None and so.diff_heldout is None and "not held out" in so.note
    assert so.diff_geneval == pytest.approx(ref["single_object"][0], abs=tol)
    assert so.diff_geneval_ci == pytest.approx(ref["single_object"][1], abs=tol)
    for tag in TAGS[1:] + ("overall",):
        dg, dg_ci, dh, gap, gap_ci = ref[tag]
        r = rows[tag]
        assert r.diff_geneval == pytest.approx(dg, abs=tol), tag
        assert r.diff_geneval_ci == pytest.approx(dg_ci, abs=tol), tag
        assert r.diff_heldout == pytest.approx(dh, abs=tol), tag
        assert r.gap == pytest.approx(gap, abs=tol), tag
        assert r.gap_ci == pytest.approx(gap_ci, abs=tol), tag
        assert r.gap_ci[0] <= r.gap_ci[1]
    assert rows["overall"].n_prompts_heldout == sum(heldout_sizes.values())


def test_unpaired_runs_are_refused():
    tg = verdicts({"two_object": [4, 0]})
    with pytest.raises(RdmevalError, match="different prompts"):
        heldout_gap(tg, verdicts({"two_object": [4]}), tg, tg)
    with pytest.raises(RdmevalError, match="no task is on both sets"):
        one = verdicts({"single_object": [1]})
        heldout_gap(one, one, one, one)  # single_object is never held out
