"""``rdmeval score geneval RUN_DIR``: GenEval with the official mmdet scorer, detect once and judge many."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rdmeval.errors import RdmevalError

EPILOG = """\
examples:
  rdmeval score geneval runs/student/geneval                  # detect (cached), colors, judge
  rdmeval score geneval runs/student/geneval --rejudge --threshold 0.35   # re-judge from the cache
  rdmeval score geneval runs/student/geneval --rejudge --max-overlap 0.5  # with per-class NMS
  rdmeval score geneval runs/student/geneval --detector-checkpoint ~/ckpt/mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco_20220504_001756-c9d0c4f2.pth
  rdmeval score geneval runs/student/geneval --clip-pretrained ~/ckpt/ViT-L-14.pt        # offline CLIP weights
  torchrun --nproc-per-node 8 -m rdmeval score geneval runs/student/geneval               # detection on 8 GPUs
  rdmeval score geneval runs/student/geneval --shard 0/2 ; rdmeval score geneval runs/student/geneval --shard 1/2
  rdmeval score geneval runs/partial --allow-incomplete       # score what is there, with coverage

A folder in GenEval's layout made by another tool (the official generation/diffusers_generate.py, your
own script: NNNNN/metadata.jsonl and NNNNN/samples/NNNN.png, no manifest.json; other files such as
grid.png are ignored, as the official scorer does) is scored with --out OUT: rdmeval writes nothing into
it, makes OUT as a run folder linking to its images (a manifest marked external: the model and seeds
are unknown; a registered prompt set is recognised by its records) and writes the outputs to
OUT/scores/geneval/, the same results.jsonl and summary as evaluate_images.py + summary_scores.py:
  rdmeval score geneval ~/geneval-outputs/mymodel --out runs/mymodel-geneval

Outputs go to RUN_DIR/scores/geneval/: results.jsonl (the official rows: GenEval's own
summary_scores.py reads it unchanged), per_image.parquet, summary.txt (the official summary text)
and summary.parquet (result rows with bootstrap CIs). Detections are cached per image in
detections/ and color predictions per detection in colors/ (format: docs/geneval.md).

Defaults are the official scorer's: Mask2Former Swin-S (mmdet 3.3.0 config shipped in the package,
checkpoint ..._20220504_001756-c9d0c4f2.pth downloaded into $RDMEVAL_CACHE/detectors), open_clip
ViT-L-14 'openai', --threshold 0.3, --counting-threshold 0.9, --max-objects 16, --max-overlap 1
(no NMS), --position-threshold 0.1, --bgcolor '#999', --crop 1.
--random-detector builds the detector with random weights: a smoke test whose numbers mean nothing.
"""


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    from rdmeval.bootstrap import GENEVAL_N_RESAMPLES
    from rdmeval.cli.bootstrap_args import add_bootstrap_args

    p = sub.add_parser(
        "geneval",
        help="GenEval with the official mmdet scorer (detect once, judge many)",
        description="Score a GenEval run directory (or a folder in GenEval's layout) with the official GenEval semantics.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR",
                   help="a run directory written by `rdmeval generate --prompts geneval`, or a GenEval folder made by another tool (with --out)")
    d = p.add_argument_group("detector")
    d.add_argument("--detector-config", help="mmdet config file (default: the Mask2Former Swin-S config inside the installed mmdet)")
    d.add_argument("--detector-checkpoint", help="checkpoint file or URL (default: the pinned official v3.0 checkpoint, downloaded and cached)")
    d.add_argument("--random-detector", action="store_true",
                   help="TESTING ONLY: random detector weights; the scores are meaningless (used by `rdmeval demo`)")
    d.add_argument("--object-names", help="GenEval's object_names.txt (default: derived from mmdet's COCO classes; identical)")
    d.add_argument("--batch-size", type=int, default=8, help="images per detector forward pass (default 8)")
    d.add_argument("--workers", type=int, help="image loading workers (default: 8 on GPU, 0 on CPU)")
    d.add_argument("--device", help="cuda, cuda:1 or cpu (default: cuda if available; LOCAL_RANK under torchrun)")
    c = p.add_argument_group("color classifier")
    c.add_argument("--clip-model", default="ViT-L-14", help="open_clip architecture (default ViT-L-14, the official one)")
    c.add_argument("--clip-pretrained", default="openai",
                   help="open_clip pretrained tag or a local weights file (default openai); 'random' = TESTING ONLY random weights")
    j = p.add_argument_group("judge options (the official --options, same defaults)")
    j.add_argument("--threshold", type=_number, default=0.3, help="keep detections with score > this (default 0.3)")
    j.add_argument("--counting-threshold", type=_number, default=0.9, help="the same for counting prompts (default 0.9)")
    j.add_argument("--max-objects", type=int, default=16, help="per-class cap after thresholding (default 16)")
    j.add_argument("--max-overlap", type=_number, default=1.0, help="per-class NMS IoU; 1 disables NMS (default 1)")
    j.add_argument("--position-threshold", type=_number, default=0.1, help="position margin factor (default 0.1)")
    j.add_argument("--bgcolor", default="#999", help="background behind masked color crops, or 'original' (default #999)")
    j.add_argument("--crop", default="1", help="'1' crops color inputs to the box (default); anything else does not (official semantics)")
    r = p.add_argument_group("run")
    r.add_argument("--rejudge", action="store_true", help="judge from the cached detections without running the detector")
    r.add_argument("--allow-incomplete", action="store_true", help="score a run with missing prompt folders/images (coverage reported)")
    r.add_argument("--out", metavar="OUT",
                   help="for a GenEval folder made by another tool (no manifest.json): the run folder rdmeval makes for it "
                        "(links to its images, a manifest marked external) and whose scores/geneval/ gets the outputs")
    r.add_argument("--shard", help="i/n: detect every n-th image starting at i (judging happens once all are detected)")
    add_bootstrap_args(r, what="bootstrap confidence intervals", default=GENEVAL_N_RESAMPLES)
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rdmeval.scorers.geneval.judge import JudgeOptions
    from rdmeval.scorers.geneval.score import score_geneval_run

    if args.rejudge:
        used = [f for f in ("detector_config", "detector_checkpoint", "object_names", "shard") if getattr(args, f)]
        if used or args.random_detector:
            flags = ", ".join("--" + f.replace("_", "-") for f in used + (["random_detector"] if args.random_detector else []))
            raise RdmevalError(f"--rejudge reuses the cached detections; drop {flags} (or drop --rejudge to detect again)")
    if args.random_detector and args.detector_checkpoint:
        raise RdmevalError("--random-detector and --detector-checkpoint exclude each other")
    external = _external_folder(args)  # a bad RUN_DIR or flag fails before any model is loaded or OUT is made

    options = JudgeOptions.from_official_strings(
        {
            "threshold": str(args.threshold),
            "counting_threshold": str(args.counting_threshold),
            "max_objects": str(args.max_objects),
            "max_overlap": str(args.max_overlap),
            "position_threshold": str(args.position_threshold),
            "bgcolor": args.bgcolor,
            "crop": args.crop,
        }
    )
    if args.batch_size < 1:
        raise RdmevalError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not args.rejudge:  # the detector's and CLIP's files, before any model loads (rejudge reads the caches)
        from rdmeval.preflight import Preflight, scorer_inputs

        preflight = Preflight("rdmeval score geneval")
        scorer_inputs(preflight, {"geneval"}, {"detector_config": args.detector_config, "random_detector": args.random_detector,
                                               "detector_checkpoint": args.detector_checkpoint, "clip_pretrained": args.clip_pretrained})
        preflight.raise_if_missing()
    run_dir = args.run_dir
    if external:
        from rdmeval.store.external import adopt_geneval_folder

        run_dir = str(adopt_geneval_folder(args.run_dir, args.out))
        if int(os.environ.get("RANK", "0")) == 0:
                print(f"rdmeval: {args.run_dir} has no manifest.json (made by another tool): scoring it through {run_dir} "
                  "(links to its images; nothing is written into it)")
    detector = None if args.rejudge else build_detector(args)
    color = build_color_classifier(args)
    result = score_geneval_run(
        run_dir,
        detector=detector,
        color=color,
        options=options,
        rejudge=args.rejudge,
        allow_incomplete=args.allow_incomplete,
        shard=args.shard,
        progress=not args.no_progress,
        batch_size=args.batch_size,
        n_resamples=args.n_resamples,
        seed=args.seed,
    )
    if not result.judged:
        print(f"rdmeval: {result.message}")
        return 0
    if int(os.environ.get("RANK", "0")) == 0:
        print(result.summary_text, end="")
        if args.random_detector:
            print("NOTE: --random-detector: random detector weights; these numbers are meaningless.")
        print(f"rdmeval: {result.message}; outputs in {result.outputs['results'].parent} [{result.seconds:.1f}s]")
    return 0


def _external_folder(args: argparse.Namespace) -> bool:
    """Whether RUN_DIR is a GenEval folder made by another tool (then --out is needed); else it must be a run."""
    from rdmeval.api.layout import MANIFEST
    from rdmeval.store import RunStore
    from rdmeval.store.external import is_geneval_folder

    src = Path(args.run_dir)
    if (src / MANIFEST).is_file():
        if args.out:
            raise RdmevalError(f"--out is for GenEval folders made by other tools; {src} is an rdmeval run, "
                               "whose scores go to RUN_DIR/scores/geneval/ (drop --out)")
        return False
    if src.is_file():
        raise RdmevalError(f"RUN_DIR {src} is a file; give a run folder written by `rdmeval generate`, or a folder in GenEval's "
                           "layout (NNNNN/metadata.jsonl, NNNNN/samples/NNNN.png) with --out OUT")
    if is_geneval_folder(src):
        if not args.out:
            raise RdmevalError(
                f"{src} has no {MANIFEST}: a GenEval folder made by another tool. Pass --out OUT: rdmeval makes OUT, "
                f"a run folder linking to its images (nothing is written into {src}), and writes the scores to OUT/scores/geneval/")
        return True
    if src.is_dir() and not (src / MANIFEST).exists():
        raise RdmevalError(f"{src}: neither an rdmeval run (no {MANIFEST}) nor a folder in GenEval's layout "
                           "(NNNNN/metadata.jsonl, NNNNN/samples/NNNN.png); generate one with `rdmeval generate`")
    RunStore(src).read_manifest()
    return False


def build_detector(args: argparse.Namespace):
    from rdmeval.scorers.geneval.detections import load_object_names
    from rdmeval.scorers.geneval.detector import CHECKPOINT_URL, MMDetDetector

    names = load_object_names(args.object_names) if args.object_names else None
    return MMDetDetector(
        config=args.detector_config,
        checkpoint=None if args.random_detector else (args.detector_checkpoint or CHECKPOINT_URL),
        random_init=args.random_detector,
        device=args.device,
        object_names=names,
        num_workers=args.workers,
        progress=not args.no_progress,
    )


def build_color_classifier(args: argparse.Namespace):
    from rdmeval.scorers.geneval.colors import ClipColorClassifier

    pretrained = None if args.clip_pretrained == "random" else args.clip_pretrained
    return ClipColorClassifier(args.clip_model, pretrained, device=args.device)
