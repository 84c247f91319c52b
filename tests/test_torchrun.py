"""Multi-process generation through torchrun (gloo on CPU) writes the same run as one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from rdmeval.cli.main import main


def test_torchrun_two_ranks_equal_one_process(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun) if torchrun.exists() else shutil.which("torchrun"), "--nproc-per-node", "2", "-m", "rdmeval",
           "generate", "--model", "dummy", "--prompts", "demo-geneval", "--out", str(tmp_path / "dist"),
           "--resolution", "64", "--rng-device", "cpu", "--batch-size", "3", "--no-progress"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "shard 0/2" in out.stdout and "shard 1/2" in out.stdout
    assert main(["generate", "--model", "dummy", "--prompts", "demo-geneval", "--out", str(tmp_path / "one"),
                 "--resolution", "64", "--rng-device", "cpu", "--batch-size", "3", "--no-progress"]) == 0
    pngs = lambda root: {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}  # noqa: E731
    assert len(pngs(tmp_path / "dist")) == 24 and pngs(tmp_path / "dist") == pngs(tmp_path / "one")
    manifest = json.loads((tmp_path / "dist" / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["execution"]["world_size"] == 2
    assert "resumed" not in manifest  # only rank 0 writes the manifest

    # an image of rank 1's share (block 1 = items 3..5 at batch 3) is lost: the resume regenerates it
    # and rank 0 marks the manifest, so scores made before the resume are known to be stale
    lost = tmp_path / "dist" / "00001" / "samples" / "0000.png"
    lost.unlink()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert pngs(tmp_path / "dist") == pngs(tmp_path / "one")
    assert len(json.loads((tmp_path / "dist" / "manifest.json").read_text())["resumed"]) == 1
