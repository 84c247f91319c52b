"""Does training learn? An exact MMD to the teacher, independent of the training objective.

The trainer minimises a surrogate: the biased Nyström MMD² of each encoder's joint features against a
frozen sample of teacher renders, with a cold bandwidth, self-normalised. That it falls shows the
surrogate is being fitted, not that the student's distribution is moving toward the teacher's. This
module measures the latter with none of the surrogate's parts:

- fresh *held-out* samples: teacher renders and student renders from noise seeds and prompts that
  training never sees (new ctx rows, not rows of the pool);
- the *exact*, *unbiased* MMD² (diagonal excluded, divisor n(n − 1)), no landmarks;
- a Gaussian kernel whose bandwidth is the median pairwise distance of the held-out *teacher*
  features (scale 1, not the bundles' cold σ);
- float64, with distances from the coordinates' differences (no ‖a‖² + ‖b‖² − 2ab expansion);
- per training encoder, plus one on the decoded pixels, which involves no encoder at all.

``python -m rdmeval.distill.learning --plot docs/img/distill_learning.png`` trains ``learn_demo``
and draws the curve shown in docs/distill.md.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from rdmeval.errors import RdmevalError, require
from rdmeval.io import atomic_write_bytes, atomic_write_text

PIXELS = "pixels"
HELD_OUT_SEED = 2_000_003  # noise and prompts of the held-out set; the training chunks use other streams


def exact_mmd2(x: Tensor, y: Tensor, sigma: float) -> float:
    """Unbiased MMD²(x, y) in float64 with k(a, b) = exp(−‖a − b‖²/(2σ²)), distances from differences."""
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"the unbiased MMD² needs at least 2 rows per side, got {len(x)} and {len(y)}")
    x, y = x.detach().double().flatten(1), y.detach().double().flatten(1)
    gamma = 1.0 / (2.0 * sigma * sigma)

    def gram(a: Tensor, b: Tensor) -> Tensor:
        return torch.exp(-gamma * torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist") ** 2)

    n, m = len(x), len(y)
    kxx, kyy = gram(x, x), gram(y, y)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(within_x + within_y - 2.0 * gram(x, y).mean())


def median_bandwidth(features: Tensor) -> float:
    """The median pairwise distance of ``features`` (float64, strict upper triangle)."""
    f = features.detach().double().flatten(1)
    return float(torch.pdist(f).median())


@dataclass(frozen=True)
class HeldOut:
    """Held-out teacher renders (encoded), the student's noise and prompts, and the per-space bandwidths."""

    student_noise: Tensor
    ctx: Tensor  # (n, ctx_len, ctx_dim): the prompts of both sides, drawn from held-out prompt rows
    teacher: dict[str, Tensor]  # space -> (n, d) float64
    sigma: dict[str, float]


def _spaces(task, images: Tensor) -> dict[str, Tensor]:
    out = {name: enc(images).double() for name, enc in task.encoders.items()}
    out[PIXELS] = images.flatten(1).double()
    return out


def held_out_set(task, *, n: int = 1024, prompts: int = 64, seed: int = HELD_OUT_SEED) -> HeldOut:
    """``n`` teacher renders over ``prompts`` new prompt rows, and noise for ``n`` student renders.

    The teacher side and the student side use independent noise; both use the same prompt draws, so
    the comparison is of the two conditionals averaged over the same prompts.
    """
    c = task.config
    gen = torch.Generator().manual_seed(seed)
    shape = (n, c.latent_channels, c.latent_size, c.latent_size)
    teacher_noise = torch.randn(shape, generator=gen)
    student_noise = torch.randn(shape, generator=gen)
    rows = torch.randn(prompts, c.ctx_len, c.ctx_dim, generator=gen)
    ctx = rows[torch.randint(0, prompts, (n,), generator=gen)]
    with torch.no_grad():
        images = task.decoder(task.teacher.sample(teacher_noise, ctx, c.teacher_steps))
        teacher = _spaces(task, images)
    return HeldOut(student_noise, ctx, teacher, {k: median_bandwidth(v) for k, v in teacher.items()})


def student_mmd(task, held: HeldOut) -> dict[str, float]:
    """Exact MMD² of the student's one-step renders to the held-out teacher renders, per space."""
    with torch.no_grad():
        images = task.decoder(task.student.sample(held.student_noise, held.ctx, 1))
        student = _spaces(task, images)
    return {k: exact_mmd2(student[k], held.teacher[k], held.sigma[k]) for k in held.teacher}


@dataclass(frozen=True)
class CurvePoint:
    step: int
    loss: float | None  # the training surrogate Σ_φ L_φ of the step just taken (None at step 0)
    mmd: dict[str, float]


def learning_curve(config_name: str = "learn_demo", *, steps: int | None = None, every: int = 25, n: int = 1024,
                   progress: bool = False) -> list[CurvePoint]:
    """Train a toy config from scratch; the exact MMD² at step 0 and every ``every`` steps (and the last)."""
    from rdmeval.distill.config import ConfigError, get_config
    from rdmeval.distill.toy import build_toy_task
    from rdmeval.distill.trainer import Trainer

    config = get_config(config_name)
    if config.model != "toy":
        raise ConfigError(f"config {config_name!r} is not a toy config; the learning curve trains toy tasks on CPU")
    if steps is not None:
        config = replace(config, steps=steps)
    if every < 1:
        raise ConfigError(f"--every must be >= 1, got {every}")
    task = build_toy_task(config)
    trainer = Trainer(config, task)
    held = held_out_set(task, n=n)
    points = [CurvePoint(0, None, student_mmd(task, held))]
    start = time.perf_counter()
    while trainer.step < config.steps:
        r = trainer.train_step()
        if r.step % every == 0 or r.step == config.steps:
            points.append(CurvePoint(r.step, r.loss, student_mmd(task, held)))
            if progress:
                mmd = "  ".join(f"{k} {v:.3e}" for k, v in points[-1].mmd.items())
                print(f"step {r.step:4d}  surrogate {r.loss:.4e}  exact MMD² {mmd}  ({time.perf_counter() - start:.1f} s)",
                      file=sys.stderr, flush=True)
    return points


def format_table(points: list[CurvePoint]) -> str:
    """Tab-separated: step, surrogate loss, then one exact-MMD² column per space."""
    spaces = list(points[0].mmd)
    lines = ["\t".join(["step", "surrogate_loss", *(f"mmd2_{s}" for s in spaces)])]
    for p in points:
        loss = "" if p.loss is None else f"{p.loss:.6e}"
        lines.append("\t".join([str(p.step), loss, *(f"{p.mmd[s]:.6e}" for s in spaces)]))
    return "\n".join(lines) + "\n"


def plot_png(points: list[CurvePoint], title: str) -> bytes:
    """Exact MMD² (log scale) per space vs step, relative to step 0; the surrogate on a second panel."""
    require("matplotlib", "report", "The learning-curve plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 3.0), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, width_ratios=(3, 2))
    steps = [p.step for p in points]
    for space in points[0].mmd:
        first = points[0].mmd[space]
        left.plot(steps, [max(p.mmd[space], 1e-12) / first for p in points], marker="o", markersize=3, label=space)
    left.axhline(0.2, color="#888888", linestyle="--", linewidth=1, label="5x below step 0")
    left.set_yscale("log")
    left.set_xlabel("training step")
    left.set_ylabel("exact MMD² / its value at step 0")
    left.set_title("held-out exact MMD² to the teacher", fontsize=9)
    left.legend(fontsize=7)
    trained = [p for p in points if p.loss is not None]
    right.plot([p.step for p in trained], [p.loss for p in trained], color="#555555", marker=".", markersize=3)
    right.set_xlabel("training step")
    right.set_title("training surrogate Σ L_φ", fontsize=9)
    fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rdmeval.distill.learning", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m rdmeval.distill.learning --plot docs/img/distill_learning.png --table runs/learning.tsv\n",
    )
    p.add_argument("--config", default="learn_demo", help="a toy training config (default learn_demo)")
    p.add_argument("--steps", type=int, help="steps to train (default: the config's)")
    p.add_argument("--every", type=int, default=10, help="measure every N steps (default 10)")
    p.add_argument("--n", type=int, default=1024, help="held-out renders per side (default 1024)")
    p.add_argument("--plot", help="write the PNG here")
    p.add_argument("--table", help="write the curve as TSV here (default: stdout)")
    p.add_argument("--no-progress", action="store_true", help="no per-measurement line on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        points = learning_curve(args.config, steps=args.steps, every=args.every, n=args.n, progress=not args.no_progress)
    except RdmevalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = format_table(points)
    if args.table:
        atomic_write_text(os.fspath(args.table), table)
    else:
        sys.stdout.write(table)
    if args.plot:
        last = points[-1]
        falls = ", ".join(f"{k} {points[0].mmd[k] / max(v, 1e-12):.0f}x" for k, v in last.mmd.items())
        atomic_write_bytes(os.fspath(args.plot), plot_png(points, f"{args.config}: fall by step {last.step}: {falls}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
