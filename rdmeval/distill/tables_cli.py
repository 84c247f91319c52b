"""Build the trainer's conditioning tables (ctx pool and τ text table) from a pool spec.

``python -m rdmeval.distill.tables_cli --pool rdm-s180-generator --out OUT`` writes ``OUT/ctx`` and
``OUT/tau`` (see docs/distill.md, "Conditioning tables"). A stopped build resumes where it stopped
when run again with the same arguments. ``add_arguments`` / ``run`` let another command line
(``rdmeval train tables``) offer the same options.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rdmeval.errors import RdmevalError

EPILOG = """\
examples:
  # the released student's generator pool: COCO train2014 first captions + GenEval x32 (100,479 rows)
  {prog} --pool rdm-s180-generator \\
      --set coco-train2014.path=/data/coco/annotations/captions_train2014.json --out assets/geall

  # only the τ table, with another SigLIP2 text tower
  {prog} --pool rdm-s180-generator --only tau \\
      --text-model ViT-SO400M-16-SigLIP2-384 --text-pretrained webli --out assets/geall

  # the offline demo pool on the tiny klein fixture (rdmeval fixtures tiny-klein /tmp/tiny-klein)
  {prog} --pool demo --base /tmp/tiny-klein/klein --only ctx --device cpu --out /tmp/demo-tables

outputs: OUT/ctx and OUT/tau, each a folder of table.json, index.npy and shard-NNNNN.npy files,
row-aligned with the pool (same prompts_sha256).
"""


def _layers(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 9,18,27, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one hidden-state index (klein uses 9,18,27)")
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rdmeval.distill.conditioning import CTX_LEN, KLEIN_BASE

    p.add_argument("--pool", required=True, help="pool spec: a packaged name (rdm-s180-generator, demo) or a TOML file")
    p.add_argument("--set", action="append", default=[], metavar="SOURCE.KEY=VALUE", help="override a pool source key (repeatable)")
    p.add_argument("--out", required=True, help="output folder (OUT/ctx, OUT/tau)")
    p.add_argument("--only", choices=("ctx", "tau"), help="build one table (default: both)")
    p.add_argument("--base", default=KLEIN_BASE, help=f"klein pipeline folder or hub id for the ctx table (default {KLEIN_BASE})")
    p.add_argument("--ctx-len", type=int, default=CTX_LEN, help=f"tokens per prompt (default {CTX_LEN}, the training geometry)")
    # named as in rdmeval generate, whose text-encoder errors name --text-encoder-layers; --text-layers kept as an alias
    p.add_argument("--text-encoder-layers", "--text-layers", dest="text_layers", type=_layers, default=(9, 18, 27), metavar="I,J,K",
                   help="Qwen3 hidden-state indices (default 9,18,27)")
    p.add_argument("--text-model", help="open_clip model for τ (default: the first SigLIP2 SO400M text tower open_clip has)")
    p.add_argument("--text-pretrained", help="open_clip pretrained tag for --text-model (e.g. webli)")
    p.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda if available)")
    p.add_argument("--batch-size", type=int, help="prompts per encoder call (default: 64 for ctx, 512 for τ)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from rdmeval.distill.conditioning import build_ctx_table, build_text_table, pool_rows
    from rdmeval.distill.tables import check_row_aligned

    if args.batch_size is not None and args.batch_size < 1:
        raise RdmevalError(f"--batch-size must be >= 1, got {args.batch_size}")
    rows = pool_rows(args.pool, args.set)
    out = Path(args.out)
    progress = not args.no_progress
    batch = {"batch_size": args.batch_size} if args.batch_size else {}
    print(f"pool {rows.name}: {len(rows):,} rows, {len(set(rows.prompts)):,} distinct prompts "
          f"({', '.join(f'{b.source} {b.rows_read:,} x{b.copies}' for b in rows.blocks)})")
    tables = []
    if args.only in (None, "ctx"):
        tables.append(build_ctx_table(rows, out / "ctx", base=args.base, ctx_len=args.ctx_len, layers=args.text_layers,
                                      device=args.device, progress=progress, **batch))
    if args.only in (None, "tau"):
        tables.append(build_text_table(rows, out / "tau", model_name=args.text_model, pretrained=args.text_pretrained,
                                       device=args.device, progress=progress, **batch))
    if len(tables) == 2:
        check_row_aligned(*tables)
    for t in tables:
        stored = sum(s.nbytes for s in t.shards)
        print(f"{t.folder}: {len(t):,} rows of {tuple(t.row_shape)} {t.meta['dtype']} ({stored / 2**30:.2f} GiB stored)")
    return 0


def build_parser(prog: str = "python -m rdmeval.distill.tables_cli") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, epilog=EPILOG.format(prog=prog),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rdmeval.failures import module_main

    return module_main(lambda: run(args), on_interrupt="completed parts are kept; run the same command again to resume where it stopped")


if __name__ == "__main__":
    raise SystemExit(main())
