"""GPU step time and memory of the RDM trainer at the real klein-4B shapes (random init; a benchmark).

The student is diffusers' ``Flux2Transformer2DModel`` at FLUX.2 [klein]-4B's config (3.9 B parameters,
fp32 master weights, bf16 autocast, per-block checkpointing) with the klein VAE in bf16; the battery is
ten stand-in encoders at the released encoders' input resolutions and feature widths (a patch
embedding and ``--battery-depth`` transformer layers each: the shapes of the loss are real, the
encoders' cost is lower than the real backbones'), or, with ``--battery architectures``, the released
encoders' own architectures with random weights (3.8 B parameters: the seven timm encoders through
``rdmeval.distill.encoders.load_encoder(pretrained=False)``, timm's Inception-v3 for the FID network,
ViT-g/14 for WebSSL-DINO-1B and three ViT-B for DreamSim's ensemble); bundles are random with M = 8192 landmarks and
d_in = d_img + 1152; ctx rows (48 × 7680) and τ rows (1152) are random. Nothing is downloaded.

Each configuration runs ``--warmup`` untimed and ``--steps`` timed optimizer steps of
``rdmeval.distill.trainer.Trainer`` (GradCache double pass, loss on the global batch, all-reduce or
FSDP2 reduce-scatter, clipping, AdamW) and prints one JSON line: seconds per step, samples/s, peak
GPU memory per rank. A step's rollout is ``--batch-size × world × --grad-accum`` (the released 10,240
is 8 × 8 × 160; start small: one step at that size takes minutes).

    torchrun --nproc-per-node 8 benchmarks/perf/distill_gpu.py --batch-size 8 --grad-accum 4
    torchrun --nproc-per-node 8 benchmarks/perf/distill_gpu.py --batch-size 8 --grad-accum 4 --fsdp
    torchrun --nproc-per-node 8 benchmarks/perf/distill_gpu.py --batch-size 8 --grad-accum 4 --battery architectures
    python benchmarks/perf/distill_gpu.py --dry-run      # CPU: tiny widths, checks the script's wiring

Without ``--fsdp`` every rank holds the fp32 student, its gradients and AdamW's two moments
(~16 B/parameter, ~62 GB) plus activations: it fits a 141 GB H200 and not an 80 GB card; ``--fsdp``
shards those 16 B/parameter over the ranks.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

KLEIN_4B_DIT = {
    "patch_size": 1, "in_channels": 128, "num_layers": 5, "num_single_layers": 20, "attention_head_dim": 128,
    "num_attention_heads": 24, "joint_attention_dim": 7680, "timestep_guidance_channels": 256, "mlp_ratio": 3.0,
    "axes_dims_rope": (32, 32, 32, 32), "rope_theta": 2000, "eps": 1e-6, "guidance_embeds": False,
}
DRY_DIT = {**KLEIN_4B_DIT, "num_layers": 1, "num_single_layers": 1, "num_attention_heads": 2, "joint_attention_dim": 192}
DRY_VAE = {"block_out_channels": (32, 32, 32, 32), "layers_per_block": 1}
TEXT_DIM = 1152
CTX_LEN = 48


class RandomRows:
    """A table stand-in: ``rows[idx]`` gives seeded random rows of ``shape`` (unit rows if ``unit``)."""

    def __init__(self, n: int, shape: tuple[int, ...], *, unit: bool, scale: float = 1.0):
        self.n, self.shape_of_row, self.unit, self.scale = n, shape, unit, scale

    def __len__(self) -> int:
        return self.n

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n, *self.shape_of_row)

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        flat = torch.as_tensor(idx).reshape(-1)
        rows = []
        for i in flat.tolist():
            x = torch.randn(self.shape_of_row, generator=torch.Generator().manual_seed(int(i))) * self.scale
            rows.append(x / x.norm() if self.unit else x)
        return torch.stack(rows).reshape(*torch.as_tensor(idx).shape, *self.shape_of_row)


class StandInBackbone(nn.Module):
    """Patch embedding + class token + ``depth`` transformer layers: tokens (B, 1 + N, dim)."""

    def __init__(self, dim: int, patch: int, depth: int):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        heads = max(1, dim // 64)
        self.blocks = nn.Sequential(*[
            nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True, norm_first=True) for _ in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        return self.blocks(torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1))


def build_battery(depth: int, device: torch.device, dry: bool) -> dict:
    from rdmeval.distill.battery import BatteryEncoder, EncoderSpec
    from rdmeval.distill.encoders import RELEASED_BATTERY

    battery = {}
    for spec in RELEASED_BATTERY:
        dim = 16 if dry else spec.dim
        res = 32 if dry else spec.resolution
        stand = EncoderSpec(name=spec.name, library="tiny", model_id=f"stand-in:{spec.name}", resolution=res,
                            interpolation="bilinear" if spec.interpolation == "tf_bilinear" else spec.interpolation,
                            mean=spec.mean, std=spec.std, pool="cls", dim=dim, precision=spec.precision)
        patch = 14 if res % 14 == 0 and res % 16 else 16
        battery[spec.name] = BatteryEncoder(stand, StandInBackbone(dim, patch, depth)).to(device)
    return battery


class TimmVector(nn.Module):
    """A timm architecture (random weights) pooled by its own head, projected when the released width is narrower."""

    def __init__(self, name: str, width: int, **kwargs):
        super().__init__()
        import timm

        self.model = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
        self.proj = nn.Identity() if self.model.num_features == width else nn.Linear(self.model.num_features, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.model.forward_head(self.model.forward_features(x), pre_logits=True))


class Concat(nn.Module):
    def __init__(self, *parts: nn.Module):
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([p(x) for p in self.parts], dim=1)


def build_architectures(device: torch.device) -> dict:
    """The released battery's architectures with random weights, built on ``device`` (no download).

    The timm encoders go through the project's own loader (same model ids, pooling and input
    handling as the real battery); the three encoders that load from elsewhere get timm stand-ins
    of their size, pooled to their released widths.
    """
    from dataclasses import replace

    from rdmeval.distill.battery import BatteryEncoder
    from rdmeval.distill.encoders import RELEASED_BATTERY, load_encoder

    stand_ins = {
        "inception": lambda: TimmVector("inception_v3", 2048),  # the FID network is an Inception-v3
        "webssl_dino_1b": lambda: TimmVector("vit_giant_patch14_dinov2", 1536, img_size=224),  # ViT at 1536 x 40 layers
        "dreamsim": lambda: Concat(TimmVector("vit_base_patch16_224", 768), TimmVector("vit_base_patch16_clip_224", 512),
                                   TimmVector("vit_base_patch32_clip_224", 512)),  # DINO + CLIP + OpenCLIP ViT-B
    }
    battery = {}
    with torch.device(device):  # timm initialises on the GPU: seconds instead of minutes on the host
        for spec in RELEASED_BATTERY:
            if spec.name in stand_ins:
                interpolation = "bilinear" if spec.interpolation == "tf_bilinear" else spec.interpolation
                stand = replace(spec, library="timm", model_id=f"stand-in:{spec.name}", pool="vector", interpolation=interpolation)
                battery[spec.name] = BatteryEncoder(stand, stand_ins[spec.name]())
            else:
                battery[spec.name] = load_encoder(spec, device=device, pretrained=False)
    return battery


def build_task(args: argparse.Namespace, config, device: torch.device):
    from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel

    from rdmeval.distill.flux_model import OneStepFlux, enable_block_checkpointing
    from rdmeval.distill.flux_task import FluxTask, shard_student
    from rdmeval.distill.reference import ReferenceBundle

    with torch.device("meta"):
        dit = Flux2Transformer2DModel(**(DRY_DIT if args.dry_run else KLEIN_4B_DIT))
    n_params = sum(p.numel() for p in dit.parameters())
    dit = dit.to_empty(device=device)
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, p in dit.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 1.0 / p[0].numel() ** 0.5, generator=g)
            else:
                p.fill_(1.0) if "norm" in name else p.zero_()
    dit.train().requires_grad_(True)
    enable_block_checkpointing(dit)
    if args.fsdp and config.world_size > 1:
        shard_student(dit)
    vae_dtype = torch.float32 if args.dry_run else torch.bfloat16
    vae = AutoencoderKLFlux2(**(DRY_VAE if args.dry_run else {})).to(device=device, dtype=vae_dtype).eval().requires_grad_(False)
    if args.battery == "architectures" and not args.dry_run:
        battery = build_architectures(device)
    else:
        battery = build_battery(args.battery_depth, device, args.dry_run)
    m = 16 if args.dry_run else 8192
    text_dim = 8 if args.dry_run else TEXT_DIM
    bundles = {}
    for i, (name, enc) in enumerate(battery.items()):
        d_img = enc.spec.dim
        gz = torch.Generator().manual_seed(100 + i)
        bundles[name] = ReferenceBundle(
            Z=torch.randn(m, d_img + text_dim, generator=gz), alpha=torch.rand(m, generator=gz) / m, sigma=float(d_img) ** 0.5,
            k_rr=1e-3, sigma_scale=0.25, beta=float(d_img) ** 0.5, s_txt=1.0, d_img=d_img, d_txt=text_dim,
        ).to(device)
    joint_dim = int(dit.config.joint_attention_dim)
    renderer = OneStepFlux(dit, vae, autocast=not args.dry_run)
    res = 64 if args.dry_run else 512
    task = FluxTask(
        config=config, student=dit, renderer=renderer, battery=battery, bundles=bundles,
        ctx_table=RandomRows(100_479, (CTX_LEN if not args.dry_run else 8, joint_dim), unit=False),
        text_table=RandomRows(100_479, (text_dim,), unit=True), device=device, latent_shape=renderer.latent_shape(res),
    )
    return task, n_params


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=8, help="samples per chunk per rank (released: 8)")
    ap.add_argument("--grad-accum", type=int, default=4, help="chunks per rank per step (released: 160)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--fsdp", action="store_true", help="shard the student with FSDP2 (fully_shard per block)")
    ap.add_argument("--battery", default="standin", choices=["standin", "architectures"],
                    help="stand-in encoders (default) or the released architectures with random weights (needs timm)")
    ap.add_argument("--battery-depth", type=int, default=4, help="transformer layers per stand-in encoder")
    ap.add_argument("--dry-run", action="store_true", help="tiny widths on the CPU: checks the wiring, measures nothing")
    args = ap.parse_args(argv)

    from dataclasses import replace

    from rdmeval.distill.config import get_config
    from rdmeval.distill.run import init_distributed
    from rdmeval.distill.trainer import Trainer

    world, rank = init_distributed()
    if args.dry_run:
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        ap.error("no CUDA device: run on a GPU machine, or pass --dry-run to check the script on a CPU")
    else:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    base = get_config("flux_geall")
    rollout = args.batch_size * world * args.grad_accum
    config = replace(base, rollout_size=rollout, batch_size=args.batch_size, grad_accum=args.grad_accum, world_size=world,
                     fsdp=args.fsdp, gen_chunk=min(base.gen_chunk, rollout))
    task, n_params = build_task(args, config, device)
    trainer = Trainer(config, task)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        result = trainer.train_step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    if rank == 0:
        step = statistics.median(times)
        print(json.dumps({
            "dry_run": args.dry_run, "world_size": world, "fsdp": args.fsdp, "student_params": n_params,
            "batch_size": args.batch_size, "grad_accum": args.grad_accum, "rollout_size": rollout,
            "step_s_median": round(step, 3), "samples_per_s": round(rollout / step, 2),
            "released_step_s_estimate": round(step * 10_240 / rollout, 1),
            "gpu_hours_to_step_180_estimate": round(step * 10_240 / rollout * 180 * world / 3600, 1),
            "battery": "stand-in" if args.dry_run else args.battery,
            "peak_gpu_gib_rank0": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
            "loss": result.loss, "skipped": result.skipped,
        }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
