"""GPU throughput of rdmeval's klein generator at the real FLUX.2 [klein]-4B shapes (random weights).

Builds, without downloading anything, a pipeline with the real shapes: the klein-4B DiT (5 double +
20 single blocks, 24 x 128 heads, 3,875,544,576 parameters), the FLUX.2 VAE (default
``AutoencoderKLFlux2`` config) and Qwen3-4B's first 27 layers (hidden 2560, 32/8 heads); the
tokenizer is the tiny fixture's (token ids only index the embedding, so cost is unchanged). Random
weights are fine for timing. Everything runs through :class:`rdmeval.generators.klein.KleinGenerator`
(prompt dedup, truncated text encoder, pipeline call, decode, uint8 on the host), at 512x512,
GenEval-like batches (4 samples per prompt, ctx 48, fresh prompts every iteration so the text
encoder always runs), for batch 1/4/8/16, 1 and 4 steps, ``torch.compile`` off and on.

Reported per configuration: images/s, peak GPU memory, and the fraction of the FLOP ceiling, from
the per-image costs counted by rdmeval's cost model (``rdmeval.generators.cpu_cost.module_cost``, the
same count the CPU warning uses) at the ctx used: at ctx 48, DiT 6.93 TFLOP per step, the 27 text-encoder
layers 0.26 TFLOP (shared by the samples of a prompt), VAE decode 2.52 TFLOP (at ctx 512 the DiT step is
10.17). The JSON records the three. Ceiling ~790 TFLOP/s bf16 on an H100/H200. Targets at batch 16 per H100: student (1 step) >= 25
images/s, teacher (4 steps) >= 9 images/s.

    python benchmarks/perf/klein_gpu.py                       # the full sweep, bf16, ~5-8 min on an H100
    python benchmarks/perf/klein_gpu.py --batch-sizes 16 --compile off --iters 3
    python benchmarks/perf/klein_gpu.py --precision faithful --batch-sizes 16 --compile off

Results go to stdout (a markdown table) and to ``--out`` (JSON; default ``$OUT/klein_gpu.json`` when
``$OUT`` is set). A ``--max-seconds`` budget stops the sweep early and still writes what ran.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

CEILING_TFLOPS = 790.0
TARGETS = {1: 25.0, 4: 9.0}  # images/s at batch 16 per H100

KLEIN_4B_DIT = {
    "patch_size": 1, "in_channels": 128, "num_layers": 5, "num_single_layers": 20, "attention_head_dim": 128,
    "num_attention_heads": 24, "joint_attention_dim": 7680, "timestep_guidance_channels": 256, "mlp_ratio": 3.0,
    "axes_dims_rope": (32, 32, 32, 32), "rope_theta": 2000, "eps": 1e-6, "guidance_embeds": False,
}
QWEN3_4B = {  # Qwen/Qwen3-4B config.json
    "vocab_size": 151936, "hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 40960, "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True, "rope_theta": 1_000_000,
}


def _init_(module: torch.nn.Module, seed: int) -> None:
    """Random values in place, scaled so activations stay finite through the deep stacks."""
    g = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 1.0 / p[0].numel() ** 0.5, generator=g)
            elif "norm" in name or name.endswith("scale"):
                p.fill_(1.0)
            else:
                p.zero_()


# --smoke: the same script at toy widths, so its logic can be checked on a CPU
SMOKE_DIT = {**KLEIN_4B_DIT, "num_layers": 1, "num_single_layers": 1, "num_attention_heads": 2, "joint_attention_dim": 192}
SMOKE_QWEN = {**QWEN3_4B, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16}
SMOKE_VAE = {"block_out_channels": (32, 32, 32, 32), "layers_per_block": 1}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_modules(device: torch.device, dtype: torch.dtype, text_depth: int = 27, smoke: bool = False):
    from diffusers import AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2Transformer2DModel
    from transformers import AutoTokenizer, Qwen3Config, Qwen3Model

    from rdmeval.fixtures import build_tiny_klein
    from rdmeval.fixtures.tiny_klein import SCHEDULER_CONFIG

    with torch.device("meta"):
        dit = Flux2Transformer2DModel(**(SMOKE_DIT if smoke else KLEIN_4B_DIT))
    n_params = sum(p.numel() for p in dit.parameters())
    dit = torch.nn.Module.to(dit.to_empty(device=device), dtype)
    _init_(dit, 0)
    cfg = Qwen3Config(**{**(SMOKE_QWEN if smoke else QWEN3_4B), "num_hidden_layers": text_depth})
    with torch.device("meta"):
        text = Qwen3Model(cfg)
    text = text.to_empty(device=device).to(dtype)
    _init_(text, 1)
    text.rotary_emb = type(text.rotary_emb)(config=cfg).to(device)  # its inv_freq buffer was left empty by to_empty
    vae = torch.nn.Module.to(AutoencoderKLFlux2(**(SMOKE_VAE if smoke else {})), device=device, dtype=dtype).eval()
    fixture = build_tiny_klein(Path(tempfile.gettempdir()) / "rdmeval-tiny-klein")
    tokenizer = AutoTokenizer.from_pretrained(fixture["base"] / "tokenizer")
    scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG)
    return dit, vae, text, tokenizer, scheduler, n_params


def image_cost(ctx_len: int, text_depth: int = 27, smoke: bool = False):
    """The per-image FLOPs of these shapes at 512 px and ``ctx_len``, counted by rdmeval's own cost model
    (:func:`rdmeval.generators.cpu_cost.module_cost`) on meta-device copies of the modules."""
    from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    from rdmeval.generators.cpu_cost import module_cost

    with torch.device("meta"):
        dit = Flux2Transformer2DModel(**(SMOKE_DIT if smoke else KLEIN_4B_DIT))
        vae = AutoencoderKLFlux2(**(SMOKE_VAE if smoke else {}))
        text = Qwen3Model(Qwen3Config(**{**(SMOKE_QWEN if smoke else QWEN3_4B), "num_hidden_layers": text_depth}))
    return module_cost(dit, vae, text, height=512, width=512, ctx_len=ctx_len)


def flops_per_image(cost, steps: int, samples_per_prompt: int) -> float:
    """TFLOP per image: ``steps`` DiT steps, the VAE decode, and the text encoder shared by a prompt's samples."""
    return (cost.dit_flop_per_step * steps + cost.text_flop / samples_per_prompt + cost.vae_flop) / 1e12


def run_config(gen, cost, batch: int, steps: int, iters: int, warmup: int, tag: str) -> dict:
    gen.steps = steps  # benchmark shortcut: one generator serves both step counts
    per_prompt = min(4, batch)
    counter = [0]

    def batch_inputs():
        counter[0] += 1
        prompts = [f"{tag} photo {counter[0]} of object {i // per_prompt}" for i in range(batch)]
        z = torch.randn(batch, *gen.latent_shape, device=gen.device)
        return prompts, z

    cuda = gen.device.type == "cuda"
    _sync(gen.device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(warmup):
        gen.generate(*batch_inputs())
    _sync(gen.device)
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(iters):
        gen.generate(*batch_inputs())
    _sync(gen.device)
    dt = time.perf_counter() - t0
    ips = batch * iters / dt
    tflop = flops_per_image(cost, steps, per_prompt)
    return {
        "batch": batch, "steps": steps, "images_per_s": ips, "seconds_per_batch": dt / iters, "warmup_s": warm_s,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"), "tflop_per_image": tflop,
        "achieved_tflops": tflop * ips, "ceiling_fraction": tflop * ips / CEILING_TFLOPS,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-sizes", default="1,4,8,16")
    ap.add_argument("--steps", default="1,4")
    ap.add_argument("--compile", default="both", choices=["off", "on", "both"])
    ap.add_argument("--precision", default="bf16", choices=["bf16", "faithful"])
    ap.add_argument("--ctx-len", type=int, default=48)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--max-seconds", type=float, default=480.0, help="stop starting new configurations after this")
    ap.add_argument("--out", help="JSON results (default $OUT/klein_gpu.json if $OUT is set)")
    ap.add_argument("--smoke", action="store_true", help="toy widths on any device (checks the script, not the GPU)")
    args = ap.parse_args()
    if not torch.cuda.is_available() and not args.smoke:
        print("klein_gpu.py needs a CUDA device (or --smoke to check the script on a CPU)", file=sys.stderr)
        return 2

    from rdmeval.generators.klein import KleinGenerator

    start = time.perf_counter()
    torch.backends.cuda.matmul.allow_tf32 = True
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    dit, vae, text, tokenizer, scheduler, n_params = build_modules(device, dtype, smoke=args.smoke)
    build_s = time.perf_counter() - start
    cost = image_cost(args.ctx_len, smoke=args.smoke)
    info = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu (smoke)", "smoke": args.smoke, "torch": torch.__version__, "precision": args.precision, "ctx_len": args.ctx_len,
            "dit_params": n_params, "build_s": build_s, "resolution": 512, "tflop_dit_step": cost.dit_flop_per_step / 1e12,
            "tflop_text_encoder": cost.text_flop / 1e12, "tflop_vae_decode": cost.vae_flop / 1e12}
    print(f"# klein-4B {'TOY (smoke) shapes' if args.smoke else 'real shapes'}, random weights: {info['device']}, torch {torch.__version__}, DiT {n_params:,} params, "
          f"precision {args.precision}, ctx {args.ctx_len}, built in {build_s:.0f}s", flush=True)

    results = []
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    batches = [int(b) for b in args.batch_sizes.split(",")]
    steps_list = [int(s) for s in args.steps.split(",")]
    stopped = False
    for compiled in modes:  # compile last: it changes the module in place
        gen = KleinGenerator.from_modules(preset="bench", transformer=dit, vae=vae, text_encoder=text, tokenizer=tokenizer, scheduler=scheduler,
                                          steps=1, ctx_len=args.ctx_len, precision=args.precision, compile=compiled, device=str(device))
        for steps in steps_list:
            for batch in batches:
                if time.perf_counter() - start > args.max_seconds:
                    stopped = True
                    break
                r = run_config(gen, cost, batch, steps, args.iters, args.warmup + (1 if compiled else 0), f"c{int(compiled)}s{steps}b{batch}")
                r["compile"] = compiled
                results.append(r)
                print(f"compile={'on ' if compiled else 'off'} steps={steps} batch={batch:2d}: {r['images_per_s']:7.2f} img/s, "
                      f"peak {r['peak_mem_gib']:5.1f} GiB, {r['achieved_tflops']:6.1f} TFLOP/s = {100 * r['ceiling_fraction']:4.1f}% of "
                      f"{CEILING_TFLOPS:.0f} (warmup {r['warmup_s']:.1f}s)", flush=True)
            if stopped:
                break
        if stopped:
            print(f"# stopped: --max-seconds {args.max_seconds} reached", flush=True)
            break

    print("\n| compile | steps | batch | images/s | peak GiB | TFLOP/s | % of ceiling |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {'on' if r['compile'] else 'off'} | {r['steps']} | {r['batch']} | {r['images_per_s']:.2f} | {r['peak_mem_gib']:.1f} | "
              f"{r['achieved_tflops']:.0f} | {100 * r['ceiling_fraction']:.1f} |")
    for steps, target in TARGETS.items():
        best = max((r["images_per_s"] for r in results if r["steps"] == steps and r["batch"] == 16), default=None)
        if best is not None:
            verdict = "meets" if best >= target else "misses"
            print(f"{'student' if steps == 1 else 'teacher'} ({steps} step{'s' if steps > 1 else ''}) at batch 16: best {best:.2f} images/s, "
                  f"{verdict} the target {target} images/s")
    out = args.out or (os.path.join(os.environ["OUT"], "klein_gpu.json") if os.environ.get("OUT") else None)
    if out:
        Path(out).write_text(json.dumps({"info": info, "results": results}, indent=2) + "\n")
        print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
