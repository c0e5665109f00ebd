"""Intervals over seeds and mixtures: nominal coverage on synthetic crossed data at 3, 5 and 10 seeds (where the
bootstrap over seeds falls short at 3), wider than the mixtures-only interval when seeds disagree, the seeds a
difference would need, the one-run interval of before, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from ugr.report import stats

SOURCES = 2


def crossed(
    rng: np.random.Generator,
    seeds: int,
    mixtures: int,
    difference: float,
    seed_sd: float,
    mixture_sd: float = 1.0,
    noise_sd: float = 1.0,
) -> list[dict]:
    """Per-source differences of ``seeds`` paired runs on one test list: the true difference, plus a seed
    effect, a mixture effect shared by every seed (and by the mixture's sources), and noise."""
    per_seed = rng.normal(0, seed_sd, seeds)
    per_mixture = rng.normal(0, mixture_sd, mixtures)
    return [
        {
            (f"m{m}", str(j)): difference + per_seed[s] + per_mixture[m] + rng.normal(0, noise_sd)
            for m in range(mixtures)
            for j in range(SOURCES)
        }
        for s in range(seeds)
    ]


def two_level_bootstrap(differences: list[dict], resamples: int, seed: int) -> tuple[float, float]:
    """The interval the report gave before: seeds and mixtures resampled with replacement (crossed), percentile
    interval. Kept here as the reference the new interval is measured against."""
    tables = [stats.by_mixture(d) for d in differences]
    sums, counts = np.stack([table[1] for table in tables]), tables[0][2]
    rng = np.random.default_rng(seed)
    n_seeds, n_mixtures = sums.shape
    mixtures = rng.integers(0, n_mixtures, size=(resamples, n_mixtures))
    per_mixture = sums[rng.integers(0, n_seeds, size=(resamples, n_seeds))].sum(axis=1)
    totals = np.take_along_axis(per_mixture, mixtures, axis=1).sum(axis=1)
    return stats.interval(totals / (n_seeds * counts[mixtures].sum(axis=1)))


@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_the_interval_over_seeds_covers_the_true_difference_at_about_the_nominal_rate(seeds):
    """Synthetic crossed data with known seed and mixture variance: the true difference is 0.5 on the
    population of mixtures. 400 trials: the binomial sd of a 95 % coverage is about 1.1 points."""
    rng = np.random.default_rng(2021 + seeds)
    trials = 400
    covered = 0
    for trial in range(trials):
        result = stats.paired_over_seeds(
            crossed(rng, seeds=seeds, mixtures=40, difference=0.5, seed_sd=0.5), resamples=50, seed=trial
        )
        covered += result.low <= 0.5 <= result.high
    assert 0.92 <= covered / trials <= 0.99, covered / trials


def test_at_3_seeds_the_bootstrap_over_seeds_covers_less_than_its_nominal_rate():
    """Data as above, the seeds' spread dominating (as in the study): resampling 3 seeds draws from 10 multisets, so the bootstrap's interval is about
    the range of the 3 seeds' means, and covers the truth far less often than 95 %; the t interval does not."""
    rng = np.random.default_rng(2024)
    trials = 400
    bootstrap = t_interval = 0
    for trial in range(trials):
        differences = crossed(rng, seeds=3, mixtures=40, difference=0.5, seed_sd=1.0)
        low, high = two_level_bootstrap(differences, resamples=300, seed=trial)
        bootstrap += low <= 0.5 <= high
        result = stats.paired_over_seeds(differences, resamples=50, seed=trial)
        t_interval += result.low <= 0.5 <= result.high
    assert bootstrap / trials < 0.85, bootstrap / trials
    assert t_interval / trials >= 0.92, t_interval / trials


def test_a_difference_the_seeds_cannot_settle_says_how_many_seeds_would():
    """The study's curriculum numbers at 3 seeds: per-seed differences -0.22, -0.89, -1.01 dB. The t interval
    holds 0, and the number of seeds for 80 % power follows from the noncentral t (checked by simulation)."""
    mixtures = {(f"m{m}", str(j)): 0.0 for m in range(100) for j in range(SOURCES)}
    differences = [{key: value + shift for key, value in mixtures.items()} for shift in (-0.22, -0.89, -1.01)]
    result = stats.paired_over_seeds(differences)
    assert result.low < 0 < result.high and not result.resolved
    assert result.low == pytest.approx(-1.764, abs=1e-3) and result.high == pytest.approx(0.351, abs=1e-3)
    needed = result.seeds_needed
    sd = float(np.std([-0.22, -0.89, -1.01], ddof=1))
    rng = np.random.default_rng(5)

    def simulated_power(n: int) -> float:
        from scipy import stats as scipy_stats

        draws = rng.normal(result.mean_difference, sd, size=(4000, n))
        t = draws.mean(axis=1) / (draws.std(axis=1, ddof=1) / np.sqrt(n))
        return float((np.abs(t) > scipy_stats.t.ppf(0.975, n - 1)).mean())

    assert simulated_power(needed) >= 0.78 and simulated_power(needed - 1) < 0.8
    settled = stats.paired_over_seeds(
        [{key: value - 0.7 + 0.01 * k for key, value in mixtures.items()} for k in range(3)]
    )
    assert settled.resolved and settled.seeds_needed is None


def test_one_seed_gives_no_interval_over_seeds():
    rng = np.random.default_rng(1)
    result = stats.paired_over_seeds(crossed(rng, seeds=1, mixtures=20, difference=0.5, seed_sd=0.5))
    assert result.seeds == 1 and np.isnan(result.low) and np.isnan(result.high) and not result.resolved
    assert result.mixtures_low < result.mixtures_high


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
    now = stats.interval(stats.bootstrap_means(sums, counts))
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
