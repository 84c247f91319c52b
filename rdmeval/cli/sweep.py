"""``rdmeval sweep``: a series of student checkpoints on a suite, by step, with the best-step analysis."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
examples:
  rdmeval sweep --weights runs/train/ --suite paper-table --out sweep/      # the trainer's step_XXXXXXX milestones
  rdmeval sweep --weights 'ckpts/*.pth' --suite paper-table --out sweep/    # the reference series (s180.pth, ...)
  rdmeval sweep --weights 'exports/*/model.safetensors' --out sweep/ --subset geneval,coco-val
  rdmeval sweep --weights runs/train/ --out sweep/ --subset all --declared-step 180
  rdmeval sweep --smoke --out /tmp/sweep      # three tiny checkpoints on tiny offline models (CPU)

Checkpoint names carry the step: step_0000020 (file or folder), step_000180.pth, s180.pth,
checkpoint-180/, or a folder so named holding model.safetensors. In a folder, entries without a step
name are left out (and listed); in a glob, every match must have one.

Benchmarks: --subset NAME[,NAME] picks some of the suite's, --subset all takes every one; by default
the suite's declared sweep_subset (paper-table: geneval), or all of them.

The base pipeline is loaded once: each checkpoint's weights are copied into the loaded DiT in turn.
Runs go to OUT/runs/step_XXXXXXX/<benchmark>/; re-running skips complete runs (same checkpoint file,
same protocol), resumes partial ones and adds new checkpoints. Then OUT/table.md (with a table by
step and the selection section) and OUT/report/ (metric-vs-step charts with confidence bands).

The declared step is the checkpoint you would publish without looking at these scores (default: the
last). The table says which step is best on each benchmark and how much choosing it on the test
prompts inflates its score (docs/sweep.md).
"""


def _subset(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"--subset {text!r}: give benchmark names separated by commas, or 'all'")
    return names


def run(args: argparse.Namespace) -> int:
    from rdmeval.cli.reproduce import _pairs
    from rdmeval.errors import RdmevalError
    from rdmeval.reproduce import ReproduceOptions, smoke_options
    from rdmeval.suites import load_suite
    from rdmeval.sweep import SweepOptions, sweep

    suite = load_suite(args.suite)
    out = Path(args.out)
    opts = ReproduceOptions(
        out=out, base=args.base, device=args.device, precision=args.precision, rng_device=args.rng_device,
        batch_size=args.batch_size, prompts_files=_pairs(args.prompts_file, "--prompts-file"), limit=args.limit,
        detector_config=args.detector_config, detector_checkpoint=args.detector_checkpoint,
        clip_pretrained=args.clip_pretrained, pickscore_model=args.pickscore_model,
        pickscore_processor=args.pickscore_processor, allow_incomplete=args.allow_incomplete, progress=not args.no_progress,
    )
    weights = args.weights
    if args.smoke:
        from rdmeval.generators.registry import KLEIN_BASE

        if args.base != KLEIN_BASE:
            raise RdmevalError(f"--smoke runs its checkpoints on a tiny klein built for it, not --base {args.base}; "
                               "drop --base (or drop --smoke to run the real base pipeline)")
        from rdmeval.fixtures.tiny_klein import build_tiny_klein
        from rdmeval.fixtures.tiny_sweep import build_tiny_sweep

        opts = smoke_options(suite, opts, out / "fixtures")
        if weights is None:
            build_tiny_sweep(build_tiny_klein(out / "fixtures" / "tiny-klein"), out / "fixtures" / "tiny-sweep")
            weights = str(out / "fixtures" / "tiny-sweep")
    if weights is None:
        raise RdmevalError("rdmeval sweep needs --weights DIR_OR_GLOB (a folder of checkpoints, or a glob such as 'ckpts/*.pth')")
    sweep_opts = SweepOptions(weights=weights, run=opts, subset=args.subset, declared_step=args.declared_step,
                              report=not args.no_report)
    if args.check:
        from rdmeval.sweep.checkpoints import find_checkpoints
        from rdmeval.sweep.run import select_benchmarks, sweep_preflight

        series = find_checkpoints(weights)
        preflight = sweep_preflight(series, select_benchmarks(suite, args.subset), sweep_opts, suite)
        preflight.raise_if_missing()
        print(preflight.line())
        return 0
    result = sweep(suite, sweep_opts)
    if result.table is not None:
        print(result.table.read_text())
        if args.smoke:
            print("NOTE: --smoke runs tiny random models: the numbers exercise the pipeline and mean nothing.")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from rdmeval.generators.registry import KLEIN_BASE

    p = sub.add_parser("sweep", help="evaluate a series of student checkpoints (by training step) on a suite",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", metavar="DIR_OR_GLOB",
                   help="the checkpoints: a folder of them, a quoted glob ('ckpts/*.pth'), or one checkpoint")
    p.add_argument("--suite", default="paper-table", help="suite TOML or a name under benchmarks/ (default paper-table)")
    p.add_argument("--out", required=True, help="sweep root: OUT/runs/step_XXXXXXX/<benchmark>/, OUT/table.md, OUT/report/")
    p.add_argument("--subset", type=_subset, metavar="NAME[,NAME]",
                   help="benchmarks of the suite to run ('all': every one; default: the suite's sweep_subset, or all)")
    p.add_argument("--declared-step", type=int, metavar="N",
                   help="the step fixed before looking at test scores, compared with the best (default: the last)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny offline models and demo prompts, CPU; without --weights, three tiny checkpoints")
    p.add_argument("--check", action="store_true", help="only find the checkpoints and check every input; nothing runs")
    p.add_argument("--no-report", action="store_true", help="write the table but not the HTML report")
    g = p.add_argument_group("models (as `rdmeval reproduce`)")
    g.add_argument("--base", default=KLEIN_BASE, help=f"base pipeline hub id or folder (default {KLEIN_BASE})")
    g.add_argument("--precision", default="faithful", choices=["faithful", "bf16", "fp32"], help="see `rdmeval generate --help`")
    g.add_argument("--device", help="cuda, cuda:1 or cpu (default: cuda if available)")
    g.add_argument("--rng-device", help="device whose RNG draws the noise (default cuda if available)")
    g.add_argument("--batch-size", type=int, help="images per forward pass for every benchmark (default: the suite's)")
    g.add_argument("--prompts-file", action="append", metavar="BENCHMARK=PATH", help="local copy of a benchmark's prompt file (repeatable)")
    g.add_argument("--limit", type=int, help="only the first N prompts of each benchmark (testing)")
    s = p.add_argument_group("scorers (as `rdmeval reproduce`)")
    s.add_argument("--detector-config", help="mmdet config (default: the builtin Mask2Former Swin-S config)")
    s.add_argument("--detector-checkpoint", help="detector checkpoint file or URL (default: pinned official, cached)")
    s.add_argument("--clip-pretrained", default="openai", help="open_clip weights for the color classifier (default openai)")
    s.add_argument("--pickscore-model", default="yuvalkirstain/PickScore_v1", help="PickScore model id or folder")
    s.add_argument("--pickscore-processor", default="laion/CLIP-ViT-H-14-laion2B-s32B-b79K", help="PickScore processor id or folder")
    s.add_argument("--allow-incomplete", action="store_true", help="score incomplete runs (coverage reported)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
