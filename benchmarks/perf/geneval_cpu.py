"""CPU seconds per image for GenEval detection (Mask2Former Swin-S, mmdet 3.3.0) and color crops.

Random weights by default (timing does not depend on them; no download). Pass --checkpoint for the
real one. Prints one JSON object; --json also writes it to a file.

    .venv/bin/python benchmarks/perf/geneval_cpu.py                 # 3 images at 512x512
    .venv/bin/python benchmarks/perf/geneval_cpu.py --n 5 --clip    # + open_clip ViT-L-14 crops

Reference (2-core CPU, torch 2.14, see docs/geneval.md): ~5.8 s per 512x512 image (the config's
test pipeline resizes it to 800x800) and ~0.7 s per color crop.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def smooth_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random RGB image (upsampled 8x8 noise), closer to a photo than white noise."""
    small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3, help="timed images (after one warm-up)")
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--checkpoint", help="real checkpoint (default: random weights)")
    ap.add_argument("--clip", action="store_true", help="also time open_clip ViT-L-14 (random weights) on crops")
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()

    import torch

    from rdmeval.scorers.geneval.detector import MMDetDetector

    rng = np.random.default_rng(0)
    result: dict = {"device": "cpu", "torch_threads": torch.get_num_threads(), "resolution": args.resolution}
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.n + 1):
            p = Path(tmp) / f"{i:04d}.png"
            Image.fromarray(smooth_image(rng, args.resolution)).save(p)
            paths.append(p)
        t0 = time.perf_counter()
        detector = MMDetDetector(checkpoint=args.checkpoint, random_init=args.checkpoint is None, device="cpu", progress=False)
        detector._build()
        result["build_s"] = time.perf_counter() - t0
        times = []
        for p in paths:
            t = time.perf_counter()
            (out,) = list(detector.detect([p], batch_size=1))
            times.append(time.perf_counter() - t)
        result["detect_s_per_image"] = statistics.median(times[1:])
        result["detect_s_all"] = times
        result["weights"] = "checkpoint" if args.checkpoint else "random"

        if args.clip:
            from rdmeval.scorers.geneval.colors import ClipColorClassifier

            clf = ClipColorClassifier("ViT-L-14", pretrained=None, device="cpu", batch_size=8)
            t = time.perf_counter()
            clf._ensure_model()
            result["clip_build_s"] = time.perf_counter() - t
            t = time.perf_counter()
            clf.text_classifier("car")
            result["clip_text_classifier_s"] = time.perf_counter() - t
            crops = [Image.fromarray(smooth_image(rng, 200)) for _ in range(8)]
            t = time.perf_counter()
            clf.classify(crops, ["car"] * len(crops))
            result["clip_s_per_crop"] = (time.perf_counter() - t) / len(crops)

    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
