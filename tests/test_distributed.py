"""DDP (gloo, 2 CPU processes) and gradient accumulation keep the UGR update exact."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from asteroid.models import SuDORMRFImprovedNet
from ddp_helpers import leave_together

from ugr.core.pmf import pmf
from ugr.core.step import Terms, reweigh_backward
from ugr.core.weighting import build
from ugr.separation import losses as L

BATCH = 4
CLASSES = [["speech", "dog"], ["rain", "speech"], ["dog", "rain"], ["speech", "rain"]]
COARSE = [["speech" if c == "speech" else "env" for c in row] for row in CLASSES]
WEIGHTINGS = {
    "robust": {"type": "robust", "alpha": 0.5},
    "robust_mixture": {"type": "robust", "alpha": 0.5, "granularity": "mixture"},
    "class": {"type": "class", "gamma": {"speech": 2.0, "dog": -1.0}},
}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return SuDORMRFImprovedNet(
        n_src=2, bn_chan=8, num_blocks=2, upsampling_depth=2, n_filters=16, kernel_size=9, sample_rate=8000
    ).double()


def _batch():
    g = torch.Generator().manual_seed(1)
    src = torch.randn(BATCH, 2, 320, generator=g, dtype=torch.float64)
    src[:, 0] *= torch.linspace(0.2, 3.0, BATCH, dtype=torch.float64)[:, None]
    return src.sum(1), src


def _one_step(model, indices, weighting, micro_batches, wrap=lambda m: m):
    """One SGD step of UGR on the examples ``indices`` split into ``micro_batches``."""
    mix, src = _batch()
    net = wrap(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)

    def compute(chunk):
        per_source, _ = L.pit_neg_sisdr(net(mix[chunk]), src[chunk])
        return Terms(
            L.at_granularity(per_source, weighting.granularity),
            classes=[CLASSES[i] for i in chunk],
            coarse=[COARSE[i] for i in chunk],
        )

    chunks = [c.tolist() for c in torch.tensor(indices).chunk(micro_batches)]
    no_sync = net.no_sync if isinstance(net, torch.nn.parallel.DistributedDataParallel) else contextlib.nullcontext
    reweigh_backward(compute, chunks, weighting, step=0, epoch=0, skip_gradient_sync=no_sync)
    optimizer.step()
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str, micro_batches: int) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        share = list(range(rank * BATCH // world, (rank + 1) * BATCH // world))
        for name, cfg in WEIGHTINGS.items():
            params = _one_step(
                _model(), share, build(cfg), micro_batches, wrap=torch.nn.parallel.DistributedDataParallel
            )
            if rank == 0:
                torch.save(params, Path(out_dir) / f"{name}.pt")
    except BaseException:
        dist.destroy_process_group()
        raise
    leave_together()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    """Parameters after one DDP step on 2 ranks (each with half the batch), per weighting."""
    results = {}
    for micro_batches in (1, 2):
        out = tmp_path_factory.mktemp(f"ddp_k{micro_batches}")
        mp.spawn(_ddp_worker, args=(2, str(out / "pg"), str(out), micro_batches), nprocs=2, join=True)
        results[micro_batches] = {name: torch.load(out / f"{name}.pt") for name in WEIGHTINGS}
    return results


def _full_batch(name: str) -> torch.Tensor:
    return _one_step(_model(), list(range(BATCH)), build(WEIGHTINGS[name]), micro_batches=1)


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_ddp_on_two_ranks_equals_the_full_batch_step(ddp_results, name):
    full = _full_batch(name)
    before = torch.cat([p.detach().reshape(-1) for p in _model().parameters()])
    assert (full - before).abs().max() > 1e-3, "the step must move the parameters"
    assert torch.allclose(ddp_results[1][name], full, rtol=0, atol=1e-6)
    assert torch.allclose(ddp_results[2][name], full, rtol=0, atol=1e-6)  # DDP + accumulation


@pytest.mark.parametrize("micro_batches", [2, 4])
@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_accumulation_equals_the_full_batch_step(name, micro_batches):
    accumulated = _one_step(_model(), list(range(BATCH)), build(WEIGHTINGS[name]), micro_batches)
    assert torch.allclose(accumulated, _full_batch(name), rtol=0, atol=1e-6)


def test_a_per_shard_softmax_would_change_the_update():
    """The control: normalising each half of the batch on its own is measurably different."""
    losses = torch.tensor([1.0, 5.0, 2.0, 9.0])
    weighting = build(WEIGHTINGS["robust"])
    global_weights = pmf(weighting(losses=losses))
    per_shard = torch.cat([pmf(weighting(losses=half)) for half in losses.chunk(2)]) / 2
    assert (global_weights - per_shard).abs().max() > 0.1
