"""One harness for the tests that a stateful weighting (the running normaliser, group DRO) gives the same weights,
state and gradients with micro-batches and under two-process gloo DDP as one process with the full batch.

A test module defines its ``run(indices, micro_batches)`` at module level (``steps`` with its weighting, data and
state) and calls ``two_ranks(tmp_path, run)``: each rank runs its share of the ``TOTAL`` examples with 1 and 2
micro-batches."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ugr.core.step import Terms, reweigh_backward

TOTAL, STEPS = 8, 3  # examples in the global batch, optimizer steps
Run = Callable[[list[int], int], dict]


def steps(
    weighting: Any,
    data: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    indices: list[int],
    micro_batches: int,
    state: Callable[[Any], Any],
    groups: Optional[Sequence[str]] = None,
) -> dict:
    """``STEPS`` steps of ``reweigh_backward`` on a linear regression over the examples ``indices`` (``data(step)``:
    the step's full x and y), the gradient all-reduced as DDP averages it; per step the weights, the gradient and
    ``state(weighting)``."""
    parameter = torch.tensor([0.3, -0.2], dtype=torch.float64, requires_grad=True)
    out: dict = {"weights": [], "gradients": [], "state": []}
    for step in range(STEPS):
        x, y = data(step)

        def compute(chunk: list[int], x: torch.Tensor = x, y: torch.Tensor = y) -> Terms:
            labels = None if groups is None else [groups[i] for i in chunk]
            return Terms((x[chunk] @ parameter - y[chunk]).pow(2), groups=labels)

        chunks = [c.tolist() for c in torch.tensor(indices).chunk(micro_batches)]
        outcome = reweigh_backward(compute, chunks, weighting, step=step, epoch=0)
        gradient = parameter.grad.clone()
        if dist.is_initialized():
            dist.all_reduce(gradient)
            gradient /= dist.get_world_size()  # DDP averages
        parameter.grad = None
        out["weights"].append(outcome.weights)
        out["gradients"].append(gradient)
        out["state"].append(state(weighting))
    return out


def leave_together() -> NoReturn:
    """Ends a DDP test worker whose results are on disk: a barrier (no rank leaves while gloo still talks to
    it, which aborts the other), then ``os._exit(0)``, not ``destroy_process_group``: its gloo teardown can
    deadlock (ProcessGroupGloo's destructor joins its worker thread while holding the GIL that thread waits
    for; a full suite hung there once). A worker that fails destroys its group and raises instead."""
    dist.barrier()
    os._exit(0)


def _worker(rank: int, world: int, init_file: str, out_dir: str, run: Run) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        share = list(range(rank * TOTAL // world, (rank + 1) * TOTAL // world))
        torch.save({k: run(share, k) for k in (1, 2)}, Path(out_dir) / f"rank{rank}.pt")
    except BaseException:
        dist.destroy_process_group()
        raise
    leave_together()


def assert_two_ranks_equal_one_process(tmp_path: Path, run: Run, full: dict) -> None:
    """Two gloo ranks, each with half the batch in 1 and in 2 micro-batches: every rank holds the full batch's
    state bit for bit, the ranks' weights concatenated are the full batch's, and the averaged gradient matches."""
    mp.spawn(_worker, args=(2, str(tmp_path / "pg"), str(tmp_path), run), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for k in (1, 2):
        for rank in ranks:
            assert rank[k]["state"] == full["state"]
        for step in range(STEPS):
            assert torch.equal(torch.cat([rank[k]["weights"][step] for rank in ranks]), full["weights"][step])
            assert torch.allclose(ranks[0][k]["gradients"][step], full["gradients"][step], rtol=1e-12, atol=0)
