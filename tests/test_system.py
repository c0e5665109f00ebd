"""The LightningModule's update: UGR gradients, micro-batches, clipping after backward and after unscaling in every
precision, fp32 losses under autocast, logging."""

from __future__ import annotations

import contextlib
import copy
from typing import Dict, List

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.plugins.precision import MixedPrecision
from test_config import CONF_DIR
from torch.utils.data import DataLoader, Dataset

from ugr.core.pmf import pmf
from ugr.pipeline.config import load, validate
from ugr.pipeline.system import SeparationSystem
from ugr.separation import losses

T = 800  # 0.1 s at 8 kHz: the update rule does not depend on the length
BATCH = 4


def tiny_cfg(weighting: Dict, micro_batches: int = 1, clip: float = 1e9) -> Dict:
    """A tiny model's config as a mapping (tests edit it; ``one_step`` checks it)."""
    cfg = load(CONF_DIR / "cpu" / "baseline_cpu.yaml").to_dict()
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
        return {
            "mixture": self.sources[i].sum(0),
            "sources": self.sources[i],
            "classes": self.classes[i],
            "coarse": self.coarse[i],
            "id": str(i),
        }


def collate(items: List[Dict]) -> Dict:
    return {
        "mixture": torch.stack([i["mixture"] for i in items]),
        "sources": torch.stack([i["sources"] for i in items]),
        "classes": [i["classes"] for i in items],
        "coarse": [i["coarse"] for i in items],
        "id": [i["id"] for i in items],
    }


class GradientRecorder(Callback):
    """Keeps a copy of the gradients Adam stepped with (after clipping and unscaling; Adam leaves them as they
    are): a hook at the end of ``step``, as Lightning's 32-true plugin clips inside ``step`` (in its closure)."""

    def __init__(self) -> None:
        self.grads: List[Dict[str, torch.Tensor]] = []

    def on_train_start(self, trainer, pl_module) -> None:
        def record(*_) -> None:
            self.grads.append(
                {n: p.grad.detach().clone() for n, p in pl_module.named_parameters() if p.grad is not None}
            )

        for optimizer in trainer.optimizers:
            optimizer.register_step_post_hook(record)


class FP16ScalerWithoutAutocast(MixedPrecision):
    """Lightning's 16-mixed plugin with a GradScaler on CPU, autocast off.

    Lightning turns 16-mixed on CPU into bf16-mixed, so the plugin is built
    here: the same scale-backward, ``unscale_``, ``on_before_optimizer_step``,
    ``scaler.step`` sequence as on a GPU, with fp32 arithmetic, so the
    gradients must equal the 32-true ones exactly (the scale is a power of 2).
    """

    def __init__(self, scale: float) -> None:
        super().__init__("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=scale))

    def forward_context(self):
        return contextlib.nullcontext()


def norm(grads: Dict[str, torch.Tensor]) -> float:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads.values()])).item()


def one_step(cfg: Dict, tmp_path, **trainer_args) -> tuple[Dict[str, torch.Tensor], SeparationSystem, pl.Trainer]:
    """Fits one batch; returns the gradients Adam received, the initial system and the trainer."""
    pl.seed_everything(0, verbose=False)
    system = SeparationSystem(validate(cfg, where="tiny_cfg"))
    initial = copy.deepcopy(system)
    recorder = GradientRecorder()
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
        default_root_dir=tmp_path,
        **trainer_args,
    )
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
    (pmf(logits) * per_source).sum().backward()
    for name, param in initial.named_parameters():
        torch.testing.assert_close(grads[name], param.grad, rtol=1e-4, atol=1e-6)


def test_gradients_are_clipped_after_backward(tmp_path):
    grads, _, _ = one_step(tiny_cfg({"type": "uniform"}, clip=1e-3), tmp_path)
    assert norm(grads) == pytest.approx(1e-3, rel=1e-3)


def test_clip_null_leaves_the_gradient_alone(tmp_path):
    unclipped, initial, _ = one_step(tiny_cfg({"type": "uniform"}, clip=None), tmp_path)
    expected = reference_gradients(initial, 0.0, "source")
    for name in expected:
        torch.testing.assert_close(unclipped[name], expected[name], rtol=1e-4, atol=1e-6)
    assert norm(unclipped) > 1e-2  # so that the clip of the other tests acts


def test_16_mixed_clips_the_unscaled_gradient(tmp_path):
    """Under a GradScaler, Adam must get the same clipped gradient as in fp32, not clip / scale."""
    fp32, _, _ = one_step(tiny_cfg({"type": "robust", "alpha": 0.5}, clip=1e-3), tmp_path)
    scaled, _, trainer = one_step(
        tiny_cfg({"type": "robust", "alpha": 0.5}, clip=1e-3), tmp_path, plugins=[FP16ScalerWithoutAutocast(2.0**16)]
    )
    assert trainer.precision_plugin.scaler.get_scale() == 2.0**16  # the step was taken, not skipped
    assert norm(scaled) == pytest.approx(1e-3, rel=1e-3)
    for name in fp32:
        torch.testing.assert_close(scaled[name], fp32[name], rtol=1e-5, atol=1e-9)


def test_bf16_mixed_trains_one_step_with_fp32_losses(tmp_path):
    """bf16 autocast end to end on CPU: the model runs in bf16, the loss in fp32, Adam gets an fp32 gradient
    close in direction to the fp32 step's."""
    dtypes = []
    cfg = tiny_cfg({"type": "robust", "alpha": 0.5}, clip=None)
    fp32, _, _ = one_step(cfg, tmp_path)
    pl.seed_everything(0, verbose=False)
    original = losses.pit_neg_sisdr

    def spy(est, src):
        dtypes.append((est.dtype, torch.is_autocast_enabled("cpu")))
        return original(est, src)

    losses.pit_neg_sisdr = spy
    try:
        bf16, _, trainer = one_step(cfg, tmp_path, precision="bf16-mixed")
    finally:
        losses.pit_neg_sisdr = original
    assert dtypes == [(torch.float32, False)]
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in bf16.values())
    flat = lambda grads: torch.cat([grads[n].reshape(-1) for n in sorted(grads)])  # noqa: E731
    assert torch.nn.functional.cosine_similarity(flat(bf16), flat(fp32), dim=0) > 0.9
    assert not torch.equal(flat(bf16), flat(fp32)), "autocast did not act"
    assert torch.isfinite(trainer.callback_metrics["train/loss_step"])


def test_weight_diagnostics_are_logged(tmp_path):
    _, _, trainer = one_step(tiny_cfg({"type": "robust", "alpha": 0.5}), tmp_path)
    metrics = trainer.callback_metrics
    n_terms = BATCH * 2
    assert 1.0 <= metrics["train/ess_step"].item() < n_terms  # robust weights are not uniform
    assert 1.0 / n_terms < metrics["train/max_p_step"].item() <= 1.0
    _, _, uniform = one_step(tiny_cfg({"type": "uniform"}), tmp_path)
    assert uniform.callback_metrics["train/ess_step"].item() == pytest.approx(n_terms)
    assert uniform.callback_metrics["train/max_p_step"].item() == pytest.approx(1 / n_terms)
