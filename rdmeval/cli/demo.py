"""``rdmeval demo``: the embedded default job (no weights, no network, CPU, under 2 minutes)."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  rdmeval demo                      # writes ./rdmeval-demo
  rdmeval demo --out /tmp/demo --progress
"""


def run(args: argparse.Namespace) -> int:
    print(f"[demo] every pipeline stage on tiny offline models (CPU, no downloads); outputs in {args.out}", flush=True)
    from rdmeval.demo import main

    return main(args.out, progress=args.progress)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run every pipeline stage on tiny offline models (CPU, <2 min)", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="rdmeval-demo", help="output folder (default ./rdmeval-demo)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False,
                   help="progress bars (default off; --no-progress as in every other command)")
    p.set_defaults(func=run)
