"""Stage 3: score one trained experiment on the fixed test list, per estimated source.

What is scored (``scoring`` section of the config, ``ugr.pipeline.config``):

* ``protocol: weights``: one model, the average of the weights of the last K
  epoch checkpoints (``scoring.average_last_k``), or ``--checkpoint``.
* ``protocol: epochs``: each of the last K epoch checkpoints separately; every
  statistic is computed per epoch, then averaged across the K epochs (the
  paper's "averaged over ten epochs"; its ± is the spread across epochs).
* ``metrics``: ``si_sdri`` always, plus those listed (``ugr.separation.metrics.METRICS``:
  ``sdri``, and for speech references only, ``stoi`` and ``pesq``).

Writes, atomically, into ``EXP_DIR/scores/``:

* ``test.csv``: one row per estimated source, matched to its reference by the
  best SI-SDR permutation: ``mixture_id,source,class,coarse,group`` (the
  reference's labels; ``group`` is its manifest ``group``, e.g. the speaker
  or the ESC-50 category, for the report's worst-group table), ``epoch``
  under ``protocol: epochs`` (N of the ``epoch=N.ckpt`` scored; each source
  has one row per epoch), then
  ``si_sdr,si_sdr_mix,si_sdri`` (dB) and one column per other metric, empty
  where it does not apply (a speech-only metric on a non-speech source).
* ``test_epochs.json`` (``protocol: epochs`` only): ``per_epoch``, the
  statistics of each epoch's rows, and ``mean`` and ``std`` (numpy's, over
  the epochs), the mean and the spread across epochs of every statistic.
* ``test_stats.json``: ``n, mean, std, p1 ... p99`` of the SI-SDRi over all
  rows (under ``protocol: epochs``: the mean across epochs of each per-epoch
  statistic, with their spread under ``across_epochs_std``); the same under
  ``per_coarse`` for every coarse class and ``per_class`` for every fine
  class; under ``metrics`` the same for every other metric, over the rows
  where it applies (``n`` counts them); and what was scored: the ``scoring``
  settings, the checkpoints, ``weights``, the test list and the fingerprint
  of its contents. Written last, so its presence means the scoring finished.

The scoring settings come from ``--config`` (plus overrides) when given, else
from the experiment's own ``config.yaml``. Scores are current when the
settings, the checkpoints and the test list's contents are the ones scored,
the scores are newer than the checkpoints and test.csv has the columns above
(older scores, without ``group``, do not): those are reported and kept; any
other scores are redone.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from ugr.data.dataset import ListedMixtures, collate_mixtures
from ugr.data.eval_list import fingerprint, read_eval_list
from ugr.data.manifest import SPEECH
from ugr.io.atomic import atomic_write_text
from ugr.io.cli import gpu_problem, one_line_errors
from ugr.pipeline import checkpoints
from ugr.pipeline import config as config_lib
from ugr.pipeline.config import ScoringConfig
from ugr.pipeline.experiment_dir import ExperimentDir
from ugr.pipeline.lists import lists_dir
from ugr.separation import losses
from ugr.separation import metrics as metrics_lib

LABEL_COLUMNS = ("mixture_id", "source", "class", "coarse", "group")
SI_SDR_COLUMNS = ("si_sdr", "si_sdr_mix", "si_sdri")
MAIN_METRIC = "si_sdri"
PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)
TEST_LIST = "test.csv"
STATS_FILE = "test_stats.json"
EPOCHS_FILE = "test_epochs.json"


def other_metrics(scoring: ScoringConfig) -> List[str]:
    """The metrics scored besides si_sdri, in the config's order."""
    return [name for name in scoring.metrics if name != MAIN_METRIC]


def columns(scoring: ScoringConfig) -> tuple[str, ...]:
    """test.csv's columns under these scoring settings."""
    epoch = ("epoch",) if scoring.protocol == "epochs" else ()
    return LABEL_COLUMNS + epoch + SI_SDR_COLUMNS + tuple(other_metrics(scoring))


def score_batch(est: Tensor, sources: Tensor, mixture: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """SI-SDR of each estimate under the best permutation and of the mixture, per reference (B, n_src) dB, and
    the estimates in reference order (B, n_src, T).

    The permutation search already computes every estimate's SI-SDR against
    every reference, so the matched values are read from it, not recomputed.
    """
    per_source_loss, reordered = losses.pit_neg_sisdr(est, sources)
    return -per_source_loss, losses.mixture_si_sdr(mixture, sources), reordered


def summarize(values: Iterable[float]) -> Dict[str, float]:
    """n, mean, (population) std and the percentiles p1 ... p99 of a set of values."""
    array = np.asarray(list(values), dtype=np.float64)
    if array.size == 0:
        raise ValueError("no values to summarize")
    stats: Dict[str, float] = {"n": int(array.size), "mean": float(array.mean()), "std": float(array.std())}
    for q, value in zip(PERCENTILES, np.percentile(array, PERCENTILES)):
        stats[f"p{q}"] = float(value)
    return stats


def _metric_statistics(rows: List[Dict[str, Any]], metric: str) -> Dict[str, Any]:
    """One metric's statistics over the rows where it applies (not NaN): overall, per coarse and fine class.

    A class without any such row is left out; with no row at all, only ``n: 0``.
    """
    applicable = [row for row in rows if not math.isnan(row[metric])]
    if not applicable:
        return {"n": 0, "per_coarse": {}, "per_class": {}}
    result: Dict[str, Any] = summarize(row[metric] for row in applicable)
    for key, column in (("per_coarse", "coarse"), ("per_class", "class")):
        groups: Dict[str, List[float]] = {}
        for row in applicable:
            groups.setdefault(row[column], []).append(row[metric])
        result[key] = {name: summarize(groups[name]) for name in sorted(groups)}
    return result


def statistics(rows: List[Dict[str, Any]], metrics: Sequence[str] = (MAIN_METRIC,)) -> Dict[str, Any]:
    """The stats JSON's numbers: si_sdri's at the top level, every other metric of ``metrics`` under ``metrics``."""
    return {
        **_metric_statistics(rows, MAIN_METRIC),
        "metrics": {name: _metric_statistics(rows, name) for name in metrics if name != MAIN_METRIC},
    }


def across_epochs(per_epoch: List[Dict[str, Any]]) -> tuple[Dict[str, Any], Dict[str, Any]]:
    """The mean and the (numpy, population) std across epochs of every statistic of ``statistics`` outputs.

    The epochs score the same test list, so they hold the same classes and the
    same counts: ``n`` is kept as it is in the mean and left out of the std.
    """
    first = per_epoch[0]
    mean: Dict[str, Any] = {}
    std: Dict[str, Any] = {}
    for key, value in first.items():
        if isinstance(value, dict):
            mean[key], std[key] = across_epochs([epoch[key] for epoch in per_epoch])
        elif key == "n":
            mean[key] = value
        else:
            values = np.array([epoch[key] for epoch in per_epoch], dtype=np.float64)
            mean[key], std[key] = float(values.mean()), float(values.std())
    return mean, std


def _current(
    stats_path: Path, what: Dict[str, Any], files: List[Path], scoring: ScoringConfig
) -> Optional[Dict[str, Any]]:
    """The scores on disk if they are those of ``what``, newer than the checkpoints and with test.csv's columns
    (older scores lack ``group``), else None."""
    table = stats_path.parent / TEST_LIST
    if (
        not stats_path.is_file()
        or not table.is_file()
        or (scoring.protocol == "epochs" and not (stats_path.parent / EPOCHS_FILE).is_file())
    ):
        return None
    with open(table, newline="") as handle:
        if next(csv.reader(handle), None) != list(columns(scoring)):
            return None
    stats = json.loads(stats_path.read_text())
    newer = all(stats_path.stat().st_mtime_ns >= Path(p).stat().st_mtime_ns for p in files)
    return stats if newer and {k: stats.get(k) for k in what} == what else None


def score(
    exp_dir: Path,
    data_dir: Path,
    *,
    scoring: Optional[ScoringConfig] = None,
    checkpoint: Optional[Path] = None,
    batch_size: int = 8,
    device: str = "cpu",
    progress: bool = True,
    force: bool = False,
) -> Dict[str, Any]:
    """Scores ``exp_dir`` on its test list; writes the files of the module docstring; returns test_stats.json.

    ``scoring`` is the scoring section to use (default: the experiment's own).
    ``checkpoint`` scores that one file (``protocol`` is then moot).
    Current scores are returned as they are (with ``up_to_date``) unless ``force``.
    """
    trained = ExperimentDir(exp_dir).config()
    rate = trained.data.sample_rate
    scoring = scoring or trained.scoring
    config_lib.check_metric_rates(scoring, rate)  # settings handed in were checked at their config's rate
    if checkpoint:
        scoring = replace(scoring, protocol="weights")  # one file: there are no epochs to score separately
    protocol = scoring.protocol
    names = [MAIN_METRIC] + other_metrics(scoring)
    list_path = lists_dir(trained, data_dir) / TEST_LIST
    if not list_path.is_file():
        raise FileNotFoundError(f"{list_path}: test mixture list missing; run stage 1 (mixture lists) first")
    read_eval_list(list_path, data_dir)  # a list of older data is an error, not a reason to keep old scores
    files = (
        [Path(checkpoint)]
        if checkpoint
        else checkpoints.last_epochs(ExperimentDir(exp_dir).checkpoints, scoring.average_last_k)
    )
    what = {
        "scoring": scoring.as_dict(),
        "checkpoints": [p.name for p in files],
        "test_list_fingerprint": fingerprint(list_path),
    }
    out = exp_dir / "scores"
    stats_path = out / STATS_FILE
    if not force and (stats := _current(stats_path, what, files, scoring)) is not None:
        return {**stats, "up_to_date": True}

    if protocol == "epochs":
        models = {
            int(checkpoints.EPOCH_CKPT.match(path.name).group(1)): checkpoints.load_experiment(
                exp_dir, checkpoint=path
            )[1]
            for path in files
        }
        weights = "each of " + ", ".join(p.name for p in files) + ", scored separately"
    else:
        _, model, weights = checkpoints.load_experiment(
            exp_dir, checkpoint=checkpoint, average_last=scoring.average_last_k
        )
        models = {None: model}
    dataset = ListedMixtures(data_dir, list_path, sample_rate=rate)
    rows = _score_models(
        {e: m.to(device) for e, m in models.items()},
        dataset,
        names,
        rate,
        batch_size,
        device,
        progress,
        f"score {exp_dir.name}",
    )
    _check_finite([row for epoch_rows in rows.values() for row in epoch_rows], list_path)

    described = {**what, "weights": weights, "test_list": str(list_path)}
    stats_path.unlink(missing_ok=True)  # written last: its absence marks unfinished scores
    if protocol == "epochs":
        per_epoch = [
            {"epoch": epoch, "checkpoint": path.name, **statistics(rows[epoch], names)}
            for epoch, path in zip(models, files)
        ]
        mean, std = across_epochs([{k: v for k, v in e.items() if k not in ("epoch", "checkpoint")} for e in per_epoch])
        atomic_write_text(out / TEST_LIST, _csv_text([r for e in models for r in rows[e]], scoring))
        atomic_write_text(
            out / EPOCHS_FILE,
            json.dumps(
                {"epochs": list(models), "per_epoch": per_epoch, "mean": mean, "std": std, **described}, indent=2
            )
            + "\n",
        )
        stats = {**mean, "across_epochs_std": std, **described}
    else:
        (out / EPOCHS_FILE).unlink(missing_ok=True)  # another protocol's: it would not describe these scores
        atomic_write_text(out / TEST_LIST, _csv_text(rows[None], scoring))
        stats = {**statistics(rows[None], names), **described}
    atomic_write_text(stats_path, json.dumps(stats, indent=2) + "\n")
    return stats


def _score_models(
    models: Dict[Optional[int], torch.nn.Module],
    dataset: ListedMixtures,
    names: List[str],
    rate: int,
    batch_size: int,
    device: str,
    progress: bool,
    desc: str,
) -> Dict[Optional[int], List]:
    """Rows of every model (by epoch) on every test mixture; the test audio is read once for all the models."""
    loader = DataLoader(
        dataset, batch_size=batch_size if dataset.fixed_length else 1, shuffle=False, collate_fn=collate_mixtures
    )
    others = names[1:]
    rows: Dict[Optional[int], List[Dict[str, Any]]] = {epoch: [] for epoch in models}
    with torch.inference_mode():
        for batch in tqdm(loader, desc=desc, disable=None if progress else True, unit="batch"):
            mixture, sources = batch["mixture"].to(device), batch["sources"].to(device)
            speech = torch.tensor([[c == SPEECH for c in coarse] for coarse in batch["coarse"]])
            for epoch, model in models.items():
                est_sdr, mix_sdr, ordered = score_batch(model(mixture), sources, mixture)
                est_sdr, mix_sdr = est_sdr.cpu().numpy(), mix_sdr.cpu().numpy()
                extra = {
                    k: v.numpy()
                    for k, v in metrics_lib.evaluate(others, ordered, sources, mixture, rate, speech).items()
                }
                for b, mixture_id in enumerate(batch["id"]):
                    labels = zip(batch["classes"][b], batch["coarse"][b], batch["groups"][b])
                    for s, (fine, coarse, group) in enumerate(labels):
                        row = {
                            "mixture_id": mixture_id,
                            "source": s,
                            "class": fine,
                            "coarse": coarse,
                            "group": group,
                            "epoch": epoch,
                            "si_sdr": float(est_sdr[b, s]),
                            "si_sdr_mix": float(mix_sdr[b, s]),
                            "si_sdri": float(est_sdr[b, s] - mix_sdr[b, s]),
                        }
                        rows[epoch].append({**row, **{name: float(extra[name][b, s]) for name in others}})
    return rows


def _check_finite(rows: List[Dict[str, Any]], list_path: Path) -> None:
    """A NaN/inf score (a silent reference) would poison every statistic: stop and name the mixtures."""
    bad = sorted({row["mixture_id"] for row in rows if not np.isfinite([row["si_sdr"], row["si_sdr_mix"]]).all()})
    if bad:
        raise ValueError(
            f"{list_path}: non-finite SI-SDR for {len(bad)} mixture(s) ({', '.join(bad[:5])}...); "
            f"a reference source is silent: regenerate the list (stage 1)"
        )


def _csv_text(rows: List[Dict[str, Any]], scoring: ScoringConfig) -> str:
    fields = columns(scoring)
    numeric = SI_SDR_COLUMNS + tuple(other_metrics(scoring))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **{k: "" if math.isnan(row[k]) else f"{row[k]:.4f}" for k in numeric}})
    return buffer.getvalue()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ugr.pipeline.score", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exp-dir", required=True, type=Path, help="trained experiment folder (stage 2 output)")
    parser.add_argument("--data", required=True, type=Path, help="prepared data folder with its lists (stages 0-1)")
    parser.add_argument(
        "--config", type=Path, help="take the scoring section from this config (default: the experiment's config.yaml)"
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="[EXPERIMENT:]SECTION.KEY=VALUE ..., e.g. scoring.protocol=epochs (with --config)",
    )
    parser.add_argument(
        "--checkpoint", type=Path, help="score this one checkpoint instead (e.g. checkpoints/best.ckpt)"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="test mixtures per forward pass")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--force", action="store_true", help="score again even when the scores are current")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def check_device(device: str) -> None:
    """ValueError saying why ``device`` (a torch device) cannot score here, before torch would fail."""
    if device.startswith("cuda") and (problem := gpu_problem(1, f"--device {device}")):
        raise ValueError(problem)


def summary_line(exp_dir: Path, stats: Dict[str, Any]) -> str:
    """What a scoring says when it ends: scored or kept, the count, the mean and p5, where."""
    state = "up to date, kept" if stats.get("up_to_date") else "scored"
    across = " (means across epochs)" if "across_epochs_std" in stats else ""
    return (
        f"score: {exp_dir} {state}: {stats['n']} estimated sources, SI-SDRi mean {stats['mean']:.2f} dB, "
        f"p5 {stats['p5']:.2f} dB{across} ({stats['weights']}) -> {exp_dir / 'scores'}"
    )


def main(argv=None) -> None:
    args = parse_args(argv)
    with one_line_errors("score", args.exp_dir / "scores", ValueError):
        check_device(args.device)
        overrides = config_lib.parse_overrides(args.override)
        if overrides and args.config is None:
            raise config_lib.ConfigError("--override needs --config (the overrides apply to that config)")
        scoring = config_lib.load(args.config, overrides).scoring if args.config else None
        stats = score(
            args.exp_dir,
            args.data,
            scoring=scoring,
            checkpoint=args.checkpoint,
            batch_size=args.batch_size,
            device=args.device,
            progress=not args.no_progress,
            force=args.force,
        )
    print(summary_line(args.exp_dir, stats))


if __name__ == "__main__":
    main()
