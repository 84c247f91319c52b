"""``python -m rdmeval.distill --config NAME --out DIR [--resume]`` (also under torchrun).

The same run as ``rdmeval train`` (:func:`rdmeval.distill.run.train`): ``DIR/losses.txt``,
``DIR/metrics.jsonl`` and milestone checkpoints ``DIR/step_XXXXXXX.pt``; ``--resume`` continues
from the newest. Under torchrun (WORLD_SIZE > 1) the process group is NCCL for CUDA tensors, gloo for CPU ones,
and the rollout is kept: grad_accum = rollout_size / (batch_size × world_size).
"""

from __future__ import annotations

import argparse


EPILOG = """examples:
  python -m rdmeval.distill --config debug --steps 8 --out runs/debug
  python -m rdmeval.distill --config debug --steps 16 --out runs/debug --resume
  torchrun --nproc_per_node 2 -m rdmeval.distill --config debug --steps 8 --out runs/debug2
  python -m rdmeval.distill --config flux_tiny --assets tiny-assets --out runs/tiny
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rdmeval.distill", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="debug", help="training config name (debug, learn_demo, flux_tiny, flux_geall)")
    p.add_argument("--steps", type=int, help="total steps to reach (default: the config's)")
    p.add_argument("--batch-size", type=int, help="per-rank chunk size; grad_accum is recomputed to keep rollout_size")
    p.add_argument("--out", required=True, help="run directory (losses.txt, metrics.jsonl, step_XXXXXXX.pt)")
    p.add_argument("--resume", action="store_true", help="continue from the newest OUT/step_XXXXXXX.pt")
    p.add_argument("--deterministic", action="store_true", help="torch.use_deterministic_algorithms(True)")
    p.add_argument("--fsdp", action="store_true", help="under torchrun: shard the FLUX student with FSDP2")
    p.add_argument("--assets", help="FLUX configs: folder with ctx/, tau/, bundles/ (and assets.json)")
    p.add_argument("--base", help="FLUX configs: base pipeline folder or hub id (default: assets.json's, else klein-4B)")
    p.add_argument("--ctx-table", help="FLUX configs: ctx table folder (default ASSETS/ctx)")
    p.add_argument("--text-table", help="FLUX configs: τ table folder (default ASSETS/tau)")
    p.add_argument("--bundles", help="FLUX configs: folder of <encoder>.safetensors bundles (default ASSETS/bundles)")
    p.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda:LOCAL_RANK if available)")
    p.add_argument("--no-progress", action="store_true", help="a line per step instead of the progress bar")
    return p


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rdmeval.distill.run import TrainOptions, train

    train(TrainOptions(
        config=args.config, out=args.out, resume=args.resume, steps=args.steps, batch_size=args.batch_size,
        deterministic=args.deterministic, fsdp=args.fsdp, assets=args.assets, base=args.base, ctx_table=args.ctx_table,
        text_table=args.text_table, bundles=args.bundles, device=args.device, progress=not args.no_progress,
    ))
    return 0


def main(argv: list[str] | None = None) -> int:
    from rdmeval.failures import module_main

    return module_main(lambda: run(argv), on_interrupt="the milestones written so far are kept; continue from the newest "
                       "with the same command and --resume")


if __name__ == "__main__":
    raise SystemExit(main())
