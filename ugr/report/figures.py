"""The report's figures (matplotlib, Agg): the test SI-SDRi density and tails, validation against steps, mean
against p5, and across training seeds the operating points and the validation band.

Apart from the tables (``ugr.report.tables``) so that what needs a table alone (the model
card of ``ugr.report.export``) does not load matplotlib. Every PNG is written atomically.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

from ugr.io.atomic import atomic_write  # noqa: E402
from ugr.pipeline.variants import SEED_KEY, SweepAxis  # noqa: E402
from ugr.report import across_seeds, tables  # noqa: E402
from ugr.report.across_seeds import SeedRuns  # noqa: E402
from ugr.report.stats import Spread  # noqa: E402


def _save(fig, path: Path) -> None:
    """PNG written atomically, like every other output."""
    fig.tight_layout()
    try:
        atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=120))
    finally:
        plt.close(fig)


def smoothed_density(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of ``values`` on ``grid`` (Silverman's bandwidth)."""
    spread = min(values.std(), np.subtract(*np.percentile(values, [75, 25])) / 1.34) or values.std() or 1.0
    width = 0.9 * spread * values.size**-0.2
    z = (grid[:, None] - values[None, :]) / width
    return np.exp(-0.5 * z**2).sum(axis=1) / (values.size * width * math.sqrt(2 * math.pi))


def plot_density(values: Dict[str, np.ndarray], path: Path) -> None:
    """Smoothed density on a log axis, and both tails as cumulative shares on log axes (down to 1/n)."""
    everything = np.concatenate(list(values.values()))
    grid = np.linspace(everything.min() - 3, everything.max() + 3, 400)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    peak = 0.0
    for name, v in values.items():
        ordered = np.sort(v)
        share = np.arange(1, v.size + 1) / v.size
        density = smoothed_density(v, grid)
        peak = max(peak, density.max())
        axes[0].plot(grid, density, label=name)
        axes[1].step(ordered, share, where="post", label=name)
        axes[2].step(ordered, share[::-1], where="pre", label=name)
    floor = 0.5 / max(v.size for v in values.values())
    for ax, title, ylabel in zip(
        axes,
        ("smoothed density", "lower tail (failures)", "upper tail"),
        ("density", "share of sources <= x", "share of sources >= x"),
    ):
        ax.set_yscale("log")
        ax.set_xlabel("test SI-SDRi per estimated source (dB)")
        ax.set_ylabel(ylabel + " (log)")
        ax.set_title(title)
    axes[0].set_ylim(max(floor / 10, 1e-5), 2 * peak)
    axes[1].set_ylim(floor, 1.05)
    axes[2].set_ylim(floor, 1.05)
    axes[0].legend(fontsize=8)
    _save(fig, path)


def plot_convergence(curves: Dict[str, Sequence[Any]], target: Optional[tuple[str, float]], path: Path) -> None:
    """Validation SI-SDRi against steps, a line per experiment (points with ``steps`` and ``value``)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        if curve:
            ax.plot([p.steps for p in curve], [p.value for p in curve], marker="o", label=name)
    if target is not None:
        ax.axhline(target[1], color="grey", linestyle="--", linewidth=1, label=f"{target[0]} final")
    ax.set_xlabel("training steps")
    ax.set_ylabel("validation mean SI-SDRi (dB)")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_tradeoff(points: Dict[str, Tuple[float, float, float, float]], path: Path) -> None:
    """One point per experiment: (p5, mean, p5 error, mean error) by name."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, (p5, mean, p5_err, mean_err) in points.items():
        ax.errorbar(p5, mean, xerr=p5_err, yerr=mean_err, marker="o", capsize=3, linestyle="none")
        ax.annotate(name, (p5, mean), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("5th percentile of test SI-SDRi (dB)")
    ax.set_ylabel("mean test SI-SDRi (dB)")
    _save(fig, path)


def plot_operating_point(variants: Sequence[SeedRuns], axes: Sequence[SweepAxis], path: Path) -> bool:
    """Mean against p5, p1 and std, one point per swept value, one line per swept experiment; variants without
    the swept keys (the baseline) as reference squares. Error bars: the 95 % t interval of the mean over the
    seeds (``seed_error``), none for one seed. False: no sweep."""
    swept = [(variant, label) for variant in variants if (label := _point_label(variant, axes)) is not None]
    if not axes or not swept:
        return False
    curves: Dict[str, List[Tuple[SeedRuns, str]]] = {}
    for variant, label in swept:
        curves.setdefault(_curve_key(variant, axes), []).append((variant, label))
    references = [variant for variant in variants if _point_label(variant, axes) is None]
    fig, panels = plt.subplots(1, 3, figsize=(14, 4.2))
    for panel, key, title in zip(panels, ("p5", "p1", "std"), ("5th percentile", "1st percentile", "std")):
        for points in curves.values():
            xs = [v.spread(key) for v, _ in points]
            ys = [v.spread("mean") for v, _ in points]
            panel.errorbar(
                [x.mean for x in xs],
                [y.mean for y in ys],
                xerr=[seed_error(x) for x in xs],
                yerr=[seed_error(y) for y in ys],
                marker="o",
                capsize=3,
                label=_curve_label([v.name for v, _ in points], axes),
            )
            for (_, label), x, y in zip(points, xs, ys):
                panel.annotate(label, (x.mean, y.mean), textcoords="offset points", xytext=(4, 4), fontsize=7)
        for variant in references:
            x, y = variant.spread(key), variant.spread("mean")
            panel.errorbar(
                x.mean,
                y.mean,
                xerr=seed_error(x),
                yerr=seed_error(y),
                marker="s",
                color="black",
                capsize=3,
                linestyle="none",
            )
            panel.annotate(variant.name, (x.mean, y.mean), textcoords="offset points", xytext=(4, -10), fontsize=7)
        panel.set_xlabel(f"{title} of test SI-SDRi (dB)")
        panel.set_ylabel("mean test SI-SDRi (dB)")
    panels[0].legend(fontsize=8)
    fig.suptitle("operating points: mean over seeds, 95 % t interval")
    _save(fig, path)
    return True


def plot_class_paired(variants: Sequence[SeedRuns], baseline: SeedRuns, path: Path) -> bool:
    """Per variant and coarse class, the paired difference against ``baseline`` (SI-SDRi, seed k against seed k)
    with its 95 % interval over seeds and mixtures: the numbers of ``tables.class_paired_table``. False (nothing
    drawn) with fewer than two classes or no variant besides the baseline."""
    classes = sorted({row["coarse"] for v in variants for run in v.runs for row in run.rows if row.get("coarse")})
    others = [variant for variant in variants if variant is not baseline]
    if len(classes) < 2 or not others:
        return False
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(others) + 2), 4.2))
    width = 0.7 / len(classes)
    for k, coarse in enumerate(classes):
        values = across_seeds.class_values(coarse, tables.per_source)
        results = [across_seeds.paired(variant, baseline, values) for variant in others]
        xs = np.arange(len(others)) + (k - (len(classes) - 1) / 2) * width
        means = np.array([r.mean_difference if r else np.nan for r in results])
        low = np.array([r.mean_difference - r.low if r and math.isfinite(r.low) else 0.0 for r in results])
        high = np.array([r.high - r.mean_difference if r and math.isfinite(r.high) else 0.0 for r in results])
        ax.errorbar(xs, means, yerr=[low, high], marker="o", capsize=3, linestyle="none", label=coarse)
    ax.axhline(0, color="grey", linewidth=1)
    ax.set_xticks(np.arange(len(others)), [variant.name for variant in others], rotation=15, ha="right", fontsize=7)
    ax.set_ylabel(f"SI-SDRi - {baseline.name} (dB)")
    ax.set_title("per class: mean difference, 95 % interval over seeds and mixtures", fontsize=8)
    ax.legend(fontsize=8)
    _save(fig, path)
    return True


def seed_error(value: Spread) -> float:
    """The half-width of the 95 % t interval of a mean over seeds, ``t(n-1) s / sqrt(n)``; 0 for one seed (no
    bar, rather than a bar that claims a spread nobody measured)."""
    if value.n < 2 or not np.isfinite(value.std):
        return 0.0
    return float(scipy_stats.t.ppf(0.975, value.n - 1) * value.std / np.sqrt(value.n))


def plot_sweep_values(variants: Sequence[SeedRuns], axes: Sequence[SweepAxis], path: Path) -> bool:
    """Mean, p5 and std of test SI-SDRi against the swept value, one line per swept experiment (the mean over
    its seeds) and each seed as a dot: at 2 or 3 seeds the seeds themselves say more than an interval. Drawn
    for a sweep of one numeric key (a log axis when its values span a factor of 8 or more); False otherwise."""
    if len(axes) != 1:
        return False
    keys = axes[0].keys
    curves: Dict[str, List[Tuple[float, SeedRuns]]] = {}
    for variant in variants:
        value = across_seeds.nested(variant.runs[0].config, keys)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        curves.setdefault(_curve_key(variant, axes), []).append((float(value), variant))
    if not curves:
        return False
    values = sorted({x for points in curves.values() for x, _ in points})
    fig, panels = plt.subplots(1, 3, figsize=(14, 4.2))
    for panel, key, title in zip(panels, ("mean", "p5", "std"), ("mean", "5th percentile", "std")):
        for points in curves.values():
            points = sorted(points, key=lambda point: point[0])
            (line,) = panel.plot(
                [x for x, _ in points],
                [np.mean([run.stats[key] for run in v.runs]) for _, v in points],
                marker="o",
                label=_curve_label([v.name for _, v in points], axes),
            )
            for x, variant in points:
                panel.scatter(
                    [x] * len(variant.runs),
                    [run.stats[key] for run in variant.runs],
                    color=line.get_color(),
                    s=12,
                    alpha=0.5,
                )
        if min(values) > 0 and max(values) / min(values) >= 8:
            panel.set_xscale("log", base=2)
        panel.set_xticks(values, [f"{x:g}" for x in values])
        panel.set_xlabel(axes[0].dotted)
        panel.set_ylabel(f"{title} of test SI-SDRi (dB)")
    panels[0].legend(fontsize=8)
    fig.suptitle("line: the mean over the seeds; dots: each seed")
    _save(fig, path)
    return True


def plot_validation(variants: Sequence[SeedRuns], final: Optional[Tuple[str, float]], path: Path) -> None:
    """Validation SI-SDRi against steps per variant: the mean across seeds and a band of ± one std."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for variant in variants:
        curves = [run.curve for run in variant.runs if run.curve]
        if not curves:
            continue
        length = min(len(c) for c in curves)
        steps = [p.steps for p in curves[0][:length]]
        values = np.array([[p.value for p in c[:length]] for c in curves])
        mean = values.mean(axis=0)
        (line,) = ax.plot(steps, mean, marker="o", markersize=3, label=f"{variant.name} ({len(curves)})")
        if len(curves) > 1:
            std = values.std(axis=0, ddof=1)
            ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    if final is not None:
        ax.axhline(final[1], color="grey", linestyle="--", linewidth=1, label=f"{final[0]} final")
        ax.axhline(
            across_seeds.REACH_SHARE * final[1],
            color="grey",
            linestyle=":",
            linewidth=1,
            label=f"{100 * across_seeds.REACH_SHARE:.0f} % of it",
        )
    ax.set_xlabel("training steps")
    ax.set_ylabel("validation SI-SDRi (dB), mean ± std")
    ax.legend(fontsize=7)
    _save(fig, path)


def _point_label(variant: SeedRuns, axes: Sequence[SweepAxis]) -> Optional[str]:
    """The swept values of a variant (``alpha=0.1``), None when its config has none of the swept keys."""
    values = [(axis.keys[-1], across_seeds.nested(variant.runs[0].config, axis.keys)) for axis in axes]
    shown = [
        f"{key}={json.dumps(value) if isinstance(value, (dict, list)) else value}"
        for key, value in values
        if value is not None
    ]
    return ", ".join(shown) if shown else None


def _curve_key(variant: SeedRuns, axes: Sequence[SweepAxis]) -> str:
    """What the points of one curve share: the config without the swept keys and the training seed."""
    config = json.loads(json.dumps(variant.runs[0].config or {}))
    for keys in [axis.keys for axis in axes] + [SEED_KEY]:
        parent = across_seeds.nested(config, keys[:-1])
        if isinstance(parent, dict):
            parent.pop(keys[-1], None)
    return json.dumps(config, sort_keys=True)


def _curve_label(names: Sequence[str], axes: Sequence[SweepAxis] = ()) -> str:
    """The experiment of a curve's variants: their common name before the first swept key's label
    (``robust_alpha0.1``, ``robust_alpha0.2`` -> ``robust``; ``b_batch_size2``, ``b_batch_size4`` -> ``b``),
    else up to its last ``_``."""
    prefix = os.path.commonprefix(list(names))
    for axis in axes:
        cut = prefix.find(f"_{axis.keys[-1]}")
        if cut > 0:
            return prefix[:cut]
    return prefix.rsplit("_", 1)[0] or names[0]
