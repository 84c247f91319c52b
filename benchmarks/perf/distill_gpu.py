"""GPU step time and memory of the RDM training step at the real FLUX.2 [klein]-4B shapes (random weights).

What is built, on the GPU, without downloading anything:

- the student: diffusers ``Flux2Transformer2DModel`` with klein-4B's config (5 double + 20 single
  blocks, 24 x 128 heads, 3,875,544,576 parameters), fp32 master weights, bf16 autocast,
  per-block activation checkpointing; AdamW(0.9, 0.95, wd 0) at the released lr;
- the FLUX.2 VAE (default ``AutoencoderKLFlux2`` config), frozen, bf16, decoded with gradient;
- the 10-encoder battery at its real resolutions and feature widths, as timm architectures with
  random weights (the released backbones where timm has them; ViT-g/14 stands in for WebSSL-DINO-1B
  and three ViT-B for the DreamSim ensemble). Inception runs in fp32 outside autocast, the others
  under bf16 autocast (``--battery-bf16`` also casts their weights, the H100 memory knob);
- random joint Nyström bundles (M = 8192 landmarks, d_in = d_img + 1152), a random τ table and
  random fp16 ctx rows (48 x 7680) copied from the host per chunk, like the memory-mapped pool.

The step is the trainer's (``rdmeval.distill.trainer.Trainer._train_step``), written out so that it
can run on a sharded student: GradCache over ``--chunks`` chunks of ``--batch-size`` per rank
(features gathered across ranks with the differentiable all-gather), the self-normalised Nyström
loss, then, replicated, an all-reduce mean of the gradients (no DDP, as the reference) or, with
FSDP2 (``fully_shard`` per DiT block, then the root), FSDP's reduce-scatter; clip at 4.0; AdamW.

Reported per mode (replicated, fsdp): the step time for ``--chunks`` chunks, the time per chunk,
its extrapolation to the released rollout of 10,240 (grad_accum = 10240 / (batch x world) chunks,
plus the loss at N = 10240 timed on its own), the GPU-hours for 180 steps, and the peak GPU memory
(allocated and reserved) per rank. A mode that runs out of memory is reported as such.

    torchrun --nproc_per_node 8 benchmarks/perf/distill_gpu.py                 # both modes, 8 GPUs
    python benchmarks/perf/distill_gpu.py --shard fsdp --chunks 2 --steps 2    # one GPU
    python benchmarks/perf/distill_gpu.py --dry-run                            # CPU: tiny widths, checks every shape

Results go to stdout (a markdown table, rank 0) and to ``--out`` (JSON; default
``$OUT/distill_gpu.json`` when ``$OUT`` is set).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import socket
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch import Tensor, nn  # noqa: E402

# diffusers' Flux2Transformer2DModel config of FLUX.2 [klein]-4B (as in benchmarks/perf/klein_gpu.py)
KLEIN_4B_DIT = {
    "patch_size": 1, "in_channels": 128, "num_layers": 5, "num_single_layers": 20, "attention_head_dim": 128,
    "num_attention_heads": 24, "joint_attention_dim": 7680, "timestep_guidance_channels": 256, "mlp_ratio": 3.0,
    "axes_dims_rope": (32, 32, 32, 32), "rope_theta": 2000, "eps": 1e-6, "guidance_embeds": False,
}
DRY_DIT = {**KLEIN_4B_DIT, "num_layers": 1, "num_single_layers": 1, "num_attention_heads": 2, "joint_attention_dim": 192}
DRY_VAE = {"block_out_channels": (32, 32, 32, 32), "layers_per_block": 1}
CTX_LEN, D_TXT, LANDMARKS, ROLLOUT, LR, CLIP, RELEASED_STEP = 48, 1152, 8192, 10240, 2.83e-6, 4.0, 180
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
OPENAI_CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@dataclass(frozen=True)
class Encoder:
    """One training encoder: its real resolution and width, and the timm architecture(s) standing in."""

    name: str
    timm: tuple[tuple[str, dict, int], ...]  # (model name, create kwargs, output width after projection)
    resolution: int
    dim: int
    norm: tuple[tuple[float, float, float], tuple[float, float, float]] = IMAGENET
    interpolation: str = "bicubic"
    precision: str = "bf16"
    note: str = field(default="", compare=False)


BATTERY = (
    Encoder("inception", (("inception_v3", {}, 2048),), 299, 2048, HALF, "bilinear", "fp32", "FID Inception-v3 architecture"),
    Encoder("convnext", (("convnextv2_base", {}, 1024),), 224, 1024),
    Encoder("mae", (("vit_large_patch16_224", {"global_pool": "avg"}, 1024),), 224, 1024),
    Encoder("clip", (("vit_large_patch14_clip_224", {"img_size": 256}, 1024),), 256, 1024, OPENAI_CLIP),
    Encoder("dinov3_l", (("vit_large_patch16_dinov3", {}, 1024),), 224, 1024),
    Encoder("pe_core_l", (("vit_pe_core_large_patch14_336", {"img_size": 224}, 1024),), 224, 1024, HALF),
    Encoder("siglip2", (("vit_so400m_patch16_siglip_256", {"img_size": 224}, 1152),), 224, 1152, HALF),
    Encoder("aimv2_huge", (("aimv2_huge_patch14_224", {}, 1536),), 224, 1536, OPENAI_CLIP),
    Encoder("webssl_dino_1b", (("vit_giant_patch14_dinov2", {"img_size": 224}, 1536),), 224, 1536,
            note="ViT-g/14 stands in for facebook/webssl-dino1b-full2b-224"),
    Encoder("dreamsim", (("vit_base_patch16_224", {}, 768), ("vit_base_patch16_clip_224", {}, 512), ("vit_base_patch32_clip_224", {}, 512)),
            224, 1792, note="three ViT-B (DINO, CLIP, OpenCLIP) concatenated: 768 + 512 + 512"),
)


# ------------------------------------------------------------------------------------------ distributed


def init_group() -> tuple[int, int, torch.device]:
    """Join torchrun's group, or make a one-rank group (FSDP2 needs one even on a single device)."""
    cuda = torch.cuda.is_available()
    if "WORLD_SIZE" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    return dist.get_world_size(), dist.get_rank(), device


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------ models


def init_(module: nn.Module, seed: int) -> None:
    """Random values scaled so activations stay finite through deep stacks (as klein_gpu.py)."""
    g = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 1.0 / p[0].numel() ** 0.5, generator=g)
            elif "norm" in name or name.endswith("scale"):
                p.fill_(1.0)
            else:
                p.zero_()


def build_student(dit_config: dict, device: torch.device) -> nn.Module:
    from diffusers import Flux2Transformer2DModel

    with torch.device(device):
        dit = Flux2Transformer2DModel(**dit_config)
    init_(dit, 0)

    def checkpointed(module, *args):  # as the reference: non-reentrant, no RNG state (klein has no dropout)
        return torch.utils.checkpoint.checkpoint(module.__call__, *args, use_reentrant=False, preserve_rng_state=False)

    dit.enable_gradient_checkpointing(checkpointed)
    return dit.float().train().requires_grad_(True)


def build_vae(dry: bool, device: torch.device) -> nn.Module:
    from diffusers import AutoencoderKLFlux2

    with torch.device(device):
        vae = AutoencoderKLFlux2(**(DRY_VAE if dry else {}))
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    return nn.Module.to(vae, dtype=dtype).eval().requires_grad_(False)  # nn.Module.to: diffusers warns on a plain cast


class TimmVector(nn.Module):
    """A timm backbone's pooled features (its own pooling), projected when the released head is narrower."""

    def __init__(self, name: str, kwargs: dict, width: int):
        super().__init__()
        import timm

        self.model = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
        self.proj = nn.Linear(self.model.num_features, width, bias=False) if self.model.num_features != width else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.model.forward_head(self.model.forward_features(x), pre_logits=True))


class Concat(nn.Module):
    def __init__(self, parts: list[nn.Module]):
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([p(x) for p in self.parts], dim=1)


class TinyStandIn(nn.Module):
    """--dry-run: a patch convolution, a mean and a linear map to the encoder's real width."""

    def __init__(self, dim: int):
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 16, stride=16)
        self.head = nn.Linear(8, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.patch(x).mean(dim=(2, 3)))


def build_battery(device: torch.device, *, dry: bool, bf16_weights: bool) -> dict[str, nn.Module]:
    from rdmeval.distill.battery import BatteryEncoder, EncoderSpec

    battery = {}
    for enc in BATTERY:
        spec = EncoderSpec(name=enc.name, library="timm", model_id="+".join(t[0] for t in enc.timm), resolution=enc.resolution,
                           interpolation=enc.interpolation, mean=enc.norm[0], std=enc.norm[1], pool="vector", dim=enc.dim,
                           precision=enc.precision)
        with torch.device(device):
            if dry:
                backbone: nn.Module = TinyStandIn(enc.dim)
            else:
                parts = [TimmVector(*t) for t in enc.timm]
                backbone = parts[0] if len(parts) == 1 else Concat(parts)
        if bf16_weights and enc.precision == "bf16" and device.type == "cuda":
            backbone = backbone.to(torch.bfloat16)
        battery[enc.name] = BatteryEncoder(spec, backbone)
    return battery


def count_real_params() -> dict[str, int]:
    """Parameter counts at the real shapes, built on the meta device (no memory)."""
    from diffusers import Flux2Transformer2DModel

    counts = {}
    with torch.device("meta"):
        counts["student"] = sum(p.numel() for p in Flux2Transformer2DModel(**KLEIN_4B_DIT).parameters())
        for enc in BATTERY:
            counts[enc.name] = sum(sum(p.numel() for p in TimmVector(*t).parameters()) for t in enc.timm)
    return counts


# ------------------------------------------------------------------------------------------ the task


@dataclass
class Chunk:
    noise: Tensor
    idx: Tensor
    ctx: Tensor


class BenchTask:
    """One-step student -> VAE -> battery -> joint features [φ | β·τ], as the FLUX task does."""

    def __init__(self, student: nn.Module, vae: nn.Module, battery: dict[str, nn.Module], *, latent: int, ctx_dim: int,
                 device: torch.device, pool_rows: int = 4096):
        from rdmeval.distill.reference import ReferenceBundle

        self.student, self.vae, self.battery, self.latent, self.ctx_dim, self.device = student, vae, battery, latent, ctx_dim, device
        g = torch.Generator(device=device).manual_seed(7)
        self.text_table = nn.functional.normalize(torch.randn(pool_rows, D_TXT, generator=g, device=device), dim=1)
        self.bundles = {}
        for enc in BATTERY:
            m = LANDMARKS if device.type == "cuda" else 64
            z = torch.randn(m, enc.dim + D_TXT, generator=g, device=device)
            alpha = torch.rand(m, generator=g, device=device) / m
            self.bundles[enc.name] = ReferenceBundle(Z=z, alpha=alpha, sigma=8.0, k_rr=0.05, beta=8.0, d_img=enc.dim, d_txt=D_TXT)

    def sample_chunk(self, generator: torch.Generator, batch: int) -> Chunk:
        noise = torch.randn(batch, 128, self.latent, self.latent, generator=generator)
        idx = torch.randint(0, self.text_table.shape[0], (batch,), generator=generator)
        ctx = torch.randn(batch, CTX_LEN, self.ctx_dim, generator=generator).half()  # the pool is fp16 on the host
        return Chunk(noise.to(self.device), idx.to(self.device), ctx.to(self.device, non_blocking=True))

    def render(self, chunk: Chunk) -> Tensor:
        from diffusers import Flux2KleinPipeline

        noise = chunk.noise.float()
        b, c, h, w = noise.shape
        packed = Flux2KleinPipeline._pack_latents(noise)
        img_ids = Flux2KleinPipeline._prepare_latent_ids(noise).to(noise.device)
        txt_ids = Flux2KleinPipeline._prepare_text_ids(chunk.ctx).to(noise.device)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if noise.is_cuda else contextlib.nullcontext()
        with autocast, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Mismatch dtype between input and weight")
            v = self.student(hidden_states=packed, timestep=torch.ones(b, device=noise.device), guidance=None,
                             encoder_hidden_states=chunk.ctx.float(), txt_ids=txt_ids, img_ids=img_ids, return_dict=False)[0]
        x0 = (noise.reshape(b, c, h * w).transpose(1, 2) - v.float()).transpose(1, 2).reshape(b, c, h, w)
        vae = self.vae
        z = x0.to(vae.dtype)
        mean = vae.bn.running_mean.view(1, -1, 1, 1)
        std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps)
        image = vae.decode(Flux2KleinPipeline._unpatchify_latents(z * std + mean), return_dict=False)[0]
        return torch.clamp(image.float() * 0.5 + 0.5, 0.0, 1.0)

    def encode(self, chunk: Chunk) -> dict[str, Tensor]:
        from rdmeval.distill.reference import joint_feature

        image = self.render(chunk)
        tau = self.text_table[chunk.idx]
        return {name: joint_feature(enc(image), tau, self.bundles[name].beta) for name, enc in self.battery.items()}


# ------------------------------------------------------------------------------------------ the step


def train_step(task: BenchTask, optimizer, params, *, step: int, chunks: int, batch: int, world: int, rank: int, fsdp: bool) -> float:
    """Trainer._train_step, with FSDP's reduce-scatter in place of the all-reduce when sharded."""
    from rdmeval.distill.gradcache import all_gather_with_grad, all_reduce_mean_, gradcache_backward
    from rdmeval.distill.loss import objective

    optimizer.zero_grad(set_to_none=True)
    gens = [torch.Generator().manual_seed(1_000_003 * step + rank * chunks + c) for c in range(chunks)]
    batch_chunks = [task.sample_chunk(g, batch) for g in gens]
    weights = {name: 1.0 for name in task.bundles}

    def loss_fn(features: dict[str, Tensor]) -> Tensor:
        return objective(features, task.bundles, weights, gen_chunk=8192).total

    gather = (lambda x: all_gather_with_grad(x)) if world > 1 else None
    total = gradcache_backward(batch_chunks, task.encode, loss_fn, scale=1.0 / chunks, gather_fn=gather)
    if world > 1 and not fsdp:
        all_reduce_mean_([p.grad for p in params])
    torch.nn.utils.clip_grad_norm_(params, CLIP)
    optimizer.step()
    return float(total)


def time_loss_at_full_rollout(device: torch.device, n: int) -> float:
    """Seconds for the loss forward + backward of all 10 encoders on N = n global features (every rank does this)."""
    from rdmeval.distill.loss import objective
    from rdmeval.distill.reference import ReferenceBundle

    g = torch.Generator(device=device).manual_seed(3)
    m = LANDMARKS if device.type == "cuda" else 64
    feats = {e.name: torch.randn(n, e.dim + D_TXT, generator=g, device=device, requires_grad=True) for e in BATTERY}
    bundles = {e.name: ReferenceBundle(Z=torch.randn(m, e.dim + D_TXT, generator=g, device=device), alpha=torch.rand(m, generator=g, device=device) / m,
                                       sigma=8.0, k_rr=0.05) for e in BATTERY}
    times = []
    for _ in range(3):
        sync(device)
        t0 = time.perf_counter()
        objective(feats, bundles, {k: 1.0 for k in feats}, gen_chunk=8192).total.backward()
        sync(device)
        times.append(time.perf_counter() - t0)
    return min(times[1:]) if len(times) > 1 else times[0]


def run_mode(mode: str, args, *, vae, battery, world: int, rank: int, device: torch.device, dit_config: dict, latent: int) -> dict:
    fsdp = mode == "fsdp"
    result: dict = {"mode": mode, "world": world, "batch_per_rank": args.batch_size, "chunks": args.chunks}
    student = optimizer = task = None
    try:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        student = build_student(dit_config, device)
        if fsdp:
            from torch.distributed.fsdp import fully_shard

            for block in [*student.transformer_blocks, *student.single_transformer_blocks]:
                fully_shard(block)
            fully_shard(student)
        params = [p for p in student.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.95), weight_decay=0.0, eps=1e-8)
        task = BenchTask(student, vae, battery, latent=latent, ctx_dim=dit_config["joint_attention_dim"], device=device)
        kw = dict(chunks=args.chunks, batch=args.batch_size, world=world, rank=rank, fsdp=fsdp)
        for s in range(args.warmup):
            train_step(task, optimizer, params, step=s, **kw)
        times, losses = [], []
        for s in range(args.steps):
            sync(device)
            dist.barrier()
            t0 = time.perf_counter()
            losses.append(train_step(task, optimizer, params, step=args.warmup + s, **kw))
            sync(device)
            times.append(time.perf_counter() - t0)
        step_s = statistics.median(times)
        accum = ROLLOUT / (args.batch_size * world)
        result.update(step_s=step_s, chunk_s=step_s / args.chunks, loss=losses[-1], finite=all(map(lambda v: v == v, losses)),
                      rollout_grad_accum=accum, rollout_step_s=step_s / args.chunks * accum + args.loss_s,
                      samples_per_s_per_rank=args.batch_size * args.chunks / step_s)
        result["gpu_hours_to_step_180"] = result["rollout_step_s"] * RELEASED_STEP * world / 3600
    except torch.cuda.OutOfMemoryError as exc:
        result.update(oom=True, error=str(exc).splitlines()[0])
    finally:
        if device.type == "cuda":
            result["peak_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            result["peak_reserved_gib"] = torch.cuda.max_memory_reserved(device) / 2**30
        del student, optimizer, task
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result


# ------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shard", default="both", choices=["none", "fsdp", "both"], help="replicated student, FSDP2, or both (default)")
    ap.add_argument("--batch-size", type=int, default=8, help="samples per rank per chunk (released: 8)")
    ap.add_argument("--chunks", type=int, default=2, help="chunks per timed step (released: 160 = 10240 / (8 x 8)); time scales linearly")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per mode (default 2)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (the first creates the AdamW state)")
    ap.add_argument("--battery-bf16", action="store_true", help="cast the non-Inception encoders' weights to bf16")
    ap.add_argument("--loss-n", type=int, default=ROLLOUT, help="global N at which the loss is timed on its own (default 10240)")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny widths at 64x64: check every shape and both modes, time nothing")
    ap.add_argument("--out", help="JSON results (default $OUT/distill_gpu.json if $OUT is set)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available() and not args.dry_run:
        print("distill_gpu.py needs CUDA devices (or --dry-run to check the script on a CPU)", file=sys.stderr)
        return 2
    if args.dry_run:
        args.batch_size, args.chunks, args.steps, args.warmup, args.loss_n = 2, 2, 1, 0, 64
        torch.set_num_threads(min(4, os.cpu_count() or 1))

    world, rank, device = init_group()
    torch.backends.cuda.matmul.allow_tf32 = True
    say = print if rank == 0 else (lambda *a, **k: None)
    counts = count_real_params()
    battery_params = sum(v for k, v in counts.items() if k != "student")
    say(f"# klein-4B student {counts['student']:,} params (fp32 weights + grads + AdamW = {16 * counts['student'] / 2**30:.1f} GiB replicated, "
        f"{16 * counts['student'] / world / 2**30:.1f} GiB per rank sharded over {world}); battery {battery_params:,} params "
        f"({(2 if args.battery_bf16 else 4) * battery_params / 2**30:.1f} GiB); world {world}", flush=True)

    dit_config = DRY_DIT if args.dry_run else KLEIN_4B_DIT
    resolution = 64 if args.dry_run else 512
    latent = resolution // 16
    t0 = time.perf_counter()
    vae = build_vae(args.dry_run, device)
    battery = build_battery(device, dry=args.dry_run, bf16_weights=args.battery_bf16)
    info = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (dry run)", "torch": torch.__version__,
            "dry_run": args.dry_run, "resolution": resolution, "params": counts, "battery_bf16": args.battery_bf16,
            "build_s": time.perf_counter() - t0}
    if args.dry_run:
        say("# dry run: tiny widths on the CPU; the times below check the code path, they measure nothing")
        shapes = check_shapes(dit_config, vae, battery, latent, device)
        info["shapes"] = shapes
        for k, v in shapes.items():
            say(f"  {k:16s} {v}")
    args.loss_s = time_loss_at_full_rollout(device, args.loss_n)
    info["loss_s_at_rollout"] = args.loss_s
    say(f"# loss (10 encoders, N = {args.loss_n}, M = {LANDMARKS if device.type == 'cuda' else 64}) forward + backward: {args.loss_s:.3f} s", flush=True)

    modes = {"none": ["replicated"], "fsdp": ["fsdp"], "both": ["replicated", "fsdp"]}[args.shard]
    results = []
    for mode in modes:
        r = run_mode(mode, args, vae=vae, battery=battery, world=world, rank=rank, device=device, dit_config=dit_config, latent=latent)
        results.append(r)
        say(json.dumps(r), flush=True)
    say("\n| mode | world | batch/rank | step s (chunks) | s/chunk | rollout-10240 step s | GPU-h to s180 | peak alloc GiB | peak reserved GiB |")
    say("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if r.get("oom"):
            say(f"| {r['mode']} | {r['world']} | {r['batch_per_rank']} | OOM | | | | {r.get('peak_allocated_gib', float('nan')):.1f} | |")
            continue
        say(f"| {r['mode']} | {r['world']} | {r['batch_per_rank']} | {r['step_s']:.2f} ({r['chunks']}) | {r['chunk_s']:.2f} | "
            f"{r['rollout_step_s']:.0f} | {r['gpu_hours_to_step_180']:.0f} | {r.get('peak_allocated_gib', float('nan')):.1f} | "
            f"{r.get('peak_reserved_gib', float('nan')):.1f} |")
    out = args.out or (str(Path(os.environ["OUT"]) / "distill_gpu.json") if os.environ.get("OUT") else None)
    if out and rank == 0:
        Path(out).write_text(json.dumps({**info, "results": results}, indent=2) + "\n")
    dist.barrier()
    dist.destroy_process_group()
    return 0 if all(not r.get("oom") for r in results) else 1


def check_shapes(dit_config: dict, vae, battery: dict[str, nn.Module], latent: int, device: torch.device) -> dict[str, str]:
    """--dry-run: one chunk through every stage, shapes compared with what the released run has."""
    student = build_student(dit_config, device)
    task = BenchTask(student, vae, battery, latent=latent, ctx_dim=dit_config["joint_attention_dim"], device=device)
    chunk = task.sample_chunk(torch.Generator().manual_seed(0), 2)
    with torch.no_grad():
        image = task.render(chunk)
        feats = task.encode(chunk)
    assert image.shape == (2, 3, 16 * latent, 16 * latent), image.shape
    shapes = {"noise": str(tuple(chunk.noise.shape)), "ctx": str(tuple(chunk.ctx.shape)), "image": str(tuple(image.shape))}
    for enc in BATTERY:
        f = feats[enc.name]
        assert f.shape == (2, enc.dim + D_TXT) and bool(torch.isfinite(f).all()), (enc.name, f.shape)
        shapes[enc.name] = f"{tuple(f.shape)} (resized to {enc.resolution}, {enc.dim} + {D_TXT})"
    return shapes


if __name__ == "__main__":
    raise SystemExit(main())
