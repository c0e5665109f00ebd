"""The report's tables, one function per table, for report.md (``ugr.report.report``), RESULTS.md
(``ugr.report.results``) and the model card (``ugr.report.export``):

* ``distribution_table``: n, mean, std, p1 ... p99 of a metric per estimated source (the paper's Table 1);
* ``paired_table``: every experiment against the baseline over the same (mixture, source) pairs;
* ``class_table``: the mean SI-SDRi per coarse class and combined;
* ``convergence_table``: the final validation SI-SDRi and the training steps to reach the baseline's;
* ``worst_group_table``: per grouping of the sources (``GROUPINGS``: fine class, group, input-SNR bin) each
  experiment's worst group (lowest mean SI-SDRi), its n, mean and p5, and the paired difference with the
  baseline on the baseline's worst group; ``group_table``: the mean and p5 of every group.

Each has two modes. By default a row is one run (one experiment folder):
``distribution_table`` and ``class_table`` take each experiment's scores
(``{name: stats}``, the ``stats.json`` of stage 3), ``paired_table`` and
``convergence_table`` the scored experiments (``ugr.report.report.Scored``).
With ``over_seeds=True`` a row is one variant across its training seeds: each
table takes the variants of ``ugr.report.across_seeds.seed_groups`` (a
``SeedRuns`` each) and a cell is the mean ± std over the seeds.

The numbers behind the tables are here too: ``per_source`` (each (mixture,
source)'s value), ``paired_comparison`` (the paired bootstrap over mixtures),
``steps_to_reach`` (the steps of a validation curve to a target),
``source_labels``, ``snr_bin`` and ``group_statistics`` (the groups of the
worst-group tables).

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
# The groupings of the worst-group tables: a test.csv column, or ``input_snr`` (bins of ``si_sdr_mix``).
GROUPINGS = {"class": "fine class", "group": "group (speaker, category)", "input_snr": "input SNR of the source"}
SNR_EDGES = (-5.0, 0.0, 5.0)  # dB; a source at an edge belongs to the bin above it (the lower edge is included)
NOT_RECORDED = "not recorded: rescore with stage 3"


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


def paired_comparison(
    values: Dict[tuple[str, str], float],
    baseline: Dict[tuple[str, str], float],
    resamples: int = stats.RESAMPLES,
    seed: int = stats.SEED,
) -> Optional[Paired]:
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
    low, high = stats.interval(stats.bootstrap_means(sums, counts, resamples=resamples, seed=seed))
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


def distribution_table(
    experiments: Any,
    weightings: Optional[Mapping[str, str]] = None,
    metric: str = MAIN_METRIC,
    *,
    over_seeds: bool = False,
) -> str:
    """One row per experiment: n, mean, std, p1 ... p99 of ``metric``; mean ± std across epochs where scored so.

    ``experiments``: ``{name: stats}`` with ``weightings`` ``{name: label}``; ``over_seeds``: the variants
    (``SeedRuns``), each statistic of SI-SDRi as the mean ± std over the seeds.
    """
    if over_seeds:
        variants: Sequence[SeedRuns] = experiments
        lines = [
            "| variant | weighting | seeds | " + " | ".join(SPREAD_COLUMNS) + " |",
            "|" + "---|" * (len(SPREAD_COLUMNS) + 3),
        ]
        for variant in variants:
            cells = [str(variant.spread(key) or "-") for key in SPREAD_COLUMNS]
            lines.append(
                f"| {_md(variant.name)} | {_md(variant.weighting)} | {len(variant.runs)} | " + " | ".join(cells) + " |"
            )
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
        lines.append(
            f"| {_md(name)} | {_md(weightings[name])} | "
            + " | ".join(_cell(values, spread, c) for c in STAT_COLUMNS)
            + " |"
        )
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
        lines = [
            "| variant | seeds paired | mixtures | mean difference (dB) | 95 % interval over seeds and mixtures | "
            "mixtures only | what the seeds show | seeds agreeing in sign | per seed |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for variant in experiments:
            if variant is baseline:
                continue
            result = across_seeds.paired(variant, baseline, per_source)
            if result is None:
                lines.append(
                    f"| {_md(variant.name)} | 0 | no seed or (mixture, source) in common with "
                    f"{_md(baseline.name)} | "
                    "- | - | - | - | - | - |"
                )
                continue
            interval = "-" if result.seeds < 2 else f"[{result.low:+.2f}, {result.high:+.2f}]"
            lines.append(
                f"| {_md(variant.name)} | {result.seeds} | {result.mixtures} | "
                f"{result.mean_difference:+.2f} | "
                f"{interval} | [{result.mixtures_low:+.2f}, {result.mixtures_high:+.2f}] | "
                f"{verdict(result)} | {result.agree} of {result.seeds} | "
                + ", ".join(f"{value:+.2f}" for value in result.per_seed)
                + " |"
            )
        return "\n".join(lines)
    base = per_source(baseline.rows)
    lines = [
        "| experiment | sources (mixtures) | mean difference (dB) | 95 % bootstrap interval | improved |",
        "|---|---|---|---|---|",
    ]
    for exp in experiments:
        if exp is baseline:
            continue
        paired = paired_comparison(per_source(exp.rows), base)
        if paired is None:
            lines.append(f"| {_md(exp.name)} | 0 | no (mixture, source) in common with {_md(baseline.name)} | - | - |")
            continue
        lines.append(
            f"| {_md(exp.name)} | {paired.sources} ({paired.mixtures}) | {paired.mean_difference:+.2f} | "
            f"[{paired.low:+.2f}, {paired.high:+.2f}] | {100 * paired.improved:.1f} % |"
        )
    return "\n".join(lines)


def _worst_class_cell(variant: SeedRuns) -> str:
    """Each seed's lowest mean over its coarse classes, as mean ± std over the seeds, and which class it was."""
    lowest = [min(run.stats["per_coarse"].items(), key=lambda item: item[1]["mean"]) for run in variant.runs]
    names = sorted({name for name, _ in lowest})
    return f"{stats.spread(table['mean'] for _, table in lowest)} ({', '.join(_md(n) for n in names)})"


def class_table(experiments: Any, *, over_seeds: bool = False) -> str:
    """Mean SI-SDRi per coarse class (those of every experiment, in name order) and combined, ± the std across
    epochs (protocol epochs) or the standard error of the mean (protocol weights); the last column says which.

    ``experiments``: ``{name: stats}``; ``over_seeds``: the variants (``SeedRuns``), each mean ± its std over
    the seeds, and with several classes the worst class: each seed's lowest class mean, mean ± std over the
    seeds (the class or classes it was).
    """
    if over_seeds:
        variants: Sequence[SeedRuns] = experiments
        classes = sorted({c for variant in variants for run in variant.runs for c in run.stats["per_coarse"]})
        worst = len(classes) > 1  # each seed's lowest class mean: what group DRO raises
        lines = [
            "| variant | seeds | "
            + " | ".join(_md(c) for c in classes)
            + " | combined |"
            + (" worst class |" if worst else ""),
            "|---|---|" + "---|" * (len(classes) + 1 + worst),
        ]
        for variant in variants:
            cells = [str(variant.spread("mean", c) or "-") for c in classes] + [str(variant.spread("mean") or "-")]
            if worst:
                cells.append(_worst_class_cell(variant))
            lines.append(f"| {_md(variant.name)} | {len(variant.runs)} | " + " | ".join(cells) + " |")
        return "\n".join(lines)
    classes = sorted({c for s in experiments.values() for c in s["per_coarse"]})
    lines = [
        "| experiment | " + " | ".join(_md(c) for c in classes) + " | combined | ± |",
        "|---|" + "---|" * (len(classes) + 2),
    ]
    for name, s in experiments.items():
        spread = s.get("across_epochs_std")
        kind = (
            f"std across {len(s.get('checkpoints', []))} epochs" if spread is not None else "standard error of the mean"
        )
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
        head = "| variant | seeds | final validation SI-SDRi (dB) | " + (
            f"steps to {100 * REACH_SHARE:.0f} % of it ({REACH_SHARE * final:.2f} dB) | steps to "
            f"{_md(baseline.name)}'s final ({final:.2f} dB) |"
            if final is not None
            else "steps to reach | - |"
        )
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
            lines.append(
                f"| {_md(variant.name)} | {len(curves)} | {last} | "
                f"{_reach_cell([steps_to_reach(c, REACH_SHARE * final) for c in curves])} | "
                f"{_reach_cell([steps_to_reach(c, final) for c in curves])} |"
            )
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


def _paired_cells(result: Any) -> str:
    """The cells shared by the tables over seeds: mean difference, interval, what the seeds show, per seed."""
    interval = "-" if result.seeds < 2 else f"[{result.low:+.2f}, {result.high:+.2f}]"
    per_seed = ", ".join(f"{value:+.2f}" for value in result.per_seed)
    return f"{result.mean_difference:+.2f} | {interval} | {verdict(result)} | {per_seed}"


def early_progress_table(variants: Sequence[SeedRuns], baseline: Optional[SeedRuns]) -> str:
    """Per variant (across seeds): the early area (``across_seeds.early_area``, mean ± std over seeds), its
    difference with ``baseline``'s seed by seed and the t interval over seeds, the steps to ``LEVELS`` of the
    baseline's final validation SI-SDRi (mean over its seeds), and the ESS share of the early steps."""
    final = across_seeds.baseline_final(baseline)
    targets = [(share, share * final) for share in across_seeds.LEVELS] if final is not None else []
    heads = "".join(f" steps to {100 * share:.0f} % ({value:.2f} dB) |" for share, value in targets)
    lines = [
        f"| variant | seeds | early area (dB) | difference (dB) | 95 % t interval over seeds | what the seeds show | "
        f"per seed |{heads} early ESS (share of the weights) |",
        "|---|---|---|---|---|---|---|" + "---|" * len(targets) + "---|",
    ]
    for variant in variants:
        areas = [across_seeds.early_area(run.curve) for run in variant.runs]
        known = [area for area in areas if area is not None]
        if len(known) < len(areas):
            lines.append(
                f"| {_md(variant.name)} | {len(areas)} | no validation in the logs |" + " - |" * (5 + len(targets))
            )
            continue
        result = None if baseline is None or variant is baseline else across_seeds.early_paired(variant, baseline)
        compared = _paired_cells(result) if result is not None else "- | - | - | -"
        reach = "".join(
            f" {_reach_cell([steps_to_reach(run.curve, value) for run in variant.runs])} |" for _, value in targets
        )
        ess = [across_seeds.early_ess(run) for run in variant.runs]
        shares = [value for value in ess if value is not None]
        ess_cell = str(stats.spread(shares)) if len(shares) == len(ess) else "-"
        lines.append(f"| {_md(variant.name)} | {len(areas)} | {stats.spread(known)} | {compared} |{reach} {ess_cell} |")
    return "\n".join(lines)


def class_paired_table(variants: Sequence[SeedRuns], baseline: SeedRuns) -> str:
    """Every variant but ``baseline`` against it on the sources of each coarse class (SI-SDRi), seed k against
    seed k: the mean difference, the interval over seeds and mixtures (``across_seeds.paired``), what the seeds
    show, the per-seed differences."""
    classes = sorted({row["coarse"] for v in variants for run in v.runs for row in run.rows if row.get("coarse")})
    lines = [
        "| variant | class | seeds paired | sources | mean difference (dB) | 95 % interval over seeds and mixtures "
        "| what the seeds show | per seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant in variants:
        if variant is baseline:
            continue
        for coarse in classes:
            result = across_seeds.paired(variant, baseline, across_seeds.class_values(coarse, per_source))
            if result is None:
                lines.append(f"| {_md(variant.name)} | {_md(coarse)} | 0 | - | - | - | - | - |")
                continue
            lines.append(
                f"| {_md(variant.name)} | {_md(coarse)} | {result.seeds} | {result.sources} | {_paired_cells(result)} |"
            )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- worst group


@dataclass(frozen=True)
class GroupStats:
    """One group of sources of one run: its name, sources, mean and 5th percentile (numpy's) of SI-SDRi."""

    name: str
    n: int
    mean: float
    p5: float


def snr_bins(edges: Sequence[float] = SNR_EDGES) -> List[str]:
    """The names of the input-SNR bins, lowest first: ``below -5 dB``, ``-5 to 0 dB``, ``0 to 5 dB``,
    ``5 dB and above``; each bin holds its lower edge, not its upper one."""
    cut = [f"{edge:g}" for edge in edges]
    return [f"below {cut[0]} dB"] + [f"{a} to {b} dB" for a, b in zip(cut, cut[1:])] + [f"{cut[-1]} dB and above"]


def snr_bin(value: float, edges: Sequence[float] = SNR_EDGES) -> str:
    """The input-SNR bin of a source whose mixture has SI-SDR ``value`` (dB) against it; a value at an edge
    goes to the bin above it (``-5 to 0 dB`` holds -5, not 0)."""
    return snr_bins(edges)[sum(value >= edge for edge in edges)]


def source_labels(rows: List[Dict[str, str]], grouping: str) -> Optional[Dict[tuple[str, str], str]]:
    """Each (mixture_id, source)'s group under ``grouping`` (a key of ``GROUPINGS``), from its first row (the
    epochs of a source share its labels); None when not recorded: a test.csv of older scores has no ``group``
    column (or an empty cell)."""
    labels: Dict[tuple[str, str], str] = {}
    for row in rows:
        key = (row["mixture_id"], row["source"])
        if key in labels:
            continue
        raw = row.get("si_sdr_mix" if grouping == "input_snr" else grouping)
        if not raw:
            return None
        labels[key] = snr_bin(float(raw)) if grouping == "input_snr" else raw
    return labels


def _order(names: Any, grouping: str) -> List[str]:
    """Group names in the tables' order: the bins from the lowest SNR, other groups by name."""
    names = set(names)
    if grouping == "input_snr":
        return [name for name in snr_bins() if name in names]
    return sorted(names)


def group_statistics(
    rows: List[Dict[str, str]], grouping: str, metric: str = MAIN_METRIC
) -> Optional[Dict[str, GroupStats]]:
    """Per group of ``grouping`` (in ``_order``): n, mean and p5 of the per-source values (``per_source``: a
    source's mean over the epochs scored); None when the grouping is not recorded."""
    labels = source_labels(rows, grouping)
    if labels is None:
        return None
    found: Dict[str, List[float]] = {}
    for key, value in per_source(rows, metric).items():
        found.setdefault(labels[key], []).append(value)
    return {
        name: GroupStats(name, len(found[name]), float(np.mean(found[name])), float(np.percentile(found[name], 5)))
        for name in _order(found, grouping)
    }


def worst(groups: Mapping[str, Any], mean: Any = lambda g: g.mean) -> str:
    """The group with the lowest mean (ties: the first in the tables' order)."""
    return min(groups, key=lambda name: mean(groups[name]))


def _restricted(labels: Dict[tuple[str, str], str], name: str):
    """``per_source`` kept to the sources of group ``name`` (by ``labels``: the baseline's)."""

    def values(rows: List[Dict[str, str]]) -> Dict[tuple[str, str], float]:
        return {key: value for key, value in per_source(rows).items() if labels.get(key) == name}

    return values


def _seed_groups(variant: SeedRuns, grouping: str) -> Optional[Dict[str, List[GroupStats]]]:
    """Per group (those of every seed), its statistics at each seed; None when a seed did not record it."""
    runs = [group_statistics(run.rows, grouping) for run in variant.runs]
    if any(run is None for run in runs):
        return None
    names = [name for name in runs[0] if all(name in run for run in runs)]
    return {name: [run[name] for run in runs] for name in names}


def _seed_mean(per_seed: List[GroupStats]) -> float:
    return float(np.mean([g.mean for g in per_seed]))


def worst_group_table(
    experiments: Sequence[Any], baseline: Optional[Any], grouping: str, *, over_seeds: bool = False
) -> str:
    """Each experiment's worst group of ``grouping`` (a key of ``GROUPINGS``): the group of lowest mean SI-SDRi
    (a source's value its mean over the epochs scored), its sources, mean and p5; and the paired difference
    experiment - baseline of the mean over the sources of the *baseline's* worst group (so both are measured
    on the same sources, named in the header), with the 95 % bootstrap interval over mixtures
    (``paired_comparison``). ``NOT_RECORDED`` alone when no experiment recorded the grouping.

    ``experiments``: the scored experiments (``Scored``); ``over_seeds``: the variants (``SeedRuns``): a group's
    mean and p5 as mean ± std over the seeds, the worst the lowest mean over the seeds, and the difference seed
    k against seed k with the interval over seeds and mixtures and the mixtures-only one
    (``across_seeds.paired``, i.e. ``stats.paired_over_seeds``, on the group's sources).
    """
    if over_seeds:
        per_variant = {id(v): _seed_groups(v, grouping) for v in experiments}
    else:
        per_variant = {id(e): group_statistics(e.rows, grouping) for e in experiments}
    if all(found is None for found in per_variant.values()):
        return f"{GROUPINGS[grouping].capitalize()}: {NOT_RECORDED}."
    base_groups = per_variant.get(id(baseline)) if baseline is not None else None
    if baseline is None:
        target, labels, against = None, None, "no baseline"
    elif not base_groups:
        target, labels, against = None, None, f"{_md(baseline.name)}: {NOT_RECORDED}"
    else:
        target = worst(base_groups, _seed_mean) if over_seeds else worst(base_groups)
        base_run = baseline.runs[0] if over_seeds else baseline
        labels = source_labels(base_run.rows, grouping)
        against = f"{_md(baseline.name)}'s worst group, {_md(target)}"
    if over_seeds:
        lines = [
            f"| variant | seeds | worst group | n | mean (dB) | p5 (dB) | difference on {against} (dB) | "
            f"95 % interval over seeds and mixtures | mixtures only |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
    else:
        lines = [
            f"| experiment | worst group | n | mean (dB) | p5 (dB) | difference on {against} (dB) | "
            f"95 % bootstrap interval |",
            "|---|---|---|---|---|---|---|",
        ]
    for exp in experiments:
        found = per_variant[id(exp)]
        seeds = f"{len(exp.runs)} | " if over_seeds else ""
        if not found:
            lines.append(
                f"| {_md(exp.name)} | {seeds}{NOT_RECORDED} | - | - | - | - | -" + (" | - |" if over_seeds else " |")
            )
            continue
        if over_seeds:
            name = worst(found, _seed_mean)
            n = found[name][0].n
            mean = str(stats.spread(g.mean for g in found[name]))
            p5 = str(stats.spread(g.p5 for g in found[name]))
        else:
            name = worst(found)
            n, mean, p5 = found[name].n, f"{found[name].mean:.2f}", f"{found[name].p5:.2f}"
        head = f"| {_md(exp.name)} | {seeds}{_md(name)} | {n} | {mean} | {p5} | "
        if target is None or exp is baseline:
            lines.append(head + ("baseline" if exp is baseline else "-") + " | -" + (" | - |" if over_seeds else " |"))
        elif over_seeds:
            result = across_seeds.paired(exp, baseline, _restricted(labels, target))
            if result is None:
                lines.append(head + "no source in common | - | - |")
                continue
            interval = "-" if result.seeds < 2 else f"[{result.low:+.2f}, {result.high:+.2f}]"
            lines.append(
                head + f"{result.mean_difference:+.2f} | {interval} | "
                f"[{result.mixtures_low:+.2f}, {result.mixtures_high:+.2f}] |"
            )
        else:
            values = _restricted(labels, target)
            paired = paired_comparison(values(exp.rows), values(baseline.rows))
            if paired is None:
                lines.append(head + "no source in common | - |")
                continue
            lines.append(head + f"{paired.mean_difference:+.2f} | [{paired.low:+.2f}, {paired.high:+.2f}] |")
    return "\n".join(lines)


def group_table(experiments: Sequence[Any], grouping: str, *, over_seeds: bool = False) -> str:
    """Every group of ``grouping`` (a row, in ``_order``) with its sources and, per experiment (a column),
    ``mean / p5`` of SI-SDRi in dB, the experiment's worst group in bold; ``-`` where an experiment has no
    source of the group; ``NOT_RECORDED`` alone when no experiment recorded the grouping.

    ``experiments``: the scored experiments (``Scored``); ``over_seeds``: the variants (``SeedRuns``), each
    value as mean ± std over the seeds.
    """
    if over_seeds:
        found = {id(v): _seed_groups(v, grouping) for v in experiments}
    else:
        found = {id(e): group_statistics(e.rows, grouping) for e in experiments}
    if all(groups is None for groups in found.values()):
        return f"{GROUPINGS[grouping].capitalize()}: {NOT_RECORDED}."
    names = _order({name for groups in found.values() if groups for name in groups}, grouping)
    first = {"class": "fine class", "group": "group", "input_snr": "input SNR"}[grouping]
    lines = [
        f"| {first} | n | " + " | ".join(f"{_md(exp.name)}: mean / p5" for exp in experiments) + " |",
        "|---|---|" + "---|" * len(experiments),
    ]
    worst_of = {
        key: (worst(groups, _seed_mean) if over_seeds else worst(groups)) if groups else None
        for key, groups in found.items()
    }
    for name in names:
        counts, cells = [], []
        for exp in experiments:
            groups = found[id(exp)]
            if groups is None:
                cells.append(NOT_RECORDED)
                continue
            if name not in groups:
                cells.append("-")
                continue
            if over_seeds:
                counts.append(groups[name][0].n)
                cell = f"{stats.spread(g.mean for g in groups[name])} / {stats.spread(g.p5 for g in groups[name])}"
            else:
                counts.append(groups[name].n)
                cell = f"{groups[name].mean:.2f} / {groups[name].p5:.2f}"
            cells.append(f"**{cell}**" if worst_of[id(exp)] == name else cell)
        n = "/".join(str(c) for c in dict.fromkeys(counts)) or "-"
        lines.append(f"| {_md(name)} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
