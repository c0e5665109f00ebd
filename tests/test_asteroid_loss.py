"""UGRLoss in a stock asteroid System: the update is sum_i p_i g_i, step/epoch from UGRProgress, labels with the
targets, the mean in validation, clear errors for losses it cannot weigh, and the global pmf under 2-process DDP."""

from __future__ import annotations

import itertools

import pytest
import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from asteroid.engine import System
from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr, singlesrc_neg_sisdr
from ddp_helpers import leave_together
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from ugr.integrations.asteroid import UGRLoss, UGRProgress

BATCH, T = 4, 64


class TinySeparator(torch.nn.Module):
    """(B, T) -> (B, 2, T): one convolution, enough for distinct per-example gradients."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv1d(1, 2, kernel_size=5, padding=2).double()

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        return self.conv(mixture.unsqueeze(1))


def mixtures(n: int = BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    sources = torch.randn(n, 2, T, generator=g, dtype=torch.float64)
    sources[:, 0] *= torch.linspace(0.2, 3.0, n, dtype=torch.float64)[:, None]  # examples of unequal difficulty
    return sources.sum(1), sources


class Recorder(Callback):
    """The gradients the optimizer steps with, and the loss's weights after each batch."""

    def __init__(self, loss_func: UGRLoss) -> None:
        self.loss_func, self.gradients, self.weights = loss_func, {}, []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.gradients = {n: p.grad.detach().clone() for n, p in pl_module.model.named_parameters()}

    def on_train_batch_end(self, trainer, *args) -> None:
        self.weights.append(self.loss_func.last_weights.clone())


def fit(loss_func: UGRLoss, dataset, root, steps: int = 1, callbacks=()) -> Recorder:
    """Stock System and Trainer (a logger too: System logs hp_metric after validation)."""
    model = TinySeparator()
    system = System(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        loss_func,
        DataLoader(dataset, batch_size=BATCH),
        DataLoader(dataset, batch_size=BATCH),
    )
    recorder = Recorder(loss_func)
    trainer = pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        precision="64-true",
        logger=CSVLogger(root),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        num_sanity_val_steps=0,
        callbacks=[recorder, *callbacks],
    )
    trainer.fit(system)
    return recorder


def hand_losses(model: torch.nn.Module, mixture: torch.Tensor, sources: torch.Tensor, granularity: str):
    """Each example alone: both permutations' per-source SI-SDR losses, the better one kept."""
    estimates = model(mixture.unsqueeze(0))[0]
    options = [
        torch.stack([singlesrc_neg_sisdr(estimates[e][None], sources[r][None])[0] for r, e in enumerate(perm)])
        for perm in itertools.permutations(range(2))
    ]
    best = min(options, key=lambda per_source: per_source.mean().item())
    return best.mean()[None] if granularity == "mixture" else best


@pytest.mark.parametrize("granularity", ["source", "mixture"])
def test_in_a_stock_system_the_step_is_the_pmf_weighted_sum_of_per_example_gradients(granularity, tmp_path):
    alpha = 0.5
    loss_func = UGRLoss(
        PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx"),
        weighting={"type": "robust", "alpha": alpha, "granularity": granularity},
    )
    mixture, sources = mixtures()
    stepped = fit(loss_func, TensorDataset(mixture, sources), tmp_path).gradients

    model = TinySeparator()
    per_example = [hand_losses(model, mixture[b], sources[b], granularity) for b in range(BATCH)]
    terms = torch.cat(per_example)
    p = torch.softmax(alpha * terms.detach(), dim=0)
    assert p.max() > 1.5 / terms.numel(), "the weights must differ from uniform for the test to mean anything"
    expected = {n: torch.zeros_like(q) for n, q in model.named_parameters()}
    for weight, loss in zip(p, terms):
        for (name, _), grad in zip(
            model.named_parameters(), torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
        ):
            expected[name] += weight * grad
    for name in expected:
        torch.testing.assert_close(stepped[name], expected[name], rtol=1e-9, atol=1e-12)


def test_progress_callback_gives_curriculum_the_trainers_step(tmp_path):
    loss_func = UGRLoss(
        PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx"),
        weighting={"type": "curriculum", "beta0": -2.0, "horizon_steps": 2},
    )
    weights = fit(
        loss_func, TensorDataset(*mixtures(3 * BATCH)), tmp_path, steps=3, callbacks=[UGRProgress(loss_func)]
    ).weights
    assert loss_func.step == 2 and loss_func.epoch == 0
    assert weights[0].max() > 1.2 / weights[0].numel()  # step 0: beta = -2, easy examples first
    torch.testing.assert_close(weights[2], torch.full_like(weights[2], 1 / weights[2].numel()))  # the horizon


def test_curriculum_without_the_progress_callback_says_how_to_add_it():
    loss_func = UGRLoss(
        PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx"),
        weighting={"type": "curriculum", "beta0": -2.0, "horizon_steps": 2},
    )
    with pytest.raises(ValueError, match=r"needs the context key 'step'.*UGRProgress\(loss_func\)"):
        mixture, sources = mixtures()
        loss_func(TinySeparator()(mixture), sources)


def test_labels_ride_with_the_targets_and_validation_gets_the_plain_mean():
    loss_func = UGRLoss(
        PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx"),
        weighting={"type": "class", "gamma": {1: 2.0}, "granularity": "mixture"},
    )
    mixture, sources = mixtures()
    estimates = TinySeparator()(mixture)
    labels = torch.tensor([0, 1, 0, 0])
    loss_func(estimates, (sources, labels))
    p = loss_func.last_weights
    assert (p[1] / p[0]).item() == pytest.approx(torch.e**2)
    plain = PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")(estimates, sources)
    torch.testing.assert_close(loss_func.eval()(estimates, (sources, labels)), plain)


@pytest.mark.parametrize(
    "loss_func, weighting, message",
    [
        (lambda est, ref: (est - ref).pow(2).mean(), {"type": "uniform"}, "returned a scalar.*per-example loss"),
        (
            PITLossWrapper(lambda est, ref: (est - ref).pow(2).mean(dim=(1, 2)), pit_from="perm_avg"),
            {"type": "uniform"},
            "one loss per mixture, not per source; set the weighting's granularity: mixture",
        ),
    ],
)
def test_losses_it_cannot_weigh_are_refused_with_the_fix(loss_func, weighting, message):
    mixture, sources = mixtures()
    with pytest.raises(ValueError, match=message):
        UGRLoss(loss_func, weighting)(TinySeparator()(mixture), sources)


def test_a_per_example_loss_is_weighed_as_it_is():
    """Any loss with one term per example (here asteroid's single-source SI-SDR of source 0) is weighed directly."""
    mixture, sources = mixtures()
    estimates = TinySeparator()(mixture)[:, 0]
    loss_func = UGRLoss(singlesrc_neg_sisdr, {"type": "robust", "alpha": 1.0})
    loss = loss_func(estimates, sources[:, 0])
    terms = singlesrc_neg_sisdr(estimates, sources[:, 0])
    torch.testing.assert_close(loss, (torch.softmax(terms.detach(), 0) * terms).sum())


def _ddp_worker(rank: int, world: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        model = TinySeparator()
        mixture, sources = mixtures()
        share = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
        net = torch.nn.parallel.DistributedDataParallel(model)
        UGRLoss(PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx"), DDP_WEIGHTING)(
            net(mixture[share]), sources[share]
        ).backward()
        if rank == 0:
            torch.save({n: p.grad for n, p in model.named_parameters()}, out)
    except BaseException:
        dist.destroy_process_group()
        raise
    leave_together()


DDP_WEIGHTING = {"type": "robust", "alpha": 0.5}


def test_under_two_process_ddp_the_gradient_is_the_full_batch_one(tmp_path):
    """Each rank weighs its half with the global pmf; DDP's average of the scaled shares is the full-batch step."""
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "pg"), str(tmp_path / "ddp.pt")), nprocs=2, join=True)
    model = TinySeparator()
    mixture, sources = mixtures()
    UGRLoss(PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx"), DDP_WEIGHTING)(model(mixture), sources).backward()
    ddp = torch.load(tmp_path / "ddp.pt")
    for name, param in model.named_parameters():
        torch.testing.assert_close(ddp[name], param.grad, rtol=1e-9, atol=1e-12)
