"""FSDP2 on 2 gloo ranks (CPU): the sharded flux_tiny step equals the 1-rank step, and checkpoints move
between layouts (2 sharded ranks <-> 1 unsharded rank) with their tensors unchanged."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from rdmeval.distill.checkpoints import milestone_path, save_milestone
from rdmeval.distill.config import get_config
from rdmeval.distill.flux_task import build_flux_task, resolve_assets
from rdmeval.distill.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _trainer(config, assets: Path) -> Trainer:
    return Trainer(config, build_flux_task(config, resolve_assets(config, assets=assets)))


def _full(t: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def _rank_work(rank: int, assets: Path, out: Path) -> None:
    """One rank's work; everything it makes is freed when it returns (see _worker)."""
    torch.set_num_threads(1)
    cfg = replace(get_config("flux_tiny"), fsdp=True).with_world_size(2)
    assert (cfg.batch_size, cfg.grad_accum) == (4, 1)  # rollout 8 = 4 x 2 ranks x 1 chunk

    trainer = _trainer(cfg, assets)
    assert trainer.sharded
    result = trainer.train_step()
    grads = {n: _full(p.grad).clone() for n, p in trainer.task.student.named_parameters()}  # collectives: every rank
    params = {n: _full(p.detach()).clone() for n, p in trainer.task.student.named_parameters()}
    state = trainer.state_dict()  # gathered, on rank 0
    if rank == 0:
        save_milestone(state, out / "sharded")
        torch.save({"loss": result.loss, "grad_norm": result.grad_norm, "grads": grads, "params": params}, out / "sharded.pt")
    del state

    # The 1-rank checkpoint (written by the test before the ranks started) resumes here, sharded on 2 ranks.
    resumed = _trainer(cfg, assets)
    resumed.load_checkpoint(milestone_path(out / "single", 1))
    loaded = {n: _full(p.detach()).clone() for n, p in resumed.task.student.named_parameters()}
    moments = {n: _full(resumed.optimizer.state[p]["exp_avg"]).clone() for n, p in resumed.task.student.named_parameters()}
    if rank == 0:
        torch.save({"step": resumed.step, "params": loaded, "exp_avg": moments}, out / "loaded.pt")


def _worker(rank: int, world: int, init_file: str, assets: str, out: str) -> None:
    import gc

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        _rank_work(rank, Path(assets), Path(out))
        dist.barrier()  # leave together, with nothing of the work alive (docs/testing.md, multi-process tests)
    finally:
        dist.destroy_process_group()
        gc.collect()


def test_fsdp_two_ranks_match_one_rank_and_checkpoints_cross_layouts(tmp_path, tiny_flux_assets):
    single = _trainer(get_config("flux_tiny"), tiny_flux_assets)
    assert not single.sharded and single.config.grad_accum == 2
    result = single.train_step()
    save_milestone(single.state_dict(), tmp_path / "single")

    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tiny_flux_assets), str(tmp_path)), nprocs=2, join=True)
    sharded = torch.load(tmp_path / "sharded.pt", weights_only=True)

    # Same global batch (chunk c is seeded by its global index), same per-chunk arithmetic (batch 4 each): the
    # loss is the same number. Gradients: one process sums chunks 0+1 at scale 1/2, the ranks reduce-scatter
    # (c0 + c1)/2 at scale 1, and the clip norm is summed over shards: fp32 rounding only (~1e-7 relative).
    assert sharded["loss"] == pytest.approx(result.loss, rel=1e-6)
    assert sharded["grad_norm"] == pytest.approx(result.grad_norm, rel=1e-5)
    for name, p in single.task.student.named_parameters():
        torch.testing.assert_close(sharded["grads"][name], p.grad, rtol=1e-5, atol=1e-7 * float(p.grad.abs().max()))
        # Adam's first step is lr·g/(|g| + eps): the tiny gradient differences move it by far less than lr = 1e-3
        torch.testing.assert_close(sharded["params"][name], p.detach(), rtol=0, atol=1e-6)

    # The sharded run's checkpoint (gathered full tensors) resumes on 1 unsharded rank: same tensors.
    moved = _trainer(get_config("flux_tiny"), tiny_flux_assets)
    moved.load_checkpoint(milestone_path(tmp_path / "sharded", 1))
    assert moved.step == 1
    for name, p in moved.task.student.named_parameters():
        assert torch.equal(p.detach(), sharded["params"][name]), name
    assert moved.train_step().step == 2  # and trains on

    # The 1-rank checkpoint resumed on 2 sharded ranks: same parameters and Adam moments.
    loaded = torch.load(tmp_path / "loaded.pt", weights_only=True)
    assert loaded["step"] == 1
    for name, p in single.task.student.named_parameters():
        assert torch.equal(loaded["params"][name], p.detach()), name
        assert torch.equal(loaded["exp_avg"][name], single.optimizer.state[p]["exp_avg"]), name
