"""Gaussian-RBF kernel means on raw features (docs/distill.md).

All functions keep the dtype they are given (fp32 in training; fp64 in exactness tests).

The kernel means translate both sides by the reference side's mean row before the expansion
‖a‖² + ‖b‖² − 2a·b. Distances do not change under a common translation, but the rounding does:
raw encoder features often share a large offset (norms ~1, pairwise distances ~0.01), and then the
three terms of the expansion are ~10⁴ times the distance they cancel to, so fp32 keeps only a few
digits of it. Centred, the terms are of the size of the distances themselves.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint


def gamma_from_sigma(sigma: float) -> float:
    """γ of ``k(x, y) = exp(-γ‖x-y‖²)`` for bandwidth σ: γ = 1/(2σ²)."""
    if not sigma > 0:
        raise ValueError(f"kernel bandwidth sigma must be > 0, got {sigma}")
    return 1.0 / (2.0 * sigma * sigma)


def squared_distances(a: Tensor, b: Tensor, b_sq: Tensor | None = None) -> Tensor:
    """‖a_i - b_j‖² via ‖a‖² + ‖b‖² - 2a·b, clamped at 0 (the expansion can round below 0).

    As written, on the given coordinates; translate ``a`` and ``b`` by a common point near them
    first (``centre``) when they share a large offset.
    """
    a_sq = (a * a).sum(dim=1)
    if b_sq is None:
        b_sq = (b * b).sum(dim=1)
    d2 = a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return d2.clamp_min(0.0)


def centre(x: Tensor) -> Tensor:
    """The mean row of ``x``, detached: the common translation the kernel means apply.

    Any translation leaves the distances (and so the values and gradients) unchanged in exact
    arithmetic; detaching it keeps it out of the autograd graph.
    """
    return x.detach().mean(dim=0)


def rbf(a: Tensor, b: Tensor, gamma: float, b_sq: Tensor | None = None) -> Tensor:
    """The Gram matrix ``exp(-γ‖a_i - b_j‖²)``, shape (len(a), len(b))."""
    return torch.exp(-gamma * squared_distances(a, b, b_sq))


def _row_chunked_sum(block_sum: Callable[[Tensor], Tensor], x: Tensor, chunk: int) -> Tensor:
    """Σ over row chunks of ``block_sum(x[chunk])``; each chunk is checkpointed when it needs grad.

    Checkpointing frees each chunk's (chunk × n) Gram matrix after the forward and recomputes it
    in the backward, so memory stays at one block.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    total = x.new_zeros(())
    for start in range(0, x.shape[0], chunk):
        rows = x[start : start + chunk]
        if torch.is_grad_enabled() and x.requires_grad:
            part = checkpoint(block_sum, rows, use_reentrant=False, preserve_rng_state=False)
        else:
            part = block_sum(rows)
        total = total + part
    return total


def self_mean(x: Tensor, gamma: float, chunk: int = 8192) -> Tensor:
    """Biased kernel self-mean (1/N²) Σ_{i,i'} k(x_i, x_i'): diagonal included, divisor N².

    Row-chunked with per-chunk checkpointing; the value is ≥ 1/N (the diagonal alone gives it).
    """
    n = x.shape[0]
    xc = x - centre(x)
    x_sq = (xc * xc).sum(dim=1)

    def block_sum(rows: Tensor) -> Tensor:
        return rbf(rows, xc, gamma, x_sq).sum()

    return _row_chunked_sum(block_sum, xc, chunk) / (n * n)


def cross_mean(x: Tensor, y: Tensor, gamma: float, chunk: int = 8192) -> Tensor:
    """Exact kernel cross-mean (1/(N·R)) Σ_{i,r} k(x_i, y_r) (both sides translated by y's mean row)."""
    shift = centre(y)
    yc = y - shift
    y_sq = (yc * yc).sum(dim=1)

    def block_sum(rows: Tensor) -> Tensor:
        return rbf(rows, yc, gamma, y_sq).sum()

    return _row_chunked_sum(block_sum, x - shift, chunk) / (x.shape[0] * y.shape[0])


def weighted_cross_mean(x: Tensor, z: Tensor, alpha: Tensor, gamma: float, chunk: int = 8192) -> Tensor:
    """Nyström attraction (1/N) Σ_i Σ_m k(x_i, z_m)·α_m (both sides translated by the landmarks' mean)."""
    shift = centre(z)
    zc = z - shift
    z_sq = (zc * zc).sum(dim=1)

    def block_sum(rows: Tensor) -> Tensor:
        return (rbf(rows, zc, gamma, z_sq) @ alpha).sum()

    return _row_chunked_sum(block_sum, x - shift, chunk) / x.shape[0]
