"""Prepare the trainer's reference from teacher renders: renders → curation → features → bundles.

``python -m rdmeval.distill.refprep_cli --pool rdm-s180-reference --out OUT`` runs every stage of
:func:`rdmeval.distill.refprep.refprep` (see docs/reference-assets.md, "Build the reference from teacher
renders"). A stopped preparation resumes where it stopped when run again with the same arguments; under
torchrun the ranks share the renders, the scoring and the encoders. ``add_arguments`` / ``run`` let another
command line (``rdmeval train refprep``) offer the same options.
"""

from __future__ import annotations

import argparse
import os

from typing import TYPE_CHECKING

from rdmeval.errors import RdmevalError

if TYPE_CHECKING:
    from rdmeval.distill.refprep import RefprepOptions

EPILOG = """\
examples:
  # the released reference pool (53,800 GenEval + 248,349 COCO rows at the released recipe), on 8 GPUs
  torchrun --nproc_per_node 8 -m rdmeval train refprep --pool rdm-s180-reference \\
      --set coco-train2014.path=/data/coco/annotations/captions_train2014.json --out assets/reference

  # the same, reproducing the released bundles' k_rr (the first 100,000 rows) and stopping after the curation
  rdmeval train refprep --pool rdm-s180-reference --set coco-train2014.path=FILE \\
      --out assets/reference --krr first --stop-after curate

  # two encoders only, more GenEval seeds
  rdmeval train refprep --pool rdm-s180-reference --set coco-train2014.path=FILE \\
      --out assets/reference --encoders inception,dreamsim --geneval-seeds 400

outputs: OUT/renders/<source>/seeds-NNNN/ (run stores, scored), OUT/curated.json, OUT/features/<encoder>/,
OUT/tau/, OUT/bundles/<encoder>.safetensors (OUT/bundle-state/ holds the bundle builds' resumable state).
"""


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("give at least one encoder name, e.g. inception,dreamsim")
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rdmeval.distill.conditioning import KLEIN_BASE
    from rdmeval.distill.curation import CAPTION_SEEDS, GENEVAL_CAP, GENEVAL_SEEDS, REFERENCE_SEED_BASE
    from rdmeval.distill.refprep import STAGES

    p.add_argument("--pool", required=True, help="reference pool spec: a packaged name (rdm-s180-reference) or a TOML file")
    p.add_argument("--set", action="append", default=[], metavar="SOURCE.KEY=VALUE", help="override a pool source key (repeatable)")
    p.add_argument("--out", required=True, help="output folder")
    g = p.add_argument_group("renders")
    g.add_argument("--geneval-seeds", type=int, default=GENEVAL_SEEDS,
                   help=f"teacher renders per GenEval prompt (default {GENEVAL_SEEDS}; the reference's count is not published)")
    g.add_argument("--geneval-cap", type=int, default=GENEVAL_CAP, help=f"correct renders kept per GenEval prompt (default {GENEVAL_CAP})")
    g.add_argument("--caption-seeds", type=int, default=CAPTION_SEEDS,
                   help=f"teacher renders per caption; the spec's weight says how many are kept (default {CAPTION_SEEDS})")
    g.add_argument("--seed-base", type=int, default=REFERENCE_SEED_BASE,
                   help=f"first noise seed; source k starts at BASE + k*10^8 (default {REFERENCE_SEED_BASE:,}, away from evaluation seeds)")
    g.add_argument("--base", default=KLEIN_BASE, help=f"klein pipeline folder or hub id (default {KLEIN_BASE})")
    g.add_argument("--precision", default="faithful", choices=("faithful", "bf16", "fp32"), help="teacher precision regime (default faithful)")
    g.add_argument("--resolution", type=int, default=512, help="render size (default 512)")
    g.add_argument("--batch-size", type=int, default=8, help="renders per forward (default 8, the reference's)")
    g.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda:$LOCAL_RANK if available)")
    g.add_argument("--rng-device", help="where the noise is drawn (default cuda if available, else cpu)")
    g = p.add_argument_group("scorers")
    g.add_argument("--detector-config", help="GenEval detector config (default: the official Mask2Former)")
    g.add_argument("--detector-checkpoint", help="GenEval detector checkpoint (default: the pinned official one)")
    g.add_argument("--clip-pretrained", default="openai", help="GenEval color classifier weights (default openai)")
    g.add_argument("--pickscore-model", default="yuvalkirstain/PickScore_v1", help="PickScore model (hub id or folder)")
    g.add_argument("--pickscore-processor", default="laion/CLIP-ViT-H-14-laion2B-s32B-b79K", help="PickScore processor")
    g = p.add_argument_group("features and bundles")
    g.add_argument("--encoders", type=_names, help="comma-separated encoders of the released battery (default: all ten)")
    g.add_argument("--feature-batch-size", type=int, default=64, help="images per encoder call (default 64)")
    g.add_argument("--image-workers", type=int, default=8, help="PNG decoding threads feeding the encoders (default 8)")
    g.add_argument("--text-model", help="open_clip model for τ (default: the first SigLIP2 SO400M text tower open_clip has)")
    g.add_argument("--text-pretrained", help="open_clip pretrained tag for --text-model (e.g. webli)")
    g.add_argument("--krr", choices=("sample", "first"), default="sample",
                   help="k_rr over a seeded sample of 100,000 rows (default) or the first 100,000 (the released bundles)")
    g.add_argument("--landmarks", type=int, default=8192, help="Nyström landmarks M (default 8192)")
    g.add_argument("--bundle-device", help="device of the bundle build (k-means, kernel blocks; default cuda if available)")
    p.add_argument("--stop-after", choices=STAGES, help="stop after this stage (default: run all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def options_from_args(args: argparse.Namespace) -> RefprepOptions:
    from dataclasses import replace

    from rdmeval.distill.encoders import RELEASED_BATTERY, released_spec
    from rdmeval.distill.refprep import RefprepOptions

    encoders = RELEASED_BATTERY if args.encoders is None else tuple(released_spec(n) for n in args.encoders)
    settings = {"detector_config": args.detector_config, "detector_checkpoint": args.detector_checkpoint,
                "clip_pretrained": args.clip_pretrained, "pickscore_model": args.pickscore_model,
                "pickscore_processor": args.pickscore_processor}
    options = RefprepOptions(
        geneval_seeds=args.geneval_seeds, geneval_cap=args.geneval_cap, caption_seeds=args.caption_seeds, seed_base=args.seed_base,
        base=args.base, precision=args.precision, resolution=args.resolution, device=args.device, rng_device=args.rng_device,
        render_batch_size=args.batch_size, scorer_settings=settings, encoders=encoders, feature_batch_size=args.feature_batch_size,
        image_workers=args.image_workers, text_model=args.text_model, text_pretrained=args.text_pretrained, bundle_device=args.bundle_device,
        progress=not args.no_progress,
    )
    if args.landmarks < 1:
        raise RdmevalError(f"--landmarks must be >= 1 (Nyström landmarks M; the released bundles use 8192), got {args.landmarks}")
    return replace(options, recipe=replace(options.recipe, krr=args.krr, num_landmarks=args.landmarks))


def run(args: argparse.Namespace) -> int:
    from rdmeval.distill.refprep import refprep

    result = refprep(args.pool, args.out, options_from_args(args), overrides=args.set, stop_after=args.stop_after)
    if os.environ.get("RANK", "0") != "0":
        return 0
    if result.curated is not None:
        print(f"{result.curated}: {result.rows:,} reference rows")
    for name, path in result.bundles.items():
        print(f"{path} ({name})")
    return 0


def build_parser(prog: str = "python -m rdmeval.distill.refprep_cli") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rdmeval.failures import module_main

    return module_main(lambda: run(args), on_interrupt="completed parts are kept; run the same command again to resume where it stopped")


if __name__ == "__main__":
    raise SystemExit(main())
