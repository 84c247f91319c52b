"""GenEval's detector: Mask2Former Swin-S (COCO instances) from mmdet 3.3.0, batched over image files.

- The config is the one shipped inside the installed mmdet package
  (``mmdet/.mim/configs/mask2former/mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py``), never a copied
  standalone file: it inherits a ``_base_`` chain (swin-s -> swin-t -> r50 -> r50 panoptic).
- The checkpoint is a local file or the official v3.0 download, pinned by the mmdet convention that
  the 8 hex digits before ``.pth`` are a prefix of the file's sha256, and cached under
  ``$RDMEVAL_CACHE/detectors/``. ``checkpoint=None`` is refused unless ``random_init=True`` (tests and
  the demo; the numbers are then meaningless).
- Labels are named with GenEval's own 80 class names (:func:`geneval_object_names`), which are mmdet's
  COCO classes with three renames; mapping by mmdet's names would silently break 33 prompts.
- Before running on a GPU, :func:`check_mmcv_ops` runs mmcv's compiled multi-scale deformable attention
  and compares it with the pure-PyTorch version: an mmcv built without kernels for the GPU prints an
  error and carries on with near-zero scores (GenEval issues #12, #15), so it is stopped here.

The config, checkpoint and mmcv-kernel pieces live in :mod:`rdmeval.scorers.geneval.detector_files`.
The model is built lazily, on the first :meth:`MMDetDetector.detect` call, so a fully cached run is
re-judged without loading it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rdmeval.errors import RdmevalError, require
from rdmeval.scorers.geneval.detector_files import (  # noqa: F401 (re-exported: the detector's public names)
    CHECKPOINT_SHA256_PREFIX,
    CHECKPOINT_URL,
    CONFIG_NAME,
    MMDET2_CHECKPOINT_SUFFIX,
    builtin_config_path,
    check_mmcv_ops,
    config_sha256,
    load_config,
    resolve_checkpoint,
    verify_checkpoint_name,
    verify_ms_deform_attn,
)
from rdmeval.scorers.geneval.detections import N_OBJECT_NAMES, ImageDetections, from_pred_instances


#: mmdet's COCO class name -> GenEval's name (``object_names.txt`` lines 65-67); re-exported from the light module.
from rdmeval.geneval_classes import MMDET_TO_GENEVAL_NAMES  # noqa: E402

#: Masks are cached only for detections scoring above this (float32 ``>``). Every detection the judge
#: can keep at a threshold >= this has its mask; the color test needs no other. Encoding all 100 masks
#: per image as RLE would dominate a GPU run's time and the cache size.
MASK_SCORE_FLOOR = 0.05



# ----------------------------------------------------------------------------- the Detector protocol


@dataclass
class DetectedImage:
    """One image's raw detections (GenEval's per-class view) and its size."""

    detections: ImageDetections
    height: int
    width: int


class Detector(Protocol):
    """What GenEval scoring needs from a detector (the mmdet one, or a stub in tests).

    ``identity`` is a JSON-able dict that changes whenever the detections could: it keys the cache.
    ``detect`` yields one :class:`DetectedImage` per path, in order.
    """

    @property
    def identity(self) -> dict[str, Any]: ...

    def detect(self, paths: Sequence[Path], batch_size: int = 8) -> Iterator[DetectedImage]: ...


def identity_key(identity: dict[str, Any]) -> str:
    """A short stable hash of an identity dict (16 hex digits of its canonical JSON's sha256)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- class names


def geneval_object_names(mmdet_classes: Sequence[str] | None = None) -> list[str]:
    """GenEval's 80 class names, derived from mmdet's COCO classes and the three renames.

    ``mmdet_classes`` defaults to ``mmdet.datasets.CocoDataset.METAINFO['classes']``. The result equals
    GenEval's ``evaluation/object_names.txt`` (a test checks it against the real file).
    """
    if mmdet_classes is None:
        require("mmdet", "geneval", "GenEval's class names")
        from mmdet.datasets import CocoDataset

        mmdet_classes = CocoDataset.METAINFO["classes"]
    classes = [str(c) for c in mmdet_classes]
    if len(classes) != N_OBJECT_NAMES or not set(MMDET_TO_GENEVAL_NAMES) <= set(classes):
        raise RdmevalError(
            f"mmdet's COCO class list has {len(classes)} names (expected {N_OBJECT_NAMES} including "
            f"{', '.join(MMDET_TO_GENEVAL_NAMES)}); is mmdet 3.3.0 installed? Pass GenEval's object_names.txt instead"
        )
    return [MMDET_TO_GENEVAL_NAMES.get(c, c) for c in classes]


def names_sha256(names: Sequence[str]) -> str:
    """sha256 of the names as GenEval's file would hold them (one per line, trailing newline)."""
    return hashlib.sha256(("\n".join(names) + "\n").encode()).hexdigest()



def adapt_pred_instances(pred: Any, object_names: Sequence[str], mask_score_floor: float = MASK_SCORE_FLOOR) -> ImageDetections:
    """mmdet-3 ``pred_instances`` -> GenEval's per-class view (:func:`from_pred_instances`).

    Masks are kept only for detections with score > ``mask_score_floor`` (float32 comparison, like the
    judge's threshold), and only those masks leave the device; the others get ``mask=None``.
    """
    import torch

    masks = getattr(pred, "masks", None)
    scores = pred.scores
    keep = scores > torch.tensor(mask_score_floor, dtype=torch.float32).to(scores.device, scores.dtype)
    out = from_pred_instances(
        pred.labels[keep], scores[keep], pred.bboxes[keep], None if masks is None else masks[keep], object_names
    )
    rest = from_pred_instances(pred.labels[~keep], scores[~keep], pred.bboxes[~keep], None, object_names)
    for name, dets in rest.items():
        out.setdefault(name, []).extend(dets)
    return out


# ----------------------------------------------------------------------------- the mmdet detector


def _numpy_meta_globals() -> list:
    """numpy types that mmdet/mmengine checkpoint meta may hold (plain data, safe to allowlist)."""
    import numpy as np

    allowed: list = [np.dtype, np.ndarray]
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    allowed += [scalar, _reconstruct]
    allowed += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool", "uint8")]
    return allowed


def default_device() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


def _set_test_scale(cfg, scale: tuple[int, int]) -> None:
    """Replace the test pipeline's Resize scale (the config's is (1333, 800)). Changes every score."""
    from mmdet.utils import get_test_pipeline_cfg

    if len(scale) != 2 or not all(isinstance(v, int) and v > 0 for v in scale):
        raise RdmevalError(f"test_scale must be two positive integers (w, h), got {scale!r}")
    resizes = [t for t in get_test_pipeline_cfg(cfg) if t.get("type") == "Resize"]
    if len(resizes) != 1:
        raise RdmevalError(f"the detector config's test pipeline has {len(resizes)} Resize steps; expected one")
    resizes[0]["scale"] = tuple(scale)


class MMDetDetector:
    """Mask2Former Swin-S from mmdet 3.3.0, returning GenEval's per-class detections.

    Construction resolves the config and checkpoint (downloading it if needed) and computes the
    identity; the model itself is built on first use. ``random_init=True`` (only with
    ``checkpoint=None``) builds the architecture with seeded random weights: every score is then
    about 0.02, so nothing passes GenEval's thresholds. Use it for plumbing tests only.
    ``test_scale=(w, h)`` replaces the test pipeline's Resize scale ((1333, 800), which upscales a
    512x512 image to 800x800): it departs from the protocol and exists for fast smoke runs (the
    demo); it is part of the identity.
    """

    name = "mmdet-mask2former-swin-s"

    def __init__(
        self,
        config: str | os.PathLike[str] | None = None,
        checkpoint: str | os.PathLike[str] | None = CHECKPOINT_URL,
        *,
        random_init: bool = False,
        device: str | None = None,
        object_names: Sequence[str] | None = None,
        num_workers: int | None = None,
        mask_score_floor: float = MASK_SCORE_FLOOR,
        test_scale: tuple[int, int] | None = None,
        progress: bool = True,
    ) -> None:
        require("mmdet", "geneval", "The GenEval detector (Mask2Former, mmdet 3.3.0; see scripts/install_mmcv.sh)")
        require("mmcv.ops", "geneval", "The GenEval detector (mmcv with compiled ops: run scripts/install_mmcv.sh)")
        if checkpoint is None and not random_init:
            raise RdmevalError(
                "no detector checkpoint given; pass --detector-checkpoint PATH, or omit it to download the "
                "pinned one. (Random weights need an explicit --random-detector and give meaningless scores.)"
            )
        if checkpoint is not None and random_init:
            raise RdmevalError("random_init=True builds random weights: pass checkpoint=None with it")
        self.config_path = Path(config).expanduser() if config is not None else builtin_config_path()
        self.cfg = load_config(self.config_path)
        if test_scale is not None:
            _set_test_scale(self.cfg, test_scale)
        self.random_init = random_init
        self.checkpoint_path: Path | None = None
        self.checkpoint_sha256: str | None = None
        if checkpoint is not None:
            self.checkpoint_path, self.checkpoint_sha256 = resolve_checkpoint(checkpoint, progress=progress)
        self.object_names = list(object_names) if object_names is not None else geneval_object_names()
        if len(self.object_names) != N_OBJECT_NAMES:
            raise RdmevalError(f"object_names must list {N_OBJECT_NAMES} GenEval class names, got {len(self.object_names)}")
        self.device = device or default_device()
        self.num_workers = num_workers
        if not 0.0 <= float(mask_score_floor) < 1.0:
            raise RdmevalError(f"mask_score_floor must be in [0, 1), got {mask_score_floor!r}")
        self.mask_score_floor = float(mask_score_floor)
        self._model = None
        self._pipeline = None

        import mmcv
        import mmdet

        self._identity = {
            "detector": self.name,
            "config": self.config_path.name,
            "config_builtin": config is None,
            "config_sha256": config_sha256(self.cfg),
            "checkpoint": self.checkpoint_path.name if self.checkpoint_path else "random-init(seed=0)",
            "checkpoint_sha256": self.checkpoint_sha256,
            "object_names_sha256": names_sha256(self.object_names),
            "mask_score_floor": self.mask_score_floor,
            "test_scale": list(test_scale) if test_scale is not None else None,
            "mmdet": mmdet.__version__,
            "mmcv": mmcv.__version__,
        }

    @property
    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    # ------------------------------------------------------------------ model
    def load(self) -> None:
        """Build the model now (else the first :meth:`detect` does), so that timing starts at inference."""
        if self._model is None:
            self._build()

    def _build(self):
        import torch
        from mmcv.transforms import Compose
        from mmdet.apis import init_detector
        from mmdet.utils import get_test_pipeline_cfg

        weights = self.checkpoint_path.name if self.checkpoint_path else "random weights: a stand-in, scores mean nothing"
        logging.getLogger(__name__).info("building the GenEval detector (Mask2Former Swin-S, %s) on %s ...", weights, self.device)
        check_mmcv_ops(self.device)
        # init_detector warns "checkpoint is None" (rdmeval loads the weights itself, below) after a
        # warnings.simplefilter('once') of its own that would defeat an ignore filter: record, drop that one
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = init_detector(self.cfg, checkpoint=None, device="cpu")
        for w in caught:
            if not str(w.message).startswith("checkpoint is None"):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        if self.checkpoint_path is not None:
            self._load_weights(model)
        self._model = model.to(self.device).eval()
        self._pipeline = Compose(get_test_pipeline_cfg(model.cfg))
        return self._model

    def _load_weights(self, model) -> None:
        import pickle

        import torch

        path = self.checkpoint_path
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # mmdet checkpoints may carry numpy scalars/dtypes in their meta: allow exactly those
            # data types (still weights_only: no code is ever unpickled), nothing else.
            try:
                with torch.serialization.safe_globals(_numpy_meta_globals()):
                    ckpt = torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as exc:
                raise RdmevalError(
                    f"{path}: the checkpoint holds Python objects beyond tensors and numpy scalars, which rdmeval "
                    f"never unpickles ({str(exc).splitlines()[0]}). Use the official checkpoint "
                    f"({CHECKPOINT_URL}) or re-save the state_dict with torch.save(model.state_dict())."
                ) from None
        except (OSError, RuntimeError) as exc:
            raise RdmevalError(f"{path}: cannot be loaded as a torch checkpoint: {exc}") from None
        state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(state, dict):
            raise RdmevalError(f"{path}: not an mmdet checkpoint (no state_dict)")
        state = {k.removeprefix("module."): v for k, v in state.items()}
        result = model.load_state_dict(state, strict=False)
        params = {name for name, _ in model.named_parameters()}
        missing = [k for k in result.missing_keys if k in params]
        if missing:
            raise RdmevalError(
                f"{path} does not fit the config {self.config_path.name}: {len(missing)} model parameters are "
                f"missing from it (e.g. {', '.join(missing[:3])}). An mmdet 2.x checkpoint gives this; use "
                f"{CHECKPOINT_URL}"
            )
        if result.unexpected_keys:
            warnings.warn(f"{path}: {len(result.unexpected_keys)} checkpoint keys unused, e.g. {result.unexpected_keys[:3]}")

    # ------------------------------------------------------------------ inference
    def detect(self, paths: Sequence[Path], batch_size: int = 8) -> Iterator[DetectedImage]:
        """Yield the detections of each image file, in order, running ``batch_size`` images per forward."""
        import torch
        from mmengine.dataset import pseudo_collate

        if batch_size < 1:
            raise RdmevalError(f"--batch-size must be >= 1, got {batch_size}")
        model = self._model or self._build()
        workers = self.num_workers
        if workers is None:
            workers = min(8, os.cpu_count() or 1) if torch.device(self.device).type == "cuda" else 0
        loader = torch.utils.data.DataLoader(
            _ImageFiles([Path(p) for p in paths], self._pipeline),
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=pseudo_collate,
            shuffle=False,
        )
        for batch in loader:
            with torch.no_grad():
                samples = model.test_step(batch)
            for sample in samples:
                height, width = (int(v) for v in sample.metainfo["ori_shape"][:2])
                dets = adapt_pred_instances(sample.pred_instances, self.object_names, self.mask_score_floor)
                yield DetectedImage(dets, height, width)


class _ImageFiles:
    """Map-style dataset: image file -> the config's test pipeline output (for a DataLoader)."""

    def __init__(self, paths: list[Path], pipeline) -> None:
        self.paths = paths
        self.pipeline = pipeline

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path = self.paths[i]
        try:
            return self.pipeline(dict(img_path=str(path), img_id=i))
        except Exception as exc:  # cv2/mmcv raise assorted errors on unreadable files
            raise RdmevalError(
                f"cannot read image {path} ({type(exc).__name__}: {exc}); regenerate it by resuming "
                "`rdmeval generate` into the same --out"
            ) from None


__all__ = [
    "CHECKPOINT_SHA256_PREFIX",
    "CHECKPOINT_URL",
    "CONFIG_NAME",
    "DetectedImage",
    "Detector",
    "MMDET_TO_GENEVAL_NAMES",
    "MASK_SCORE_FLOOR",
    "MMDetDetector",
    "adapt_pred_instances",
    "builtin_config_path",
    "check_mmcv_ops",
    "geneval_object_names",
    "identity_key",
    "resolve_checkpoint",
    "verify_ms_deform_attn",
]
