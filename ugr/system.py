"""The training system: SuDO RM -RF trained with a UGR-weighted PIT SI-SDR loss.

Manual optimisation, because the pmf must span the whole effective batch:
every micro-batch (``training.micro_batches: K``) of every DDP rank. The
backward pass itself is ``ugr.step.reweighted_backward`` (two passes when
K > 1, the global pmf under DDP).

Gradient clipping (``training.clip``, null for none) comes after the
backward (the authors' code clipped before it, which did nothing) and after
Lightning's precision plugin has unscaled the gradients: it runs in
``on_before_optimizer_step``, which ``opt.step()`` calls between the
GradScaler's ``unscale_`` and its ``step`` under ``16-mixed`` (and right
before the step in the other precisions). Clipping in ``training_step``
would clip the loss-scaled gradient: Adam would get a norm of clip / scale.
The losses are computed in fp32 from the model's output, outside autocast,
whatever the precision: SI-SDR takes ratios of energies that half precision
rounds coarsely.
"""
from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Dict, List

import pytorch_lightning as pl
import torch
from torch import Tensor

from ugr import efficiency, losses, models, reweight, weighting
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
        self.model = efficiency.apply_memory_settings(models.build_model(cfg["model"]), cfg["training"])
        self.weighting = weighting.build(cfg["weighting"])
        self.granularity: str = self.weighting.granularity
        self.micro_batches: int = cfg["training"]["micro_batches"]
        self.automatic_optimization = False

    def configure_model(self) -> None:
        """Compiles the model (``training.compile``) in the training process, once."""
        if not getattr(self, "_compiled", False):
            efficiency.compile_model(self.model, self.cfg["training"])
            self._compiled = True

    def forward(self, mixture: Tensor) -> Tensor:
        return self.model(mixture)

    def _losses(self, batch: Dict[str, Any]) -> tuple[Tensor, Tensor]:
        """The model's estimates, then PIT SI-SDR outside autocast, in fp32 or wider (the wider of the estimates'
        and the references' types): per-source losses, reordered estimates."""
        estimates, sources = self.model(batch["mixture"]), batch["sources"]
        dtype = torch.promote_types(torch.promote_types(estimates.dtype, sources.dtype), torch.float32)
        with torch.autocast(estimates.device.type, enabled=False):
            return losses.pit_neg_sisdr(estimates.to(dtype), sources.to(dtype))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.cfg["training"]["lr"])

    # --- training -----------------------------------------------------------------------------

    def _terms(self, batch: Dict[str, Any]) -> Terms:
        """What the weighting needs from one forward pass: losses at the granularity, signal, classes."""
        per_source, _ = self._losses(batch)
        # neg_sisdri costs one SI-SDR of the mixture per source: cheap enough to always provide.
        neg_sisdri = losses.neg_sisdri(per_source.detach(), batch["mixture"], batch["sources"])
        return Terms(losses.at_granularity(per_source, self.granularity), classes=batch["classes"],
                     coarse=batch["coarse"], neg_sisdri=losses.at_granularity(neg_sisdri, self.granularity))

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
        opt.step()  # clips first: on_before_optimizer_step
        opt.zero_grad()
        # One all-gather of this rank's weights and losses: under DDP each rank holds a slice of the global pmf,
        # and the global weighted loss is the sum of every rank's share sum_i p_i L_i.
        local = torch.stack([outcome.weights.reshape(-1), outcome.losses.reshape(-1).to(outcome.weights.dtype)])
        gathered = self.all_gather(local).reshape(-1, 2, local.shape[-1])  # (ranks, 2, examples per rank)
        weights, per_example = gathered[:, 0].reshape(-1), gathered[:, 1].reshape(-1)
        batch_size = batch["mixture"].shape[0] * self.trainer.world_size
        self.log("train/loss", (weights * per_example).sum(), prog_bar=True, on_step=True, on_epoch=True,
                 batch_size=batch_size)
        self.log("train/uniform_loss", per_example.mean(), on_step=True, on_epoch=True, batch_size=batch_size)
        self.log("train/ess", reweight.effective_sample_size(weights), on_step=True, on_epoch=True,
                 batch_size=batch_size)
        self.log("train/max_p", reweight.max_weight(weights), on_step=True, on_epoch=True, batch_size=batch_size)
        return outcome.weighted_loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Clips the gradient norm to ``training.clip``: called by ``opt.step()`` after unscaling (16-mixed)."""
        clip = self.cfg["training"]["clip"]
        if clip is not None:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")

    # --- validation ---------------------------------------------------------------------------

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        per_source, reordered = self._losses(batch)
        sisdri = losses.si_sdr_improvement(reordered, batch["sources"], batch["mixture"])
        # batch_size = number of estimated sources: the epoch value is the mean per estimated source.
        self.log("val/si_sdri", sisdri.mean(), prog_bar=True, on_epoch=True, batch_size=sisdri.numel(),
                 sync_dist=True)
        self.log("val/loss", per_source.mean(), on_epoch=True, batch_size=per_source.numel(), sync_dist=True)
