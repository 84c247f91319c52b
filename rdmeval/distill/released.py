"""Import the released geALLcoco training assets (the joint Nyström bundles and the τ table).

The RDM authors publish, as the Hugging Face dataset ``Lanl11/irdm-flux-geall-assets``:

- ``bundles/nystrom_joint/<encoder>_joint_M8192.pt``: one torch file per training encoder, a dict
  ``{Z (M, d_in) fp32, alpha (M,) fp32, sigma, k_rr, M, d_in, sigma_scale, s_txt, beta, d_img, d_txt}``;
- ``flux2/siglip2_text_geall_g32.npy``: the generator-side τ table, (100,479, 1152) fp32, row-aligned
  with the ctx pool [COCO train2014 first captions | GenEval 553 x32].

:func:`import_released` reads a local copy of that folder (download it with
``hf download Lanl11/irdm-flux-geall-assets --repo-type dataset --local-dir DIR``), checks every
field against what the trainer and the pool need, and converts the files to this project's formats:
one safetensors bundle per encoder (:func:`rdmeval.distill.reference.save_bundle`) and a sharded τ
table (:mod:`rdmeval.distill.tables`). Anything inconsistent is refused with a message that names
the file and the field. The torch files are read with ``weights_only=True``: no code is unpickled.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from rdmeval.errors import RdmevalError
from rdmeval.io import atomic_write_json, sha256_file
from rdmeval.distill.reference import ReferenceBundle, save_bundle
from rdmeval.distill.tables import prompts_sha256, write_table

HF_DATASET = "Lanl11/irdm-flux-geall-assets"
BUNDLE_DIR = "bundles/nystrom_joint"
TAU_FILE = "flux2/siglip2_text_geall_g32.npy"

# Image feature width of each training encoder of the released run (the bundle's d_img).
RELEASED_IMAGE_DIMS: dict[str, int] = {
    "inception": 2048, "convnext": 1024, "mae": 1024, "clip": 1024, "dinov3_l": 1024, "pe_core_l": 1024,
    "siglip2": 1152, "aimv2_huge": 1536, "webssl_dino_1b": 1536, "dreamsim": 1792,
}


@dataclass(frozen=True)
class ReleasedLayout:
    """What a released asset folder must hold; the defaults are the published geALLcoco set."""

    encoders: Mapping[str, int] = field(default_factory=lambda: dict(RELEASED_IMAGE_DIMS))
    num_landmarks: int = 8192
    d_txt: int = 1152
    sigma_scale: float = 0.25
    s_txt: float = 1.0
    pool_rows: int = 100_479
    bundle_name: str = "{encoder}_joint_M{M}.pt"

    def bundle_path(self, root: Path, encoder: str) -> Path:
        return root / BUNDLE_DIR / self.bundle_name.format(encoder=encoder, M=self.num_landmarks)


class ReleasedAssetError(RdmevalError):
    """A released asset file is missing or inconsistent; the message names the file and the field."""


_REQUIRED = ("Z", "alpha", "sigma", "k_rr", "M", "d_in", "sigma_scale", "s_txt", "beta", "d_img", "d_txt")


def _number(path: Path, name: str, value: Any) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ReleasedAssetError(f"{path.name}: field {name!r} must be a finite number, got {value!r}")
    return float(value)


def _integer(path: Path, name: str, value: Any) -> int:
    number = _number(path, name, value)
    if number != int(number):
        raise ReleasedAssetError(f"{path.name}: field {name!r} must be an integer, got {value!r}")
    return int(number)


def read_released_bundle(path: Path, encoder: str, layout: ReleasedLayout) -> ReferenceBundle:
    """Read one released bundle file, check every field, and return it as a :class:`ReferenceBundle`."""
    if not path.is_file():
        raise ReleasedAssetError(
            f"{path.name} is missing from {path.parent}; download the released assets with "
            f"`hf download {HF_DATASET} --repo-type dataset --local-dir DIR` and pass DIR"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ReleasedAssetError(
            f"{path.name} cannot be read as a torch bundle with weights_only=True ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); it is corrupt or not a released bundle"
        ) from exc
    if not isinstance(obj, dict):
        raise ReleasedAssetError(f"{path.name}: expected a dict of fields, found {type(obj).__name__}")
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise ReleasedAssetError(f"{path.name}: missing field(s) {', '.join(missing)}")
    Z, alpha = obj["Z"], obj["alpha"]
    for name, t, ndim in (("Z", Z, 2), ("alpha", alpha, 1)):
        if not isinstance(t, torch.Tensor) or t.ndim != ndim:
            raise ReleasedAssetError(f"{path.name}: field {name!r} must be a {ndim}-d tensor, got {getattr(t, 'shape', type(t).__name__)}")
        if t.dtype != torch.float32:
            raise ReleasedAssetError(f"{path.name}: field {name!r} must be float32, got {t.dtype}")
        if not bool(torch.isfinite(t).all()):
            raise ReleasedAssetError(f"{path.name}: field {name!r} holds NaN or Inf values")
    M, d_in = _integer(path, "M", obj["M"]), _integer(path, "d_in", obj["d_in"])
    d_img, d_txt = _integer(path, "d_img", obj["d_img"]), _integer(path, "d_txt", obj["d_txt"])
    if M != layout.num_landmarks:
        raise ReleasedAssetError(f"{path.name}: field 'M' is {M}, the released recipe has {layout.num_landmarks} landmarks")
    if tuple(Z.shape) != (M, d_in) or tuple(alpha.shape) != (M,):
        raise ReleasedAssetError(
            f"{path.name}: fields 'Z' {tuple(Z.shape)} and 'alpha' {tuple(alpha.shape)} do not match M = {M}, d_in = {d_in}"
        )
    expected_img = layout.encoders[encoder]
    if d_img != expected_img:
        raise ReleasedAssetError(f"{path.name}: field 'd_img' is {d_img}, encoder {encoder!r} gives {expected_img}-d features")
    if d_txt != layout.d_txt:
        raise ReleasedAssetError(f"{path.name}: field 'd_txt' is {d_txt}, the τ table is {layout.d_txt}-d")
    if d_img + d_txt != d_in:
        raise ReleasedAssetError(f"{path.name}: fields 'd_img' ({d_img}) + 'd_txt' ({d_txt}) != 'd_in' ({d_in})")
    sigma, k_rr = _number(path, "sigma", obj["sigma"]), _number(path, "k_rr", obj["k_rr"])
    sigma_scale, s_txt, beta = (_number(path, k, obj[k]) for k in ("sigma_scale", "s_txt", "beta"))
    if not sigma > 0:
        raise ReleasedAssetError(f"{path.name}: field 'sigma' must be > 0, got {sigma}")
    if not 0 < k_rr <= 1:
        raise ReleasedAssetError(f"{path.name}: field 'k_rr' must be in (0, 1] (a Gaussian kernel mean), got {k_rr}")
    if not math.isclose(sigma_scale, layout.sigma_scale, rel_tol=1e-6):
        raise ReleasedAssetError(f"{path.name}: field 'sigma_scale' is {sigma_scale}, the released recipe uses {layout.sigma_scale}")
    if not math.isclose(s_txt, layout.s_txt, rel_tol=1e-6):
        raise ReleasedAssetError(f"{path.name}: field 's_txt' is {s_txt}, the released recipe uses {layout.s_txt}")
    if not math.isclose(beta, sigma / s_txt, rel_tol=1e-3):  # β = σ_img / s_txt (the authors' own check: |β − σ| < 1e-3)
        raise ReleasedAssetError(f"{path.name}: field 'beta' ({beta}) must equal sigma / s_txt ({sigma / s_txt})")
    try:
        return ReferenceBundle(
            Z=Z.contiguous(), alpha=alpha.contiguous(), sigma=sigma, k_rr=k_rr, sigma_scale=sigma_scale,
            beta=beta, s_txt=s_txt, d_img=d_img, d_txt=d_txt,
        )
    except RdmevalError as exc:
        raise ReleasedAssetError(f"{path.name}: {exc}") from exc


def check_tau(tau: np.ndarray, path: Path, layout: ReleasedLayout, prompts: Sequence[str] | None = None) -> None:
    """Check the τ table: shape, dtype, unit rows, and row alignment with the pool's prompts.

    With the pool's prompts (in pool order), every group of identical prompts must have identical τ
    rows (the GenEval block is tiled x32, COCO has repeated captions), and rows of different prompts
    must differ: a shifted, truncated or shuffled table fails one of the two.
    """
    if tau.ndim != 2 or tau.shape[1] != layout.d_txt:
        raise ReleasedAssetError(f"{path.name}: shape {tau.shape} must be (rows, {layout.d_txt})")
    if tau.dtype != np.float32:
        raise ReleasedAssetError(f"{path.name}: dtype must be float32, got {tau.dtype}")
    if tau.shape[0] != layout.pool_rows:
        raise ReleasedAssetError(
            f"{path.name}: {tau.shape[0]} rows, the generator pool has {layout.pool_rows}; the τ table must be row-aligned with the ctx pool"
        )
    step = 65_536
    for start in range(0, tau.shape[0], step):
        block = np.asarray(tau[start:start + step], dtype=np.float64)
        if not np.isfinite(block).all():
            raise ReleasedAssetError(f"{path.name}: rows {start}..{start + len(block) - 1} hold NaN or Inf values")
        norms = np.linalg.norm(block, axis=1)
        bad = np.flatnonzero(np.abs(norms - 1.0) > 1e-3)
        if bad.size:
            raise ReleasedAssetError(f"{path.name}: row {start + int(bad[0])} has norm {norms[bad[0]]:.4f}; τ rows are L2-normalised")
    if prompts is None:
        return
    if len(prompts) != tau.shape[0]:
        raise ReleasedAssetError(f"{path.name}: {tau.shape[0]} rows but the pool spec gives {len(prompts)} prompts")
    first: dict[str, int] = {}
    for row, prompt in enumerate(prompts):
        seen = first.setdefault(prompt, row)
        if seen != row and not np.array_equal(tau[row], tau[seen]):
            raise ReleasedAssetError(
                f"{path.name}: rows {seen} and {row} hold the same prompt ({prompt[:60]!r}) but different τ; "
                f"the table is not in the pool spec's row order"
            )
    # rows of distinct prompts must differ: a table shifted against the pool repeats rows across prompts
    distinct: dict[bytes, int] = {}
    duplicated = 0
    for row in sorted(first.values()):
        key = np.asarray(tau[row], dtype=np.float32).tobytes()
        duplicated += key in distinct
        distinct.setdefault(key, row)
    if duplicated > max(1, len(first) // 1000):
        raise ReleasedAssetError(
            f"{path.name}: {duplicated} distinct prompts share a τ row; the table is not aligned with the pool spec's prompts"
        )

def import_released(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    layout: ReleasedLayout | None = None,
    prompts: Sequence[str] | None = None,
    encoders: Sequence[str] | None = None,
    ctx_table: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Check and convert a local copy of the released assets into ``out``.

    ``out/bundles/<encoder>.safetensors``, ``out/tau/`` (a sharded table) and ``out/released.json``
    (provenance: each source file's sha256 and the checks that ran). Returns that provenance.

    ``prompts`` (the generator pool's prompts in row order, from its pool spec) turns on the row
    alignment check; ``ctx_table`` (a ctx table built from the same pool) must then have been built
    from the same prompts, in the same order, and hold as many rows.
    """
    layout = layout or ReleasedLayout()
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise ReleasedAssetError(
            f"{src} is not a folder; download the assets with `hf download {HF_DATASET} --repo-type dataset --local-dir {src.name}`"
        )
    names = list(encoders) if encoders is not None else list(layout.encoders)
    unknown = [n for n in names if n not in layout.encoders]
    if unknown:
        raise ReleasedAssetError(f"unknown encoder(s) {unknown}; the released battery is {', '.join(layout.encoders)}")
    bundles = {name: read_released_bundle(layout.bundle_path(src, name), name, layout) for name in names}
    tau_path = src / TAU_FILE
    if not tau_path.is_file():
        raise ReleasedAssetError(f"{TAU_FILE} is missing from {src}; it is part of the released dataset {HF_DATASET}")
    try:
        tau = np.load(tau_path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise ReleasedAssetError(f"{tau_path.name} is not a readable .npy array ({exc})") from exc
    check_tau(tau, tau_path, layout, prompts)
    if ctx_table is not None:
        _check_ctx(Path(ctx_table), int(tau.shape[0]), prompts)
    provenance: dict[str, Any] = {
        "format": "rdmeval.distill.released/1",
        "dataset": HF_DATASET,
        "bundles": {},
        "tau": {"file": TAU_FILE, "sha256": sha256_file(tau_path), "rows": int(tau.shape[0]), "dim": int(tau.shape[1]),
                "row_alignment_checked": prompts is not None},
    }
    for name, bundle in bundles.items():
        path = layout.bundle_path(src, name)
        save_bundle(out / "bundles" / f"{name}.safetensors", bundle)
        provenance["bundles"][name] = {
            "file": str(path.relative_to(src)), "sha256": sha256_file(path), "M": bundle.M, "d_in": bundle.d_in,
            "sigma": bundle.sigma, "beta": bundle.beta, "k_rr": bundle.k_rr,
        }
    # rows are keyed by their prompts (identical prompts share a row, checked above), or by row number
    keys = list(prompts) if prompts is not None else [f"row {i}" for i in range(int(tau.shape[0]))]
    first_row: dict[str, int] = {}
    for row, key in enumerate(keys):
        first_row.setdefault(key, row)
    write_table(out / "tau", keys, lambda batch: torch.from_numpy(np.asarray(tau[[first_row[k] for k in batch]], dtype=np.float32)),
                dtype="float32", batch_size=4096, dedupe=prompts is not None,
                info={"source": TAU_FILE, "sha256": provenance["tau"]["sha256"]})
    atomic_write_json(out / "released.json", provenance)
    return provenance



def _check_ctx(folder: Path, rows: int, prompts: Sequence[str] | None) -> None:
    from rdmeval.distill.tables import Table

    table = Table(folder)
    if len(table) != rows:
        raise ReleasedAssetError(f"ctx table {folder.name}: {len(table)} rows, the τ table has {rows}; they must be row-aligned")
    if prompts is not None and table.meta.get("prompts_sha256") != prompts_sha256(prompts):
        raise ReleasedAssetError(
            f"ctx table {folder.name} was built from other prompts (or another order) than the pool spec's; rebuild it from the same pool"
        )
