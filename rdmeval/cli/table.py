"""``rdmeval table RUN_ROOT``: the model card's table from the scorers' result rows, beside the published numbers."""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
examples:
  rdmeval table out/                              # Markdown on stdout (out/ holds runs/<model>/<benchmark>/)
  rdmeval table out/ --format latex --out table.tex
  rdmeval table out/ --format csv --out table.csv # long format: one line per cell, reads back losslessly
  rdmeval table out/ --format json                # the same, as JSON
  rdmeval table out/ --pair student:teacher --pair student:naive

Sections: the card's table (reproduced value [bootstrap interval], published value, delta =
reproduced - published), GenEval per task for every model, the paper's other reported runs, paired
student - teacher differences on the same prompts, and the protocol behind every column. Values
come only from runs/*/*/scores/*/summary.parquet; a cell without a number says why (not run,
not scored, incomplete run: 2,100/2,212 images, ...). Published numbers: results/published.toml.
"""


def _pair(text: str) -> tuple[str, str]:
    a, sep, b = text.partition(":")
    if not sep or not a or not b:
        raise argparse.ArgumentTypeError(f"--pair {text!r}: expected A:B, e.g. student:teacher")
    return a, b


def register(sub: argparse._SubParsersAction) -> None:
    from rdmeval.cli.bootstrap_args import add_bootstrap_args

    p = sub.add_parser("table", help="the card's table from result rows, beside the published numbers",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_root", metavar="RUN_ROOT", help="folder holding runs/<model>/<benchmark>/ (the --out of reproduce)")
    p.add_argument("--format", default="md", choices=["md", "csv", "latex", "json"], help="output format (default md)")
    p.add_argument("--out", metavar="FILE", help="write to FILE (atomically) instead of stdout")
    p.add_argument("--model", action="append", dest="models", metavar="NAME",
                   help="rows of the table, in order (repeat; default teacher, naive, student, then any other found)")
    p.add_argument("--pair", action="append", type=_pair, dest="pairs", metavar="A:B",
                   help="paired comparison A - B on shared prompts (repeat; default student:teacher)")
    add_bootstrap_args(p, what="paired bootstrap")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rdmeval.io import atomic_write_text
    from rdmeval.results.table import build_table

    table = build_table(args.run_root, models=args.models, pairs=args.pairs or (("student", "teacher"),),
                        n_resamples=args.n_resamples, seed=args.seed)
    text = table.render(args.format)
    if args.out:
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
