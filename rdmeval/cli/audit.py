"""``rdmeval audit``: how much of a benchmark's prompts were in a training pool (docs/contamination.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rdmeval.contamination.pool_spec import pool_specs
from rdmeval.errors import RdmevalError

EPILOG = """\
examples:
  # the released student's generator pool (COCO train2014 first captions + GenEval x32)
  export RDMEVAL_COCO_TRAIN2014_CAPTIONS=/data/coco/annotations/captions_train2014.json
  rdmeval audit --benchmark geneval --pool rdm-s180-generator --out audit/geneval-generator

  # its reference pool, the COCO path given on the command line, plus a null pool of GenEval
  # templates drawn with another seed
  rdmeval audit --benchmark geneval --pool rdm-s180-reference \\
      --set coco-train2014.path=/data/coco/annotations/captions_train2014.json \\
      --null templates:seed=7 --out audit/geneval-reference

  # Pick-a-Pic prompts, every level including sentence embeddings, 2 worker processes
  rdmeval audit --benchmark pickapic-test --pool rdm-s180-generator \\
      --levels exact,normalized,structure,ngram,minhash,semantic --workers 2 --out audit/pickapic

  # clean/dirty split of scored runs (per-prompt or per-image scores: prompt_idx + score/correct [+ tag])
  rdmeval audit --benchmark geneval --pool rdm-s180-generator \\
      --scores student=results/student-geneval.parquet --scores teacher=results/teacher-geneval.parquet \\
      --out audit/geneval-split

  # any prompt file against any pool spec (txt, jsonl, csv, parquet, COCO json, prompt sets)
  rdmeval audit --benchmark my_prompts.jsonl --pool my_pool.toml --levels exact,ngram --out audit/mine

outputs: OUT/audit.json (all numbers), OUT/prompts.parquet (per prompt), OUT/matches.parquet
(matching pool rows), OUT/report.md (readable), plus null_*.parquet with --null.
"""


def _levels(text: str) -> tuple[str, ...]:
    from rdmeval.contamination.levels import LEVELS

    items = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in items if x not in LEVELS]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"unknown level(s) {bad or '(none)'}; choose from {','.join(LEVELS)}")
    return items


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _null_spec(value: str, geneval_path: str | None):
    """A TOML spec path, or ``templates:seed=N[,n=M]`` for GenEval templates drawn with seed N."""
    if not value.startswith("templates"):
        return value
    from rdmeval.contamination.null import geneval_templates_spec

    params = {"seed": 1, "n": 100}
    _, _, rest = value.partition(":")
    for item in filter(None, rest.split(",")):
        key, sep, val = item.partition("=")
        if not sep or key not in params or not val.isdigit():
            raise RdmevalError(f"--null {value!r}: expected templates:seed=N[,n=M] (e.g. templates:seed=7), or a pool spec .toml")
        params[key] = int(val)
    return geneval_templates_spec(seed=params["seed"], n_per_task=params["n"], geneval_path=geneval_path)


def _scores(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, item in enumerate(items or []):
        label, sep, path = item.partition("=")
        if not sep:
            label, path = ("run" if len(items or []) == 1 else f"run{i + 1}"), item
        if label in out:
            raise RdmevalError(f"--scores: label '{label}' given twice; use LABEL=FILE with distinct labels")
        if not Path(path).expanduser().is_file():
            raise RdmevalError(f"--scores {item}: no such file {path}")
        out[label] = path
    return out


def run(args: argparse.Namespace) -> int:
    from rdmeval.contamination.audit import run_audit
    from rdmeval.contamination.levels import AuditConfig

    cfg = AuditConfig(
        levels=args.levels,
        ngram_sizes=args.ngram_sizes,
        minhash_threshold=args.minhash_threshold,
        minhash_num_perm=args.num_perm,
        semantic_model=args.semantic_model,
        semantic_threshold=args.semantic_threshold,
        semantic_device=args.semantic_device,
        max_examples=args.max_examples,
        workers=args.workers,
        dirty_levels=tuple(x.strip() for x in args.dirty_levels.split(",")) if args.dirty_levels else None,
    )
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = run_audit(
        args.benchmark,
        args.pool,
        out_dir=args.out,
        benchmark_path=args.prompts_file,
        overrides=args.set,
        null_spec=_null_spec(args.null, args.geneval_file) if args.null else None,
        null_overrides=args.null_set,
        scores=_scores(args.scores),
        config=cfg,
        geneval_path=args.geneval_file,
        progress=progress,
        n_resamples=args.n_resamples,
        seed=args.seed,
        allow_empty=args.allow_empty,
    )
    s = result.summary
    pool = s["pool"]
    print(f"{s['benchmark']['name']} ({s['benchmark']['n_prompts']} prompts) vs {pool['spec']['name']} "
          f"({pool['rows_read']:,} rows, normalizer v{s['normalizer']['version']})")
    null_cov = s.get("null", {}).get("coverage", {})
    for level, c in pool["coverage"].items():
        mass = pool["mass"].get(level)
        line = f"  {level:<16} coverage {c['flagged']:>6} / {c['n']:<6} ({100 * c['fraction']:5.1f} %)"
        if mass is not None:
            line += f"   mass {100 * mass['fraction']:5.1f} % ({mass['exact']})"
        if level in null_cov:
            line += f"   null coverage {100 * null_cov[level]['fraction']:5.1f} %"
        print(line)
    for label, subs in s.get("split", {}).get("runs", {}).items():
        print("  " + label + ": " + ", ".join(f"{x['subset']} {x['value']:.4f} (n={x['n_prompts']})" for x in subs))
    for note in s.get("split", {}).get("notes", []):
        print(f"  note: {note}")
    print(f"report: {Path(args.out) / 'report.md'}")
    for failure in s.get("failures", []):  # --allow-empty: written, but not a clean audit
        print(f"rdmeval: AUDIT FAILED: {failure}", file=sys.stderr)
    return 1 if s.get("failures") else 0


def register(sub: argparse._SubParsersAction) -> None:
    from rdmeval.cli.bootstrap_args import add_bootstrap_args

    p = sub.add_parser(
        "audit",
        help="contamination audit: benchmark prompts vs a training pool",
        description="Measure how much of a benchmark prompt set is in a training prompt pool, at several match "
        "levels, with sampling mass, null calibration and a clean/dirty split of scores.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("inputs")
    g.add_argument("--benchmark", required=True, metavar="NAME|FILE", help="a registered prompt set (geneval, pickapic-test, coco-val) or a .jsonl/.txt/.csv file")
    g.add_argument("--prompts-file", metavar="PATH", help="local copy (file or folder) of the registered benchmark set, for offline machines")
    g.add_argument("--pool", required=True, metavar="NAME|SPEC.toml",
                   help="pool composition spec: a packaged one by name (" + ", ".join(pool_specs().names()) + ") or a TOML file")
    g.add_argument("--set", action="append", metavar="SOURCE.KEY=VALUE", help="override a pool source key, e.g. coco-train2014.path=FILE (repeatable)")
    g.add_argument("--null", metavar="SPEC.toml|templates:seed=N", help="null pool: a spec, or GenEval templates drawn with seed N")
    g.add_argument("--null-set", action="append", metavar="SOURCE.KEY=VALUE", help="override a null pool source key (repeatable)")
    g.add_argument("--scores", action="append", metavar="[LABEL=]FILE", help="scores to split clean/dirty (.parquet/.csv/.jsonl); labels student and teacher also give the paired difference")
    g.add_argument("--geneval-file", metavar="PATH", help="GenEval metadata (file or folder) for class names when the benchmark has none, and for --null templates")
    g.add_argument("--out", required=True, metavar="DIR", help="output folder")
    lv = p.add_argument_group("levels and thresholds")
    lv.add_argument("--levels", type=_levels, default=("exact", "normalized", "structure", "ngram", "minhash"),
                    help="comma-separated: exact,normalized,structure,ngram,minhash,semantic (default: all but semantic)")
    lv.add_argument("--ngram-sizes", type=_ints, default=(8, 13), metavar="N[,N]", help="word n-gram sizes, primary first (default 8,13)")
    lv.add_argument("--minhash-threshold", type=float, default=0.8, help="Jaccard flag threshold (default 0.8)")
    lv.add_argument("--num-perm", type=int, default=128, help="MinHash permutations (default 128)")
    lv.add_argument("--semantic-model", default="sentence-transformers/all-MiniLM-L6-v2", help="sentence-transformers model name or folder")
    lv.add_argument("--semantic-threshold", type=float, default=0.9, help="cosine flag threshold (default 0.9)")
    lv.add_argument("--semantic-device", help="device for the embedding model (default: sentence-transformers' choice)")
    lv.add_argument("--dirty-levels", metavar="L1,L2", help="levels that make a prompt 'dirty' for the split (default: all run except template_family, semantic and the secondary n-gram)")
    ru = p.add_argument_group("run")
    ru.add_argument("--workers", type=int, default=1, help="worker processes for the text levels (default 1)")
    ru.add_argument("--max-examples", type=int, default=5, help="matching pool rows kept per prompt and level (default 5)")
    add_bootstrap_args(ru, what="bootstrap of the clean/dirty split")
    ru.add_argument("--allow-empty", action="store_true",
                    help="an empty benchmark, an empty pool source or a zero-weight pool: write the report anyway, print FAILED lines and exit 1 (default: exit 2 before writing)")
    ru.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: when stderr is a terminal)")
    p.set_defaults(func=run)
