"""The trainer's benchmark scripts run (their figures are printed for people, not asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out[out.index("{"):])


def test_cpu_step_benchmark_reports_the_step():
    result = _run("benchmarks/perf/distill_cpu.py", "--task", "debug", "--steps", "2", "--warmup", "0")
    assert result["task"] == "debug" and result["rollout_size"] == 32 and result["step_s_median"] > 0


def test_gpu_benchmark_wiring_on_the_cpu():
    result = _run("benchmarks/perf/distill_gpu.py", "--dry-run", "--batch-size", "2", "--grad-accum", "1", "--steps", "1",
                  "--warmup", "0", "--battery-depth", "1")
    assert result["rollout_size"] == 2 and not result["skipped"] and result["loss"] > 0


def test_gpu_benchmark_architectures_battery_has_the_released_widths():
    """--battery architectures: built on the meta device (no memory), each encoder pools to its released width
    at its released resolution, ~3.84 B parameters in all."""
    import importlib.util

    import torch

    from rdmeval.distill.battery import pool_features
    from rdmeval.distill.encoders import RELEASED_BATTERY

    spec = importlib.util.spec_from_file_location("distill_gpu", REPO / "benchmarks" / "perf" / "distill_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    battery = module.build_architectures(torch.device("meta"))
    assert list(battery) == [s.name for s in RELEASED_BATTERY]
    for released in RELEASED_BATTERY:
        enc = battery[released.name]
        assert (enc.spec.resolution, enc.spec.dim, enc.spec.precision) == (released.resolution, released.dim, released.precision)
        x = torch.empty(2, 3, released.resolution, released.resolution, device="meta")
        out = pool_features(enc.backbone(x), enc.spec.pool, enc.attn_pool, enc.spec.prefix_tokens)
        assert tuple(out.shape) == (2, released.dim), released.name
    total = sum(p.numel() for enc in battery.values() for p in enc.parameters())
    assert 3.7e9 < total < 4.0e9
