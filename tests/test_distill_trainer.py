"""Trainer: golden loss curve, exact resume, skipped non-finite steps, config validation, CLI."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rdmeval.distill.__main__ import main as distill_main
from rdmeval.distill.config import ConfigError, get_config
from rdmeval.distill.golden import debug_loss_curve, parse_curve
from rdmeval.distill.toy import build_toy_task
from rdmeval.distill.trainer import CheckpointError, Trainer

GOLDEN = Path(__file__).parent / "assets" / "distill" / "debug_cpu.txt"


def _trainer(**changes) -> Trainer:
    cfg = replace(get_config("debug"), **changes)
    return Trainer(cfg, build_toy_task(cfg))


def test_debug_loss_curve_matches_golden():
    """Regenerate with: python -m rdmeval.distill.golden tests/assets/distill/debug_cpu.txt"""
    golden = parse_curve(GOLDEN.read_text())
    curve = debug_loss_curve(len(golden))
    assert [s for s, _ in curve] == [s for s, _ in golden] == list(range(1, len(golden) + 1))
    for (step, loss), (_, expected) in zip(curve, golden):
        assert loss == pytest.approx(expected, rel=1e-6, abs=1e-9), f"step {step}"


def test_checkpoint_round_trip_resumes_bit_exactly(tmp_path):
    straight = _trainer()
    straight_losses = [straight.train_step().loss for _ in range(4)]

    first = _trainer()
    losses = [first.train_step().loss for _ in range(2)]
    saved_rng = torch.get_rng_state()
    first.save_checkpoint(tmp_path / "ckpt.pt")
    torch.manual_seed(999)  # the global RNG state is part of the checkpoint
    resumed = _trainer()
    resumed.load_checkpoint(tmp_path / "ckpt.pt")
    assert resumed.step == 2
    assert torch.equal(torch.get_rng_state(), saved_rng)
    losses += [resumed.train_step().loss for _ in range(2)]
    assert losses == straight_losses
    for name, value in straight.task.student.state_dict().items():
        assert torch.equal(resumed.task.student.state_dict()[name], value), name
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert set(state) >= {"model", "optimizer", "step", "rng", "config"} and state["optimizer"]["state"]


def test_checkpoint_from_another_config_or_missing_is_refused(tmp_path):
    t = _trainer()
    t.train_step()
    t.save_checkpoint(tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointError, match="lr"):
        _trainer(lr=1e-3).load_checkpoint(tmp_path / "ckpt.pt")
    _trainer(steps=100).load_checkpoint(tmp_path / "ckpt.pt")  # more steps is a valid resume
    with pytest.raises(CheckpointError, match="does not exist"):
        _trainer().load_checkpoint(tmp_path / "nope.pt")


def test_non_finite_loss_skips_the_update():
    t = _trainer()
    before = {n: p.detach().clone() for n, p in t.task.student.named_parameters()}
    encode = t.task.encode
    t.task.encode = lambda chunk: {n: f * float("nan") for n, f in encode(chunk).items()}
    r = t.train_step()
    assert r.skipped and r.step == 1
    for n, p in t.task.student.named_parameters():
        assert torch.equal(p, before[n])
    t.task.encode = encode
    r = t.train_step()
    assert not r.skipped
    assert any(not torch.equal(p, before[n]) for n, p in t.task.student.named_parameters())


def test_grad_clip_bounds_the_applied_gradient():
    t = _trainer(grad_clip=1e-4)
    r = t.train_step()
    assert r.grad_norm > 1e-4
    total = torch.sqrt(sum((p.grad**2).sum() for p in t.task.student.parameters()))
    assert float(total) == pytest.approx(1e-4, rel=1e-3)


def test_config_validation_names_the_field():
    cfg = get_config("debug")
    with pytest.raises(ConfigError, match="rollout_size"):
        replace(cfg, grad_accum=3)
    with pytest.raises(ConfigError, match="lr"):
        replace(cfg, lr=0.0)
    with pytest.raises(ConfigError, match="encoder_weights"):
        replace(cfg, encoder_weights=(1.0,))
    with pytest.raises(ConfigError, match="unknown training config 'nope'"):
        get_config("nope")
    flux = get_config("flux_geall")
    assert flux.rollout_size == flux.batch_size * flux.world_size * flux.grad_accum == 10240
    assert flux.with_world_size(32).grad_accum == 40  # rollout kept, accum recomputed
    with pytest.raises(ConfigError, match="world_size"):
        Trainer(replace(cfg, world_size=2, grad_accum=2), build_toy_task(cfg))


def test_cli_trains_writes_losses_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert distill_main(["--config", "debug", "--steps", "2", "--out", str(out)]) == 0
    assert distill_main(["--config", "debug", "--steps", "4", "--out", str(out), "--resume"]) == 0
    curve = parse_curve((out / "losses.txt").read_text())
    golden = parse_curve(GOLDEN.read_text())[:4]
    assert [s for s, _ in curve] == [1, 2, 3, 4]
    assert [l for _, l in curve] == pytest.approx([l for _, l in golden], rel=1e-6)
    assert distill_main(["--config", "flux_geall", "--out", str(tmp_path / "f")]) == 2
    assert "only toy configs" in capsys.readouterr().err
