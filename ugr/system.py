"""The training system: SuDO RM -RF trained with a UGR-weighted PIT SI-SDR loss.

Manual optimisation, because the pmf must span the whole effective batch:
with ``training.micro_batches: K > 1`` the batch is cut into K pieces that do
not fit in memory together, so a first pass without a graph computes every
piece's losses (and so the weights over all K*B terms), and a second pass
re-runs each piece with its graph and backpropagates its share of the weighted
sum. Under DDP the pmf is taken over every rank's terms too
(``ugr.distributed.global_pmf``), and the loss is multiplied by the world size
because DDP averages gradients over ranks. Gradient clipping comes after the
backward (the authors' code clipped before it, which did nothing).
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, List

import pytorch_lightning as pl
import torch
from torch import Tensor

from ugr import distributed, losses, models, reweight, weighting


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

    def _terms(self, batch: Dict[str, Any]) -> tuple[Tensor, Tensor]:
        """The weighted terms (per source or per mixture) and the per-source PIT losses."""
        per_source, _ = losses.pit_neg_sisdr(self.model(batch["mixture"]), batch["sources"])
        return losses.at_granularity(per_source, self.granularity), per_source

    def _logits(self, terms: Tensor, per_source: Tensor, batch: Dict[str, Any]) -> Tensor:
        """The weighting function's logits for ``terms``, from detached values only."""
        # neg_sisdri costs one SI-SDR of the mixture per source: cheap enough to always provide.
        neg_sisdri = losses.neg_sisdri(per_source.detach(), batch["mixture"], batch["sources"])
        return self.weighting(losses=terms.detach(), neg_sisdri=losses.at_granularity(neg_sisdri, self.granularity),
                              classes=batch["classes"], step=self.global_step, epoch=self.current_epoch)

    def _sync_context(self, last: bool):
        """Skips DDP's gradient all-reduce on every micro-batch but the last one."""
        wrapped = self.trainer.strategy.model
        if not last and isinstance(wrapped, torch.nn.parallel.DistributedDataParallel):
            return wrapped.no_sync()
        return contextlib.nullcontext()

    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> Tensor:
        opt = self.optimizers()
        scale = distributed.world_size()
        if self.micro_batches == 1:
            terms, per_source = self._terms(batch)
            p = distributed.global_pmf(self._logits(terms, per_source, batch))
            loss = (p * terms).sum()
            self.manual_backward(loss * scale)
            mean_term = terms.detach().mean()
        else:
            pieces = _split(batch, self.micro_batches)
            with torch.no_grad():
                logits = []
                for piece in pieces:
                    terms, per_source = self._terms(piece)
                    logits.append(self._logits(terms, per_source, piece))
            p_all = distributed.global_pmf(torch.cat(logits))
            loss = torch.zeros((), device=p_all.device)
            mean_term = torch.zeros((), device=p_all.device)
            for i, (piece, p) in enumerate(zip(pieces, p_all.split([len(l) for l in logits]))):
                with self._sync_context(last=i == len(pieces) - 1):
                    terms, _ = self._terms(piece)
                    piece_loss = (p * terms).sum()
                    self.manual_backward(piece_loss * scale)
                loss += piece_loss.detach()
                mean_term += terms.detach().mean() / len(pieces)
            p = p_all
        self.clip_gradients(opt, gradient_clip_val=self.cfg["training"]["clip"], gradient_clip_algorithm="norm")
        opt.step()
        opt.zero_grad()
        batch_size = batch["mixture"].shape[0]
        self.log("train/loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size)
        self.log("train/uniform_loss", mean_term, on_step=True, on_epoch=True, batch_size=batch_size)
        p_global = self.all_gather(p.detach())  # under DDP this rank's p is a slice of the global pmf
        self.log("train/ess", reweight.effective_sample_size(p_global), on_step=True, on_epoch=True,
                 batch_size=batch_size)
        self.log("train/max_p", reweight.max_weight(p_global), on_step=True, on_epoch=True, batch_size=batch_size)
        return loss.detach()

    # --- validation ---------------------------------------------------------------------------

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        per_source, reordered = losses.pit_neg_sisdr(self.model(batch["mixture"]), batch["sources"])
        sisdri = losses.si_sdr_improvement(reordered, batch["sources"], batch["mixture"])
        # batch_size = number of estimated sources: the epoch value is the mean per estimated source.
        self.log("val/si_sdri", sisdri.mean(), prog_bar=True, on_epoch=True, batch_size=sisdri.numel(),
                 sync_dist=True)
        self.log("val/loss", per_source.mean(), on_epoch=True, batch_size=per_source.numel(), sync_dist=True)
