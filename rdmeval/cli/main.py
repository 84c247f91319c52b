"""``rdmeval`` entry point. ``main(argv)`` is what tests call; ``console_main`` is the script."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from typing import Sequence

from rdmeval import __version__
from rdmeval.failures import add_verbose_flag, explain, worker_error
from rdmeval.cli.output import command_output, wants_progress
from rdmeval.errors import RdmevalError
from rdmeval.provenance import set_command

# Subcommand modules, in the order `rdmeval --help` lists them (pipeline order).
SUBCOMMANDS: tuple[str, ...] = (
    "demo",
    "reproduce",
    "sweep",
    "prompts",
    "fixtures",
    "generate",
    "score",
    "audit",
    "table",
    "report",
    "train",
    "env",
)

EPILOG = """\
examples:
  rdmeval demo                                   # the whole pipeline on tiny offline models (CPU, <2 min)
  rdmeval reproduce --suite paper-table --weights model.safetensors --out paper/   # the card's table
  rdmeval sweep --weights 'ckpts/*.pth' --suite paper-table --out sweep/          # checkpoints by step
  rdmeval prompts list                           # the registered prompt sets
  rdmeval generate --model student --weights model.safetensors --prompts geneval --out runs/student/geneval
  torchrun --nproc-per-node 8 -m rdmeval generate --model teacher --prompts geneval --out runs/teacher/geneval
  rdmeval score geneval runs/student/geneval     # GenEval with the mmdet scorer
  rdmeval score pickscore runs/student/pickapic-test
  rdmeval audit --benchmark geneval --pool rdm-s180-generator --out audit/
  rdmeval train --config flux_tiny --assets tiny-assets/ --out runs/tiny   # the RDM trainer (rdmeval/distill)
  rdmeval env                                    # versions, devices, cache location
"""

# what a Ctrl-C leaves, said on exit: by command, unless the command sets its own (set_defaults(on_interrupt=...))
INTERRUPTED_IMAGES = "completed images are kept and the run resumes where it stopped"
INTERRUPTED_SCORES = "scores computed so far are kept; the same command resumes where it stopped"
INTERRUPTED = "files are written whole or not at all, so nothing is half-written; run the same command again"
ON_INTERRUPT = {"demo": INTERRUPTED_IMAGES, "reproduce": INTERRUPTED_IMAGES, "sweep": INTERRUPTED_IMAGES,
                "generate": INTERRUPTED_IMAGES, "score": INTERRUPTED_SCORES}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rdmeval",
        description="Evaluate one-step text-to-image distillation: FLUX.2 [klein] teacher, naive 1-step and RDM student.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rdmeval {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show third-party warnings and log lines, and the traceback of an error (also RDMEVAL_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:  # each module keeps its heavy imports inside run()
        importlib.import_module(f"rdmeval.cli.{name}").register(sub)
    add_verbose_flag(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    set_command(list(argv) if argv is not None else sys.argv[1:])  # recorded in the manifests of the runs it makes
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    debug = getattr(args, "verbose", False) or os.environ.get("RDMEVAL_DEBUG", "") not in ("", "0")
    try:
        with command_output(verbose=debug, progress=wants_progress(args)):  # status lines; third parties quiet unless -v
            return int(args.func(args) or 0)
    except BrokenPipeError:
        # the reader of our output went away (`rdmeval env | head -n 3`): stop quietly, as shell tools do
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        except (OSError, ValueError):  # pragma: no cover - stdout without a file descriptor (captured)
            pass
        return 141  # 128 + SIGPIPE
    except RdmevalError as exc:
        if debug:
            traceback.print_exc()
        print(f"rdmeval: error: {worker_error(str(exc))}", file=sys.stderr)
        return 2
    except Exception as exc:  # OS and library errors: one line naming the path and what to do (rdmeval.failures)
        message = explain(exc)
        if message is None:
            raise  # an unexpected error is a bug: keep its traceback
        if debug:
            traceback.print_exc()
        print(f"rdmeval: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        said = getattr(args, "on_interrupt", None) or ON_INTERRUPT.get(args.command, INTERRUPTED)
        print(f"rdmeval: interrupted; {said}", file=sys.stderr)
        return 130


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
