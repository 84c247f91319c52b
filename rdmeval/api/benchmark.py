"""A benchmark's protocol, frozen: which prompts, how many images each, which noise, which scorers.

A suite (``benchmarks/*.toml``, :func:`rdmeval.suites.load_suite`) holds one :class:`Benchmark` per
``[[benchmarks]]`` table; ``rdmeval reproduce`` generates and scores each for every model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rdmeval.errors import RdmevalError

GENEVAL_SEED_BASE = 46_000_000


@dataclass(frozen=True)
class SeedPolicy:
    """How each work item's noise is seeded (drawn by :class:`rdmeval.generators.noise.NoiseSource`)."""

    kind: Literal["per-sample", "one-call"]
    base: int = GENEVAL_SEED_BASE
    seed: int = 0

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        d["formula"] = (
            f"seed = {self.base} + prompt_idx*100 + sample_idx; randn(latent_shape) per image"
            if self.kind == "per-sample"
            else f"one generator seeded {self.seed}; randn(N_items, *latent_shape) in one call; item k = prompt_idx*n_per_prompt + sample_idx"
        )
        return d

    @classmethod
    def parse(cls, text: str) -> "SeedPolicy":
        """'per-sample' / 'per-sample:BASE' / 'one-call' / 'one-call:SEED'."""
        kind, _, arg = text.partition(":")
        try:
            if kind == "per-sample":
                return cls("per-sample", base=int(arg) if arg else GENEVAL_SEED_BASE)
            if kind == "one-call":
                return cls("one-call", seed=int(arg) if arg else 0)
        except ValueError:
            pass
        raise RdmevalError(f"--seed-policy {text!r}: expected per-sample[:BASE] or one-call[:SEED]")


#: GenEval's per-image seeds and Pick-a-Pic's one-call seed 0 (rdmeval.generators.noise draws them).
GENEVAL_SEEDS = SeedPolicy("per-sample", base=GENEVAL_SEED_BASE)
PICKAPIC_SEEDS = SeedPolicy("one-call", seed=0)


@dataclass(frozen=True)
class Benchmark:
    """One benchmark of a suite: everything that fixes its images and how they are scored.

    ``name`` names the run folder (``runs/<model>/<name>``); ``prompts`` is a registered prompt set
    (``params`` are its parameters, e.g. coco-val's ``n`` and ``seed``); ``batch_size`` is the number
    of images per forward pass (part of the protocol: kernels may round differently for other batch
    shapes); ``scorers`` are names in the scorer registry (:data:`rdmeval.scorers.registry.SCORERS`).
    """

    name: str
    prompts: str
    n_per_prompt: int
    ctx_len: int
    seed_policy: SeedPolicy
    scorers: tuple[str, ...]
    batch_size: int
    params: dict[str, Any] = field(default_factory=dict)
