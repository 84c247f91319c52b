"""PickScore arithmetic: the formula, the aggregate and the bootstrap intervals (no model)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rdmeval.errors import RdmevalError
from rdmeval.scorers.pickscore.functional import (
    bootstrap_ci,
    mean_over_prompts,
    paired_bootstrap,
    per_prompt_means,
    pickscore_from_embeddings,
)


def test_formula_matches_a_hand_computation():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(5, 8))
    txt = rng.normal(size=(5, 8))
    log_scale = 4.6052
    expected = [
        math.exp(log_scale) * float(np.dot(i, t) / (np.linalg.norm(i) * np.linalg.norm(t))) for i, t in zip(img, txt)
    ]
    got = pickscore_from_embeddings(torch.tensor(img), torch.tensor(txt), torch.tensor(log_scale))
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-4)


def test_formula_is_scale_invariant_in_the_embeddings_and_has_no_softmax():
    img = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    txt = torch.tensor([[3.0, 0.0], [0.0, -5.0]])
    got = pickscore_from_embeddings(img, txt, math.log(100.0))
    np.testing.assert_allclose(got.numpy(), [100.0, -100.0], rtol=1e-6)  # a softmax would give probabilities


def test_bf16_embeddings_are_cast_to_float32_first():
    rng = np.random.default_rng(1)
    img = torch.tensor(rng.normal(size=(3, 16)), dtype=torch.bfloat16)
    txt = torch.tensor(rng.normal(size=(3, 16)), dtype=torch.bfloat16)
    got = pickscore_from_embeddings(img, txt, 4.6052)
    # independent reference: the exact bf16 values, normalized in float64
    i64, t64 = img.double().numpy(), txt.double().numpy()
    ref = math.exp(4.6052) * (i64 * t64).sum(1) / (np.linalg.norm(i64, axis=1) * np.linalg.norm(t64, axis=1))
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-4)  # bf16 arithmetic is off by ~0.1


def test_shape_mismatch_is_refused():
    with pytest.raises(RdmevalError, match="row-paired"):
        pickscore_from_embeddings(torch.zeros(3, 4), torch.zeros(2, 4), 1.0)


def test_mean_over_prompts_weights_prompts_equally():
    # prompt 7 has three images, prompt 2 one: the prompt means are 2.0 and 10.0
    scores = [1.0, 2.0, 3.0, 10.0]
    prompts = [7, 7, 7, 2]
    idx, means = per_prompt_means(scores, prompts)
    assert idx.tolist() == [2, 7] and means.tolist() == [10.0, 2.0]
    assert mean_over_prompts(scores, prompts) == pytest.approx(6.0)
    assert np.mean(scores) != pytest.approx(6.0)  # the image mean would differ


def test_bootstrap_ci_is_deterministic_and_brackets_the_mean():
    v = np.random.default_rng(3).normal(21.8, 1.0, size=499)
    lo, hi = bootstrap_ci(v, n_resamples=500, seed=0)
    assert (lo, hi) == bootstrap_ci(v, n_resamples=500, seed=0)
    assert lo < v.mean() < hi
    # the half-width is about 1.96 * sd / sqrt(n)
    assert (hi - lo) / 2 == pytest.approx(1.96 * v.std(ddof=1) / math.sqrt(len(v)), rel=0.15)


def test_bootstrap_ci_coverage_on_synthetic_data():
    rng = np.random.default_rng(4)
    true_mean, hits, trials = 20.0, 0, 200
    for t in range(trials):
        v = rng.normal(true_mean, 2.0, size=100)
        lo, hi = bootstrap_ci(v, n_resamples=400, seed=t)
        hits += lo <= true_mean <= hi
    assert 0.88 <= hits / trials <= 0.99


def test_paired_bootstrap_covers_a_known_difference():
    rng = np.random.default_rng(5)
    delta, hits, trials = 0.3, 0, 200
    for t in range(trials):
        base = rng.normal(21.0, 1.5, size=150)  # prompt difficulty, shared by both models
        a = base + delta + rng.normal(0, 0.5, size=150)
        b = base + rng.normal(0, 0.5, size=150)
        res = paired_bootstrap(a, b, n_resamples=400, seed=t)
        hits += res.ci_low <= delta <= res.ci_high
    assert 0.88 <= hits / trials <= 0.99


def test_paired_bootstrap_single_draw_and_win_rate():
    rng = np.random.default_rng(6)
    base = rng.normal(21.0, 1.5, size=400)
    a = base + 0.3 + rng.normal(0, 0.5, size=400)
    b = base + rng.normal(0, 0.5, size=400)
    res = paired_bootstrap(a, b, n_resamples=1000, seed=0)
    assert res.n == 400
    assert res.mean_diff == pytest.approx(float(np.mean(a - b)))
    assert res.ci_low < 0.3 < res.ci_high
    # pairing matters: the paired interval is much narrower than the spread of the scores themselves
    assert res.ci_high - res.ci_low < 0.2
    assert res.win_rate == pytest.approx(float(np.mean(a > b)))
    assert res.win_rate_ci_low < res.win_rate < res.win_rate_ci_high
    assert res.wins + res.losses + res.ties == 400


def test_win_rate_counts_ties_half():
    res = paired_bootstrap([1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 5.0, 4.0], n_resamples=50)
    assert (res.wins, res.losses, res.ties) == (1, 1, 2)
    assert res.win_rate == pytest.approx((1 + 0.5 * 2) / 4)


@pytest.mark.parametrize("kwargs", [{"n_resamples": 0}, {"level": 1.5}, {"n_resamples": 2.5}])
def test_paired_bootstrap_bad_arguments(kwargs):
    with pytest.raises(RdmevalError):
        paired_bootstrap([1.0, 2.0], [1.0, 2.0], **kwargs)


def test_paired_bootstrap_refuses_unpaired_or_nan():
    with pytest.raises(RdmevalError, match="equal length"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(RdmevalError, match="NaN"):
        paired_bootstrap([1.0, float("nan")], [1.0, 2.0])
