"""Typed, validated training configs, replacing the reference's untyped SimpleNamespace.

Every field is read; a bad value raises ``ConfigError`` naming the field and the fix. Configs are
frozen: derive variants with ``dataclasses.replace`` (which re-runs the validation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from rdmeval.errors import RdmevalError


class ConfigError(RdmevalError):
    """A training config value is invalid; the message names the field."""


def _positive_int(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{type(obj).__name__}.{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class ToyConfig:
    """Sizes of the tiny CPU stand-ins for klein (generator), the battery and the reference."""

    latent_channels: int = 4
    latent_size: int = 4
    ctx_len: int = 4
    ctx_dim: int = 16
    hidden: int = 64
    image_size: int = 8
    text_dim: int = 8
    encoder_dims: tuple[int, ...] = (16, 24)
    pool_size: int = 64  # generator prompt pool rows (= ctx rows = τ rows)
    reference_size: int = 256  # teacher renders in the reference pool
    num_landmarks: int = 32
    teacher_steps: int = 4
    sigma_scale: float = 1.0  # FLUX bundles use the cold 0.25; a 32-sample toy batch needs a warmer kernel
    init_seed: int = 1234
    # "euler": the teacher is the velocity net at its init run for teacher_steps Euler steps and the
    # student starts from its weights (debug: nothing to learn, it pins behaviour). "mixture": the
    # teacher is the exact flow of a prompt-conditioned Gaussian mixture (toy.MixtureFlow) and the
    # student starts from its own random init, away from it (learn_demo: it visibly learns).
    teacher: str = "euler"
    mixture_components: int = 4
    mixture_spread: float = 1.5  # std of the component means, per latent coordinate
    mixture_std: float = 0.3  # std of each component, per latent coordinate
    mixture_prompt_scale: float = 0.2  # std of the entries of the map from a prompt's mean ctx token to its shift

    def __post_init__(self) -> None:
        _positive_int(
            self, "latent_channels", "latent_size", "ctx_len", "ctx_dim", "hidden", "image_size",
            "text_dim", "pool_size", "reference_size", "num_landmarks", "teacher_steps",
        )
        if not self.encoder_dims or any(not isinstance(d, int) or d < 1 for d in self.encoder_dims):
            raise ConfigError(f"ToyConfig.encoder_dims must be positive integers, got {self.encoder_dims!r}")
        if not self.sigma_scale > 0:
            raise ConfigError(f"ToyConfig.sigma_scale must be > 0, got {self.sigma_scale!r}")
        if self.teacher not in ("euler", "mixture"):
            raise ConfigError(f"ToyConfig.teacher must be 'euler' or 'mixture', got {self.teacher!r}")
        _positive_int(self, "mixture_components")
        for name in ("mixture_spread", "mixture_std", "mixture_prompt_scale"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"ToyConfig.{name} must be a finite number >= 0, got {value!r}")
        if not self.mixture_std > 0:
            raise ConfigError(f"ToyConfig.mixture_std must be > 0 (a component of width 0 has no density), got {self.mixture_std!r}")
        if self.num_landmarks > self.reference_size:
            raise ConfigError(
                f"ToyConfig.num_landmarks ({self.num_landmarks}) must be <= reference_size ({self.reference_size})"
            )


BATTERIES: tuple[str, ...] = ("tiny", "released")


@dataclass(frozen=True, kw_only=True)
class FluxConfig:
    """How the FLUX.2 [klein] student is rendered and which battery judges it (the assets are given apart)."""

    resolution: int = 512  # image height = width; the latent is (128, resolution/16, resolution/16)
    ctx_len: int = 48  # text tokens per ctx row (the ctx table's row shape is (ctx_len, joint_attention_dim))
    battery: str = "released"  # "released": the 10 training encoders; "tiny": rdmeval.distill.battery.tiny_battery
    battery_seed: int = 0  # seed of the tiny stand-ins (unused by the released battery)
    autocast: bool = True  # bf16 autocast of the DiT on CUDA (fp32 master weights); CPU always runs fp32
    vae_dtype: str = "bf16"  # the frozen VAE's dtype ("bf16" as released, "fp32" for exactness tests)
    grad_checkpointing: bool = True  # per-block activation checkpointing of the DiT

    def __post_init__(self) -> None:
        _positive_int(self, "resolution", "ctx_len")
        if self.resolution % 16:
            raise ConfigError(f"FluxConfig.resolution must be a multiple of 16, got {self.resolution}")
        if self.battery not in BATTERIES:
            raise ConfigError(f"FluxConfig.battery must be one of {', '.join(BATTERIES)}, got {self.battery!r}")
        if self.vae_dtype not in ("bf16", "fp32"):
            raise ConfigError(f"FluxConfig.vae_dtype must be 'bf16' or 'fp32', got {self.vae_dtype!r}")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One distillation run. ``rollout_size`` is the fresh global batch of every step."""

    name: str
    model: str  # "toy" (the CPU stand-in) or "flux" (the FLUX.2 [klein] student, rdmeval/distill/flux_task.py)
    steps: int
    lr: float
    grad_clip: float
    rollout_size: int
    batch_size: int  # per rank per chunk
    grad_accum: int  # chunks per rank per step
    world_size: int = 1
    seed: int = 0
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    adam_eps: float = 1e-8
    gen_chunk: int = 8192
    encoders: tuple[str, ...]
    encoder_weights: tuple[float, ...] | None = None  # None: uniform 1.0 (FLUX: PID off)
    joint_enable: bool = True
    self_norm_eps: float = 1e-7
    save_freq: int = 20
    deterministic: bool = False
    fsdp: bool = False  # under torchrun: shard the student with FSDP2 (fully_shard per DiT block); a placement, not data
    toy: ToyConfig | None = None
    flux: FluxConfig | None = None

    def __post_init__(self) -> None:
        if self.model not in ("toy", "flux"):
            raise ConfigError(f"TrainConfig.model must be 'toy' or 'flux', got {self.model!r}")
        if self.model == "toy" and self.toy is None:
            raise ConfigError("TrainConfig.toy must be set when model='toy'")
        if self.model == "flux" and self.flux is None:
            raise ConfigError("TrainConfig.flux must be set when model='flux'")
        if self.fsdp and self.model != "flux":
            raise ConfigError(f"TrainConfig.fsdp shards the FLUX student; config {self.name!r} trains model {self.model!r}")
        _positive_int(self, "rollout_size", "batch_size", "grad_accum", "world_size", "gen_chunk", "save_freq")
        if not isinstance(self.steps, int) or self.steps < 0:
            raise ConfigError(f"TrainConfig.steps must be an integer >= 0, got {self.steps!r}")
        if self.rollout_size != self.batch_size * self.world_size * self.grad_accum:
            raise ConfigError(
                f"TrainConfig.rollout_size ({self.rollout_size}) must equal batch_size × world_size × grad_accum "
                f"({self.batch_size} × {self.world_size} × {self.grad_accum} = "
                f"{self.batch_size * self.world_size * self.grad_accum}); keep rollout_size fixed and set "
                f"grad_accum = rollout_size / (batch_size × world_size)"
            )
        for name in ("lr", "grad_clip", "adam_eps", "self_norm_eps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"TrainConfig.{name} must be a finite number > 0, got {value!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        if not self.encoders or len(set(self.encoders)) != len(self.encoders):
            raise ConfigError(f"TrainConfig.encoders must be non-empty and unique, got {self.encoders!r}")
        if self.encoder_weights is not None:
            if len(self.encoder_weights) != len(self.encoders) or any(w < 0 for w in self.encoder_weights):
                raise ConfigError(
                    f"TrainConfig.encoder_weights must hold one weight >= 0 per encoder ({len(self.encoders)}), "
                    f"got {self.encoder_weights!r}"
                )
        if self.toy is not None and self.model == "toy" and len(self.encoders) != len(self.toy.encoder_dims):
            raise ConfigError(
                f"TrainConfig.encoders ({len(self.encoders)}) must name one encoder per ToyConfig.encoder_dims "
                f"({len(self.toy.encoder_dims)})"
            )

    def weights(self) -> dict[str, float]:
        ws = self.encoder_weights or (1.0,) * len(self.encoders)
        return dict(zip(self.encoders, ws))

    def with_world_size(self, world_size: int) -> "TrainConfig":
        """The same rollout on ``world_size`` ranks: grad_accum is recomputed."""
        per_rank = self.batch_size * world_size
        if self.rollout_size % per_rank:
            raise ConfigError(
                f"rollout_size {self.rollout_size} is not divisible by batch_size × world_size = {per_rank}; "
                f"pick a --batch-size that divides rollout_size / world_size"
            )
        return replace(self, world_size=world_size, grad_accum=self.rollout_size // per_rank)


FLUX_ENCODERS = (
    "inception", "convnext", "mae", "clip", "dinov3_l", "pe_core_l", "siglip2", "aimv2_huge", "webssl_dino_1b", "dreamsim",
)

TINY_ENCODERS = ("tiny_cls", "tiny_mean", "tiny_attn", "tiny_conv")  # rdmeval.distill.battery.TINY_BATTERY

CONFIGS: dict[str, TrainConfig] = {
    # Tiny toy run for CPU tests and the golden loss curve.
    "debug": TrainConfig(
        name="debug",
        model="toy",
        steps=8,
        lr=1e-2,
        grad_clip=4.0,
        rollout_size=32,
        batch_size=8,
        grad_accum=4,
        gen_chunk=16,
        encoders=("enc_a", "enc_b"),
        save_freq=4,
        deterministic=True,
        toy=ToyConfig(),
    ),
    # A toy whose student visibly learns (docs/distill.md, "Does training learn?"): a curved teacher
    # flow, a student from its own init, a 2,048-render reference (a small one is over-fitted: the
    # exact MMD to fresh teacher samples then rises) and the median kernel (a 128-sample rollout
    # learns more slowly, and less reliably, with the FLUX bundles' cold 0.25).
    "learn_demo": TrainConfig(
        name="learn_demo",
        model="toy",
        steps=200,
        lr=3e-3,
        grad_clip=4.0,
        rollout_size=128,
        batch_size=32,
        grad_accum=4,
        gen_chunk=128,
        encoders=("enc_a", "enc_b"),
        save_freq=50,
        toy=ToyConfig(
            latent_channels=2, latent_size=2, pool_size=256, reference_size=2048, num_landmarks=256,
            teacher_steps=32, sigma_scale=1.0, teacher="mixture",
        ),
    ),
    # The headline FLUX.2 klein geALLcoco recipe (flux_geall.yaml): 8 ranks x batch 8 x 160 chunks, replicated
    # as released (8 x H200); set fsdp (--fsdp) to shard the student on 80 GB cards.
    "flux_geall": TrainConfig(
        name="flux_geall",
        model="flux",
        steps=300,
        lr=2.83e-6,
        grad_clip=4.0,
        rollout_size=10240,
        batch_size=8,
        grad_accum=160,
        world_size=8,
        gen_chunk=8192,
        encoders=FLUX_ENCODERS,
        save_freq=20,
        flux=FluxConfig(),
    ),
    # The tiny klein fixture (rdmeval fixtures tiny-klein) with the tiny battery: the real code path on CPU
    # in seconds. fp32 throughout so that its renders equal `rdmeval generate --precision fp32`; a large lr
    # so that a few steps move the weights well past bf16 rounding (the export is bf16).
    "flux_tiny": TrainConfig(
        name="flux_tiny",
        model="flux",
        steps=4,
        lr=1e-3,
        grad_clip=4.0,
        rollout_size=8,
        batch_size=4,
        grad_accum=2,
        gen_chunk=64,
        encoders=TINY_ENCODERS,
        save_freq=2,
        flux=FluxConfig(resolution=64, battery="tiny", autocast=False, vae_dtype="fp32"),
    ),
}


def get_config(name: str) -> TrainConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigError(f"unknown training config {name!r}; available: {', '.join(sorted(CONFIGS))}") from None
