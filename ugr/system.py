"""The training system: SuDO RM -RF trained with a UGR-weighted PIT SI-SDR loss.

Manual optimisation, because the pmf must span the whole effective batch:
every micro-batch (``training.micro_batches: K``) of every DDP rank. The
backward pass itself is ``ugr.step.reweighted_backward`` (two passes when
K > 1, the global pmf under DDP). Gradient clipping comes after the backward
(the authors' code clipped before it, which did nothing).
"""
from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Dict, List

import pytorch_lightning as pl
import torch
from torch import Tensor

from ugr import losses, models, reweight, weighting
from ugr.step import Terms, reweighted_backward


def _split(batch: Dict[str, Any], pieces: int) -> List[Dict[str, Any]]:
    """Cuts a collated batch into ``pieces`` equal micro-batches (tensors and per-item lists alike)."""
    size = batch["mixture"].shape[0]
    if size % pieces:
        raise ValueError(f"batch of {size} cannot be split into {pieces} equal micro-batches; "
                         f"make training.batch_size a multiple of training.micro_batches")
    step = size // pieces
    return [{key: value[i:i + step] for key, value in batch.items()} for i in range(0, size, step)]


class SeparationSystem(pl.LightningModule):
    """LightningModule: the separation model, the UGR weighting, Adam and validation SI-SDRi."""

    def __init__(self, cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"cfg": cfg})
        self.cfg = cfg
        self.model = models.build_model(cfg["model"])
        self.weighting = weighting.build(cfg["weighting"])
        self.granularity: str = self.weighting.granularity
        self.micro_batches: int = cfg["training"]["micro_batches"]
        self.automatic_optimization = False

    def forward(self, mixture: Tensor) -> Tensor:
        return self.model(mixture)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.cfg["training"]["lr"])

    # --- training -----------------------------------------------------------------------------

    def _terms(self, batch: Dict[str, Any]) -> Terms:
        """What the weighting needs from one forward pass: losses at the granularity, signal, classes."""
        per_source, _ = losses.pit_neg_sisdr(self.model(batch["mixture"]), batch["sources"])
        # neg_sisdri costs one SI-SDR of the mixture per source: cheap enough to always provide.
        neg_sisdri = losses.neg_sisdri(per_source.detach(), batch["mixture"], batch["sources"])
        return Terms(losses.at_granularity(per_source, self.granularity),
                     losses.at_granularity(neg_sisdri, self.granularity), batch["classes"], batch["coarse"])

    def _skip_gradient_sync(self) -> ContextManager:
        """DDP's ``no_sync`` (gradients all-reduced once per step), a no-op in one process."""
        wrapped = self.trainer.strategy.model
        if isinstance(wrapped, torch.nn.parallel.DistributedDataParallel):
            return wrapped.no_sync()
        return contextlib.nullcontext()

    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> Tensor:
        opt = self.optimizers()
        outcome = reweighted_backward(self._terms, _split(batch, self.micro_batches), self.weighting,
                                      step=self.global_step, epoch=self.current_epoch,
                                      backward=self.manual_backward, skip_gradient_sync=self._skip_gradient_sync)
        self.clip_gradients(opt, gradient_clip_val=self.cfg["training"]["clip"], gradient_clip_algorithm="norm")
        opt.step()
        opt.zero_grad()
        batch_size = batch["mixture"].shape[0]
        self.log("train/loss", outcome.weighted_loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size)
        self.log("train/uniform_loss", outcome.losses.mean(), on_step=True, on_epoch=True, batch_size=batch_size)
        weights = self.all_gather(outcome.weights)  # under DDP this rank's weights are a slice of the global pmf
        self.log("train/ess", reweight.effective_sample_size(weights), on_step=True, on_epoch=True,
                 batch_size=batch_size)
        self.log("train/max_p", reweight.max_weight(weights), on_step=True, on_epoch=True, batch_size=batch_size)
        return outcome.weighted_loss

    # --- validation ---------------------------------------------------------------------------

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        per_source, reordered = losses.pit_neg_sisdr(self.model(batch["mixture"]), batch["sources"])
        sisdri = losses.si_sdr_improvement(reordered, batch["sources"], batch["mixture"])
        # batch_size = number of estimated sources: the epoch value is the mean per estimated source.
        self.log("val/si_sdri", sisdri.mean(), prog_bar=True, on_epoch=True, batch_size=sisdri.numel(),
                 sync_dist=True)
        self.log("val/loss", per_source.mean(), on_epoch=True, batch_size=per_source.numel(), sync_dist=True)
