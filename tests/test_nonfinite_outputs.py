"""A model whose output holds NaN or Inf stops generation with an error naming the checkpoint and the
tensor; the run is never marked complete (to_uint8 would otherwise save black images without a word).

The tiny klein fixture is loaded (its weights are finite, so the load-time check passes) and one weight
is then poisoned in place: of the DiT (the latents after the step are NaN) or of the VAE decoder (the
latents are finite, the decoded image is not).
"""

from __future__ import annotations

import json

import pytest
import torch

from rdmeval.generators.finite import NonFiniteError
from rdmeval.generators.klein import KleinGenerator
from rdmeval.generators.noise import GENEVAL_SEEDS
from rdmeval.generation import generate_run
from rdmeval.prompts import load_prompt_set

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _poison(module: torch.nn.Module, value: float) -> str:
    name, param = next((n, p) for n, p in module.named_parameters() if p.ndim >= 2)
    with torch.no_grad():
        param.view(-1)[0] = value
    return name


@pytest.mark.parametrize("preset, precision, part, value, tensor", [
    ("naive", "fp32", "transformer", float("nan"), "the latents after denoising step 1 of 1 (DiT output)"),
    ("student", "faithful", "transformer", float("inf"), "the latents after denoising step 1 of 1 (DiT output)"),
    ("naive", "fp32", "vae", float("nan"), "the decoded image (VAE output)"),
])
def test_non_finite_output_stops_the_run_naming_checkpoint_and_tensor(tiny_klein, tmp_path, preset, precision, part, value, tensor):
    weights = str(tiny_klein["student_bfl_safetensors"]) if preset == "student" else None
    gen = KleinGenerator(preset=preset, base=str(tiny_klein["base"]), steps=1, weights=weights, precision=precision,
                         height=32, width=32, device="cpu")
    _poison(gen.pipe.transformer if part == "transformer" else gen.pipe.vae.decoder, value)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteError) as err:
        generate_run(gen, load_prompt_set("demo-geneval"), out, n_per_prompt=2, seed_policy=GENEVAL_SEEDS,
                     rng_device="cpu", batch_size=2, progress=False)
    msg = str(err.value)
    checkpoint = f"--weights {gen.weights_path}" if weights else f"--base {tiny_klein['base']} (model naive)"
    assert checkpoint in msg and tensor in msg and "NaN" in msg and "Inf values" in msg
    assert "00000/samples/0000.png to 00000/samples/0001.png" in msg and "--precision fp32" in msg
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False and not list(out.glob("*/samples/*.png"))


def test_cli_reports_a_non_finite_output_in_one_line(tiny_klein, tmp_path, capsys, monkeypatch):
    from rdmeval.cli.main import main

    setup = KleinGenerator._setup

    def poisoned_setup(self, **kw):
        setup(self, **kw)
        _poison(self.pipe.transformer, float("nan"))

    monkeypatch.setattr(KleinGenerator, "_setup", poisoned_setup)
    out = tmp_path / "run"
    argv = ["generate", "--model", "student", "--weights", str(tiny_klein["student_bfl_safetensors"]), "--base",
            str(tiny_klein["base"]), "--prompts", "demo-geneval", "--out", str(out), "--resolution", "32",
            "--device", "cpu", "--rng-device", "cpu", "--precision", "fp32", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--weights " in err and "(DiT output) holds" in err and "Traceback" not in err
    assert json.loads((out / "manifest.json").read_text())["complete"] is False
