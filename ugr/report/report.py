"""Stage 4: the paper-style report of every scored experiment.

Reads ``EXP_ROOT/<experiment>/scores/`` (stage 3) and the training logs, and
writes ``EXP_ROOT/report.md`` and its figures under ``EXP_ROOT/figures/``.
Experiments are grouped by the test list they were scored on (the
fingerprint of its contents: another data folder or other data settings make
another group); in each group the first experiment with uniform weighting is
the baseline. Per group:

* a distribution table per metric (n, mean, std, p1 ... p99 per estimated
  source; the paper's Table 1); under ``scoring.protocol: epochs`` each cell
  is the mean ± the std across the scored epochs;
* the paired comparison of every experiment with the baseline: the mean
  per-source SI-SDRi difference over the same (mixture, source) pairs (each
  source's mean over the epochs under ``epochs``), its 95 % bootstrap
  interval (resampling mixtures, seeded: the report is reproducible) and the
  share of sources improved;
* the per-class table: mean SI-SDRi per coarse class and combined, ± the std
  across epochs under ``epochs``, else the standard error of the mean (a
  column says which);
* convergence: each run's final validation SI-SDRi and the training steps it
  needed to first reach the baseline's final validation SI-SDRi;
* the worst group: per grouping of the sources (fine class, group such as the
  speaker, input-SNR bin) each run's worst group and its paired difference
  with the baseline on the baseline's worst group, and the mean and p5 of
  every fine class and SNR bin (``tables.worst_group_table``,
  ``tables.group_table``; across seeds with training seeds);
* figures: the SI-SDRi density (smoothed, and both tails as cumulative
  shares, on log axes: the tails are where robust weighting acts; the
  paper's Figure 1), mean against 5th percentile with error bars (std across
  epochs under ``epochs``, else bootstrap std), validation SI-SDRi against
  training steps.

With one test list the figures are ``figures/<figure>.png``; with several,
``figures/<figure>_<fingerprint>.png``. report.md names them all. The tables
are ``ugr.report.tables``' (one run per row, and with training seeds across
them: ``ugr.report.across_seeds``), the figures ``ugr.report.figures``'.

Every experiment name, label and recorded value goes through ``ugr.report.markdown``
(no name adds a table column, forms a link or reaches the page as HTML).

``python -m ugr.report`` then writes ``EXP_ROOT/RESULTS.md`` (``ugr.report.results``): the
compact results to publish, titled by ``--recipe`` with the ``--command`` that
reproduces them, the environment and each stage's wall time.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence

import numpy as np

from ugr.core.weighting import Uniform
from ugr.data.manifest import SPEECH
from ugr.io.atomic import atomic_write_text
from ugr.pipeline import variants as variants_lib
from ugr.pipeline.experiment_dir import ExperimentDir
from ugr.pipeline.score import MAIN_METRIC, STATS_FILE
from ugr.report import across_seeds, stats, tables
from ugr.report.markdown import code_span, markdown_cell

FIGURES = {"density": "si_sdri_density.png", "convergence": "valid_si_sdri.png", "tradeoff": "mean_vs_p5.png"}
# Drawn only for runs at several seeds (--seeds) and for a sweep (--sweep):
SEED_FIGURES = {
    "seeds_convergence": "valid_si_sdri_seeds.png",
    "operating_point": across_seeds.OPERATING_POINT,
    "class_paired": "class_paired.png",
    "sweep_values": "sweep_values.png",
}
ESS_COLUMN = "train/ess_step"  # the CSV column of each step's ESS (ugr.integrations.lightning logs train/ess)
METRIC_TITLES = {
    "si_sdri": "SI-SDRi (dB)",
    "sdri": "SDRi, bss_eval (dB)",
    "stoi": "STOI, speech sources only",
    "pesq": "PESQ (MOS-LQO), speech sources only",
}


class Point(NamedTuple):
    """One validation: the epoch (from 1), the optimizer steps done, the mean validation SI-SDRi (dB)."""

    epoch: int
    steps: int
    value: float


@dataclass
class Scored:
    """One scored experiment as stage 4 reads it."""

    name: str
    stats: Dict
    rows: List[Dict[str, str]]
    weighting: str
    is_uniform: bool
    curve: List[Point]
    config: Optional[Dict] = None  # the resolved config (ExperimentConfig.record); None for a folder without one
    ess: Dict[int, float] = field(default_factory=dict)  # the ESS of the training steps logged (ess_by_step)

    @property
    def by_epochs(self) -> bool:
        return "across_epochs_std" in self.stats

    @property
    def test_list(self) -> str:
        """The identity of the test list scored: the fingerprint of its contents (the path for older scores)."""
        return self.stats.get("test_list_fingerprint") or self.stats.get("test_list", "?")


# ----------------------------------------------------------------------------- reading


def scored_experiments(exp_root: Path) -> List[str]:
    """Experiments under ``exp_root`` whose scoring finished, by name."""
    return sorted(p.parent.parent.name for p in exp_root.glob(f"*/scores/{STATS_FILE}"))


def load_stats(exp_dir: Path) -> Dict:
    path = exp_dir / "scores" / STATS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not scored yet; run stage 3 for {exp_dir.name}")
    return json.loads(path.read_text())


def load_rows(exp_dir: Path) -> List[Dict[str, str]]:
    with open(exp_dir / "scores" / "test.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _log_rows(exp_dir: Path) -> Iterator[Dict[str, str]]:
    """The rows of every launch's CSV log, launch by launch (a resumed launch after the one it resumes)."""
    versions = sorted((exp_dir / "csv").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    for path in versions:
        with open(path, newline="") as handle:
            yield from csv.DictReader(handle)


def validation_curve(exp_dir: Path) -> List[Point]:
    """Every epoch's validation from every launch's CSV log, by epoch; a resumed launch wins ties.

    Lightning logs a validation at the step index of the batch it follows
    (0-based), so the optimizer steps done are that index + 1.
    """
    by_epoch: Dict[int, Point] = {}
    for row in _log_rows(exp_dir):
        if row.get("val/si_sdri"):
            epoch = int(row["epoch"]) + 1
            by_epoch[epoch] = Point(epoch, int(row["step"]) + 1, float(row["val/si_sdri"]))
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def ess_by_step(exp_dir: Path) -> Dict[int, float]:
    """The ESS of each logged step's pmf (``train/ess_step``), by the optimizer steps done after it (from 1); a
    resumed launch wins ties. Empty when the logs hold none."""
    return {int(row["step"]) + 1: float(row[ESS_COLUMN]) for row in _log_rows(exp_dir) if row.get(ESS_COLUMN)}


def load_scored(exp_dir: Path) -> Scored:
    """The scored experiment in ``exp_dir`` for the tables: its scores, rows, weighting, validation curve."""
    folder = ExperimentDir(exp_dir)
    config = folder.config() if folder.config_file.is_file() else None  # a folder without one: labelled ?
    weighting = config.weighting if config is not None else None
    label = "?" if weighting is None else weighting.label()
    return Scored(
        exp_dir.name,
        load_stats(exp_dir),
        load_rows(exp_dir),
        label,
        isinstance(weighting, Uniform),
        validation_curve(exp_dir),
        None if config is None else config.record,
        ess_by_step(exp_dir),
    )


def pooled(rows: List[Dict[str, str]], metric: str = MAIN_METRIC) -> np.ndarray:
    """Every row's value (all epochs pooled), where the metric applies."""
    return np.array([float(row[metric]) for row in rows if row.get(metric)])


# ----------------------------------------------------------------------------- figures


def tradeoff_points(exp: Scored) -> tuple[float, float, float, float]:
    """(p5, mean, p5 error, mean error): errors the std across epochs, else bootstrap std over mixtures."""
    s = exp.stats
    if exp.by_epochs:
        spread = s["across_epochs_std"]
        return s["p5"], s["mean"], spread["p5"], spread["mean"]
    mean_err, p5_err = stats.bootstrap_std(tables.per_source(exp.rows))
    return s["p5"], s["mean"], p5_err, mean_err


# ----------------------------------------------------------------------------- the report


def _seeds_parts(variants: List[across_seeds.SeedRuns], exp_root: Path, figures: Dict[str, str]) -> List[str]:
    """The section across training seeds (``ugr.report.across_seeds``)."""
    from ugr.report import figures as figures_lib  # imported here: matplotlib, which the tables alone do not need

    baseline = next((variant for variant in variants if variant.is_uniform), None)
    final = across_seeds.baseline_final(baseline)
    figures_lib.plot_validation(
        variants, (baseline.name, final) if final is not None else None, exp_root / figures["seeds_convergence"]
    )
    if baseline is not None and figures_lib.plot_class_paired(variants, baseline, exp_root / figures["class_paired"]):
        class_figure = [
            f"Per class (`{figures['class_paired']}`): each variant's paired difference against "
            f"{markdown_cell(baseline.name)} on each coarse class, with the interval over seeds and mixtures.",
            f"![per-class paired differences]({figures['class_paired']})",
        ]
    else:
        class_figure = []
    parts = [
        "### Across training seeds",
        "Each variant's runs at its training seeds (`--seeds`; folders `<variant>_seed<k>`). A cell is the "
        "mean of the statistic over the seeds ± its std across them (ddof 1); under `protocol: epochs` each "
        "seed's value is its mean over the scored epochs.",
        f"#### {METRIC_TITLES[MAIN_METRIC]} per estimated source, across seeds",
        tables.distribution_table(variants, over_seeds=True),
    ]
    if baseline is not None and len(variants) > 1:
        parts += [
            f"#### Paired comparison against {markdown_cell(baseline.name)}, across seeds (SI-SDRi)",
            f"Difference = variant - {markdown_cell(baseline.name)} per (mixture, source), seed k against "
            f"seed k (a baseline "
            f"of one run against every seed). Interval over seeds and mixtures: Student's t on the per-seed "
            f"mean differences, its standard error adding the seeds' spread and the mixtures' sampling error "
            f"(Welch-Satterthwaite degrees of freedom, seeds - 1 where the seeds dominate: valid at 3 seeds). "
            f"Mixtures only: {stats.RESAMPLES} bootstrap resamples of the mixtures (seed {stats.SEED}), every "
            f"seed kept, the interval that ignores how the seeds disagree. What the seeds show: the sign of "
            f"the difference where the interval over seeds excludes 0, else the seeds that would detect the "
            f"observed difference at 80 % power given the seeds' spread. Seeds agreeing: those whose own "
            f"mean difference has the sign of the overall one.",
            tables.paired_table(variants, baseline, over_seeds=True),
        ]
    parts += [
        "#### Per coarse class (mean SI-SDRi, dB), across seeds",
        tables.class_table(variants, over_seeds=True),
        *(class_paired_parts(variants, baseline) if baseline is not None and len(variants) > 1 else []),
        *class_figure,
        "#### Convergence across seeds",
        f"Final validation SI-SDRi (mean ± std over seeds) and, per seed, the training steps to the first "
        f"validation at or above {100 * across_seeds.REACH_SHARE:.0f} % of the baseline's final value "
        f"(its mean over seeds) and at or above that value: mean ± std over the seeds that reached it.",
        tables.convergence_table(variants, baseline, over_seeds=True),
        *early_progress_parts(variants, baseline),
    ]
    return parts


def early_progress_parts(
    variants: List[across_seeds.SeedRuns], baseline: Optional[across_seeds.SeedRuns], level: str = "####"
) -> List[str]:
    """The "Early progress" subsection across seeds: where curriculum's claim (faster early progress) lives."""
    base = markdown_cell(baseline.name) if baseline is not None else "the baseline"
    shares = " and ".join(f"{100 * share:.0f} %" for share in across_seeds.LEVELS)
    return [
        f"{level} Early progress across seeds",
        f"Early area: the mean validation SI-SDRi over the validations in the first "
        f"{100 * across_seeds.EARLY_SHARE:.0f} % of a run's steps (the area under the early validation "
        f"curve over its width), mean ± std over the seeds. Difference: variant - {base}, seed k against seed "
        f"k, with the paired t interval over the seeds (seeds - 1 degrees of freedom; every run is validated "
        f"on one fixed list, so the seeds are the sampling); what the seeds show as in the paired comparison. "
        f"Steps to {shares} of {base}'s final validation SI-SDRi (mean over its seeds): mean ± std over the "
        f"seeds that reached it. Early ESS: the mean effective sample size of the weights over those steps, as a "
        f"share of the weights a step spans (1: uniform).",
        tables.early_progress_table(variants, baseline),
    ]


def class_paired_parts(
    variants: List[across_seeds.SeedRuns], baseline: across_seeds.SeedRuns, level: str = "####"
) -> List[str]:
    """The per-class paired comparison across seeds: where class bias and group DRO act (nothing with one class:
    the paired comparison says it all)."""
    if len({row.get("coarse") for variant in variants for run in variant.runs for row in run.rows}) < 2:
        return []
    base = markdown_cell(baseline.name)
    return [
        f"{level} Per coarse class, paired against {base} across seeds (SI-SDRi)",
        f"Difference = variant - {base} on the sources of one coarse class, per (mixture, source), seed k against "
        f"seed k; the interval over seeds and mixtures and what the seeds show as in the paired comparison.",
        tables.class_paired_table(variants, baseline),
    ]


def worst_group_parts(
    experiments: Sequence, baseline, *, over_seeds: bool = False, full: bool = True, level: str = "###"
) -> List[str]:
    """The "Worst group" section: per grouping its worst-group table and, with ``full``, the per-group table of
    the fine classes and of the input-SNR bins. ``experiments``: the runs (``Scored``), or with ``over_seeds``
    the variants (``across_seeds.SeedRuns``)."""
    base = markdown_cell(baseline.name) if baseline is not None else "the baseline"
    edges = ", ".join(f"{edge:g}" for edge in tables.SNR_EDGES)
    if over_seeds:
        interval = (
            f"seed k against seed k, the interval over seeds and mixtures (Student's t, as in the paired "
            f"comparison across seeds) and the mixtures-only bootstrap ({stats.RESAMPLES} resamples)"
        )
        cells = "a cell: the mean over the seeds ± the std across them"
    else:
        interval = f"95 % bootstrap interval: {stats.RESAMPLES} resamples of the mixtures (seed {stats.SEED})"
        cells = "one run per row"
    parts = [
        f"{level} Worst group (SI-SDRi)",
        f"The sources grouped three ways: by fine class, by group (the manifest's `group`: the speaker, the "
        f"category) and by input SNR (the SI-SDR of the mixture against the source, bins at {edges} dB, a "
        f"source at an edge in the bin above it). A source's value is its SI-SDRi (its mean over the "
        f"epochs under `protocol: epochs`). Worst group: the group of lowest mean; n its sources, p5 "
        f"their 5th percentile; {cells}. Difference: experiment - {base} on the sources of {base}'s "
        f"worst group (the same sources for every row, named in the header); {interval}.",
    ]
    for grouping, title in tables.GROUPINGS.items():
        parts += [
            f"{level}# By {title}",
            tables.worst_group_table(experiments, baseline, grouping, over_seeds=over_seeds),
        ]
        if full and grouping != "group":
            parts += [
                f"Every {'bin' if grouping == 'input_snr' else 'fine class'}: mean / p5 (dB), each "
                f"experiment's worst in bold.",
                tables.group_table(experiments, grouping, over_seeds=over_seeds),
            ]
    return parts


def _group_section(
    group: List[Scored], exp_root: Path, suffix: str, axes: Sequence[variants_lib.SweepAxis] = ()
) -> str:
    from ugr.report import figures as figures_lib  # imported here: matplotlib, which the tables alone do not need

    by_name = {exp.name: exp.stats for exp in group}
    weightings = {exp.name: exp.weighting for exp in group}
    baseline = next((exp for exp in group if exp.is_uniform), None)
    first = group[0].stats
    list_path = Path(first.get("test_list", "?"))
    try:
        shown = list_path.relative_to(exp_root.resolve().parent)
    except ValueError:
        shown = list_path
    figures = {key: f"figures/{Path(name).stem}{suffix}.png" for key, name in {**FIGURES, **SEED_FIGURES}.items()}
    variants = across_seeds.seed_groups(group)
    seeded = across_seeds.has_seeds(variants)
    if seeded:  # one density per variant, its seeds pooled: Figure 1 over every swept value
        figures_lib.plot_density(
            {v.name: np.concatenate([pooled(run.rows) for run in v.runs]) for v in variants},
            exp_root / figures["density"],
        )
    else:
        figures_lib.plot_density({exp.name: pooled(exp.rows) for exp in group}, exp_root / figures["density"])
    swept = figures_lib.plot_operating_point(variants, axes, exp_root / figures["operating_point"])
    by_value = swept and figures_lib.plot_sweep_values(variants, axes, exp_root / figures["sweep_values"])
    target = (baseline.name, baseline.curve[-1].value) if baseline is not None and baseline.curve else None
    figures_lib.plot_convergence({exp.name: exp.curve for exp in group}, target, exp_root / figures["convergence"])
    figures_lib.plot_tradeoff({exp.name: tradeoff_points(exp) for exp in group}, exp_root / figures["tradeoff"])

    protocols = sorted({"epochs" if exp.by_epochs else "weights" for exp in group})
    notes = []
    if "epochs" in protocols:
        notes.append(
            "Experiments scored with `protocol: epochs`: every statistic is the mean across the scored "
            "epochs ± its std across them."
        )
    if "weights" in protocols:
        notes.append(
            "Experiments scored with `protocol: weights`: the statistics of one model, the average of "
            "the weights of the last epochs."
        )
    parts = [f"## Test list {code_span(shown)} (contents {markdown_cell(group[0].test_list[:16])})", " ".join(notes)]
    parts += [f"### {METRIC_TITLES[MAIN_METRIC]} per estimated source", tables.distribution_table(by_name, weightings)]
    for metric in METRIC_TITLES:
        found = [s["metrics"][metric]["n"] for s in by_name.values() if metric in s.get("metrics", {})]
        if metric == MAIN_METRIC or not found:
            continue
        parts += [
            f"### {METRIC_TITLES[metric]}",
            tables.distribution_table(by_name, weightings, metric)
            if any(found)
            else f"Scored, but no test source is one it applies to (coarse class `{SPEECH}`).",
        ]
    if baseline is None:
        parts += [
            "### Against the baseline",
            "No experiment with uniform weighting was scored on this test list: "
            "no paired comparison, no steps to a baseline.",
        ]
    elif len(group) == 1:
        parts += [
            f"### Paired comparison against {markdown_cell(baseline.name)} (SI-SDRi)",
            "No other experiment was scored on this test list.",
        ]
    elif seeded:  # two seeds of one variant are no two methods: the comparisons are across seeds, below
        parts += [
            f"### Paired comparison against {markdown_cell(baseline.name)} (SI-SDRi)",
            "These runs are training seeds of their variants: each variant is compared with the baseline "
            "seed k against seed k, with an interval over seeds, in *Across training seeds* below.",
        ]
    else:
        parts += [
            f"### Paired comparison against {markdown_cell(baseline.name)} (SI-SDRi)",
            f"Difference = experiment - {markdown_cell(baseline.name)} per (mixture, source); under "
            f"`protocol: epochs` a "
            f"source's value is its mean over the epochs. Interval: {stats.RESAMPLES} bootstrap "
            f"resamples of the mixtures (seed {stats.SEED}). Improved: the share of sources whose "
            f"SI-SDRi is higher than the baseline's.",
            tables.paired_table(group, baseline),
        ]
    parts += ["### Per coarse class (mean SI-SDRi, dB)", tables.class_table(by_name)]
    parts += [
        "### Convergence (validation SI-SDRi against training steps)",
        "Steps: optimizer steps done at the validation. Steps to reach: the first validation at or above "
        "the baseline's final one.",
        tables.convergence_table(group, baseline),
    ]
    if seeded:
        parts += worst_group_parts(variants, next((v for v in variants if v.is_uniform), None), over_seeds=True)
    else:
        parts += worst_group_parts(group, baseline)
    if seeded:
        parts += _seeds_parts(variants, exp_root, figures)
    listed = [
        f"- `{figures['density']}`: test SI-SDRi, smoothed density and both tails (share of sources below / "
        f"above x) on log axes, all scored epochs pooled"
        + (", one curve per variant, its seeds pooled" if seeded else ""),
        f"- `{figures['tradeoff']}`: mean against 5th percentile; error bars: ± std across epochs "
        f"(`protocol: epochs`) or ± bootstrap std over resampled mixtures (`protocol: weights`)",
        f"- `{figures['convergence']}`: validation SI-SDRi against training steps"
        + (f", the dashed line {markdown_cell(baseline.name)}'s final value" if target else ""),
    ]
    shown_figures = [
        f"![SI-SDRi density and tails (log scale)]({figures['density']})",
        f"![mean against 5th percentile]({figures['tradeoff']})",
        f"![validation SI-SDRi against training steps]({figures['convergence']})",
    ]
    if seeded:
        listed.append(
            f"- `{figures['seeds_convergence']}`: validation SI-SDRi against training steps per variant, "
            f"the mean over its seeds and a band of ± one std"
        )
        shown_figures.append(f"![validation SI-SDRi across seeds]({figures['seeds_convergence']})")
    if swept:
        listed.append(
            f"- `{figures['operating_point']}`: the operating points of the sweep "
            f"({', '.join(markdown_cell(axis.dotted) for axis in axes)}): mean against p5, p1 and std "
            f"per swept value, "
            f"error bars the 95 % t interval of the mean over the seeds; squares: the variants without the swept keys"
        )
        shown_figures.append(f"![operating points of the sweep]({figures['operating_point']})")
    if by_value:
        listed.append(
            f"- `{figures['sweep_values']}`: mean, p5 and std of test SI-SDRi against the swept value, the "
            f"mean over the seeds as a line and each seed as a dot"
        )
        shown_figures.append(f"![statistics against the swept value]({figures['sweep_values']})")
    parts += ["### Figures", "\n".join(listed), "\n".join(shown_figures)]
    return "\n\n".join(part for part in parts if part)


def report(exp_root: Path, experiments: Optional[Sequence[str]] = None, sweep: str = "") -> Path:
    """Writes report.md and the figures for ``experiments`` (default: every scored one); returns report.md.

    ``sweep`` (run.sh's ``--sweep``) names the swept keys of the operating-point figure (its values are read
    from each folder's config.yaml).
    """
    axes = variants_lib.parse_sweep(sweep)
    names = list(experiments) if experiments else scored_experiments(exp_root)
    if not names:
        raise FileNotFoundError(f"{exp_root}: no scored experiment (*/scores/{STATS_FILE}); run stages 2-3 first")
    scored = [load_scored(exp_root / name) for name in names]
    groups: Dict[str, List[Scored]] = {}
    for exp in scored:
        groups.setdefault(exp.test_list, []).append(exp)
    (exp_root / "figures").mkdir(parents=True, exist_ok=True)
    sections = [
        _group_section(group, exp_root, "" if len(groups) == 1 else f"_{key[:8]}", axes)
        for key, group in groups.items()
    ]
    weights = "\n".join(
        f"- {markdown_cell(exp.name)}: {markdown_cell(exp.stats.get('weights', '?'))}" for exp in scored
    )
    text = (
        "# Test scores per estimated source\n\n"
        "Experiments are grouped by the test list they were scored on; the first one with uniform weighting "
        "on a list is its baseline.\n\n" + "\n\n".join(sections) + f"\n\n## Weights scored\n\n{weights}\n"
    )
    path = exp_root / "report.md"
    atomic_write_text(path, text)
    return path
