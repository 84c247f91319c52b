"""Harness overhead: ``rdmeval generate`` against a bare diffusers loop, on the tiny klein fixture (CPU).

Both sides render the same prompts with the same per-sample seeded noise (GenEval's rule), the same
batch size, resolution and step count, fp32, and write one PNG per image:

* bare: ``Flux2KleinPipeline.from_pretrained(fixture)``; for each batch ``pipe(prompt=..., latents=...,
  height, width, num_inference_steps, guidance_scale=1.0, max_sequence_length=48, output_type="pt")``,
  ``round(x * 255)`` to uint8, ``PIL.Image.save`` into ``<idx>/samples/<j>.png``;
* bare+dedup: the same loop, but each distinct prompt of a batch encoded once (``encode_prompt``) and
  passed as ``prompt_embeds``: what a careful hand-written loop does, so rdmeval's ratio against it
  isolates the harness itself (run store, noise, PNG encoding, manifest);
* rdmeval: the run through rdmeval's generator and ``generate_run`` in-process (run store,
  manifest, atomic writes, prompt dedup, truncated text encoder, progress bar off).

Each side runs in a fresh subprocess (imports and loading included), ``--repeats`` times; the
medians are reported as end-to-end seconds and generation-only seconds, and the ratio
rdmeval / bare (target: <= 1.10). rdmeval can come out below 1: it encodes each distinct
prompt once (the bare loop encodes all 4 copies) and stops Qwen3 after layer 27.

    .venv/bin/python benchmarks/perf/generate_overhead.py
    .venv/bin/python benchmarks/perf/generate_overhead.py --n-prompts 64 --resolution 256 --steps 4 --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEED_BASE = 46_000_000


def _prompts(n: int) -> list[str]:
    things = ["cat", "dog", "bicycle", "umbrella", "apple", "car", "train", "boat", "clock", "vase", "kite", "bench"]
    colors = ["red", "blue", "green", "yellow", "white", "black", "pink", "brown"]
    return [f"a photo of a {colors[i % len(colors)]} {things[(i * 5) % len(things)]} and {i % 4 + 1} {things[i % len(things)]}s" for i in range(n)]


def _noise(p: int, s: int, shape: tuple[int, int, int]):
    import torch

    g = torch.Generator().manual_seed(SEED_BASE + p * 100 + s)
    return torch.randn(shape, generator=g)


def worker_bare(cfg: dict) -> dict:
    import torch
    from PIL import Image

    torch.set_num_threads(cfg["threads"])
    t0 = time.perf_counter()
    from diffusers import Flux2KleinPipeline

    pipe = Flux2KleinPipeline.from_pretrained(cfg["base"])
    pipe.set_progress_bar_config(disable=True)
    t1 = time.perf_counter()
    res, n = cfg["resolution"], cfg["n_per_prompt"]
    items = [(p, s) for p in range(len(cfg["prompts"])) for s in range(n)]
    out = Path(cfg["out"])
    for start in range(0, len(items), cfg["batch_size"]):
        batch = items[start : start + cfg["batch_size"]]
        z = torch.stack([_noise(p, s, (128, res // 16, res // 16)) for p, s in batch])
        texts = [cfg["prompts"][p] for p, _ in batch]
        with torch.inference_mode():
            if cfg.get("dedup"):  # encode each distinct prompt once, as a careful hand-written loop would
                unique = list(dict.fromkeys(texts))
                embeds, _ = pipe.encode_prompt(prompt=unique, max_sequence_length=48)
                kwargs = {"prompt_embeds": embeds[[unique.index(t) for t in texts]]}
            else:
                kwargs = {"prompt": texts}
            images = pipe(**kwargs, latents=z, height=res, width=res, num_inference_steps=cfg["steps"], guidance_scale=1.0,
                          max_sequence_length=48, output_type="pt").images
        arr = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for (p, s), img in zip(batch, arr):
            d = out / f"{p:05d}" / "samples"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{s:04d}.png")
    t2 = time.perf_counter()
    return {"load": t1 - t0, "generate": t2 - t1, "total": t2 - t0}


def worker_rdmeval(cfg: dict) -> dict:
    import torch

    torch.set_num_threads(cfg["threads"])
    t0 = time.perf_counter()
    from rdmeval.generation import generate_run
    from rdmeval.generators.noise import SeedPolicy
    from rdmeval.generators.registry import GeneratorOptions, build_generator
    from rdmeval.prompts import load_prompt_set

    model = "teacher" if cfg["steps"] == 4 else "naive"
    options = GeneratorOptions(base=cfg["base"], ctx_len=48, steps=cfg["steps"], device="cpu", precision="fp32",
                               height=cfg["resolution"], width=cfg["resolution"])
    generator = build_generator(model, options)
    prompt_set = load_prompt_set(cfg["prompt_file"])
    t1 = time.perf_counter()
    generate_run(generator, prompt_set, cfg["out"], n_per_prompt=cfg["n_per_prompt"], seed_policy=SeedPolicy("per-sample", base=SEED_BASE),
                 rng_device="cpu", batch_size=cfg["batch_size"], progress=False)
    t2 = time.perf_counter()
    return {"load": t1 - t0, "generate": t2 - t1, "total": t2 - t0}


def _run(side: str, cfg: dict) -> dict:
    worker = "rdmeval" if side == "rdmeval" else "bare"
    cfg = {**cfg, "dedup": side == "bare+dedup"}
    proc = subprocess.run([sys.executable, __file__, "--worker", worker, json.dumps(cfg)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{side} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixture", help="tiny-klein folder (built if absent; default: a temporary folder)")
    ap.add_argument("--n-prompts", type=int, default=32)
    ap.add_argument("--n-per-prompt", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--steps", type=int, default=1, choices=[1, 4])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        side, cfg = args.worker[0], json.loads(args.worker[1])
        print(json.dumps((worker_bare if side == "bare" else worker_rdmeval)(cfg)))
        return

    from rdmeval.fixtures import build_tiny_klein

    with tempfile.TemporaryDirectory(prefix="rdmeval-overhead-") as tmp:
        fixture = build_tiny_klein(args.fixture or Path(tmp) / "tiny-klein")
        prompts = _prompts(args.n_prompts)
        prompt_file = Path(tmp) / "prompts.txt"
        prompt_file.write_text("\n".join(prompts) + "\n")
        base_cfg = {"base": str(fixture["base"]), "prompts": prompts, "prompt_file": str(prompt_file), "n_per_prompt": args.n_per_prompt,
                    "batch_size": args.batch_size, "resolution": args.resolution, "steps": args.steps, "threads": args.threads}
        results: dict[str, list[dict]] = {"bare": [], "bare+dedup": [], "rdmeval": []}
        for r in range(args.repeats):
            for side in results:  # interleaved, so machine load drifts affect all sides
                results[side].append(_run(side, {**base_cfg, "out": str(Path(tmp) / f"{side}-{r}")}))
        n_images = args.n_prompts * args.n_per_prompt
        med = {side: {k: statistics.median(x[k] for x in runs) for k in ("load", "generate", "total")} for side, runs in results.items()}
        print(f"tiny klein, {n_images} images ({args.n_prompts} prompts x {args.n_per_prompt}), {args.resolution}px, "
              f"{args.steps} step(s), batch {args.batch_size}, fp32 CPU, {args.threads} thread(s), median of {args.repeats}")
        print(f"{'':12}{'load s':>9}{'generate s':>12}{'total s':>10}{'images/s':>10}")
        for side, m in med.items():
            print(f"{side:12}{m['load']:9.2f}{m['generate']:12.2f}{m['total']:10.2f}{n_images / m['generate']:10.1f}")
        for ref in ("bare", "bare+dedup"):
            gen_ratio = med["rdmeval"]["generate"] / med[ref]["generate"]
            total_ratio = med["rdmeval"]["total"] / med[ref]["total"]
            print(f"ratio rdmeval/{ref}: generation {gen_ratio:.3f}, end to end {total_ratio:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
