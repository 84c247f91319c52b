"""Deterministic, disjoint splitting of the (prompt, sample) work list across shards or ranks."""

from __future__ import annotations

import os
from typing import Sequence

from rdmeval.api.layout import WorkItem
from rdmeval.errors import RdmevalError


def work_items(prompt_indices: Sequence[int], n_per_prompt: int) -> list[WorkItem]:
    """The full work list in canonical order: prompt-major, then sample."""
    return [WorkItem(p, s) for p in prompt_indices for s in range(n_per_prompt)]


def shard_items(items: Sequence[WorkItem], rank: int, world_size: int) -> list[WorkItem]:
    """Items ``rank, rank + world_size, ...``: disjoint across ranks, their union is ``items``.

    Which shard an item lands in never changes what is generated for it: noise is a function of
    the item alone (see rdmeval.generators.noise).
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise RdmevalError(f"invalid shard {rank}/{world_size}: need 0 <= i < n")
    return list(items[rank::world_size])


def resolve_shard(arg: str | None = None) -> tuple[int, int]:
    """``--shard i/n`` if given, else torchrun's RANK/WORLD_SIZE, else (0, 1)."""
    if arg:
        try:
            i, n = (int(x) for x in arg.split("/"))
        except ValueError:
            raise RdmevalError(f"--shard {arg!r}: expected i/n, e.g. --shard 0/4") from None
        if n < 1 or not 0 <= i < n:
            raise RdmevalError(f"--shard {arg!r}: need 0 <= i < n, e.g. --shard 0/4 ... --shard 3/4")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise RdmevalError("--shard cannot be combined with torchrun (WORLD_SIZE > 1); use one or the other")
        return i, n
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world
