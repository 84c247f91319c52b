"""GradCache against a full-batch backward, and the differentiable all_gather with 2 gloo ranks."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import torch
import torch.multiprocessing as mp

from rdmeval.distill.gradcache import all_gather_with_grad, gradcache_backward
from rdmeval.distill.kernels import self_mean
from rdmeval.distill.loss import objective
from rdmeval.distill.reference import build_bundle

D = torch.float64


def _setup(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 6)).double()
    inputs = torch.randn(24, 5, generator=g, dtype=D)
    pool = torch.randn(40, 3, generator=g, dtype=D) + 0.5
    bundles = {
        "a": build_bundle(pool, sigma=1.0, num_landmarks=8),
        "b": build_bundle(2.0 * pool, sigma=2.0, num_landmarks=8),
    }
    bundles = {n: replace(b, Z=b.Z.double(), alpha=b.alpha.double()) for n, b in bundles.items()}
    return net, inputs, bundles


def _encode(net):
    def encode(x):
        h = net(x)
        return {"a": h[:, :3], "b": h[:, 3:]}

    return encode


def _loss(bundles):
    def loss_fn(feats):
        return objective(feats, bundles, {"a": 1.0, "b": 0.5}, gen_chunk=7).total

    return loss_fn


def _full_batch_grads(net, inputs, bundles, scale):
    net.zero_grad()
    loss = _loss(bundles)(_encode(net)(inputs))
    (scale * loss).backward()
    return loss.detach(), [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("num_chunks", [1, 3, 4, 8])
def test_gradcache_equals_full_batch_backward_fp64(num_chunks):
    net, inputs, bundles = _setup()
    scale = 1.0 / num_chunks
    ref_loss, ref_grads = _full_batch_grads(net, inputs, bundles, scale)
    net.zero_grad()
    order = []

    def encode(x):
        order.append(int(x[0, 0].mul(1e6).round()))
        return _encode(net)(x)

    loss = gradcache_backward(list(inputs.chunk(num_chunks)), encode, _loss(bundles), scale=scale)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
    for p, ref in zip(net.parameters(), ref_grads):
        torch.testing.assert_close(p.grad, ref, rtol=1e-12, atol=1e-12)
    assert order[:num_chunks] == order[num_chunks:]  # pass 2 visits the chunks in pass-1 order
    assert any(float(g.abs().max()) > 1e-6 for g in ref_grads)  # the comparison is not between zeros


def test_gradcache_is_not_plain_accumulation():
    """Summing per-chunk losses would give another gradient: k_gg couples the chunks."""
    net, inputs, bundles = _setup()
    _, ref_grads = _full_batch_grads(net, inputs, bundles, 1.0)
    net.zero_grad()
    for x in inputs.chunk(4):
        _loss(bundles)(_encode(net)(x)).backward()
    assert not torch.allclose(next(net.parameters()).grad, ref_grads[0] * 4, rtol=1e-3)


def test_an_encoder_outside_the_loss_is_skipped_not_a_crash():
    """Features of encoder 'b' are encoded but the loss uses 'a' only: its gradient is None, and GradCache
    must give the same gradient as the full-batch backward of that loss."""
    net, inputs, bundles = _setup()

    def loss_a(feats):
        return objective({"a": feats["a"]}, {"a": bundles["a"]}, {"a": 1.0}, gen_chunk=7).total

    net.zero_grad()
    loss_a(_encode(net)(inputs)).backward()
    ref = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    gradcache_backward(list(inputs.chunk(3)), _encode(net), loss_a)
    for p, r in zip(net.parameters(), ref):
        torch.testing.assert_close(p.grad, r, rtol=1e-12, atol=1e-12)  # fp64, same sums in another order
    assert any(float(r.abs().max()) > 1e-6 for r in ref)


def _rank_work(rank: int, world: int, out_dir: str) -> None:
    """One rank's checks; every tensor, graph and trainer it makes is freed when it returns."""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(123)
    full = torch.randn(world * 3, 4, generator=g, dtype=D)
    mine = full[rank * 3 : (rank + 1) * 3].clone().requires_grad_(True)
    gathered = all_gather_with_grad(mine)
    assert torch.equal(gathered.detach(), full)
    loss = self_mean(gathered, 0.3, chunk=2) + (gathered**3).sum()
    loss.backward()
    ref = full.clone().requires_grad_(True)
    (self_mean(ref, 0.3, chunk=2) + (ref**3).sum()).backward()
    torch.testing.assert_close(mine.grad, ref.grad[rank * 3 : (rank + 1) * 3], rtol=1e-12, atol=1e-12)

    # The trainer on 2 ranks x grad_accum 2 sees the same global batch as 1 rank x grad_accum 4.
    from rdmeval.distill.config import get_config
    from rdmeval.distill.toy import build_toy_task
    from rdmeval.distill.trainer import Trainer

    cfg = get_config("debug").with_world_size(world)
    torch.set_default_dtype(D)  # fp64 toy: see the comparison in the test below
    trainer = Trainer(cfg, build_toy_task(cfg))
    loss = trainer.train_step().loss
    grads = {n: p.grad for n, p in trainer.task.student.named_parameters()}  # rank-averaged, clipped
    if rank == 0:
        torch.save({"loss": loss, "grads": grads}, os.path.join(out_dir, "ddp.pt"))


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import gc

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        _rank_work(rank, world, out_dir)
        # Both ranks leave together, and nothing of the work (tensors, autograd graphs, work handles) is
        # alive when the group goes: a gloo group torn down while its peer still works, or destroyed only
        # at interpreter shutdown because something still referenced it, aborts the process
        # ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()
        gc.collect()


def test_all_gather_gradient_and_two_rank_trainer_match_one_process(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    from rdmeval.distill.config import get_config
    from rdmeval.distill.toy import build_toy_task
    from rdmeval.distill.trainer import Trainer

    cfg = get_config("debug")
    assert cfg.world_size == 1 and cfg.grad_accum == 4
    # In fp64: the ranks run one thread each and this process may run several, and the toy's cold kernels
    # turn fp32 reduction-order differences into ~1e-5 of the loss; in fp64 they stay ~1e-12.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(D)
    try:
        trainer = Trainer(cfg, build_toy_task(cfg))
        loss = trainer.train_step().loss
    finally:
        torch.set_default_dtype(previous)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    assert ddp["loss"] == pytest.approx(loss, rel=1e-9)
    # Same convention as one process with grad_accum 4: θ.grad = ∇L · batch_size / rollout_size.
    # Rank-averaged vs accumulated: the same fp64 sums in another order.
    for name, p in trainer.task.student.named_parameters():
        assert p.grad.dtype == D and float(p.grad.abs().max()) > 0
        torch.testing.assert_close(ddp["grads"][name], p.grad, rtol=1e-8, atol=1e-12)
