"""The encoder battery as data: what each training encoder is, and modules that apply one.

An encoder takes the generator's image, ``(B, 3, H, W)`` in [0, 1], resizes it to its own input
resolution, normalises it with its own mean and std (both autograd-safe) and pools its backbone's
output to a ``(B, dim)`` float32 feature. :class:`EncoderSpec` records those choices;
:class:`BatteryEncoder` applies them around a backbone whose forward returns what the pool needs
(a token sequence ``(B, N, D)`` for ``cls``/``mean``/``attn``, a feature map ``(B, D, h, w)`` for
``spatial_mean``, or a ready vector ``(B, D)`` for ``vector``). The released run's ten encoders
are data in :mod:`rdmeval.distill.encoders` (``RELEASED_BATTERY``, ``load_encoder``).

``tiny_battery()`` builds random stand-ins with the same interface for tests and the ``flux_tiny``
config; ``TINY_STANDINS`` has one per pooling kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rdmeval.errors import RdmevalError

Pool = Literal["cls", "mean", "spatial_mean", "attn", "vector"]
POOLS: tuple[str, ...] = ("cls", "mean", "spatial_mean", "attn", "vector")
INTERPOLATIONS: tuple[str, ...] = ("bicubic", "bilinear", "tf_bilinear")


class BatteryError(RdmevalError):
    """An encoder spec is invalid or an encoder cannot be built."""


@dataclass(frozen=True, kw_only=True)
class EncoderSpec:
    name: str
    library: str  # "timm" | "transformers" | "open_clip" | "dreamsim" | "fid_inception" | "tiny"
    model_id: str
    resolution: int
    interpolation: str = "bicubic"  # "bicubic" | "bilinear" | "tf_bilinear" (TensorFlow 1.x rule, no antialias)
    antialias: bool = True
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pool: str = "cls"
    dim: int = 0
    precision: str = "bf16"  # "fp32" runs outside autocast (Inception); "bf16" under bf16 autocast on CUDA
    prefix_tokens: int = 1  # tokens before the patch tokens (class + register tokens); "mean" skips them

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise BatteryError(f"encoder {self.name!r}: pool {self.pool!r} is not one of {', '.join(POOLS)}")
        if self.interpolation not in INTERPOLATIONS:
            raise BatteryError(
                f"encoder {self.name!r}: interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}"
            )
        if self.precision not in ("fp32", "bf16"):
            raise BatteryError(f"encoder {self.name!r}: precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.resolution < 1 or self.dim < 1:
            raise BatteryError(f"encoder {self.name!r}: resolution and dim must be positive")
        if self.prefix_tokens < 0:
            raise BatteryError(f"encoder {self.name!r}: prefix_tokens must be >= 0, got {self.prefix_tokens}")


def resize_tf_bilinear(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize by TensorFlow 1.x's rule (``align_corners=False``, no half-pixel offset, no
    antialias), the resize of the FID Inception network: output pixel ``i`` samples the input at
    ``i * in / out``, between its floor and the next pixel (clamped at the edge). Differentiable.
    Grid positions are computed in float32, as torch-fidelity does, whatever the input dtype."""
    (out_h, out_w), (in_h, in_w) = size, x.shape[-2:]

    def axis(n_out: int, n_in: int) -> tuple[Tensor, Tensor, Tensor]:
        pos = torch.arange(n_out, dtype=torch.float32, device=x.device) * torch.tensor(n_in / n_out, dtype=torch.float32)
        lo = pos.long()
        return lo, (lo + 1).clamp_max(n_in - 1), (pos - lo.float()).to(x.dtype)

    y_lo, y_hi, dy = axis(out_h, in_h)
    x_lo, x_hi, dx = axis(out_w, in_w)
    top, bottom = x[..., y_lo, :], x[..., y_hi, :]
    top = top[..., x_lo] + (top[..., x_hi] - top[..., x_lo]) * dx
    bottom = bottom[..., x_lo] + (bottom[..., x_hi] - bottom[..., x_lo]) * dx
    return top + (bottom - top) * dy.view(-1, 1)


def preprocess(images: Tensor, spec: EncoderSpec) -> Tensor:
    """Resize [0, 1] images to the encoder's resolution and normalise them (differentiable)."""
    x = images
    if x.shape[-2:] != (spec.resolution, spec.resolution):
        if spec.interpolation == "tf_bilinear":
            x = resize_tf_bilinear(x, (spec.resolution, spec.resolution))
        else:
            x = F.interpolate(
                x, size=(spec.resolution, spec.resolution), mode=spec.interpolation, align_corners=False,
                antialias=spec.antialias,
            )
    mean = torch.tensor(spec.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class AttentionPool(nn.Module):
    """A single learned query attending over the tokens (the MAP head of SigLIP-style models)."""

    def __init__(self, dim: int, heads: int = 1):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, tokens: Tensor) -> Tensor:
        q = self.query.expand(tokens.shape[0], -1, -1)
        return self.attn(q, tokens, tokens, need_weights=False)[0][:, 0]


def pool_features(output: Tensor, pool: str, attn_pool: nn.Module | None = None, prefix_tokens: int = 1) -> Tensor:
    """``vector``: as is; ``spatial_mean``: mean over (h, w) of a feature map; ``cls``: token 0;
    ``mean``: mean of the patch tokens (after the ``prefix_tokens`` class/register tokens);
    ``attn``: the model's attention-pool head over all tokens."""
    if pool == "vector":
        return output
    if pool == "spatial_mean":
        return output.mean(dim=(-2, -1))
    if pool == "cls":
        return output[:, 0]
    if pool == "mean":
        return output[:, prefix_tokens:].mean(dim=1)
    if attn_pool is None:
        raise BatteryError("pool 'attn' needs an attention-pool module")
    return attn_pool(output)


class BatteryEncoder(nn.Module):
    """A frozen encoder: [0, 1] images -> ``(B, spec.dim)`` float32 features (float64 when fed float64)."""

    def __init__(self, spec: EncoderSpec, backbone: nn.Module, attn_pool: nn.Module | None = None):
        super().__init__()
        self.spec = spec
        self.backbone = backbone
        self.attn_pool = attn_pool
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: Tensor) -> Tensor:
        x = preprocess(images if images.dtype == torch.float64 else images.float(), self.spec)
        use_bf16 = self.spec.precision == "bf16" and x.device.type == "cuda"
        if not use_bf16:  # no autocast: the input takes the weights' dtype (bf16 weights on CPU, fp64 in gradchecks)
            x = x.to(self._weight_dtype(x.dtype))
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            out = pool_features(self.backbone(x), self.spec.pool, self.attn_pool, self.spec.prefix_tokens)
        if out.shape[-1] != self.spec.dim:
            raise BatteryError(f"encoder {self.spec.name!r} produced {out.shape[-1]}-d features, its spec says {self.spec.dim}")
        return out if out.dtype == torch.float64 else out.float()

    def _weight_dtype(self, default: torch.dtype) -> torch.dtype:
        for p in self.backbone.parameters():
            if p.is_floating_point():
                return p.dtype
        return default


# ---------------------------------------------------------------------------------------- tiny stand-ins


class _TinyViT(nn.Module):
    """Patch embedding + class token + one transformer layer: tokens (B, 1 + N, D)."""

    def __init__(self, dim: int, patch: int, resolution: int):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, 1 + (resolution // patch) ** 2, dim) * 0.02)
        self.block = nn.TransformerEncoderLayer(dim, nhead=2, dim_feedforward=2 * dim, dropout=0.0, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(tokens.shape[0], -1, -1), tokens], dim=1) + self.pos
        return self.block(tokens)


class _TinyPooled(_TinyViT):
    """A tiny ViT that returns a ready vector, the final-norm class token (like transformers' ``pooler_output``)."""

    def __init__(self, dim: int, patch: int, resolution: int):
        super().__init__(dim, patch, resolution)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(super().forward(x))[:, 0]


class _TinyConv(nn.Module):
    """Two conv layers: a feature map (B, D, h, w)."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, dim, 3, stride=2, padding=1), nn.GELU(), nn.Conv2d(dim, dim, 3, stride=2, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

TINY_BATTERY: tuple[EncoderSpec, ...] = (
    EncoderSpec(name="tiny_cls", library="tiny", model_id="tiny-vit-cls", resolution=16, mean=_IMAGENET_MEAN,
                std=_IMAGENET_STD, pool="cls", dim=16),
    EncoderSpec(name="tiny_mean", library="tiny", model_id="tiny-vit-mean", resolution=24, interpolation="bilinear",
                mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), pool="mean", dim=12),
    EncoderSpec(name="tiny_attn", library="tiny", model_id="tiny-vit-attn", resolution=16, mean=_IMAGENET_MEAN,
                std=_IMAGENET_STD, pool="attn", dim=16),
    EncoderSpec(name="tiny_conv", library="tiny", model_id="tiny-conv", resolution=20, pool="spatial_mean", dim=8,
                precision="fp32"),
)
# The fifth pooling kind (a backbone that returns the vector itself, as webssl / dreamsim / Inception do), with
# Inception's TensorFlow-style resize and x*2-1 scaling. Kept out of TINY_BATTERY so that the default tiny battery
# (and the flux_tiny bundles built on it) keep their four encoders; tiny_battery(names=...) can pick it.
TINY_VECTOR = EncoderSpec(name="tiny_vector", library="tiny", model_id="tiny-vit-pooled", resolution=20,
                          interpolation="tf_bilinear", antialias=False, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                          pool="vector", dim=10, precision="fp32")
TINY_STANDINS: tuple[EncoderSpec, ...] = TINY_BATTERY + (TINY_VECTOR,)  # one per pooling kind


def build_tiny_encoder(spec: EncoderSpec, *, seed: int = 0) -> BatteryEncoder:
    """A random stand-in for ``spec`` (deterministic in ``seed`` and the spec's name)."""
    offset = sum(spec.name.encode())  # distinct weights per encoder, stable across runs
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1000 + offset)
        if spec.pool == "spatial_mean":
            return BatteryEncoder(spec, _TinyConv(spec.dim))
        if spec.pool == "vector":
            return BatteryEncoder(spec, _TinyPooled(spec.dim, patch=4, resolution=spec.resolution))
        backbone = _TinyViT(spec.dim, patch=4, resolution=spec.resolution)
        attn = AttentionPool(spec.dim) if spec.pool == "attn" else None
        return BatteryEncoder(spec, backbone, attn)


def tiny_battery(*, seed: int = 0, names: tuple[str, ...] | None = None) -> dict[str, BatteryEncoder]:
    """``TINY_BATTERY``'s stand-ins, or those of ``TINY_STANDINS`` named in ``names``."""
    specs = TINY_BATTERY if names is None else tuple(s for s in TINY_STANDINS if s.name in names)
    return {spec.name: build_tiny_encoder(spec, seed=seed) for spec in specs}
