"""Run a generator over a prompt set into a run store: resumable, shardable, batch-invariant."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Sequence

from tqdm.auto import tqdm

from rdmeval.generators.base import Generator
from rdmeval.generators.noise import NoiseSource, SeedPolicy
from rdmeval.prompts.schema import PromptSet
from rdmeval.store import RunStore, resolve_shard, shard_items, work_items


@dataclass
class GenerationSummary:
    out: str
    rank: int
    world_size: int
    assigned: int
    generated: int
    skipped: int
    complete: bool
    seconds: float

    def line(self) -> str:
        state = "complete" if self.complete else "incomplete (other shards pending)"
        return (
            f"{self.out}: shard {self.rank}/{self.world_size}: {self.generated} generated, "
            f"{self.skipped} already present, run {state} [{self.seconds:.1f}s]"
        )


def build_request(generator: Generator, prompt_set: PromptSet, prompt_indices: Sequence[int], n_per_prompt: int, seed_policy: SeedPolicy, rng_device: str) -> dict[str, Any]:
    """Everything that determines the run's images; compared field by field on resume."""
    return {
        "model": generator.describe(),
        "prompt_set": prompt_set.describe(),
        "prompt_indices": list(prompt_indices),
        "n_per_prompt": n_per_prompt,
        "seed_policy": seed_policy.describe(),
        "rng_device": str(rng_device).split(":")[0],
        "latent_shape": list(generator.latent_shape),
        "resolution": list(generator.resolution),
    }


def _dist():
    """torch.distributed when launched by torchrun with WORLD_SIZE > 1, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return dist


def generate_run(
    generator: Generator,
    prompt_set: PromptSet,
    out: str | os.PathLike[str],
    *,
    n_per_prompt: int,
    seed_policy: SeedPolicy,
    rng_device: str = "cpu",
    batch_size: int = 8,
    limit: int | None = None,
    shard: str | None = None,
    fresh: bool = False,
    progress: bool = True,
) -> GenerationSummary:
    t0 = time.time()
    prompts = prompt_set.prompts[:limit] if limit else prompt_set.prompts
    rank, world = resolve_shard(shard)
    request = build_request(generator, prompt_set, [p.index for p in prompts], n_per_prompt, seed_policy, rng_device)
    execution = {"batch_size": batch_size, "world_size": world, "limit": limit}
    dist = _dist()
    if dist is not None and rank != 0:
        dist.barrier()  # rank 0 creates (or validates) the run first
    store = RunStore.open_for_generation(out, request, fresh=fresh and rank == 0, execution=execution)
    if dist is not None and rank == 0:
        dist.barrier()

    by_index = {p.index: p for p in prompts}
    mine = shard_items(work_items([p.index for p in prompts], n_per_prompt), rank, world)
    for idx in sorted({it.prompt_index for it in mine}):
        store.write_prompt(by_index[idx])
    height, width = generator.resolution
    pending = store.pending(mine, size=(width, height))
    noise = NoiseSource(seed_policy, generator.latent_shape, n_prompts=len(prompt_set), n_per_prompt=n_per_prompt, rng_device=rng_device)

    bar = tqdm(total=len(pending), unit="img", desc=f"generate {generator.name}", disable=not progress or not pending, dynamic_ncols=True)
    for start in range(0, len(pending), batch_size):
        batch = pending[start : start + batch_size]
        images = generator.generate([by_index[it.prompt_index].text for it in batch], noise.latents(batch))
        for it, img in zip(batch, images):
            store.save_image(it, img)
        bar.update(len(batch))
    bar.close()

    if dist is not None:
        dist.barrier()
    complete = store.mark_complete_if_done()
    return GenerationSummary(str(store.root), rank, world, len(mine), len(pending), len(mine) - len(pending), complete, time.time() - t0)
