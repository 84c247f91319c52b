"""``rdmeval train``: the RDM trainer (rdmeval/distill), its export and the tiny assets.

The only command module that reaches the trainer, and only inside its run functions: building the
parser (``rdmeval --help``) never imports rdmeval.distill (tests/test_distill_boundary.py).
"""

from __future__ import annotations

import argparse
import re

EPILOG = """\
examples:
  rdmeval fixtures tiny-klein /tmp/tk                          # the tiny FLUX.2 [klein] fixture
  rdmeval train tiny-assets --klein /tmp/tk --out /tmp/tk-assets
  rdmeval train --config flux_tiny --assets /tmp/tk-assets --out runs/tiny          # CPU, seconds
  rdmeval train --config flux_tiny --assets /tmp/tk-assets --out runs/tiny --steps 8 --resume
  rdmeval train export runs/tiny --out runs/tiny/model.safetensors
  rdmeval train tables --pool rdm-s180-generator --only ctx --set coco-train2014.path=captions_train2014.json --out geall/
  rdmeval train import-released released/ --out geall/ --pool rdm-s180-generator --set coco-train2014.path=captions_train2014.json
  rdmeval generate --model student --base /tmp/tk/klein --weights runs/tiny/model.safetensors \\
      --prompts /tmp/tk-assets/pool.txt --out runs/tiny-images --resolution 64 --device cpu --rng-device cpu --precision fp32
  torchrun --nproc-per-node 8 -m rdmeval train --config flux_geall --assets geall/ --out runs/geall
  torchrun --nproc-per-node 8 -m rdmeval train --config flux_geall --assets geall/ --out runs/geall --fsdp   # 80 GB cards
  rdmeval train --config debug --out runs/debug                # the CPU toy

A run folder holds step_XXXXXXX.pt milestones (every save_freq steps and the last; model, optimizer,
step, RNG, config; never overwritten), losses.txt and metrics.jsonl. A killed run continues with
--resume from its newest milestone, on any number of ranks (the data do not depend on the layout).
"""

EXPORT_EPILOG = """\
examples:
  rdmeval train export runs/geall --out model.safetensors             # the newest milestone
  rdmeval train export runs/geall --step 180 --out s180.safetensors
  rdmeval train export runs/geall/step_0000180.pt --out s180.safetensors

The file is what the released student ships as: bf16 tensors, Black Forest Labs' key names with a
'model.' prefix; rdmeval generate --model student --weights FILE loads it strictly.
"""

ASSETS_EPILOG = """\
examples:
  rdmeval fixtures tiny-klein /tmp/tk
  rdmeval train tiny-assets --klein /tmp/tk --out /tmp/tk-assets

Writes ASSETS/ctx (the pool's Qwen3 embeddings), ASSETS/tau (unit text rows), ASSETS/bundles
(joint reference bundles of the 4-step teacher's renders through the tiny battery), pool.txt and
assets.json. Seconds on a CPU; an interrupted build resumes.
"""


def run(args: argparse.Namespace) -> int:
    from rdmeval.errors import RdmevalError

    if not args.config or not args.out:  # --out '' (an unset shell variable) would train into the working directory
        raise RdmevalError(
            f"rdmeval train needs --config NAME and --out DIR (or a subcommand: export, tiny-assets, {', '.join(PASSTHROUGH)}); "
            "see rdmeval train --help"
        )
    from rdmeval.distill.run import TrainOptions, train

    trainer = train(TrainOptions(
        config=args.config, out=args.out, resume=args.resume, steps=args.steps, batch_size=args.batch_size,
        deterministic=args.deterministic, fsdp=args.fsdp, assets=args.assets, base=args.base, ctx_table=args.ctx_table,
        text_table=args.text_table, bundles=args.bundles, device=args.device, progress=not args.no_progress,
    ))
    if trainer.rank == 0:
        print(f"trained {trainer.config.name} to step {trainer.step} in {args.out}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from rdmeval.distill.checkpoints import export_student, resolve_checkpoint

    source = resolve_checkpoint(args.run, args.step)
    summary = export_student(source, args.out)
    print(f"exported {source} (config {summary['config']}, step {summary['step']}): {summary['tensors']} bf16 tensors -> {args.out}")
    return 0


def run_tiny_assets(args: argparse.Namespace) -> int:
    from rdmeval.distill.tiny_assets import build_tiny_assets
    from rdmeval.errors import RdmevalError

    if not args.out.strip() or not args.klein.strip():  # '' would build into (or read) the working directory
        raise RdmevalError("rdmeval train tiny-assets: --klein and --out must name folders; one is empty (an unset shell variable?)")

    out = build_tiny_assets(args.klein, args.out, log=(lambda m: None) if args.no_progress else print)
    print(f"flux_tiny assets in {out}")
    return 0


# Commands whose options live in their rdmeval.distill module: the arguments after the command name are
# handed to that module's parser inside run (so `rdmeval --help` imports nothing of the trainer).
PASSTHROUGH: dict[str, tuple[str, str]] = {
    "tables": ("rdmeval.distill.tables_cli", "build the ctx and τ tables of a pool spec (sharded, resumable)"),
    "import-released": ("rdmeval.distill.released_cli", "check and convert the published geALLcoco bundles and τ table"),
    "refprep": ("rdmeval.distill.refprep_cli", "teacher renders -> curation -> features -> reference bundles (resumable)"),
}


def run_passthrough(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(PASSTHROUGH[args.train_action][0])
    parsed = module.build_parser(prog=f"rdmeval train {args.train_action}").parse_args(args.argv)
    return int(module.run(parsed) or 0)


# what a Ctrl-C leaves (rdmeval.cli.main prints it)
INTERRUPTED_TRAIN = "the milestones written so far are kept; continue from the newest with the same command and --resume"
INTERRUPTED_EXPORT = "nothing was written (the file appears whole or not at all); run the export again"
INTERRUPTED_BUILD = "completed parts are kept; run the same command again to resume where it stopped"


def _train_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--config", help="debug (CPU toy), learn_demo (a CPU toy that learns), flux_tiny (tiny klein fixture, CPU) or flux_geall "
                   "(the released recipe)")
    g.add_argument("--out", help="run folder (milestones step_XXXXXXX.pt, losses.txt, metrics.jsonl)")
    g.add_argument("--resume", action="store_true", help="continue from the newest milestone in --out")
    g.add_argument("--steps", type=int, help="total steps to reach (default: the config's)")
    g.add_argument("--batch-size", type=int, help="per-rank chunk size; grad_accum is recomputed so that rollout_size stays")
    g.add_argument("--fsdp", action="store_true", help="under torchrun: shard the FLUX student with FSDP2 (80 GB cards)")
    g.add_argument("--deterministic", action="store_true", help="torch.use_deterministic_algorithms(True) during steps")
    g.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda:LOCAL_RANK if available, else cpu)")
    g.add_argument("--no-progress", action="store_true", help="a line per step instead of the progress bar")
    a = p.add_argument_group("FLUX assets (flags override the --assets folder's layout)")
    a.add_argument("--assets", help="folder with ctx/, tau/, bundles/<encoder>.safetensors and assets.json")
    a.add_argument("--base", help="base pipeline: folder or hub id (default: assets.json's, else black-forest-labs/FLUX.2-klein-4B)")
    a.add_argument("--ctx-table", help="ctx table folder (Qwen3 prompt embeddings of the pool)")
    a.add_argument("--text-table", help="τ table folder (text features of the pool, row-aligned with the ctx table)")
    a.add_argument("--bundles", help="folder of <encoder>.safetensors reference bundles")


def _explain_stray_words(p: argparse.ArgumentParser) -> None:
    """``rdmeval train --config debug --stpes 3`` made argparse read ``3`` as a subcommand and answer only
    "invalid choice: '3' (choose from 'export', ...)": say that a misspelt option is the likely cause."""
    plain = p.error

    def error(message: str):
        word = re.search(r"^argument \{export,.*?invalid choice: '(.*?)'", message)
        if word:
            message = (f"{word.group(1)!r} is not a subcommand of rdmeval train ({', '.join(['export', 'tiny-assets', *PASSTHROUGH])}); "
                       "if it is the value of an option, check that option's spelling (rdmeval train --help lists them)")
        plain(message)

    p.error = error  # type: ignore[method-assign]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the one-step student with RDM (rdmeval/distill)", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _train_arguments(p)
    # add_verbose_flag gives -v only to leaf parsers; this one has actions below it but runs too
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="show third-party warnings and log lines, and the traceback of an error (also RDMEVAL_DEBUG=1)")
    p.set_defaults(func=run, on_interrupt=INTERRUPTED_TRAIN)
    _explain_stray_words(p)
    actions = p.add_subparsers(dest="train_action", metavar="{export,tiny-assets," + ",".join(PASSTHROUGH) + "}")
    e = actions.add_parser("export", help="write a checkpoint's student as model.safetensors (bf16, BFL names)", epilog=EXPORT_EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("run", help="run folder (its newest milestone, or --step) or a step_XXXXXXX.pt file")
    e.add_argument("--step", type=int, help="the milestone of this step (default: the newest)")
    e.add_argument("--out", required=True, help="the .safetensors file to write")
    e.set_defaults(func=run_export, on_interrupt=INTERRUPTED_EXPORT)
    t = actions.add_parser("tiny-assets", help="build flux_tiny's tables and bundles from the tiny klein fixture", epilog=ASSETS_EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--klein", required=True, help="the tiny-klein fixture folder (from rdmeval fixtures tiny-klein)")
    t.add_argument("--out", required=True, help="assets folder to write (resumed if present)")
    t.add_argument("--no-progress", action="store_true", help="no progress lines")
    t.set_defaults(func=run_tiny_assets, on_interrupt=INTERRUPTED_BUILD)
    for name, (_module, summary) in PASSTHROUGH.items():
        # no option parsing here ('\0' never starts an argument): every argument, --help too, goes to the module's parser
        q = actions.add_parser(name, help=summary, add_help=False, prefix_chars="\0")
        q.add_argument("argv", nargs="*", help=argparse.SUPPRESS)
        q.set_defaults(func=run_passthrough, on_interrupt=INTERRUPTED_BUILD)
