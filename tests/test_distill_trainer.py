"""Trainer: golden loss curve, exact resume, skipped non-finite steps, config validation, CLI."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rdmeval.distill.__main__ import main as distill_main
from rdmeval.distill.config import ConfigError, get_config
from rdmeval.distill.golden import debug_loss_curve, parse_curve, parse_rel_tol
from rdmeval.distill.toy import build_toy_task
from rdmeval.distill.trainer import CheckpointError, Trainer

GOLDEN = Path(__file__).parent / "assets" / "distill" / "debug_cpu.txt"


def _trainer(**changes) -> Trainer:
    cfg = replace(get_config("debug"), **changes)
    return Trainer(cfg, build_toy_task(cfg))


def _max_rel_deviation(curve, golden) -> float:
    assert [s for s, _ in curve] == [s for s, _ in golden] == list(range(1, len(golden) + 1))
    return max(abs(loss - expected) / abs(expected) for (_, loss), (_, expected) in zip(curve, golden))


def test_debug_loss_curve_matches_golden():
    """Regenerate with: python -m rdmeval.distill.golden tests/assets/distill/debug_cpu.txt

    The tolerance is stored in the golden file (fp64 curve; see rdmeval/distill/golden.py for why).
    """
    text = GOLDEN.read_text()
    golden, rel_tol = parse_curve(text), parse_rel_tol(text)
    assert len(golden) == 8 and rel_tol <= 1e-8
    assert _max_rel_deviation(debug_loss_curve(len(golden)), golden) <= rel_tol


@pytest.mark.parametrize(
    "change",
    [
        {"lr": 2 * get_config("debug").lr},  # step 1 is computed before any update: steps 2+ move
        {"toy": replace(get_config("debug").toy, sigma_scale=1.1)},  # a warmer kernel: every step moves
        {"seed": 1},  # other rollouts
    ],
    ids=["lr", "sigma", "seed"],
)
def test_a_real_change_moves_the_curve_far_outside_the_tolerance(change):
    """The golden tolerance is loose enough for other CPUs, yet any real change breaks it by orders of magnitude."""
    text = GOLDEN.read_text()
    golden, rel_tol = parse_curve(text)[:4], parse_rel_tol(text)
    assert _max_rel_deviation(debug_loss_curve(4, **change), golden) > 1e4 * rel_tol


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
    # 2 steps, then a resume for 2 more, equal 4 uninterrupted steps of the same (fp32) config in this
    # process: the same computation on the same machine, and resume restores every state bit-exactly.
    straight = _trainer(steps=4)
    expected = "".join(f"{r.step} {r.loss:.10e}\n" for r in (straight.train_step() for _ in range(4)))
    assert (out / "losses.txt").read_text() == expected
    # milestones at save_freq (4) and at each run's last step (2), kept
    assert sorted(p.name for p in out.glob("step_*.pt")) == ["step_0000002.pt", "step_0000004.pt"]
    # the real recipe runs from here too, given its assets; without them the error says what is missing
    assert distill_main(["--config", "flux_geall", "--out", str(tmp_path / "f")]) == 2
    assert "needs its ctx table: pass --assets DIR" in capsys.readouterr().err


@pytest.mark.parametrize(("flag", "value"), [("--batch-size", "0"), ("--steps", "0"), ("--steps", "-3")])
def test_cli_rejects_non_positive_steps_and_batch_size_naming_the_flag(tmp_path, capsys, flag, value):
    from rdmeval.cli.main import main

    assert main(["train", "--config", "debug", "--out", str(tmp_path / "r"), flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{flag} must be >= 1" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_resume_past_the_asked_steps_is_refused_not_a_silent_no_op(tmp_path, capsys):
    from rdmeval.cli.main import main

    out = tmp_path / "run"
    assert main(["train", "--config", "debug", "--steps", "4", "--out", str(out), "--no-progress"]) == 0
    config = (out / "config.json").read_text()
    capsys.readouterr()
    assert main(["train", "--config", "debug", "--steps", "2", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "already at step 4" in err and "--steps 2" in err and "rdmeval train export" in err
    assert (out / "config.json").read_text() == config  # the run's record is left as it was
    assert main(["train", "--config", "debug", "--steps", "4", "--out", str(out), "--resume"]) == 0  # at its end: nothing to do


def test_ctrl_c_says_how_to_continue_the_command_that_was_stopped(tmp_path, capsys, monkeypatch):
    import rdmeval.distill.checkpoints as checkpoints
    import rdmeval.distill.run as run
    from rdmeval.cli.main import main

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "train", stopped)
    assert main(["train", "--config", "debug", "--out", str(tmp_path / "r")]) == 130
    err = capsys.readouterr().err
    assert "--resume" in err and "images" not in err
    assert distill_main(["--config", "debug", "--out", str(tmp_path / "r")]) == 130
    assert "--resume" in capsys.readouterr().err
    monkeypatch.setattr(checkpoints, "resolve_checkpoint", stopped)
    assert main(["train", "export", str(tmp_path / "r"), "--out", str(tmp_path / "m.safetensors")]) == 130
    err = capsys.readouterr().err
    assert "run the export again" in err and "images" not in err


@pytest.mark.parametrize("extra", [["--assets", "somewhere"], ["--fsdp"], ["--bundles", "b", "--base", "x"], ["--device", "cuda"]])
def test_flux_flags_on_the_toy_are_refused_not_ignored(tmp_path, capsys, extra):
    from rdmeval.cli.main import main

    assert main(["train", "--config", "debug", "--out", str(tmp_path / "r"), *extra]) == 2
    err = capsys.readouterr().err
    assert "config debug trains the CPU toy" in err and extra[0] in err and "--config flux_tiny" in err
    assert not (tmp_path / "r").exists()


def test_fsdp_on_one_process_is_refused_not_ignored(tmp_path, capsys):
    from rdmeval.cli.main import main

    assert main(["train", "--config", "flux_tiny", "--out", str(tmp_path / "r"), "--fsdp"]) == 2
    err = capsys.readouterr().err
    assert "--fsdp" in err and "torchrun --nproc-per-node" in err and "drop --fsdp" in err
    assert not (tmp_path / "r").exists()
    # the docs say so too (they used to say that --fsdp does nothing on one rank)
    doc = " ".join((Path(__file__).parents[1] / "docs" / "distill.md").read_text(encoding="utf-8").split())
    assert "on one process `--fsdp` is refused" in doc and "`--fsdp` does nothing" not in doc


def test_train_without_config_lists_every_subcommand(capsys):
    from rdmeval.cli.main import main

    assert main(["train", "--config", "debug"]) == 2
    err = capsys.readouterr().err
    assert all(name in err for name in ("export", "tiny-assets", "tables", "import-released", "refprep"))


def test_an_empty_out_is_refused_not_the_working_directory(tmp_path, capsys, monkeypatch):
    from rdmeval.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", "debug", "--steps", "1", "--out", ""]) == 2  # e.g. --out "$RUN" with RUN unset
    assert "needs --config NAME and --out DIR" in capsys.readouterr().err
    assert distill_main(["--config", "debug", "--steps", "1", "--out", ""]) == 2
    assert "--out is empty" in capsys.readouterr().err
    assert main(["train", "tiny-assets", "--klein", "somewhere", "--out", ""]) == 2
    assert "one is empty" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_newest_milestone_says_how_to_resume_from_the_one_before(tmp_path, capsys):
    from rdmeval.cli.main import main

    out = tmp_path / "run"
    assert main(["train", "--config", "debug", "--out", str(out), "--no-progress"]) == 0  # milestones at 4 and 8
    newest = out / "step_0000008.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    capsys.readouterr()
    assert main(["train", "--config", "debug", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert str(newest) in err and "is damaged" in err and "the milestone before it is step_0000004.pt (train --resume then continues from it; export --step 4 picks it)" in err
    newest.unlink()
    assert main(["train", "--config", "debug", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert (out / "step_0000008.pt").is_file()


def test_a_flipped_byte_inside_a_milestone_is_found_by_its_recorded_sha256(tmp_path, capsys, monkeypatch):
    """torch.load reads a checkpoint with a damaged tensor byte without any error; the digest written beside each
    milestone (sha256sum format) makes resume and export refuse it."""
    import hashlib
    import zipfile

    from rdmeval.cli.main import main

    out = tmp_path / "run"
    assert main(["train", "--config", "debug", "--out", str(out), "--no-progress"]) == 0
    for step in (4, 8):
        ckpt = out / f"step_{step:07d}.pt"
        assert (out / f"{ckpt.name}.sha256").read_text() == f"{hashlib.sha256(ckpt.read_bytes()).hexdigest()}  {ckpt.name}\n"
    newest = out / "step_0000008.pt"
    with zipfile.ZipFile(newest) as z:  # a byte in the middle of a tensor's storage, not in the zip's own structure
        info = next(i for i in z.infolist() if "/data/" in i.filename and i.file_size >= 8)
    data = bytearray(newest.read_bytes())
    name_len, extra_len = int.from_bytes(data[info.header_offset + 26:][:2], "little"), int.from_bytes(data[info.header_offset + 28:][:2], "little")
    start = info.header_offset + 30 + name_len + extra_len  # past the member's local header (torch pads it for alignment)
    data[start + info.file_size // 2] ^= 0x40
    newest.write_bytes(bytes(data))
    torch.load(newest, weights_only=True)  # the premise: torch itself does not notice
    capsys.readouterr()
    import rdmeval.distill.run as run

    with monkeypatch.context() as m:  # found before any model is built (the real task loads for minutes)
        m.setattr(run, "build_task", lambda *a, **k: pytest.fail("the task was built before the milestone was checked"))
        assert main(["train", "--config", "debug", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{newest} is damaged" in err and "step_0000008.pt.sha256" in err and "the milestone before it is step_0000004.pt" in err
    assert main(["train", "export", str(out), "--out", str(tmp_path / "m.safetensors")]) == 2
    err = capsys.readouterr().err
    assert f"{newest} is damaged" in err and "export --step 4 picks it" in err
    # a milestone without a digest (written before digests were recorded) is read as before
    (out / "step_0000008.pt.sha256").unlink()
    (out / "step_0000008.pt").write_bytes(newest.read_bytes())
    assert main(["train", "--config", "debug", "--steps", "8", "--out", str(out), "--resume"]) == 0


def test_a_milestones_digest_record_a_replaced_file_and_a_link_to_it(tmp_path):
    """The message blames what is wrong: a record that holds no sha256 is named itself (the checkpoint may be fine);
    a file replaced on purpose is told how to bring its record along; a link is checked against the record beside
    the file it links to (a damaged file exported through a link was read unchecked)."""
    from rdmeval.distill.checkpoints import read_checkpoint, save_milestone, verify_checkpoint
    from rdmeval.io import digest_record

    ckpt = save_milestone({"step": 8, "w": torch.ones(16)}, tmp_path / "run")
    record = digest_record(ckpt)
    good = record.read_text()
    verify_checkpoint(ckpt)
    for text in ("", "\n", "not-a-sha256  step_0000008.pt\n", good[:40]):
        record.write_text(text)
        with pytest.raises(CheckpointError) as info:
            verify_checkpoint(ckpt)
        message = str(info.value)
        assert f"{record} does not hold a sha256" in message and "delete it to read step_0000008.pt" in message
        assert "is damaged" not in message
    record.write_text(good.upper())  # sha256sum -c accepts upper-case hex too
    verify_checkpoint(ckpt)
    record.write_text(good)
    torch.save({"step": 8, "w": torch.zeros(16)}, ckpt)  # another file put in its place
    with pytest.raises(CheckpointError, match=r"is damaged.*replace step_0000008\.pt\.sha256 with that file's record"):
        verify_checkpoint(ckpt)
    link = tmp_path / "final.pt"
    link.symlink_to(ckpt)
    with pytest.raises(CheckpointError, match=r"is damaged.*recorded in step_0000008\.pt\.sha256"):
        read_checkpoint(link)


@pytest.mark.parametrize(("name", "text", "words"), [
    ("config.json", "{", "config.json is not the run's JSON record"),
    ("config.json", "[1, 2]", "config.json is not the run's JSON record"),
    ("losses.txt", "garbage line\n", "losses.txt line 9 is not one of this run's log lines"),
    ("metrics.jsonl", "not json\n", "metrics.jsonl line 9 is not one of this run's log lines"),
])
def test_damaged_run_records_on_resume_are_one_line_errors(tmp_path, capsys, name, text, words):
    """These used to be JSONDecodeError / ValueError / AttributeError tracebacks."""
    from rdmeval.cli.main import main

    out = tmp_path / "run"
    assert main(["train", "--config", "debug", "--out", str(out), "--no-progress"]) == 0
    path = out / name
    path.write_text(text if name == "config.json" else path.read_text() + text)
    capsys.readouterr()
    assert main(["train", "--config", "debug", "--steps", "12", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_resume_with_other_flags_names_the_flags_of_the_run(tmp_path, capsys):
    from rdmeval.cli.main import main

    out = tmp_path / "run"
    assert main(["train", "--config", "debug", "--steps", "4", "--batch-size", "4", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["train", "--config", "debug", "--steps", "8", "--out", str(out), "--resume"]) == 2
    assert "resume with the same config (--batch-size 4)" in capsys.readouterr().err
    assert main(["train", "--config", "learn_demo", "--steps", "8", "--batch-size", "4", "--out", str(out), "--resume"]) == 2
    assert "--config debug" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "word"), [(["--config", "debug", "--out", "r", "--stpes", "3"], "3"),
                                            (["--config", "flux_tiny", "--asets", "a", "--out", "r"], "a")])
def test_a_misspelt_option_with_a_value_is_not_blamed_on_the_subcommand(capsys, argv, word):
    """argparse read the option's value as a subcommand: "invalid choice: '3' (choose from 'export', ...)" only."""
    from rdmeval.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["train", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"'{word}' is not a subcommand of rdmeval train" in err and "check that option's spelling" in err


def test_python_m_rdmeval_distill_reports_os_errors_in_one_line(tmp_path, capsys):
    """`python -m rdmeval.distill --out FILE` was a FileExistsError traceback (rdmeval train: one line)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert distill_main(["--config", "debug", "--out", str(blocker), "--steps", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(blocker) in err and len(err.splitlines()) == 1


def test_torchrun_on_a_gpu_machine_gives_cpu_tensors_a_backend(monkeypatch):
    """`torchrun -m rdmeval train --config debug` (docs) on a GPU machine joined an NCCL-only group, which has no
    collectives for the toy's CPU tensors; the group is NCCL for CUDA tensors and gloo for CPU ones."""
    import torch.distributed as dist

    import rdmeval.distill.run as run

    calls = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.setdefault("device", i))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: calls.setdefault("backend", backend))
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(run.atexit, "register", lambda fn: None)
    assert run.init_distributed() == (2, 1)
    backends = dict(pair.split(":") for pair in calls["backend"].split(","))
    assert backends == {"cpu": "gloo", "cuda": "nccl"} and calls["device"] == 1


def test_a_second_training_job_on_the_same_out_is_refused(tmp_path, capsys):
    """Two jobs on one --out interleaved their losses.txt and metrics.jsonl rewrites and raced on the milestones."""
    import os
    import subprocess
    import sys

    from rdmeval.cli.main import main

    out = tmp_path / "run"
    holder = ("import sys; from rdmeval.store.lock import RunLock; lock = RunLock(sys.argv[1], 'train', 0, 1, run_lock=False); "
              "print('held', flush=True); sys.stdin.read()")
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root}
    proc = subprocess.Popen([sys.executable, "-c", holder, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "held"  # the other job holds the run
        assert main(["train", "--config", "debug", "--steps", "1", "--out", str(out), "--no-progress"]) == 2
        assert "is already being written by pid" in capsys.readouterr().err
        assert not out.exists()
    finally:
        proc.stdin.close()
        proc.wait()
    assert main(["train", "--config", "debug", "--steps", "1", "--out", str(out), "--no-progress"]) == 0  # free again
