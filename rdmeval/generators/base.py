"""The generator contract: prompts + noise latents in, uint8 RGB images out, plus provenance."""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Generator(Protocol):
    """A text-to-image model evaluated by rdmeval.

    ``generate`` maps ``prompts[i]`` and ``latents[i]`` (shape ``latent_shape``, float32, drawn by
    rdmeval's seed policy) to image ``i``; it must be a pure function of that pair, so that an
    image never depends on batch composition, shard or resume point.
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
    """[0, 1] images (B, 3, H, W) -> uint8 (B, H, W, 3).

    ``round``: ``round(clamp(x, 0, 1) * 255)`` (the reference's PNG writer, GenEval);
    ``truncate``: ``(clamp(x, 0, 1) * 255).byte()`` (the reference's in-memory PickScore path).
    The arithmetic runs in the tensor's own dtype, like the reference (bf16 images stay bf16).
    """
    x = images.clamp(0, 1) * 255
    if mode == "round":
        x = x.round()
    elif mode != "truncate":
        raise ValueError(f"uint8 mode must be 'round' or 'truncate', got {mode!r}")
    return x.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
