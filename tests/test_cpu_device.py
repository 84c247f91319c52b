"""Device honesty: without CUDA a real-size klein pipeline warns once, before loading, with the expected
time per image; ``--device cpu`` and the tiny fixture do not warn; an unreachable hub id is one line.

The real-size pipeline is its configs only (klein-4B's DiT, the FLUX.2 VAE, Qwen3-4B), written here:
the cost estimate needs nothing else, and loading then fails on the missing weights, after the warning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from rdmeval.cli.main import main
from rdmeval.errors import RdmevalError
from rdmeval.generators import cpu_cost
from rdmeval.generators.cpu_cost import ImageCost, cpu_message, image_cost
from rdmeval.generators.klein import KleinGenerator, resolve_base

KLEIN_4B_DIT = {  # the klein-4B transformer config (docs/generators.md; diffusers' conversion script)
    "_class_name": "Flux2Transformer2DModel", "patch_size": 1, "in_channels": 128, "num_layers": 5, "num_single_layers": 20,
    "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 7680, "timestep_guidance_channels": 256,
    "mlp_ratio": 3.0, "axes_dims_rope": [32, 32, 32, 32], "rope_theta": 2000, "eps": 1e-6, "guidance_embeds": False,
}
QWEN3_4B = {  # Qwen/Qwen3-4B config.json (the fields that set the shapes)
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 151936, "hidden_size": 2560,
    "intermediate_size": 9728, "num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8,
    "head_dim": 128, "max_position_embeddings": 40960, "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "rope_theta": 1000000,
}
#: Qwen3-4B decoder layer, counted by hand from the config: q, k, v, o projections, q/k norms (head_dim each),
#: the gated MLP (3 matrices) and two RMSNorms.
QWEN3_4B_LAYER = 2560 * 4096 * 2 + 2560 * 1024 * 2 + 128 * 2 + 3 * 2560 * 9728 + 2 * 2560


@pytest.fixture(scope="module")
def klein_configs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("klein-4b-configs")
    files = {"model_index.json": {"_class_name": "Flux2KleinPipeline", "is_distilled": True},
             "transformer/config.json": KLEIN_4B_DIT, "vae/config.json": {"_class_name": "AutoencoderKLFlux2"},
             "text_encoder/config.json": QWEN3_4B}
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(json.dumps(content))
    return root


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(cpu_cost, "_warned", set())  # "once per process": a fresh process for each test


def test_image_cost_of_klein_4b_from_its_configs(klein_configs):
    cost = image_cost(klein_configs, height=512, width=512, ctx_len=512, text_layers=(9, 18, 27))
    assert cost.dit_params == 3_875_544_576  # the real klein-4B DiT (docs/generators.md)
    # Per-image costs the performance issue stated (to 4 significant digits): DiT 10.17 TFLOP per
    # step at 512 px and ctx 512, VAE decode 2.52 TFLOP.
    assert abs(cost.dit_flop_per_step - 10.17e12) <= 0.005e12
    assert abs(cost.vae_flop - 2.52e12) <= 0.005e12
    assert cost.text_flop == 2 * 27 * QWEN3_4B_LAYER * 512  # the 27 layers run, 2 FLOP per weight and token
    short = image_cost(klein_configs, height=512, width=512, ctx_len=48, text_layers=(9, 18, 27))
    assert short.dit_flop_per_step < cost.dit_flop_per_step and short.vae_flop == cost.vae_flop
    assert short.flop(4) == pytest.approx(4 * short.dit_flop_per_step + short.text_flop + short.vae_flop, rel=1e-12)


def test_cpu_message_states_time_and_basis():
    cost = ImageCost(dit_params=3_875_544_576, dit_width=3072, tokens=1072, dit_flop_per_step=6.93e12, text_flop=0.26e12,
                     vae_flop=2.52e12)
    msg = cpu_message(cost, preset="teacher", steps=4, height=512, width=512, precision="faithful", flops=100e9)
    # (4 x 6.93 + 0.26 + 2.52) TFLOP / 100 GFLOP/s = 305 s; at 1 step 97 s
    assert "about 5 min per 512x512 image at 4 steps (2 min at 1 step)" in msg
    assert "30.5 TFLOP per image from the pipeline's size (3.88B-parameter DiT" in msg
    assert "100 GFLOP/s this CPU reached just now on a DiT-sized layer in the faithful regime" in msg
    assert "--device cpu" in msg and "\n" not in msg


def test_measured_speed_is_the_rate_of_the_timed_layer(monkeypatch):
    clock = iter(range(100))  # every perf_counter() call is one second later: each timed product takes 1 s
    monkeypatch.setattr(cpu_cost.time, "perf_counter", lambda: float(next(clock)))
    flops = cpu_cost.measure_flops(tokens=8, width=16, weight_dtype=torch.float32, autocast=True, budget_s=0.5)
    assert flops == 2 * 8 * 16 * 16  # FLOPs of (8, 16) @ (16, 16), over 1 s


def test_without_cuda_a_real_pipeline_warns_once_before_loading(klein_configs, no_cuda, caplog):
    caplog.set_level(logging.INFO, logger="rdmeval")
    for _ in range(2):
        with pytest.raises(Exception):  # the configs have no weights: loading fails, after the warning
            KleinGenerator(preset="teacher", base=str(klein_configs), steps=4)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("rdmeval")]
    assert len(warned) == 1
    assert warned[0].getMessage().startswith("no CUDA device: FLUX.2 [klein] teacher will run on the CPU, about ")
    first_load = next(i for i, r in enumerate(caplog.records) if r.getMessage().startswith("loading FLUX.2"))
    assert caplog.records.index(warned[0]) < first_load


def test_explicit_cpu_does_not_warn(klein_configs, no_cuda, caplog):
    with pytest.raises(Exception):
        KleinGenerator(preset="teacher", base=str(klein_configs), steps=4, device="cpu")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("rdmeval")]


def test_the_tiny_fixture_does_not_warn(tiny_klein, no_cuda, caplog):
    gen = KleinGenerator(preset="naive", base=str(tiny_klein["base"]), steps=1, precision="fp32", height=32, width=32)
    assert gen.device.type == "cpu"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("rdmeval")]


def test_cli_warning_comes_first_then_the_error(klein_configs, no_cuda, tmp_path, capsys):
    rc = main(["generate", "--model", "teacher", "--base", str(klein_configs), "--prompts", "demo-geneval",
               "--out", str(tmp_path / "run"), "--no-progress"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and err[-1].startswith("rdmeval: error: ")
    assert err[0].startswith("rdmeval: warning: no CUDA device: FLUX.2 [klein] teacher will run on the CPU, about ")
    assert sum("no CUDA device" in line for line in err) == 1


def test_unreachable_hub_id_is_one_line_saying_how_to_pass_a_folder(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # hub calls fail at once
    with pytest.raises(RdmevalError) as exc:
        resolve_base("rdmeval-tests/no-such-pipeline", need_transformer=True)
    msg = str(exc.value)
    assert "\n" not in msg and "weights are fetched from the Hugging Face hub" in msg
    assert "--base FOLDER" in msg and "hf download rdmeval-tests/no-such-pipeline --local-dir FOLDER" in msg


def test_cli_hub_errors_online_and_offline(monkeypatch, tmp_path, capsys):
    import huggingface_hub

    argv = ["generate", "--model", "teacher", "--base", "rdmeval-tests/no-such-pipeline", "--prompts", "demo-geneval",
            "--out", str(tmp_path / "run"), "--no-progress"]
    # offline (HF_HUB_OFFLINE=1, set for every test): the preflight says it before anything loads
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fetched from the hub" in err[0] and "--base FOLDER" in err[0]

    def unreachable(**_kwargs):
        raise ConnectionError("Max retries exceeded with url: /api/models/rdmeval-tests/no-such-pipeline\n(more)")

    # online, but the hub cannot be reached: the one-line error of the load
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("RDMEVAL_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("rdmeval: error: --base rdmeval-tests/no-such-pipeline: the pipeline's weights are fetched "
                              "from the Hugging Face hub, which did not give them (ConnectionError: Max retries exceeded")
    assert "--base FOLDER" in err[-1] and not any("Traceback" in line for line in err)
