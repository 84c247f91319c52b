"""What a FLUX.2 [klein] image costs on the CPU: its FLOPs from the pipeline's size, and this CPU's speed.

Without a CUDA device (and without an explicit ``--device cpu``), :class:`~rdmeval.generators.klein.KleinGenerator`
warns once per process, before any weight is loaded or downloaded, with the expected time per image.
The estimate is built from two things:

* **FLOPs per image**, from the pipeline's configs alone (the modules are built on PyTorch's ``meta``
  device: shapes, no memory, no weights): the DiT's forward at this resolution and ``ctx_len`` and the
  VAE decode are counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products, convolutions
  and attention); the text encoder, whose mask code cannot run on ``meta``, as 2 x (parameters of the
  layers run) x ctx_len, once per image. For klein-4B at 512 x 512 this gives 6.93 TFLOP per DiT step at
  ctx 48 (10.17 at ctx 512), 2.52 TFLOP for the VAE decode and 0.26 TFLOP for the text encoder.
* **this CPU's speed**, measured in about a second: the best rate of one DiT-sized linear layer (the
  image and text tokens times a square weight of the DiT's width) in the precision regime (``faithful``:
  fp32 weights under bf16 autocast, so the rate includes casting the weights, as the real forward
  does; ``bf16``; ``fp32``), at torch's current thread count. A raw bf16 matrix product would be the
  wrong yardstick: on a CPU with AMX it ran 8x faster than the faithful regime's real forward.

Checked against a real forward (one double and one single block at klein-4B's widths, 1,072 tokens, one
thread of a busy 2-core Xeon with AMX): faithful 211 GFLOP/s vs 190-270 from the probe, fp32 54 vs 50-68.
The estimate has the right size; it is not a bound (attention, norms and the text encoder's and VAE's
layouts run at other rates). Pipelines below :data:`REAL_PIPELINE_PARAMS` DiT parameters
(the tiny test fixture) never warn: they take milliseconds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

log = logging.getLogger(__name__)

#: DiT parameters from which a pipeline counts as real (klein-4B has 3.9e9; the test fixture ~1e5).
REAL_PIPELINE_PARAMS = 100_000_000
_warned: set[str] = set()


@dataclass(frozen=True)
class ImageCost:
    """FLOPs of one image: per DiT step, and once (text encoder + VAE decode)."""

    dit_params: int
    dit_width: int  # heads x head dim
    tokens: int  # image + text tokens the DiT sees
    dit_flop_per_step: float
    text_flop: float
    vae_flop: float

    def flop(self, steps: int) -> float:
        return steps * self.dit_flop_per_step + self.text_flop + self.vae_flop


def image_cost(folder: str | Path, *, height: int, width: int, ctx_len: int, text_layers: Sequence[int]) -> ImageCost:
    """The FLOPs of one ``height`` x ``width`` image of the pipeline folder ``folder`` (configs only)."""
    from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel
    from transformers import AutoConfig, AutoModel

    folder = Path(folder)
    with torch.device("meta"):
        dit = Flux2Transformer2DModel.from_config(Flux2Transformer2DModel.load_config(folder, subfolder="transformer"))
        vae = AutoencoderKLFlux2.from_config(AutoencoderKLFlux2.load_config(folder, subfolder="vae"))
        text_config = AutoConfig.from_pretrained(folder / "text_encoder")
        text_config.num_hidden_layers = max(1, max(text_layers))
        if getattr(text_config, "layer_types", None) is not None:
            text_config.layer_types = list(text_config.layer_types)[: text_config.num_hidden_layers]
        text = AutoModel.from_config(text_config)
    return module_cost(dit, vae, text, height=height, width=width, ctx_len=ctx_len)


def module_cost(dit: torch.nn.Module, vae: torch.nn.Module, text: torch.nn.Module, *, height: int, width: int,
                ctx_len: int) -> ImageCost:
    """The FLOPs of one image from the modules themselves, built on the ``meta`` device: the DiT (one step) and the
    VAE decode counted by ``FlopCounterMode``, the text encoder (the layers it holds, all run) as 2 x params x ctx_len."""
    from torch.utils.flop_counter import FlopCounterMode

    n_image = (height // 16) * (width // 16)
    meta = {"device": "meta"}
    with FlopCounterMode(display=False) as dit_count:
        dit(hidden_states=torch.empty(1, n_image, dit.config.in_channels, **meta),
            encoder_hidden_states=torch.empty(1, ctx_len, dit.config.joint_attention_dim, **meta),
            timestep=torch.empty(1, **meta), img_ids=torch.empty(1, n_image, 4, **meta),
            txt_ids=torch.empty(1, ctx_len, 4, **meta), return_dict=False)
    latent = torch.empty(1, vae.config.latent_channels, height // 8, width // 8, **meta)
    with FlopCounterMode(display=False) as vae_count:
        vae.decode(latent, return_dict=False)
    text_params = sum(p.numel() for p in text.layers.parameters())
    return ImageCost(
        dit_params=sum(p.numel() for p in dit.parameters()),
        dit_width=int(dit.config.num_attention_heads * dit.config.attention_head_dim),
        tokens=n_image + ctx_len,
        dit_flop_per_step=float(dit_count.get_total_flops()),
        text_flop=2.0 * text_params * ctx_len,
        vae_flop=float(vae_count.get_total_flops()),
    )


def measure_flops(*, tokens: int, width: int, weight_dtype: torch.dtype, autocast: bool, budget_s: float = 1.0) -> float:
    """This CPU's best rate (FLOP/s) on a DiT-sized linear layer ((tokens, width) @ (width, width)) in a regime."""
    import contextlib

    import torch.nn.functional as F

    x = torch.randn(tokens, width).to(torch.float32 if autocast else weight_dtype)
    w = torch.randn(width, width).to(weight_dtype)
    regime = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    best = float("inf")
    with torch.no_grad(), regime:
        F.linear(x, w)  # warm-up (kernel selection, page faults)
        start = time.perf_counter()
        for _ in range(10):
            t0 = time.perf_counter()
            F.linear(x, w)
            best = min(best, time.perf_counter() - t0)
            if time.perf_counter() - start > budget_s:
                break
    return 2.0 * tokens * width * width / max(best, 1e-9)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def cpu_message(cost: ImageCost, *, preset: str, steps: int, height: int, width: int, precision: str,
                flops: float) -> str:
    """The warning: expected time per image, and what the estimate rests on."""
    per_image = cost.flop(steps) / flops
    one_step = "" if steps == 1 else f" ({_duration(cost.flop(1) / flops)} at 1 step)"
    return (
        f"no CUDA device: FLUX.2 [klein] {preset} will run on the CPU, about {_duration(per_image)} per "
        f"{height}x{width} image at {steps} step{'s' if steps != 1 else ''}{one_step}. Estimate: "
        f"{cost.flop(steps) / 1e12:.1f} TFLOP per image from the pipeline's size ({cost.dit_params / 1e9:.2f}B-parameter "
        f"DiT, text encoder, VAE decode) at the {flops / 1e9:.0f} GFLOP/s this CPU reached just now on a DiT-sized "
        f"layer in the {precision} regime. Use a machine with a CUDA GPU, or pass --device cpu to run on the CPU "
        "without this warning"
    )


def warn_if_cpu_is_slow(folder: str | Path, *, preset: str, steps: int, height: int, width: int, ctx_len: int,
                        text_layers: Sequence[int], precision: str, weight_dtype: torch.dtype, autocast: bool) -> str | None:
    """Log the CPU warning once per process for a real-size pipeline; returns the message (None: no warning)."""
    if _warned:
        return None
    try:
        cost = image_cost(folder, height=height, width=width, ctx_len=ctx_len, text_layers=text_layers)
    except Exception as exc:  # an unusual config: loading reports what is wrong with it; warn without a figure
        log.debug("no CPU cost estimate for %s: %s", folder, exc)
        message = (f"no CUDA device: FLUX.2 [klein] {preset} will run on the CPU, which takes minutes per image for "
                   "klein-4B. Use a machine with a CUDA GPU, or pass --device cpu to run on the CPU without this warning")
    else:
        if cost.dit_params < REAL_PIPELINE_PARAMS:
            return None
        flops = measure_flops(tokens=cost.tokens, width=cost.dit_width, weight_dtype=weight_dtype, autocast=autocast)
        message = cpu_message(cost, preset=preset, steps=steps, height=height, width=width, precision=precision,
                              flops=flops)
    _warned.add(message)
    log.warning(message)
    return message
