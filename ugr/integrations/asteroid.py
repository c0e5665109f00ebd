"""UGR as an asteroid loss: a drop-in for ``PITLossWrapper`` in a stock ``asteroid.engine.System``.

Asteroid's losses return the batch mean; UGR needs one loss per example, so
``UGRLoss`` takes the per-example terms out of the loss it wraps (the best
permutation's pairwise terms of a ``PITLossWrapper``, or the output of any
per-example loss) and returns ``sum_i p_i L_i`` instead of their mean, with
the pmf over the global batch under DDP (``ugr.core.step.reweigh``).

A ``System`` hands its loss only ``(est_targets, targets)``. The two other
things a weighting may need come in two ways that leave ``System`` as it is:
``step`` and ``epoch`` (curriculum) from the callback ``UGRProgress``, which
copies the trainer's counters into the loss before every batch; labels (class
bias) with the targets, the dataset yielding ``(inputs, (targets, labels))``;
``labels`` is the fine labels, or a mapping with any of ``classes``, ``coarse``
and ``groups`` (group DRO's ``group_by: group``, e.g. the speaker).

The weighting's state (a running normaliser's log Z, group DRO's q) is the
loss's extra state (``get_extra_state``), so the ``System``'s ``state_dict``,
hence every Lightning checkpoint, carries it and a resume restores it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import pytorch_lightning as pl
from asteroid.losses import PITLossWrapper
from torch import Tensor, nn

from ugr.core.step import reweigh
from ugr.core.weighting import build, load_weighting_state, weighting_state
from ugr.separation import losses

_LABEL_KEYS = ("classes", "coarse", "groups")


class UGRLoss(nn.Module):
    """The UGR-weighted loss: ``sum_i p_i L_i`` with ``p = softmax(F)`` over the global batch.

    Args:
        loss_func: a ``PITLossWrapper`` (``pw_mtx`` or ``pw_pt``: per-source
            or per-mixture terms; ``perm_avg`` or a ``perm_reduce``:
            per-mixture), or any loss returning per-example losses, (B,) or
            (B, n_src) (e.g. ``singlesrc_neg_sisdr``).
        weighting: a config of ``ugr.core.weighting.build``; its ``granularity``
            picks per-source or per-mixture terms.

    In eval mode (validation: ``System`` is put in eval mode and this loss
    with it) it returns the plain mean, comparable across weightings. Under
    DDP the training value is this rank's share times the world size (DDP
    averages gradients): its mean over the ranks is the global weighted loss.
    ``last_weights`` keeps the latest training pmf slice, for logging.

    Examples:
        >>> from asteroid.engine import System
        >>> from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr
        >>> loss_func = UGRLoss(PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx"),
        ...                     weighting={"type": "robust", "alpha": 0.2})
        >>> system = System(model, optimizer, loss_func, train_loader, val_loader)
        >>> pl.Trainer(max_epochs=10).fit(system)

        Curriculum needs the step or epoch: add the callback.

        >>> loss_func = UGRLoss(PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx"),
        ...                     weighting={"type": "curriculum", "beta0": -1, "horizon_steps": 1000})
        >>> pl.Trainer(callbacks=[UGRProgress(loss_func)]).fit(System(model, optimizer, loss_func, train_loader))

        Class bias needs labels: the dataset yields ``(mixture, (sources, labels))``,
        labels per source ((B, n_src) after collation; an integer tensor collates as it is).

        >>> loss_func = UGRLoss(PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx"),
        ...                     weighting={"type": "class", "gamma": {0: 2.0}})
    """

    def __init__(self, loss_func: Callable[..., Tensor], weighting: Mapping[str, Any]) -> None:
        super().__init__()
        self.loss_func = loss_func
        self.weighting = build(weighting)
        self.step: int | None = None
        self.epoch: int | None = None
        self.last_weights: Tensor | None = None

    def per_example(self, est_targets: Tensor, targets: Tensor, **kwargs: Any) -> Tensor:
        """The wrapped loss's per-example terms at the weighting's granularity, with gradients."""
        granularity = self.weighting.granularity
        wrapped = self.loss_func
        if isinstance(wrapped, PITLossWrapper):
            if wrapped.pit_from == "perm_avg" or wrapped.perm_reduce is not None:
                if granularity == "source":
                    raise ValueError(
                        f"UGRLoss: a PITLossWrapper with pit_from={wrapped.pit_from!r} and "
                        f"perm_reduce={wrapped.perm_reduce!r} gives one loss per mixture, not per "
                        "source; set the weighting's granularity: mixture"
                    )
                if wrapped.pit_from == "perm_avg":
                    return wrapped.best_perm_from_perm_avg_loss(wrapped.loss_func, est_targets, targets, **kwargs)[0]
            if wrapped.pit_from == "pw_mtx":
                pairwise = wrapped.loss_func(est_targets, targets, **kwargs)
            else:
                pairwise = wrapped.get_pw_losses(wrapped.loss_func, est_targets, targets, **kwargs)
            if granularity == "mixture":
                return wrapped.find_best_perm(pairwise, perm_reduce=wrapped.perm_reduce)[0]
            return losses.pit_per_source(pairwise)[0]
        terms = wrapped(est_targets, targets, **kwargs)
        if terms.dim() == 0:
            raise ValueError(
                "UGRLoss: the wrapped loss returned a scalar, but UGR weighs each example; wrap a "
                "per-example loss (reduction='none', asteroid's singlesrc_* losses) or a PITLossWrapper"
            )
        if granularity == "mixture":
            return terms.reshape(terms.shape[0], -1).mean(dim=1)
        return terms

    def forward(self, est_targets: Tensor, targets: Tensor | tuple[Tensor, Any], **kwargs: Any) -> Tensor:
        """The weighted loss in training mode, the mean in eval mode; ``targets`` may be ``(targets, labels)``."""
        labels = None
        if isinstance(targets, (tuple, list)):
            if len(targets) != 2 or not isinstance(targets[0], Tensor):
                raise ValueError(
                    f"UGRLoss: targets must be a tensor or a (targets, labels) pair, got a "
                    f"{type(targets).__name__} of {len(targets)}"
                )
            targets, labels = targets
        terms = self.per_example(est_targets, targets, **kwargs)
        if not self.training:
            return terms.mean()
        given = dict(labels) if isinstance(labels, Mapping) else {"classes": labels}
        unknown = sorted(set(given) - set(_LABEL_KEYS))
        if unknown:
            raise ValueError(
                f"UGRLoss: labels keys {unknown} unknown; a labels mapping holds any of {list(_LABEL_KEYS)}"
            )
        context = {"step": self.step, "epoch": self.epoch, **given}
        try:
            outcome = reweigh(terms, self.weighting, **{k: v for k, v in context.items() if v is not None})
        except ValueError as error:
            raise ValueError(
                f"{error} (UGRLoss: step and epoch come from UGRProgress(loss_func) in the "
                "Trainer's callbacks, labels from (targets, labels) targets)"
            ) from error
        self.last_weights = outcome.weights
        return outcome.loss

    def get_extra_state(self) -> dict[str, Any]:
        """The weighting's state, saved with the module's ``state_dict``."""
        return weighting_state(self.weighting)

    def set_extra_state(self, state: Any) -> None:
        load_weighting_state(self.weighting, state)


class UGRProgress(pl.Callback):
    """Copies the trainer's ``global_step`` and ``current_epoch`` into a ``UGRLoss`` before each training batch."""

    def __init__(self, loss_func: UGRLoss) -> None:
        if not isinstance(loss_func, UGRLoss):
            raise TypeError(f"UGRProgress needs the UGRLoss the System trains with, got {type(loss_func).__name__}")
        self.loss_func = loss_func

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.loss_func.step = trainer.global_step
        self.loss_func.epoch = trainer.current_epoch
