"""The backward pass of one UGR step, exact across micro-batches and DDP ranks.

The pmf must cover the whole effective batch: every micro-batch of a
gradient-accumulation step on every rank. With one micro-batch the weights
come from the detached losses of the same forward pass, at no extra cost.
With K > 1 micro-batches a first pass without a graph computes every
example's weighting signal, the pmf is taken over all K x B examples (and
over all ranks), and a second pass re-runs each micro-batch with a graph and
back-propagates its share ``sum_i p_i L_i``. Cost of K > 1: one extra forward
pass without activations stored (about a third of a step), in exchange for
activation memory of B/K examples. The two passes must compute the same
losses, so the model must be deterministic in training mode (no dropout;
SuDORMRF has none).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, NamedTuple, Sequence

import torch
from torch import Tensor

from ugr.core.distributed import global_pmf, world_size
from ugr.core.weighting import begin_step


@dataclass(frozen=True)
class Terms:
    """What the weighting needs from one micro-batch's forward pass.

    ``losses`` are the per-example training losses at the weighting's
    granularity (with a graph in the second pass); ``classes`` and ``coarse``
    labels per loss (or per source with per-mixture losses) for class bias,
    any hashable labels (strings, integers, an integer tensor); ``neg_sisdri``
    the negative SI-SDR improvement of the losses' shape; ``groups`` the group
    labels of group DRO's ``group_by: group`` (e.g. the speaker), shaped as
    ``classes``. Each is None where
    no weighting of the run uses it.
    """

    losses: Tensor
    classes: Sequence[Any] | Tensor | None = None
    coarse: Sequence[Any] | Tensor | None = None
    neg_sisdri: Tensor | None = None
    groups: Sequence[Any] | Tensor | None = None

    def context(self) -> dict[str, Any]:
        """The weighting's context keys this forward pass provides (labels and signals that are not None)."""
        given = {"classes": self.classes, "coarse": self.coarse, "neg_sisdri": self.neg_sisdri, "groups": self.groups}
        return {key: value for key, value in given.items() if value is not None}


@dataclass(frozen=True)
class StepOutcome:
    """Detached figures for logging: the local weighted loss, weights and losses."""

    weighted_loss: Tensor
    weights: Tensor
    losses: Tensor


class WeightedLoss(NamedTuple):
    """``loss``: the scalar to back-propagate; ``weights``: this process's slice of the pmf (detached)."""

    loss: Tensor
    weights: Tensor


def reweigh(losses: Tensor, weighting: Callable[..., Tensor], **context: Any) -> WeightedLoss:
    """The UGR loss of one forward pass: per-example losses in, the loss to back-propagate and the weights out.

    ``weighting`` is a built weighting (``ugr.core.weighting.build``); ``context``
    its other keys (``step``, ``epoch``, ``classes``, ...). The pmf spans the
    global batch under DDP (``ugr.core.distributed.global_pmf``), and the loss is
    this rank's ``sum_i p_i L_i`` times the world size because DDP averages
    gradients over ranks: the update is ``sum_i p_i g_i`` over every rank's
    examples. In one process it is just ``sum_i p_i L_i``. A batch split into
    micro-batches needs ``reweigh_backward`` instead: one pmf over all of
    them.

    One call is one optimizer step for a stateful weighting (group DRO's q, a
    running normaliser's Z): each is updated once, from this batch.
    """
    full = {"losses": losses.detach(), **context}
    begin_step(weighting, [full])
    logits = weighting(**full)
    if logits.shape != losses.shape:
        raise ValueError(
            f"reweigh: the weighting gave logits {tuple(logits.shape)} for losses "
            f"{tuple(losses.shape)}; it must give one logit per per-example loss"
        )
    weights = normalise(weighting, logits)
    return WeightedLoss(world_size() * (weights * losses).sum(), weights)


def normalise(weighting: Callable[..., Tensor], logits: Tensor) -> Tensor:
    """This rank's weights from the step's logits: the weighting's normaliser (``weighting.normaliser``: the
    softmax over the global batch, or TERM's running normaliser), ``global_pmf`` for a weighting without one.
    Call it once per optimizer step: a running normaliser updates its state."""
    normaliser = getattr(weighting, "normaliser", None)
    if normaliser is None:
        return global_pmf(logits)
    weights: Tensor = normaliser.weights(logits)
    return weights


def _context(terms: Terms, step: int, epoch: int) -> dict[str, Any]:
    return {"losses": terms.losses.detach(), "step": step, "epoch": epoch, **terms.context()}


def reweigh_backward(
    compute: Callable[[Any], Terms],
    micro_batches: Sequence[Any],
    weighting: Callable[..., Tensor],
    *,
    step: int,
    epoch: int,
    backward: Callable[[Tensor], None] = Tensor.backward,
    skip_gradient_sync: Callable[[], ContextManager] = contextlib.nullcontext,
) -> StepOutcome:
    """Back-propagate ``sum_i p_i L_i`` over every example of every micro-batch and rank.

    ``compute(micro_batch)`` runs the model and returns its ``Terms``;
    ``backward`` is called once per micro-batch (Lightning's
    ``manual_backward`` under DDP). Each local sum is multiplied by the
    world size because DDP averages gradients over ranks.
    ``skip_gradient_sync()`` (DDP's ``no_sync``) wraps every second-pass
    micro-batch but the last, so gradients are all-reduced once per step.

    One call is one optimizer step for the weighting's state: group DRO
    updates q once from every micro-batch's losses (``begin_step``), then the
    running normaliser updates Z once from every micro-batch's logits.
    """
    if len(micro_batches) == 1:
        terms = compute(micro_batches[0])
        outcome = reweigh(terms.losses, weighting, step=step, epoch=epoch, **terms.context())
        backward(outcome.loss)
        return StepOutcome((outcome.weights * terms.losses.detach()).sum(), outcome.weights, terms.losses.detach())

    scale = world_size()
    with torch.no_grad():
        first_pass = [compute(micro_batch) for micro_batch in micro_batches]
    contexts = [_context(terms, step, epoch) for terms in first_pass]
    begin_step(weighting, contexts)
    logits = torch.cat([weighting(**context).reshape(-1) for context in contexts])
    weights = normalise(weighting, logits)
    weighted_total = torch.zeros((), dtype=weights.dtype, device=weights.device)
    offset = 0
    for index, (micro_batch, first) in enumerate(zip(micro_batches, first_pass)):
        count = first.losses.numel()
        last = index == len(micro_batches) - 1
        with contextlib.nullcontext() if last else skip_gradient_sync():
            terms = compute(micro_batch)
            weighted = (weights[offset : offset + count].reshape(terms.losses.shape) * terms.losses).sum()
            backward(weighted * scale)
        weighted_total = weighted_total + weighted.detach()
        offset += count
    return StepOutcome(weighted_total, weights, torch.cat([t.losses.reshape(-1) for t in first_pass]))
