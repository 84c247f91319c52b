"""Throughput of PickScore scoring with CLIP ViT-H/14 at 224 (random init, no download), on one GPU.

Target: 10,000 images in under a minute on one H100 (end to end: PNG decode + CLIP preprocessing +
the ViT-H/14 image tower + the text tower + rows), i.e. >= 167 images/s.

Three measurements, printed and written as JSON (``--json``, default ``$OUT/pickscore_gpu.json``
when ``$OUT`` is set):

1. ``model``: the image tower alone on random ``pixel_values`` already on the GPU, per dtype
   (fp32, bf16, fp16): images/s at ``--batch-size``;
2. ``deviation``: bf16/fp16 PickScores minus fp32 ones on the same inputs (max and mean |diff|,
   in PickScore units; random weights, so it is an indication only: measure on the real weights
   before relying on a reduced-precision number);
3. ``end_to_end``: ``score_pickscore_run`` over a synthetic run of ``--n-images`` 512x512 PNGs
   (one image per prompt) with ``--workers`` decoding processes, per dtype in ``--e2e-dtypes``:
   seconds, images/s, and the extrapolated seconds for 10,000 images.

The config is CLIP ViT-H/14 as in ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` / ``PickScore_v1``
(vision 1280-d x 32 layers, patch 14, 224 px; text 1024-d x 24 layers; projection 1024). The
tokenizer is rdmeval's tiny offline CLIP BPE (ids fall inside CLIP's 49,408-token vocabulary).

    python benchmarks/perf/pickscore_gpu.py                      # on the GPU machine, ~3-4 min
    python benchmarks/perf/pickscore_gpu.py --arch tiny --device cpu --n-images 64 --iters 2   # smoke test
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rdmeval.fixtures.tiny_clip import build_tiny_tokenizer  # noqa: E402
from rdmeval.scorers.pickscore.model import DTYPES, PickScorer  # noqa: E402
from rdmeval.scorers.pickscore.score import score_pickscore_run  # noqa: E402

ARCHS = {
    "vit-h-14": {
        "text": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16},
        "vision": {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 16,
                   "patch_size": 14},
        "projection_dim": 1024,
    },
    "tiny": {
        "text": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4},
        "vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                   "patch_size": 14},
        "projection_dim": 16,
    },
}


def build_model_and_processor(arch: str, device: str):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    spec = ARCHS[arch]
    tokenizer = build_tiny_tokenizer()
    config = CLIPConfig(
        text_config={**spec["text"], "vocab_size": 49408, "max_position_embeddings": 77, "hidden_act": "gelu",
                     "projection_dim": spec["projection_dim"], "bos_token_id": tokenizer.bos_token_id,
                     "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id},
        vision_config={**spec["vision"], "image_size": 224, "hidden_act": "gelu", "projection_dim": spec["projection_dim"]},
        projection_dim=spec["projection_dim"],
        logit_scale_init_value=4.6052,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = CLIPModel(config).eval()
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer)
    return model, processor


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_model(model, device: str, dtypes: list[str], batch_size: int, iters: int) -> dict:
    out = {}
    pixels = torch.randn(batch_size, 3, 224, 224, device=device)
    for name in dtypes:
        m = model if name == "fp32" else copy.deepcopy(model).to(DTYPES[name])
        pv = pixels.to(DTYPES[name])
        with torch.inference_mode():
            for _ in range(2):
                m.get_image_features(pixel_values=pv)
            _sync(device)
            t = time.perf_counter()
            for _ in range(iters):
                m.get_image_features(pixel_values=pv)
            _sync(device)
        dt = time.perf_counter() - t
        out[name] = {"images_per_s": batch_size * iters / dt, "batch_size": batch_size, "iters": iters}
        if m is not model:
            del m
            torch.cuda.empty_cache() if device.startswith("cuda") else None
    return out


def bench_deviation(model, processor, device: str, dtypes: list[str], n: int = 256) -> dict:
    rng = np.random.default_rng(0)
    images = [_image(i, rng, 512) for i in range(n)]
    texts = [f"a photo of a red cat on the table number {i}" for i in range(n)]
    ref = PickScorer(model, processor, device=device, dtype="fp32", batch_size=64).score(images, texts)
    out = {}
    for name in dtypes:
        if name == "fp32":
            continue
        s = PickScorer(copy.deepcopy(model), processor, device=device, dtype=name, batch_size=64).score(images, texts)
        d = (s - ref).abs()
        out[name] = {"max_abs_diff": float(d.max()), "mean_abs_diff": float(d.mean()), "n": n,
                     "fp32_score_std": float(ref.std())}
    return out


def _image(i: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """A 512x512 image that compresses like a rendered one: smooth gradients plus mild noise."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = (i * 0.37) % 6.28
    base = np.stack([127 + 100 * np.sin(x / 60 + phase), 127 + 100 * np.cos(y / 45 - phase),
                     127 + 90 * np.sin((x + y) / 80 + 2 * phase)], axis=-1)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def _write_image(args):
    root, i, size = args
    from rdmeval.store import RunStore, WorkItem

    RunStore(Path(root)).save_image(WorkItem(i, 0), _image(i, np.random.default_rng(i), size))


def make_run(root: Path, n: int, size: int, procs: int) -> None:
    from rdmeval.prompts.schema import Prompt
    from rdmeval.store import RunStore

    request = {
        "model": {"name": "bench-synthetic", "height": size, "width": size},
        "prompt_set": {"name": "bench-synthetic", "version": "1", "sha256": "", "n_prompts": n, "format": "generated",
                       "source": "benchmarks/perf/pickscore_gpu.py", "definition": "synthetic benchmark prompts", "params": {}},
        "prompt_indices": list(range(n)),
        "n_per_prompt": 1,
        "seed_policy": {"kind": "none"},
        "rng_device": "cpu",
        "resolution": [size, size],
    }
    store = RunStore.open_for_generation(root, request)
    words = ["red", "blue", "cat", "dog", "table", "bowl", "city", "street", "night", "photo", "green", "window"]
    for i in range(n):
        text = f"a photo of a {words[i % 12]} {words[(i * 5) % 12]} near a {words[(i * 7) % 12]} " + " ".join(
            words[(i + k) % 12] for k in range(i % 9))
        store.write_prompt(Prompt(index=i, text=text))
    with Pool(procs) as pool:
        pool.map(_write_image, [(str(root), i, size) for i in range(n)], chunksize=32)
    store.mark_complete_if_done()


def bench_end_to_end(model, processor, device: str, dtypes: list[str], n: int, size: int, batch_size: int,
                     workers: int, tmp: Path) -> dict:
    run = tmp / "run"
    t = time.perf_counter()
    make_run(run, n, size, max(1, os.cpu_count() or 1))
    out = {"write_run_s": time.perf_counter() - t, "n_images": n, "resolution": size, "workers": workers}
    for name in dtypes:
        m = model if name == "fp32" else copy.deepcopy(model)
        scorer = PickScorer(m, processor, device=device, dtype=name, batch_size=batch_size)
        t = time.perf_counter()
        res = score_pickscore_run(run, scorer, out_dir=tmp / f"scores-{name}", num_workers=workers, progress=False)
        dt = time.perf_counter() - t
        t2 = time.perf_counter()
        score_pickscore_run(run, scorer, out_dir=tmp / f"scores-{name}", num_workers=workers, progress=False)
        resumed = time.perf_counter() - t2
        out[name] = {"seconds": dt, "images_per_s": n / dt, "seconds_for_10k": 10000 * dt / n,
                     "meets_target": 10000 * dt / n < 60.0, "rerun_all_cached_s": resumed, "mean": res.value}
        if m is not model:
            del scorer, m
            torch.cuda.empty_cache() if device.startswith("cuda") else None
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="vit-h-14", choices=list(ARCHS))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--iters", type=int, default=10, help="timed forward passes per dtype (model-only)")
    p.add_argument("--dtypes", default="fp32,bf16,fp16")
    p.add_argument("--e2e-dtypes", default="fp32,bf16")
    p.add_argument("--n-images", type=int, default=10000)
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--workers", type=int, default=min(15, max(1, (os.cpu_count() or 2) - 1)))
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--json", default=os.path.join(os.environ["OUT"], "pickscore_gpu.json") if os.environ.get("OUT") else None)
    args = p.parse_args()

    dtypes = args.dtypes.split(",")
    info = {"arch": args.arch, "device": args.device, "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32}
    t = time.perf_counter()
    model, processor = build_model_and_processor(args.arch, args.device)
    info["build_s"] = time.perf_counter() - t
    info["params"] = sum(x.numel() for x in model.parameters())
    print(json.dumps(info), flush=True)
    results = {"info": info}
    results["model"] = bench_model(model, args.device, dtypes, args.batch_size, args.iters)
    print("model-only images/s:", {k: round(v["images_per_s"], 1) for k, v in results["model"].items()}, flush=True)
    results["deviation"] = bench_deviation(model, processor, args.device, dtypes)
    print("deviation vs fp32 (PickScore units):", results["deviation"], flush=True)
    if not args.skip_e2e:
        with tempfile.TemporaryDirectory(prefix="pickscore-bench-") as tmp:
            results["end_to_end"] = bench_end_to_end(model, processor, args.device, args.e2e_dtypes.split(","),
                                                     args.n_images, args.resolution, args.batch_size, args.workers, Path(tmp))
        print("end to end:", json.dumps(results["end_to_end"], indent=1), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
