"""``rdmeval score SCORER RUN_DIR``: one subcommand per registered scorer (rdmeval.scorers.registry).

A scorer with its own CLI module ``rdmeval/cli/score_<name>.py`` (flags of its own) registers it
there; any other registered scorer gets a plain ``rdmeval score <name> RUN_DIR`` that builds it with
default settings and runs ``score_run``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util

from rdmeval.scorers.registry import SCORERS

EPILOG = """\
examples:
  rdmeval score geneval runs/student/geneval
  rdmeval score geneval runs/student/geneval --rejudge --threshold 0.35
  rdmeval score pickscore runs/student/pickapic-test
  torchrun --nproc-per-node 8 -m rdmeval score geneval runs/student/geneval
"""


def _run_plain(args: argparse.Namespace) -> int:
    from rdmeval.api import ScorerOptions

    scorer = SCORERS.get(args.scorer)(ScorerOptions(device=args.device, progress=not args.no_progress))
    print(scorer.score_run(args.run_dir, allow_incomplete=args.allow_incomplete, progress=not args.no_progress).message)
    return 0


def _register_plain(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help=SCORERS.description(name) or f"score a run with {name}",
                       description=f"Score a run directory with the registered scorer {name!r} (default settings).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `rdmeval generate`")
    p.add_argument("--device", help="cuda, cuda:1 or cpu (default: the scorer's)")
    p.add_argument("--allow-incomplete", action="store_true", help="score the images present of an incomplete run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_plain)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help=f"score a run directory ({', '.join(SCORERS)})", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    scorers = p.add_subparsers(dest="scorer", metavar="SCORER", required=True)
    for name in SCORERS:
        module = f"rdmeval.cli.score_{name}"
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module).register(scorers)
        else:
            _register_plain(scorers, name)
