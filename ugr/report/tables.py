"""The report's tables, one function per table, for report.md (``ugr.report.report``), RESULTS.md
(``ugr.report.results``) and the model card (``ugr.report.export``):

* ``distribution_table``: n, mean, std, p1 ... p99 of a metric per estimated source (the paper's Table 1);
* ``paired_table``: every experiment against the baseline over the same (mixture, source) pairs;
* ``class_table``: the mean SI-SDRi per coarse class and combined;
* ``convergence_table``: the final validation SI-SDRi and the training steps to reach the baseline's.

Each has two modes. By default a row is one run (one experiment folder):
``distribution_table`` and ``class_table`` take each experiment's scores
(``{name: stats}``, the ``stats.json`` of stage 3), ``paired_table`` and
``convergence_table`` the scored experiments (``ugr.report.report.Scored``).
With ``over_seeds=True`` a row is one variant across its training seeds: each
table takes the variants of ``ugr.report.across_seeds.seed_groups`` (a
``SeedRuns`` each) and a cell is the mean ± std over the seeds.

The numbers behind the tables are here too: ``per_source`` (each (mixture,
source)'s value), ``paired_comparison`` (the paired bootstrap over mixtures)
and ``steps_to_reach`` (the steps of a validation curve to a target).

Every name, weighting label and class written into a cell goes through
``ugr.report.markdown.markdown_cell``: no name adds a column, forms a link or
reaches the page as HTML.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from ugr.pipeline.score import MAIN_METRIC, PERCENTILES
from ugr.report import across_seeds, stats
from ugr.report.across_seeds import REACH_SHARE, SeedRuns
from ugr.report.markdown import markdown_cell as _md

STAT_COLUMNS = ("n", "mean", "std") + tuple(f"p{q}" for q in PERCENTILES)
SPREAD_COLUMNS = ("mean", "std", "p1", "p5", "p10", "p25", "p50", "p75", "p90", "p95", "p99")


# ----------------------------------------------------------------------------- numbers


@dataclass(frozen=True)
class Paired:
    """An experiment against its baseline over the same (mixture, source) pairs."""

    sources: int
    mixtures: int
    mean_difference: float
    low: float
    high: float
    improved: float  # share of sources with a higher value than the baseline's


def per_source(rows: List[Dict[str, str]], metric: str = MAIN_METRIC) -> Dict[tuple[str, str], float]:
    """Each (mixture_id, source)'s value: its mean over the epochs scored (one row each), where it applies."""
    values: Dict[tuple[str, str], List[float]] = {}
    for row in rows:
        if row.get(metric):
            values.setdefault((row["mixture_id"], row["source"]), []).append(float(row[metric]))
    return {key: float(np.mean(v)) for key, v in values.items()}


def paired_comparison(values: Dict[tuple[str, str], float], baseline: Dict[tuple[str, str], float],
                      resamples: int = stats.RESAMPLES, seed: int = stats.SEED) -> Optional[Paired]:
    """Mean per-source difference ``values - baseline`` over their common (mixture, source) pairs, its 95 %
    bootstrap interval and the share of sources improved; None without a common pair.

    Sources of one mixture are not independent (they share the mixture), so
    the bootstrap resamples whole mixtures (``ugr.report.stats``).
    """
    common = sorted(set(values) & set(baseline))
    if not common:
        return None
    differences = {key: values[key] - baseline[key] for key in common}
    _, sums, counts = stats.by_mixture(differences)
    low, high = stats.interval(stats.bootstrap_means(sums, counts, resamples=resamples,
                                                     seed=seed))
    d = np.array(list(differences.values()))
    return Paired(len(common), sums.size, float(d.mean()), low, high, float((d > 0).mean()))


def steps_to_reach(curve: Sequence[Any], target: float) -> Optional[int]:
    """The optimizer steps after which the validation SI-SDRi first reached ``target``; None if it never did.

    ``curve``: the validations in order (``ugr.report.report.Point``: ``.steps``, ``.value``)."""
    return next((point.steps for point in curve if point.value >= target), None)


# ----------------------------------------------------------------------------- cells


def _cell(stats: Dict, spread: Optional[Dict], key: str) -> str:
    if key == "n":
        return str(stats["n"])
    return f"{stats[key]:.2f}" + (f" ± {spread[key]:.2f}" if spread is not None else "")


def _mean_pm(stats: Optional[Dict], spread: Optional[Dict]) -> str:
    """``mean ± x``: x the std across epochs when ``spread`` is given, else the standard error of the mean."""
    if stats is None:
        return "-"
    if spread is not None:
        return f"{stats['mean']:.2f} ± {spread['mean']:.2f}"
    se = stats["std"] / math.sqrt(stats["n"]) if stats["n"] > 1 else float("nan")
    return f"{stats['mean']:.2f} ± {se:.2f}"


def _reach_cell(steps: Sequence[Optional[int]]) -> str:
    reached = [s for s in steps if s is not None]
    if not reached:
        return f"not reached (0 of {len(steps)})"
    text = f"{np.mean(reached):.0f}" + (f" ± {np.std(reached, ddof=1):.0f}" if len(reached) > 1 else "")
    return f"{text} ({len(reached)} of {len(steps)})"


# ----------------------------------------------------------------------------- tables


def distribution_table(experiments: Any, weightings: Optional[Mapping[str, str]] = None, metric: str = MAIN_METRIC,
                       *, over_seeds: bool = False) -> str:
    """One row per experiment: n, mean, std, p1 ... p99 of ``metric``; mean ± std across epochs where scored so.

    ``experiments``: ``{name: stats}`` with ``weightings`` ``{name: label}``; ``over_seeds``: the variants
    (``SeedRuns``), each statistic of SI-SDRi as the mean ± std over the seeds.
    """
    if over_seeds:
        variants: Sequence[SeedRuns] = experiments
        lines = ["| variant | weighting | seeds | " + " | ".join(SPREAD_COLUMNS) + " |",
                 "|" + "---|" * (len(SPREAD_COLUMNS) + 3)]
        for variant in variants:
            cells = [str(variant.spread(key) or "-") for key in SPREAD_COLUMNS]
            lines.append(f"| {_md(variant.name)} | {_md(variant.weighting)} | {len(variant.runs)} | "
                         + " | ".join(cells)
                         + " |")
        return "\n".join(lines)
    lines = ["| experiment | weighting | " + " | ".join(STAT_COLUMNS) + " |", "|" + "---|" * (len(STAT_COLUMNS) + 2)]
    for name, s in experiments.items():
        if metric == MAIN_METRIC:
            values, spread = s, s.get("across_epochs_std")
        else:
            values = s.get("metrics", {}).get(metric)
            spread = s["across_epochs_std"]["metrics"][metric] if values and "across_epochs_std" in s else None
        if not values or not values["n"]:
            reason = "not scored" if not values else "no source it applies to"
            lines.append(f"| {_md(name)} | {_md(weightings[name])} | 0 | " + " | ".join([reason] + ["-"] * 10) + " |")
            continue
        lines.append(f"| {_md(name)} | {_md(weightings[name])} | "
                     + " | ".join(_cell(values, spread, c) for c in STAT_COLUMNS)
                     + " |")
    return "\n".join(lines)


def verdict(result: stats.SeedsPaired) -> str:
    """What the seeds settle: the sign of the difference, or how many seeds would (80 % power at their spread)."""
    if result.seeds < 2:
        return "one seed: nothing over seeds"
    if result.resolved:
        return "higher" if result.mean_difference > 0 else "lower"
    more = f"about {result.seeds_needed} seeds would detect it" if result.seeds_needed else "no seed count in reach"
    return f"not settled at {result.seeds} seeds; {more}"


def paired_table(experiments: Sequence[Any], baseline: Any, *, over_seeds: bool = False) -> str:
    """Every experiment but ``baseline`` against it (SI-SDRi): the mean per-source difference and its 95 %
    bootstrap interval over mixtures, the share of sources improved.

    ``experiments``: the scored experiments (``Scored``); ``over_seeds``: the variants (``SeedRuns``), seed k
    against seed k, the interval over seeds and mixtures (``across_seeds.paired``).
    """
    if over_seeds:
        lines = ["| variant | seeds paired | mixtures | mean difference (dB) | 95 % interval over seeds and mixtures | "
                 "mixtures only | what the seeds show | seeds agreeing in sign | per seed |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for variant in experiments:
            if variant is baseline:
                continue
            result = across_seeds.paired(variant, baseline, per_source)
            if result is None:
                lines.append(f"| {_md(variant.name)} | 0 | no seed or (mixture, source) in common with "
                             f"{_md(baseline.name)} | "
                             "- | - | - | - | - | - |")
                continue
            interval = "-" if result.seeds < 2 else f"[{result.low:+.2f}, {result.high:+.2f}]"
            lines.append(f"| {_md(variant.name)} | {result.seeds} | {result.mixtures} | "
                         f"{result.mean_difference:+.2f} | "
                         f"{interval} | [{result.mixtures_low:+.2f}, {result.mixtures_high:+.2f}] | "
                         f"{verdict(result)} | {result.agree} of {result.seeds} | "
                         + ", ".join(f"{value:+.2f}" for value in result.per_seed) + " |")
        return "\n".join(lines)
    base = per_source(baseline.rows)
    lines = ["| experiment | sources (mixtures) | mean difference (dB) | 95 % bootstrap interval | improved |",
             "|---|---|---|---|---|"]
    for exp in experiments:
        if exp is baseline:
            continue
        paired = paired_comparison(per_source(exp.rows), base)
        if paired is None:
            lines.append(f"| {_md(exp.name)} | 0 | no (mixture, source) in common with {_md(baseline.name)} | - | - |")
            continue
        lines.append(f"| {_md(exp.name)} | {paired.sources} ({paired.mixtures}) | {paired.mean_difference:+.2f} | "
                     f"[{paired.low:+.2f}, {paired.high:+.2f}] | {100 * paired.improved:.1f} % |")
    return "\n".join(lines)


def class_table(experiments: Any, *, over_seeds: bool = False) -> str:
    """Mean SI-SDRi per coarse class (those of every experiment, in name order) and combined, ± the std across
    epochs (protocol epochs) or the standard error of the mean (protocol weights); the last column says which.

    ``experiments``: ``{name: stats}``; ``over_seeds``: the variants (``SeedRuns``), each mean ± its std over
    the seeds.
    """
    if over_seeds:
        variants: Sequence[SeedRuns] = experiments
        classes = sorted({c for variant in variants for run in variant.runs for c in run.stats["per_coarse"]})
        lines = ["| variant | seeds | " + " | ".join(_md(c) for c in classes) + " | combined |",
                 "|---|---|" + "---|" * (len(classes) + 1)]
        for variant in variants:
            cells = [str(variant.spread("mean", c) or "-") for c in classes] + [str(variant.spread("mean") or "-")]
            lines.append(f"| {_md(variant.name)} | {len(variant.runs)} | " + " | ".join(cells) + " |")
        return "\n".join(lines)
    classes = sorted({c for s in experiments.values() for c in s["per_coarse"]})
    lines = ["| experiment | " + " | ".join(_md(c) for c in classes) + " | combined | ± |",
             "|---|" + "---|" * (len(classes) + 2)]
    for name, s in experiments.items():
        spread = s.get("across_epochs_std")
        kind = (f"std across {len(s.get('checkpoints', []))} epochs" if spread is not None
                else "standard error of the mean")
        cells = [_mean_pm(s["per_coarse"].get(c), spread and spread["per_coarse"].get(c)) for c in classes]
        lines.append(f"| {_md(name)} | " + " | ".join(cells + [_mean_pm(s, spread), kind]) + " |")
    return "\n".join(lines)


def convergence_table(experiments: Sequence[Any], baseline: Optional[Any], *, over_seeds: bool = False) -> str:
    """Each experiment's final validation SI-SDRi and the steps to its first validation at or above the
    baseline's final one (None: no baseline).

    ``experiments``: the scored experiments (``Scored``); ``over_seeds``: the variants (``SeedRuns``), the
    final value as mean ± std over the seeds and, per seed, the steps to ``REACH_SHARE`` of the baseline's
    final value (its mean over seeds) and to that value, as mean ± std over the seeds that reached it.
    """
    if over_seeds:
        final = across_seeds.baseline_final(baseline)
        head = ("| variant | seeds | final validation SI-SDRi (dB) | "
                + (f"steps to {100 * REACH_SHARE:.0f} % of it ({REACH_SHARE * final:.2f} dB) | steps to "
                   f"{_md(baseline.name)}'s final ({final:.2f} dB) |" if final is not None else "steps to reach | - |"))
        lines = [head, "|---|---|---|---|---|"]
        for variant in experiments:
            curves = [run.curve for run in variant.runs]
            if not all(curves):
                lines.append(f"| {_md(variant.name)} | {len(curves)} | no validation in the logs | - | - |")
                continue
            last = stats.spread(curve[-1].value for curve in curves)
            if final is None:
                lines.append(f"| {_md(variant.name)} | {len(curves)} | {last} | - | - |")
                continue
            lines.append(f"| {_md(variant.name)} | {len(curves)} | {last} | "
                         f"{_reach_cell([steps_to_reach(c, REACH_SHARE * final) for c in curves])} | "
                         f"{_reach_cell([steps_to_reach(c, final) for c in curves])} |")
        return "\n".join(lines)
    target = baseline.curve[-1].value if baseline is not None and baseline.curve else None
    reach = f"steps to reach {_md(baseline.name)}'s final {target:.2f} dB" if target is not None else "steps to reach -"
    lines = [f"| experiment | epochs | steps | final validation SI-SDRi (dB) | {reach} |", "|---|---|---|---|---|"]
    for exp in experiments:
        if not exp.curve:
            lines.append(f"| {_md(exp.name)} | - | - | no validation in the logs | - |")
            continue
        steps = steps_to_reach(exp.curve, target) if target is not None else None
        reached = "-" if target is None else ("not reached" if steps is None else str(steps))
        last = exp.curve[-1]
        lines.append(f"| {_md(exp.name)} | {last.epoch} | {last.steps} | {last.value:.2f} | {reached} |")
    return "\n".join(lines)
