"""Shared generator pieces: the float -> uint8 image conversion; the contract itself is
:class:`rdmeval.api.Generator` (re-exported here for older imports)."""

from __future__ import annotations

import numpy as np
import torch

from rdmeval.api.generator import Generator
from rdmeval.errors import RdmevalError

__all__ = ["Generator", "to_uint8"]


def to_uint8(images: torch.Tensor, mode: str = "round") -> np.ndarray:
    """[0, 1] images (B, 3, H, W) -> uint8 (B, H, W, 3), as the reference converts them.

    ``round``: ``round(clamp(x, 0, 1) * 255)`` in the image's own dtype (the reference's GenEval PNG
    writer rounds the bf16 image as it is); ``truncate``: ``(clamp(x, 0, 1) * 255)`` truncated in
    fp32 (the reference's PickScore path, ``to_pil_image(img.float())``).
    """
    if mode == "truncate":
        images = images.float()
    elif mode != "round":
        raise RdmevalError(f"uint8 mode must be 'round' or 'truncate', got {mode!r}")
    x = images.clamp(0, 1) * 255
    if mode == "round":
        x = x.round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
