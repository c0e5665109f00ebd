"""UGR for any LightningModule whose step computes per-example losses.

Subclass ``UGRModule`` instead of ``LightningModule`` and write
``example_losses(batch)``, the forward pass returning per-example losses (and
labels) as ``ugr.core.step.Terms``; the module's ``training_step`` does the rest.
Why a base class, not a loss: the pmf must span the whole effective batch,
every micro-batch of the step on every DDP rank, and the micro-batch case
needs a first pass over all of them before any backward
(``ugr.core.step.reweigh_backward``). So the step is manual optimisation, and
gradient accumulation is ``micro_batches`` (one loader batch split into K):
Lightning's ``accumulate_grad_batches`` would weigh each micro-batch apart,
and it refuses manual optimisation anyway. Gradient clipping goes in
``on_before_optimizer_step`` (``self.clip_gradients``), which the optimizer
step calls after unscaling; learning-rate schedulers are stepped by the
subclass (Lightning leaves them to manual optimisation).

Logged through the module's logger, for the global batch: ``train/loss``
(``sum_i p_i L_i``), ``train/uniform_loss`` (the mean), ``train/ess`` and
``train/max_p`` (how peaked the pmf is); with group DRO, ``train/q/<group>``
(each group's q after the step's update).

The weighting's state (a running normaliser's log Z, group DRO's q) goes into
every checkpoint (``on_save_checkpoint``, under ``"ugr_weighting_state"``) and
comes back on resume (``on_load_checkpoint``); a subclass that overrides
either calls ``super()``.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Mapping, cast

import pytorch_lightning as pl
import torch
from torch import Tensor

from ugr.core.pmf import effective_sample_size, max_weight
from ugr.core.step import Terms, reweigh_backward
from ugr.core.weighting import build, group_weights, load_weighting_state, weighting_state

CHECKPOINT_KEY = "ugr_weighting_state"


def split_batch(batch: Any, pieces: int) -> list[Any]:
    """Cuts a collated batch into ``pieces`` equal micro-batches along its first dimension.

    Tensors and per-example sequences (lists of labels or ids) are sliced;
    mappings, and tuples or lists that hold tensors, are cut field by field.
    """
    size = _batch_size(batch)
    if size % pieces:
        raise ValueError(
            f"a batch of {size} cannot be split into {pieces} equal micro-batches; "
            f"make the batch size a multiple of micro_batches"
        )
    step = size // pieces
    return [_slice(batch, start, start + step) for start in range(0, size, step)]


def _is_structure(batch: Any) -> bool:
    return isinstance(batch, (tuple, list)) and any(isinstance(item, (Tensor, Mapping)) for item in batch)


def _batch_size(batch: Any) -> int:
    if isinstance(batch, Mapping):
        return _batch_size(next(iter(batch.values())))
    if _is_structure(batch):
        return _batch_size(next(item for item in batch if isinstance(item, (Tensor, Mapping))))
    return len(batch)


def _slice(batch: Any, start: int, stop: int) -> Any:
    if isinstance(batch, Mapping):
        return {key: _slice(value, start, stop) for key, value in batch.items()}
    if _is_structure(batch):
        return type(batch)(_slice(item, start, stop) for item in batch)
    return batch[start:stop]


class UGRModule(pl.LightningModule):
    """A LightningModule trained with the UGR update ``sum_i p_i g_i``, exact under DDP and micro-batches.

    Args:
        weighting: a config of ``ugr.core.weighting.build`` (``{"type": "robust", "alpha": 0.2}``).
        micro_batches: K, the loader batch split into K forward passes with one pmf over all of them.

    Examples:
        >>> class Classifier(UGRModule):
        ...     def __init__(self):
        ...         super().__init__({"type": "robust", "alpha": 0.5})
        ...         self.net = torch.nn.Linear(2, 3)
        ...     def example_losses(self, batch):
        ...         x, y = batch
        ...         return Terms(torch.nn.functional.cross_entropy(self.net(x), y, reduction="none"), classes=y)
        ...     def configure_optimizers(self):
        ...         return torch.optim.SGD(self.parameters(), lr=0.1)
    """

    def __init__(self, weighting: Mapping[str, Any], micro_batches: int = 1) -> None:
        super().__init__()
        if isinstance(micro_batches, bool) or not isinstance(micro_batches, int) or micro_batches < 1:
            raise ValueError(f"micro_batches must be an integer >= 1, got {micro_batches!r}")
        self.weighting = build(weighting)
        self.micro_batches = micro_batches
        self.automatic_optimization = False

    def example_losses(self, batch: Any) -> Terms:
        """One forward pass: per-example losses with their graph (and labels for class bias), as ``Terms``."""
        raise NotImplementedError(f"{type(self).__name__} must define example_losses(batch) -> ugr.core.step.Terms")

    def _skip_gradient_sync(self) -> ContextManager:
        """DDP's ``no_sync`` (gradients all-reduced once per step), a no-op in one process."""
        wrapped = self.trainer.strategy.model
        if isinstance(wrapped, torch.nn.parallel.DistributedDataParallel):
            return wrapped.no_sync()
        return contextlib.nullcontext()

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        """The UGR step: the weighted backward, the optimizer's step, the figures of the global batch."""
        opt = self.optimizers()
        if isinstance(opt, list):
            raise ValueError(f"UGRModule steps one optimizer; configure_optimizers returned {len(opt)}")
        outcome = reweigh_backward(
            self.example_losses,
            split_batch(batch, self.micro_batches),
            self.weighting,
            step=self.global_step,
            epoch=self.current_epoch,
            backward=self.manual_backward,
            skip_gradient_sync=self._skip_gradient_sync,
        )
        opt.step()  # clips first: on_before_optimizer_step
        opt.zero_grad()
        # One all-gather of this rank's weights and losses: under DDP each rank holds a slice of the global pmf,
        # and the global weighted loss is the sum of every rank's share sum_i p_i L_i.
        local = torch.stack([outcome.weights.reshape(-1), outcome.losses.reshape(-1).to(outcome.weights.dtype)])
        gathered = cast(Tensor, self.all_gather(local)).reshape(-1, 2, local.shape[-1])  # (ranks, 2, examples)
        weights, per_example = gathered[:, 0].reshape(-1), gathered[:, 1].reshape(-1)
        figures = {
            "train/loss": (weights * per_example).sum(),
            "train/uniform_loss": per_example.mean(),
            "train/ess": effective_sample_size(weights),
            "train/max_p": max_weight(weights),
        }
        batch_size = _batch_size(batch) * self.trainer.world_size
        for name, value in figures.items():
            self.log(name, value, prog_bar=name == "train/loss", on_step=True, on_epoch=True, batch_size=batch_size)
        for group, q in group_weights(self.weighting).items():  # the same on every rank: no sync needed
            self.log(f"train/q/{group}", q, on_step=True, on_epoch=False, batch_size=batch_size)
        return outcome.weighted_loss

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keeps the weighting's state (running normaliser, group DRO's q) in the checkpoint."""
        checkpoint[CHECKPOINT_KEY] = weighting_state(self.weighting)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restores the weighting's state on resume (checkpoints written before it existed have none)."""
        if CHECKPOINT_KEY in checkpoint:
            load_weighting_state(self.weighting, checkpoint[CHECKPOINT_KEY])
