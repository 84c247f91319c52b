"""The golden loss curve of the ``debug`` config (tests/assets/distill/debug_cpu.txt).

Regenerate after an intended change to the objective, the toy task or the debug config:

    python -m rdmeval.distill.golden tests/assets/distill/debug_cpu.txt

and say why in the commit message. Lines are ``step loss`` with loss = Σ_φ raw L_φ.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

from rdmeval.io import atomic_write_text

GOLDEN_STEPS = 8


def debug_loss_curve(steps: int = GOLDEN_STEPS) -> list[tuple[int, float]]:
    """Train the ``debug`` config on CPU in deterministic mode; return (step, loss) pairs."""
    from rdmeval.distill.config import get_config
    from rdmeval.distill.toy import build_toy_task
    from rdmeval.distill.trainer import Trainer

    config = replace(get_config("debug"), steps=steps, deterministic=True)
    trainer = Trainer(config, build_toy_task(config))
    return [(r.step, r.loss) for r in (trainer.train_step() for _ in range(steps))]


def format_curve(curve: list[tuple[int, float]]) -> str:
    return "".join(f"{step} {loss:.10e}\n" for step, loss in curve)


def parse_curve(text: str) -> list[tuple[int, float]]:
    rows = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            step, loss = line.split()
            rows.append((int(step), float(loss)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rdmeval.distill.golden", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="file to write (tests/assets/distill/debug_cpu.txt)")
    parser.add_argument("--steps", type=int, default=GOLDEN_STEPS)
    args = parser.parse_args(argv)
    atomic_write_text(os.fspath(args.out), format_curve(debug_loss_curve(args.steps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
