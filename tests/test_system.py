"""The LightningModule's update: UGR gradients, micro-batches, clipping after backward, logging, resume files."""
from __future__ import annotations

import copy
from typing import Dict, List

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch.utils.data import DataLoader, Dataset

from ugr import losses, reweight
from ugr.config import load
from ugr.system import SeparationSystem
from test_config import CONF_DIR

T = 800  # 0.1 s at 8 kHz: the update rule does not depend on the length
BATCH = 4


def tiny_cfg(weighting: Dict, micro_batches: int = 1, clip: float = 1e9) -> Dict:
    cfg = copy.deepcopy(load(CONF_DIR / "baseline_cpu.yaml"))
    cfg["model"].update(num_blocks=1, n_filters=32, bn_chan=16, upsampling_depth=2)
    cfg["weighting"] = {"granularity": "source", **weighting}
    cfg["training"].update(batch_size=BATCH, micro_batches=micro_batches, clip=clip, epochs=1, num_workers=0)
    return cfg


class FixedBatches(Dataset):
    """Seeded random mixtures with labels, in the collated layout of ugr.data."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(1)
        self.sources = torch.randn(n, 2, T, generator=g)
        self.classes = [["speech", "dog"] if i % 2 else ["rain", "speech"] for i in range(n)]
        self.coarse = [["speech" if c == "speech" else "env" for c in row] for row in self.classes]

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> Dict:
        return {"mixture": self.sources[i].sum(0), "sources": self.sources[i], "classes": self.classes[i],
                "coarse": self.coarse[i], "id": str(i)}


def collate(items: List[Dict]) -> Dict:
    return {"mixture": torch.stack([i["mixture"] for i in items]), "sources": torch.stack([i["sources"] for i in items]),
            "classes": [i["classes"] for i in items], "coarse": [i["coarse"] for i in items],
            "id": [i["id"] for i in items]}


class GradientRecorder(Callback):
    """Keeps a copy of every gradient at the moment the optimizer steps (after clipping)."""

    def __init__(self) -> None:
        self.grads: List[Dict[str, torch.Tensor]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.grads.append({n: p.grad.detach().clone() for n, p in pl_module.named_parameters() if p.grad is not None})


def one_step(cfg: Dict, tmp_path) -> tuple[Dict[str, torch.Tensor], SeparationSystem, pl.Trainer]:
    """Fits one batch; returns the gradients seen by the optimizer, the initial system and the trainer."""
    pl.seed_everything(0, verbose=False)
    system = SeparationSystem(cfg)
    initial = copy.deepcopy(system)
    recorder = GradientRecorder()
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=1, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[recorder], default_root_dir=tmp_path)
    trainer.fit(system, train_dataloaders=DataLoader(FixedBatches(BATCH), batch_size=BATCH, collate_fn=collate))
    assert len(recorder.grads) == 1
    return recorder.grads[0], initial, trainer


def reference_gradients(system: SeparationSystem, alpha: float, granularity: str) -> Dict[str, torch.Tensor]:
    """sum_i p_i grad L_i with p = softmax(alpha * L), computed here from the definition."""
    batch = collate([FixedBatches(BATCH)[i] for i in range(BATCH)])
    per_source, _ = losses.pit_neg_sisdr(system.model(batch["mixture"]), batch["sources"])
    terms = per_source if granularity == "source" else per_source.mean(-1)
    p = torch.softmax((alpha * terms.detach()).reshape(-1), 0).reshape(terms.shape)
    (p * terms).sum().backward()
    return {n: p_.grad for n, p_ in system.named_parameters() if p_.grad is not None}


@pytest.mark.parametrize("granularity", ["source", "mixture"])
def test_robust_update_is_the_weighted_gradient(tmp_path, granularity):
    cfg = tiny_cfg({"type": "robust", "alpha": 0.5})
    cfg["weighting"]["granularity"] = granularity
    grads, initial, _ = one_step(cfg, tmp_path)
    expected = reference_gradients(initial, 0.5, granularity)
    assert grads.keys() == expected.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], expected[name], rtol=1e-4, atol=1e-6)
    uniform = reference_gradients(copy.deepcopy(initial), 0.0, granularity)
    assert any(not torch.allclose(grads[n], uniform[n], rtol=1e-3) for n in grads), "weights had no effect"


def test_micro_batches_give_the_full_batch_update(tmp_path):
    full, _, _ = one_step(tiny_cfg({"type": "robust", "alpha": 0.5}), tmp_path)
    split, _, _ = one_step(tiny_cfg({"type": "robust", "alpha": 0.5}, micro_batches=2), tmp_path)
    for name in full:
        torch.testing.assert_close(split[name], full[name], rtol=1e-4, atol=1e-6)


def test_class_weighting_uses_the_labels(tmp_path):
    grads, initial, _ = one_step(tiny_cfg({"type": "class", "gamma": {"speech": 3.0}}), tmp_path)
    batch = collate([FixedBatches(BATCH)[i] for i in range(BATCH)])
    per_source, _ = losses.pit_neg_sisdr(initial.model(batch["mixture"]), batch["sources"])
    logits = torch.tensor([[3.0 if c == "speech" else 0.0 for c in row] for row in batch["classes"]])
    (reweight.pmf(logits) * per_source).sum().backward()
    for name, param in initial.named_parameters():
        torch.testing.assert_close(grads[name], param.grad, rtol=1e-4, atol=1e-6)


def test_gradients_are_clipped_after_backward(tmp_path):
    grads, _, _ = one_step(tiny_cfg({"type": "uniform"}, clip=1e-3), tmp_path)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads.values()]))
    assert norm.item() == pytest.approx(1e-3, rel=1e-3)


def test_weight_diagnostics_are_logged(tmp_path):
    _, _, trainer = one_step(tiny_cfg({"type": "robust", "alpha": 0.5}), tmp_path)
    metrics = trainer.callback_metrics
    n_terms = BATCH * 2
    assert 1.0 <= metrics["train/ess_step"].item() < n_terms  # robust weights are not uniform
    assert 1.0 / n_terms < metrics["train/max_p_step"].item() <= 1.0
    _, _, uniform = one_step(tiny_cfg({"type": "uniform"}), tmp_path)
    assert uniform.callback_metrics["train/ess_step"].item() == pytest.approx(n_terms)
    assert uniform.callback_metrics["train/max_p_step"].item() == pytest.approx(1 / n_terms)
