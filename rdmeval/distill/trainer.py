"""The distillation loop: one fresh global rollout per step, GradCache, AdamW.

``Trainer.train_step()`` reads top to bottom:

1. sample this rank's ``grad_accum`` chunks; chunk data depends only on (seed, step, global chunk
   index), so the global batch is the same for any (world_size, grad_accum) split of the rollout
   and a resumed run sees the same data;
2. GradCache over the chunks: features (joint [φ | β·τ] when enabled) are gathered across ranks,
   the loss Σ_φ w_φ·L_φ/|L_φ| is taken on the global batch, and its gradient scaled by
   1/grad_accum flows back through every chunk;
3. average the parameter gradients over ranks (no DDP), so θ.grad = ∇L·batch_size/rollout_size
   as in the reference;
4. clip the gradient norm at ``grad_clip``; skip the update if the loss or the norm is not
   finite; else an AdamW step.

Checkpoints hold the model, the optimizer, the step and the RNG states (the reference keeps only
the model), are written atomically and loaded with ``weights_only=True``.

A student sharded with FSDP2 (``fully_shard``; its parameters are DTensors) gets its gradients
reduce-scattered and averaged over ranks by FSDP during each backward, so step 3 is skipped for
it; its checkpoints hold the full (unsharded) model and optimizer state in the same layout as an
unsharded run's, so a run can resume on another number of ranks, sharded or not.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.tensor import DTensor

from rdmeval.errors import RdmevalError
from rdmeval.io import atomic_write_bytes
from rdmeval.distill.config import ConfigError, TrainConfig
from rdmeval.distill.gradcache import all_gather_with_grad, all_reduce_mean_, gradcache_backward
from rdmeval.distill.loss import objective
from rdmeval.distill.reference import ReferenceBundle, joint_feature

CHECKPOINT_FORMAT = "rdmeval.distill.checkpoint/1"
# Fields that may change between a checkpoint and the run that resumes it. The data do not depend on
# the layout: chunk c of a step is seeded by its global index and the global batch is gathered in chunk
# order, so (world_size, grad_accum) may change as long as batch_size and rollout_size do not (the
# config enforces rollout = batch x world x accum); fsdp is where the parameters live, not what they are.
RESUMABLE_CHANGES = frozenset({"steps", "save_freq", "world_size", "grad_accum", "fsdp"})


class CheckpointError(RdmevalError):
    """A training checkpoint cannot be resumed (missing, malformed, or from another config)."""


class DistillTask(Protocol):
    """What the trainer trains: a student, a chunk sampler, an encoder and frozen references."""

    student: nn.Module
    bundles: dict[str, ReferenceBundle]
    text_table: Tensor | None

    def sample_chunk(self, generator: torch.Generator, batch_size: int) -> Any: ...

    def encode(self, chunk: Any) -> dict[str, Tensor]: ...


@dataclass(frozen=True)
class StepResult:
    step: int  # the step number just completed (1-based)
    loss: float  # Σ_φ raw L_φ (the golden-curve value)
    objective: float  # Σ_φ w_φ·L_φ/|L_φ| (≈ number of encoders; what is back-propagated)
    raw: dict[str, float]
    grad_norm: float  # pre-clip
    skipped: bool


def chunk_seed(seed: int, step: int, chunk_index: int) -> int:
    """The seed of one chunk's generator, from (run seed, step, global chunk index)."""
    return int(np.random.SeedSequence([seed, step, chunk_index]).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


class Trainer:
    def __init__(self, config: TrainConfig, task: DistillTask, *, group=None):
        self.config = config
        self.task = task
        distributed = dist.is_available() and dist.is_initialized()
        self.group = group
        self.world_size = dist.get_world_size(group) if distributed else 1
        self.rank = dist.get_rank(group) if distributed else 0
        if self.world_size != config.world_size:
            raise ConfigError(
                f"config {config.name!r} has world_size {config.world_size} but {self.world_size} rank(s) are running; "
                f"use config.with_world_size({self.world_size}) to keep rollout_size and recompute grad_accum"
            )
        self._check_references()
        self.params = [p for p in task.student.parameters() if p.requires_grad]
        if not self.params:
            raise ConfigError("the student has no trainable parameters")
        self.optimizer = torch.optim.AdamW(
            self.params, lr=config.lr, betas=config.betas, eps=config.adam_eps, weight_decay=config.weight_decay
        )
        self.weights = config.weights()
        self.step = 0
        self.sharded = any(isinstance(p, DTensor) for p in self.params)
        self._names = [n for n, p in task.student.named_parameters() if p.requires_grad]

    def _check_references(self) -> None:
        cfg, bundles = self.config, self.task.bundles
        missing = [name for name in cfg.encoders if name not in bundles]
        if missing:
            raise ConfigError(f"TrainConfig.encoders {missing} have no reference bundle")
        if cfg.joint_enable:
            if self.task.text_table is None:
                raise ConfigError("joint_enable is true but the task has no text table (τ)")
            for name in cfg.encoders:
                b = bundles[name]
                if not b.joint or b.d_txt != self.task.text_table.shape[1]:
                    raise ConfigError(
                        f"joint_enable is true but the bundle of {name!r} is not a joint bundle with d_txt = "
                        f"{self.task.text_table.shape[1]} (τ's width); rebuild it with text features or set joint_enable=False"
                    )
        else:
            bad = [name for name in cfg.encoders if bundles[name].joint]
            if bad:
                raise ConfigError(f"joint_enable is false but the bundles of {bad} are joint; use marginal bundles")

    # ------------------------------------------------------------------ one step

    def _chunks(self) -> list[Any]:
        cfg = self.config
        first = self.rank * cfg.grad_accum
        return [
            self.task.sample_chunk(torch.Generator().manual_seed(chunk_seed(cfg.seed, self.step, first + c)), cfg.batch_size)
            for c in range(cfg.grad_accum)
        ]

    def _encode(self, chunk: Any) -> dict[str, Tensor]:
        feats = self.task.encode(chunk)
        if not self.config.joint_enable:
            return {name: feats[name] for name in self.config.encoders}
        tau = self.task.text_table[chunk.idx]
        return {name: joint_feature(feats[name], tau, self.task.bundles[name].beta) for name in self.config.encoders}

    def train_step(self) -> StepResult:
        """One optimizer step on a fresh rollout (deterministic algorithms on for the step if configured)."""
        if not self.config.deterministic:
            return self._train_step()
        before = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)
        try:
            return self._train_step()
        finally:
            torch.use_deterministic_algorithms(before)

    def _train_step(self) -> StepResult:
        cfg = self.config
        self.optimizer.zero_grad(set_to_none=True)
        chunks = self._chunks()
        values: dict[str, Any] = {}

        def loss_fn(features: dict[str, Tensor]) -> Tensor:
            value = objective(
                features, {n: self.task.bundles[n] for n in features}, self.weights,
                gen_chunk=cfg.gen_chunk, eps=cfg.self_norm_eps,
            )
            values["raw"] = value.raw
            return value.total

        gather = None
        if self.world_size > 1:
            def gather(x: Tensor) -> Tensor:
                return all_gather_with_grad(x, self.group)

        total = gradcache_backward(chunks, self._encode, loss_fn, scale=1.0 / cfg.grad_accum, gather_fn=gather)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        for p, g in zip(self.params, grads):
            p.grad = g
        if self.world_size > 1 and not self.sharded:
            all_reduce_mean_(grads, self.group)  # FSDP has already reduce-scattered (averaged) sharded gradients
        norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        grad_norm = float(norm.full_tensor() if isinstance(norm, DTensor) else norm)
        raw = {name: float(v) for name, v in values["raw"].items()}
        skipped = not (math.isfinite(float(total)) and math.isfinite(grad_norm))
        if skipped:
            self.optimizer.zero_grad(set_to_none=True)
        else:
            self.optimizer.step()
        self.step += 1
        return StepResult(self.step, sum(raw.values()), float(total), raw, grad_norm, skipped)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        if self.sharded:  # a collective: every rank calls it; the full tensors land on rank 0 (CPU)
            model, optimizer = self._full_sharded_state()
        else:
            model, optimizer = self.task.student.state_dict(), self.optimizer.state_dict()
        return {
            "format": CHECKPOINT_FORMAT,
            "config": asdict(self.config),
            "step": self.step,
            "model": model,
            "optimizer": optimizer,
            "rng": rng,
        }

    def _full_sharded_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Gathered model and optimizer state, the optimizer keyed by parameter index like ``Optimizer.state_dict``."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model = get_model_state_dict(self.task.student, options=options)
        optim = get_optimizer_state_dict(self.task.student, self.optimizer, options=options)
        if not optim.get("param_groups"):  # cpu_offload leaves the gathered state on rank 0 only
            return model, {"state": {}, "param_groups": []}
        index = {name: i for i, name in enumerate(self._names)}
        groups = [{**g, "params": [index[n] for n in g["params"]]} for g in optim["param_groups"]]
        state = {index[name]: value for name, value in optim["state"].items()}
        return model, {"state": state, "param_groups": groups}

    def _load_sharded_state(self, model: dict[str, Any], optimizer: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True)
        set_model_state_dict(self.task.student, model, options=options)
        groups = [{**g, "params": [self._names[i] for i in g["params"]]} for g in optimizer["param_groups"]]
        state = {self._names[int(i)]: v for i, v in optimizer["state"].items()}
        set_optimizer_state_dict(self.task.student, self.optimizer, {"state": state, "param_groups": groups}, options=options)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"checkpoint format {state.get('format')!r} is not {CHECKPOINT_FORMAT!r}")
        saved, current = state["config"], asdict(self.config)
        changed = sorted(k for k in current.keys() | saved.keys() if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k))
        if changed:
            detail = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
            flags = {"batch_size": f"--batch-size {saved.get('batch_size')}",
                     "deterministic": "--deterministic" if saved.get("deterministic") else "no --deterministic",
                     "name": f"--config {saved.get('name')}"}
            how = [flags[k] for k in changed if k in flags]
            raise CheckpointError(f"the checkpoint was written by a different config ({detail}); resume with the same config"
                                  + (f" ({', '.join(how)})" if how else ""))
        if self.sharded:
            self._load_sharded_state(state["model"], state["optimizer"])
        else:
            self.task.student.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        buffer = io.BytesIO()
        torch.save(self.state_dict(), buffer)
        return atomic_write_bytes(path, buffer.getvalue())

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist; check --resume or the --out directory")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:
            raise CheckpointError(
                f"checkpoint {path} cannot be read with weights_only=True ({exc}); if it is damaged, delete it (or move it away) "
                "and --resume continues from the milestone before it"
            ) from exc
        try:
            self.load_state_dict(state)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from exc
