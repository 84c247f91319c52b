"""A training run in a folder: ``rdmeval train`` and ``python -m rdmeval.distill`` both call :func:`train`.

``OUT/`` receives ``config.json`` (the resolved config and assets), ``losses.txt`` (``step loss``
lines, rewritten atomically after every step), ``metrics.jsonl`` (per step: loss, the per-encoder
raw MMD², the pre-clip gradient norm, whether the step was skipped, seconds) and the milestone
checkpoints ``step_XXXXXXX.pt`` (every ``save_freq`` steps and at the last step; see
:mod:`rdmeval.distill.checkpoints`). ``resume=True`` continues from the newest milestone; the
logs are cut back to it, so a run killed at any point and resumed writes the same files as an
uninterrupted one.

Under torchrun (WORLD_SIZE > 1) the process group is NCCL for CUDA tensors, gloo for CPU ones; the rollout is kept
and grad_accum = rollout_size / (batch_size × world_size). Rank 0 writes every file.
"""

from __future__ import annotations

import atexit
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

from rdmeval.io import atomic_write_json, atomic_write_text
from rdmeval.distill.checkpoints import newest_milestone, save_milestone, verify_checkpoint
from rdmeval.distill.config import ConfigError, TrainConfig, get_config
from rdmeval.distill.trainer import CheckpointError, StepResult, Trainer


@dataclass(frozen=True)
class TrainOptions:
    config: str
    out: str
    resume: bool = False
    steps: int | None = None
    batch_size: int | None = None
    deterministic: bool = False
    fsdp: bool = False
    assets: str | None = None
    base: str | None = None
    ctx_table: str | None = None
    text_table: str | None = None
    bundles: str | None = None
    device: str | None = None
    progress: bool = True


def init_distributed() -> tuple[int, int]:
    """(world_size, rank); joins the torchrun process group if WORLD_SIZE > 1 (NCCL for CUDA tensors, gloo for CPU ones)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 1, 0
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        # on a GPU machine a run may still hold its tensors on the CPU (the toy configs, --device cpu): NCCL alone
        # has no CPU collectives, so CPU tensors go through gloo
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        # destroyed before exit: a group left to static destruction can abort the process
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return dist.get_world_size(), dist.get_rank()


def with_layout(config: TrainConfig, world_size: int, batch_size: int) -> TrainConfig:
    """The same rollout on ``world_size`` ranks with ``batch_size`` per chunk: grad_accum is recomputed."""
    per = batch_size * world_size
    if config.rollout_size % per:
        raise ConfigError(
            f"batch_size {batch_size} × world_size {world_size} = {per} does not divide rollout_size {config.rollout_size}; "
            "pick a --batch-size that divides rollout_size / world_size"
        )
    return replace(config, batch_size=batch_size, world_size=world_size, grad_accum=config.rollout_size // per)


def resolve_config(opts: TrainOptions, world: int) -> TrainConfig:
    """The named config with the options' overrides, laid out on ``world`` ranks (rollout_size kept)."""
    config = get_config(opts.config)
    if opts.steps is not None and opts.steps < 1:
        raise ConfigError(f"--steps must be >= 1 (the total number of steps to reach), got {opts.steps}")
    if opts.batch_size is not None and opts.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1 (samples per rank per chunk), got {opts.batch_size}")
    if config.model == "toy":  # the toy builds its own data and model: FLUX-only flags would be silently ignored
        ignored = [flag for flag, value in (("--assets", opts.assets), ("--base", opts.base), ("--ctx-table", opts.ctx_table),
                                            ("--text-table", opts.text_table), ("--bundles", opts.bundles), ("--fsdp", opts.fsdp),
                                            (f"--device {opts.device}", opts.device not in (None, "cpu")))
                   if value]
        if ignored:
            raise ConfigError(
                f"{', '.join(ignored)}: config {config.name} trains the CPU toy, which has no assets and no FLUX student and runs on the CPU; "
                f"drop {'it' if len(ignored) == 1 else 'them'}, or pick a FLUX config (--config flux_tiny or flux_geall)"
            )
    if opts.steps is not None:
        config = replace(config, steps=opts.steps)
    if opts.deterministic:
        config = replace(config, deterministic=True)
    if opts.fsdp:
        if world == 1:  # fully_shard on one rank shards nothing: the run would train unsharded without saying so
            raise ConfigError(
                "--fsdp shards the FLUX student across the ranks of a torchrun job, and this is one process: start it with "
                "torchrun --nproc-per-node N -m rdmeval train ... --fsdp (N >= 2), or drop --fsdp"
            )
        config = replace(config, fsdp=True)
    batch = config.batch_size if opts.batch_size is None else opts.batch_size
    if world != config.world_size or batch != config.batch_size:
        config = with_layout(config, world, batch)
    return config


def build_task(config: TrainConfig, opts: TrainOptions):
    """The toy task, or the FLUX task with its assets checked (before any model is loaded)."""
    if config.model == "toy":
        from rdmeval.distill.toy import build_toy_task

        return build_toy_task(config), {}
    from rdmeval.distill.flux_task import build_flux_task, resolve_assets
    from rdmeval.generators.klein import resolve_device

    assets = resolve_assets(config, assets=opts.assets, base=opts.base, ctx_table=opts.ctx_table,
                            text_table=opts.text_table, bundles=opts.bundles)
    task = build_flux_task(config, assets, device=resolve_device(opts.device))
    return task, {**assets.describe(), "identity": assets_identity(config, assets)}


def assets_identity(config: TrainConfig, assets: Any) -> dict[str, Any]:
    """What the training data are, independent of where the files lie: the tables' prompts and shapes,
    and each bundle file's sha256 (a resumed run must train on the same data)."""
    from rdmeval.distill.tables import Table
    from rdmeval.io import sha256_file

    def table(folder: Path | None) -> dict[str, Any] | None:
        if folder is None:
            return None
        t = Table(folder)
        return {"rows": len(t), "row_shape": list(t.row_shape), "prompts_sha256": t.prompts_sha256}

    return {"ctx": table(assets.ctx_table), "tau": table(assets.text_table),
            "bundles": {name: sha256_file(assets.bundle_path(name)) for name in config.encoders}}


def _check_same_data(out: Path, assets: dict[str, Any]) -> None:
    """Refuse to resume on other training data than the run's (paths may differ; contents may not)."""
    path = out / "config.json"
    if not path.is_file():
        return
    try:
        record = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        record = exc
    if not isinstance(record, dict):
        raise CheckpointError(
            f"{path} is not the run's JSON record ({record}); restore it, or delete it to resume without the check "
            "that the assets are the ones the run was trained on"
        )
    before = (record.get("assets") or {}).get("identity")
    now = assets.get("identity")
    if before is None or now is None or before == now:
        return
    changed = [k for k in ("ctx", "tau") if before.get(k) != now.get(k)]
    changed += [f"bundle {n}" for n in sorted(set(before.get("bundles", {})) | set(now.get("bundles", {})))
                if before.get("bundles", {}).get(n) != now.get("bundles", {}).get(n)]
    raise CheckpointError(
        f"--resume: the assets differ from those {out.name} was trained on ({', '.join(changed)}); resume with the same "
        f"tables and bundles, or start a new --out"
    )


def _kept_lines(path: Path, upto: int, step_of: Callable[[str], int]) -> list[str]:
    """The lines of a log up to step ``upto`` (a resumed run rewrites what came after its milestone)."""
    if not path.is_file():
        return []
    kept = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            step = step_of(line)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise CheckpointError(
                f"{path} line {number} is not one of this run's log lines ({type(exc).__name__}: {exc}); fix or delete that line, "
                "then --resume again"
            ) from None
        if step <= upto:
            kept.append(line + "\n")
    return kept


def train(opts: TrainOptions, *, on_step: Callable[[StepResult], None] | None = None) -> Trainer:
    """Train ``opts.config`` into ``opts.out`` (resuming from its newest milestone if ``opts.resume``).

    One training job per run folder: rank 0 holds an OS lock on it (:class:`rdmeval.store.lock.RunLock`, beside
    the folder, released when the process ends however it ends), and a second job on the same ``--out`` is refused.
    """
    if not str(opts.out).strip():
        raise ConfigError("--out is empty; pass the run folder to write (an unset shell variable?)")
    world, rank = init_distributed()
    config = resolve_config(opts, world)
    lock = None
    if rank == 0:
        from rdmeval.store.lock import RunLock

        lock = RunLock(opts.out, "train", 0, 1, run_lock=False)
    try:
        return _train(opts, config, world, rank, on_step)
    finally:
        if lock is not None:
            lock.release()


def _train(opts: TrainOptions, config: TrainConfig, world: int, rank: int,
           on_step: Callable[[StepResult], None] | None) -> Trainer:
    out = Path(opts.out)
    found = newest_milestone(out)
    if found is not None and not opts.resume:
        raise CheckpointError(f"{out} already holds checkpoints (newest {found[1].name}); pass --resume to continue it, or use a new --out")
    if opts.resume and found is None:
        raise CheckpointError(f"--resume: {out} holds no step_XXXXXXX.pt checkpoint; run without --resume to start")
    if found is not None and found[0] > config.steps:
        given = f"--steps {config.steps}" if opts.steps is not None else f"config {config.name}'s {config.steps} steps (no --steps)"
        raise CheckpointError(
            f"--resume: {out} is already at step {found[0]} ({found[1].name}), past {given}; pass --steps N with N >= {found[0]} "
            f"to continue it, or export a step with rdmeval train export {out} --step S"
        )

    if found is not None:
        verify_checkpoint(found[1])  # before any model loads: a damaged milestone is reported at once
    task, assets = build_task(config, opts)
    if found is not None:
        _check_same_data(out, assets)
    trainer = Trainer(config, task)
    losses_path, metrics_path = out / "losses.txt", out / "metrics.jsonl"
    if found is not None:
        trainer.load_checkpoint(found[1])
    losses = _kept_lines(losses_path, trainer.step, lambda line: int(line.split()[0]))
    metrics = _kept_lines(metrics_path, trainer.step, lambda line: int(json.loads(line)["step"]))
    if rank == 0:
        atomic_write_json(out / "config.json", {"config": asdict(config), "assets": assets, "resumed_from": found[1].name if found else None})

    from tqdm.auto import tqdm

    bar = tqdm(total=config.steps, initial=trainer.step, desc=f"train {config.name}", unit="step", dynamic_ncols=True,
               disable=rank != 0 or not opts.progress)
    try:
        while trainer.step < config.steps:
            start = time.perf_counter()
            r = trainer.train_step()
            seconds = time.perf_counter() - start
            if rank == 0:
                losses.append(f"{r.step} {r.loss:.10e}\n")
                metrics.append(json.dumps(_metrics(r, seconds)) + "\n")
                atomic_write_text(losses_path, "".join(losses))
                atomic_write_text(metrics_path, "".join(metrics))
                bar.set_postfix_str(f"loss {r.loss:.4e}  {seconds:.2f} s/step" + ("  SKIPPED" if r.skipped else ""), refresh=False)
                bar.update(1)
                if not opts.progress:
                    print(f"step {r.step:5d}  loss {r.loss:.6e}  grad_norm {r.grad_norm:.3e}  {seconds:.2f} s"
                          + ("  SKIPPED" if r.skipped else ""), flush=True)
            if r.step % config.save_freq == 0 or r.step == config.steps:
                state = trainer.state_dict()  # a collective when the student is sharded
                if rank == 0:
                    save_milestone(state, out)
                del state
            if on_step is not None:
                on_step(r)
    finally:
        bar.close()
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # the ranks leave together, after rank 0's last write
    return trainer


def _metrics(r: StepResult, seconds: float) -> dict[str, Any]:
    return {"step": r.step, "loss": r.loss, "raw": r.raw, "grad_norm": r.grad_norm, "skipped": r.skipped, "seconds": round(seconds, 4)}

