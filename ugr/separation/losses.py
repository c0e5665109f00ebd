"""Per-example separation losses: negative PIT SI-SDR and SI-SDR improvement.

UGR needs one loss per example rather than the batch mean that asteroid's
``PITLossWrapper`` returns, so we take asteroid's pieces (pairwise SI-SDR and
the best-permutation search) and keep the per-source terms.

Granularity of the weights (``weighting.granularity``):

* ``source``: one weight per (mixture, source) pair, losses of shape (B, n_src);
  what the authors' code did.
* ``mixture``: one weight per mixture, the PIT loss averaged over its sources,
  shape (B,); the paper's formula.
"""

from __future__ import annotations

import torch
from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr, singlesrc_neg_sisdr
from torch import Tensor

from ugr.core.weighting import GRANULARITIES


def pit_neg_sisdr(est: Tensor, src: Tensor) -> tuple[Tensor, Tensor]:
    """Negative SI-SDR per source under the best permutation of each mixture.

    Args:
        est: estimates, (B, n_src, T).
        src: references, (B, n_src, T).
    Returns:
        per-source losses (B, n_src) in dB (reference order, with gradients),
        and the estimates reordered to match the references.
    """
    per_source, perm = pit_per_source(pairwise_neg_sisdr(est, src))
    return per_source, PITLossWrapper.reorder_source(est, perm)


def pit_per_source(pairwise: Tensor) -> tuple[Tensor, Tensor]:
    """Each reference's loss under its mixture's best permutation, from any pairwise loss matrix.

    Args:
        pairwise: ``[b, estimate, reference]`` losses, as asteroid's ``pairwise_*`` losses give them.
    Returns:
        per-source losses (B, n_src) in reference order (with gradients), and
        the permutation ``perm[b, reference] = estimate``.
    """
    _, perm = PITLossWrapper.find_best_perm(pairwise)
    return torch.gather(pairwise.transpose(-1, -2), 2, perm.unsqueeze(-1)).squeeze(-1), perm


def per_mixture(per_source: Tensor) -> Tensor:
    """Mean over sources: the per-mixture PIT loss, (B, n_src) -> (B,)."""
    return per_source.mean(dim=-1)


def at_granularity(per_source: Tensor, granularity: str) -> Tensor:
    """Per-source terms as they are, or averaged per mixture."""
    if granularity == "source":
        return per_source
    if granularity == "mixture":
        return per_mixture(per_source)
    raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")


def si_sdr(est: Tensor, ref: Tensor) -> Tensor:
    """SI-SDR in dB of each estimate against its reference, (..., T) -> (...)."""
    est, ref = torch.broadcast_tensors(est, ref)
    shape = est.shape[:-1]
    flat = -singlesrc_neg_sisdr(est.reshape(-1, est.shape[-1]), ref.reshape(-1, ref.shape[-1]))
    return flat.reshape(shape)


def mixture_si_sdr(mix: Tensor, src: Tensor) -> Tensor:
    """SI-SDR of the unprocessed mixture (B, T) against each source (B, n_src, T)."""
    return si_sdr(mix.unsqueeze(1), src)


def si_sdr_improvement(est: Tensor, src: Tensor, mix: Tensor) -> Tensor:
    """SI-SDRi (dB) of estimates already in reference order, (B, n_src)."""
    return si_sdr(est, src) - mixture_si_sdr(mix, src)


def neg_sisdri(per_source_losses: Tensor, mix: Tensor, src: Tensor) -> Tensor:
    """Negative SI-SDR improvement from the PIT losses: the authors' weighting signal.

    ``-(SI-SDR(est) - SI-SDR(mix)) = loss + SI-SDR(mix)``, with no second pass
    over the estimates.
    """
    return per_source_losses + mixture_si_sdr(mix, src)
