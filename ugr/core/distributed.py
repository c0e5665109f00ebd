"""The pmf over the global batch, across DDP ranks.

The method's pmf is a softmax over the whole batch. Under DDP each rank sees
only its share, and a per-rank softmax would silently change the method (each
rank's weights would sum to 1 on their own). So every rank gathers all
logits, takes the softmax over the global batch, and keeps its own slice.
DDP then *averages* gradients over ranks, hence the ``world_size()`` factor
the training step applies to its local weighted sum.

Cost: one all-gather of B logits per step (a few hundred bytes), plus one of
the batch sizes so that ranks may hold different numbers of examples.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from ugr.core.pmf import pmf


def world_size() -> int:
    """Number of DDP ranks, 1 outside a process group."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def global_pmf(logits: Tensor) -> Tensor:
    """This rank's slice of the softmax over the logits of every rank.

    In a single process this is ``pmf(logits)``. Ranks may hold different
    numbers of logits; shorter ones are padded with ``-inf`` (weight 0) for
    the gather.
    """
    if world_size() == 1:
        return pmf(logits)
    local = logits.detach().reshape(-1)
    sizes = [torch.zeros(1, dtype=torch.long, device=local.device) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor([local.numel()], device=local.device))
    longest = int(max(size.item() for size in sizes))
    padded = torch.full((longest,), float("-inf"), dtype=local.dtype, device=local.device)
    padded[: local.numel()] = local
    gathered = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(gathered, padded)
    weights = pmf(torch.stack(gathered))
    return weights[dist.get_rank(), : local.numel()].reshape(logits.shape)


def gather_logits(logits: Tensor) -> tuple[Tensor, int]:
    """Every rank's logits, flattened and concatenated in rank order, and where this rank's begin.

    In a single process this is ``logits.detach().reshape(-1)`` and 0, so a
    computation on the gathered logits is bit for bit the one of a single
    process holding the whole batch in rank order.
    """
    local = logits.detach().reshape(-1)
    if world_size() == 1:
        return local, 0
    sizes = [torch.zeros(1, dtype=torch.long, device=local.device) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor([local.numel()], device=local.device))
    counts = [int(size.item()) for size in sizes]
    padded = torch.full((max(counts),), float("-inf"), dtype=local.dtype, device=local.device)
    padded[: local.numel()] = local
    gathered = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(gathered, padded)
    rank = dist.get_rank()
    return torch.cat([part[:count] for part, count in zip(gathered, counts)]), sum(counts[:rank])


def gather_objects(value: Any) -> list[Any]:
    """``[value]`` in one process, every rank's ``value`` in rank order under DDP (picklable values)."""
    if world_size() == 1:
        return [value]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered
