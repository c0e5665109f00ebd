"""The Lightning training step under real DDP (gloo, 2 CPU processes) equals the one-process step.

tests/test_distributed.py checks ``ugr.core.step`` under plain torch DDP; this checks
the wiring of the LightningModule itself: ``manual_backward``, DDP's
``no_sync`` with micro-batches, the world-size factor, and the logged
training figures (global over the ranks, not rank 0's share).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from test_system import BATCH, FixedBatches, collate, tiny_cfg
from torch.utils.data import DataLoader

from ugr.pipeline.config import validate
from ugr.pipeline.system import SeparationSystem

WEIGHTINGS = {
    "robust": {"type": "robust", "alpha": 0.5},
    "class": {"type": "class", "gamma": {"speech": 2.0, "dog": -1.0}},
}


LOGGED = ("train/loss_step", "train/uniform_loss_step", "train/ess_step", "train/max_p_step")


class SaveGradients(Callback):
    """Rank 0 writes the gradients the optimizer is about to apply (all-reduced under DDP) and the logged
    training figures."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.saved: dict = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.saved = {n: p.grad.detach().clone() for n, p in pl_module.named_parameters()}

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_rank == 0:
            torch.save({**self.saved, **{k: trainer.callback_metrics[k].clone() for k in LOGGED}}, self.path)


def fit_one_step(cfg, devices: int, out: Path) -> dict:
    pl.seed_everything(0, verbose=False)
    system = SeparationSystem(validate(cfg, where="tiny_cfg"))
    trainer = pl.Trainer(
        max_steps=1,
        accelerator="cpu",
        devices=devices,
        precision="64-true",
        strategy="ddp_spawn" if devices > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[SaveGradients(out)],
        default_root_dir=out.parent,
    )
    loader = DataLoader(FixedBatches(BATCH), batch_size=BATCH // devices, collate_fn=collate)
    trainer.fit(system, train_dataloaders=loader)
    return torch.load(out)


@pytest.mark.slow
@pytest.mark.parametrize("micro_batches", [1, 2])
@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_two_process_ddp_step_equals_the_one_process_step(tmp_path, name, micro_batches):
    single = fit_one_step(tiny_cfg(WEIGHTINGS[name]), devices=1, out=tmp_path / "single.pt")
    # Each rank holds BATCH/2 examples; with micro-batches each rank splits its share again.
    ddp = fit_one_step(tiny_cfg(WEIGHTINGS[name], micro_batches=micro_batches), devices=2, out=tmp_path / "ddp.pt")
    assert single.keys() == ddp.keys()
    for key in single:  # the gradients, and the logged loss, uniform loss, ESS and max p of the global batch
        assert torch.allclose(ddp[key], single[key], rtol=1e-9, atol=1e-12), key
    assert max(g.abs().max() for g in single.values()) > 1e-6, "the step must have gradients"
