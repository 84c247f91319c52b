"""``rdmeval score pickscore RUN_DIR`` and ``rdmeval score pickscore-compare RUN_A RUN_B``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rdmeval.errors import RdmevalError

EPILOG = """\
examples:
  rdmeval score pickscore runs/student/pickapic-test
  rdmeval score pickscore runs/student/coco-val --dtype bf16 --batch-size 128
  rdmeval score pickscore runs/student/pickapic-test --model ~/models/PickScore_v1 \\
      --processor ~/models/CLIP-ViT-H-14-laion2B-s32B-b79K         # local save_pretrained folders (offline)
  rdmeval score pickscore runs/partial --allow-incomplete          # score the images present (marked incomplete)
  rdmeval score pickscore runs/student/coco-val --shard 0/2        # one of 2 independent processes
  torchrun --nproc-per-node 8 -m rdmeval score pickscore runs/student/coco-val
  rdmeval score pickscore-compare runs/student/pickapic-test runs/teacher/pickapic-test

Score = exp(logit_scale) * cos(projected image, projected text) per image, no softmax; the
reported number is the mean over prompts, with a percentile bootstrap interval over prompts.
Images go to the processor as uint8 PIL; text is truncated at 77 CLIP tokens (counted).
Embeddings are cached in <run>/scores/pickscore/cache/, so a killed job resumes; the outputs are
per_image.parquet, per_prompt.parquet and summary.parquet (+ summary.json) beside it.

Images made by other tools: RUN_DIR may be a pairs file (.csv with columns image, prompt, or .jsonl with
{"image", "prompt"} per line; relative paths from the file's folder) or a folder of images with
--prompts-file FILE (one image per prompt, in the order of the file names' numbers). Then --out OUT is the
run folder rdmeval makes for them (links to the images, a manifest marked external: model and seeds
unknown; nothing is written beside the images) and the scores go to OUT/scores/pickscore/:
  rdmeval score pickscore pairs.csv --out runs/theirs-pickapic
  rdmeval score pickscore ~/their-images --prompts-file pickapic_test_prompts.jsonl --out runs/theirs-pickapic
"""

COMPARE_EPILOG = """\
examples:
  rdmeval score pickscore-compare runs/student/pickapic-test runs/teacher/pickapic-test
  rdmeval score pickscore-compare runs/student/coco-val runs/naive/coco-val --out results/student-vs-naive.parquet

Both runs must be scored (rdmeval score pickscore) with the same scorer settings and come from the
same prompt set (name, version, sha256, parameters) with the same prompts. Reports mean(A - B) over
prompts with a paired bootstrap interval (prompts resampled, pairs kept together) and the win rate
of A (ties count half).
"""


def run(args: argparse.Namespace) -> int:
    from rdmeval.scorers.pickscore.model import PickScorer
    from rdmeval.scorers.pickscore.score import score_pickscore_run

    run_dir, out_dir = _run_and_out(args)  # a bad RUN_DIR fails before any model is loaded or downloaded
    if args.workers is not None and args.workers < 0:
        raise RdmevalError("--workers must be >= 0")
    workers = args.workers if args.workers is not None else min(8, max(0, (os.cpu_count() or 1) - 1))
    from rdmeval.preflight import Preflight, scorer_inputs

    preflight = Preflight("rdmeval score pickscore")  # the model and processor, before either loads
    scorer_inputs(preflight, {"pickscore"}, {"pickscore_model": args.model, "pickscore_processor": args.processor})
    preflight.raise_if_missing()
    scorer = PickScorer.from_pretrained(
        args.model, args.processor, model_revision=args.model_revision, processor_revision=args.processor_revision,
        image_backend=args.image_backend, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
    )
    result = score_pickscore_run(
        run_dir, scorer, allow_incomplete=args.allow_incomplete, shard=args.shard, out_dir=out_dir,
        num_workers=workers, progress=not args.no_progress, n_resamples=args.n_resamples, seed=args.seed,
    )
    print(result.line())
    return 0


def _run_and_out(args: argparse.Namespace) -> tuple[str, str | None]:
    """(run folder, scores folder): an rdmeval run as given, or images made elsewhere adopted into --out."""
    from rdmeval.api.layout import MANIFEST
    from rdmeval.store import RunStore
    from rdmeval.store.external_pairs import adopt_image_pairs, folder_pairs, read_pairs

    src = Path(args.run_dir)
    if (src / MANIFEST).is_file():
        if args.prompts_file:
            raise RdmevalError(f"--prompts-file is for a folder of images made by another tool; {src} is an rdmeval run")
        return args.run_dir, args.out
    pairs_file = src.is_file() and src.suffix.lower() in (".csv", ".jsonl")
    if src.is_file() and not pairs_file:
        raise RdmevalError(f"RUN_DIR {src} is a file, not a pairs file (.csv with columns image, prompt, or .jsonl); give a "
                           "run folder, a pairs file, or a folder of images with --prompts-file FILE and --out OUT")
    if pairs_file and args.prompts_file:
        raise RdmevalError(f"--prompts-file is for a folder of images; the pairs file {src} holds the prompts itself "
                           "(drop --prompts-file)")
    if pairs_file or (src.is_dir() and args.prompts_file):
        if not args.out:
            raise RdmevalError(f"{src}: images made by another tool; pass --out OUT, the run folder rdmeval makes for them "
                               "(links to the images; nothing is written beside them); the scores go to OUT/scores/pickscore/")
        pairs = read_pairs(src) if pairs_file else folder_pairs(src, args.prompts_file)
        out = adopt_image_pairs(pairs, src, args.out)
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"rdmeval: {src} made by another tool: scoring {len(pairs)} images through {out}")
        return str(out), None
    if src.is_dir() and not src.joinpath(MANIFEST).exists() and any(p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp") for p in src.iterdir()):
        raise RdmevalError(f"{src}: a folder of images without {MANIFEST}; pass --prompts-file FILE (one prompt per image) "
                           "and --out OUT, or give a pairs file (.csv/.jsonl with image and prompt)")
    RunStore(src).read_manifest()
    return args.run_dir, args.out


def run_compare(args: argparse.Namespace) -> int:
    from rdmeval.api.rows import write_rows
    from rdmeval.results.pickscore_compare import compare_runs

    comparison = compare_runs(args.run_a, args.run_b, scores_a=args.scores_a, scores_b=args.scores_b,
                              n_resamples=args.n_resamples, seed=args.seed, allow_scorer_mismatch=args.allow_scorer_mismatch)
    print(comparison.line())
    if args.out:
        write_rows(comparison.rows(), args.out)
        print(f"  wrote {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from rdmeval.cli.bootstrap_args import add_bootstrap_args
    from rdmeval.scorers.pickscore.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MODEL, DEFAULT_PROCESSOR, DTYPE_NAMES, IMAGE_BACKENDS

    p = sub.add_parser("pickscore", help="PickScore of a run directory (mean over prompts, bootstrap CI)",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR",
                   help="a run directory written by `rdmeval generate`, a pairs file (.csv/.jsonl) or a folder of images (see below)")
    m = p.add_argument_group("scorer")
    m.add_argument("--model", default=DEFAULT_MODEL, help=f"hub id or local folder (default {DEFAULT_MODEL})")
    m.add_argument("--processor", default=DEFAULT_PROCESSOR, help=f"hub id or local folder (default {DEFAULT_PROCESSOR})")
    m.add_argument("--model-revision", help="hub revision (commit) of --model; the resolved commit is recorded either way")
    m.add_argument("--processor-revision", help="hub revision (commit) of --processor")
    m.add_argument("--dtype", default="fp32", choices=list(DTYPE_NAMES), help="model precision (default fp32; bf16/fp16 for speed on GPU)")
    m.add_argument("--image-backend", default="auto", choices=list(IMAGE_BACKENDS),
                   help="CLIP image processor backend (auto = transformers' default, torchvision; recorded)")
    m.add_argument("--device", help="cuda, cuda:1 or cpu (default: cuda if available; LOCAL_RANK under torchrun)")
    m.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help=f"images per forward pass (default {DEFAULT_BATCH_SIZE})")
    r = p.add_argument_group("run")
    r.add_argument("--allow-incomplete", action="store_true", help="score a run with missing images (coverage is reported and recorded)")
    r.add_argument("--shard", help="i/n: embed every n-th image starting at i (torchrun sets this itself)")
    r.add_argument("--out", help="output folder (default RUN_DIR/scores/pickscore); for images made by another tool, "
                                 "the run folder rdmeval makes for them (scores in OUT/scores/pickscore)")
    r.add_argument("--prompts-file", help="with a folder of images made by another tool: its prompts, one per image (see below)")
    r.add_argument("--workers", type=int, help="image-decoding worker processes (default min(8, CPUs - 1))")
    add_bootstrap_args(r)
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)

    c = sub.add_parser("pickscore-compare", help="paired PickScore comparison of two scored runs (A - B, win rate)",
                       epilog=COMPARE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("run_a", metavar="RUN_A", help="scored run A (e.g. the student)")
    c.add_argument("run_b", metavar="RUN_B", help="scored run B (e.g. the teacher), same prompt set")
    c.add_argument("--scores-a", help="A's PickScore folder if not RUN_A/scores/pickscore")
    c.add_argument("--scores-b", help="B's PickScore folder if not RUN_B/scores/pickscore")
    c.add_argument("--out", help="also write the result rows (difference, win rate) to this .parquet (+ .json)")
    add_bootstrap_args(c, what="paired bootstrap")
    c.add_argument("--allow-scorer-mismatch", action="store_true", help="compare runs scored with different settings")
    c.set_defaults(func=run_compare)
