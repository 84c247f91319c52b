"""Clean/dirty split of scores with bootstrap intervals, on synthetic scores with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rdmeval.contamination.split import paired_difference, per_prompt_scores, split_scores
from rdmeval.errors import RdmevalError

TAGS = ["single_object", "two_object", "counting"]


def synthetic(seed: int = 0, n: int = 600, images: int = 4):
    """Per-image GenEval-like correctness: P(correct) = base[tag] + 0.2 on dirty prompts (student),
    teacher without the dirty bonus. A third of the prompts of every tag are dirty."""
    rng = np.random.default_rng(seed)
    base = {"single_object": 0.9, "two_object": 0.6, "counting": 0.4}
    idx = np.arange(n)
    tags = np.array([TAGS[i % 3] for i in idx])
    dirty = (idx // 3) % 3 == 0
    rows_s, rows_t = [], []
    for i in idx:
        p_t = base[tags[i]] - 0.1
        p_s = min(1.0, base[tags[i]] + (0.2 if dirty[i] else 0.0) - 0.1)
        for j in range(images):
            rows_s.append({"prompt_idx": i, "tag": tags[i], "correct": bool(rng.random() < p_s)})
            rows_t.append({"prompt_idx": i, "tag": tags[i], "correct": bool(rng.random() < p_t)})
    return pd.DataFrame(rows_s), pd.DataFrame(rows_t), pd.Series(dirty, index=idx)


def test_per_prompt_scores_average_images():
    df = pd.DataFrame({"prompt_idx": [0, 0, 0, 0, 1, 1], "correct": [True, False, True, True, False, False], "tag": ["a"] * 4 + ["b"] * 2})
    per = per_prompt_scores(df)
    assert per["score"].tolist() == [0.75, 0.0] and per["n_rows"].tolist() == [4, 2] and per["tag"].tolist() == ["a", "b"]


def test_hand_computed_split_with_plain_mean():
    df = pd.DataFrame({"index": [0, 1, 2, 3], "score": [20.0, 22.0, 21.0, 25.0]})
    dirty = {0: False, 1: True, 2: False, 3: True}
    res = {x.subset: x for x in split_scores(df, dirty, n_resamples=200)}
    assert res["all"].value == pytest.approx(22.0)
    assert res["clean"].value == pytest.approx(20.5) and res["clean"].n_prompts == 2
    assert res["dirty"].value == pytest.approx(23.5)
    assert 20.0 <= res["clean"].ci_low <= 20.5 <= res["clean"].ci_high <= 21.0


def test_task_mean_is_the_unweighted_mean_of_tag_means():
    df = pd.DataFrame({"prompt_idx": [0, 1, 2], "score": [1.0, 0.0, 0.0], "tag": ["a", "b", "b"]})
    (all_,) = [x for x in split_scores(df, {0: False, 1: False, 2: False}, n_resamples=10) if x.subset == "all"]
    assert all_.value == pytest.approx(0.5)  # mean(1.0, mean(0, 0)); a plain mean would be 1/3


def test_known_difference_is_recovered_on_each_subset():
    s, t, dirty = synthetic()
    split = {x.subset: x for x in split_scores(s, dirty, n_resamples=1000, seed=1)}
    # the student's clean prompts score like the base rate; dirty ones 0.2 higher (capped at 1)
    expected_clean = np.mean([0.9, 0.6, 0.4]) - 0.1
    expected_dirty = np.mean([1.0, 0.7, 0.5])
    assert split["clean"].ci_low <= expected_clean <= split["clean"].ci_high
    assert split["dirty"].ci_low <= expected_dirty <= split["dirty"].ci_high
    assert split["clean"].n_prompts == 399 and split["dirty"].n_prompts == 201  # 67 blocks of 3

    paired = {x.subset: x for x in paired_difference(s, t, dirty, n_resamples=1000, seed=1)}
    assert paired["clean"].ci_low <= 0.0 <= paired["clean"].ci_high  # no real difference on clean prompts
    assert paired["dirty"].ci_low > 0.1  # the planted +0.2 shows on dirty prompts
    assert paired["dirty"].ci_low <= 0.2 <= paired["dirty"].ci_high
    assert paired["dirty"].difference == pytest.approx(paired["dirty"].student - paired["dirty"].teacher)


def test_interval_coverage_is_about_nominal():
    # Across independent synthetic datasets, the 95 % interval of the dirty-subset difference
    # should contain the true value most of the time (loose bound: a bootstrap check, not a proof).
    truth = 0.2
    hits = 0
    for seed in range(40):
        s, t, dirty = synthetic(seed=seed, n=300, images=4)
        d = {x.subset: x for x in paired_difference(s, t, dirty, n_resamples=400, seed=seed)}["dirty"]
        hits += d.ci_low <= truth <= d.ci_high
    assert hits >= 32


def test_empty_subset_is_nan_not_an_error():
    df = pd.DataFrame({"prompt_idx": [0, 1], "score": [1.0, 0.0]})
    res = {x.subset: x for x in split_scores(df, {0: True, 1: True}, n_resamples=10)}
    assert res["clean"].n_prompts == 0 and np.isnan(res["clean"].value) and np.isnan(res["clean"].ci_low)


def test_bad_inputs_name_the_problem():
    with pytest.raises(RdmevalError, match="no prompt index column"):
        split_scores(pd.DataFrame({"score": [1.0]}), {0: True})
    with pytest.raises(RdmevalError, match="no score column"):
        split_scores(pd.DataFrame({"prompt_idx": [0]}), {0: True})
    with pytest.raises(RdmevalError, match="not in the audit"):
        split_scores(pd.DataFrame({"prompt_idx": [0, 5], "score": [1.0, 0.0]}), {0: True})
    s = pd.DataFrame({"prompt_idx": [0, 1], "score": [1.0, 0.0]})
    with pytest.raises(RdmevalError, match="different prompts"):
        paired_difference(s, s.iloc[:1], {0: True, 1: False})
