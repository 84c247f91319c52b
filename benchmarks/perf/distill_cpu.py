"""CPU step time and peak memory of the RDM trainer on a tiny task (a benchmark, not a test).

Builds the task, runs ``--warmup`` untimed steps and ``--steps`` timed ones of
``rdmeval.distill.trainer.Trainer.train_step`` (the whole step: chunk sampling, the GradCache double
pass, the loss, clipping, AdamW), and prints one JSON object: the step time (median, mean, min),
the per-sample time, and memory as the process's peak resident set (``ru_maxrss``) before the task
is built, after it is built and after the steps (CPU tensors have no allocator high-water mark; the
peak RSS includes Python and torch themselves, so compare the increments).

Tasks:
  debug       the toy of the golden curve (rollout 32)
  learn_demo  the toy that visibly learns (rollout 128, 2,048-render reference)
  flux_tiny   the FLUX task on the tiny klein fixture (fixture and assets built in --work first)

    python benchmarks/perf/distill_cpu.py                            # debug, 20 timed steps
    python benchmarks/perf/distill_cpu.py --task learn_demo --threads 2
    python benchmarks/perf/distill_cpu.py --task flux_tiny --work /tmp/rdmeval-flux-tiny --steps 5

Measured figures: docs/distill.md, "Speed and memory".
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

def peak_rss_mib() -> float:
    """The process's peak resident set so far, MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def toy_task(name: str):
    from rdmeval.distill.config import get_config
    from rdmeval.distill.toy import build_toy_task

    config = get_config(name)
    return config, build_toy_task(config)


def flux_tiny_task(work: Path):
    """The flux_tiny task on the tiny klein fixture (fixture and assets built in ``work``, or reused)."""
    from rdmeval.distill.config import get_config
    from rdmeval.distill.flux_task import build_flux_task, resolve_assets
    from rdmeval.distill.tiny_assets import build_tiny_assets
    from rdmeval.fixtures.tiny_klein import build_tiny_klein

    config = get_config("flux_tiny")
    fixture = build_tiny_klein(work / "tiny-klein")
    assets_dir = build_tiny_assets(fixture["root"], work / "assets", config=config)
    return config, build_flux_task(config, resolve_assets(config, assets=str(assets_dir)), device="cpu")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="debug", choices=["debug", "learn_demo", "flux_tiny"])
    ap.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--work", help="flux_tiny: folder for the fixture and its assets (default: a temporary folder)")
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")

    import torch

    from rdmeval.distill.trainer import Trainer

    torch.set_num_threads(args.threads)
    rss_start = peak_rss_mib()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        config, task = flux_tiny_task(Path(args.work or tmp)) if args.task == "flux_tiny" else toy_task(args.task)
        trainer = Trainer(config, task)
        build_s = time.perf_counter() - t0
        rss_built = peak_rss_mib()
        for _ in range(args.warmup):
            trainer.train_step()
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            trainer.train_step()
            times.append(time.perf_counter() - start)
    rss_end = peak_rss_mib()
    params = sum(p.numel() for p in task.student.parameters() if p.requires_grad)
    result = {
        "task": args.task, "device": "cpu", "torch": torch.__version__, "threads": args.threads,
        "rollout_size": config.rollout_size, "batch_size": config.batch_size, "grad_accum": config.grad_accum,
        "encoders": len(config.encoders), "student_params": params, "build_s": round(build_s, 3),
        "timed_steps": args.steps, "step_s_median": statistics.median(times), "step_s_mean": statistics.fmean(times),
        "step_s_min": min(times), "ms_per_sample": 1e3 * statistics.median(times) / config.rollout_size,
        "peak_rss_mib_start": round(rss_start, 1), "peak_rss_mib_after_build": round(rss_built, 1),
        "peak_rss_mib_after_steps": round(rss_end, 1), "steps_peak_increment_mib": round(rss_end - rss_built, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
