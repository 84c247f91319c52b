"""The files that define GenEval's detector, and the GPU check of mmcv's compiled ops.

- the config: the Mask2Former Swin-S config shipped inside the installed mmdet (``_base_`` chain
  resolved by mmengine), and its content hash;
- the checkpoint: a local file or the official v3.0 download, pinned by the 8 hex digits before
  ``.pth`` (a prefix of its sha256), cached under ``$RDMEVAL_CACHE/detectors/``;
- :func:`check_mmcv_ops`: mmcv's compiled deformable attention against its PyTorch version.

:mod:`rdmeval.scorers.geneval.detector` (the detector itself) re-exports every name here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import urllib.request
from pathlib import Path

from rdmeval.cache import cache_dir
from rdmeval.errors import ChecksumError, RdmevalError, require
from rdmeval.io import sha256_file

#: The config file name inside ``mmdet/.mim/configs/mask2former/`` (mmdet 3.x naming).
CONFIG_NAME = "mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py"
#: The official mmdet 3.x checkpoint of that config (docs/geneval.md, "Detector").
CHECKPOINT_URL = (
    "https://download.openmmlab.com/mmdetection/v3.0/mask2former/"
    "mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco/"
    "mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco_20220504_001756-c9d0c4f2.pth"
)
CHECKPOINT_SHA256_PREFIX = "c9d0c4f2"
#: The mmdet 2.x checkpoint of the same training run: its key names do not fit mmdet 3 models.
MMDET2_CHECKPOINT_SUFFIX = "743b7d99"

_HASH_SUFFIX = re.compile(r"-([0-9a-f]{8})\.pth$")

# ----------------------------------------------------------------------------- config and checkpoint


def builtin_config_path() -> Path:
    """The Mask2Former Swin-S config shipped inside the installed mmdet package."""
    mmdet = require("mmdet", "geneval", "The GenEval detector")
    path = Path(mmdet.__file__).resolve().parent / ".mim" / "configs" / "mask2former" / CONFIG_NAME
    if not path.is_file():
        raise RdmevalError(
            f"{path} is missing: the installed mmdet ({getattr(mmdet, '__version__', '?')}) does not ship its "
            "configs. Install mmdet==3.3.0 from PyPI (`pip install mmdet==3.3.0`), or pass --detector-config"
        )
    return path


def load_config(path: str | os.PathLike[str]):
    """mmengine Config of ``path`` (its ``_base_`` chain resolved), with a clear error if unreadable."""
    require("mmengine", "geneval", "Reading the detector config")
    from mmengine.config import Config

    p = Path(path)
    if not p.is_file():
        raise RdmevalError(f"--detector-config {p}: no such file")
    try:
        return Config.fromfile(str(p))
    except Exception as exc:  # mmengine raises many types for a bad config
        raise RdmevalError(f"--detector-config {p}: cannot be read as an mmdet config: {exc}") from None


def config_sha256(cfg) -> str:
    """sha256 of what decides the detections: the resolved ``model`` and test pipeline sections."""
    from mmdet.utils import get_test_pipeline_cfg

    relevant = {"model": cfg.model.to_dict(), "test_pipeline": [dict(t) for t in get_test_pipeline_cfg(cfg)]}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=repr).encode()).hexdigest()


def _offline() -> bool:
    return bool(os.environ.get("RDMEVAL_OFFLINE") or os.environ.get("HF_HUB_OFFLINE"))


def verify_checkpoint_name(path: Path, digest: str) -> None:
    """Check the mmdet convention: the ``-xxxxxxxx.pth`` suffix is a prefix of the sha256."""
    if path.name.endswith(f"-{MMDET2_CHECKPOINT_SUFFIX}.pth"):
        raise RdmevalError(
            f"{path} is the mmdet 2.x checkpoint (-{MMDET2_CHECKPOINT_SUFFIX}); its key names do not fit "
            f"mmdet 3 and give near-zero scores. Use the v3.0 checkpoint: {CHECKPOINT_URL}"
        )
    m = _HASH_SUFFIX.search(path.name)
    if m and not digest.startswith(m.group(1)):
        raise ChecksumError(
            f"{path}: sha256 {digest} does not start with {m.group(1)} as its name promises (mmdet "
            "convention); the file is corrupt or truncated: delete it and download it again"
        )


def resolve_checkpoint(spec: str | os.PathLike[str] | None = None, *, progress: bool = True) -> tuple[Path, str]:
    """Return (local path, sha256) of the detector checkpoint, downloading the pinned one if needed.

    ``spec`` is a local file, a URL, or None for the official v3.0 checkpoint. Downloads go to
    ``$RDMEVAL_CACHE/detectors/<file name>`` (atomically) and are checked against the hash prefix in
    the file name; the default checkpoint must match ``c9d0c4f2``.
    """
    spec = str(spec) if spec is not None else CHECKPOINT_URL
    if not re.match(r"^[a-z]+://", spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise RdmevalError(
                f"--detector-checkpoint {path}: no such file. Download {CHECKPOINT_URL} "
                "(or omit the flag to download it into the cache)"
            )
        logging.getLogger(__name__).info("checking the detector checkpoint %s (sha256) ...", path.name)
        digest = sha256_file(path)
        verify_checkpoint_name(path, digest)
        return path, digest
    name = spec.rsplit("/", 1)[-1]
    target = cache_dir() / "detectors" / name
    if not target.is_file():
        if _offline():
            raise RdmevalError(
                f"the detector checkpoint is not cached at {target} and downloads are off "
                f"(RDMEVAL_OFFLINE/HF_HUB_OFFLINE). Download {spec} yourself and pass --detector-checkpoint PATH"
            )
        _download(spec, target, progress=progress)
    logging.getLogger(__name__).info("checking the detector checkpoint %s (sha256) ...", target.name)
    digest = sha256_file(target)
    try:
        verify_checkpoint_name(target, digest)
        if spec == CHECKPOINT_URL and not digest.startswith(CHECKPOINT_SHA256_PREFIX):
            raise ChecksumError(f"{target}: sha256 {digest} does not start with the pinned {CHECKPOINT_SHA256_PREFIX}")
    except ChecksumError as exc:
        raise ChecksumError(f"{exc}. Delete {target} and run again to re-download it") from None
    return target, digest


def _download(url: str, target: Path, *, progress: bool) -> None:
    from tqdm.auto import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {target.name}", disable=not progress) as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        os.replace(tmp, target)
    except OSError as exc:
        raise RdmevalError(
            f"could not download the detector checkpoint {url} ({exc}). On an offline machine, copy it "
            "and pass --detector-checkpoint PATH"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ----------------------------------------------------------------------------- mmcv GPU kernels


def check_mmcv_ops(device: str) -> None:
    """Fail loudly unless mmcv's compiled deformable attention runs (and is right) on ``device``.

    A CUDA mmcv built for other GPU architectures prints "no kernel image is available" and returns
    garbage instead of raising; a CPU-only mmcv raises "implementation for device cuda not found".
    Both leave Mask2Former with near-zero scores, so the compiled op is compared with mmcv's pure
    PyTorch implementation on a tiny random input. CPU devices need no check (Mask2Former uses the
    PyTorch path there).
    """
    import torch

    if torch.device(device).type == "cuda":
        verify_ms_deform_attn(device)


def verify_ms_deform_attn(device: str) -> None:
    """Run mmcv's compiled ``MultiScaleDeformableAttnFunction`` on ``device`` against the PyTorch one."""
    import torch
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction, multi_scale_deformable_attn_pytorch

    dev = torch.device(device)
    where = dev.type
    if dev.type == "cuda":
        major, minor = torch.cuda.get_device_capability(dev)
        where = f"{torch.cuda.get_device_name(dev)}, sm_{major}{minor}"
    fix = (
        f"mmcv's compiled ops have no working kernel for this device ({where}). Rebuild mmcv on this "
        "machine with `PYTHON=.venv/bin/python scripts/install_mmcv.sh --force` (it builds the CUDA ops "
        "for the visible GPU; needs nvcc). Scoring would otherwise print an error and carry on with "
        "near-zero scores"
    )
    gen = torch.Generator().manual_seed(0)
    bs, heads, dims, levels, points, queries = 1, 2, 8, 2, 2, 5
    shapes = torch.tensor([[6, 4], [3, 2]], dtype=torch.long)
    n_keys = int((shapes[:, 0] * shapes[:, 1]).sum())
    value = torch.rand(bs, n_keys, heads, dims, generator=gen)
    locs = torch.rand(bs, queries, heads, levels, points, 2, generator=gen)
    weights = torch.rand(bs, queries, heads, levels, points, generator=gen)
    weights = weights / weights.sum(dim=(-1, -2), keepdim=True)
    expected = multi_scale_deformable_attn_pytorch(value, shapes, locs, weights)
    start = torch.cat([shapes.new_zeros(1), (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]])
    try:
        got = MultiScaleDeformableAttnFunction.apply(
            value.to(dev), shapes.to(dev), start.to(dev), locs.to(dev), weights.to(dev), 64
        )
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    except RuntimeError as exc:
        raise RdmevalError(f"{fix}. ({exc})") from None
    if not torch.allclose(got.float().cpu(), expected, atol=1e-4, rtol=1e-4):
        raise RdmevalError(f"{fix}. (the compiled op returned wrong values)")
