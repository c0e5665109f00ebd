"""The UGR update: a probability mass function over the batch replaces 1/B.

Ordinary training steps along ``mean_i g_i``; UGR steps along ``sum_i p_i g_i``
with ``p = softmax(F)`` over every per-example term of the batch. The weights
are computed from detached logits, so they are constants for the backward pass:
the gradient of ``sum_i p_i L_i`` is then exactly ``sum_i p_i grad L_i``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_logits(z: Tensor) -> None:
    """Raises ``ValueError`` when logits cannot define a pmf: empty, NaN, +inf, or all -inf."""
    if z.numel() == 0:
        raise ValueError("pmf: got an empty logits tensor; a batch needs at least one example")
    if torch.isnan(z).any():
        raise ValueError(
            "pmf: logits contain NaN; check the per-example losses (a silent or all-zero "
            "source gives an undefined SI-SDR) and the weighting function's parameters"
        )
    if torch.isposinf(z).any():
        raise ValueError("pmf: logits contain +inf; scale the weighting function down (alpha, gamma)")
    if torch.isneginf(z).all():
        raise ValueError("pmf: every logit is -inf, so no example has any weight")


def pmf(logits: Tensor) -> Tensor:
    """Softmax over *all* elements of ``logits`` (any shape), as constants.

    The softmax subtracts the maximum, so logits of +-1e4 are fine; ``-inf``
    gives weight 0. Logits that cannot define a pmf raise ``ValueError``
    instead of quietly producing NaN weights that would poison the model.
    """
    z = logits.detach()
    check_logits(z)
    compute_dtype = torch.promote_types(z.dtype, torch.float32)
    p = torch.softmax(z.reshape(-1).to(compute_dtype), dim=0)
    return p.reshape(z.shape).to(z.dtype)


def effective_sample_size(p: Tensor) -> Tensor:
    """``1 / sum p^2``: B for uniform weights, 1 when one example takes all the weight."""
    return 1.0 / p.detach().pow(2).sum()


def max_weight(p: Tensor) -> Tensor:
    """The largest weight: together with the ESS, shows how peaked the pmf is."""
    return p.detach().max()
