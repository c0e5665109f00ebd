"""The report's part across training seeds: the runs grouped by variant (``SeedRuns``), statistics as mean ± std
over seeds, paired differences with intervals over seeds and mixtures, the baseline's final validation (tables:
``ugr.report.tables`` with ``over_seeds=True``; figures: ``ugr.report.figures``).

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
* early progress, where the claim of curriculum lives: each seed's early area
  (``early_area``: the mean validation SI-SDRi over the first half of its
  steps), its difference with the baseline's seed (``early_paired``, a t
  interval over the seeds), the steps to fixed shares of the baseline's final
  value, and the ESS of the weights over those steps (``early_ess``);
* per coarse class, each variant against the baseline on that class's sources
  (``paired`` with ``class_values``): where class bias acts;
* figures (``ugr.report.figures``): the test SI-SDRi densities per variant (seeds pooled, the paper's
  Figure 1 over every swept value), validation curves per variant (mean and
  the band of ± one std across seeds), and for a sweep the operating point:
  mean against p5, p1 and std per swept value, with error bars across seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ugr.pipeline.variants import SEED_KEY, seed_group
from ugr.report import stats

OPERATING_POINT = "operating_point.png"
REACH_SHARE = 0.9
EARLY_SHARE = 0.5  # the early window: the first half of a run's steps
LEVELS = (0.5, 0.75)  # early progress: steps to these shares of the baseline's final validation SI-SDRi


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
            raise ValueError(
                f"{run.name}: named as training seed {seed}, but its config.yaml has training.seed "
                f"{trained}; rename the folder or leave it out of --experiments"
            )
        entry = found.setdefault(name, SeedRuns(name, [], []))
        if seed is not None and seed in entry.seeds:
            raise ValueError(f"{run.name}: seed {seed} of {name} is listed twice in --experiments")
        entry.runs.append(run)
        entry.seeds.append(seed)
    return list(found.values())


def has_seeds(variants: Sequence[SeedRuns]) -> bool:
    return any(seed is not None for variant in variants for seed in variant.seeds)


# ----------------------------------------------------------------------------- paired seeds and the baseline


def _pairs(variant: SeedRuns, baseline: SeedRuns) -> List[Tuple[Any, Any]]:
    """Seed k against the baseline's seed k; a baseline of one run against every seed."""
    if len(baseline.runs) == 1:
        return [(run, baseline.runs[0]) for run in variant.runs]
    base = dict(zip(baseline.seeds, baseline.runs))
    return [(run, base[seed]) for seed, run in zip(variant.seeds, variant.runs) if seed in base]


def paired(variant: SeedRuns, baseline: SeedRuns, per_source) -> Optional[stats.SeedsPaired]:
    """The variant against the baseline over its paired seeds (``per_source``: ugr.report.tables' mapping)."""
    differences = []
    for run, base in _pairs(variant, baseline):
        mine, theirs = per_source(run.rows), per_source(base.rows)
        differences.append({key: mine[key] - theirs[key] for key in set(mine) & set(theirs)})
    return stats.paired_over_seeds(differences) if differences else None


def baseline_final(baseline: Optional[SeedRuns]) -> Optional[float]:
    """The baseline's final validation SI-SDRi, the mean over its seeds; None without validations."""
    if baseline is None or not all(run.curve for run in baseline.runs):
        return None
    return float(np.mean([run.curve[-1].value for run in baseline.runs]))


def class_values(coarse: str, per_source):
    """``per_source`` (ugr.report.tables') restricted to the sources of one coarse class."""
    return lambda rows: per_source([row for row in rows if row.get("coarse") == coarse])


# ----------------------------------------------------------------------------- early progress


def early_window(curve: Sequence[Any]) -> float:
    """The last step of the early window of a run whose validations are ``curve`` (``EARLY_SHARE`` x its last)."""
    return EARLY_SHARE * curve[-1].steps


def early_area(curve: Sequence[Any]) -> Optional[float]:
    """The mean validation SI-SDRi over the validations of the first ``EARLY_SHARE`` of the run's steps (those
    at or before ``EARLY_SHARE`` x its last step): the area under the early validation curve over its width,
    for validations at even steps. None without a validation in that window.

    ``curve``: the validations in order (``ugr.report.report.Point``: ``.steps``, ``.value``)."""
    if not curve:
        return None
    values = [point.value for point in curve if point.steps <= early_window(curve)]
    return float(np.mean(values)) if values else None


def weights_per_batch(config: Optional[Dict]) -> Optional[int]:
    """How many weights a step's pmf spans: the batch's sources (``granularity: source``) or its mixtures."""
    batch = nested(config, ("training", "batch_size"))
    sources = nested(config, ("model", "n_src"))
    if batch is None or sources is None:
        return None
    return batch * (sources if nested(config, ("weighting", "granularity")) != "mixture" else 1)


def early_ess(run: Any) -> Optional[float]:
    """The run's mean ESS over the steps of the early window (``run.ess``: the ESS by step), as a share of the
    weights of a step (1: uniform); None without both in the logs and the config."""
    n = weights_per_batch(run.config)
    if not run.curve or not run.ess or not n:
        return None
    values = [ess for step, ess in run.ess.items() if step <= early_window(run.curve)]
    return float(np.mean(values)) / n if values else None


def early_paired(variant: SeedRuns, baseline: SeedRuns) -> Optional[stats.SeedsDifference]:
    """The variant's early area against the baseline's, seed k against seed k, with a t interval over the seeds
    (one fixed validation list: the mixtures add no sampling of their own); None without a pair that has both."""
    differences = []
    for run, base in _pairs(variant, baseline):
        mine, theirs = early_area(run.curve), early_area(base.curve)
        if mine is not None and theirs is not None:
            differences.append(mine - theirs)
    return stats.difference_over_seeds(differences) if differences else None
