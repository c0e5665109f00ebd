"""The report's part across training seeds: statistics as mean ± std over seeds, paired differences with
intervals over seeds and mixtures, and their tables (the figures are drawn by ``ugr.report.figures``).

Stage 4 hands the report the folders of ``ugr.pipeline.variants``; those named
``<variant>_seed<k>`` are the seeds of one variant (their configs agree but
for ``training.seed``, which must be k). Per test list, with any variant run
at several seeds:

* every statistic of the distribution table as mean ± std across the seeds
  (under ``scoring.protocol: epochs`` each seed's value is its mean across the
  scored epochs);
* each variant against the baseline variant (the first with uniform
  weighting), seed k against seed k (a baseline of one run stands against
  every seed): the mean per-source difference, its 95 % interval when seeds
  and mixtures are resampled (``ugr.report.stats``), the mixtures-only interval for
  comparison, and how many seeds agree in sign;
* the per-class means across seeds;
* convergence: the final validation SI-SDRi and the steps each seed needed to
  reach 90 % of the baseline's final value and the value itself;
* figures (``ugr.report.figures``): the test SI-SDRi densities per variant (seeds pooled, the paper's
  Figure 1 over every swept value), validation curves per variant (mean and
  the band of ± one std across seeds), and for a sweep the operating point:
  mean against p5, p1 and std per swept value, with error bars across seeds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ugr.report import stats
from ugr.pipeline.variants import SEED_KEY, seed_group

SPREAD_COLUMNS = ("mean", "std", "p1", "p5", "p10", "p25", "p50", "p75", "p90", "p95", "p99")
OPERATING_POINT = "operating_point.png"
REACH_SHARE = 0.9


@dataclass
class SeedRuns:
    """The scored runs of one variant, one per training seed (``Scored`` of ``ugr.report.report``)."""

    name: str
    runs: List[Any]
    seeds: List[Optional[int]]

    @property
    def is_uniform(self) -> bool:
        return self.runs[0].is_uniform

    @property
    def weighting(self) -> str:
        return self.runs[0].weighting

    def spread(self, key: str, coarse: Optional[str] = None) -> Optional[stats.Spread]:
        """A statistic of the test table across the seeds (of one coarse class); None where a run lacks it."""
        values = []
        for run in self.runs:
            table = run.stats if coarse is None else run.stats["per_coarse"].get(coarse)
            if table is None or key not in table:
                return None
            values.append(table[key])
        return stats.spread(values)


def nested(config: Optional[Dict], keys: Sequence[str]) -> Any:
    node: Any = config or {}
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def seed_groups(group: Sequence[Any]) -> List[SeedRuns]:
    """The runs of a test list by variant, in the order given; a ``_seed<k>`` folder must be trained at seed k."""
    found: Dict[str, SeedRuns] = {}
    for run in group:
        name, seed = seed_group(run.name)
        trained = nested(run.config, SEED_KEY)
        if seed is not None and trained is not None and trained != seed:
            raise ValueError(f"{run.name}: named as training seed {seed}, but its config.yaml has training.seed "
                             f"{trained}; rename the folder or leave it out of --experiments")
        entry = found.setdefault(name, SeedRuns(name, [], []))
        if seed is not None and seed in entry.seeds:
            raise ValueError(f"{run.name}: seed {seed} of {name} is listed twice in --experiments")
        entry.runs.append(run)
        entry.seeds.append(seed)
    return list(found.values())


def has_seeds(variants: Sequence[SeedRuns]) -> bool:
    return any(seed is not None for variant in variants for seed in variant.seeds)


# ----------------------------------------------------------------------------- tables


def distribution_table(variants: Sequence[SeedRuns]) -> str:
    lines = ["| variant | weighting | seeds | " + " | ".join(SPREAD_COLUMNS) + " |",
             "|" + "---|" * (len(SPREAD_COLUMNS) + 3)]
    for variant in variants:
        cells = [str(variant.spread(key) or "-") for key in SPREAD_COLUMNS]
        lines.append(f"| {variant.name} | {variant.weighting} | {len(variant.runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pairs(variant: SeedRuns, baseline: SeedRuns) -> List[Tuple[Any, Any]]:
    """Seed k against the baseline's seed k; a baseline of one run against every seed."""
    if len(baseline.runs) == 1:
        return [(run, baseline.runs[0]) for run in variant.runs]
    base = dict(zip(baseline.seeds, baseline.runs))
    return [(run, base[seed]) for seed, run in zip(variant.seeds, variant.runs) if seed in base]


def paired(variant: SeedRuns, baseline: SeedRuns, per_source) -> Optional[stats.SeedsPaired]:
    """The variant against the baseline over its paired seeds (``per_source``: ugr.report.report's mapping)."""
    differences = []
    for run, base in _pairs(variant, baseline):
        mine, theirs = per_source(run.rows), per_source(base.rows)
        differences.append({key: mine[key] - theirs[key] for key in set(mine) & set(theirs)})
    return stats.paired_over_seeds(differences) if differences else None


def paired_table(variants: Sequence[SeedRuns], baseline: SeedRuns, per_source) -> str:
    lines = ["| variant | seeds paired | mixtures | mean difference (dB) | 95 % interval, seeds and mixtures | "
             "mixtures only | seeds agreeing in sign | per seed |", "|---|---|---|---|---|---|---|---|"]
    for variant in variants:
        if variant is baseline:
            continue
        result = paired(variant, baseline, per_source)
        if result is None:
            lines.append(f"| {variant.name} | 0 | no seed or (mixture, source) in common with {baseline.name} | "
                         "- | - | - | - | - |")
            continue
        lines.append(f"| {variant.name} | {result.seeds} | {result.mixtures} | {result.mean_difference:+.2f} | "
                     f"[{result.low:+.2f}, {result.high:+.2f}] | [{result.mixtures_low:+.2f}, "
                     f"{result.mixtures_high:+.2f}] | {result.agree} of {result.seeds} | "
                     + ", ".join(f"{value:+.2f}" for value in result.per_seed) + " |")
    return "\n".join(lines)


def class_table(variants: Sequence[SeedRuns]) -> str:
    classes = sorted({c for variant in variants for run in variant.runs for c in run.stats["per_coarse"]})
    lines = ["| variant | seeds | " + " | ".join(classes) + " | combined |", "|---|---|" + "---|" * (len(classes) + 1)]
    for variant in variants:
        cells = [str(variant.spread("mean", c) or "-") for c in classes] + [str(variant.spread("mean") or "-")]
        lines.append(f"| {variant.name} | {len(variant.runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _steps_to(curve, target: float) -> Optional[int]:
    return next((point.steps for point in curve if point.value >= target), None)


def _reach_cell(steps: Sequence[Optional[int]]) -> str:
    reached = [s for s in steps if s is not None]
    if not reached:
        return f"not reached (0 of {len(steps)})"
    text = f"{np.mean(reached):.0f}" + (f" ± {np.std(reached, ddof=1):.0f}" if len(reached) > 1 else "")
    return f"{text} ({len(reached)} of {len(steps)})"


def baseline_final(baseline: Optional[SeedRuns]) -> Optional[float]:
    """The baseline's final validation SI-SDRi, the mean over its seeds; None without validations."""
    if baseline is None or not all(run.curve for run in baseline.runs):
        return None
    return float(np.mean([run.curve[-1].value for run in baseline.runs]))


def convergence_table(variants: Sequence[SeedRuns], baseline: Optional[SeedRuns]) -> str:
    final = baseline_final(baseline)
    head = ("| variant | seeds | final validation SI-SDRi (dB) | "
            + (f"steps to {100 * REACH_SHARE:.0f} % of it ({REACH_SHARE * final:.2f} dB) | steps to "
               f"{baseline.name}'s final ({final:.2f} dB) |" if final is not None else "steps to reach | - |"))
    lines = [head, "|---|---|---|---|---|"]
    for variant in variants:
        curves = [run.curve for run in variant.runs]
        if not all(curves):
            lines.append(f"| {variant.name} | {len(curves)} | no validation in the logs | - | - |")
            continue
        last = stats.spread(curve[-1].value for curve in curves)
        if final is None:
            lines.append(f"| {variant.name} | {len(curves)} | {last} | - | - |")
            continue
        lines.append(f"| {variant.name} | {len(curves)} | {last} | "
                     f"{_reach_cell([_steps_to(c, REACH_SHARE * final) for c in curves])} | "
                     f"{_reach_cell([_steps_to(c, final) for c in curves])} |")
    return "\n".join(lines)
