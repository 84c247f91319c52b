"""benchmarks/perf/field_gpu.py (run on a lent GPU): it imports, answers --help, and its real shapes agree
with each other and with published parameter counts (checked on the meta device, no memory)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rdmeval.generators.diffusers_presets import PRESETS

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "field_gpu.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("field_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help(script, capsys):
    with pytest.raises(SystemExit) as done:
        script.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--presets" in out and "--smoke" in out and "images/s" in out


def test_unknown_preset_is_refused(script, capsys):
    assert script.main(["--presets", "sdxl-turbbo", "--smoke"]) == 2
    assert "unknown sdxl-turbbo" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(set(PRESETS) & {"flux1-schnell", "sdxl-turbo", "dmd2-sdxl-1step"}))
def test_denoiser_shapes_give_the_published_parameter_count(script, name):
    assert script.denoiser_params(name) == script.KNOWN_PARAMS[name]


def test_component_widths_fit_together(script):
    """Each denoiser reads its text encoders' widths (a typo in one config would only fail on the GPU)."""
    assert script.FLUX_SCHNELL_DIT["joint_attention_dim"] == script.T5_XXL["d_model"]
    assert script.FLUX_SCHNELL_DIT["pooled_projection_dim"] == script.CLIP_L["hidden_size"]
    assert script.SD35_LARGE_DIT["joint_attention_dim"] == script.T5_XXL["d_model"]
    assert script.SD35_LARGE_DIT["pooled_projection_dim"] == script.CLIP_L["projection_dim"] + script.CLIP_G["projection_dim"]
    assert script.SDXL_UNET["cross_attention_dim"] == script.CLIP_L["hidden_size"] + script.CLIP_G["hidden_size"]
    assert script.SDXL_UNET["projection_class_embeddings_input_dim"] == (
        6 * script.SDXL_UNET["addition_time_embed_dim"] + script.CLIP_G["projection_dim"])
    assert script.SANA_SPRINT_1600M["caption_channels"] == script.GEMMA2_2B["hidden_size"]
    assert script.SANA_SPRINT_1600M["in_channels"] == script.DC_AE_F32["latent_channels"]
    assert sum(script.FLUX_SCHNELL_DIT["axes_dims_rope"]) == script.FLUX_SCHNELL_DIT["attention_head_dim"]


def test_sana_instruction_costs_about_as_many_tokens_as_gemma(script):
    import inspect

    from diffusers import SanaSprintPipeline

    chi = "\n".join(inspect.signature(SanaSprintPipeline.__call__).parameters["complex_human_instruction"].default)
    n = len(script.gemma_like_tokenizer().encode(chi))
    words = len(chi.split())
    assert 0.8 * words <= n <= 2 * words  # about a token per word, like a real subword vocabulary (not one per byte)
