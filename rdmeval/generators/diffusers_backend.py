"""Any diffusers text-to-image pipeline behind rdmeval's Generator contract (presets and ``diffusers:<id>``).

:class:`DiffusersGenerator` calls the pipeline the way its model card does (``prompt=``, steps,
guidance, timesteps, resolution, text length: the preset's, :mod:`rdmeval.generators.diffusers_presets`)
and adds only what makes the images a pure function of rdmeval's inputs:

* ``latents=``: rdmeval's seeded noise, drawn in the pipeline's own latent shape
  (:class:`LatentLayout`): ``(C, H/f, W/f)`` as the pipeline's ``prepare_latents`` draws it, packed
  2x2 into tokens for FLUX.1 exactly as diffusers packs its own noise; cast to the pipeline's dtype;
* ``generator=``: one CPU ``torch.Generator`` per image, seeded from that image's noise (the first 8
  bytes of its sha256), for the noise some schedulers add between steps (Euler ancestral, LCM,
  SCM with 2 steps). A pipeline class whose latent layout rdmeval does not know gets no ``latents``;
  its initial noise then comes from these generators (recorded as ``noise.layout = "generator"``);
* ``output_type="pt"``, converted to uint8 as diffusers' PIL output is (``round(x * 255)`` in fp32).
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from rdmeval.errors import RdmevalError
from rdmeval.generators.base import to_uint8
from rdmeval.generators.diffusers_presets import DIFFUSERS_PREFIX, PRESETS, DenoiserSwap, DiffusersPreset
from rdmeval.generators.finite import NonFiniteError

if TYPE_CHECKING:
    from rdmeval.generators.registry import GeneratorOptions

#: Pipelines whose latents are (C, H/f, W/f) as drawn, C the denoiser's in_channels.
PLAIN_LATENTS = frozenset({"StableDiffusionPipeline", "StableDiffusionXLPipeline", "StableDiffusion3Pipeline", "SanaPipeline",
                           "SanaSprintPipeline", "PixArtAlphaPipeline", "PixArtSigmaPipeline"})
#: Pipelines that draw (C/4, H/f, W/f) and pack 2x2 patches into tokens (FLUX.1).
PACKED_LATENTS = frozenset({"FluxPipeline"})
#: Pipelines that draw their noise in fp32 whatever the model dtype (the others draw it in the text embeddings' dtype).
FP32_NOISE = frozenset({"SanaPipeline", "SanaSprintPipeline"})
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
SEED_BYTES = 8


def denoiser_of(pipe: Any) -> torch.nn.Module:
    """The pipeline's denoiser: its ``transformer`` or its ``unet``."""
    for name in ("transformer", "unet"):
        module = getattr(pipe, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise RdmevalError(f"{type(pipe).__name__} has no transformer or unet; rdmeval runs text-to-image pipelines with one")


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class LatentLayout:
    """How rdmeval's noise becomes the pipeline's ``latents``: ``plain``, ``packed-2x2`` or ``generator`` (none)."""

    kind: str
    shape: tuple[int, int, int]

    def to_pipeline(self, z: torch.Tensor, pipe: Any) -> torch.Tensor | None:
        if self.kind == "generator":
            return None
        if self.kind == "packed-2x2":  # the pipeline's own packing of its noise
            b, c, h, w = z.shape
            return type(pipe)._pack_latents(z, b, c, h, w)
        return z

    def describe(self) -> str:
        return {"plain": f"latents = rdmeval noise {list(self.shape)} (the pipeline's own latent shape)",
                "packed-2x2": f"latents = rdmeval noise {list(self.shape)} packed 2x2 into tokens, as the pipeline packs its own",
                "generator": "no latents: this pipeline's initial noise is drawn by the per-image generators"}[self.kind]


def latent_layout(pipe: Any, height: int, width: int) -> LatentLayout:
    """The pipeline's latent layout at ``height`` x ``width`` (checking the sizes divide)."""
    name = type(pipe).__name__
    if name not in PLAIN_LATENTS | PACKED_LATENTS:
        return LatentLayout("generator", (1, 1, 2))  # rdmeval's noise only seeds the generators
    factor = int(pipe.vae_scale_factor) * (2 if name in PACKED_LATENTS else 1)
    if height % factor or width % factor:
        raise RdmevalError(f"--resolution {height}x{width}: {name} needs multiples of {factor}")
    denoiser = denoiser_of(pipe)
    channels = int(denoiser.config.in_channels) // (4 if name in PACKED_LATENTS else 1)
    f = int(pipe.vae_scale_factor)
    return LatentLayout("packed-2x2" if name in PACKED_LATENTS else "plain", (channels, height // f, width // f))


def seed_of(noise: torch.Tensor) -> int:
    """A 63-bit seed from one image's noise (its float32 bytes), so the generators depend on the item only."""
    data = noise.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return int.from_bytes(hashlib.sha256(data).digest()[:SEED_BYTES], "little") & (2**63 - 1)


@dataclass(frozen=True)
class Sampling:
    """What every pipeline call passes besides prompts, latents and generators."""

    steps: int
    guidance_scale: float
    height: int
    width: int
    max_sequence_length: int | None = None
    timesteps: tuple[int, ...] | None = None
    call_kwargs: tuple[tuple[str, Any], ...] = ()

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"num_inference_steps": self.steps, "guidance_scale": self.guidance_scale,
                               "height": self.height, "width": self.width, **dict(self.call_kwargs)}
        if self.max_sequence_length is not None:
            out["max_sequence_length"] = self.max_sequence_length
        if self.timesteps is not None:
            out["timesteps"] = list(self.timesteps)
        return out


def _defaults(pipe: Any) -> dict[str, Any]:
    """The defaults of the pipeline's ``__call__`` (what a bare ``pipe(prompt)`` uses)."""
    return {k: p.default for k, p in inspect.signature(type(pipe).__call__).parameters.items()
            if p.default is not inspect.Parameter.empty}


def default_sampling(pipe: Any, *, steps: int | None, guidance_scale: float | None, resolution: int | None) -> Sampling:
    """``diffusers:<id>``: the pipeline's own defaults, each overridable (all recorded)."""
    d = _defaults(pipe)
    size = resolution
    if size is None:
        size = d.get("height") if isinstance(d.get("height"), int) else None
    if size is None and getattr(pipe, "default_sample_size", None) and getattr(pipe, "vae_scale_factor", None):
        size = int(pipe.default_sample_size) * int(pipe.vae_scale_factor)
    if size is None:
        raise RdmevalError(f"{type(pipe).__name__} states no default resolution; pass --resolution")
    msl = d.get("max_sequence_length")
    return Sampling(steps=int(steps if steps is not None else d.get("num_inference_steps", 50)),
                    guidance_scale=float(guidance_scale if guidance_scale is not None else d.get("guidance_scale", 1.0)),
                    height=int(size), width=int(size), max_sequence_length=int(msl) if isinstance(msl, int) else None)


def preset_sampling(preset: DiffusersPreset, *, steps: int | None, guidance_scale: float | None, resolution: int | None) -> Sampling:
    steps = preset.steps if steps is None else steps
    if preset.timesteps is not None and steps != len(preset.timesteps):
        raise RdmevalError(f"--steps {steps}: --model {preset.name} samples at the card's timesteps {list(preset.timesteps)} "
                           f"({len(preset.timesteps)} step(s)); use --model diffusers:{preset.base} to choose other steps")
    size = preset.resolution if resolution is None else resolution
    return Sampling(steps=steps, guidance_scale=preset.guidance_scale if guidance_scale is None else guidance_scale,
                    height=size, width=size, max_sequence_length=preset.max_sequence_length, timesteps=preset.timesteps,
                    call_kwargs=preset.call_kwargs)


class DiffusersGenerator:
    """A diffusers pipeline behind :class:`rdmeval.api.Generator`.

    ``build_diffusers(model, options)`` loads a preset or ``diffusers:<id>``; :meth:`from_pipeline`
    wraps a pipeline already in memory (tests, the GPU benchmark with random weights).
    """

    def __init__(self, pipe: Any, sampling: Sampling, *, name: str, precision: str, device: torch.device | str,
                 provenance: dict[str, Any] | None = None, preset: DiffusersPreset | None = None, uint8: str = "round"):
        if sampling.steps < 1:
            raise RdmevalError(f"--steps must be >= 1, got {sampling.steps}")
        if uint8 not in ("round", "truncate"):
            raise RdmevalError(f"--uint8 {uint8!r}: choose round or truncate")
        self.uint8_mode = uint8
        self.name = name
        self.preset = preset
        self.pipe = pipe
        self.sampling = sampling
        self.precision = precision
        self.device = torch.device(device)
        self.provenance = dict(provenance or {"base": {"source": "in-memory pipeline"}})
        unknown = sorted(set(sampling.kwargs()) - set(inspect.signature(type(pipe).__call__).parameters))
        if unknown:
            raise RdmevalError(f"{type(pipe).__name__} takes no {', '.join(unknown)} argument (model {name})")
        self.layout = latent_layout(pipe, sampling.height, sampling.width)
        if sampling.timesteps is not None:  # the card's timesteps are intended: no warning on every call
            from diffusers.utils import logging as diffusers_logging

            diffusers_logging.get_logger(type(pipe.scheduler).__module__).setLevel(diffusers_logging.ERROR)
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)

    @classmethod
    def from_pipeline(cls, pipe: Any, sampling: Sampling, *, name: str = "in-memory", device: str = "cpu",
                      preset: DiffusersPreset | None = None) -> "DiffusersGenerator":
        dtype = next(p.dtype for p in denoiser_of(pipe).parameters())
        return cls(pipe, sampling, name=name, precision=dtype_name(dtype), device=device, preset=preset)

    @property
    def ctx_len(self) -> int | None:
        """The longest text the denoiser sees: the pipeline's max_sequence_length, else its tokenizer's length (CLIP 77)."""
        if self.sampling.max_sequence_length is not None:
            return self.sampling.max_sequence_length
        length = getattr(getattr(self.pipe, "tokenizer", None), "model_max_length", None)
        return int(length) if isinstance(length, int) and length < 100_000 else None

    @property
    def noise_dtype(self) -> torch.dtype:
        """The dtype the pipeline draws its own noise in (so rdmeval's noise is cast as diffusers' would be)."""
        if type(self.pipe).__name__ in FP32_NOISE:
            return torch.float32
        return next(denoiser_of(self.pipe).parameters()).dtype

    # ----- contract ------------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self.layout.shape

    @property
    def resolution(self) -> tuple[int, int]:
        return (self.sampling.height, self.sampling.width)

    def describe(self) -> dict[str, Any]:
        from importlib import metadata

        s = self.sampling
        scheduler = self.pipe.scheduler
        denoiser = denoiser_of(self.pipe)
        return {
            "name": "diffusers",
            "preset": self.name,
            "pipeline": type(self.pipe).__name__,
            **self.provenance,
            "steps": s.steps,
            "timesteps": list(s.timesteps) if s.timesteps is not None else None,
            "guidance_scale": s.guidance_scale,
            "height": s.height,
            "width": s.width,
            "max_sequence_length": s.max_sequence_length,
            "ctx_len": self.ctx_len,
            "call_kwargs": dict(s.call_kwargs),
            "scheduler": {"class": type(scheduler).__name__, "config": {k: v for k, v in dict(scheduler.config).items()
                                                                       if not k.startswith("_")}},
            "precision": {"name": self.precision, "dtype": dtype_name(next(denoiser.parameters()).dtype)},
            "noise": {"layout": self.layout.kind, "latents": self.layout.describe(), "latents_dtype": dtype_name(self.noise_dtype),
                      "generator": f"one torch.Generator('cpu') per image, seeded with the first {SEED_BYTES} bytes (little-endian, "
                                   "63 bits) of sha256 of that image's rdmeval noise (float32)"},
            "uint8": ("round(clamp(x, 0, 1) * 255) in fp32, as diffusers' PIL output" if self.uint8_mode == "round"
                      else "truncate(clamp(x, 0, 1) * 255) in fp32"),
            "protocol": self.preset.describe() if self.preset else None,
            "diffusers": metadata.version("diffusers"),
        }

    def generate(self, prompts: Sequence[str], latents: torch.Tensor) -> np.ndarray:
        prompts = list(prompts)
        if latents.ndim != 4 or tuple(latents.shape[1:]) != self.latent_shape or latents.shape[0] != len(prompts):
            raise RdmevalError(f"latents of shape {tuple(latents.shape)} do not match {len(prompts)} prompts x {self.latent_shape}")
        generators = [torch.Generator("cpu").manual_seed(seed_of(z)) for z in latents]
        z = self.layout.to_pipeline(latents.to(self.device, torch.float32), self.pipe)
        with torch.inference_mode():
            out = self.pipe(prompt=prompts, latents=None if z is None else z.to(self.noise_dtype), generator=generators,
                            output_type="pt", return_dict=False, **self.sampling.kwargs())[0]
        images = out.float()
        if not bool(torch.isfinite(images).all()):
            raise NonFiniteError(
                f"model {self.name}: the decoded images hold {int(torch.isnan(images).sum())} NaN and "
                f"{int(torch.isinf(images).sum())} Inf values, so no image of this batch was saved; the pipeline overflows "
                f"in --precision {self.precision} (try --precision fp32) or its weights are broken")
        return to_uint8(images, self.uint8_mode)


def _dtype(precision: str, preset: DiffusersPreset | None) -> torch.dtype:
    if precision == "faithful":
        return getattr(torch, preset.dtype) if preset else torch.bfloat16
    if precision not in DTYPES:
        raise RdmevalError(f"--precision {precision!r}: choose faithful (the model card's dtype), bf16 or fp32")
    return DTYPES[precision]


def build_diffusers(model: str, options: "GeneratorOptions") -> DiffusersGenerator:
    """A preset (``sdxl-turbo``, ...) or ``diffusers:<hub id or folder>`` from rdmeval's GeneratorOptions."""
    from rdmeval.generators import diffusers_load as load
    from rdmeval.generators.klein import resolve_device

    preset = PRESETS.get(model)
    if preset is None and not model.startswith(DIFFUSERS_PREFIX):
        raise RdmevalError(f"--model {model}: not a diffusers preset ({', '.join(PRESETS)}) or diffusers:<hub id or folder>")
    if preset is not None and options.weights and preset.swap is None:
        raise RdmevalError(f"--model {model} runs the released weights of {preset.base}; to evaluate other weights on its "
                           f"pipeline use --model diffusers:{preset.base} --weights FILE")
    if preset is None and options.pipeline:
        raise RdmevalError(f"--base {options.pipeline}: --model {model} names its pipeline itself; use --model diffusers:FOLDER")
    source = (options.pipeline or preset.base) if preset else model[len(DIFFUSERS_PREFIX):]
    flag = "--base" if options.pipeline else f"--model {model}"
    dtype = _dtype(options.precision, preset)
    device = resolve_device(options.device)
    swap = preset.swap if preset else None
    component = swap.component if swap else None
    variant = preset.variant if preset else None
    if preset is None and options.weights:  # diffusers:<id> --weights FILE: swap its denoiser
        folder, base_info = load.resolve_source(source, variant=None, flag=flag)
        component = "transformer" if (folder / "transformer").is_dir() else "unet"
    else:
        folder, base_info = load.resolve_source(source, variant=variant, skip=(component,) if component else (), flag=flag)
    cls_name = load.pipeline_class(folder, source, preset.pipeline if preset else None, flag=flag)
    components: dict[str, Any] = {}
    weights_info = None
    if component:
        swap = swap or DenoiserSwap(component, "(--weights)", "(--weights)")
        path, weights_info = load.resolve_swap_file(swap, options.weights)
        denoiser, info = load.load_denoiser(folder, component, path, dtype, target=f"{cls_name} {source}")
        from rdmeval.io import sha256_file

        weights_info = {**weights_info, "sha256": sha256_file(path), **info}
        components[component] = denoiser
    pipe = load.load_pipeline(folder, dtype=dtype, variant=variant, components=components)
    if preset and preset.scheduler:
        load.swap_scheduler(pipe, preset.scheduler)
    resolution = options.height
    if options.height is not None and options.width is not None and options.height != options.width:
        raise RdmevalError(f"--resolution {options.height}x{options.width}: diffusers models run square images")
    sampling = (preset_sampling(preset, steps=options.steps, guidance_scale=options.guidance_scale, resolution=resolution) if preset
                else default_sampling(pipe, steps=options.steps, guidance_scale=options.guidance_scale, resolution=resolution))
    provenance = {"base": base_info, "weights": weights_info, "compile": bool(options.compile)}
    if options.compile:  # like the batch size, compiling can change last bits: recorded
        denoiser_of(pipe).compile()
    return DiffusersGenerator(pipe, sampling, name=model, precision=options.precision, device=device, provenance=provenance,
                              preset=preset, uint8=options.uint8)
