"""Build one encoder's reference bundle at the released sizes, in bounded memory, resumably.

The in-memory :func:`rdmeval.distill.reference.build_reference_bundle` holds the whole pool in fp64;
at the released sizes (302,149 rows × up to 2,944 joint dims, M = 8,192) that is 7 GB per copy. This
module streams the pool from a row source (a feature :class:`~rdmeval.distill.tables.Table` or an
array) in blocks, and keeps each stage's result in a work folder so that a killed build resumes:

1. ``sigma.json``: σ_img = sigma_scale × median heuristic over a seeded subsample of the *image*
   features; s_txt (1.0 for geALLcoco, or the text median); β = σ_img / s_txt.
2. ``landmarks.safetensors``: seeded k-means (M landmarks) on a seeded ``fit_n``-row subsample of the
   joint rows [φ | β·τ] (on the GPU when one is given).
3. ``mu.safetensors``: μ̄_m = mean over the *whole* pool of k(Z_m, r), accumulated block by block
   (kernel blocks in fp32, sums in fp64), saved after every block so a resume restarts at the next.
4. ``krr.safetensors``: k_rr = the biased kernel self-mean over ``krr_n`` rows: a seeded random
   sample by default, or the *first* ``krr_n`` rows as the released bundles did (``krr="first"``:
   with the [GenEval | COCO] row order this over-weights the GenEval block); blocks of the pair
   matrix accumulate in fp64 and are saved as they finish.
5. α = (K_ZZ + 1e-6·I)⁻¹ μ̄ by Cholesky in fp64, and the bundle file with its provenance, atomically.

Squared distances use ‖a‖² + ‖b‖² − 2a·b on features centred at the landmarks' mean (a shift leaves
distances unchanged and removes most of the cancellation that large feature norms cause in fp32).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from rdmeval.distill.kernels import gamma_from_sigma
from rdmeval.distill.reference import JITTER, ReferenceBundle, _fp32, kmeans_landmarks, median_sigma, save_bundle
from rdmeval.errors import RdmevalError
from rdmeval.io import atomic_write_bytes, atomic_write_json

STATE_FORMAT = "rdmeval.distill.bundle-build/1"


class BundleBuildError(RdmevalError):
    """A bundle build cannot start or resume (bad inputs, or a work folder of another build)."""


class RowSource(Protocol):
    """Rows of a feature pool: a :class:`~rdmeval.distill.tables.Table` or an :class:`ArrayRows`."""

    def __len__(self) -> int: ...

    def rows(self, start: int, stop: int) -> np.ndarray: ...


class ArrayRows:
    """An in-memory (or memory-mapped) array as a row source."""

    def __init__(self, array: np.ndarray | Tensor):
        self.array = array.detach().cpu().numpy() if isinstance(array, Tensor) else array

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def rows(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.array[start:stop])


@dataclass(frozen=True, kw_only=True)
class BundleRecipe:
    """The released recipe's values by default (geALLcoco joint bundles)."""

    num_landmarks: int = 8192
    sigma_scale: float = 0.25
    s_txt: float | None = 1.0  # None: the median text distance (the baseline `refprep run joint`)
    median_n: int = 10_000
    fit_n: int = 200_000
    kmeans_iters: int = 20
    krr: Literal["sample", "first"] = "sample"
    krr_n: int = 100_000
    seed: int = 0
    jitter: float = JITTER
    block_rows: int = 16_384

    def __post_init__(self) -> None:
        if self.krr not in ("sample", "first"):
            raise BundleBuildError(f"BundleRecipe.krr must be 'sample' or 'first', got {self.krr!r}")
        for name in ("num_landmarks", "median_n", "fit_n", "krr_n", "block_rows"):
            if getattr(self, name) < 1:
                raise BundleBuildError(f"BundleRecipe.{name} must be >= 1")
        if self.kmeans_iters < 0 or not self.sigma_scale > 0:
            raise BundleBuildError("BundleRecipe.kmeans_iters must be >= 0 and sigma_scale > 0")


def _seeded_indices(n: int, k: int, seed: int) -> np.ndarray:
    """``k`` distinct row indices of ``[0, n)`` from a seeded permutation, sorted (for streaming reads)."""
    if k >= n:
        return np.arange(n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k]
    return np.sort(perm.numpy())


def _gather(source: RowSource, index: np.ndarray, block: int) -> np.ndarray:
    """Rows at sorted ``index``, read in contiguous blocks."""
    out: list[np.ndarray] = []
    for start in range(0, len(source), block):
        stop = min(start + block, len(source))
        lo, hi = np.searchsorted(index, [start, stop])
        if hi > lo:
            out.append(source.rows(start, stop)[index[lo:hi] - start])
    return np.concatenate(out).astype(np.float32, copy=False)


def _tensor(rows: np.ndarray) -> Tensor:
    """float32 rows as a tensor (a copy when they are a read-only memory map)."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    return torch.from_numpy(rows if rows.flags.writeable else rows.copy())


class _Joint:
    """Row blocks of [φ | β·τ] (or φ alone), as float32 tensors on ``device``, centred at ``centre``."""

    def __init__(self, image: RowSource, text: RowSource | None, beta: float | None, device: torch.device):
        self.image, self.text, self.beta, self.device = image, text, beta, device
        self.centre: Tensor | None = None

    def __len__(self) -> int:
        return len(self.image)

    def _join(self, phi: np.ndarray, tau: np.ndarray | None) -> Tensor:
        x = _tensor(phi).to(self.device)
        if tau is not None:
            t = _tensor(tau).to(self.device)
            x = torch.cat([x, float(self.beta) * t], dim=1)  # β as a Python float, as joint_feature does
        return x if self.centre is None else x - self.centre

    def block(self, start: int, stop: int) -> Tensor:
        return self._join(self.image.rows(start, stop), None if self.text is None else self.text.rows(start, stop))

    def take(self, index: np.ndarray, block: int) -> Tensor:
        tau = None if self.text is None else _gather(self.text, index, block)
        return self._join(_gather(self.image, index, block), tau)


def _sq_dist(a: Tensor, b: Tensor, b_sq: Tensor) -> Tensor:
    """‖a_i − b_j‖² as −2ab + ‖a‖² + ‖b‖², clamped at 0, in place in one (len(a), len(b)) matrix."""
    d2 = a @ b.T
    return d2.mul_(-2.0).add_((a * a).sum(dim=1)[:, None]).add_(b_sq[None, :]).clamp_min_(0.0)


def _kernel_(d2: Tensor, gamma: float) -> Tensor:
    """exp(−γ·d²), in place."""
    return d2.mul_(-gamma).exp_()


def _save_tensors(path: Path, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    from safetensors.torch import save

    atomic_write_bytes(path, save({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                                  metadata={"state": json.dumps(meta, sort_keys=True)}))


def _load_tensors(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
    from safetensors import safe_open

    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt", device="cpu") as fh:
        meta = json.loads((fh.metadata() or {}).get("state", "{}"))
        return {k: fh.get_tensor(k) for k in fh.keys()}, meta


def build_bundle_streaming(
    image: RowSource,
    text: RowSource | None,
    out: str | os.PathLike[str],
    *,
    work: str | os.PathLike[str],
    recipe: BundleRecipe = BundleRecipe(),
    device: str | torch.device = "cpu",
    provenance: dict[str, Any] | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    landmarks: Tensor | None = None,
) -> ReferenceBundle:
    """Build the bundle of one encoder into ``out`` (safetensors), resuming from ``work``.

    ``image`` (N, d_img) and ``text`` (N, d_txt, or None for a marginal bundle) are row-aligned.
    ``landmarks`` (joint space, uncentred) skips k-means, e.g. all rows for an exact check.
    """
    device = torch.device(device)
    n = len(image)
    if text is not None and len(text) != n:
        raise BundleBuildError(f"image features have {n} rows but the text table has {len(text)}; they must be row-aligned")
    if n < 2:
        raise BundleBuildError(f"a bundle needs at least 2 reference rows, got {n}")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    progress = on_progress or (lambda stage, done, total: None)
    identity = {"format": STATE_FORMAT, "rows": n, "recipe": asdict(recipe), "joint": text is not None,
                "given_landmarks": landmarks is not None}
    recipe_path = work / "build.json"
    if recipe_path.is_file():
        if json.loads(recipe_path.read_text()) != identity:
            raise BundleBuildError(f"{work} holds a build with other inputs or settings; use another work folder or remove it")
    else:
        atomic_write_json(recipe_path, identity)

    # 1. bandwidth (image features only) and β
    sigma_path = work / "sigma.json"
    if sigma_path.is_file():
        scales = json.loads(sigma_path.read_text())
    else:
        sub = _seeded_indices(n, recipe.median_n, recipe.seed)
        sigma_img = _fp32(recipe.sigma_scale * median_sigma(torch.from_numpy(_gather(image, sub, recipe.block_rows)),
                                                            n_sub=recipe.median_n, seed=recipe.seed))
        scales = {"sigma": sigma_img, "s_txt": None, "beta": None}
        if text is not None:
            s_txt = recipe.s_txt
            if s_txt is None:
                s_txt = median_sigma(torch.from_numpy(_gather(text, sub, recipe.block_rows)), n_sub=recipe.median_n, seed=recipe.seed)
            scales.update(s_txt=float(s_txt), beta=_fp32(sigma_img / s_txt))
        atomic_write_json(sigma_path, scales)
    progress("bandwidth", 1, 1)
    sigma, gamma = scales["sigma"], gamma_from_sigma(scales["sigma"])
    rows = _Joint(image, text, scales["beta"], device)

    # 2. landmarks
    lm_path = work / "landmarks.safetensors"
    loaded = _load_tensors(lm_path)
    if loaded is not None:
        z = loaded[0]["Z"].to(device)
    elif landmarks is not None:
        z = landmarks.to(device=device, dtype=torch.float32)
        _save_tensors(lm_path, {"Z": z}, {})
    else:
        fit = rows.take(_seeded_indices(n, recipe.fit_n, recipe.seed), recipe.block_rows)
        z = kmeans_landmarks(fit, recipe.num_landmarks, iters=recipe.kmeans_iters, seed=recipe.seed, chunk=8192)
        del fit
        _save_tensors(lm_path, {"Z": z}, {})
    progress("landmarks", 1, 1)
    rows.centre = z.double().mean(dim=0).float()
    zc = z - rows.centre
    zc_sq = (zc * zc).sum(dim=1)

    # 3. μ̄ over the whole pool
    mu_path = work / "mu.safetensors"
    loaded = _load_tensors(mu_path)
    mu, start = (loaded[0]["sum"].to(device), int(loaded[1]["next"])) if loaded else (torch.zeros(z.shape[0], dtype=torch.float64, device=device), 0)
    while start < n:
        stop = min(start + recipe.block_rows, n)
        k = _kernel_(_sq_dist(rows.block(start, stop), zc, zc_sq), gamma)
        mu += k.sum(dim=0, dtype=torch.float64)
        del k
        start = stop
        _save_tensors(mu_path, {"sum": mu}, {"next": start})
        progress("mu", start, n)
    mu = mu / n

    # 4. k_rr over krr_n rows (a seeded sample, or the first rows)
    krr_path = work / "krr.safetensors"
    m = min(recipe.krr_n, n)
    krr_index = np.arange(m) if recipe.krr == "first" else _seeded_indices(n, m, recipe.seed + 1)
    loaded = _load_tensors(krr_path)
    total, start = (float(loaded[0]["sum"]), int(loaded[1]["next"])) if loaded else (0.0, 0)
    if start < m:
        sample = rows.take(krr_index, recipe.block_rows)
        s_sq = (sample * sample).sum(dim=1)
        step = max(1, recipe.block_rows // 8)  # (step × krr_n) fp32: 0.8 GB at the released sizes
        while start < m:
            stop = min(start + step, m)
            block = _kernel_(_sq_dist(sample[start:stop], sample, s_sq), gamma)
            total += float(block.sum(dtype=torch.float64))
            start = stop
            _save_tensors(krr_path, {"sum": torch.tensor(total, dtype=torch.float64)}, {"next": start})
            progress("k_rr", start, m)
        del sample
    k_rr = total / (m * m)

    # 5. α by Cholesky in fp64 (distances from the centred landmarks, recomputed in fp64)
    zd = zc.double()
    zd_sq = (zd * zd).sum(dim=1)
    k_zz = torch.exp(-gamma * _sq_dist(zd, zd, zd_sq)) + recipe.jitter * torch.eye(zd.shape[0], dtype=torch.float64, device=device)
    alpha = torch.cholesky_solve(mu[:, None], torch.linalg.cholesky(k_zz))[:, 0]
    bundle = ReferenceBundle(
        Z=z.float().cpu(), alpha=alpha.float().cpu(), sigma=sigma, k_rr=_fp32(k_rr), sigma_scale=recipe.sigma_scale,
        beta=scales["beta"], s_txt=scales["s_txt"],
        d_img=None if text is None else int(image.rows(0, 1).shape[1]),
        d_txt=None if text is None else int(text.rows(0, 1).shape[1]),
    )
    record = {"recipe": asdict(recipe), "rows": n, "krr_rows": "first" if recipe.krr == "first" else "seeded sample",
              **(provenance or {})}
    save_bundle(out, bundle, provenance=record)
    progress("bundle", 1, 1)
    return bundle

