"""GradCache: the exact gradient of a batch-coupled loss through chunked encoders.

The loss couples every pair of samples (k_gg), so plain gradient accumulation is wrong.
GradCache instead:

1. encodes every chunk without grad and keeps the features as leaves F;
2. computes the loss on all features (gathered across ranks when distributed), scales it and
   back-propagates to the leaves only: G = ∂(scale·L)/∂F_local;
3. re-encodes every chunk, in the same order, with grad, and back-propagates Σ ⟨f, G[slice]⟩.

Step 3 gives Σ_chunks J_chunkᵀ G_chunk = ∂(scale·L)/∂θ exactly, provided ``encode_fn`` is
deterministic (same features in both passes). It needs no equal chunk sizes, but a distributed
all_gather needs equal per-rank batches.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

Chunk = TypeVar("Chunk")
Features = Mapping[str, Tensor]


def gradcache_backward(
    chunks: Sequence[Chunk],
    encode_fn: Callable[[Chunk], Features],
    loss_fn: Callable[[dict[str, Tensor]], Tensor],
    *,
    scale: float = 1.0,
    gather_fn: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Accumulate ∂(scale·loss_fn(all features))/∂θ into ``.grad`` of the encoder's parameters.

    ``encode_fn(chunk)`` maps a chunk to named features (N_chunk, d); ``loss_fn`` takes the named
    features of every chunk concatenated in chunk order (after ``gather_fn``, e.g.
    ``all_gather_with_grad``, when given) and returns a scalar. Returns the detached loss.
    """
    if not chunks:
        raise ValueError("gradcache_backward needs at least one chunk")

    # Pass 1: features without grad.
    with torch.no_grad():
        cached = [dict(encode_fn(chunk)) for chunk in chunks]
    names = list(cached[0])
    sizes = [int(c[names[0]].shape[0]) for c in cached]
    leaves = {name: torch.cat([c[name] for c in cached]).requires_grad_(True) for name in names}
    del cached

    # Middle: the loss on all (gathered) features, back-propagated to the leaves only.
    with torch.enable_grad():
        inputs = {name: gather_fn(leaf) if gather_fn is not None else leaf for name, leaf in leaves.items()}
        loss = loss_fn(inputs)
        (loss * scale).backward()
    # an encoder whose features do not enter the loss (weight 0, or left out) has no gradient to push back
    grads = {name: leaf.grad for name, leaf in leaves.items() if leaf.grad is not None}

    # Pass 2: re-encode each chunk, same order, and push the cached gradient through it.
    start = 0
    for chunk, size in zip(chunks, sizes):
        with torch.enable_grad():
            feats = encode_fn(chunk)
            if list(feats) != names:
                raise RuntimeError(f"encode_fn returned encoders {list(feats)} in pass 2 but {names} in pass 1")
            surrogate = sum((feats[name] * grads[name][start : start + size]).sum() for name in grads)
            if isinstance(surrogate, torch.Tensor) and surrogate.requires_grad:
                surrogate.backward()
        start += size
    return loss.detach()


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate every rank's (n, d) rows; the backward returns this rank's row slice.

    Every rank computes the same global loss, so the gradient a rank gets for its own rows is
    already the full ∂L/∂F_local: no reduction of the leaf gradients is needed.
    """

    @staticmethod
    def forward(ctx, x: Tensor, group) -> Tensor:  # type: ignore[override]
        world = dist.get_world_size(group)
        ctx.rank = dist.get_rank(group)
        ctx.rows = x.shape[0]
        if x.is_cuda:
            # NCCL runs on its own stream: without this sync the gather can read features the
            # compute stream has not written yet, which hangs deterministically.
            torch.cuda.current_stream().synchronize()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous(), group=group)
        parts[ctx.rank] = x
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows], None


def all_gather_with_grad(x: Tensor, group=None) -> Tensor:
    """Differentiable all_gather of equal-sized (n, d) blocks along dim 0, rank-major order."""
    return _AllGatherWithGrad.apply(x, group)


def all_reduce_mean_(tensors: Sequence[Tensor], group=None) -> None:
    """In place: every tensor becomes its mean over ranks (all_reduce SUM / world)."""
    world = dist.get_world_size(group)
    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
        t.div_(world)
