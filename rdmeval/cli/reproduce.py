"""``rdmeval reproduce``: weights in, the model card's table out (generate -> score -> table)."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
examples:
  rdmeval reproduce --suite benchmarks/paper-table.toml --weights model.safetensors --out paper/
  torchrun --nproc-per-node 8 -m rdmeval reproduce --suite paper-table --weights s180.pth --out paper/
  rdmeval reproduce --suite paper-table --weights model.safetensors --base ./FLUX.2-klein-4B --out paper/ \\
      --prompts-file geneval=./evaluation_metadata.jsonl --prompts-file coco-val=./captions_val2014.json
  rdmeval reproduce --smoke --out /tmp/smoke        # the same suite on tiny offline models (CPU)
  rdmeval reproduce --suite paper-table --weights model.safetensors --out paper/ --check   # inputs only
  rdmeval reproduce --suite one-step-field --weights model.safetensors --out field/   # the paper's models + the field
  rdmeval reproduce --suite one-step-field --smoke --out /tmp/field-smoke   # every family on tiny offline pipelines
  rdmeval reproduce --suite one-step-field --weights model.safetensors --out field/ \\
      --model-base sdxl-turbo=./sdxl-turbo --model-weights dmd2-sdxl-1step=./dmd2_sdxl_1step_unet_fp16.bin

Before any model loads, every input of the suite is checked (prompt sets, base pipeline, student weights,
detector config and checkpoint, CLIP, PickScore model and processor); what is missing is listed at once,
each with the flag that provides it, and nothing is generated. --check runs only this check.

Complete runs are skipped and partial ones resumed, so re-running after an interruption is safe.
The table is computed once and saved as OUT/table.json and OUT/table.md; `rdmeval report OUT --out OUT/report`
shows that saved table, and `rdmeval table OUT` renders it in other formats.
"""


def _pairs(items: list[str] | None, flag: str, example: str = "geneval=./evaluation_metadata.jsonl", what: str = "BENCHMARK") -> dict[str, str]:
    from rdmeval.errors import RdmevalError

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise RdmevalError(f"{flag} {item!r}: expected {what}=PATH, e.g. {flag} {example}")
        out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    from rdmeval.generators.registry import KLEIN_BASE
    from rdmeval.reproduce import ReproduceOptions, reproduce, smoke_options
    from rdmeval.suites import load_suite

    suite = load_suite(args.suite)
    opts = ReproduceOptions(
        out=Path(args.out), weights=args.weights, base=args.base, device=args.device, precision=args.precision,
        rng_device=args.rng_device, batch_size=args.batch_size, prompts_files=_pairs(args.prompts_file, "--prompts-file"),
        model_bases=_pairs(args.model_base, "--model-base", "sdxl-turbo=./sdxl-turbo", "MODEL"),
        model_weights=_pairs(args.model_weights, "--model-weights", "dmd2-sdxl-1step=./dmd2_sdxl_1step_unet_fp16.bin", "MODEL"),
        limit=args.limit, detector_config=args.detector_config, detector_checkpoint=args.detector_checkpoint,
        clip_pretrained=args.clip_pretrained, pickscore_model=args.pickscore_model,
        pickscore_processor=args.pickscore_processor, allow_incomplete=args.allow_incomplete,
        progress=not args.no_progress,
    )
    if args.smoke:
        if args.weights or args.base != KLEIN_BASE:
            from rdmeval.errors import RdmevalError

            flag = "--weights" if args.weights else "--base"
            raise RdmevalError(f"--smoke runs tiny offline models built for it, not {flag} {args.weights or args.base}; "
                               f"drop {flag} (or drop --smoke to run the real models)")
        opts = smoke_options(suite, opts, Path(args.out) / "fixtures")
    if args.check:
        from rdmeval.reproduce import reproduce_preflight

        preflight = reproduce_preflight(suite, opts)
        preflight.raise_if_missing()
        print(preflight.line())
        return 0
    table = reproduce(suite, opts)
    if table is not None:
        print(table.read_text())
        if args.smoke:
            print("NOTE: --smoke runs tiny random models: the numbers exercise the pipeline and mean nothing.")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from rdmeval.generators.registry import KLEIN_BASE

    p = sub.add_parser("reproduce", help="generate, score and tabulate a whole suite (the card's table)", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="paper-table", help="suite TOML or a name under benchmarks/ (default paper-table)")
    p.add_argument("--out", required=True, help="run root: OUT/runs/<model>/<benchmark>/, OUT/table.md")
    p.add_argument("--smoke", action="store_true", help="tiny offline models, demo prompt sets, CPU (what `rdmeval demo` runs)")
    p.add_argument("--check", action="store_true",
                   help="only check that every input of the suite is available (prompt sets, models, scorer weights); no run starts")
    g = p.add_argument_group("models")
    g.add_argument("--weights", help="student DiT weights (model.safetensors or the .pth)")
    g.add_argument("--base", default=KLEIN_BASE, help=f"base pipeline hub id or folder (default {KLEIN_BASE})")
    g.add_argument("--model-base", action="append", metavar="MODEL=FOLDER",
                   help="a diffusers model's pipeline: a local copy (or another hub id) for a suite model (repeatable)")
    g.add_argument("--model-weights", action="append", metavar="MODEL=FILE",
                   help="a local copy of a swap preset's UNet/transformer file (dmd2-sdxl-1step, sdxl-lightning-1step; repeatable)")
    g.add_argument("--precision", default="faithful", choices=["faithful", "bf16", "fp32"],
                   help="see `rdmeval generate --help`; for diffusers presets faithful is the model card's dtype")
    g.add_argument("--device", help="cuda, cuda:1 or cpu (default: cuda if available, LOCAL_RANK under torchrun; else the CPU, "
                        "with a warning giving the expected time per image: --device cpu runs there without it)")
    g.add_argument("--rng-device", help="device whose RNG draws the noise (default cuda if available)")
    g.add_argument("--batch-size", type=int, help="images per forward pass for every benchmark (default: the suite's, as the reference)")
    g.add_argument("--prompts-file", action="append", metavar="BENCHMARK=PATH", help="local copy of a benchmark's prompt file (repeatable)")
    g.add_argument("--limit", type=int, help="only the first N prompts of each benchmark (testing)")
    s = p.add_argument_group("scorers")
    s.add_argument("--detector-config", help="mmdet config (default: the builtin Mask2Former Swin-S config)")
    s.add_argument("--detector-checkpoint", help="detector checkpoint file or URL (default: pinned official, cached)")
    s.add_argument("--clip-pretrained", default="openai", help="open_clip weights for the color classifier (default openai)")
    s.add_argument("--pickscore-model", default="yuvalkirstain/PickScore_v1", help="PickScore model id or folder")
    s.add_argument("--pickscore-processor", default="laion/CLIP-ViT-H-14-laion2B-s32B-b79K", help="PickScore processor id or folder")
    s.add_argument("--allow-incomplete", action="store_true", help="score incomplete runs (coverage reported)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
