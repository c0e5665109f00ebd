"""Stage 3: score one trained experiment on the fixed test list, per estimated source.

Writes, atomically, into ``EXP_DIR/scores/``:

* ``test.csv``: ``mixture_id,source,class,si_sdr,si_sdr_mix,si_sdri`` (dB), one
  row per estimated source, matched to its reference by the best permutation;
  ``class`` is the fine class of the reference.
* ``test_stats.json``: ``n, mean, std, p1 ... p99`` over all rows, and the same
  under ``per_class`` for the coarse classes (speech, env) and every fine class.
  Written last, so its presence means the scoring finished.

The weights scored are the average of the last K epoch checkpoints (the paper
reports "averaged over ten epochs"); K defaults to the config's
``scoring.average_last_k``, and ``--checkpoint`` scores one file instead.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from ugr import checkpoints, losses
from ugr.atomic import atomic_write_text
from ugr.data import ListedMixtures, coarse_class, collate_mixtures

COLUMNS = ("mixture_id", "source", "class", "si_sdr", "si_sdr_mix", "si_sdri")
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
    """The stats JSON: overall, then per coarse class (speech/env) and per fine class."""
    groups: Dict[str, List[float]] = {}
    for row in rows:
        for group in dict.fromkeys((coarse_class(row["class"]), row["class"])):
            groups.setdefault(group, []).append(row["si_sdri"])
    result = summarize(row["si_sdri"] for row in rows)
    result["per_class"] = {name: summarize(groups[name]) for name in sorted(groups)}
    return result


def score(exp_dir: Path, data_dir: Path, lists_dir: Path, *, checkpoint: Optional[Path] = None,
          average_last: Optional[int] = None, batch_size: int = 8, device: str = "cpu",
          progress: bool = True) -> Dict[str, Any]:
    """Scores ``exp_dir`` on ``lists_dir/test.csv``; writes test.csv and test_stats.json; returns the stats."""
    list_path = lists_dir / TEST_LIST
    if not list_path.is_file():
        raise FileNotFoundError(f"{list_path}: test mixture list missing; run stage 1 (mixture lists) first")
    cfg, model, weights_used = checkpoints.load_experiment(exp_dir, checkpoint=checkpoint, average_last=average_last)
    model = model.to(device)
    dataset = ListedMixtures(data_dir, list_path, sample_rate=cfg["data"]["sample_rate"])
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_mixtures)
    rows: List[Dict[str, Any]] = []
    with torch.inference_mode():
        for batch in tqdm(loader, desc=f"score {exp_dir.name}", disable=not progress, unit="batch"):
            mixture, sources = batch["mixture"].to(device), batch["sources"].to(device)
            est_sdr, mix_sdr = (t.cpu().numpy() for t in score_batch(model(mixture), sources, mixture))
            for b, mixture_id in enumerate(batch["id"]):
                for s, fine in enumerate(batch["classes"][b]):
                    rows.append({"mixture_id": mixture_id, "source": s, "class": fine,
                                 "si_sdr": float(est_sdr[b, s]), "si_sdr_mix": float(mix_sdr[b, s]),
                                 "si_sdri": float(est_sdr[b, s] - mix_sdr[b, s])})
    _check_finite(rows, list_path)
    stats = statistics(rows)
    stats["weights"] = weights_used
    out = exp_dir / "scores"
    atomic_write_text(out / "test.csv", _csv_text(rows))
    atomic_write_text(out / STATS_FILE, json.dumps(stats, indent=2) + "\n")
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
    parser.add_argument("--data", required=True, type=Path, help="prepared corpus folder (stage 0 output)")
    parser.add_argument("--lists", required=True, type=Path, help=f"folder with the mixture lists ({TEST_LIST})")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--average-last", type=int, metavar="K",
                       help="average the weights of the last K epoch checkpoints (default: scoring.average_last_k)")
    which.add_argument("--checkpoint", type=Path, help="score this one checkpoint instead (e.g. checkpoints/best.ckpt)")
    parser.add_argument("--batch-size", type=int, default=8, help="test mixtures per forward pass")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.average_last is not None and args.average_last < 1:
        sys.exit(f"score: --average-last must be >= 1, got {args.average_last}")
    try:
        stats = score(args.exp_dir, args.data, args.lists, checkpoint=args.checkpoint,
                      average_last=args.average_last, batch_size=args.batch_size, device=args.device,
                      progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"score: {err}")
    print(f"score: {args.exp_dir}: {stats['n']} estimated sources, SI-SDRi mean {stats['mean']:.2f} dB, "
          f"p5 {stats['p5']:.2f} dB ({stats['weights']}) -> {args.exp_dir / 'scores'}")


if __name__ == "__main__":
    main()
