"""``rdmeval generate``: render a prompt set with a model into a resumable, shardable run directory."""

from __future__ import annotations

import argparse

from rdmeval.errors import RdmevalError
from rdmeval.generators.noise import SeedPolicy, default_rng_device
from rdmeval.generators.registry import KLEIN_BASE, MODELS, GeneratorOptions, build_generator
from rdmeval.generation import generate_run
from rdmeval.prompts import load_prompt_set
from rdmeval.protocol import DEFAULT, RESOLUTION, help_text, protocol_for

EPILOG = """\
examples:
  rdmeval generate --model student --weights model.safetensors --prompts geneval --out runs/student/geneval
  rdmeval generate --model teacher --prompts pickapic-test --out runs/teacher/pickapic-test
  rdmeval generate --model naive --prompts coco-val --n 1000 --out runs/naive/coco-val
  rdmeval generate --model student --weights s180.pth --prompts my_prompts.txt --out runs/student/mine --limit 10
  torchrun --nproc-per-node 8 -m rdmeval generate --model student --weights model.safetensors \\
      --prompts geneval --out runs/student/geneval            # shards across 8 GPUs
  rdmeval generate ... --shard 2/4                           # one of 4 independent processes

A killed run resumes where it stopped. Protocol defaults per prompt set (from the paper-table
suite, benchmarks/paper-table.toml; all recorded in manifest.json):
"""


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", required=True, choices=list(MODELS), help="teacher (4 steps), naive (1 step), student (RDM weights, 1 step) or dummy")
    g.add_argument("--weights", help="student DiT weights: model.safetensors or the .pth checkpoint (required for --model student)")
    g.add_argument("--base", default=KLEIN_BASE, help=f"base pipeline: hub id or local folder (default {KLEIN_BASE})")
    g.add_argument("--steps", type=int, help="override the preset's number of steps (teacher 4, naive/student 1)")
    g.add_argument("--precision", default="faithful", choices=["faithful", "bf16", "fp32"],
                   help="faithful: fp32 DiT under bf16 autocast, bf16 VAE and text encoder (the reference regime, default); bf16: all bf16 (fast); fp32: strict parity")
    g.add_argument("--device", help="cuda, cuda:1 or cpu (default: cuda if available, LOCAL_RANK under torchrun; else the CPU, "
                        "with a warning giving the expected time per image: --device cpu runs there without it)")
    g.add_argument("--compile", action="store_true", help="torch.compile the transformer")
    g.add_argument("--resolution", type=int, default=RESOLUTION, help="image height and width (default 512)")
    g.add_argument("--uint8", default="round", choices=["round", "truncate"],
                   help="float->uint8: round (GenEval PNG convention, default) or truncate (the reference's PickScore path)")
    g.add_argument("--text-encoder-layers", default="9,18,27", metavar="I,J,K",
                   help="Qwen3 hidden-state indices stacked into the prompt embedding (default 9,18,27 as klein; 0 = embeddings)")


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

    preflight = Preflight("rdmeval generate")  # every input before any download or model load
    model_inputs(preflight, {args.model}, args.base, args.weights)
    preflight.add("prompts", check_prompt_set(args.prompts, args.prompts_file, what=f"prompt set {args.prompts!r}",
                                              flag="--prompts-file PATH"))
    preflight.raise_if_missing()
    params = {"n": args.n} if args.n is not None else {}
    prompt_set = load_prompt_set(args.prompts, path=args.prompts_file, **params)
    proto = protocol_for(prompt_set)
    ctx_len = proto.ctx_len if args.ctx_len is None else args.ctx_len
    n_per_prompt = proto.n_per_prompt if args.n_per_prompt is None else args.n_per_prompt
    seeds = SeedPolicy.parse(args.seed_policy) if args.seed_policy else proto.seed_policy
    batch_size = proto.batch_size if args.batch_size is None else args.batch_size
    options = GeneratorOptions(base=args.base, weights=args.weights, ctx_len=ctx_len,
                               text_layers=parse_layers(args.text_encoder_layers), steps=args.steps, device=args.device,
                               precision=args.precision, height=args.resolution, width=args.resolution,
                               uint8=args.uint8, compile=args.compile)
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
