"""UGRModule: any LightningModule's per-example losses trained with UGR; under 2-process gloo DDP with
micro-batches its step equals the one-process full-batch step, and the logged figures are the global batch's."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from ugr.core.step import Terms
from ugr.integrations.lightning import UGRModule, split_batch

BATCH = 8
# Robust weighting plus a bias keyed by the integer label: weights that depend on losses and labels.
WEIGHTING = {"type": "sum", "terms": [{"type": "robust", "alpha": 0.7}, {"type": "class", "gamma": {2: 1.5}}]}
LOGGED = ("train/loss_step", "train/uniform_loss_step", "train/ess_step", "train/max_p_step")


class Classifier(UGRModule):
    """A linear classifier: per-example cross-entropy, labels for the class bias."""

    def __init__(self, micro_batches: int = 1) -> None:
        super().__init__(WEIGHTING, micro_batches)
        torch.manual_seed(0)
        self.net = torch.nn.Linear(2, 3).double()

    def example_losses(self, batch) -> Terms:
        x, y = batch
        return Terms(torch.nn.functional.cross_entropy(self.net(x), y, reduction="none"), classes=y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def dataset() -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    return TensorDataset(torch.randn(BATCH, 2, generator=g, dtype=torch.float64), torch.arange(BATCH) % 3)


class SaveStep(Callback):
    """Rank 0 writes the gradients the optimizer steps with (all-reduced under DDP) and the logged figures."""

    def __init__(self, path: Path) -> None:
        self.path, self.saved = path, {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.saved = {n: p.grad.detach().clone() for n, p in pl_module.named_parameters()}

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_rank == 0:
            torch.save({**self.saved, **{k: trainer.callback_metrics[k].clone() for k in LOGGED}}, self.path)


def fit_one_step(devices: int, micro_batches: int, root: Path) -> dict:
    out = root / f"step_{devices}.pt"
    trainer = pl.Trainer(
        max_steps=1,
        accelerator="cpu",
        devices=devices,
        precision="64-true",
        strategy="ddp_spawn" if devices > 1 else "auto",
        logger=CSVLogger(root, name=str(devices)),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        callbacks=[SaveStep(out)],
        default_root_dir=root,
    )
    trainer.fit(Classifier(micro_batches), train_dataloaders=DataLoader(dataset(), batch_size=BATCH // devices))
    return torch.load(out)


def test_two_process_ddp_with_micro_batches_equals_the_one_process_full_batch_step(tmp_path):
    single = fit_one_step(devices=1, micro_batches=1, root=tmp_path)
    ddp = fit_one_step(devices=2, micro_batches=2, root=tmp_path)  # each rank: 4 examples in 2 micro-batches
    assert single.keys() == ddp.keys()
    for key in single:  # the gradients, and the logged loss, uniform loss, ESS and max p of the global batch
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-9, atol=1e-12, msg=key)
    assert single["train/ess_step"] < BATCH - 0.5, "the weights must differ from uniform for the test to mean it"


def test_the_step_is_sum_p_g_and_its_figures_reach_the_logger(tmp_path):
    stepped = fit_one_step(devices=1, micro_batches=1, root=tmp_path)
    model = Classifier()
    x, y = dataset().tensors
    losses = torch.nn.functional.cross_entropy(model.net(x), y, reduction="none")
    p = torch.softmax(0.7 * losses.detach() + 1.5 * (y == 2), dim=0)
    (p * losses).sum().backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(stepped[name], param.grad)
    torch.testing.assert_close(stepped["train/ess_step"], 1 / p.pow(2).sum())
    torch.testing.assert_close(stepped["train/max_p_step"], p.max())
    logged = (tmp_path / "1" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/ess_step", "train/max_p_step", "train/loss_step"} <= set(logged)


def test_split_batch_cuts_tensors_fields_and_per_example_lists_alike():
    batch = {
        "x": torch.arange(6),
        "pair": (torch.arange(6) * 10, ["a", "b", "c", "d", "e", "f"]),
        "ids": list("uvwxyz"),
    }
    first, second = split_batch(batch, 2)
    assert first["x"].tolist() == [0, 1, 2] and second["pair"][0].tolist() == [30, 40, 50]
    assert second["pair"][1] == ["d", "e", "f"] and first["ids"] == ["u", "v", "w"]
    with pytest.raises(ValueError, match="a batch of 6 cannot be split into 4 equal micro-batches"):
        split_batch(batch, 4)


def test_bad_settings_name_the_value_and_the_fix():
    with pytest.raises(ValueError, match="micro_batches must be an integer >= 1, got 0"):
        Classifier(micro_batches=0)
    with pytest.raises(NotImplementedError, match="must define example_losses"):
        UGRModule({"type": "uniform"}).example_losses(None)
