"""The bootstrap over seeds and mixtures: nominal coverage on synthetic crossed data, wider than the
mixtures-only interval when seeds disagree, the one-run interval of before, seeded."""
from __future__ import annotations

import numpy as np
import pytest

from ugr.report import stats

SOURCES = 2


def crossed(rng: np.random.Generator, seeds: int, mixtures: int, difference: float, seed_sd: float,
            mixture_sd: float = 1.0, noise_sd: float = 1.0) -> list[dict]:
    """Per-source differences of ``seeds`` paired runs on one test list: the true difference, plus a seed
    effect, a mixture effect shared by every seed (and by the mixture's sources), and noise."""
    per_seed = rng.normal(0, seed_sd, seeds)
    per_mixture = rng.normal(0, mixture_sd, mixtures)
    return [{(f"m{m}", str(j)): difference + per_seed[s] + per_mixture[m] + rng.normal(0, noise_sd)
             for m in range(mixtures) for j in range(SOURCES)} for s in range(seeds)]


def test_the_interval_over_seeds_and_mixtures_covers_the_true_difference_at_about_the_nominal_rate():
    rng = np.random.default_rng(2021)
    trials, covered = 200, 0
    for trial in range(trials):
        result = stats.paired_over_seeds(crossed(rng, seeds=10, mixtures=40, difference=0.5, seed_sd=0.5),
                                         resamples=500, seed=trial)
        covered += result.low <= 0.5 <= result.high
    # The percentile bootstrap of 10 seeds is a little narrow (by about sqrt(9/10)): about 0.93 is expected.
    assert 0.86 <= covered / trials <= 0.99, covered / trials


def test_when_seeds_disagree_the_interval_is_wider_than_the_mixtures_only_interval():
    rng = np.random.default_rng(7)
    agreeing = stats.paired_over_seeds(crossed(rng, seeds=4, mixtures=100, difference=0.3, seed_sd=0.0))
    disagreeing = stats.paired_over_seeds(crossed(rng, seeds=4, mixtures=100, difference=0.3, seed_sd=1.5))
    width = lambda low, high: high - low  # noqa: E731
    assert width(disagreeing.low, disagreeing.high) > 2 * width(disagreeing.mixtures_low, disagreeing.mixtures_high)
    # Seeds that agree add little: the two intervals are alike.
    assert width(agreeing.low, agreeing.high) < 1.3 * width(agreeing.mixtures_low, agreeing.mixtures_high)


def test_one_run_gets_the_mixtures_bootstrap_of_before_exactly():
    rng = np.random.default_rng(3)
    sums, counts = rng.normal(size=50), rng.integers(1, 3, size=50)
    # The paired interval of one run as the report computed it before seeds existed.
    picks = np.random.default_rng(stats.SEED).integers(0, sums.size, size=(stats.RESAMPLES, sums.size))
    before = np.percentile(sums[picks].sum(axis=1) / counts[picks].sum(axis=1), [2.5, 97.5])
    now = stats.interval(stats.bootstrap_means(sums, counts, resample_seeds=False))
    assert now == tuple(before)


def test_seeds_agreeing_in_sign_and_the_per_seed_means_are_reported():
    keys = [(f"m{m}", "0") for m in range(5)]
    per_seed = [{k: value for k in keys} for value in (1.0, 0.5, -0.25)]
    result = stats.paired_over_seeds(per_seed)
    assert result.per_seed == (1.0, 0.5, -0.25) and result.agree == 2 and result.seeds == 3
    assert result.mean_difference == pytest.approx(1.25 / 3)
    assert result.mixtures == 5 and result.sources == 5


def test_resampling_is_seeded_so_a_rerun_is_identical():
    data = crossed(np.random.default_rng(0), seeds=3, mixtures=30, difference=0.0, seed_sd=1.0)
    assert stats.paired_over_seeds(data) == stats.paired_over_seeds(data)


def test_the_spread_across_runs_is_the_sample_std():
    spread = stats.spread([1.0, 2.0, 4.0])
    assert (spread.mean, spread.n) == (pytest.approx(7 / 3), 3)
    assert spread.std == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))
    assert str(stats.spread([2.0])) == "2.00"


def test_bootstrap_std_shrinks_with_more_mixtures():
    rng = np.random.default_rng(5)
    small = {(f"m{i}", "0"): v for i, v in enumerate(rng.normal(0, 5, 25))}
    large = {(f"m{i}", "0"): v for i, v in enumerate(rng.normal(0, 5, 400))}
    (small_mean, _), (large_mean, _) = stats.bootstrap_std(small), stats.bootstrap_std(large)
    assert small_mean == pytest.approx(5 / np.sqrt(25), rel=0.3)
    assert large_mean == pytest.approx(5 / np.sqrt(400), rel=0.3)


def test_bootstrap_std_equals_resampling_the_mixtures_one_by_one():
    """Mixtures of one to three sources; each resample materialised, its mean and numpy percentile taken."""
    rng = np.random.default_rng(3)
    values = {(f"m{i}", str(j)): float(v) for i in range(30) for j, v in enumerate(rng.normal(0, 4, 1 + i % 3))}
    names = sorted({mixture for mixture, _ in values})
    groups = [np.array([v for (m, _), v in sorted(values.items()) if m == name]) for name in names]
    draws = np.random.default_rng(7).integers(0, len(names), size=(300, len(names)))
    samples = [np.concatenate([groups[i] for i in row]) for row in draws]
    by_hand = (np.std([s.mean() for s in samples]), np.std([np.percentile(s, 10) for s in samples]))
    assert stats.bootstrap_std(values, percentile=10, resamples=300, seed=7) == pytest.approx(by_hand, rel=1e-12)
