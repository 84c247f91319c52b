"""Seed policies: the noise of each work item is a function of the item alone.

* ``per-sample`` (GenEval): one ``torch.Generator`` per image, seeded
  ``base + prompt_idx * 100 + sample_idx`` (base 46_000_000), drawing ``randn(latent_shape)``.
* ``one-call`` (Pick-a-Pic): one generator seeded ``seed`` draws ``randn(N, *latent_shape)`` for
  all N items of the set in a single call; item k takes slice k (k = prompt_idx * n + sample_idx).

Noise is drawn on ``rng_device`` (the reference used CUDA's Philox generator; CPU and CUDA give
different numbers for the same seed), then moved to the model device. Recorded in manifests.
"""

from __future__ import annotations

from typing import Sequence

import torch

from rdmeval.api.benchmark import GENEVAL_SEED_BASE, GENEVAL_SEEDS, PICKAPIC_SEEDS, SeedPolicy
from rdmeval.api.layout import WorkItem
from rdmeval.errors import RdmevalError

__all__ = ["GENEVAL_SEEDS", "GENEVAL_SEED_BASE", "MAX_SAMPLES_PER_PROMPT", "NoiseSource", "PICKAPIC_SEEDS", "SeedPolicy", "default_rng_device"]

MAX_SAMPLES_PER_PROMPT = 100  # the per-sample formula reserves 100 seeds per prompt


def default_rng_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _rng_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RdmevalError(f"--rng-device {name!r}: not a device (use cuda or cpu)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RdmevalError(
            f"--rng-device {name}: CUDA is not available here; use --rng-device cpu "
            "(the noise, and so the images, then differ from the reference's CUDA-drawn noise)"
        )
    return device


class NoiseSource:
    """Draws the latents of work items under a seed policy."""

    def __init__(self, policy: SeedPolicy, latent_shape: tuple[int, int, int], *, n_prompts: int, n_per_prompt: int, rng_device: str = "cpu"):
        if policy.kind == "per-sample" and n_per_prompt > MAX_SAMPLES_PER_PROMPT:
            raise RdmevalError(f"--n-per-prompt {n_per_prompt}: the per-sample seed formula allows at most 100")
        self.policy = policy
        self.latent_shape = tuple(latent_shape)
        self.n_prompts = n_prompts
        self.n_per_prompt = n_per_prompt
        self.rng_device = _rng_device(rng_device)
        self._all: torch.Tensor | None = None

    def seed_of(self, item: WorkItem) -> int:
        return self.policy.base + item.prompt_index * 100 + item.sample_index

    def _one_call(self) -> torch.Tensor:
        if self._all is None:
            g = torch.Generator(device=self.rng_device).manual_seed(self.policy.seed)
            n = self.n_prompts * self.n_per_prompt
            self._all = torch.randn((n, *self.latent_shape), generator=g, device=self.rng_device, dtype=torch.float32)
        return self._all

    def latents(self, items: Sequence[WorkItem]) -> torch.Tensor:
        if self.policy.kind == "one-call":
            allz = self._one_call()
            idx = torch.tensor([it.prompt_index * self.n_per_prompt + it.sample_index for it in items], device=allz.device)
            return allz.index_select(0, idx)
        out = []
        for it in items:
            g = torch.Generator(device=self.rng_device).manual_seed(self.seed_of(it))
            out.append(torch.randn(self.latent_shape, generator=g, device=self.rng_device, dtype=torch.float32))
        return torch.stack(out)
