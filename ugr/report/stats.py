"""Statistics over training seeds and test mixtures: summaries, intervals of a mean difference, seeds needed.

A test table from one training run answers "how good is this model", not "how
good is this method": another training seed moves the means as much as the
effects the recipes show. So a difference between two methods is judged over
both sources of chance, the training seeds and the test mixtures:

* every seed of every variant is scored on the same test list, so seeds and
  mixtures are *crossed* (a mixture that is hard for one seed is hard for
  all). ``seed_interval`` is a t interval with ``seeds - 1`` degrees of
  freedom whose standard error adds the seeds' spread and the mixtures'
  sampling error: valid at 3 seeds, where a bootstrap over the seeds is not
  (3 seeds give 10 distinct resamples, and its interval shrinks to their
  range; tests/test_stats.py measures both coverages);
* the mixtures-only bootstrap (``bootstrap_means``) is the usual interval of
  one run, which ignores how much the seeds disagree; it is shown beside, so
  the seeds' share of the uncertainty is visible;
* where the interval over seeds holds 0, ``seeds_for_power`` says how many
  seeds would detect the observed difference at 80 % power, from the seeds'
  measured spread;
* a figure with one value per run and no test mixtures behind it (the early
  area under a validation curve, measured on one fixed validation list) is
  judged over the seeds alone: ``difference_over_seeds``, the paired t
  interval with ``seeds - 1`` degrees of freedom.

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
from scipy import stats as scipy_stats

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


def bootstrap_means(sums: np.ndarray, counts: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """Resampled means of a per-source value, the mixtures drawn with replacement (every seed kept).

    ``sums`` is (seeds, mixtures), or (mixtures,) for one run: per seed, each
    mixture's sum of its sources' values; ``counts`` (mixtures,) the sources
    per mixture (the same test list for every seed).
    """
    sums = np.atleast_2d(np.asarray(sums, dtype=float))
    n_seeds, n_mixtures = sums.shape
    mixtures = _draw_mixtures(np.random.default_rng(seed), n_mixtures, resamples)
    totals = sums.sum(axis=0)[mixtures].sum(axis=1)
    return totals / (n_seeds * counts[mixtures].sum(axis=1))


def bootstrap_std(
    values: Dict[Tuple[str, str], float], percentile: float = 5.0, resamples: int = RESAMPLES, seed: int = SEED
) -> Tuple[float, float]:
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
    offsets = np.arange(resamples)[:, None] * len(names)  # one bincount for all
    times = np.bincount((draws + offsets).ravel(), minlength=resamples * len(names)).reshape(resamples, -1)
    means = (times @ sums) / (times @ counts)
    cumulative = np.cumsum(times[:, source_mixture], axis=1)  # (resamples, sources)
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


def seed_interval(
    seed_means: np.ndarray, mixture_sums: np.ndarray, mixture_counts: np.ndarray, level: float = LEVEL
) -> Tuple[float, float]:
    """The interval of a mean difference over ``n`` seeds x ``M`` mixtures: ``mean +- t(n-1) * SE``.

    ``SE^2 = s_seeds^2 / n + SE_mixtures^2``: the spread of the per-seed means over the seeds, plus the
    sampling error of the mixtures, which every seed shares because all are scored on one test list
    (``mixture_sums``: each mixture's sum over its sources, averaged over the seeds; ``mixture_counts``: its
    sources; the mean over sources is a ratio, so its error is the clustered one,
    ``M / (M - 1) * sum_m (sum_m - c_m * mean)^2 / (sum_m c_m)^2``). The critical value is Student's t with the
    Welch-Satterthwaite degrees of freedom of the two terms, ``n - 1`` when the seeds' spread dominates, so 3
    seeds give a wide interval, as 3 values should: a bootstrap that resamples 3
    seeds draws from 10 multisets and its interval shrinks towards their range. (Residual noise counts in
    both terms, which errs on the wide side.) Needs 2 seeds or more.
    """
    seed_means = np.asarray(seed_means, dtype=float)
    sums, counts = np.asarray(mixture_sums, dtype=float), np.asarray(mixture_counts, dtype=float)
    n, m = seed_means.size, sums.size
    if n < 2:
        raise ValueError(f"an interval over seeds needs 2 seeds or more, got {n}")
    centre = float(seed_means.mean())
    seeds = seed_means.var(ddof=1) / n
    mixtures = m / (m - 1) * float(((sums - counts * centre) ** 2).sum()) / counts.sum() ** 2 if m > 1 else 0.0
    # Welch-Satterthwaite: n - 1 degrees of freedom where the seeds dominate, up to M - 1 where the mixtures do.
    denominator = seeds**2 / (n - 1) + (mixtures**2 / (m - 1) if m > 1 else 0.0)
    df = (seeds + mixtures) ** 2 / denominator if denominator > 0 else float(n - 1)
    half = float(scipy_stats.t.ppf(0.5 + level / 200, df)) * math.sqrt(seeds + mixtures)
    return centre - half, centre + half


def seeds_for_power(
    difference: float, seed_sd: float, power: float = 0.8, level: float = LEVEL, most: int = 10_000
) -> Optional[int]:
    """The fewest seeds whose paired t-test (two-sided, at ``level``) detects ``difference`` with ``power``,
    given the seeds' spread ``seed_sd`` of the per-seed mean difference; None beyond ``most`` seeds or for a
    difference of 0. The noncentral t distribution gives the power exactly for normal seed effects."""
    if difference == 0 or not math.isfinite(difference) or not math.isfinite(seed_sd):
        return None
    if seed_sd == 0:
        return 2
    alpha = 1 - level / 100
    for n in range(2, most + 1):
        df, shift = n - 1, abs(difference) / seed_sd * math.sqrt(n)
        critical = scipy_stats.t.ppf(1 - alpha / 2, df)
        if scipy_stats.nct.sf(critical, df, shift) + scipy_stats.nct.cdf(-critical, df, shift) >= power:
            return n
    return None


@dataclass(frozen=True)
class SeedsPaired:
    """A variant against its baseline over paired seeds and the same (mixture, source) pairs."""

    seeds: int
    mixtures: int
    sources: int
    mean_difference: float
    low: float  # over seeds and mixtures (seed_interval: t with seeds - 1 df); nan for one seed
    high: float
    mixtures_low: float  # mixtures resampled, every seed kept: the interval of one run, pooled
    mixtures_high: float
    agree: int  # seeds whose own mean difference has the sign of the overall one
    per_seed: Tuple[float, ...]
    seeds_needed: Optional[int] = None  # when the interval holds 0: seeds for 80 % power at the seeds' spread

    @property
    def resolved(self) -> bool:
        """Whether the interval over seeds excludes 0 (so the sign of the difference is established)."""
        return not (self.low <= 0 <= self.high) and math.isfinite(self.low)


def paired_over_seeds(
    differences: Sequence[Dict[Tuple[str, str], float]], resamples: int = RESAMPLES, seed: int = SEED
) -> Optional[SeedsPaired]:
    """The mean of per-source differences (one mapping per paired seed), with the interval over seeds and
    mixtures (``seed_interval``) and the mixtures-only bootstrap beside it; None when the seeds share no
    (mixture, source) pair."""
    common = set(differences[0]).intersection(*map(set, differences[1:])) if differences else set()
    if not common:
        return None
    per_seed = [{key: d[key] for key in common} for d in differences]
    tables = [by_mixture(d) for d in per_seed]
    sums = np.stack([table[1] for table in tables])
    counts = tables[0][2]
    mean = float(sums.sum() / (sums.shape[0] * counts.sum()))
    m_low, m_high = interval(bootstrap_means(sums, counts, resamples, seed))
    seed_means = tuple(float(row.sum() / counts.sum()) for row in sums)
    agree = sum(1 for value in seed_means if math.copysign(1.0, value) == math.copysign(1.0, mean))
    if len(seed_means) < 2:
        return SeedsPaired(1, counts.size, len(common), mean, math.nan, math.nan, m_low, m_high, agree, seed_means)
    low, high = seed_interval(np.array(seed_means), sums.mean(axis=0), counts)
    needed = None if not low <= 0 <= high else seeds_for_power(mean, float(np.std(seed_means, ddof=1)))
    return SeedsPaired(
        len(per_seed), counts.size, len(common), mean, low, high, m_low, m_high, agree, seed_means, needed
    )


@dataclass(frozen=True)
class SeedsDifference:
    """A variant against its baseline on one value per run, over paired seeds: the mean of the per-seed
    differences, its t interval (nan for one seed) and, when the interval holds 0, the seeds for 80 % power."""

    seeds: int
    mean_difference: float
    low: float
    high: float
    per_seed: Tuple[float, ...]
    seeds_needed: Optional[int] = None

    @property
    def resolved(self) -> bool:
        """Whether the interval excludes 0 (so the sign of the difference is established)."""
        return not (self.low <= 0 <= self.high) and math.isfinite(self.low)


def paired_t_interval(per_seed: Sequence[float], level: float = LEVEL) -> Tuple[float, float]:
    """The t interval of the mean of per-seed differences, ``mean +- t(n-1) * s / sqrt(n)``: exact for normal
    seed effects at any n >= 2 (tests/test_second_study.py measures its coverage at 3 and 5 seeds)."""
    values = np.asarray(per_seed, dtype=float)
    if values.size < 2:
        raise ValueError(f"an interval over seeds needs 2 seeds or more, got {values.size}")
    mean = float(values.mean())
    half = float(scipy_stats.t.ppf(0.5 + level / 200, values.size - 1)) * float(values.std(ddof=1))
    half /= math.sqrt(values.size)
    return mean - half, mean + half


def difference_over_seeds(per_seed: Sequence[float], level: float = LEVEL) -> SeedsDifference:
    """Per-seed differences (seed k of the variant - seed k of the baseline) summarised: their mean, its
    ``paired_t_interval`` and, when that holds 0, the seeds that would detect the mean at 80 % power."""
    values = np.asarray(per_seed, dtype=float)
    if values.size == 0:
        raise ValueError("a difference over seeds needs at least one paired seed")
    mean = float(values.mean())
    if values.size < 2:
        return SeedsDifference(1, mean, math.nan, math.nan, tuple(values.tolist()))
    low, high = paired_t_interval(values, level)
    needed = seeds_for_power(mean, float(values.std(ddof=1))) if low <= 0 <= high else None
    return SeedsDifference(int(values.size), mean, low, high, tuple(values.tolist()), needed)
