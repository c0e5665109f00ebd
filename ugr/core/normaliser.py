"""Normalisers: how the logits F of one optimizer step become the weights of its examples.

``BatchNormaliser`` is the method as published: ``p = softmax(F)`` over the
global batch (every rank, every micro-batch). It is exact but lives within a
step: at batch size 1 it gives weight 1 whatever F is (a no-op), and at small
batches its normaliser is noisy and biased (self-normalised).

``RunningNormaliser`` is TERM's stochastic algorithm (Li, Beirami, Sanjabi,
Smith, ICLR 2021): the normaliser is a moving average over steps,

    w_i = exp(F_i) / (N * Z),   N the global batch size,
    log Z <- logsumexp(log(decay) + log Z, log(1 - decay) + log mean_j exp(F_j))

with the mean over the N logits of the global batch (every rank, every
micro-batch of the step). Order within a step: Z is updated with this step's
batch first, and the step's weights are computed from that updated Z (as
TERM's stochastic TERM does). So the first step (no Z yet: Z is this batch's
mean) and ``decay: 0`` are the batch softmax; with ``decay: 0`` the weights are
computed by the very softmax of ``BatchNormaliser``, bit for bit. Everything
is kept in log space in float64, so alpha 1000 with losses of 100 (F = 1e5)
gives finite weights: F_i - log Z - log N <= -log(1 - decay). The weights sum
to 1 only on average; their sum is the batch's mean exp(F) over the running
one (a learning-rate scale that TERM's objective asks for).

One call of ``weights`` is one optimizer step: ``ugr.core.step.reweigh`` and
``reweigh_backward`` call it once per step with the logits of all
micro-batches. Under DDP every rank gathers every rank's logits (as
``global_pmf`` does), so every rank holds the same state.

Both have ``state_dict()`` / ``load_state_dict()`` for checkpoints
(``ugr.core.weighting.weighting_state`` collects them with group DRO's).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Union

import numpy as np
import torch
from torch import Tensor

from ugr.core.distributed import gather_logits, global_pmf
from ugr.core.pmf import check_logits, pmf

NORMALISERS = ("batch", "running")
DEFAULT_DECAY = 0.9


class BatchNormaliser:
    """``p = softmax(F)`` over the global batch (``ugr.core.distributed.global_pmf``): no state."""

    kind = "batch"

    def weights(self, logits: Tensor) -> Tensor:
        """This rank's slice of the softmax over every rank's logits, shaped like ``logits``."""
        return global_pmf(logits)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            raise ValueError(
                f"BatchNormaliser has no state, got {sorted(state)}: the checkpoint was written "
                "with weighting.normaliser: running"
            )

    def label(self) -> str:
        return ""

    def describe(self) -> str:
        return "the softmax over the batch"


class RunningNormaliser:
    """TERM's running normaliser: ``w_i = exp(F_i) / (N Z)``, Z a moving average of the batch's mean exp(F)."""

    kind = "running"

    def __init__(self, decay: float = DEFAULT_DECAY) -> None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
            raise ValueError(f"'decay' must be a number in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.log_z: float | None = None  # log Z, float64; None before the first step
        self.steps = 0

    def update(self, log_mean: float) -> float:
        """One step's update of log Z from the global batch's log mean exp(F); returns the new log Z."""
        if self.log_z is None or self.decay == 0:
            self.log_z = log_mean
        else:
            self.log_z = float(np.logaddexp(math.log(self.decay) + self.log_z, math.log1p(-self.decay) + log_mean))
        self.steps += 1
        return self.log_z

    def weights(self, logits: Tensor) -> Tensor:
        """This rank's weights ``exp(F_i) / (N Z)`` after updating Z with the global batch (one step)."""
        everything, start = gather_logits(logits)
        check_logits(everything)
        count = everything.numel()
        log_mean = float(torch.logsumexp(everything.to(torch.float64), dim=0).item()) - math.log(count)
        log_z = self.update(log_mean)
        if self.decay == 0:
            weights = pmf(everything)  # literally the batch softmax
        else:
            weights = torch.exp(everything.to(torch.float64) - (log_z + math.log(count))).to(everything.dtype)
        return weights[start : start + logits.numel()].reshape(logits.shape)

    def state_dict(self) -> dict[str, Any]:
        return {"log_z": self.log_z, "steps": self.steps, "decay": self.decay}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = {"log_z", "steps"} - set(state)
        if missing:
            raise ValueError(f"RunningNormaliser.load_state_dict: missing {sorted(missing)} (got {sorted(state)})")
        self.log_z = None if state["log_z"] is None else float(state["log_z"])
        self.steps = int(state["steps"])

    def label(self) -> str:
        return f"normaliser=running, decay={self.decay:g}"

    def describe(self) -> str:
        return (
            f"a running normaliser (TERM's stochastic algorithm, decay {self.decay:g}): each weight is "
            f"exp(F) over the batch size times a moving average of the batch's mean exp(F)"
        )


Normaliser = Union[BatchNormaliser, RunningNormaliser]


def make(kind: str = "batch", decay: float | None = None) -> Normaliser:
    """The normaliser of ``weighting.normaliser`` (``batch`` or ``running``) and ``weighting.decay``."""
    if kind == "batch":
        if decay is not None:
            raise ValueError("'decay' goes only with normaliser: running")
        return BatchNormaliser()
    if kind == "running":
        return RunningNormaliser(DEFAULT_DECAY if decay is None else decay)
    raise ValueError(f"'normaliser' must be one of {list(NORMALISERS)}, got {kind!r}")
