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
