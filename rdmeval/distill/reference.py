"""The frozen reference side of the objective: bandwidth, landmarks, the Nyström bundle.

A ``ReferenceBundle`` holds everything the loss needs about the reference pool R for one encoder:
landmarks Z (M × d), weights α = K_ZZ⁻¹ μ̄ with μ̄_m = mean_r k(Z_m, r) over the whole pool, the
cold bandwidth σ, and the constant k_rr = E[k(r, r')]. Built in fp64, stored in fp32.

Differences from the reference code, on purpose: the median heuristic draws its subsample from an
explicit seeded generator (the reference uses the unseeded global RNG,), and k-means
reseeds empty clusters from the same seeded generator. ``k_rr`` is kept over the *first* ``krr_n``
rows as in the released bundles; pass ``krr_n >= len(pool)`` for the whole pool.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from rdmeval.errors import RdmevalError
from rdmeval.io import atomic_write_bytes
from rdmeval.distill.kernels import centre, gamma_from_sigma, rbf, self_mean, squared_distances

JITTER = 1e-6
BUNDLE_FORMAT = "rdmeval.distill.bundle/1"


class BundleError(RdmevalError):
    """A reference bundle file is missing, malformed or inconsistent."""


def _fp32(x: float) -> float:
    """``x`` rounded to fp32 (the bundle's storage precision), as a Python float."""
    return float(torch.tensor(x, dtype=torch.float32))


# --------------------------------------------------------------------------- bandwidth


def median_sigma(features: Tensor, *, n_sub: int = 10_000, seed: int = 0) -> float:
    """Median heuristic: √median of the pairwise squared distances of a seeded subsample.

    Takes ``n_sub`` rows by ``randperm`` from a generator seeded with ``seed`` (all rows when the
    pool is smaller), the strict upper triangle of the squared-distance matrix, and its lower
    median (``torch.median``); the result is floored at 1e-5.
    """
    n = features.shape[0]
    if n < 2:
        raise ValueError(f"the median heuristic needs at least 2 rows, got {n}")
    x = features.detach().float().cpu()
    if n > n_sub:
        gen = torch.Generator().manual_seed(seed)
        x = x[torch.randperm(n, generator=gen)[:n_sub]]
    d2 = squared_distances(x, x)
    upper = torch.ones(d2.shape, dtype=torch.bool).triu(diagonal=1)
    return max(math.sqrt(float(d2[upper].median())), 1e-5)


# --------------------------------------------------------------------------- landmarks


def kmeans_landmarks(
    features: Tensor, num_landmarks: int, *, iters: int = 20, seed: int = 0, chunk: int = 65_536
) -> Tensor:
    """Lloyd k-means with ``num_landmarks`` centres (fp32; the caller casts to fp64).

    Init: rows of a seeded ``randperm``. Assignment is chunked. Empty clusters are reseeded with
    the rows farthest from their assigned centres (distinct rows, none of them a centre already).
    """
    n = features.shape[0]
    if not 1 <= num_landmarks <= n:
        raise ValueError(f"num_landmarks must be in [1, {n}] (the rows to fit), got {num_landmarks}")
    gen = torch.Generator().manual_seed(seed)
    x = features.detach().float()
    centres = x[torch.randperm(n, generator=gen)[:num_landmarks].to(x.device)].clone()
    for _ in range(iters):
        c_sq = (centres * centres).sum(dim=1)
        nearest = [squared_distances(x[s : s + chunk], centres, c_sq).min(dim=1) for s in range(0, n, chunk)]
        dist = torch.cat([d.values for d in nearest])
        assign = torch.cat([d.indices for d in nearest])
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=num_landmarks).to(x.dtype)
        empty = counts == 0
        centres = sums / counts.clamp_min(1.0)[:, None]
        if bool(empty.any()):
            centres[empty] = x[torch.topk(dist, int(empty.sum())).indices]
    return centres


# --------------------------------------------------------------------------- bundle


@dataclass(frozen=True, eq=False)
class ReferenceBundle:
    """One encoder's frozen reference: ``Z`` (M, d_in), ``alpha`` (M), σ, k_rr (+ joint fields).

    For a joint bundle, features are ``[φ | β·τ]`` with ``d_in = d_img + d_txt`` and
    β = σ_img / s_txt; ``sigma`` is σ_img (the cold image bandwidth, already × sigma_scale).
    """

    Z: Tensor
    alpha: Tensor
    sigma: float
    k_rr: float
    sigma_scale: float | None = None
    beta: float | None = None
    s_txt: float | None = None
    d_img: int | None = None
    d_txt: int | None = None

    def __post_init__(self) -> None:
        if self.Z.ndim != 2 or self.alpha.ndim != 1 or self.alpha.shape[0] != self.Z.shape[0]:
            raise BundleError(
                f"bundle shapes disagree: Z {tuple(self.Z.shape)} must be (M, d) and alpha "
                f"{tuple(self.alpha.shape)} must be (M,)"
            )
        if not (self.sigma > 0 and math.isfinite(self.sigma)) or not math.isfinite(self.k_rr):
            raise BundleError(f"bundle sigma must be finite and > 0 and k_rr finite, got {self.sigma}, {self.k_rr}")
        joint = (self.beta, self.d_img, self.d_txt)
        if any(v is not None for v in joint):
            if any(v is None for v in joint):
                raise BundleError("a joint bundle needs all of beta, d_img and d_txt")
            if self.d_img + self.d_txt != self.d_in:
                raise BundleError(f"joint bundle: d_img {self.d_img} + d_txt {self.d_txt} != d_in {self.d_in}")

    @property
    def M(self) -> int:
        return int(self.Z.shape[0])

    @property
    def d_in(self) -> int:
        return int(self.Z.shape[1])

    @property
    def gamma(self) -> float:
        return gamma_from_sigma(self.sigma)

    @property
    def joint(self) -> bool:
        return self.beta is not None

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> "ReferenceBundle":
        return replace(self, Z=self.Z.to(device=device, dtype=dtype), alpha=self.alpha.to(device=device, dtype=dtype))


def joint_feature(image_features: Tensor, text_features: Tensor, beta: float) -> Tensor:
    """Φ(x, c) = [φ(x) | β·τ(c)]: gradients flow only through the image part."""
    if image_features.shape[0] != text_features.shape[0]:
        raise ValueError(
            f"joint feature rows disagree: {image_features.shape[0]} image rows vs {text_features.shape[0]} text rows"
        )
    text = text_features.to(device=image_features.device, dtype=image_features.dtype)
    return torch.cat([image_features, beta * text], dim=1)


def nystrom_alpha(landmarks: Tensor, pool: Tensor, gamma: float, *, jitter: float = JITTER, chunk: int = 50_000) -> Tensor:
    """α = (K_ZZ + jitter·I)⁻¹ μ̄ in fp64 by Cholesky, μ̄_m = mean over the *whole* pool of k(Z_m, r)."""
    shift = centre(landmarks.double())
    z = landmarks.double() - shift  # distances are translation-invariant; centred, they keep their digits
    z_sq = (z * z).sum(dim=1)
    k_zz = rbf(z, z, gamma, z_sq) + jitter * torch.eye(z.shape[0], dtype=torch.float64, device=z.device)
    chol = torch.linalg.cholesky(k_zz)
    mu = torch.zeros(z.shape[0], dtype=torch.float64, device=z.device)
    for s in range(0, pool.shape[0], chunk):
        rows = pool[s : s + chunk].to(device=z.device, dtype=torch.float64) - shift
        mu += rbf(rows, z, gamma, z_sq).sum(dim=0)
    mu /= pool.shape[0]
    return torch.cholesky_solve(mu[:, None], chol)[:, 0]


def build_bundle(
    pool: Tensor,
    *,
    sigma: float,
    num_landmarks: int,
    fit_n: int = 200_000,
    krr_n: int = 100_000,
    seed: int = 0,
    kmeans_iters: int = 20,
    jitter: float = JITTER,
    landmarks: Tensor | None = None,
) -> ReferenceBundle:
    """Nyström bundle of a feature pool (N, d): k-means landmarks, α in fp64, k_rr, all stored fp32.

    ``landmarks`` skips k-means (e.g. Z = the whole pool, where the Nyström attraction is exact).
    """
    gamma = gamma_from_sigma(sigma)
    if landmarks is None:
        n = pool.shape[0]
        fit = pool
        if n > fit_n:
            fit = pool[torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:fit_n]]
        landmarks = kmeans_landmarks(fit, num_landmarks, iters=kmeans_iters, seed=seed)
    z = landmarks.double()
    alpha = nystrom_alpha(z, pool, gamma, jitter=jitter)
    k_rr = float(self_mean(pool[:krr_n].double(), gamma, chunk=8192))
    return ReferenceBundle(Z=z.float(), alpha=alpha.float(), sigma=_fp32(sigma), k_rr=_fp32(k_rr))


def build_reference_bundle(
    image_features: Tensor,
    text_features: Tensor | None = None,
    *,
    num_landmarks: int,
    sigma_scale: float = 0.25,
    s_txt: float | None = 1.0,
    median_n: int = 10_000,
    seed: int = 0,
    **build_kwargs,
) -> ReferenceBundle:
    """A marginal (no text) or joint bundle from row-aligned reference features.

    σ_img = sigma_scale × median heuristic over the *image* features only. Joint: β = σ_img/s_txt
    (geALLcoco: s_txt = 1 so β = σ_img; ``s_txt=None`` uses the median text distance, as the
    baseline ``refprep run joint`` does).
    """
    sigma_img = _fp32(sigma_scale * median_sigma(image_features, n_sub=median_n, seed=seed))
    if text_features is None:
        b = build_bundle(image_features, sigma=sigma_img, num_landmarks=num_landmarks, seed=seed, **build_kwargs)
        return replace(b, sigma_scale=sigma_scale)
    if s_txt is None:
        s_txt = median_sigma(text_features, n_sub=median_n, seed=seed)
    beta = _fp32(sigma_img / s_txt)
    joint = joint_feature(image_features.float(), text_features.float(), beta)
    b = build_bundle(joint, sigma=sigma_img, num_landmarks=num_landmarks, seed=seed, **build_kwargs)
    return replace(
        b,
        sigma_scale=sigma_scale,
        beta=beta,
        s_txt=float(s_txt),
        d_img=int(image_features.shape[1]),
        d_txt=int(text_features.shape[1]),
    )


# --------------------------------------------------------------------------- storage

_SCALARS = {"sigma": float, "k_rr": float, "sigma_scale": float, "beta": float, "s_txt": float, "d_img": int, "d_txt": int}


def save_bundle(path: str | os.PathLike[str], bundle: ReferenceBundle, *, provenance: dict | None = None) -> Path:
    """Write a bundle as safetensors (tensors fp32, scalars in the header metadata), atomically.

    ``provenance`` (how the bundle was built: pool, encoder, seeds, ...) is stored as JSON in the
    header under ``provenance``; :func:`read_bundle_provenance` reads it back.
    """
    import json

    from safetensors.torch import save

    meta = {"format": BUNDLE_FORMAT}
    if provenance is not None:
        meta["provenance"] = json.dumps(provenance, sort_keys=True)
    for name in _SCALARS:
        value = getattr(bundle, name)
        if value is not None:
            meta[name] = repr(value)
    tensors = {"Z": bundle.Z.detach().float().contiguous().cpu(), "alpha": bundle.alpha.detach().float().contiguous().cpu()}
    return atomic_write_bytes(path, save(tensors, metadata=meta))


def load_bundle(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> ReferenceBundle:
    """Read a bundle written by ``save_bundle``; tensors come back fp32 on ``device``."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise BundleError(f"reference bundle {path} does not exist; build it with rdmeval.distill.reference.build_reference_bundle")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            keys = set(fh.keys())
            missing = {"Z", "alpha"} - keys
            if missing:
                raise BundleError(f"reference bundle {path} lacks tensor(s) {sorted(missing)}; rebuild it")
            z, alpha = fh.get_tensor("Z"), fh.get_tensor("alpha")
    except BundleError:
        raise
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise BundleError(f"reference bundle {path} is not a readable safetensors file ({exc}); rebuild it") from exc
    if meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"reference bundle {path} has format {meta.get('format')!r}, expected {BUNDLE_FORMAT!r}")
    for required in ("sigma", "k_rr"):
        if required not in meta:
            raise BundleError(f"reference bundle {path} lacks the metadata field {required!r}; rebuild it")
    scalars = {name: kind(float(meta[name])) if kind is int else float(meta[name]) for name, kind in _SCALARS.items() if name in meta}
    try:
        bundle = ReferenceBundle(Z=z, alpha=alpha, **scalars)
    except BundleError as exc:
        raise BundleError(f"reference bundle {path}: {exc}") from exc
    return bundle.to(device, torch.float32)


def read_bundle_provenance(path: str | os.PathLike[str]) -> dict:
    """The provenance record stored by :func:`save_bundle` (``{}`` when the bundle has none)."""
    import json

    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as fh:
        return json.loads((fh.metadata() or {}).get("provenance", "{}"))
