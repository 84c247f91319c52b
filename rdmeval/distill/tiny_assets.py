"""The assets of ``flux_tiny``, built from the tiny klein fixture in seconds (``rdmeval train tiny-assets``).

What the released run precomputes at scale, in miniature and with the same code paths:

- ``ctx/``: the prompt pool through the fixture's Qwen3 (layers 9/18/27, ctx_len 48), exactly as
  ``rdmeval generate`` encodes a prompt, stored as float32 (the released pool is float16);
- ``tau/``: one random unit row per prompt (the SigLIP2 text tower's place; seeded by the prompt's
  text, so equal prompts get equal rows), row-aligned with ``ctx/``;
- ``bundles/<encoder>.safetensors``: the 4-step teacher (the fixture's base, ``KleinGenerator``'s
  teacher preset) renders every pool prompt ``renders_per_prompt`` times as uint8 images, like the
  released reference PNGs; the tiny battery encodes them and ``build_reference_bundle`` makes a
  joint bundle per encoder ([φ | β·τ], β = σ_img).
- ``assets.json``: the base pipeline folder and the config they are for.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from rdmeval.io import atomic_write_json, atomic_write_text
from rdmeval.distill.battery import tiny_battery
from rdmeval.distill.config import TrainConfig, get_config
from rdmeval.distill.flux_task import ASSETS_FILE, ASSETS_FORMAT, AssetError
from rdmeval.distill.reference import build_reference_bundle, save_bundle
from rdmeval.distill.tables import Table, write_table

_COLORS = ("red", "blue", "green", "white")
_THINGS = ("cat", "dog", "bicycle", "umbrella")
# 16 prompts in the fixture tokenizer's vocabulary (its BPE was trained on these words)
TINY_POOL: tuple[str, ...] = tuple(f"a photo of a {c} {t}" for c in _COLORS for t in _THINGS)
TEXT_DIM = 8


def fixture_base(klein: str | os.PathLike[str]) -> Path:
    """The pipeline folder of a tiny-klein fixture: ``DIR/klein`` for the fixture root, or ``DIR`` itself."""
    root = Path(klein).expanduser().resolve()
    for candidate in (root / "klein", root):
        if (candidate / "model_index.json").is_file():
            return candidate
    raise AssetError(f"--klein {klein}: not a tiny-klein fixture (no model_index.json); build it with rdmeval fixtures tiny-klein {klein}")


def unit_rows(prompts: Sequence[str], dim: int = TEXT_DIM) -> torch.Tensor:
    """One N(0, I)/‖·‖ row per prompt, seeded by the prompt's text."""
    rows = []
    for p in prompts:
        seed = int.from_bytes(hashlib.sha256(p.encode("utf-8")).digest()[:8], "little") >> 1
        rows.append(torch.randn(dim, generator=torch.Generator().manual_seed(seed)))
    return F.normalize(torch.stack(rows), dim=1)


def _teacher(base: Path, config: TrainConfig):
    from rdmeval.generators.klein import KleinGenerator

    res = config.flux.resolution
    return KleinGenerator(preset="teacher", base=str(base), steps=4, ctx_len=config.flux.ctx_len, precision="fp32",
                          height=res, width=res, device="cpu")


def build_tiny_assets(
    klein: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    config: TrainConfig | None = None,
    pool: Sequence[str] = TINY_POOL,
    renders_per_prompt: int = 4,
    num_landmarks: int = 16,
    sigma_scale: float = 1.0,
    seed: int = 0,
    log: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Build (or finish) the ``flux_tiny`` assets of the fixture ``klein`` in ``out``; returns ``out``.

    ``sigma_scale`` is 1.0, not the released 0.25: with a rollout of 8 the cold kernel leaves only
    the 1/N diagonal of k_gg (as for the toy).
    """
    config = config or get_config("flux_tiny")
    base = fixture_base(klein)
    out = Path(out)
    manifest = {
        "format": ASSETS_FORMAT, "config": config.name, "base": str(base), "pool": len(pool),
        "renders_per_prompt": renders_per_prompt, "num_landmarks": num_landmarks, "sigma_scale": sigma_scale, "seed": seed,
    }
    if _complete(out, manifest, config):
        log(f"flux_tiny assets already complete in {out}")
        return out
    out.mkdir(parents=True, exist_ok=True)
    teacher = _teacher(base, config)
    log(f"ctx table: {len(pool)} prompts through the fixture's Qwen3")
    write_table(out / "ctx", pool, teacher.prompts, shard_rows=8, batch_size=8, dtype="float32")
    write_table(out / "tau", pool, unit_rows, shard_rows=8, batch_size=8, dtype="float32")
    text = Table(out / "tau")

    battery = tiny_battery(seed=config.flux.battery_seed, names=config.encoders)
    missing = [n for n in config.encoders if not (out / "bundles" / f"{n}.safetensors").is_file()]
    if missing:
        n = len(pool) * renders_per_prompt
        log(f"bundles: {n} teacher renders (4 steps) encoded by {len(battery)} tiny encoders")
        idx = torch.arange(n) % len(pool)
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn((n, *teacher.latent_shape), generator=g)
        images = torch.from_numpy(teacher.generate([pool[i] for i in idx], noise)).permute(0, 3, 1, 2).float() / 255.0
        tau = text[idx]
        with torch.no_grad():
            for name in missing:
                bundle = build_reference_bundle(battery[name](images), tau, num_landmarks=num_landmarks, sigma_scale=sigma_scale,
                                                seed=seed, fit_n=n, krr_n=n)
                save_bundle(out / "bundles" / f"{name}.safetensors", bundle)
    atomic_write_text(out / "pool.txt", "".join(p + "\n" for p in pool))
    atomic_write_json(out / ASSETS_FILE, manifest)  # last: its presence marks the assets complete
    return out


def _complete(out: Path, manifest: dict, config: TrainConfig) -> bool:
    try:
        done = json.loads((out / ASSETS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if done != manifest:
        raise AssetError(f"{out} holds flux_tiny assets built with other settings ({out / ASSETS_FILE}); use another --out or remove it")
    return all((out / "bundles" / f"{n}.safetensors").is_file() for n in config.encoders)
