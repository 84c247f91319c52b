"""The per-encoder Nyström MMD² and the self-normalised weighted total.

L_φ = k_gg − 2·k_gr + k_rr over the global batch g_1..g_N of one encoder's features:

- k_gg: exact biased self-mean (diagonal included, divisor N²), row-chunked and checkpointed;
- k_gr: the frozen Nyström attraction (1/N) Σ_i Σ_m k(g_i, Z_m)·α_m;
- k_rr: the bundle's constant (no gradient), which keeps L ≥ 0 up to the Nyström error.

Half-precision features are upcast to fp32 (the reference computes the loss in fp32); fp64 stays
fp64 so that exactness tests can run in double precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor

from rdmeval.distill.kernels import self_mean, weighted_cross_mean
from rdmeval.distill.reference import ReferenceBundle

SELF_NORM_EPS = 1e-7


def _loss_dtype(x: Tensor) -> Tensor:
    return x if x.dtype == torch.float64 else x.float()


def nystrom_mmd(features: Tensor, bundle: ReferenceBundle, *, gen_chunk: int = 8192) -> Tensor:
    """Biased Nyström MMD² of generated features (N, d_in) against a frozen reference bundle."""
    g = _loss_dtype(features)
    if g.ndim != 2 or g.shape[1] != bundle.d_in:
        raise ValueError(f"features of shape {tuple(g.shape)} do not match the bundle's d_in = {bundle.d_in}")
    z = bundle.Z.to(device=g.device, dtype=g.dtype)
    alpha = bundle.alpha.to(device=g.device, dtype=g.dtype)
    k_gg = self_mean(g, bundle.gamma, chunk=gen_chunk)
    k_gr = weighted_cross_mean(g, z, alpha, bundle.gamma, chunk=gen_chunk)
    return k_gg - 2.0 * k_gr + bundle.k_rr


def self_normalize(raw: Tensor, eps: float = SELF_NORM_EPS) -> Tensor:
    """raw / (|raw.detach()| + eps): value ≈ sign(raw), gradient ∇raw / (|raw| + eps).

    ``|·|`` keeps the descent direction when a biased estimate dips below 0.
    """
    if not eps > 0:
        raise ValueError(f"self-normalisation eps must be > 0 (the reference uses 1e-7), got {eps}")
    return raw / (raw.detach().abs() + eps)


@dataclass(frozen=True)
class ObjectiveValue:
    """The total to back-propagate and the per-encoder raw MMD² values (detached)."""

    total: Tensor
    raw: dict[str, Tensor]

    @property
    def raw_sum(self) -> float:
        """Σ_φ L_φ (unweighted raw MMD²) as a float: the ``loss`` of the golden curve."""
        return float(sum(float(v) for v in self.raw.values()))


def objective(
    features: Mapping[str, Tensor],
    bundles: Mapping[str, ReferenceBundle],
    weights: Mapping[str, float],
    *,
    gen_chunk: int = 8192,
    eps: float = SELF_NORM_EPS,
) -> ObjectiveValue:
    """Σ_φ w_φ · self_normalize(L_φ) over the encoders in ``features`` (uniform w = 1 for FLUX)."""
    if set(features) != set(bundles):
        raise ValueError(f"encoders with features {sorted(features)} differ from encoders with bundles {sorted(bundles)}")
    total: Tensor | None = None
    raw: dict[str, Tensor] = {}
    for name, feats in features.items():
        value = nystrom_mmd(feats, bundles[name], gen_chunk=gen_chunk)
        raw[name] = value.detach()
        term = weights[name] * self_normalize(value, eps)
        total = term if total is None else total + term
    if total is None:
        raise ValueError("objective() needs at least one encoder")
    return ObjectiveValue(total=total, raw=raw)
