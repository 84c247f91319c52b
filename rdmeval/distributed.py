"""torch.distributed under torchrun: the one process group rdmeval uses (generation and scoring).

rdmeval's ranks only synchronise (a barrier after each rank wrote its share of files; rank 0 then
writes manifests and summaries), so the group is gloo on every machine: no GPU-to-rank mapping is
needed, and NCCL is never initialised on the wrong device.
"""

from __future__ import annotations

import atexit
import os


def _destroy_group() -> None:
    """Tear the group down before the interpreter exits.

    A gloo group left to static destruction at exit can abort the process ("terminate called without
    an active exception") while its threads are still joinable; every rank's last collective is a
    barrier, so each rank may destroy its own group once it is done (atexit runs while the interpreter
    is still whole).
    """
    import gc

    import torch.distributed as dist

    if dist.is_initialized():
        gc.collect()  # drop what still references the group (work handles in reference cycles) first
        dist.destroy_process_group()


def torchrun_group(shard: str | None):
    """``torch.distributed`` under torchrun (WORLD_SIZE > 1 and no ``--shard``), else None."""
    if shard or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
        atexit.register(_destroy_group)
    return dist
