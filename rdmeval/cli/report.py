"""``rdmeval report RUN_ROOT --out DIR``: a static HTML report (table, charts, GenEval gallery), viewable offline."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  rdmeval report out/ --out out/report          # then open out/report/index.html (no network needed)
  rdmeval report out/ --out report --thumb-size 192 --max-prompts 100
  rdmeval report out/ --out report --no-gallery   # table and charts only
  rdmeval report out/ --out report --recompute    # rebuild the table from the result rows (after rescoring)
  python -m http.server -d out/report 8000        # or serve it and browse http://127.0.0.1:8000

The report shows the card's table beside the published numbers, GenEval per task (bars with
bootstrap intervals), PickScore distributions per model, and a gallery of every GenEval prompt with
each model's images, the verdict, the scorer's reason and the kept boxes; failures first, filterable
by task. The folder is self-contained (relative links, no CDN) and is replaced atomically.

The table is RUN_ROOT/table.json as `rdmeval reproduce` saved it (beside RUN_ROOT/table.md), so the
report shows exactly that table. --recompute (or a run root without table.json) computes it from
the result rows instead, with --n-resamples and --seed for the paired section.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from rdmeval.cli.bootstrap_args import add_bootstrap_args

    p = sub.add_parser("report", help="static HTML report: table, charts, GenEval gallery",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_root", metavar="RUN_ROOT", help="folder holding runs/<model>/<benchmark>/ (the --out of reproduce)")
    p.add_argument("--out", required=True, metavar="DIR", help="report folder (created, or replaced if it holds a report)")
    p.add_argument("--thumb-size", type=int, default=256, help="gallery thumbnail size in pixels (default 256)")
    p.add_argument("--max-prompts", type=int, help="gallery: at most N prompts per benchmark (failures first)")
    p.add_argument("--no-gallery", action="store_true", help="leave the gallery out")
    p.add_argument("--title", default="rdmeval report", help="page title")
    add_bootstrap_args(p, what="paired bootstrap of the table")
    p.add_argument("--workers", type=int, default=4, help="threads drawing thumbnails (default 4)")
    p.add_argument("--recompute", action="store_true",
                   help="compute the table from the result rows instead of reading RUN_ROOT/table.json (saved by reproduce)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rdmeval.report import build_report

    result = build_report(args.run_root, args.out, thumb_size=args.thumb_size, max_prompts=args.max_prompts,
                          gallery=not args.no_gallery, title=args.title, n_resamples=args.n_resamples, seed=args.seed,
                          workers=args.workers, recompute=args.recompute)
    print(result.line())
    return 0
