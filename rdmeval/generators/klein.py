"""FLUX.2 [klein] on diffusers: the teacher (4 steps), naive (1 step) and RDM student (1 step) presets.

Why one module of ~470 lines: it is one class (:class:`KleinGenerator`, ~250 lines) whose pieces
(device and precision regime, base-weight resolution, the pipeline call, the fp32 output hook)
each exist only to reproduce the reference sampler's numbers; the parts that stand alone (text
encoding, weight loading) are already their own modules, and splitting the class would scatter
one parity argument over several files.

One class, :class:`KleinGenerator`, drives diffusers' ``Flux2KleinPipeline`` the way the reference
evaluation drives Black Forest Labs' sampler (docs/generators.md, "diffusers and BFL's sampler"):

* it always passes ``latents=`` (rdmeval's seeded noise), ``height``/``width``,
  ``num_inference_steps``, ``max_sequence_length=ctx_len`` and ``guidance_scale=1.0``;
* prompts are encoded by rdmeval (:mod:`rdmeval.generators.text_encoder`): each distinct prompt once,
  Qwen3 run only up to the deepest layer used, and passed as ``prompt_embeds``;
* the student's DiT is loaded strictly from ``--weights`` (:mod:`rdmeval.generators.weights`);
  without weights the student is refused, never replaced by the base.

Precision regimes (``--precision``):

``faithful`` (default; the reference's regime)
    fp32 DiT weights under bf16 autocast, with a forward hook returning the DiT output as fp32 so
    that latents and timesteps stay fp32 (otherwise diffusers' scheduler casts the latents to bf16
    after the first step and the 4-step timesteps round to 960/884/716); text encoder in bf16 with
    embeddings passed as fp32; VAE entirely in bf16, decoded as the reference does: final latents
    cast to bf16, BatchNorm inverse with the bf16 running stats, 2x2 unpatchify, decode,
    ``clamp(x * 0.5 + 0.5, 0, 1)`` (a bf16 image).
``bf16``
    every component in bf16 (fast; the 4-step timesteps are rounded by the bf16 DiT).
``fp32``
    every component in fp32 (strict parity; the CPU test regime).

uint8 (:func:`rdmeval.generators.base.to_uint8`): ``round`` is computed on the image in its own dtype
(the reference's GenEval PNG writer rounds the bf16 image); ``truncate`` is computed in fp32 (the
reference's PickScore path calls ``to_pil_image(img.float())``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from rdmeval.errors import RdmevalError
from rdmeval.generators.base import to_uint8
from rdmeval.generators.finite import NonFiniteError
from rdmeval.generators.text_encoder import DEFAULT_TEXT_LAYERS, PromptEncoder, load_text_encoder

if TYPE_CHECKING:
    from rdmeval.generators.registry import GeneratorOptions

log = logging.getLogger(__name__)
PRESET_STEPS: dict[str, int] = {"teacher": 4, "naive": 1, "student": 1}
PIPELINE_CLASS = "Flux2KleinPipeline"
# What a hub snapshot needs; never the 8 GB BFL-format file at the repo root.
_HUB_PATTERNS = ["model_index.json", "scheduler/*", "tokenizer/*", "vae/*", "text_encoder/*", "transformer/*.json"]


@dataclass(frozen=True)
class Regime:
    name: str
    dit_dtype: torch.dtype
    vae_dtype: torch.dtype
    text_dtype: torch.dtype
    embed_dtype: torch.dtype
    autocast: bool

    def describe(self) -> dict[str, str]:
        def n(d: torch.dtype) -> str:
            return str(d).removeprefix("torch.")

        dit = f"{n(self.dit_dtype)} weights" + (" under bf16 autocast, fp32 output/latents/timesteps" if self.autocast else "")
        return {"name": self.name, "dit": dit, "vae": n(self.vae_dtype), "text_encoder": n(self.text_dtype), "prompt_embeds": n(self.embed_dtype)}


REGIMES: dict[str, Regime] = {
    "faithful": Regime("faithful", torch.float32, torch.bfloat16, torch.bfloat16, torch.float32, autocast=True),
    "bf16": Regime("bf16", torch.bfloat16, torch.bfloat16, torch.bfloat16, torch.bfloat16, autocast=False),
    "fp32": Regime("fp32", torch.float32, torch.float32, torch.float32, torch.float32, autocast=False),
}


# ----------------------------------------------------------------------------------------------
# Device and base resolution
# ----------------------------------------------------------------------------------------------


def resolve_device(requested: str | None) -> torch.device:
    """``--device`` or the default: ``cuda:$LOCAL_RANK`` under torchrun, else ``cuda``, else ``cpu``."""
    local_rank = os.environ.get("LOCAL_RANK")
    if requested is None:
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise RdmevalError(f"--device {requested!r}: not a device (use cuda, cuda:N or cpu)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RdmevalError(f"--device {requested}: CUDA is not available on this machine; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", int(local_rank) if local_rank is not None else torch.cuda.current_device())
        if device.index >= torch.cuda.device_count():
            raise RdmevalError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
        torch.cuda.set_device(device)
    return device


def _looks_like_path(base: str) -> bool:
    return base.startswith(("/", ".", "~")) or base.count("/") != 1


def hub_unreachable(base: str, exc: BaseException) -> RdmevalError:
    """The one-line error for a hub id whose files cannot be fetched (offline, gated, 404, HTTP errors)."""
    first = (str(exc).strip().splitlines() or [""])[0]
    first = first if len(first) <= 160 else first[:157].rstrip() + "..."
    return RdmevalError(
        f"--base {base}: the pipeline's weights are fetched from the Hugging Face hub, which did not give them "
        f"({type(exc).__name__}{': ' + first if first else ''}). Pass a local copy with --base FOLDER (made where "
        f"there is network with `hf download {base} --local-dir FOLDER`), or run with network access "
        "(and `hf auth login` if the repo is gated)"
    )


def resolve_base(base: str, *, need_transformer: bool, configs_only: bool = False) -> tuple[Path, dict[str, Any]]:
    """A local pipeline folder for ``--base`` (a folder, or a hub id fetched/cached with huggingface_hub).

    ``configs_only``: fetch only ``model_index.json`` and the components' ``config.json`` (a few kB)."""
    path = Path(base).expanduser()
    if path.is_dir():
        local, info = path.resolve(), {"source": "local", "path": str(path.resolve())}
    elif _looks_like_path(base):
        raise RdmevalError(f"--base {base}: no such folder (give a diffusers FLUX.2 [klein] pipeline folder or a hub id)")
    else:
        from huggingface_hub import snapshot_download

        patterns = ["model_index.json", "*/config.json"] if configs_only else (
            _HUB_PATTERNS + (["transformer/*"] if need_transformer else []))
        try:
            local = Path(snapshot_download(repo_id=base, allow_patterns=patterns))
        except Exception as exc:  # huggingface_hub raises many kinds (offline, gated, 404, HTTP)
            raise hub_unreachable(base, exc) from None
        info = {"source": "hub", "repo_id": base, "revision": local.name}
    index_path = local / "model_index.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, json.JSONDecodeError):
        raise RdmevalError(f"--base {base}: {index_path} is missing or unreadable; this is not a diffusers pipeline folder") from None
    if index.get("_class_name") != PIPELINE_CLASS:
        raise RdmevalError(f"--base {base}: model_index.json names {index.get('_class_name')!r}, expected {PIPELINE_CLASS}")
    info["is_distilled"] = bool(index.get("is_distilled", False))
    return local, info


def _fp32_output(_module: torch.nn.Module, _args: Any, output: Any) -> Any:
    """Forward hook: the DiT output as fp32, so diffusers' scheduler keeps latents (and timesteps) fp32."""
    if isinstance(output, tuple):
        return (output[0].float(),) + tuple(output[1:])
    if isinstance(output, torch.Tensor):
        return output.float()
    if hasattr(output, "sample"):
        output.sample = output.sample.float()
    return output


# ----------------------------------------------------------------------------------------------
# The generator
# ----------------------------------------------------------------------------------------------


def _check_settings(precision: str, uint8: str, steps: int, height: int, width: int) -> None:
    if precision not in REGIMES:
        raise RdmevalError(f"--precision {precision!r}: choose one of {', '.join(REGIMES)}")
    if uint8 not in ("round", "truncate"):
        raise RdmevalError(f"--uint8 {uint8!r}: choose round or truncate")
    if steps < 1:
        raise RdmevalError(f"--steps must be >= 1, got {steps}")
    if height % 16 or width % 16 or height <= 0 or width <= 0:
        raise RdmevalError(f"--resolution {height}x{width}: height and width must be positive multiples of 16")


class KleinGenerator:
    """A FLUX.2 [klein] preset behind rdmeval's :class:`~rdmeval.generators.base.Generator` contract.

    ``KleinGenerator(preset=..., base=..., steps=..., weights=...)`` loads a pipeline folder or hub id;
    :meth:`from_modules` wraps modules already in memory (benchmarks with random real-shape weights).
    """

    def __init__(
        self,
        *,
        preset: str,
        base: str,
        steps: int,
        weights: str | None = None,
        ctx_len: int = 48,
        text_layers: Sequence[int] = DEFAULT_TEXT_LAYERS,
        precision: str = "faithful",
        height: int = 512,
        width: int = 512,
        uint8: str = "round",
        compile: bool = False,
        device: str | None = None,
    ):
        _check_settings(precision, uint8, steps, height, width)
        from diffusers import AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2Transformer2DModel
        from transformers import AutoTokenizer

        r = REGIMES[precision]
        dev = resolve_device(device)
        if device is None and dev.type == "cpu":  # not chosen: say what the CPU costs, before any weight loads
            from rdmeval.generators.cpu_cost import warn_if_cpu_is_slow

            warn_if_cpu_is_slow(resolve_base(base, need_transformer=False, configs_only=True)[0], preset=preset,
                                steps=steps, height=height, width=width, ctx_len=ctx_len, text_layers=text_layers,
                                precision=r.name, weight_dtype=r.dit_dtype, autocast=r.autocast)
        log.info("loading FLUX.2 [klein] %s (%d step%s) from %s on %s ...", preset, steps, "s" if steps != 1 else "", base, dev)
        local, base_info = resolve_base(base, need_transformer=weights is None)
        scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(local, subfolder="scheduler")
        tokenizer = AutoTokenizer.from_pretrained(local / "tokenizer")
        vae = AutoencoderKLFlux2.from_pretrained(local, subfolder="vae", torch_dtype=r.vae_dtype)
        weights_info: dict[str, Any] = {}
        if weights is not None:
            from rdmeval.generators.weights import load_transformer_weights

            config = Flux2Transformer2DModel.load_config(local, subfolder="transformer")
            transformer, weights_info = load_transformer_weights(
                weights, config, dtype=r.dit_dtype, device=dev, target=f"the transformer of --base {base}"
            )  # cast on the device: the 8 GB bf16 file never becomes a 16 GB fp32 copy in host memory
        else:
            transformer = Flux2Transformer2DModel.from_pretrained(local, subfolder="transformer", torch_dtype=r.dit_dtype)
        text = load_text_encoder(str(local), subfolder="text_encoder", layers=text_layers, dtype=r.text_dtype, device=dev)
        self._setup(
            preset=preset, transformer=transformer, vae=vae, text=text, tokenizer=tokenizer, scheduler=scheduler,
            steps=steps, ctx_len=ctx_len, regime=r, height=height, width=width, uint8=uint8, compile=compile,
            device=dev, base_info=base_info, base_label=base,
        )
        self.weights_path = str(Path(weights).expanduser().resolve()) if weights else None
        self.weights_info = weights_info
        # a local --base folder's identity is hashed over the pipeline's components, the transformer's weights
        # included even when --weights replaces them: one folder has one identity, whichever model reads it
        self._base_folder = local if base_info.get("source") == "local" else None
        self._base_patterns = _HUB_PATTERNS + ["transformer/*"]

    @classmethod
    def from_modules(
        cls,
        *,
        preset: str,
        transformer: torch.nn.Module,
        vae: torch.nn.Module,
        text_encoder: torch.nn.Module,
        tokenizer: Any,
        scheduler: Any,
        steps: int,
        ctx_len: int = 48,
        text_layers: Sequence[int] = DEFAULT_TEXT_LAYERS,
        precision: str = "faithful",
        height: int = 512,
        width: int = 512,
        uint8: str = "round",
        compile: bool = False,
        device: str | None = None,
        base_info: dict[str, Any] | None = None,
    ) -> "KleinGenerator":
        """Wrap in-memory modules (cast to the regime's dtypes and moved to the device)."""
        from rdmeval.generators.text_encoder import Qwen3HiddenStates

        _check_settings(precision, uint8, steps, height, width)
        r = REGIMES[precision]
        dev = resolve_device(device)
        text = text_encoder if isinstance(text_encoder, Qwen3HiddenStates) else Qwen3HiddenStates(text_encoder, text_layers)
        self = cls.__new__(cls)
        self._setup(
            preset=preset, transformer=torch.nn.Module.to(transformer, device=dev, dtype=r.dit_dtype),
            vae=torch.nn.Module.to(vae, device=dev, dtype=r.vae_dtype), text=text.to(device=dev, dtype=r.text_dtype),
            tokenizer=tokenizer, scheduler=scheduler, steps=steps, ctx_len=ctx_len, regime=r, height=height, width=width,
            uint8=uint8, compile=compile, device=dev, base_info=dict(base_info or {"source": "in-memory modules", "is_distilled": True}),
            base_label="(in-memory modules)",
        )
        self.weights_path, self.weights_info = None, {}
        self._base_folder, self._base_patterns = None, []
        return self

    def _setup(self, *, preset: str, transformer: torch.nn.Module, vae: torch.nn.Module, text: Any, tokenizer: Any, scheduler: Any,
               steps: int, ctx_len: int, regime: Regime, height: int, width: int, uint8: str, compile: bool,
               device: torch.device, base_info: dict[str, Any], base_label: str) -> None:
        from diffusers import Flux2KleinPipeline

        self.name = preset
        self.preset = preset
        self.steps = int(steps)
        self.ctx_len = int(ctx_len)
        self.height, self.width = int(height), int(width)
        self.uint8_mode = uint8
        self.regime = regime
        self.compiled = bool(compile)
        self.device = device
        self.base_info = base_info
        self.base_label = base_label
        self._weights_sha256: str | None = None
        transformer.eval().requires_grad_(False)
        vae.eval().requires_grad_(False)
        self.text = text
        self.text_layers = text.layers
        hidden = int(text.model.config.hidden_size)
        joint = int(transformer.config.joint_attention_dim)
        if hidden * len(self.text_layers) != joint:
            raise RdmevalError(
                f"--text-encoder-layers {','.join(map(str, self.text_layers))}: {len(self.text_layers)} layers x hidden {hidden} = "
                f"{hidden * len(self.text_layers)} features, but the DiT of --base {base_label} expects {joint} "
                f"({joint // hidden} layers; klein uses 9,18,27)"
            )
        # No reuse across generate() calls: a prompt's embedding then depends only on the forward block that
        # needs it (the encoder's batch shape can change its last bits), which keeps images independent of
        # shards and resume points (rdmeval/generation.py). Within a call each distinct prompt is encoded once.
        self.prompts = PromptEncoder(tokenizer, text, ctx_len=self.ctx_len, out_dtype=regime.embed_dtype, cache_size=0)
        self.pipe = Flux2KleinPipeline(
            scheduler=scheduler, vae=vae, text_encoder=None, tokenizer=tokenizer, transformer=transformer,
            is_distilled=bool(base_info.get("is_distilled", False)),
        )
        self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)
        if regime.autocast:
            transformer.register_forward_hook(_fp32_output)
        if compile:
            transformer.compile()
        self.latent_channels = int(transformer.config.in_channels)
        self._sigmas = self._schedule()

    # ----- contract ------------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.latent_channels, self.height // 16, self.width // 16)

    @property
    def resolution(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def weights_sha256(self) -> str | None:
        if self.weights_path and self._weights_sha256 is None:
            from rdmeval.generators.weights import WeightsError
            from rdmeval.io import recorded_sha256, sha256_file

            log.info("hashing the student weights %s (sha256, for the manifest) ...", Path(self.weights_path).name)
            digest = sha256_file(self.weights_path)
            record = recorded_sha256(self.weights_path)  # the trainer writes one beside each milestone
            if record is not None and record[1] != digest:
                raise WeightsError(
                    f"--weights {self.weights_path}: its sha256 {digest[:12]}... differs from {record[1][:12]}... recorded in "
                    f"{record[0].name} beside it when it was written, so it is damaged (a byte inside a tensor loads without "
                    f"any error). Copy it again; if it was replaced on purpose by another good file, delete {record[0].name}"
                )
            self._weights_sha256 = digest
        return self._weights_sha256

    def describe(self) -> dict[str, Any]:
        from importlib import metadata

        weights = None
        if self.weights_path:
            weights = {"path": self.weights_path, "sha256": self.weights_sha256, **self.weights_info}
        return {
            "name": "flux2-klein",
            "preset": self.preset,
            "base": {k: v for k, v in self.base_info.items()},
            "weights": weights,
            "steps": self.steps,
            "sigmas": self._sigmas,
            "height": self.height,
            "width": self.width,
            "ctx_len": self.ctx_len,
            "text_layers": list(self.text_layers),
            "guidance_scale": 1.0,
            "precision": self.regime.describe(),
            "uint8": self.uint8_mode,
            "compile": self.compiled,
            "diffusers": metadata.version("diffusers"),
        }

    def provenance(self) -> dict[str, Any]:
        """The base pipeline's identity, recorded beside the request (``execution.provenance``), never compared.

        A hub base is identified by its commit (``describe()["base"]["revision"]``); a local folder by
        :func:`~rdmeval.io.sha256_folder` over the files this generator reads (``base_sha256``). Not part
        of :meth:`describe`, so runs made before it was recorded still resume."""
        if self._base_folder is None:
            return {}
        if getattr(self, "_provenance", None) is None:
            from rdmeval.io import sha256_folder

            found = sha256_folder(self._base_folder, self._base_patterns)
            self._provenance = {"base_sha256": found["sha256"], "base_files": found["files"],
                                "base_hashed": list(self._base_patterns)}
        return dict(self._provenance)

    def generate(self, prompts: Sequence[str], latents: torch.Tensor) -> np.ndarray:
        prompts = list(prompts)
        if latents.ndim != 4 or tuple(latents.shape[1:]) != self.latent_shape or latents.shape[0] != len(prompts):
            raise RdmevalError(
                f"latents of shape {tuple(latents.shape)} do not match {len(prompts)} prompts x {self.latent_shape}"
            )
        with torch.inference_mode():
            embeds = self.prompts(prompts)
            images = self._sample(embeds, latents.to(self.device, torch.float32))
            self._check_finite(images, "the decoded image (VAE output)")
            return to_uint8(images, self.uint8_mode)

    # ----- checkpoint sweeps: one pipeline, many student checkpoints --------------------------
    def swap_weights(self, weights: str | os.PathLike[str]) -> None:
        """Load another student checkpoint into the DiT in place (``rdmeval sweep``).

        The text encoder, VAE and scheduler stay loaded; the DiT's parameters are overwritten with the
        file's (read, converted and checked strictly as a fresh ``--weights`` load, so a bad file
        changes nothing), and ``describe()`` then names the new file. The result equals a generator
        built with ``weights=`` this file (tests/test_sweep.py compares the two)."""
        if self.weights_path is None:
            raise RdmevalError(f"--model {self.preset} runs the released weights of --base; only a student "
                               "(built with --weights) can swap in another checkpoint")
        from rdmeval.generators.weights import load_weights_into

        transformer = self.pipe.transformer
        info = load_weights_into(transformer, weights, target=f"the transformer of --base {self.base_label}")
        self.weights_path = str(Path(weights).expanduser().resolve())
        self.weights_info = info
        self._weights_sha256 = None

    def set_ctx_len(self, ctx_len: int) -> None:
        """Use another text length (a benchmark's ``ctx_len``) without reloading anything."""
        if int(ctx_len) == self.ctx_len:
            return
        self.prompts = PromptEncoder(self.prompts.tokenizer, self.text, ctx_len=int(ctx_len),
                                     out_dtype=self.regime.embed_dtype, cache_size=0)
        self.ctx_len = int(ctx_len)

    # ----- non-finite outputs ---------------------------------------------------------------
    def _checkpoint(self) -> str:
        """The weights the DiT runs: the student's --weights file, else the --base pipeline."""
        return f"--weights {self.weights_path}" if self.weights_path else f"--base {self.base_label} (model {self.preset})"

    def _check_finite(self, t: torch.Tensor, tensor: str) -> None:
        """Stop with a :class:`NonFiniteError` naming the checkpoint and ``tensor`` if ``t`` holds NaN/Inf.

        One reduction and one device sync per check; to_uint8 would otherwise turn NaN into black pixels."""
        if bool(torch.isfinite(t).all()):
            return
        n_nan, n_inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
        raise NonFiniteError(
            f"{self._checkpoint()}: {tensor} holds {n_nan} NaN and {n_inf} Inf values (of {t.numel()}), so the "
            "images would be black or garbage and no image of this batch was saved. The weights are finite (checked "
            "when read) but the model's output is not: its training probably diverged, or it overflows in "
            f"--precision {self.regime.name}; try --precision fp32, or an earlier checkpoint"
        )

    def _check_step(self, _pipe: Any, i: int, _t: Any, kwargs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Pipeline step callback: the latents after step ``i`` (the DiT output folded in by the scheduler)."""
        self._check_finite(kwargs["latents"], f"the latents after denoising step {i + 1} of {self.steps} (DiT output)")
        return {}

    # ----- internals -----------------------------------------------------------------------
    def _call_pipeline(self, embeds: torch.Tensor, latents: torch.Tensor, output_type: str, callback: Any = None) -> torch.Tensor:
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.regime.autocast else contextlib.nullcontext()
        with autocast, warnings.catch_warnings():
            # Under autocast the fp32 QK-norm weights meet bf16 activations; torch notes it takes the unfused path.
            warnings.filterwarnings("ignore", message="Mismatch dtype between input and weight")
            return self.pipe(
                prompt_embeds=embeds,
                latents=latents,
                height=self.height,
                width=self.width,
                num_inference_steps=self.steps,
                guidance_scale=1.0,
                max_sequence_length=self.ctx_len,
                text_encoder_out_layers=tuple(self.text_layers),
                output_type=output_type,
                return_dict=False,
                callback_on_step_end=callback,
            )[0]

    def _sample(self, embeds: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """[0, 1] images (B, 3, H, W): bf16 in the faithful and bf16 regimes, fp32 in fp32."""
        if not self.regime.autocast:
            return self._call_pipeline(embeds, latents, "pt", self._check_step)
        final: dict[str, torch.Tensor] = {}

        def keep_latents(pipe: Any, i: int, t: Any, kwargs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            final["packed"] = kwargs["latents"]
            return self._check_step(pipe, i, t, kwargs)

        self._call_pipeline(embeds, latents, "latent", keep_latents)
        return self.decode_like_reference(final["packed"])

    def decode_like_reference(self, packed: torch.Tensor) -> torch.Tensor:
        """Packed (B, h*w, C) latents -> [0, 1] image, in the VAE's dtype, as the reference decodes."""
        from diffusers import Flux2KleinPipeline

        vae = self.pipe.vae
        b, _, c = packed.shape
        h, w = self.height // 16, self.width // 16
        z = packed.transpose(1, 2).reshape(b, c, h, w).to(vae.dtype)  # tokens are row-major (h, w)
        mean = vae.bn.running_mean.view(1, -1, 1, 1)
        std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps)
        z = Flux2KleinPipeline._unpatchify_latents(z * std + mean)
        image = vae.decode(z, return_dict=False)[0]
        return torch.clamp(image * 0.5 + 0.5, 0.0, 1.0)

    def _schedule(self) -> list[float]:
        """The sigmas the pipeline will use (its own recipe, evaluated on a copy of its scheduler)."""
        from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu

        scheduler = copy.deepcopy(self.pipe.scheduler)
        seq_len = (self.height // 16) * (self.width // 16)
        mu = compute_empirical_mu(seq_len, self.steps)
        if getattr(scheduler.config, "use_flow_sigmas", False):
            scheduler.set_timesteps(self.steps, device="cpu", mu=mu)
        else:
            scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / self.steps, self.steps), device="cpu", mu=mu)
        return [float(s) for s in scheduler.sigmas]


def build_preset(name: str, options: GeneratorOptions) -> KleinGenerator:
    """``teacher`` / ``naive`` / ``student`` from rdmeval's GeneratorOptions."""
    if name not in PRESET_STEPS:
        raise RdmevalError(f"unknown klein preset {name!r}; choose one of {', '.join(PRESET_STEPS)}")
    if name == "student" and not options.weights:
        raise RdmevalError("--model student needs --weights PATH (model.safetensors or the .pth); it never falls back to the base weights")
    if name != "student" and options.weights:
        raise RdmevalError(f"--model {name} uses the released klein weights of --base; --weights is only for --model student")
    return KleinGenerator(
        preset=name,
        base=options.base,
        steps=PRESET_STEPS[name] if options.steps is None else options.steps,
        weights=options.weights,
        ctx_len=options.ctx_len,
        text_layers=tuple(options.text_layers),
        precision=options.precision,
        height=options.height,
        width=options.width,
        uint8=options.uint8,
        compile=options.compile,
        device=options.device,
    )
