"""The FLUX.2 [klein] task: what ``Trainer`` trains when ``config.model == "flux"``.

- student: the klein DiT (diffusers' ``Flux2Transformer2DModel``, fp32 master weights, trainable),
  initialised from the base pipeline's transformer (the 4-step teacher's weights, as released);
- the frozen VAE and the frozen encoder battery (``dict`` of :class:`BatteryEncoder`);
- the conditioning tables: ctx (Qwen3 prompt embeddings, rows (ctx_len, joint_attention_dim)) and
  τ (unit text features), row-aligned and memory-mapped (:class:`Table`);
- one joint :class:`ReferenceBundle` per encoder.

A chunk is ``batch_size`` noises ``randn(B, 128, h, w)`` and ``batch_size`` pool rows
``idx ~ randint(0, N_pool)``, both drawn from the chunk's generator (so the data depend only on the
run seed, the step and the global chunk index). ``encode`` renders the chunk with the student in
one step (:class:`OneStepFlux`) and runs every encoder on the images.

Assets come from a folder (``--assets DIR``: ``ctx/``, ``tau/``, ``bundles/<encoder>.safetensors``
and an optional ``assets.json`` naming the base pipeline) or from individual flags; a missing one
is reported with its path and the command that builds it, before any model is loaded.
The released bundles and τ table convert to this layout with
:func:`rdmeval.distill.released.import_released`; ``rdmeval train tables`` builds ctx and τ.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rdmeval.errors import RdmevalError
from rdmeval.distill.battery import BatteryEncoder, tiny_battery
from rdmeval.distill.config import ConfigError, TrainConfig
from rdmeval.distill.flux_model import OneStepFlux, enable_block_checkpointing
from rdmeval.distill.reference import ReferenceBundle, load_bundle
from rdmeval.distill.tables import Table, TableError, check_row_aligned
from rdmeval.generators.registry import KLEIN_BASE

ASSETS_FORMAT = "rdmeval.distill.assets/1"
ASSETS_FILE = "assets.json"
BUILD_HINTS = {
    "tiny": "rdmeval train tiny-assets --klein TINY_KLEIN_DIR --out {assets}",
    "released": ("rdmeval train tables --pool rdm-s180-generator --only ctx --out {assets} (ctx) and "
                 "rdmeval train import-released RELEASED_DIR --out {assets} --pool rdm-s180-generator (bundles, τ; "
                 "docs/reference-assets.md)"),
}


class AssetError(RdmevalError):
    """A training asset (table, bundle, base pipeline) is missing or does not fit the config."""


# ------------------------------------------------------------------------------------------- assets


@dataclass(frozen=True)
class FluxAssets:
    """Where a FLUX run's inputs are. ``hint`` says how to build them (for error messages)."""

    base: str
    ctx_table: Path
    text_table: Path | None
    bundles: Path
    hint: str = ""

    def bundle_path(self, encoder: str) -> Path:
        return self.bundles / f"{encoder}.safetensors"

    def describe(self) -> dict[str, Any]:
        return {"base": self.base, "ctx_table": str(self.ctx_table), "text_table": str(self.text_table) if self.text_table else None,
                "bundles": str(self.bundles)}


def read_assets_manifest(folder: Path) -> dict[str, Any]:
    path = folder / ASSETS_FILE
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AssetError(f"{path} is not readable JSON ({exc}); rebuild the assets") from None
    if meta.get("format") != ASSETS_FORMAT:
        raise AssetError(f"{path}: format {meta.get('format')!r} is not {ASSETS_FORMAT!r}; rebuild the assets")
    return meta


def resolve_assets(
    config: TrainConfig,
    *,
    assets: str | os.PathLike[str] | None = None,
    base: str | None = None,
    ctx_table: str | os.PathLike[str] | None = None,
    text_table: str | os.PathLike[str] | None = None,
    bundles: str | os.PathLike[str] | None = None,
) -> FluxAssets:
    """Flags first, then the ``--assets`` folder's layout and its ``assets.json``, then the defaults."""
    flux = _flux(config)
    folder = Path(assets).expanduser() if assets is not None else None
    hint = BUILD_HINTS[flux.battery].format(assets=folder or "ASSETS")
    if folder is not None and not folder.is_dir():
        raise AssetError(f"--assets {folder}: no such folder; build it with {hint}")
    meta = read_assets_manifest(folder) if folder is not None else {}
    if meta.get("config") not in (None, config.name):
        raise AssetError(
            f"--assets {folder} was built for config {meta['config']!r}, not {config.name!r}; pass --config {meta['config']}, "
            f"or --assets a folder built for {config.name} (docs/distill.md, Assets)"
        )

    def pick(flag: Any, sub: str, name: str) -> Path:
        if flag is not None:
            return Path(flag).expanduser()
        if folder is None:
            raise AssetError(
                f"config {config.name!r} needs its {name}: pass --assets DIR (holding ctx/, tau/, bundles/) or "
                f"--{sub}; build them with {hint}"
            )
        return folder / {"ctx-table": "ctx", "text-table": "tau", "bundles": "bundles"}[sub]

    base_value = base or meta.get("base")
    if base_value and folder is not None and not base and not Path(base_value).is_absolute() and _looks_local(base_value):
        base_value = str(folder / base_value)
    return FluxAssets(
        base=base_value or KLEIN_BASE,
        ctx_table=pick(ctx_table, "ctx-table", "ctx table"),
        text_table=pick(text_table, "text-table", "τ text table") if config.joint_enable else None,
        bundles=pick(bundles, "bundles", "reference bundles"),
        hint=hint,
    )


def _looks_local(value: str) -> bool:
    return value.startswith((".", "/", "~")) or value.count("/") != 1


def check_assets(config: TrainConfig, assets: FluxAssets) -> None:
    """Every file the task will read exists (one error listing all that do not), before loading models."""
    missing = []
    if not (assets.ctx_table / "table.json").is_file():
        missing.append(f"ctx table {assets.ctx_table / 'table.json'}")
    if assets.text_table is not None and not (assets.text_table / "table.json").is_file():
        missing.append(f"τ table {assets.text_table / 'table.json'}")
    for name in config.encoders:
        if not assets.bundle_path(name).is_file():
            missing.append(f"bundle {assets.bundle_path(name)}")
    fixes = [f"Build them with {assets.hint}"] if missing else []
    if _looks_local(assets.base) and not (Path(assets.base).expanduser() / "model_index.json").is_file():
        missing.append(f"base pipeline {Path(assets.base).expanduser() / 'model_index.json'}")
        # not built by the assets' commands: a klein pipeline folder (the tiny fixture's klein/) or a hub id
        fixes.append("Pass --base with a FLUX.2 [klein] pipeline folder (flux_tiny: TINY_KLEIN_DIR/klein, from rdmeval fixtures "
                     "tiny-klein TINY_KLEIN_DIR) or its hub id")
    if missing:
        shown = "; ".join(missing[:4]) + (f" (and {len(missing) - 4} more)" if len(missing) > 4 else "")
        raise AssetError(f"config {config.name!r}: missing {shown}. {'. '.join(fixes)}")


# ------------------------------------------------------------------------------------------- the task


@dataclass
class FluxChunk:
    """One micro-batch: latent noise (B, 128, h, w) and the pool rows that condition it."""

    noise: Tensor
    idx: Tensor


@dataclass
class FluxTask:
    """Everything :class:`~rdmeval.distill.trainer.Trainer` needs for the klein student."""

    config: TrainConfig
    student: nn.Module
    renderer: OneStepFlux
    battery: dict[str, BatteryEncoder]
    bundles: dict[str, ReferenceBundle]
    ctx_table: Table
    text_table: Table | None
    device: torch.device
    latent_shape: tuple[int, int, int]
    assets: FluxAssets | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def sample_chunk(self, generator: torch.Generator, batch_size: int) -> FluxChunk:
        noise = torch.randn((batch_size, *self.latent_shape), generator=generator)
        idx = torch.randint(0, len(self.ctx_table), (batch_size,), generator=generator)
        return FluxChunk(noise=noise, idx=idx)

    def ctx(self, idx: Tensor) -> Tensor:
        return self.ctx_table[idx].to(self.device)

    def render(self, chunk: FluxChunk) -> Tensor:
        """The student's one-step images of ``chunk``, [0, 1], (B, 3, H, W) (graph kept if grad is on)."""
        return self.renderer(chunk.noise.to(self.device), self.ctx(chunk.idx))

    def encode(self, chunk: FluxChunk) -> dict[str, Tensor]:
        image = self.render(chunk)
        return {name: self.battery[name](image) for name in self.config.encoders}


def _flux(config: TrainConfig):
    if config.model != "flux" or config.flux is None:
        raise ConfigError(f"config {config.name!r} is not a FLUX config (model {config.model!r})")
    return config.flux


def load_battery(config: TrainConfig, device: torch.device) -> dict[str, BatteryEncoder]:
    flux = _flux(config)
    if flux.battery == "tiny":
        battery = tiny_battery(seed=flux.battery_seed, names=config.encoders)
    else:
        from rdmeval.distill.encoders import load_battery as load_released

        battery = load_released(config.encoders, device=device)  # fp32 weights, bf16 autocast on CUDA (as released)
    missing = [n for n in config.encoders if n not in battery]
    if missing:
        raise ConfigError(f"TrainConfig.encoders {missing} are not in the {flux.battery} battery ({', '.join(battery)})")
    return {n: battery[n].to(device) for n in config.encoders}


def _check_tables(config: TrainConfig, assets: FluxAssets, ctx: Table, text: Table | None, joint_dim: int) -> None:
    flux = _flux(config)
    if ctx.row_shape != (flux.ctx_len, joint_dim):
        raise AssetError(
            f"ctx table {assets.ctx_table}: rows are {ctx.row_shape}, the DiT of {assets.base} with ctx_len {flux.ctx_len} "
            f"needs ({flux.ctx_len}, {joint_dim}); rebuild it with {assets.hint}"
        )
    if text is None:
        return
    try:
        check_row_aligned(ctx, text)
    except TableError as exc:
        raise AssetError(f"the τ table is not row-aligned with the ctx table: {exc}") from None
    if len(text.row_shape) != 1:
        raise AssetError(f"τ table {assets.text_table}: rows must be vectors, got shape {text.row_shape}")


def load_bundles(config: TrainConfig, assets: FluxAssets, battery: dict[str, BatteryEncoder], d_txt: int | None,
                 device: torch.device) -> dict[str, ReferenceBundle]:
    bundles = {}
    for name in config.encoders:
        path = assets.bundle_path(name)
        bundle = load_bundle(path, device=device)
        dim = battery[name].spec.dim
        d_img = bundle.d_img if bundle.joint else bundle.d_in
        if d_img != dim or (config.joint_enable and bundle.d_txt != d_txt):
            raise AssetError(
                f"bundle {path}: features are {d_img}-d image + {bundle.d_txt}-d text, but encoder {name!r} gives {dim}-d "
                f"and the τ table {d_txt}-d; rebuild the bundles with {assets.hint}"
            )
        bundles[name] = bundle
    return bundles


def shard_student(transformer: nn.Module) -> None:
    """FSDP2: one ``fully_shard`` unit per DiT block, then the root (embedders, modulations, output)."""
    from torch.distributed.fsdp import fully_shard

    for block in [*transformer.transformer_blocks, *transformer.single_transformer_blocks]:
        fully_shard(block)
    fully_shard(transformer)


def build_flux_task(config: TrainConfig, assets: FluxAssets, *, device: torch.device | str = "cpu") -> FluxTask:
    """Load the base pipeline's DiT (student) and VAE, the battery, the tables and the bundles."""
    from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel

    from rdmeval.generators.klein import resolve_base

    flux = _flux(config)
    device = torch.device(device)
    check_assets(config, assets)
    ctx = Table(assets.ctx_table)
    text = Table(assets.text_table) if assets.text_table is not None else None
    local, base_info = resolve_base(assets.base, need_transformer=True)
    transformer = Flux2Transformer2DModel.from_pretrained(local, subfolder="transformer", torch_dtype=torch.float32)
    vae_dtype = torch.bfloat16 if flux.vae_dtype == "bf16" else torch.float32
    vae = AutoencoderKLFlux2.from_pretrained(local, subfolder="vae", torch_dtype=vae_dtype)
    _check_tables(config, assets, ctx, text, int(transformer.config.joint_attention_dim))

    vae = vae.to(device).eval().requires_grad_(False)
    transformer = transformer.to(device).train().requires_grad_(True)
    if flux.grad_checkpointing:
        enable_block_checkpointing(transformer)
    if config.fsdp and config.world_size > 1:
        shard_student(transformer)
    battery = load_battery(config, device)
    bundles = load_bundles(config, assets, battery, text.shape[1] if text is not None else None, device)
    renderer = OneStepFlux(transformer, vae, autocast=flux.autocast)
    return FluxTask(
        config=config, student=transformer, renderer=renderer, battery=battery, bundles=bundles, ctx_table=ctx,
        text_table=text, device=device, latent_shape=renderer.latent_shape(flux.resolution), assets=assets,
        info={"base": base_info},
    )
