"""The tiny klein fixture: offline, structurally faithful, deterministic; and its CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from rdmeval.errors import RdmevalError
from rdmeval.fixtures import build_tiny_klein


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_klein(tmp_path_factory.getbasetemp() / "tiny-klein")


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_reloads_offline_with_the_real_structure(tiny, monkeypatch):
    from diffusers import Flux2KleinPipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = Flux2KleinPipeline.from_pretrained(tiny["base"])
    assert pipe.config.is_distilled
    dit = pipe.transformer.config
    assert dit.in_channels == 128 and not dit.guidance_embeds and dit.num_layers >= 1 and dit.num_single_layers >= 1
    assert sum(dit.axes_dims_rope) == dit.attention_head_dim and len(dit.axes_dims_rope) == 4
    te = pipe.text_encoder.config
    assert te.num_hidden_layers == 36 and dit.joint_attention_dim == 3 * te.hidden_size
    vae = pipe.vae
    assert len(vae.config.block_out_channels) == 4 and vae.config.latent_channels == 32  # 8x conv + 2x2 packing = 16x
    mean, var = vae.bn.running_mean, vae.bn.running_var
    assert mean.std() > 0.1 and var.min() >= 0.2 and var.max() <= 2.2 and var.std() > 0.2  # non-trivial BN stats
    norms = [p for n, p in pipe.transformer.named_parameters() if "norm" in n]
    assert norms and all(not torch.all(p == 1) for p in norms)  # norm scales are random too


def test_student_files_exist_in_both_formats_and_namings(tiny):
    from safetensors import safe_open

    for key in ("student_bfl_safetensors", "student_bfl_pth", "student_diffusers_safetensors", "student_diffusers_pth"):
        assert Path(tiny[key]).is_file(), key
    with safe_open(str(tiny["student_bfl_safetensors"]), "pt") as f:
        keys = list(f.keys())
        assert all(k.startswith("model.") for k in keys) and f.get_tensor(keys[0]).dtype == torch.bfloat16
    ckpt = torch.load(tiny["student_bfl_pth"], weights_only=True)
    assert set(ckpt) == {"model", "model_ema", "optimizer"} and ckpt["model_ema"] is None
    assert set(ckpt["model"]) == set(keys) and all(v.dtype == torch.float32 for v in ckpt["model"].values())


def test_deterministic(tiny, tmp_path):
    again = build_tiny_klein(tmp_path / "again")
    assert _hashes(again["root"]) == _hashes(tiny["root"])


def test_cli_builds_and_reuses(tiny, tmp_path, capsys):
    from rdmeval.cli.main import main

    assert main(["fixtures", "tiny-klein", str(tiny["root"])]) == 0
    out = capsys.readouterr().out
    assert "already present" in out and str(tiny["student_bfl_safetensors"]) in out
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    with pytest.raises(RdmevalError, match="not a tiny-klein fixture"):
        build_tiny_klein(tmp_path / "busy")
    assert main(["fixtures", "tiny-klein", str(tmp_path / "busy")]) == 2


def test_fixtures_help_keeps_the_tiny_field_examples_line_break(capsys):
    """The tiny-field example's backslash-newline used to join the two lines (a stray run of spaces)."""
    from rdmeval.cli.main import main

    with pytest.raises(SystemExit):
        main(["fixtures", "--help"])
    out = capsys.readouterr().out
    assert "--prompts demo-captions \\\n      --out /tmp/tiny-turbo" in out
