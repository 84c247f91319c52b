"""The generator contract: prompts + noise latents in, uint8 RGB images out, plus provenance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch


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

    def generate(self, prompts: Sequence[str], latents: "torch.Tensor") -> "np.ndarray":
        """Return uint8 images of shape (B, H, W, 3)."""
        ...
