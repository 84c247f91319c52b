"""``rdmeval score geneval|pickscore RUN_DIR``: scorers read run directories written by generate."""

from __future__ import annotations

import argparse
import importlib

SCORERS: tuple[str, ...] = ("score_geneval", "score_pickscore")

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
    for name in SCORERS:
        module_name = f"rdmeval.cli.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        module.register(scorers)
