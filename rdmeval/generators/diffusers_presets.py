"""Named presets of published few-step models: each pins its model card's sampling protocol.

A preset is a diffusers pipeline (hub id) plus everything its authors' usage example sets: steps,
guidance scale, scheduler and timesteps, resolution, text length, dtype, and for weight swaps the
denoiser file loaded into a base pipeline (DMD2 and SDXL-Lightning swap SDXL's UNet, as the RDM
student swaps klein's DiT). Every field is recorded in the run manifest; ``docs/generators.md``
("The one-step field") cites the source of each setting.

``diffusers:<hub id or folder>`` runs any other diffusers text-to-image pipeline with its own
defaults (recorded the same way). This module holds data only; the backend is
:mod:`rdmeval.generators.diffusers_backend`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: ``--model diffusers:<hub id or folder>``: any diffusers text-to-image pipeline.
DIFFUSERS_PREFIX = "diffusers:"
SDXL_BASE = "stabilityai/stable-diffusion-xl-base-1.0"


@dataclass(frozen=True)
class SchedulerSwap:
    """Replace the pipeline's scheduler: ``cls.from_config(pipe.scheduler.config, **config)``."""

    cls: str
    config: tuple[tuple[str, Any], ...] = ()

    def describe(self) -> dict[str, Any]:
        return {"class": self.cls, "overrides": dict(self.config)}


@dataclass(frozen=True)
class DenoiserSwap:
    """Load a state dict into the base pipeline's denoiser (``unet`` or ``transformer``), strictly."""

    component: str
    repo_id: str  # where the published file lives on the hub (``--weights`` gives a local copy instead)
    filename: str


@dataclass(frozen=True)
class DiffusersPreset:
    name: str
    description: str
    base: str  # hub id of the pipeline (of the base pipeline for a swap)
    pipeline: str  # the class model_index.json must name
    steps: int
    guidance_scale: float
    resolution: int  # native: height = width
    dtype: str  # torch dtype of the card's example ("bfloat16", "float16")
    family: str  # the tiny fixture that stands in for it in smoke runs (rdmeval.fixtures.tiny_field)
    sources: tuple[str, ...]  # where the settings come from (model card, paper)
    max_sequence_length: int | None = None  # passed to the pipeline; None: the pipeline has no such argument
    text_length: str = ""  # what the text encoders see, in words (recorded)
    variant: str | None = None  # weight-file variant of the card's example ("fp16")
    scheduler: SchedulerSwap | None = None
    timesteps: tuple[int, ...] | None = None  # explicit timesteps (the card's); their count must equal steps
    swap: DenoiserSwap | None = None
    call_kwargs: tuple[tuple[str, Any], ...] = field(default=())  # other pipeline arguments the card fixes

    def describe(self) -> dict[str, Any]:
        """The pinned protocol, as recorded in the manifest (``request.model.protocol``)."""
        return {
            "base": self.base, "pipeline": self.pipeline, "steps": self.steps, "guidance_scale": self.guidance_scale,
            "resolution": self.resolution, "dtype": self.dtype, "max_sequence_length": self.max_sequence_length,
            "text_length": self.text_length, "variant": self.variant,
            "scheduler": self.scheduler.describe() if self.scheduler else None,
            "timesteps": list(self.timesteps) if self.timesteps else None,
            "swap": {"component": self.swap.component, "repo_id": self.swap.repo_id, "filename": self.swap.filename} if self.swap else None,
            "call_kwargs": dict(self.call_kwargs), "sources": list(self.sources),
        }


_SANA_SPRINT = "Efficient-Large-Model/Sana_Sprint_1.6B_1024px_diffusers"
_SANA_SOURCES = (
    "https://huggingface.co/Efficient-Large-Model/Sana_Sprint_1.6B_1024px_diffusers",
    "https://huggingface.co/docs/diffusers/api/pipelines/sana_sprint",
    "https://arxiv.org/abs/2503.09641",
)

PRESETS: dict[str, DiffusersPreset] = {p.name: p for p in (
    DiffusersPreset(
        name="flux1-schnell", description="FLUX.1 [schnell], 4 steps, guidance 0, T5 256 tokens, 1024 px, bf16",
        base="black-forest-labs/FLUX.1-schnell", pipeline="FluxPipeline", steps=4, guidance_scale=0.0, resolution=1024,
        dtype="bfloat16", family="flux", max_sequence_length=256, text_length="CLIP-L 77 + T5 256 tokens",
        sources=("https://huggingface.co/black-forest-labs/FLUX.1-schnell",),
    ),
    DiffusersPreset(
        name="sd35-large-turbo", description="SD 3.5 Large Turbo, 4 steps, guidance 0, 1024 px, bf16",
        base="stabilityai/stable-diffusion-3.5-large-turbo", pipeline="StableDiffusion3Pipeline", steps=4, guidance_scale=0.0,
        resolution=1024, dtype="bfloat16", family="sd3", max_sequence_length=256,
        text_length="CLIP-L 77 + CLIP-G 77 + T5 256 tokens (the pipeline's default; the card sets none)",
        sources=("https://huggingface.co/stabilityai/stable-diffusion-3.5-large-turbo",),
    ),
    DiffusersPreset(
        name="sdxl-turbo", description="SDXL-Turbo, 1 step, guidance 0, 512 px, fp16",
        base="stabilityai/sdxl-turbo", pipeline="StableDiffusionXLPipeline", steps=1, guidance_scale=0.0, resolution=512,
        dtype="float16", variant="fp16", family="sdxl-turbo", text_length="CLIP-L 77 + CLIP-G 77 tokens",
        sources=("https://huggingface.co/stabilityai/sdxl-turbo",
                 "https://huggingface.co/docs/diffusers/api/pipelines/stable_diffusion/sdxl_turbo"),
    ),
    DiffusersPreset(
        name="sana-sprint-1step", description="SANA-Sprint 1.6B, 1 step (SCM at t = pi/2), embedded guidance 4.5, 1024 px, bf16",
        base=_SANA_SPRINT, pipeline="SanaSprintPipeline", steps=1, guidance_scale=4.5, resolution=1024, dtype="bfloat16",
        family="sana-sprint", max_sequence_length=300, text_length="Gemma-2 300 tokens after the pipeline's complex human instruction",
        call_kwargs=(("max_timesteps", 1.57080), ("intermediate_timesteps", None), ("use_resolution_binning", False)),
        sources=_SANA_SOURCES,
    ),
    DiffusersPreset(
        name="sana-sprint-2step", description="SANA-Sprint 1.6B, 2 steps (intermediate t = 1.3), embedded guidance 4.5, 1024 px, bf16",
        base=_SANA_SPRINT, pipeline="SanaSprintPipeline", steps=2, guidance_scale=4.5, resolution=1024, dtype="bfloat16",
        family="sana-sprint", max_sequence_length=300, text_length="Gemma-2 300 tokens after the pipeline's complex human instruction",
        call_kwargs=(("max_timesteps", 1.57080), ("intermediate_timesteps", 1.3), ("use_resolution_binning", False)),
        sources=_SANA_SOURCES,
    ),
    DiffusersPreset(
        name="dmd2-sdxl-1step", description="DMD2 one-step SDXL UNet on SDXL base, LCM scheduler at t = 399, guidance 0, 1024 px, fp16",
        base=SDXL_BASE, pipeline="StableDiffusionXLPipeline", steps=1, guidance_scale=0.0, resolution=1024, dtype="float16",
        variant="fp16", family="sdxl-base", text_length="CLIP-L 77 + CLIP-G 77 tokens",
        scheduler=SchedulerSwap("LCMScheduler"), timesteps=(399,),
        swap=DenoiserSwap("unet", "tianweiy/DMD2", "dmd2_sdxl_1step_unet_fp16.bin"),
        sources=("https://huggingface.co/tianweiy/DMD2", "https://arxiv.org/abs/2405.14867"),
    ),
    DiffusersPreset(
        name="sdxl-lightning-1step",
        description="SDXL-Lightning 1-step UNet (x0) on SDXL base, Euler trailing with sample prediction, guidance 0, 1024 px, fp16",
        base=SDXL_BASE, pipeline="StableDiffusionXLPipeline", steps=1, guidance_scale=0.0, resolution=1024, dtype="float16",
        variant="fp16", family="sdxl-base", text_length="CLIP-L 77 + CLIP-G 77 tokens",
        scheduler=SchedulerSwap("EulerDiscreteScheduler", (("timestep_spacing", "trailing"), ("prediction_type", "sample"))),
        swap=DenoiserSwap("unet", "ByteDance/SDXL-Lightning", "sdxl_lightning_1step_unet_x0.safetensors"),
        sources=("https://huggingface.co/ByteDance/SDXL-Lightning", "https://arxiv.org/abs/2402.13929"),
    ),
)}


def is_diffusers_model(model: str) -> bool:
    """A preset of this module or ``diffusers:<hub id or folder>``."""
    return model in PRESETS or (model.startswith(DIFFUSERS_PREFIX) and len(model) > len(DIFFUSERS_PREFIX))


def native_resolution(model: str) -> int | None:
    """A preset's resolution; None for ``diffusers:...`` (the pipeline's own default, read when it loads)."""
    return PRESETS[model].resolution if model in PRESETS else None
