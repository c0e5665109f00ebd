"""The training system: SuDO RM -RF trained with a UGR-weighted PIT SI-SDR loss.

The UGR step itself is ``ugr.integrations.lightning.UGRModule``'s (manual
optimisation, the pmf over every micro-batch, ``training.micro_batches: K``,
of every DDP rank); this module gives it the per-source PIT losses.

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

from typing import Any, Dict

import torch
from torch import Tensor

from ugr.core.step import Terms
from ugr.integrations.lightning import UGRModule
from ugr.pipeline import efficiency
from ugr.pipeline.config import ExperimentConfig
from ugr.separation import losses


class SeparationSystem(UGRModule):
    """LightningModule: the separation model, the UGR weighting, Adam and validation SI-SDRi."""

    def __init__(self, cfg: ExperimentConfig) -> None:
        super().__init__(cfg.weighting, cfg.training.micro_batches)
        self.save_hyperparameters({"cfg": cfg.to_dict()})
        self.cfg = cfg
        self.model = efficiency.apply_memory_settings(cfg.model.build(), cfg.training)
        self.granularity: str = self.weighting.granularity

    def configure_model(self) -> None:
        """Compiles the model (``training.compile``) in the training process, once."""
        if not getattr(self, "_compiled", False):
            efficiency.compile_model(self.model, self.cfg.training)
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
        return torch.optim.Adam(self.model.parameters(), lr=self.cfg.training.lr)

    # --- training -----------------------------------------------------------------------------

    def example_losses(self, batch: Dict[str, Any]) -> Terms:
        """What the weighting needs from one forward pass: losses at the granularity, signal, classes, groups."""
        per_source, _ = self._losses(batch)
        # neg_sisdri costs one SI-SDR of the mixture per source: cheap enough to always provide.
        neg_sisdri = losses.neg_sisdri(per_source.detach(), batch["mixture"], batch["sources"])
        return Terms(
            losses.at_granularity(per_source, self.granularity),
            classes=batch["classes"],
            coarse=batch["coarse"],
            neg_sisdri=losses.at_granularity(neg_sisdri, self.granularity),
            groups=batch.get("groups"),
        )

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Clips the gradient norm to ``training.clip``: called by ``opt.step()`` after unscaling (16-mixed)."""
        clip = self.cfg.training.clip
        if clip is not None:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")

    # --- validation ---------------------------------------------------------------------------

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        per_source, reordered = self._losses(batch)
        sisdri = losses.si_sdr_improvement(reordered, batch["sources"], batch["mixture"])
        # batch_size = number of estimated sources: the epoch value is the mean per estimated source.
        self.log("val/si_sdri", sisdri.mean(), prog_bar=True, on_epoch=True, batch_size=sisdri.numel(), sync_dist=True)
        self.log("val/loss", per_source.mean(), on_epoch=True, batch_size=per_source.numel(), sync_dist=True)
