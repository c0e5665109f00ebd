"""Statistics over training seeds and test mixtures: summaries and the seeded bootstrap of a mean difference.

A test table from one training run answers "how good is this model", not "how
good is this method": another training seed moves the means as much as the
effects the recipes show. So a difference between two methods is judged over
both sources of chance, the training seeds and the test mixtures:

* every seed of every variant is scored on the same test list, so seeds and
  mixtures are *crossed* (a mixture that is hard for one seed is hard for
  all). The two-level bootstrap therefore draws, per resample, seeds with
  replacement and mixtures with replacement, the same mixtures for every
  drawn seed, and takes the mean difference over what it drew;
* without the seed level (``resample_seeds=False``) it is the usual
  mixtures-only interval of one run, which ignores how much the seeds
  disagree.

A mixture's sources are not independent (they share the mixture), so the
unit of the mixture level is the mixture: its sources' sum and count.
Resampling is seeded (numpy's Generator), so a report is byte-identical when
rerun; percentiles are numpy's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

RESAMPLES = 2000
SEED = 0
LEVEL = 95.0  # per cent


@dataclass(frozen=True)
class Spread:
    """A statistic across runs: its mean, its std (ddof 1; nan for one run) and the number of runs."""

    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.2f}" + (f" ± {self.std:.2f}" if self.n > 1 else "")


def spread(values: Iterable[float]) -> Spread:
    """Mean and sample std (ddof 1) of one value per run."""
    array = np.asarray(list(values), dtype=float)
    return Spread(float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else float("nan"), int(array.size))


def by_mixture(values: Dict[Tuple[str, str], float]) -> Tuple[list, np.ndarray, np.ndarray]:
    """Per mixture, in name order: the names, the sum of its sources' values and their count."""
    sums: Dict[str, float] = {}
    counts: Dict[str, int] = {}
    for (mixture, _), value in values.items():
        sums[mixture] = sums.get(mixture, 0.0) + value
        counts[mixture] = counts.get(mixture, 0) + 1
    order = sorted(sums)
    return order, np.array([sums[m] for m in order]), np.array([counts[m] for m in order])


def _draw_mixtures(rng: np.random.Generator, n_mixtures: int, resamples: int) -> np.ndarray:
    """(resamples, n_mixtures) mixture indices drawn with replacement: the mixture level of every bootstrap."""
    return rng.integers(0, n_mixtures, size=(resamples, n_mixtures))


def bootstrap_means(sums: np.ndarray, counts: np.ndarray, resample_seeds: bool = True,
                    resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """Resampled means of a per-source value over seeds x mixtures.

    ``sums`` is (seeds, mixtures): per seed, each mixture's sum of its
    sources' values; ``counts`` (mixtures,) the sources per mixture (the same
    test list for every seed). Each resample draws the mixtures with
    replacement and, with ``resample_seeds``, the seeds too (crossed: the
    drawn mixtures for every drawn seed).
    """
    sums = np.atleast_2d(np.asarray(sums, dtype=float))
    n_seeds, n_mixtures = sums.shape
    rng = np.random.default_rng(seed)
    mixtures = _draw_mixtures(rng, n_mixtures, resamples)
    if resample_seeds:
        per_mixture = sums[rng.integers(0, n_seeds, size=(resamples, n_seeds))].sum(axis=1)  # (resamples, mixtures)
        totals = np.take_along_axis(per_mixture, mixtures, axis=1).sum(axis=1)
    else:
        totals = sums.sum(axis=0)[mixtures].sum(axis=1)
    return totals / (n_seeds * counts[mixtures].sum(axis=1))


def bootstrap_std(values: Dict[Tuple[str, str], float], percentile: float = 5.0, resamples: int = RESAMPLES,
                  seed: int = SEED) -> Tuple[float, float]:
    """Bootstrap std of the mean and of a percentile of per-source values over one test list, resampling
    mixtures (the error bars of one run's point in the report's trade-off figure).

    A resample holds each source of a drawn mixture once per draw; its
    percentile is numpy's (linear) of that multiset, read from the sorted
    values and their repeat counts, so no resample is materialised.
    """
    names, sums, counts = by_mixture(values)
    index = {name: i for i, name in enumerate(names)}
    order = sorted(values, key=values.get)
    sorted_values = np.array([values[key] for key in order])
    source_mixture = np.array([index[mixture] for mixture, _ in order])
    draws = _draw_mixtures(np.random.default_rng(seed), len(names), resamples)
    offsets = np.arange(resamples)[:, None] * len(names)                           # one bincount for all
    times = np.bincount((draws + offsets).ravel(), minlength=resamples * len(names)).reshape(resamples, -1)
    means = (times @ sums) / (times @ counts)
    cumulative = np.cumsum(times[:, source_mixture], axis=1)                      # (resamples, sources)
    position = (cumulative[:, -1] - 1) * percentile / 100.0
    below = np.floor(position)
    lower = sorted_values[(cumulative > below[:, None]).argmax(axis=1)]
    upper = sorted_values[(cumulative > below[:, None] + 1).argmax(axis=1)]
    percentiles = lower + (position - below) * (upper - lower)
    return float(np.std(means)), float(np.std(percentiles))


def interval(means: np.ndarray, level: float = LEVEL) -> Tuple[float, float]:
    """The percentile interval of resampled means, ``level`` in per cent."""
    low, high = np.percentile(means, [(100 - level) / 2, (100 + level) / 2])
    return float(low), float(high)


@dataclass(frozen=True)
class SeedsPaired:
    """A variant against its baseline over paired seeds and the same (mixture, source) pairs."""

    seeds: int
    mixtures: int
    sources: int
    mean_difference: float
    low: float                # the two-level interval: seeds and mixtures resampled
    high: float
    mixtures_low: float       # mixtures resampled, every seed kept: the interval of one run, pooled
    mixtures_high: float
    agree: int                # seeds whose own mean difference has the sign of the overall one
    per_seed: Tuple[float, ...]


def paired_over_seeds(differences: Sequence[Dict[Tuple[str, str], float]], resamples: int = RESAMPLES,
                      seed: int = SEED) -> Optional[SeedsPaired]:
    """The mean of per-source differences (one mapping per paired seed), with both intervals; None when the
    seeds share no (mixture, source) pair."""
    common = set(differences[0]).intersection(*map(set, differences[1:])) if differences else set()
    if not common:
        return None
    per_seed = [{key: d[key] for key in common} for d in differences]
    tables = [by_mixture(d) for d in per_seed]
    sums = np.stack([table[1] for table in tables])
    counts = tables[0][2]
    mean = float(sums.sum() / (sums.shape[0] * counts.sum()))
    low, high = interval(bootstrap_means(sums, counts, True, resamples, seed))
    m_low, m_high = interval(bootstrap_means(sums, counts, False, resamples, seed))
    seed_means = tuple(float(row.sum() / counts.sum()) for row in sums)
    agree = sum(1 for value in seed_means if math.copysign(1.0, value) == math.copysign(1.0, mean))
    return SeedsPaired(len(per_seed), counts.size, len(common), mean, low, high, m_low, m_high, agree, seed_means)
