"""Run a generator over a prompt set into a run store: resumable, shardable, reproducible.

Forward batches are fixed blocks of the canonical work list (prompt-major, then sample): block
``k`` holds items ``k*B .. k*B+B-1`` for the run's batch size ``B``. The batch size is therefore
part of the request (recorded, compared on resume): GPU and CPU kernels may round differently for
different batch shapes, so an image is reproducible bit for bit only within its block. Shards and
ranks take whole blocks, and a resumed run recomputes whole blocks (saving only missing images), so
an image never depends on shard count, world size or resume point. The protocol defaults copy the
reference's composition: a GenEval prompt's 4 samples in one forward, other sets in chunks of 16.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

from tqdm.auto import tqdm

from rdmeval.errors import RdmevalError
from rdmeval.distributed import torchrun_group
from rdmeval.generators.base import Generator
from rdmeval.generators.noise import NoiseSource, SeedPolicy
from rdmeval.prompts.schema import PromptSet
from rdmeval.provenance import current_command
from rdmeval.api.layout import image_name
from rdmeval.generators.finite import NonFiniteError
from rdmeval.store import RunStore, WorkItem, resolve_shard, work_items
from rdmeval.store.run_store import is_constant, prompt_record_hashes
from rdmeval.store.lock import RunLock

PNG_WRITERS = 4  # PNG encoding runs beside the GPU (PIL's zlib releases the GIL)


@dataclass
class GenerationSummary:
    out: str
    rank: int
    world_size: int
    assigned: int
    generated: int
    complete: bool
    seconds: float
    #: Constant images (every pixel the same value) among those made by this call.
    constant_generated: int = 0
    #: The manifest's ``constant_images`` once the run is complete (count + the first names), else None.
    constant_in_run: dict[str, Any] | None = None

    @property
    def skipped(self) -> int:
        """Assigned images already present (kept, not made again)."""
        return self.assigned - self.generated

    def line(self) -> str:
        state = "complete" if self.complete else "incomplete (other shards pending)"
        line = (
            f"{self.out}: shard {self.rank}/{self.world_size}: {self.generated} generated, "
            f"{self.skipped} already present, run {state} [{self.seconds:.1f}s]"
        )
        warning = self.constant_warning()
        return line + ("\n" + warning if warning else "")

    def constant_warning(self) -> str:
        """A warning line when images are constant (every pixel the same value), else ''."""
        run = self.constant_in_run or {}
        if run.get("count"):
            names = ", ".join(run.get("images", []))
            more = f", ... ({run['count'] - len(run.get('images', []))} more)" if run["count"] > len(run.get("images", [])) else ""
            where = f"{run['count']} images of the run are constant (every pixel the same value): {names}{more}"
        elif self.constant_generated:
            where = f"{self.constant_generated} of the {self.generated} images made now are constant (every pixel the same value)"
        else:
            return ""
        return (f"rdmeval: WARNING: {where}. A model that outputs flat (e.g. black) images is broken or saturated; "
                "look at them before scoring (recorded in manifest.json as constant_images)")


def build_request(generator: Generator, prompt_set: PromptSet, prompt_indices: Sequence[int], n_per_prompt: int,
                  seed_policy: SeedPolicy, rng_device: str, batch_size: int) -> dict[str, Any]:
    """Everything that determines the run's images; compared field by field on resume."""
    return {
        "model": generator.describe(),
        "prompt_set": prompt_set.describe(),
        "prompt_indices": list(prompt_indices),
        "n_per_prompt": n_per_prompt,
        "seed_policy": seed_policy.describe(),
        "rng_device": str(rng_device).split(":")[0],
        "batch_size": batch_size,
        "latent_shape": list(generator.latent_shape),
        "resolution": list(generator.resolution),
    }


def run_provenance(generator: Generator) -> dict[str, Any]:
    """What the manifest records beside the request (never compared on resume): the command line
    (``execution.command``) and the generator's :meth:`provenance` if it has one (a klein base folder's hash)."""
    out: dict[str, Any] = {}
    command = current_command()
    if command:
        out["command"] = command
    extra = getattr(generator, "provenance", None)
    found = extra() if callable(extra) else None
    if found:
        out["provenance"] = found
    return out


def forward_blocks(items: Sequence[WorkItem], batch_size: int) -> list[list[WorkItem]]:
    """The canonical list cut into consecutive blocks of ``batch_size`` (the last may be shorter)."""
    return [list(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]


def generate_run(
    generator: Generator,
    prompt_set: PromptSet,
    out: str | os.PathLike[str],
    *,
    n_per_prompt: int,
    seed_policy: SeedPolicy,
    rng_device: str = "cpu",
    batch_size: int = 16,
    limit: int | None = None,
    shard: str | None = None,
    fresh: bool = False,
    progress: bool = True,
) -> GenerationSummary:
    t0 = time.time()
    for flag, value in (("--batch-size", batch_size), ("--n-per-prompt", n_per_prompt), ("--limit", limit)):
        if value is not None and value < 1:
            raise RdmevalError(f"{flag} must be >= 1, got {value}")
    prompts = prompt_set.prompts[:limit]
    rank, world = resolve_shard(shard)
    # the seed policy and RNG device are checked before the run directory is created
    noise = NoiseSource(seed_policy, generator.latent_shape, n_prompts=len(prompt_set), n_per_prompt=n_per_prompt, rng_device=rng_device)
    request = build_request(generator, prompt_set, [p.index for p in prompts], n_per_prompt, seed_policy, rng_device, batch_size)
    execution = {"world_size": world, "limit": limit, "prompt_source": prompt_set.source}  # where the prompts were read
    execution.update(run_provenance(generator) if rank == 0 else {})  # the command, the base's identity
    dist = torchrun_group(shard)
    if dist is not None and rank != 0:
        dist.barrier()  # rank 0 creates (or validates) the run first
    lock = RunLock(out, "generate", rank, world, run_lock=dist is None or rank == 0, exclusive=fresh and rank == 0)
    records = prompt_record_hashes(prompts)  # what each metadata.jsonl holds, for the scorers to check
    store = RunStore.open_for_generation(out, request, fresh=fresh and rank == 0, execution=execution, prompt_records=records)
    lock.opened()  # one writer per run and shard; a killed writer's temporary files are removed
    if dist is not None and rank == 0:
        dist.barrier()

    by_index = {p.index: p for p in prompts}
    blocks = forward_blocks(work_items([p.index for p in prompts], n_per_prompt), batch_size)[rank::world]
    mine = [it for block in blocks for it in block]
    for idx in sorted({it.prompt_index for it in mine}):
        store.write_prompt(by_index[idx])
    height, width = generator.resolution
    missing = set(store.pending(mine, size=(width, height)))  # absent, undecodable, resized or non-RGB
    todo = [block for block in blocks if missing.intersection(block)]
    writer = dist is None or rank == 0  # under torchrun rank 0 alone writes the manifest
    any_missing = len(missing)
    if dist is not None:  # a resume anywhere must mark the manifest (scores made before it are stale)
        import torch

        total = torch.tensor([any_missing], dtype=torch.int64)
        dist.all_reduce(total)
        any_missing = int(total.item())
    if any_missing and store.resumed and writer:
        store.record_resume(execution, records)

    bar = tqdm(total=len(missing), unit="img", desc=f"generate {generator.name}", disable=not progress or not missing, dynamic_ncols=True)
    writes: list[Future] = []
    constant = 0
    with ThreadPoolExecutor(max_workers=PNG_WRITERS, thread_name_prefix="png") as pool:
        for block in todo:
            try:
                images = generator.generate([by_index[it.prompt_index].text for it in block], noise.latents(block))
            except NonFiniteError as exc:
                raise NonFiniteError(f"{store.root}: images {image_name(*block[0])} to {image_name(*block[-1])}: {exc}. "
                                     "The run stays incomplete; resume it into the same --out once the model is fixed") from None
            new = [(it, img) for it, img in zip(block, images) if it in missing]
            constant += sum(is_constant(img) for _, img in new)
            writes += [pool.submit(store.save_image, it, img) for it, img in new]
            while len(writes) > 4 * PNG_WRITERS * batch_size:  # bounded memory; surfaces write errors early
                writes.pop(0).result()
            bar.update(len(new))
        for f in writes:
            f.result()
    bar.close()

    if dist is not None:
        dist.barrier()
    complete = store.mark_complete_if_done(write=writer, images_made=any_missing > 0)
    constant_in_run = store.read_manifest().get("constant_images") if complete else None
    return GenerationSummary(str(store.root), rank, world, len(mine), len(missing), complete, time.time() - t0,
                             constant, constant_in_run)
