"""A real `rdmeval train` process killed with SIGKILL mid-run, then resumed, ends with the same
parameters, optimizer state and logs as an uninterrupted run; its earlier milestones are kept as written."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from rdmeval.distill.checkpoints import list_milestones, milestone_path

REPO = Path(__file__).resolve().parents[1]
STEPS = 12  # flux_tiny saves every 2 steps; a step takes ~0.1 s, so the kill lands well before the end


def _cmd(assets: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rdmeval", "train", "--config", "flux_tiny", "--assets", str(assets), "--out", str(out),
            "--steps", str(STEPS), "--no-progress", *extra]


def _env() -> dict[str, str]:
    # one thread in every process: the two runs then do the same arithmetic in the same order
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_flux_assets):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_cmd(tiny_flux_assets, straight), env=_env(), check=True, capture_output=True, timeout=300)

    proc = subprocess.Popen(_cmd(tiny_flux_assets, killed), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not milestone_path(killed, 2).exists():
        assert proc.poll() is None, f"the run ended before its first milestone: {proc.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, "no milestone within 240 s"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    before = {step: _sha(path) for step, path in list_milestones(killed)}
    assert before and max(before) < STEPS, f"killed too late to test a resume: milestones {sorted(before)}"

    done = subprocess.run(_cmd(tiny_flux_assets, killed, "--resume"), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"step {max(before) + 1:5d}" in done.stdout.splitlines()[0]  # it continued from the newest milestone

    after = dict(list_milestones(killed))
    assert sorted(after) == list(range(2, STEPS + 1, 2)) == [s for s, _ in list_milestones(straight)]
    assert {step: _sha(after[step]) for step in before} == before  # kept, not rewritten

    a = torch.load(milestone_path(straight, STEPS), weights_only=True)
    b = torch.load(milestone_path(killed, STEPS), weights_only=True)
    assert a["step"] == b["step"] == STEPS
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    for i, state in a["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][i][key]), (i, key)
    assert (killed / "losses.txt").read_text() == (straight / "losses.txt").read_text()
    assert len((killed / "losses.txt").read_text().splitlines()) == STEPS
    # and training moved the student: the last parameters are not the first milestone's
    first = torch.load(milestone_path(straight, 2), weights_only=True)["model"]
    assert any(not torch.equal(first[n], a["model"][n]) for n in first)
