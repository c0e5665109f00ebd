"""Stage 2: train one experiment, resuming from its last checkpoint when there is one.

Everything an experiment produces lives in its folder (``--exp-dir``):

    config.yaml                  the resolved config it was trained with
    checkpoints/epoch=N.ckpt     the last ``scoring.average_last_k`` epochs (for averaging)
    checkpoints/last.ckpt        the end of the latest epoch (resume point)
    checkpoints/best.ckpt        the best epoch by validation SI-SDRi
    hpc_ckpt_N.ckpt              mid-epoch state saved by Lightning when Slurm preempts the job
    csv/version_V/metrics.csv    training loss, ESS, max p, validation SI-SDRi (one version per launch)
    tensorboard/version_V/       the same for TensorBoard
    train.done                   written last (JSON): training finished

A run killed at any point loses at most its current epoch: the next launch
with the same config resumes from the newest of ``last.ckpt`` and
``hpc_ckpt_N.ckpt`` (on Slurm, Lightning's SLURMEnvironment saves the latter
and requeues the job by itself when the job is signalled before its end).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

import pytorch_lightning as pl
import yaml
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from torch.utils.data import DataLoader

from ugr import config as config_lib
from ugr.atomic import atomic_write_text
from ugr.checkpoints import AtomicCheckpointIO
from ugr.data.dataset import EpochSampler, ListedMixtures, OnTheFlyMixtures, PublishedCrops, collate_mixtures
from ugr.data.mixing import MixingSettings
from ugr.system import SeparationSystem

DONE_FILE = "train.done"
VALID_LIST = "valid.csv"


class MixtureData(pl.LightningDataModule):
    """Fresh training mixtures every epoch (drawn from the sources, or crops of published mixtures);
    the fixed validation list of stage 1.

    The training sampler is built once the trainer knows this process's rank,
    so that each DDP rank draws its own share of the epoch's mixtures.
    """

    def __init__(self, cfg: Dict[str, Any], data_dir: Path, ngpu: int, num_nodes: int = 1) -> None:
        super().__init__()
        self.cfg, self.data_dir = cfg, data_dir
        self.lists_dir = config_lib.lists_dir(cfg, data_dir)
        world = max(ngpu, 1) * num_nodes
        batch = cfg["training"]["batch_size"]
        if batch % world:
            raise ValueError(f"training.batch_size ({batch}) must be a multiple of the number of GPUs, all nodes "
                             f"together ({world}): "
                             f"it is the global batch the pmf spans, split evenly over the GPUs")
        self.per_device_batch = batch // world
        if self.per_device_batch % cfg["training"]["micro_batches"]:
            raise ValueError(f"the per-GPU batch ({self.per_device_batch}) must be a multiple of "
                             f"training.micro_batches ({cfg['training']['micro_batches']})")

    def train_dataloader(self) -> DataLoader:
        data, training = self.cfg["data"], self.cfg["training"]
        kind = PublishedCrops if data["train_from"] == config_lib.PUBLISHED else OnTheFlyMixtures
        dataset = kind(self.data_dir, "train", MixingSettings.from_config(data), data["train_mixtures_per_epoch"])
        sampler = EpochSampler(len(dataset), rank=self.trainer.global_rank, world_size=self.trainer.world_size)
        return DataLoader(dataset, batch_size=self.per_device_batch, sampler=sampler, drop_last=True,
                          num_workers=training["num_workers"], collate_fn=collate_mixtures,
                          persistent_workers=training["num_workers"] > 0)

    def val_dataloader(self) -> DataLoader:
        list_path = self.lists_dir / VALID_LIST
        if not list_path.is_file():
            raise FileNotFoundError(f"{list_path}: validation mixture list missing; run stage 1 (mixture lists) first")
        dataset = ListedMixtures(self.data_dir, list_path, sample_rate=self.cfg["data"]["sample_rate"])
        # Published mixtures keep their own lengths: one at a time.
        batch_size = self.cfg["training"]["valid_batch_size"] if dataset.fixed_length else 1
        return DataLoader(dataset, batch_size=batch_size, shuffle=False,
                          num_workers=self.cfg["training"]["num_workers"], collate_fn=collate_mixtures)


TRAINING_SECTIONS = ("data", "model", "weighting", "training")  # scoring settings do not change the model


def _check_same_config(exp_dir: Path, cfg: Dict[str, Any]) -> None:
    """Refuses to resume an experiment folder with a different config: the result would be neither run."""
    saved_path = exp_dir / "config.yaml"
    if saved_path.is_file():
        saved = yaml.safe_load(saved_path.read_text())
        changed = sorted(f"{section}.{key}" for section in TRAINING_SECTIONS
                         for key in set(saved.get(section, {})) | set(cfg.get(section, {}))
                         if saved.get(section, {}).get(key) != cfg.get(section, {}).get(key))
        if changed:
            raise SystemExit(f"{exp_dir}: was trained with a different config (changed: {', '.join(changed)}); "
                             f"use another --exp-dir (run.sh --tag) or delete {exp_dir} to start over")


class EpochLine(Callback):
    """One line per epoch for logs (where a progress bar would fill the file with carriage returns)."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        parts = [f"{label} {float(metrics[key]):.3f}" for key, label in
                 (("train/loss_epoch", "train loss"), ("val/si_sdri", "valid SI-SDRi (dB)"), ("train/ess_epoch", "ESS"))
                 if key in metrics]
        print(f"train: epoch {trainer.current_epoch + 1}/{trainer.max_epochs}, step {trainer.global_step}: "
              f"{', '.join(parts)} ({time.monotonic() - self.start:.0f} s)", flush=True)


def build_trainer(cfg: Dict[str, Any], exp_dir: Path, ngpu: int, progress: bool = True,
                  num_nodes: int = 1) -> pl.Trainer:
    """The Lightning trainer: per-epoch + best checkpoints (atomic), CSV + TensorBoard logs.

    Several nodes only under Slurm: Lightning's SLURMEnvironment takes the ranks
    from srun's tasks (one per GPU) and checks them against ``num_nodes``.
    """
    ckpt_dir = exp_dir / "checkpoints"
    keep_epochs = ModelCheckpoint(  # "the top k by epoch number" = the last k epochs
        dirpath=ckpt_dir, filename="epoch={epoch}", auto_insert_metric_name=False, monitor="epoch", mode="max",
        save_top_k=cfg["scoring"]["average_last_k"], every_n_epochs=1, save_last=True)
    keep_best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/si_sdri", mode="max", save_top_k=1,
                                auto_insert_metric_name=False)
    callbacks = [keep_epochs, keep_best]
    callbacks.append(TQDMProgressBar(refresh_rate=1) if progress else EpochLine())
    return pl.Trainer(
        max_epochs=cfg["training"]["epochs"],
        accelerator="gpu" if ngpu > 0 else "cpu",
        devices=ngpu if ngpu > 0 else 1,
        num_nodes=num_nodes,
        strategy="ddp" if ngpu * num_nodes > 1 else "auto",
        precision=cfg["training"]["precision"],
        callbacks=callbacks,
        # Flushed every step: a killed launch keeps the log of every epoch it finished.
        logger=[CSVLogger(exp_dir, name="csv", flush_logs_every_n_steps=1),
                TensorBoardLogger(exp_dir, name="tensorboard", default_hp_metric=False)],
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,
        deterministic="warn",
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        enable_progress_bar=progress,
        enable_model_summary=False,
        default_root_dir=exp_dir,  # where Lightning's SLURM requeue writes its hpc_ckpt_N.ckpt
    )


def resume_checkpoint(exp_dir: Path) -> Optional[Path]:
    """The newest of last.ckpt (end of an epoch) and a SLURM-requeue checkpoint (mid-epoch), if any."""
    candidates = [exp_dir / "checkpoints" / "last.ckpt", *exp_dir.glob("hpc_ckpt_*.ckpt")]
    existing = [p for p in candidates if p.is_file()]
    return max(existing, key=lambda p: p.stat().st_mtime) if existing else None


def train(cfg: Dict[str, Any], exp_dir: Path, data_dir: Path, ngpu: int = 0,
          progress: bool = True, num_nodes: int = 1) -> Dict[str, Any]:
    """Trains (or resumes, or finds finished) one experiment; returns the summary written to train.done."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    done = exp_dir / DONE_FILE
    _check_same_config(exp_dir, cfg)
    if done.is_file():
        print(f"train: {exp_dir} already trained ({done}); delete that file to train again")
        return json.loads(done.read_text())
    config_lib.check_corpus(cfg, data_dir, str(exp_dir / "config.yaml"))
    if not (exp_dir / "config.yaml").is_file():
        config_lib.dump(cfg, exp_dir / "config.yaml")
    pl.seed_everything(cfg["training"]["seed"], workers=True, verbose=False)
    system = SeparationSystem(cfg)
    trainer = build_trainer(cfg, exp_dir, ngpu, progress, num_nodes)
    resume = resume_checkpoint(exp_dir)
    if resume and trainer.is_global_zero:
        print(f"train: resuming from {resume}")
    trainer.fit(system, datamodule=MixtureData(cfg, data_dir, ngpu, num_nodes),
                ckpt_path=str(resume) if resume else None)
    summary = {
        "epochs": trainer.current_epoch,
        "best_checkpoint": trainer.checkpoint_callbacks[1].best_model_path,
        "best_val_si_sdri": float(trainer.checkpoint_callbacks[1].best_model_score or float("nan")),
    }
    if trainer.is_global_zero:
        atomic_write_text(done, json.dumps(summary, indent=2) + "\n")
        print(f"train: finished {exp_dir} ({summary['epochs']} epochs, best val SI-SDRi "
              f"{summary['best_val_si_sdri']:.2f} dB)")
    return summary


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ugr.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, type=Path, help="experiment YAML (see conf/)")
    parser.add_argument("--override", action="append", default=[],
                        help="[EXPERIMENT:]SECTION.KEY=VALUE ..., e.g. 'training.lr=5e-4' (see ugr.config)")
    parser.add_argument("--exp-dir", required=True, type=Path, help="experiment folder (created; resumed if it exists)")
    parser.add_argument("--data", required=True, type=Path,
                        help=f"prepared data folder (stage 0 output; its lists/<key>/{VALID_LIST} from stage 1)")
    parser.add_argument("--ngpu", type=int, default=0, help="GPUs to use (0: CPU; >1: DDP, one process per GPU)")
    parser.add_argument("--num-nodes", type=int, default=1,
                        help="nodes, each with --ngpu GPUs (Slurm: one srun task per GPU, see tools/slurm/README.md)")
    parser.add_argument("--no-progress", action="store_true",
                        help="one line per epoch instead of a progress bar (the default when stderr is not a terminal)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        cfg = config_lib.load(args.config, config_lib.parse_overrides(args.override))
    except config_lib.ConfigError as err:
        sys.exit(f"train: {err}")
    if args.ngpu < 0:
        sys.exit(f"train: --ngpu must be >= 0, got {args.ngpu}")
    if args.num_nodes < 1 or (args.num_nodes > 1 and args.ngpu == 0):
        sys.exit(f"train: --num-nodes must be 1, or more with --ngpu >= 1; got --num-nodes {args.num_nodes} "
                 f"--ngpu {args.ngpu}")
    try:
        train(cfg, args.exp_dir, args.data, args.ngpu, progress=sys.stderr.isatty() and not args.no_progress,
              num_nodes=args.num_nodes)
    except config_lib.ConfigError as err:
        sys.exit(f"train: {err}")


if __name__ == "__main__":
    main()
