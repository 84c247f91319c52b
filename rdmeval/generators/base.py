"""The generator contract: prompts + noise latents in, uint8 RGB images out, plus provenance."""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from rdmeval.errors import RdmevalError


@runtime_checkable
class Generator(Protocol):
    """A text-to-image model evaluated by rdmeval.

    ``generate`` maps ``prompts[i]`` and ``latents[i]`` (shape ``latent_shape``, float32, drawn by
    rdmeval's seed policy) to image ``i``. It must be a pure function of its arguments, carrying no
    state from one call to the next: float kernels may round differently for other batch shapes, so
    rdmeval always calls it on the same fixed blocks of work items (``rdmeval/generation.py``), and
    an image then never depends on shard or resume point.
    """

    name: str

    @property
    def latent_shape(self) -> tuple[int, int, int]: ...

    @property
    def resolution(self) -> tuple[int, int]:
        """(height, width) of the output images."""
        ...

    def describe(self) -> dict[str, Any]:
        """Everything that determines the images (model spec, weight hashes, steps, ctx_len, dtype)."""
        ...

    def generate(self, prompts: Sequence[str], latents: torch.Tensor) -> np.ndarray:
        """Return uint8 images of shape (B, H, W, 3)."""
        ...


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
