"""End to end through the CLI: fixture -> tiny assets -> `rdmeval train --config flux_tiny` -> `rdmeval train
export` -> `rdmeval generate --model student`; the generated image is the trainer's own render of that prompt
and noise, and not the naive 1-step image."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rdmeval.cli.main import main
from rdmeval.distill.checkpoints import newest_milestone, read_checkpoint
from rdmeval.distill.config import get_config
from rdmeval.distill.flux_model import OneStepFlux
from rdmeval.distill.flux_task import build_flux_task, resolve_assets
from rdmeval.generators.base import to_uint8
from rdmeval.generators.klein import KleinGenerator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RES = 64


def _generate(model: str, tk: Path, prompts: Path, out: Path, *extra: str) -> np.ndarray:
    argv = ["generate", "--model", model, "--base", str(tk / "klein"), "--prompts", str(prompts), "--out", str(out),
            "--resolution", str(RES), "--device", "cpu", "--rng-device", "cpu", "--precision", "fp32",
            "--seed-policy", "one-call:0", "--batch-size", "1", "--no-progress", *extra]
    assert main(argv) == 0
    return np.asarray(Image.open(out / "00000" / "samples" / "0000.png").convert("RGB"))


def _render(task, state: dict[str, torch.Tensor], noise: torch.Tensor, ctx: torch.Tensor) -> np.ndarray:
    """The trainer's forward (OneStepFlux) with ``state`` in a frozen copy of its student (frozen, as generate
    holds its DiT: trainable weights may take other CPU GEMM paths), to uint8 as generate saves PNGs."""
    student = copy.deepcopy(task.student).eval().requires_grad_(False)
    student.load_state_dict(state)
    with torch.no_grad():
        return to_uint8(OneStepFlux(student, task.renderer.vae, autocast=False)(noise, ctx), "round")[0]


def test_fixture_to_training_to_export_to_generate(tmp_path):
    tk, assets, run = tmp_path / "tk", tmp_path / "assets", tmp_path / "run"
    assert main(["fixtures", "tiny-klein", str(tk)]) == 0
    assert main(["train", "tiny-assets", "--klein", str(tk), "--out", str(assets), "--no-progress"]) == 0
    assert main(["train", "--config", "flux_tiny", "--assets", str(assets), "--out", str(run), "--no-progress"]) == 0
    export = run / "model.safetensors"
    assert main(["train", "export", str(run), "--out", str(export)]) == 0

    cfg = get_config("flux_tiny")
    step, ckpt = newest_milestone(run)
    assert step == cfg.steps
    prompt = (assets / "pool.txt").read_text().splitlines()[5]
    prompts = tmp_path / "prompt.txt"
    prompts.write_text(prompt + "\n")
    student_png = _generate("student", tk, prompts, tmp_path / "student", "--weights", str(export))
    naive_png = _generate("naive", tk, prompts, tmp_path / "naive")
    manifest = json.loads((tmp_path / "student" / "manifest.json").read_text())
    assert manifest["request"]["model"]["weights"]["naming"] == "bfl"

    # The trainer's render of that prompt and noise: the one-call seed policy draws randn(1, 128, 4, 4) from a
    # CPU generator seeded 0; the prompt is encoded alone, as generate encodes it; the weights are the last
    # milestone's, rounded to bf16 as the export stores them. Same operations in fp32 -> the same image.
    task = build_flux_task(cfg, resolve_assets(cfg, assets=assets))
    noise = torch.randn((1, 128, RES // 16, RES // 16), generator=torch.Generator().manual_seed(0))
    encoder = KleinGenerator(preset="naive", base=str(tk / "klein"), steps=1, precision="fp32", height=RES, width=RES, device="cpu")
    with torch.inference_mode():
        ctx = encoder.prompts([prompt]).clone()
    # the pool's ctx table holds the same embedding (encoded in a batch of 8: fp32 last bits may differ)
    torch.testing.assert_close(task.ctx(torch.tensor([5])), ctx, rtol=0, atol=1e-5)
    trained = read_checkpoint(ckpt)["model"]
    rounded = {k: v.to(torch.bfloat16).float() for k, v in trained.items()}
    assert np.array_equal(_render(task, rounded, noise, ctx), student_png)

    # The milestone itself (fp32, diffusers names inside the training checkpoint) is a --weights file too, and
    # rdmeval sweep reads the run folder as a series of steps: the trainer's render without the bf16 rounding.
    from rdmeval.sweep.checkpoints import find_checkpoints

    assert [c.step for c in find_checkpoints(str(run)).checkpoints] == list(range(cfg.save_freq, cfg.steps + 1, cfg.save_freq))
    milestone_png = _generate("student", tk, prompts, tmp_path / "milestone", "--weights", str(ckpt))
    assert np.array_equal(_render(task, trained, noise, ctx), milestone_png)

    # ... and not the naive 1-step image, which is the trainer's render at step 0 (the base DiT).
    base = {k: v.detach().clone() for k, v in task.student.state_dict().items()}
    assert np.array_equal(_render(task, base, noise, ctx), naive_png)
    moved = np.abs(student_png.astype(int) - naive_png.astype(int)).mean()
    # not a rounding artefact of the bf16 export: rounding the base weights alone moves the image far less
    rounding = np.abs(_render(task, {k: v.to(torch.bfloat16).float() for k, v in base.items()}, noise, ctx).astype(int)
                      - naive_png.astype(int)).mean()
    assert moved > 1.0 and moved > 5 * rounding, (moved, rounding)
