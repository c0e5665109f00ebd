"""Stage 3: score one trained experiment on the fixed test list, per estimated source.

Writes, atomically, into ``EXP_DIR/scores/``:

* ``test.csv``: ``mixture_id,source,class,coarse,si_sdr,si_sdr_mix,si_sdri``
  (dB), one row per estimated source, matched to its reference by the best
  permutation; ``class`` and ``coarse`` are the reference's labels.
* ``test_stats.json``: ``n, mean, std, p1 ... p99`` over all rows, the same
  under ``per_coarse`` for every coarse class and under ``per_class`` for every
  fine class, and what was scored (``scoring`` settings, ``weights``).
  Written last, so its presence means the scoring finished.

The weights scored are the average of the last K epoch checkpoints
(``scoring.average_last_k``), or ``--checkpoint``. The scoring settings come
from ``--config`` (plus overrides) when given, else from the experiment's own
``config.yaml``; scores made with other settings or older checkpoints are
redone, current ones are reported and kept.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from ugr import checkpoints, losses
from ugr import config as config_lib
from ugr.atomic import atomic_write_text
from ugr.cli import gpu_problem, one_line_errors
from ugr.data.dataset import ListedMixtures, collate_mixtures

COLUMNS = ("mixture_id", "source", "class", "coarse", "si_sdr", "si_sdr_mix", "si_sdri")
PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)
TEST_LIST = "test.csv"
STATS_FILE = "test_stats.json"


def score_batch(est: Tensor, sources: Tensor, mixture: Tensor) -> tuple[Tensor, Tensor]:
    """SI-SDR of each estimate under the best permutation, and of the mixture, per reference (B, n_src) dB.

    The permutation search already computes every estimate's SI-SDR against
    every reference, so the matched values are read from it, not recomputed.
    """
    per_source_loss, _ = losses.pit_neg_sisdr(est, sources)
    return -per_source_loss, losses.mixture_si_sdr(mixture, sources)


def summarize(values: Iterable[float]) -> Dict[str, float]:
    """n, mean, (population) std and the percentiles p1 ... p99 of a set of dB values."""
    array = np.asarray(list(values), dtype=np.float64)
    if array.size == 0:
        raise ValueError("no values to summarize")
    stats: Dict[str, float] = {"n": int(array.size), "mean": float(array.mean()), "std": float(array.std())}
    for q, value in zip(PERCENTILES, np.percentile(array, PERCENTILES)):
        stats[f"p{q}"] = float(value)
    return stats


def statistics(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The stats JSON: overall, then per coarse class and per fine class."""
    result = summarize(row["si_sdri"] for row in rows)
    for key, column in (("per_coarse", "coarse"), ("per_class", "class")):
        groups: Dict[str, List[float]] = {}
        for row in rows:
            groups.setdefault(row[column], []).append(row["si_sdri"])
        result[key] = {name: summarize(groups[name]) for name in sorted(groups)}
    return result


def score(exp_dir: Path, data_dir: Path, *, scoring: Optional[Dict[str, Any]] = None,
          checkpoint: Optional[Path] = None, batch_size: int = 8, device: str = "cpu", progress: bool = True,
          force: bool = False) -> Dict[str, Any]:
    """Scores ``exp_dir`` on its test list; writes test.csv and test_stats.json; returns the stats.

    ``scoring`` is the scoring section to use (default: the experiment's own).
    Current scores (same settings and checkpoints, written after the
    checkpoints) are returned as they are unless ``force``.
    """
    trained = checkpoints.experiment_config(exp_dir)
    scoring = dict(scoring or trained["scoring"])
    stats_path = exp_dir / "scores" / STATS_FILE
    files = [checkpoint] if checkpoint else checkpoints.last_epochs(exp_dir / "checkpoints", scoring["average_last_k"])
    what = {"scoring": scoring, "checkpoints": [p.name for p in files]}
    if stats_path.is_file() and not force:
        stats = json.loads(stats_path.read_text())
        newer = all(stats_path.stat().st_mtime_ns >= Path(p).stat().st_mtime_ns for p in files)
        if newer and {k: stats.get(k) for k in what} == what:
            stats["up_to_date"] = True
            return stats
    list_path = config_lib.lists_dir(trained, data_dir) / TEST_LIST
    if not list_path.is_file():
        raise FileNotFoundError(f"{list_path}: test mixture list missing; run stage 1 (mixture lists) first")
    cfg, model, weights_used = checkpoints.load_experiment(exp_dir, checkpoint=checkpoint,
                                                           average_last=scoring["average_last_k"])
    model = model.to(device)
    dataset = ListedMixtures(data_dir, list_path, sample_rate=cfg["data"]["sample_rate"])
    loader = DataLoader(dataset, batch_size=batch_size if dataset.fixed_length else 1, shuffle=False,
                        collate_fn=collate_mixtures)
    rows: List[Dict[str, Any]] = []
    with torch.inference_mode():
        for batch in tqdm(loader, desc=f"score {exp_dir.name}", disable=None if progress else True, unit="batch"):
            mixture, sources = batch["mixture"].to(device), batch["sources"].to(device)
            est_sdr, mix_sdr = (t.cpu().numpy() for t in score_batch(model(mixture), sources, mixture))
            for b, mixture_id in enumerate(batch["id"]):
                for s, (fine, coarse) in enumerate(zip(batch["classes"][b], batch["coarse"][b])):
                    rows.append({"mixture_id": mixture_id, "source": s, "class": fine, "coarse": coarse,
                                 "si_sdr": float(est_sdr[b, s]), "si_sdr_mix": float(mix_sdr[b, s]),
                                 "si_sdri": float(est_sdr[b, s] - mix_sdr[b, s])})
    _check_finite(rows, list_path)
    stats = {**statistics(rows), **what, "weights": weights_used, "test_list": str(list_path)}
    out = exp_dir / "scores"
    stats_path.unlink(missing_ok=True)  # written last: its absence marks unfinished scores
    atomic_write_text(out / "test.csv", _csv_text(rows))
    atomic_write_text(stats_path, json.dumps(stats, indent=2) + "\n")
    return stats


def _check_finite(rows: List[Dict[str, Any]], list_path: Path) -> None:
    """A NaN/inf score (a silent reference) would poison every statistic: stop and name the mixtures."""
    bad = sorted({row["mixture_id"] for row in rows if not np.isfinite([row["si_sdr"], row["si_sdr_mix"]]).all()})
    if bad:
        raise ValueError(f"{list_path}: non-finite SI-SDR for {len(bad)} mixture(s) ({', '.join(bad[:5])}...); "
                         f"a reference source is silent: regenerate the list (stage 1)")


def _csv_text(rows: List[Dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **{k: f"{row[k]:.4f}" for k in ("si_sdr", "si_sdr_mix", "si_sdri")}})
    return buffer.getvalue()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ugr.score", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp-dir", required=True, type=Path, help="trained experiment folder (stage 2 output)")
    parser.add_argument("--data", required=True, type=Path, help="prepared data folder with its lists (stages 0-1)")
    parser.add_argument("--config", type=Path, help="take the scoring section from this config (default: the "
                                                    "experiment's config.yaml)")
    parser.add_argument("--override", action="append", default=[],
                        help="[EXPERIMENT:]SECTION.KEY=VALUE ..., e.g. scoring.average_last_k=5 (with --config)")
    parser.add_argument("--checkpoint", type=Path, help="score this one checkpoint instead (e.g. checkpoints/best.ckpt)")
    parser.add_argument("--batch-size", type=int, default=8, help="test mixtures per forward pass")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--force", action="store_true", help="score again even when the scores are current")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    with one_line_errors("score", args.exp_dir / "scores", ValueError):
        if args.device.startswith("cuda") and (problem := gpu_problem(1, f"--device {args.device}")):
            raise ValueError(problem)
        overrides = config_lib.parse_overrides(args.override)
        if overrides and args.config is None:
            raise config_lib.ConfigError("--override needs --config (the overrides apply to that config)")
        scoring = config_lib.load(args.config, overrides)["scoring"] if args.config else None
        stats = score(args.exp_dir, args.data, scoring=scoring, checkpoint=args.checkpoint,
                      batch_size=args.batch_size, device=args.device, progress=not args.no_progress, force=args.force)
    state = "up to date, kept" if stats.get("up_to_date") else "scored"
    print(f"score: {args.exp_dir} {state}: {stats['n']} estimated sources, SI-SDRi mean {stats['mean']:.2f} dB, "
          f"p5 {stats['p5']:.2f} dB ({stats['weights']}) -> {args.exp_dir / 'scores'}")


if __name__ == "__main__":
    main()
