"""The one-step FLUX.2 [klein] student, differentiable: noise -> one Euler step at t = 1 -> VAE -> image.

For noise ε of shape (B, 128, H/16, W/16) and prompt embeddings ctx (B, L, D):

1. pack ε to tokens (B, h·w, 128) in row-major (h, w) order, with position ids (0, h, w, 0) for the
   image and (0, 0, 0, l) for the text, as diffusers' ``Flux2KleinPipeline`` prepares them;
2. v = DiT(ε, t = 1, ctx), under bf16 autocast on CUDA when asked (fp32 master weights), returned
   as fp32; x0 = ε − v (the Euler step from t = 1 to 0: ε + (0 − 1)·v);
3. unpack, undo the VAE's BatchNorm with its running statistics, unpatchify 2×2, decode, and map
   to [0, 1] with ``clamp(x·0.5 + 0.5, 0, 1)``; the decode keeps its graph (the VAE is frozen but
   the gradient flows through it to the DiT).

In fp32 this is, operation for operation, what ``KleinGenerator``'s one-step presets compute
through the pipeline (``rdmeval generate --model student --precision fp32``); under autocast it is
the reference trainer's regime (VAE in bf16, latents cast to it before the decode).
"""

from __future__ import annotations

import contextlib
import warnings

import torch
from torch import Tensor, nn


def enable_block_checkpointing(transformer: nn.Module) -> None:
    """Per-block activation checkpointing (non-reentrant; klein has no dropout, so no RNG state to keep)."""
    from torch.utils.checkpoint import checkpoint

    def checkpointed(module: nn.Module, *args):
        return checkpoint(module.__call__, *args, use_reentrant=False, preserve_rng_state=False)

    transformer.enable_gradient_checkpointing(gradient_checkpointing_func=checkpointed)


class OneStepFlux:
    """The student's renderer: ``renderer(noise, ctx)`` -> [0, 1] images (B, 3, H, W).

    ``transformer`` is the student (trained); ``vae`` is frozen. Neither is copied.
    """

    def __init__(self, transformer: nn.Module, vae: nn.Module, *, autocast: bool = True):
        self.transformer = transformer
        self.vae = vae
        self.autocast = bool(autocast)

    @property
    def latent_channels(self) -> int:
        return int(self.transformer.config.in_channels)

    def latent_shape(self, resolution: int) -> tuple[int, int, int]:
        return (self.latent_channels, resolution // 16, resolution // 16)

    def _autocast(self, device: torch.device):
        if self.autocast and device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def velocity(self, noise: Tensor, ctx: Tensor) -> Tensor:
        """v(ε, t = 1, ctx) as packed tokens (B, h·w, C), fp32."""
        from diffusers import Flux2KleinPipeline

        b = noise.shape[0]
        if ctx.shape[0] != b:
            raise ValueError(f"{b} noise rows but {ctx.shape[0]} ctx rows")
        packed = Flux2KleinPipeline._pack_latents(noise)
        img_ids = Flux2KleinPipeline._prepare_latent_ids(noise).to(noise.device)
        txt_ids = Flux2KleinPipeline._prepare_text_ids(ctx).to(noise.device)
        t = torch.ones(b, dtype=noise.dtype, device=noise.device)
        with self._autocast(noise.device), warnings.catch_warnings():
            # under autocast the fp32 QK-norm weights meet bf16 activations; torch notes it takes the unfused path
            warnings.filterwarnings("ignore", message="Mismatch dtype between input and weight")
            v = self.transformer(
                hidden_states=packed, timestep=t, guidance=None, encoder_hidden_states=ctx.to(noise.dtype),
                txt_ids=txt_ids, img_ids=img_ids, return_dict=False,
            )[0]
        return v.float()

    def latents(self, noise: Tensor, ctx: Tensor) -> Tensor:
        """x0 = ε − v(ε, 1, ctx), unpacked to (B, C, h, w), fp32."""
        noise = noise.float()
        b, c, h, w = noise.shape
        x0 = noise.reshape(b, c, h * w).transpose(1, 2) - self.velocity(noise, ctx)
        return x0.transpose(1, 2).reshape(b, c, h, w)  # tokens are row-major (h, w)

    def decode(self, latents: Tensor) -> Tensor:
        """(B, 128, h, w) latents -> [0, 1] images in the VAE's dtype, differentiable."""
        from diffusers import Flux2KleinPipeline

        vae = self.vae
        z = latents.to(vae.dtype)
        mean = vae.bn.running_mean.view(1, -1, 1, 1)
        std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps)
        z = Flux2KleinPipeline._unpatchify_latents(z * std + mean)
        image = vae.decode(z, return_dict=False)[0]
        return torch.clamp(image * 0.5 + 0.5, 0.0, 1.0)

    def __call__(self, noise: Tensor, ctx: Tensor) -> Tensor:
        return self.decode(self.latents(noise, ctx))


def frozen_copy(module: nn.Module) -> nn.Module:
    """An eval-mode copy with no trainable parameter (CPU GEMM paths differ for trainable weights)."""
    import copy

    return copy.deepcopy(module).eval().requires_grad_(False)

