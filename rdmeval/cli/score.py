"""``rdmeval score geneval|pickscore RUN_DIR``: scorers read run directories written by generate."""

from __future__ import annotations

import argparse

from rdmeval.cli import score_geneval, score_pickscore

EPILOG = """\
examples:
  rdmeval score geneval runs/student/geneval
  rdmeval score geneval runs/student/geneval --rejudge --threshold 0.35
  rdmeval score pickscore runs/student/pickapic-test
  torchrun --nproc-per-node 8 -m rdmeval score geneval runs/student/geneval
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score a run directory (geneval, pickscore)", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    scorers = p.add_subparsers(dest="scorer", metavar="SCORER", required=True)
    for module in (score_geneval, score_pickscore):
        module.register(scorers)
