"""``rdmeval fixtures tiny-klein DIR``: build the tiny offline FLUX.2 [klein] pipeline used by tests and the demo."""

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
"""


def run(args: argparse.Namespace) -> int:
    from rdmeval.fixtures import build_tiny_klein, is_built

    reused = is_built(args.dir) and not args.rebuild
    paths = build_tiny_klein(args.dir, rebuild=args.rebuild)
    print(f"tiny-klein fixture {'already present' if reused else 'built'} in {paths['root']}")
    width = max(len(k) for k in paths)
    for key, path in paths.items():
        if key != "root":
            print(f"  {key:<{width}}  {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fixtures", help="build tiny offline models for tests and the demo", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["tiny-klein"], help="which fixture (tiny-klein: the FLUX.2 [klein] pipeline + student weights)")
    p.add_argument("dir", help="folder to build it in (created; reused if it already holds this fixture)")
    p.add_argument("--rebuild", action="store_true", help="build again even if the folder already holds the fixture")
    p.set_defaults(func=run)
