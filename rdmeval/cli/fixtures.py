"""``rdmeval fixtures tiny-klein|tiny-field DIR``: build the tiny offline pipelines used by tests and smoke runs."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  rdmeval fixtures tiny-klein /tmp/tiny-klein            # build (or reuse) the fixture
  rdmeval fixtures tiny-klein /tmp/tiny-klein --rebuild  # build it again from scratch
  rdmeval generate --model student --base /tmp/tiny-klein/klein \\
      --weights /tmp/tiny-klein/student/model.safetensors --prompts demo-geneval \\
      --out /tmp/tiny-run --resolution 64 --device cpu --rng-device cpu --precision fp32

The fixture is random weights in the real FLUX.2 [klein] structure (a tiny DiT with double and
single blocks, a 4-level VAE with BatchNorm statistics, a 36-layer Qwen3 and a locally trained
byte-level BPE tokenizer with a Qwen3-style chat template), plus a student DiT in both file
formats (.safetensors, .pth) and both namings (BFL, diffusers). Its images are noise-like: it
tests code paths, not image quality. Deterministic; needs no network.

  rdmeval fixtures tiny-field /tmp/tiny-field             # the one-step field's families
  rdmeval generate --model sdxl-turbo --base /tmp/tiny-field/sdxl-turbo --prompts demo-captions \\
      --out /tmp/tiny-turbo --resolution 64 --device cpu --rng-device cpu --precision fp32

tiny-field holds one folder per family (flux, sd3, sdxl-turbo, sdxl-base, sana-sprint: the real pipeline
classes and component structures at tiny widths) and two SDXL UNet files for the swap presets
(unets/dmd2.bin, unets/lightning.safetensors).
"""


def run(args: argparse.Namespace) -> int:
    if args.kind == "tiny-field":
        from rdmeval.fixtures.tiny_field import build_tiny_field as build
        from rdmeval.fixtures.tiny_field import is_built
    else:
        from rdmeval.fixtures import build_tiny_klein as build
        from rdmeval.fixtures import is_built

    reused = is_built(args.dir) and not args.rebuild
    paths = build(args.dir, rebuild=args.rebuild)
    print(f"{args.kind} fixture {'already present' if reused else 'built'} in {paths['root']}")
    width = max(len(k) for k in paths)
    for key, path in paths.items():
        if key != "root":
            print(f"  {key:<{width}}  {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fixtures", help="build tiny offline models for tests and the demo", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["tiny-klein", "tiny-field"],
                   help="which fixture (tiny-klein: the FLUX.2 [klein] pipeline + student weights; tiny-field: the one-step field's families)")
    p.add_argument("dir", help="folder to build it in (created; reused if it already holds this fixture)")
    p.add_argument("--rebuild", action="store_true", help="build again even if the folder already holds the fixture")
    p.set_defaults(func=run)
