"""``python -m rdmeval.distill --config debug --steps N --out DIR`` (also under torchrun).

Writes ``DIR/losses.txt`` (``step loss`` lines, appended on resume) and ``DIR/checkpoint.pt``
(every ``save_freq`` steps and at the end). ``--resume`` continues from ``DIR/checkpoint.pt``.
Under torchrun (WORLD_SIZE > 1) the process group is NCCL on CUDA, else gloo, and the rollout
is kept: grad_accum = rollout_size / (batch_size × world_size).
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
from dataclasses import replace
from pathlib import Path

from rdmeval.errors import RdmevalError

EPILOG = """examples:
  python -m rdmeval.distill --config debug --steps 8 --out runs/debug
  python -m rdmeval.distill --config debug --steps 16 --out runs/debug --resume
  torchrun --nproc_per_node 2 -m rdmeval.distill --config debug --steps 8 --out runs/debug2
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rdmeval.distill", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="debug", help="training config name (debug, flux_geall)")
    p.add_argument("--steps", type=int, help="total steps to reach (default: the config's)")
    p.add_argument("--batch-size", type=int, help="per-rank chunk size; grad_accum is recomputed to keep rollout_size")
    p.add_argument("--out", required=True, help="run directory (losses.txt, checkpoint.pt)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--deterministic", action="store_true", help="torch.use_deterministic_algorithms(True)")
    return p


def _init_distributed():
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 1, 0
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        # destroyed before exit: a group left to static destruction can abort the process
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return dist.get_world_size(), dist.get_rank()


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rdmeval.io import atomic_write_text
    from rdmeval.distill.config import ConfigError, get_config

    config = get_config(args.config)
    if config.model != "toy":
        raise ConfigError(
            f"config {config.name!r} trains the real FLUX.2 klein student, which needs the klein DiT, the "
            "10-encoder battery and the geALLcoco bundles; only toy configs (debug) run from this entry point"
        )
    if args.steps is not None:
        config = replace(config, steps=args.steps)
    if args.batch_size is not None:
        config = _with_batch(config, args.batch_size)
    if args.deterministic:
        config = replace(config, deterministic=True)
    world, rank = _init_distributed()
    if world != config.world_size:
        config = config.with_world_size(world)

    from rdmeval.distill.toy import build_toy_task
    from rdmeval.distill.trainer import Trainer

    out = Path(args.out)
    trainer = Trainer(config, build_toy_task(config))
    ckpt, log = out / "checkpoint.pt", out / "losses.txt"
    lines: list[str] = []
    if args.resume:
        trainer.load_checkpoint(ckpt)
        if log.is_file():
            lines = [ln + "\n" for ln in log.read_text().splitlines() if ln and int(ln.split()[0]) <= trainer.step]
    while trainer.step < config.steps:
        r = trainer.train_step()
        lines.append(f"{r.step} {r.loss:.10e}\n")
        if rank == 0:
            print(f"step {r.step:5d}  loss {r.loss:.6e}  grad_norm {r.grad_norm:.3e}" + ("  SKIPPED" if r.skipped else ""), flush=True)
            if r.step % config.save_freq == 0 or r.step == config.steps:
                atomic_write_text(log, "".join(lines))
                trainer.save_checkpoint(ckpt)
    return 0


def _with_batch(config, batch_size: int):
    from rdmeval.distill.config import ConfigError

    if config.rollout_size % (batch_size * config.world_size):
        raise ConfigError(
            f"--batch-size {batch_size} × world_size {config.world_size} does not divide rollout_size {config.rollout_size}"
        )
    return replace(config, batch_size=batch_size, grad_accum=config.rollout_size // (batch_size * config.world_size))


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except RdmevalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
