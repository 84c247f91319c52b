"""GPU throughput of a full GenEval scoring run: 2,212 images at 512x512 (553 prompts x 4).

Target: a full GenEval run scored in under 3 minutes on one H100 (>= 12.3 images/s end to end).

What it does (one prepared script; prints one JSON object and writes it to --out/geneval_gpu.json):

1. checks that mmcv's compiled ops run on this GPU (rdmeval.scorers.geneval.detector.check_mmcv_ops);
2. unless --run is given, writes a synthetic GenEval-format prompt file with the official task
   sizes (80/99/80/94/100/100 prompts) and renders it with the dummy generator at 512x512, in
   parallel shards (not timed as scoring);
3. times ``score_geneval_run`` end to end (detector build, batched detection with cache writes,
   colors, judging, outputs), then a ``rejudge`` from the cache;
4. times the color classifier on 1,176 crops (the most a full run can ask for: 376 colors images x 1
   + 400 color_attr images x 2), since random detector weights produce no color requests.

Random detector and CLIP weights by default (timings do not depend on them; nothing to download).
Use --checkpoint / --clip-pretrained for the real ones.

Prerequisites on the GPU machine: mmcv 2.1.0 built there with CUDA ops for its architecture
(``PYTHON=python3 scripts/install_mmcv.sh --force``; needs nvcc and the mmcv sdist), mmdet==3.3.0,
mmengine==0.10.7, open_clip_torch, pycocotools. Example:

    PYTHONUNBUFFERED=1 python3 benchmarks/perf/geneval_gpu.py --out "$OUT" --batch-size 16 --workers 12
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

TASK_SIZES = {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100, "color_attr": 100}
MAX_COLOR_CROPS = 94 * 4 * 1 + 100 * 4 * 2


def synthetic_prompts(path: Path) -> None:
    """553 GenEval-format records with the official task sizes, built from the demo set's records."""
    demo = [json.loads(line) for line in (REPO / "prompts" / "demo_geneval.jsonl").read_text().splitlines()]
    by_tag = {rec["tag"]: rec for rec in demo}
    lines = []
    for tag, n in TASK_SIZES.items():
        for k in range(n):
            rec = json.loads(json.dumps(by_tag[tag]))
            rec["prompt"] = f"{rec['prompt']} #{k}"
            lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")


def make_run(run: Path, prompts: Path, shards: int) -> float:
    t = time.perf_counter()
    base = [sys.executable, "-m", "rdmeval", "generate", "--model", "dummy", "--prompts", str(prompts), "--out", str(run),
            "--resolution", "512", "--rng-device", "cpu", "--device", "cpu", "--n-per-prompt", "4", "--no-progress"]
    # the first shard creates the run; the others resume into it in parallel
    subprocess.run(base + ["--shard", f"0/{shards}"], check=True, cwd=REPO)
    procs = [subprocess.Popen(base + ["--shard", f"{i}/{shards}"], cwd=REPO) for i in range(1, shards)]
    if any(p.wait() for p in procs):
        raise SystemExit("generating the synthetic run failed")
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT", "."), help="folder for geneval_gpu.json")
    ap.add_argument("--run", help="an existing GenEval run directory (default: a synthetic one)")
    ap.add_argument("--checkpoint", help="detector checkpoint (default: random weights)")
    ap.add_argument("--clip-pretrained", help="open_clip weights (default: random)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1))
    ap.add_argument("--shards", type=int, default=min(12, os.cpu_count() or 1), help="parallel generate processes")
    args = ap.parse_args()

    import torch

    from rdmeval.scorers.geneval.colors import ClipColorClassifier, ColorRequest
    from rdmeval.scorers.geneval.detections import Detection
    from rdmeval.scorers.geneval.detector import MMDetDetector, check_mmcv_ops
    from rdmeval.scorers.geneval.judge import JudgeOptions
    from rdmeval.scorers.geneval.score import score_geneval_run

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    device = "cuda:0"
    result: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "batch_size": args.batch_size,
                    "workers": args.workers, "weights": "checkpoint" if args.checkpoint else "random"}
    t = time.perf_counter()
    check_mmcv_ops(device)
    result["ops_check_s"] = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else Path(tmp) / "run"
        if not args.run:
            prompts = Path(tmp) / "geneval_synthetic.jsonl"
            synthetic_prompts(prompts)
            result["make_run_s"] = make_run(run, prompts, args.shards)

        t = time.perf_counter()
        detector = MMDetDetector(checkpoint=args.checkpoint, random_init=args.checkpoint is None, device=device,
                                 num_workers=args.workers, progress=False)
        color = ClipColorClassifier("ViT-L-14", args.clip_pretrained, device=device, batch_size=64)
        score = score_geneval_run(run, detector=detector, color=color, batch_size=args.batch_size, progress=True)
        torch.cuda.synchronize()
        result["score_s"] = time.perf_counter() - t
        result["images"] = score.summary.n_images
        result["score_images_per_s"] = result["images"] / result["score_s"]
        result["color_crops_in_run"] = score.colors_classified
        result["peak_gpu_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30

        t = time.perf_counter()
        score_geneval_run(run, color=color, rejudge=True, progress=False)
        result["rejudge_s"] = time.perf_counter() - t

        # colors: the most crops a full run can need, on the run's own images
        paths = sorted(run.glob("*/samples/*.png"))[:MAX_COLOR_CROPS]
        mask = np.zeros((512, 512), dtype=bool)
        mask[100:400, 150:350] = True
        box = np.array([150, 100, 350, 400, 0.9], dtype=np.float32)
        requests = [ColorRequest(p, ["car", "cup", "book", "dog"][i % 4], Detection(box, mask)) for i, p in enumerate(paths)]
        requests = (requests * (MAX_COLOR_CROPS // max(len(requests), 1) + 1))[:MAX_COLOR_CROPS]
        color._ensure_model()
        t = time.perf_counter()
        color.predict(requests, JudgeOptions())
        torch.cuda.synchronize()
        result["color_crops"] = len(requests)
        result["colors_s"] = time.perf_counter() - t

    result["full_run_estimate_s"] = result["score_s"] + (result["colors_s"] if score.colors_classified == 0 else 0.0)
    result["target_s"] = 180.0
    result["meets_target"] = result["full_run_estimate_s"] < result["target_s"]
    text = json.dumps(result, indent=2)
    print(text)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "geneval_gpu.json").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
