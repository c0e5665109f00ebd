"""Stage 4: the paper-style report of every scored experiment.

Reads ``EXP_ROOT/<experiment>/scores/`` and the training logs, and writes
``EXP_ROOT/report.md`` with

* the distribution table (one row per experiment: n, mean, std, p1 ... p99
  of the test SI-SDRi per estimated source; the paper's Table 1),
* the per-class table (mean SI-SDRi of each coarse class of the corpus and
  combined, +- the standard error of the mean; the paper's class-bias table),

and the figures under ``EXP_ROOT/figures/``: the SI-SDRi density per
experiment on a log y axis (the paper's Figure 1), validation SI-SDRi against
epoch (convergence, the curriculum claim), and mean against 5th percentile
(the robustness trade-off).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from ugr.atomic import atomic_write, atomic_write_text  # noqa: E402
from ugr.cli import one_line_errors  # noqa: E402
from ugr.score import PERCENTILES, STATS_FILE  # noqa: E402

STAT_COLUMNS = ("n", "mean", "std") + tuple(f"p{q}" for q in PERCENTILES)
FIGURES = {"density": "si_sdri_density.png", "convergence": "valid_si_sdri.png", "tradeoff": "mean_vs_p5.png"}


def scored_experiments(exp_root: Path) -> List[str]:
    """Experiments under ``exp_root`` whose scoring finished, by name."""
    return sorted(p.parent.parent.name for p in exp_root.glob(f"*/scores/{STATS_FILE}"))


def load_stats(exp_dir: Path) -> Dict:
    path = exp_dir / "scores" / STATS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not scored yet; run stage 3 for {exp_dir.name}")
    return json.loads(path.read_text())


def load_si_sdri(exp_dir: Path) -> np.ndarray:
    with open(exp_dir / "scores" / "test.csv", newline="") as handle:
        return np.array([float(row["si_sdri"]) for row in csv.DictReader(handle)])


def validation_curve(exp_dir: Path) -> List[tuple[int, float]]:
    """(epoch from 1, mean validation SI-SDRi) from every launch's CSV log; a resumed launch wins ties."""
    by_epoch: Dict[int, float] = {}
    versions = sorted((exp_dir / "csv").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    for path in versions:
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("val/si_sdri"):
                    by_epoch[int(row["epoch"]) + 1] = float(row["val/si_sdri"])
    return sorted(by_epoch.items())


def describe_weighting(exp_dir: Path) -> str:
    """A short label of the experiment's weighting, from its saved config."""
    cfg_path = exp_dir / "config.yaml"
    if not cfg_path.is_file():
        return "?"
    weighting = yaml.safe_load(cfg_path.read_text())["weighting"]
    details = ", ".join(f"{k}={v}" for k, v in weighting.items() if k not in ("type", "granularity"))
    return f"{weighting['type']}" + (f" ({details})" if details else "")


def distribution_table(stats: Dict[str, Dict], weightings: Dict[str, str]) -> str:
    header = "| experiment | weighting | " + " | ".join(STAT_COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(STAT_COLUMNS) + 2)]
    for name, s in stats.items():
        values = [str(s["n"])] + [f"{s[c]:.2f}" for c in STAT_COLUMNS[1:]]
        lines.append(f"| {name} | {weightings[name]} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def _mean_se(s: Optional[Dict]) -> str:
    if s is None:
        return "-"
    se = s["std"] / math.sqrt(s["n"]) if s["n"] > 1 else float("nan")
    return f"{s['mean']:.2f} ± {se:.2f}"


def class_table(stats: Dict[str, Dict]) -> str:
    """Mean ± standard error per coarse class (the classes of every experiment, in name order) and combined."""
    classes = sorted({c for s in stats.values() for c in s["per_coarse"]})
    lines = ["| experiment | " + " | ".join(classes) + " | combined |", "|---|" + "---|" * (len(classes) + 1)]
    for name, s in stats.items():
        cells = [_mean_se(s["per_coarse"].get(c)) for c in classes] + [_mean_se(s)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_density(values: Dict[str, np.ndarray], path: Path) -> None:
    everything = np.concatenate(list(values.values()))
    bins = np.linspace(everything.min(), everything.max(), 41)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, v in values.items():
        density, edges = np.histogram(v, bins=bins, density=True)
        ax.step(edges[:-1], np.where(density > 0, density, np.nan), where="post", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("test SI-SDRi per estimated source (dB)")
    ax.set_ylabel("density (log)")
    ax.legend()
    _save(fig, path)


def plot_convergence(curves: Dict[str, List[tuple[int, float]]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        if curve:
            epochs, values = zip(*curve)
            ax.plot(epochs, values, marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation mean SI-SDRi (dB)")
    ax.legend()
    _save(fig, path)


def plot_tradeoff(stats: Dict[str, Dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, s in stats.items():
        ax.scatter(s["p5"], s["mean"])
        ax.annotate(name, (s["p5"], s["mean"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("5th percentile of test SI-SDRi (dB)")
    ax.set_ylabel("mean test SI-SDRi (dB)")
    _save(fig, path)


def _save(fig, path: Path) -> None:
    """PNG written atomically, like every other output."""
    fig.tight_layout()
    try:
        atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=120))
    finally:
        plt.close(fig)


def report(exp_root: Path, experiments: Optional[Sequence[str]] = None) -> Path:
    """Writes report.md and the figures for ``experiments`` (default: every scored one); returns report.md."""
    names = list(experiments) if experiments else scored_experiments(exp_root)
    if not names:
        raise FileNotFoundError(f"{exp_root}: no scored experiment (*/scores/{STATS_FILE}); run stages 2-3 first")
    stats = {name: load_stats(exp_root / name) for name in names}
    weightings = {name: describe_weighting(exp_root / name) for name in names}
    figures = exp_root / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    plot_density({name: load_si_sdri(exp_root / name) for name in names}, figures / FIGURES["density"])
    plot_convergence({name: validation_curve(exp_root / name) for name in names}, figures / FIGURES["convergence"])
    plot_tradeoff(stats, figures / FIGURES["tradeoff"])
    weights = "\n".join(f"- {name}: {s.get('weights', '?')}" for name, s in stats.items())
    text = f"""# Test SI-SDRi per estimated source (dB)

{distribution_table(stats, weightings)}

## Per class (mean ± standard error of the mean)

{class_table(stats)}

## Figures

![SI-SDRi density (log scale)](figures/{FIGURES['density']})
![validation SI-SDRi per epoch](figures/{FIGURES['convergence']})
![mean against 5th percentile](figures/{FIGURES['tradeoff']})

## Weights scored

{weights}
"""
    path = exp_root / "report.md"
    atomic_write_text(path, text)
    return path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ugr.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp-root", required=True, type=Path, help="folder holding one folder per experiment")
    parser.add_argument("--experiments", nargs="*", help="experiment names in table order (default: all scored)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    with one_line_errors("report", args.exp_root):
        path = report(args.exp_root, args.experiments)
    print(f"report: wrote {path} and figures in {path.parent / 'figures'}")


if __name__ == "__main__":
    main()
