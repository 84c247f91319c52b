"""``rdmeval generate``: render a prompt set with a model into a resumable, shardable run directory."""

from __future__ import annotations

import argparse

from rdmeval.errors import RdmevalError
from rdmeval.generators.diffusers_presets import is_diffusers_model
from rdmeval.generators.registry import KLEIN_BASE, MODELS, GeneratorOptions, build_generator, default_resolution, is_model
from rdmeval.prompts import load_prompt_set
from rdmeval.protocol import DEFAULT, help_text, protocol_for

EPILOG = """\
examples:
  rdmeval generate --model student --weights model.safetensors --prompts geneval --out runs/student/geneval
  rdmeval generate --model teacher --prompts pickapic-test --out runs/teacher/pickapic-test
  rdmeval generate --model naive --prompts coco-val --n 1000 --out runs/naive/coco-val
  rdmeval generate --model student --weights s180.pth --prompts my_prompts.txt --out runs/student/mine --limit 10
  torchrun --nproc-per-node 8 -m rdmeval generate --model student --weights model.safetensors \\
      --prompts geneval --out runs/student/geneval            # shards across 8 GPUs
  rdmeval generate ... --shard 2/4                           # one of 4 independent processes
  rdmeval generate --model sdxl-turbo --prompts geneval --out runs/sdxl-turbo/geneval     # a preset of the field
  rdmeval generate --model dmd2-sdxl-1step --base ./sdxl-base-1.0 --weights ./dmd2_sdxl_1step_unet_fp16.bin ...
  rdmeval generate --model diffusers:stabilityai/sdxl-turbo --steps 2 --guidance-scale 0 ...   # any pipeline

A killed run resumes where it stopped. Protocol defaults per prompt set (from the paper-table
suite, benchmarks/paper-table.toml; all recorded in manifest.json):
"""


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", required=True, metavar="MODEL", type=_model,
                   help="teacher (4 steps), naive (1 step), student (RDM weights, 1 step), dummy, a preset of the one-step "
                        f"field ({', '.join(m for m in MODELS if is_diffusers_model(m))}; docs/generators.md) "
                        "or diffusers:<hub id or folder> (any diffusers text-to-image pipeline, its own defaults)")
    g.add_argument("--weights", help="student DiT weights: model.safetensors or the .pth checkpoint (required for --model student); "
                                     "for a UNet/transformer swap preset, a local copy of its file; for diffusers:<id>, "
                                     "weights loaded strictly into its denoiser")
    g.add_argument("--base", help=f"base pipeline: hub id or local folder (default {KLEIN_BASE}; for a diffusers preset, "
                                  "its own hub id)")
    g.add_argument("--steps", type=int, help="override the preset's number of steps (teacher 4, naive/student 1; recorded)")
    g.add_argument("--guidance-scale", type=float,
                   help="diffusers models only: override the preset's guidance scale (or the pipeline's default; recorded)")
    g.add_argument("--precision", default="faithful", choices=["faithful", "bf16", "fp32"],
                   help="faithful: fp32 DiT under bf16 autocast, bf16 VAE and text encoder (the reference regime, default); bf16: all bf16 (fast); fp32: strict parity")
    g.add_argument("--device", help="cuda, cuda:1 or cpu (default: cuda if available, LOCAL_RANK under torchrun; else the CPU, "
                        "with a warning giving the expected time per image: --device cpu runs there without it)")
    g.add_argument("--compile", action="store_true", help="torch.compile the transformer")
    g.add_argument("--resolution", type=int,
                   help="image height and width (default: the model's: klein 512, a diffusers preset its native size)")
    g.add_argument("--uint8", default="round", choices=["round", "truncate"],
                   help="float->uint8: round (GenEval PNG convention, default) or truncate (the reference's PickScore path)")
    g.add_argument("--text-encoder-layers", default="9,18,27", metavar="I,J,K",
                   help="Qwen3 hidden-state indices stacked into the prompt embedding (default 9,18,27 as klein; 0 = embeddings)")


def _model(text: str) -> str:
    """--model: a registered name or diffusers:<hub id or folder> (argparse prints the error with the usage)."""
    if not is_model(text):
        from rdmeval.generators.registry import GENERATORS

        try:
            GENERATORS.get(text)
        except RdmevalError as exc:  # unknown: the closest name and the list
            raise argparse.ArgumentTypeError(f"{exc} (or diffusers:<hub id or folder>)") from None
    return text


def parse_layers(text: str) -> tuple[int, ...]:
    try:
        layers = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        layers = ()
    if not layers:
        raise RdmevalError(f"--text-encoder-layers {text!r}: expected comma-separated integers, e.g. 9,18,27")
    return layers


def add_prompt_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("prompts")
    g.add_argument("--prompts", required=True, help="geneval, pickapic-test, coco-val, a demo set, or a .jsonl/.txt/.csv file")
    g.add_argument("--prompts-file", help="local copy (file or folder) of a registered set (offline machines)")
    g.add_argument("--n", type=int, help="coco-val: number of images sampled (default 1000)")
    g.add_argument("--limit", type=int, help="only the first N prompts (for testing; the run is marked with the limit)")


def run(args: argparse.Namespace) -> int:
    from rdmeval.preflight import Preflight, check_prompt_set, model_inputs

    from rdmeval.preflight import diffusers_inputs

    diffusers = is_diffusers_model(args.model)
    if diffusers and args.ctx_len is not None:
        raise RdmevalError(f"--ctx-len: --model {args.model} uses its own text length (the preset's, or the pipeline's "
                           "default; recorded); --ctx-len is klein's")
    preflight = Preflight("rdmeval generate")  # every input before any download or model load
    if diffusers:
        diffusers_inputs(preflight, args.model, args.model, args.base, args.weights)
    else:
        model_inputs(preflight, {args.model}, args.base or KLEIN_BASE, args.weights)
    preflight.add("prompts", check_prompt_set(args.prompts, args.prompts_file, what=f"prompt set {args.prompts!r}",
                                              flag="--prompts-file PATH"))
    preflight.raise_if_missing()
    params = {"n": args.n} if args.n is not None else {}
    prompt_set = load_prompt_set(args.prompts, path=args.prompts_file, **params)
    proto = protocol_for(prompt_set)
    ctx_len = proto.ctx_len if args.ctx_len is None else args.ctx_len
    n_per_prompt = proto.n_per_prompt if args.n_per_prompt is None else args.n_per_prompt
    from rdmeval.generation import generate_run
    from rdmeval.generators.noise import SeedPolicy, default_rng_device

    seeds = SeedPolicy.parse(args.seed_policy) if args.seed_policy else proto.seed_policy
    batch_size = proto.batch_size if args.batch_size is None else args.batch_size
    resolution = args.resolution if args.resolution is not None else default_resolution(args.model)
    options = GeneratorOptions(base=KLEIN_BASE if diffusers else (args.base or KLEIN_BASE), weights=args.weights, ctx_len=ctx_len,
                               text_layers=parse_layers(args.text_encoder_layers), steps=args.steps, device=args.device,
                               precision=args.precision, height=resolution, width=resolution,
                               uint8=args.uint8, compile=args.compile, guidance_scale=args.guidance_scale,
                               pipeline=args.base if diffusers else None)
    generator = build_generator(args.model, options)
    rng_device = args.rng_device or default_rng_device()
    summary = generate_run(generator, prompt_set, args.out, n_per_prompt=n_per_prompt, seed_policy=seeds,
                           rng_device=rng_device, batch_size=batch_size, limit=args.limit, shard=args.shard,
                           fresh=args.fresh, progress=not args.no_progress)
    print(summary.line())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="render a prompt set into a run directory", epilog=EPILOG + help_text() + f"\n  {DEFAULT.note}\n",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p)
    add_prompt_arguments(p)
    g = p.add_argument_group("protocol (defaults follow the prompt set; see below)")
    g.add_argument("--ctx-len", type=int, help="text context length (the pipeline's max_sequence_length)")
    g.add_argument("--n-per-prompt", type=int, help="images per prompt")
    g.add_argument("--seed-policy", help="per-sample[:BASE] or one-call[:SEED]")
    g.add_argument("--rng-device", help="device whose RNG draws the noise (default cuda if available; recorded)")
    r = p.add_argument_group("run")
    r.add_argument("--out", required=True, help="run directory (created; resumed if it exists with the same settings)")
    r.add_argument("--batch-size", type=int,
                   help="images per forward pass; part of the protocol (recorded); default: the prompt set's (below)")
    r.add_argument("--shard", help="i/n: this process makes every n-th work item starting at i")
    r.add_argument("--fresh", action="store_true", help="move a run made with other settings aside and start again (with --shard or torchrun only shard/rank 0 moves it: run shard 0 first)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
