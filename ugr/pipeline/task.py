"""One task of the recipe's per-variant stages (2 training, 3 scoring), in one process.

    python -m ugr.pipeline.task train --index I --experiments 'a b' [--seeds S] [--sweep S] [--tag T] \\
        [--override O] [--conf conf] --data data --exp exp [--force] [--ngpu N] [--num-nodes N]
    python -m ugr.pipeline.task score --index I ...

Task I is variant I of the run (``ugr.pipeline.variants``: experiments x sweep
points x seeds; ``UGR_TASK_ID`` of a stage's array job, left out when the run
has one variant). The task resolves the variant (its config, its folder
``EXP/<name>`` and its overrides, kept as values: a swept ``{dog: 3}`` reaches
the config as the mapping it is), logs it, takes the folder's lock (one run at
a time works on an experiment folder; a second stops, naming the first), checks
that the folder was trained on this data folder (``ugr.pipeline.provenance``),
then:

* ``train``: a finished folder is skipped; ``--force`` removes the folder first
  (only a folder of ours: one holding config.yaml, provenance.json or
  train.done, or an empty one; any other is refused and left as it is) to
  train from scratch; otherwise the training runs, or resumes
  (``ugr.pipeline.train``).
* ``score``: an untrained folder is refused; the scores are made, or kept when
  current (``ugr.pipeline.score``; ``--force`` scores again), then logged to
  the training's MLflow and W&B runs when it had any and they were not yet
  (``ugr.pipeline.tracking.log_scores``).

Exit status 0 when it did the work, ``CURRENT`` (3) when the outputs were
current and nothing was done (the recipe keeps the last wall-time record then),
1 with one line on stderr on an error. Under Slurm or DDP, every rank runs the
task; the global rank 0 alone takes the lock and removes a folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

from ugr.io.cli import one_line_errors
from ugr.pipeline import config as config_lib
from ugr.pipeline import provenance, tracking, variants
from ugr.pipeline.experiment_dir import CONFIG_FILE, DONE_FILE, ExperimentBusy, ExperimentDir

CURRENT = 3  # exit status: the outputs were current, the task did nothing
MARKERS = (CONFIG_FILE, provenance.FILE, DONE_FILE)  # a folder with one of these is an experiment folder of ours


class NotOurs(ValueError):
    """A folder ``--force`` would remove that holds none of the files of an experiment folder."""


def log(message: str) -> None:
    """A line of the stage's log, as the recipe's shell writes them (time, source)."""
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} (task.py) {message}", flush=True)


def is_global_zero() -> bool:
    """Whether this process is the global rank 0 of its run: the one process of a run on one device, or rank 0
    of a Slurm job's tasks (``SLURM_PROCID``) or of DDP's processes (``RANK``, or Lightning's ``LOCAL_RANK`` and
    ``NODE_RANK`` in the processes it starts)."""
    procid = os.environ.get("SLURM_PROCID")
    if procid is not None:
        return procid.strip() == "0"
    return all(os.environ.get(name, "0").strip() in ("", "0") for name in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def check_ours(exp_dir: Path) -> None:
    """Refuses (``NotOurs``) a path that ``--force`` may not remove: anything but an experiment folder of ours,
    one holding config.yaml, provenance.json or train.done, or an empty one (or nothing at all)."""
    if not exp_dir.exists() and not exp_dir.is_symlink():
        return
    if exp_dir.is_symlink() or not exp_dir.is_dir():
        raise NotOurs(
            f"--force: {exp_dir} is not a folder (a link or a file), so not an experiment folder of ours; "
            f"it is left as it is: remove it yourself, or use another --exp or --tag"
        )
    if any(exp_dir.iterdir()) and not any((exp_dir / name).is_file() for name in MARKERS):
        raise NotOurs(
            f"--force: {exp_dir} is not an experiment folder (it has none of {', '.join(MARKERS)}); it is "
            f"left as it is: remove it yourself, or use another --exp or --tag"
        )


def remove_experiment(exp_dir: Path) -> None:
    """Removes ``exp_dir`` to train from scratch (``--force``), only when it is an experiment folder of ours
    (``check_ours``): never remove what this project did not make."""
    check_ours(exp_dir)
    if exp_dir.exists():
        log(f"stage 2: --force true: removing {exp_dir} to train from scratch")
        shutil.rmtree(exp_dir)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ugr.pipeline.task", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage", choices=("train", "score"), help="train (stage 2) or score (stage 3) the variant")
    parser.add_argument(
        "--index", type=int, help="the variant's number, from 0 (UGR_TASK_ID); left out: the run's one variant"
    )
    variants.add_run_options(parser)
    parser.add_argument("--data", type=Path, default=Path("data"), help="prepared data folder with its lists [data]")
    parser.add_argument("--exp", type=Path, default=Path("exp"), help="folder of the experiment folders [exp]")
    parser.add_argument(
        "--force",
        action="store_true",
        help="train from scratch (removing the folder), or score again, even when the outputs are current",
    )
    parser.add_argument("--ngpu", type=int, default=0, help="GPUs (0: CPU); scoring uses one when > 0 [0]")
    parser.add_argument("--num-nodes", type=int, default=1, help="training: nodes, --ngpu GPUs each (Slurm) [1]")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """The task; returns the exit status (0, or ``CURRENT`` when it did nothing)."""
    _, found = variants.run_variants(args)
    variant = variants.task_variant(found, args.index)
    index = 0 if args.index is None else args.index
    overrides: List[config_lib.Override] = variants.variant_override_list(args.override, variant)
    exp_dir = variants.variant_dir(args.exp, variant.name)  # inside --exp, or a ConfigError
    shown = " ".join(override.text for override in overrides)
    log(f"task {index}: {variant.config} -> {exp_dir}" + (f" (overrides: {shown})" if shown else ""))
    folder = ExperimentDir(exp_dir)
    rank_zero = is_global_zero()
    with folder.lock(rank_zero, busy="is in use"):
        if args.stage == "train":
            return _train(args, variant, overrides, folder, rank_zero)
        return _score(args, variant, overrides, folder)


def _train(
    args: argparse.Namespace,
    variant: variants.Variant,
    overrides: List[config_lib.Override],
    folder: ExperimentDir,
    rank_zero: bool,
) -> int:
    exp_dir = folder.path
    if args.force and rank_zero:
        check_ours(exp_dir)  # before anything else: a folder --force may not remove stops the task at once
    if not args.force:
        provenance.check(exp_dir, args.data)  # trained on another data folder: stop, do not skip
        if folder.is_done():
            log(
                f"stage 2: {exp_dir} is trained ({folder.done_file}) on {args.data}; skipping (--force true "
                f"retrains from scratch)"
            )
            return CURRENT
    cfg = config_lib.load(variant.config, overrides)
    from ugr.pipeline import train  # Lightning's imports: only when there is a training to run

    train.check_devices(cfg, variant.config, args.ngpu, args.num_nodes)
    if args.force and rank_zero:
        remove_experiment(exp_dir)
    train.train(cfg, exp_dir, args.data, args.ngpu, progress=sys.stderr.isatty(), num_nodes=args.num_nodes)
    log(f"stage 2: trained {exp_dir}")
    return 0


def _score(
    args: argparse.Namespace, variant: variants.Variant, overrides: List[config_lib.Override], folder: ExperimentDir
) -> int:
    exp_dir = folder.path
    if not folder.is_done():
        raise ValueError(f"{exp_dir} is not trained (no {folder.done_file}): run stage 2 first")
    provenance.check(exp_dir, args.data)  # its model and scores are this data's
    scoring = config_lib.load(variant.config, overrides).scoring
    from ugr.pipeline import score  # torch's imports: only when there is something to score

    device = "cuda" if args.ngpu > 0 else "cpu"
    score.check_device(device)
    stats = score.score(exp_dir, args.data, scoring=scoring, device=device, progress=False, force=args.force)
    print(score.summary_line(exp_dir, stats), flush=True)
    logged = tracking.log_scores(exp_dir)  # to the training's MLflow and W&B runs, if any, once per scores
    if logged:
        log(f"stage 3: logged {exp_dir / 'scores'} to the {' and '.join(logged)} run(s) of {tracking.RECORD_FILE}")
    return CURRENT if stats.get("up_to_date") and not logged else 0


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    with one_line_errors(
        args.stage, args.exp, config_lib.ConfigError, provenance.ProvenanceError, ExperimentBusy, ValueError
    ):
        status = run(args)
    sys.exit(status)


if __name__ == "__main__":
    main()
