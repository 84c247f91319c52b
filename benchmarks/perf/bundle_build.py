"""Wall time and peak memory of one reference-bundle build at the released sizes, from random features.

The released geALLcoco bundles: 302,149 reference rows, joint features [φ | β·τ] of up to
1,792 + 1,152 = 2,944 dims (dreamsim), k-means on a seeded 200,000-row subsample (20 iterations),
M = 8,192 landmarks, k_rr over 100,000 rows. Target: <= 12 GB peak on a CPU machine (24 GB). The
k-means costs ~2·fit_n·M·d ≈ 10 TFLOP an iteration, so it runs on the GPU when there is one
(``--device cuda``); on CPU pass ``--kmeans-iters 1`` and multiply that stage's time by 20.

    .venv/bin/python benchmarks/perf/bundle_build.py                       # released sizes, CPU, 1 k-means iteration
    .venv/bin/python benchmarks/perf/bundle_build.py --device cuda --kmeans-iters 20
    .venv/bin/python benchmarks/perf/bundle_build.py --rows 30000 --fit-n 20000 --landmarks 1024 --krr-n 10000  # quick

Features are random (Gaussian image part with an offset, unit-norm text part), written to a
memory-mapped file in a temporary folder first (the build reads it like a feature table), so the
peak counts only what the build holds. Prints each stage's time and the peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rdmeval.distill.bundle_build import ArrayRows, BundleRecipe, build_bundle_streaming  # noqa: E402


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def random_memmap(path: Path, rows: int, dims: int, *, unit: bool, seed: int, block: int = 16_384) -> np.memmap:
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dims))
    rng = np.random.default_rng(seed)
    for start in range(0, rows, block):
        x = rng.standard_normal((min(block, rows - start), dims), dtype=np.float32)
        if unit:
            x /= np.linalg.norm(x, axis=1, keepdims=True)
        else:
            x += 1.0
        array[start:start + len(x)] = x
    array.flush()
    return np.load(path, mmap_mode="r")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=302_149)
    parser.add_argument("--image-dims", type=int, default=1_792, help="dreamsim's; the widest encoder of the battery")
    parser.add_argument("--text-dims", type=int, default=1_152)
    parser.add_argument("--landmarks", type=int, default=8_192)
    parser.add_argument("--fit-n", type=int, default=200_000)
    parser.add_argument("--kmeans-iters", type=int, default=1)
    parser.add_argument("--krr-n", type=int, default=100_000)
    parser.add_argument("--block-rows", type=int, default=16_384)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", type=Path, default=None, help="folder for the features and the build state (default: a temporary one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        tmp_path = Path(tmp)
        t0 = time.perf_counter()
        image = random_memmap(tmp_path / "image.npy", args.rows, args.image_dims, unit=False, seed=0)
        text = random_memmap(tmp_path / "text.npy", args.rows, args.text_dims, unit=True, seed=1)
        print(f"features: {args.rows:,} x ({args.image_dims} + {args.text_dims}) fp32 written in {time.perf_counter() - t0:.1f} s")
        recipe = BundleRecipe(num_landmarks=args.landmarks, fit_n=args.fit_n, kmeans_iters=args.kmeans_iters,
                              krr_n=args.krr_n, block_rows=args.block_rows)
        stamps: dict[str, float] = {}
        start = time.perf_counter()

        def progress(stage: str, done: int, total: int) -> None:
            if done == total:
                stamps[stage] = time.perf_counter()

        bundle = build_bundle_streaming(ArrayRows(image), ArrayRows(text), tmp_path / "bundle.safetensors",
                                        work=tmp_path / "state", recipe=recipe, device=args.device, on_progress=progress)
        previous = start
        for stage in ("bandwidth", "landmarks", "mu", "k_rr", "bundle"):
            print(f"  {stage:10s} {stamps[stage] - previous:8.1f} s")
            previous = stamps[stage]
        print(f"total {previous - start:.1f} s; M = {bundle.M}, d_in = {bundle.d_in}, sigma = {bundle.sigma:.4g}, k_rr = {bundle.k_rr:.4g}")
        if args.kmeans_iters != 20:
            print(f"  (k-means ran {args.kmeans_iters} iteration(s); the released recipe runs 20)")
        if args.device.startswith("cuda"):
            print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
        print(f"peak resident memory {peak_rss_gib():.2f} GiB (target <= 12 GB on CPU)")


if __name__ == "__main__":
    main()
