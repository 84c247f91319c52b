"""PickScore arithmetic, free of models and files: the score, its aggregate, and bootstrap intervals.

Protocol (docs/protocol.md and docs/pickscore.md): score per (image, prompt) =
``exp(logit_scale) * cos(image_embeds, text_embeds)`` on the projected embeddings, L2-normalized,
no softmax; the reported number is the mean over prompts. Intervals resample prompts (the unit
that was sampled) with replacement and take percentiles of the resampled means (:mod:`rdmeval.bootstrap`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from rdmeval.errors import RdmevalError
from rdmeval.bootstrap import (  # noqa: F401 (paired_bootstrap, PairedComparison: re-exported)
    LEVEL,
    N_RESAMPLES,
    SEED,
    PairedComparison,
    check_level,
    check_n_resamples,
    paired_bootstrap,
    percentile_interval,
    resample_indices,
)


def pickscore_from_embeddings(img_emb: torch.Tensor, txt_emb: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Row-paired PickScores: ``exp(logit_scale) * cos(img_emb[i], txt_emb[i])``, shape (N,), float32.

    ``img_emb`` and ``txt_emb`` are the projected (not yet normalized) embeddings, shape (N, D);
    ``logit_scale`` is the model's raw parameter (the log of the scale). Inputs are cast to float32
    before normalizing (bf16/fp16 model outputs included), so reduced precision stops at the model.
    """
    img = torch.as_tensor(img_emb)
    txt = torch.as_tensor(txt_emb)
    if img.ndim != 2 or txt.ndim != 2 or img.shape != txt.shape:
        raise RdmevalError(
            f"PickScore needs row-paired (N, D) image and text embeddings of equal shape, got {tuple(img.shape)} and {tuple(txt.shape)}"
        )
    img = torch.nn.functional.normalize(img.float(), dim=-1)
    txt = torch.nn.functional.normalize(txt.float(), dim=-1)
    scale = torch.as_tensor(logit_scale, dtype=torch.float32, device=img.device).exp()
    return scale * (img * txt).sum(dim=-1)


def per_prompt_means(scores: Sequence[float] | np.ndarray, prompt_index: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique prompt indices, mean score of each prompt's images)."""
    s = np.asarray(scores, dtype=np.float64)
    p = np.asarray(prompt_index)
    if s.shape != p.shape or s.ndim != 1:
        raise RdmevalError(f"scores and prompt indices must be 1-D of equal length, got {s.shape} and {p.shape}")
    if len(s) == 0:
        raise RdmevalError("no scores to aggregate (zero images)")
    prompts, inverse = np.unique(p, return_inverse=True)
    sums = np.bincount(inverse, weights=s)
    counts = np.bincount(inverse)
    return prompts, sums / counts


def mean_over_prompts(scores: Sequence[float] | np.ndarray, prompt_index: Sequence[int] | np.ndarray) -> float:
    """The reported PickScore: the mean over prompts of each prompt's mean over its images.

    With one image per prompt (the Pick-a-Pic and COCO-val protocols) this is the plain mean.
    """
    return float(per_prompt_means(scores, prompt_index)[1].mean())


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one value per prompt).

    Draws ``n_resamples`` resamples of len(values) prompts with replacement from
    ``numpy.random.default_rng(seed)``; returns the (1-level)/2 and (1+level)/2 quantiles.
    """
    n_resamples, level = check_n_resamples(n_resamples), check_level(level)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) == 0:
        raise RdmevalError(f"bootstrap needs a non-empty 1-D array of per-prompt values, got shape {v.shape}")
    picks = resample_indices(np.random.default_rng(seed), len(v), n_resamples)
    return percentile_interval(v[picks].mean(axis=1), level)
