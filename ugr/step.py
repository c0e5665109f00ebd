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
from typing import Any, Callable, ContextManager, Sequence

import torch
from torch import Tensor

from ugr.distributed import global_pmf, world_size


@dataclass(frozen=True)
class Terms:
    """What the weighting needs from one micro-batch's forward pass.

    ``losses`` are the per-example training losses at the weighting's
    granularity (with a graph in the second pass); ``neg_sisdri`` the
    negative SI-SDR improvement of the same shape, or None when the weighting
    does not use it; ``classes`` and ``coarse`` the per-source fine and coarse labels.
    """

    losses: Tensor
    neg_sisdri: Tensor | None
    classes: Sequence[Sequence[str]]
    coarse: Sequence[Sequence[str]]


@dataclass(frozen=True)
class StepOutcome:
    """Detached figures for logging: the local weighted loss, weights and losses."""

    weighted_loss: Tensor
    weights: Tensor
    losses: Tensor


def _logits(weighting: Callable[..., Tensor], terms: Terms, step: int, epoch: int) -> Tensor:
    context: dict[str, Any] = {"losses": terms.losses.detach(), "classes": terms.classes, "coarse": terms.coarse,
                               "step": step, "epoch": epoch}
    if terms.neg_sisdri is not None:
        context["neg_sisdri"] = terms.neg_sisdri.detach()
    return weighting(**context)


def reweighted_backward(
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
    """
    scale = world_size()
    if len(micro_batches) == 1:
        terms = compute(micro_batches[0])
        weights = global_pmf(_logits(weighting, terms, step, epoch))
        weighted = (weights * terms.losses).sum()
        backward(weighted * scale)
        return StepOutcome(weighted.detach(), weights, terms.losses.detach())

    with torch.no_grad():
        first_pass = [compute(micro_batch) for micro_batch in micro_batches]
    logits = torch.cat([_logits(weighting, terms, step, epoch).reshape(-1) for terms in first_pass])
    weights = global_pmf(logits)
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
