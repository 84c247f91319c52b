"""A deterministic stand-in generator (no weights): images are a fixed function of (prompt, noise).

Used by tests of the run store and as a smoke backend; it is registered as ``--model dummy``.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rdmeval.generators.base import to_uint8

if TYPE_CHECKING:
    from rdmeval.generators.registry import GeneratorOptions


class DummyGenerator:
    name = "dummy"

    def __init__(self, height: int = 64, width: int = 64, uint8_mode: str = "round"):
        if height % 16 or width % 16:
            raise ValueError("height and width must be multiples of 16")
        self.height, self.width, self.uint8_mode = height, width, uint8_mode

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (128, self.height // 16, self.width // 16)

    @property
    def resolution(self) -> tuple[int, int]:
        return (self.height, self.width)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "height": self.height, "width": self.width, "uint8": self.uint8_mode}

    def generate(self, prompts: Sequence[str], latents: torch.Tensor) -> np.ndarray:
        tint = torch.tensor(
            [[b / 255.0 for b in hashlib.sha256(p.encode()).digest()[:3]] for p in prompts], dtype=torch.float32
        )
        x = torch.sigmoid(latents[:, :3].float().cpu())
        x = F.interpolate(x, size=(self.height, self.width), mode="nearest")
        x = 0.5 * x + 0.5 * tint[:, :, None, None]
        return to_uint8(x, self.uint8_mode)


def build(options: "GeneratorOptions") -> DummyGenerator:
    """The registry's factory (``rdmeval.generators.registry.GENERATORS["dummy"]``)."""
    return DummyGenerator(options.height, options.width, options.uint8)
