"""``rdmeval table RUN_ROOT``: the model card's table from the scorers' result rows, beside the published numbers."""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
examples:
  rdmeval table out/                              # the paper table in Markdown (out/ holds runs/<model>/<benchmark>/)
  rdmeval table out/ --format latex --out table.tex          # the same as a booktabs LaTeX table
  rdmeval table out/ --ci interval --tasks        # intervals instead of +-, GenEval per-task columns
  rdmeval table out/ --style full                 # every section, every sub-column
  rdmeval table out/ --format csv --out table.csv # long format: one line per cell, reads back losslessly
  rdmeval table out/ --format json                # the same, as JSON
  rdmeval table out/ --style full --pair student:teacher --pair student:naive

Styles (md and latex; csv and json always hold the full table):
  paper  the card's layout: rows = models, columns = GenEval / PickScore COCO-val / PickScore
         Pick-a-Pic (and other benchmarks found), one number per cell (value +- half the width of
         its bootstrap interval), the published value, and delta = reproduced - published only
         where the reproduction used the published number's prompts. Why a cell has no number or
         no delta (not run, a stand-in prompt set, no published row for the model) is a footnote.
         The protocol and provenance (weights, base pipeline, git commit, command) follow.
  full   every section: the card's table (value [interval], published, delta), GenEval per task
         for every model, the paper's other reported runs, paired student - teacher differences,
         and the protocol behind every column.
Values come only from runs/*/*/scores/*/summary.parquet; published numbers: results/published.toml.
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
    p.add_argument("--style", choices=["paper", "full"], default=None,
                   help="paper: the card's layout with footnotes (default for md and latex); full: every section")
    p.add_argument("--ci", choices=["pm", "interval", "none"], default=None,
                   help="paper style: value +- half-width of the interval (pm, default), the interval, or the value alone")
    p.add_argument("--tasks", action="store_true", help="paper style: add GenEval's per-task accuracies as columns")
    p.add_argument("--out", metavar="FILE", help="write to FILE (atomically) instead of stdout")
    p.add_argument("--model", action="append", dest="models", metavar="NAME",
                   help="rows of the table, in order (repeat; default teacher, naive, student, then any other found)")
    p.add_argument("--pair", action="append", type=_pair, dest="pairs", metavar="A:B",
                   help="paired comparison A - B on shared prompts (repeat; default student:teacher)")
    add_bootstrap_args(p, what="paired bootstrap")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rdmeval.errors import RdmevalError
    from rdmeval.io import atomic_write_text
    from rdmeval.results.table import build_table

    paper_formats = ("md", "latex")
    style = args.style or ("paper" if args.format in paper_formats else "full")
    if style == "paper" and args.format not in paper_formats:
        raise RdmevalError(f"--style paper is for --format md or latex; --format {args.format} always holds the full table")
    if style == "full" and (args.ci is not None or args.tasks):
        raise RdmevalError("--ci and --tasks shape the paper table; the full table prints every interval and task "
                           "(drop them, or use --style paper)")
    twice = [m for i, m in enumerate(args.models or []) if m in args.models[:i]]
    if twice:
        raise RdmevalError(f"--model {twice[0]} is given twice; name each row of the table once")
    table = build_table(args.run_root, models=args.models, pairs=args.pairs or (("student", "teacher"),),
                        n_resamples=args.n_resamples, seed=args.seed)
    text = table.render(args.format, style=style, ci=args.ci or "pm", tasks=args.tasks)
    if args.out:
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
