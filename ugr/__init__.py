"""Unified gradient reweighting (UGR) for audio source separation, and for any per-example loss.

The package is in layers, each importing only the ones below it (``pyproject.toml``'s import contracts,
checked by the test suite):

* ``ugr.report``: the report, RESULTS.md, statistics over seeds, figures, the model card;
* ``ugr.pipeline``: the recipes' stages (configs, experiment folders, variants, training, scoring);
* ``ugr.integrations``: the method in asteroid's System and in Lightning;
* ``ugr.separation`` (models, kernels, losses, metrics) and ``ugr.data`` (corpora, manifests, mixing);
* ``ugr.core``: the method itself, torch and numpy only.

The public surface below is the core's: what a training loop of any toolkit needs.

Examples:
    >>> import torch
    >>> from ugr import build_weighting, reweigh
    >>> weigh = build_weighting({"type": "robust", "alpha": 0.2})
    >>> loss, weights = reweigh(torch.tensor([1.0, 2.0, 3.0]), weigh)
    >>> round(float(weights.sum()), 6)
    1.0
"""

from ugr.core.distributed import global_pmf
from ugr.core.pmf import effective_sample_size, max_weight, pmf
from ugr.core.step import StepOutcome, Terms, WeightedLoss, reweigh, reweigh_backward
from ugr.core.weighting import build as build_weighting

__version__ = "0.1.0"
__all__ = [
    "StepOutcome",
    "Terms",
    "WeightedLoss",
    "build_weighting",
    "effective_sample_size",
    "global_pmf",
    "max_weight",
    "pmf",
    "reweigh",
    "reweigh_backward",
]
