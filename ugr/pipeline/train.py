"""Stage 2: train one experiment, resuming from its last checkpoint when there is one.

Everything an experiment produces lives in its folder (``--exp-dir``):

    config.yaml                  the resolved config it was trained with
    provenance.json              the data (folder, manifests, lists) and code of every launch (ugr.pipeline.provenance)
    checkpoints/epoch=N.ckpt     the last ``scoring.average_last_k`` epochs (for averaging)
    checkpoints/last.ckpt        the end of the latest epoch (resume point)
    checkpoints/best.ckpt        the best epoch by validation SI-SDRi
    hpc_ckpt_N.ckpt              mid-epoch state saved by Lightning when Slurm preempts the job
    csv/version_V/metrics.csv    training loss, ESS, max p, validation SI-SDRi (one version per launch)
    tensorboard/version_V/       the same for TensorBoard (training.loggers: csv is always there, the others named)
    mlflow/, wandb/              the same for MLflow and W&B, by default (named; ugr.pipeline.tracking)
    tracking.json                the MLflow and W&B runs' ids (named), which a resumed training continues
    train.done                   written last (JSON): training finished

A run killed at any point loses at most its current epoch: the next launch
with the same config and data resumes from the newest of ``last.ckpt`` and
``hpc_ckpt_N.ckpt`` (on Slurm, Lightning's SLURMEnvironment saves the latter
and requeues the job by itself when the job is signalled before its end), and
continues the same stream of training mixtures, at the batch the checkpoint
ends at: the result is bit-identical to an uninterrupted run's. The resume
point is unpickled as plain data only (``ugr.pipeline.checkpoints.load_checkpoint``):
a shared folder whose checkpoint would run code when loaded is refused.

A training that cannot end as trained fails (exit status 1, one line, no
train.done): one that diverges (a loss or a parameter that is not finite after
a step, ``StopOnDivergence``, or a validation SI-SDRi that is not finite at
the end), naming the step and the likely causes; and one stopped by SIGTERM
outside Slurm ("stopped by SIGTERM at step N"; the next launch resumes from
the last checkpoint). Under Slurm the SIGTERM is Slurm's and requeues the job.

A folder trained with another config or on other data is refused, not
resumed or reported as done; config.yaml and provenance.json are written once
the training starts, so a launch that fails before leaves nothing that a
corrected rerun would be refused for. One training per folder at a time: a
second is refused while the first runs (the lock ``.<folder>.lock`` beside it,
released when the first ends or is killed; the recipe's stage 2 runs this
training through ``python -m ugr.pipeline.task``, which holds that lock).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.accelerators import CUDAAccelerator
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader

from ugr.data.dataset import EpochSampler, ListedMixtures, OnTheFlyMixtures, PublishedCrops, collate_mixtures
from ugr.io.atomic import atomic_write_text
from ugr.io.cli import gpu_problem, one_line_errors
from ugr.pipeline import config as config_lib
from ugr.pipeline import efficiency, loggers, provenance, tracking
from ugr.pipeline.checkpoints import atomic_torch_save, load_checkpoint
from ugr.pipeline.config import ExperimentConfig
from ugr.pipeline.corpus_check import check_corpus
from ugr.pipeline.experiment_dir import ExperimentBusy, ExperimentDir
from ugr.pipeline.lists import lists_dir
from ugr.pipeline.system import SeparationSystem

VALID_LIST = "valid.csv"


class MixtureData(pl.LightningDataModule):
    """Fresh training mixtures every epoch (drawn from the sources, or crops of published mixtures);
    the fixed validation list of stage 1.

    The training sampler is built once the trainer knows this process's rank,
    so that each DDP rank draws its own share of the epoch's mixtures, and the
    restored step of a resumed training: one batch per optimizer step, so
    ``global_step`` batches are done and the stream continues after them.
    """

    def __init__(self, cfg: ExperimentConfig, data_dir: Path, ngpu: int, num_nodes: int = 1) -> None:
        super().__init__()
        self.cfg, self.data_dir = cfg, data_dir
        self.lists_dir = lists_dir(cfg, data_dir)
        world = max(ngpu, 1) * num_nodes
        batch = cfg.training.batch_size
        if batch % world:
            raise ValueError(
                f"training.batch_size ({batch}) must be a multiple of the number of GPUs, all nodes "
                f"together ({world}): "
                f"it is the global batch the pmf spans, split evenly over the GPUs"
            )
        self.per_device_batch = batch // world
        if self.per_device_batch % cfg.training.micro_batches:
            raise ValueError(
                f"the per-GPU batch ({self.per_device_batch}) must be a multiple of "
                f"training.micro_batches ({cfg.training.micro_batches})"
            )

    def train_dataloader(self) -> DataLoader:
        data = self.cfg.data
        kind = PublishedCrops if data.train_from == config_lib.PUBLISHED else OnTheFlyMixtures
        dataset = kind(self.data_dir, "train", data.mixing_settings(), data.train_mixtures_per_epoch)
        sampler = EpochSampler(
            len(dataset),
            rank=self.trainer.global_rank,
            world_size=self.trainer.world_size,
            batch_size=self.per_device_batch,
            batches_done=self.trainer.global_step,
        )
        return DataLoader(dataset, batch_size=self.per_device_batch, sampler=sampler, drop_last=True, **self._loading())

    def val_dataloader(self) -> DataLoader:
        list_path = self.lists_dir / VALID_LIST
        if not list_path.is_file():
            raise FileNotFoundError(f"{list_path}: validation mixture list missing; run stage 1 (mixture lists) first")
        dataset = ListedMixtures(self.data_dir, list_path, sample_rate=self.cfg.data.sample_rate)
        # Published mixtures keep their own lengths: one at a time.
        batch_size = self.cfg.training.valid_batch_size if dataset.fixed_length else 1
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, **self._loading())

    def _loading(self) -> Dict[str, Any]:
        """How both loaders load: workers kept across epochs (no new processes per epoch, for validation
        too), batches in pinned memory on a GPU so that Lightning's non-blocking copy overlaps the step."""
        workers = self.cfg.training.num_workers
        return {
            "num_workers": workers,
            "persistent_workers": workers > 0,
            "collate_fn": collate_mixtures,
            "pin_memory": isinstance(self.trainer.accelerator, CUDAAccelerator),
        }


TRAINING_SECTIONS = ("data", "model", "weighting", "training")  # scoring settings do not change the model
NOT_TRAINING_KEYS = ("training.loggers",)  # where the figures go does not change the model either


def _check_same_config(exp_dir: Path, cfg: ExperimentConfig) -> None:
    """Refuses to resume an experiment folder with a different config: the result would be neither run."""
    folder = ExperimentDir(exp_dir)
    saved, cfg = folder.saved_config(), cfg.record
    if saved is not None and folder.trained():
        changed = sorted(
            f"{section}.{key}"
            for section in TRAINING_SECTIONS
            for key in set(saved.get(section, {})) | set(cfg.get(section, {}))
            if saved.get(section, {}).get(key) != cfg.get(section, {}).get(key)
            and f"{section}.{key}" not in NOT_TRAINING_KEYS
        )
        if changed:
            raise config_lib.ConfigError(
                f"{exp_dir}: was trained with a different config (changed: {', '.join(changed)}); use another "
                f"--exp-dir (run.sh --tag) or delete {exp_dir} to start over"
            )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO whose saves are atomic on local disks and whose loads (resume) unpickle plain
    data only, through ``ugr.pipeline.checkpoints.load_checkpoint`` (its module docstring says why for both)."""

    def save_checkpoint(self, checkpoint: Dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        atomic_torch_save(checkpoint, Path(path))

    def load_checkpoint(self, path, map_location: Any = "cpu", weights_only: Optional[bool] = None) -> Dict[str, Any]:
        """Every resume, whatever Lightning asks for: ``weights_only=False`` would run a shared file's code."""
        return load_checkpoint(Path(path), map_location="cpu" if map_location is None else map_location)


class RecordExperiment(Callback):
    """Writes config.yaml (when the folder holds no training yet) and provenance.json once the training
    starts: after the data, the model and the devices are set up, so that an early failure leaves none."""

    def __init__(self, cfg: ExperimentConfig, exp_dir: Path, data_dir: Path) -> None:
        self.cfg, self.exp_dir, self.data_dir = cfg, exp_dir, data_dir

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            folder = ExperimentDir(self.exp_dir)
            if not folder.trained():
                folder.save_config(self.cfg)
            provenance.record_launch(self.exp_dir, self.cfg, self.data_dir, self.device(trainer))

    @staticmethod
    def device(trainer: pl.Trainer) -> str:
        """What the training runs on: the CPU's model and cores, or the GPUs' names (per node, times the nodes)."""
        if trainer.strategy.root_device.type != "cuda":
            return provenance.cpu_device()
        ids = trainer.device_ids or [trainer.strategy.root_device.index or 0]
        return provenance.gpu_device([torch.cuda.get_device_name(i) for i in ids], trainer.num_nodes)


class DeferredRequeue(Callback):
    """Runs Lightning's Slurm requeue (on the warning signal, ``--signal=B:USR1@90``: save
    ``hpc_ckpt_N.ckpt``, ``scontrol requeue``) at the end of the training batch in progress, not inside
    the signal handler: there it hangs whenever the signal lands while the main thread flushes
    TensorBoard (which it does every step), as the handler flushes it again under the same lock.
    The checkpoint then ends at a whole batch, where the resumed training continues."""

    def __init__(self) -> None:
        self._pending: Optional[tuple] = None
        self._requeue = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        handler = signal.getsignal(signal.SIGUSR1)  # Lightning's has been registered by now, under Slurm only
        if callable(handler):
            self._requeue = handler
            signal.signal(signal.SIGUSR1, lambda *received: setattr(self, "_pending", received))

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self._pending is not None and self._requeue is not None:
            received, self._pending = self._pending, None
            self._requeue(*received)


class TrainingFailed(ValueError):
    """A training that cannot end as trained: it diverged, or it was stopped by SIGTERM (outside Slurm). The
    entry points print it as one line and exit 1; no train.done is written."""


def divergence_causes(cfg: ExperimentConfig) -> str:
    """The settings that most often make a training diverge, with this config's values."""
    weighting = cfg.record.get("weighting", {})
    scale = ", ".join(f"{key} {weighting[key]!r}" for key in ("alpha", "gamma", "beta0") if key in weighting)
    return (
        f"likely causes: a learning rate too high (training.lr {cfg.training.lr:g}; training.clip "
        f"{cfg.training.clip}), the mixtures' SNR range (data.snr_range {list(cfg.data.snr_range)}), the "
        f"weighting's scale (weighting.alpha/gamma/beta0 where its type has them{': ' + scale if scale else ''}); "
        f"fix the config and train again from scratch (--force)"
    )


def _loss_of(outputs: Any) -> Optional[torch.Tensor]:
    """The training step's loss from Lightning's ``outputs`` (a tensor, or a mapping with ``loss``)."""
    if isinstance(outputs, dict):
        outputs = outputs.get("loss")
    return outputs if isinstance(outputs, torch.Tensor) else None


class StopOnDivergence(Callback):
    """Stops the training (``TrainingFailed``) at the first step whose loss is not finite, or after which a
    parameter is not finite (NaN or inf), naming the step, the epoch and the likely causes: a diverged
    training would otherwise run to its end on NaN and be reported as trained. One device-to-host copy per
    step; under DDP the ranks agree (one all-reduce of the flag) so that all of them stop at the same step."""

    def __init__(self, cfg: ExperimentConfig) -> None:
        self.cfg = cfg

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, *args: Any) -> None:
        loss = _loss_of(outputs)
        params = [p.detach() for p in pl_module.parameters()]
        sums = torch.stack([p.sum(dtype=torch.float32) for p in params]) if params else torch.zeros(1)
        flags = torch.stack(
            [
                torch.isfinite(loss.detach().float()).all()
                if loss is not None
                else torch.tensor(True, device=sums.device),
                torch.isfinite(sums).all(),
            ]
        ).to(sums.device)
        bad_loss, bad_params = (not bool(flag) for flag in flags.tolist())
        if not trainer.strategy.reduce_boolean_decision(bad_loss or bad_params, all=False):
            return
        shown = f"{float(loss):g}" if loss is not None and loss.numel() == 1 else "not finite"
        what = (
            f"the training loss is {shown}"
            if bad_loss
            else "a parameter is not finite (NaN or inf) after the optimizer step"
            if bad_params
            else "another rank's loss or parameters are not finite"
        )
        if bad_params and not bad_loss:
            named = next(
                (name for name, p in pl_module.named_parameters() if not torch.isfinite(p.detach()).all()), None
            )
            what += f" ({named})" if named else ""
        raise TrainingFailed(
            f"training diverged at step {trainer.global_step} (epoch {trainer.current_epoch + 1}/"
            f"{trainer.max_epochs}): {what}; {divergence_causes(self.cfg)}"
        )


def _under_slurm_requeue(trainer: pl.Trainer) -> bool:
    """Whether Lightning runs under Slurm with its auto-requeue (SLURMEnvironment): a SIGTERM there is Slurm's,
    and the job is requeued by the signal it was given first (``DeferredRequeue``)."""
    environment = getattr(trainer._accelerator_connector, "cluster_environment", None)
    return isinstance(environment, SLURMEnvironment) and bool(getattr(environment, "auto_requeue", False))


class EpochLine(Callback):
    """One line per epoch for logs (where a progress bar would fill the file with carriage returns)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.monotonic()  # a launch resumed mid-epoch starts with no epoch start

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        parts = [
            f"{label} {float(metrics[key]):.3f}"
            for key, label in (
                ("train/loss_epoch", "train loss"),
                ("val/si_sdri", "valid SI-SDRi (dB)"),
                ("train/ess_epoch", "ESS"),
            )
            if key in metrics
        ]
        print(
            f"train: epoch {trainer.current_epoch + 1}/{trainer.max_epochs}, step {trainer.global_step}: "
            f"{', '.join(parts)} ({time.monotonic() - self.start:.0f} s)",
            flush=True,
        )


def quiet_lightning_notices() -> None:
    """Drops three Lightning notices that say nothing about this run from the stage logs: the srun hint (Slurm's
    client is installed but the local backend runs; Slurm jobs go through srun, tools/launch.sh), a deprecation
    inside Lightning's own code, and the advertisement for a cloud logger."""
    warnings.filterwarnings("ignore", message=".*The `srun` command is available on your system but is not used")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated")

    class NoAdvert(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "litlogger" not in record.getMessage()

    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(NoAdvert())


def build_trainer(
    cfg: ExperimentConfig, exp_dir: Path, data_dir: Path, ngpu: int, progress: bool = True, num_nodes: int = 1
) -> pl.Trainer:
    """The Lightning trainer: per-epoch + best checkpoints (atomic), the CSV logs and TensorBoard's (as
    ``training.loggers`` says; MLflow and W&B join in ``train``, once its checks pass), the config and provenance
    records. A tracker whose package is missing stops it here (``tracking.check_installed``).

    Several nodes only under Slurm: Lightning's SLURMEnvironment takes the ranks
    from srun's tasks (one per GPU) and checks them against ``num_nodes``.
    """
    quiet_lightning_notices()
    tracking.check_installed(cfg)
    ckpt_dir = ExperimentDir(exp_dir).checkpoints
    keep_epochs = ModelCheckpoint(  # "the top k by epoch number" = the last k epochs
        dirpath=ckpt_dir,
        filename="epoch={epoch}",
        auto_insert_metric_name=False,
        monitor="epoch",
        mode="max",
        save_top_k=cfg.scoring.average_last_k,
        every_n_epochs=1,
        save_last=True,
    )
    keep_best = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor="val/si_sdri",
        mode="max",
        save_top_k=1,
        auto_insert_metric_name=False,
    )
    callbacks = [
        StopOnDivergence(cfg),
        keep_epochs,
        keep_best,
        RecordExperiment(cfg, exp_dir, data_dir),
        DeferredRequeue(),
        loggers.RecordRuns(exp_dir),
    ]
    callbacks.append(TQDMProgressBar(refresh_rate=1) if progress else EpochLine())
    return pl.Trainer(
        max_epochs=cfg.training.epochs,
        accelerator="gpu" if ngpu > 0 else "cpu",
        devices=ngpu if ngpu > 0 else 1,
        num_nodes=num_nodes,
        strategy="ddp" if ngpu * num_nodes > 1 else "auto",
        precision=cfg.training.precision,
        callbacks=callbacks,
        logger=loggers.file_loggers(cfg, exp_dir),
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,
        deterministic="warn",
        num_sanity_val_steps=0,
        log_every_n_steps=cfg.training.log_every_n_steps,
        enable_progress_bar=progress,
        enable_model_summary=False,
        default_root_dir=exp_dir,  # where Lightning's SLURM requeue writes its hpc_ckpt_N.ckpt
    )


def resume_checkpoint(exp_dir: Path) -> Optional[Path]:
    """The newest of last.ckpt (end of an epoch) and a SLURM-requeue checkpoint (mid-epoch), if any."""
    candidates = [ExperimentDir(exp_dir).checkpoints / "last.ckpt", *exp_dir.glob("hpc_ckpt_*.ckpt")]
    existing = [p for p in candidates if p.is_file()]
    return max(existing, key=lambda p: p.stat().st_mtime) if existing else None


def train(
    cfg: ExperimentConfig, exp_dir: Path, data_dir: Path, ngpu: int = 0, progress: bool = True, num_nodes: int = 1
) -> Dict[str, Any]:
    """Trains (or resumes, or finds finished) one experiment; returns the summary written to train.done."""
    trainer = build_trainer(cfg, exp_dir, data_dir, ngpu, progress, num_nodes)
    folder = ExperimentDir(exp_dir)
    with folder.lock(trainer.is_global_zero):
        done = folder.done_file
        _check_same_config(exp_dir, cfg)
        provenance.check(exp_dir, data_dir, cfg)
        if done.is_file():
            print(f"train: {exp_dir} already trained ({done}); delete that file to train again")
            return json.loads(done.read_text())
        check_corpus(cfg, data_dir, str(folder.config_file))
        pl.seed_everything(cfg.training.seed, workers=True, verbose=False)
        efficiency.set_tf32(cfg.training.tf32)
        efficiency.keep_freed_memory(cfg.training.keep_freed_memory)
        system = SeparationSystem(cfg)
        data = MixtureData(cfg, data_dir, ngpu, num_nodes)
        resume = resume_checkpoint(exp_dir)
        if resume and trainer.is_global_zero:
            print(f"train: resuming from {resume}")
        if trainer.is_global_zero:
            # MLflow's and W&B's loggers log on rank 0 alone, and are built once the checks above have passed:
            # MLflow's client creates its store when built, and a refused launch must leave the folder as it was.
            trainer.loggers = [*trainer.loggers, *loggers.tracker_loggers(cfg, exp_dir)]
        with warnings.catch_warnings():
            # Lightning cannot tell that EpochSampler resumes mid-epoch at the checkpoint's batch.
            warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended")
            try:
                trainer.fit(system, datamodule=data, ckpt_path=str(resume) if resume else None)
            except SIGTERMException:
                if _under_slurm_requeue(trainer):
                    raise  # Slurm's: the job is requeued (DeferredRequeue), and resumes
                raise TrainingFailed(
                    f"stopped by SIGTERM at step {trainer.global_step}; the next run resumes from the last checkpoint"
                ) from None
        best = trainer.checkpoint_callbacks[1]
        summary = {
            "epochs": trainer.current_epoch,
            "best_checkpoint": best.best_model_path,
            "best_val_si_sdri": float("nan") if best.best_model_score is None else float(best.best_model_score),
        }
        last_val = trainer.callback_metrics.get("val/si_sdri")
        last_ok = last_val is None or math.isfinite(float(last_val))
        if not math.isfinite(summary["best_val_si_sdri"]) or not last_ok:
            raise TrainingFailed(
                f"training ended at step {trainer.global_step} (epoch {trainer.current_epoch}) "
                f"with a validation SI-SDRi that is not finite (best {summary['best_val_si_sdri']}, "
                f"last {None if last_val is None else float(last_val)}): the model diverged; "
                f"{divergence_causes(cfg)}"
            )
        if trainer.is_global_zero:
            atomic_write_text(done, json.dumps(summary, indent=2) + "\n")
            print(
                f"train: finished {exp_dir} ({summary['epochs']} epochs, best val SI-SDRi "
                f"{summary['best_val_si_sdri']:.2f} dB)"
            )
        return summary


def check_devices(cfg: ExperimentConfig, config: Path, ngpu: int, num_nodes: int = 1) -> None:
    """ValueError saying why ``ngpu`` GPUs on ``num_nodes`` nodes cannot train ``cfg`` (from the file ``config``)
    here: said before Lightning or torch would fail with a traceback, or change the precision silently."""
    if ngpu < 0:
        raise ValueError(f"--ngpu must be >= 0, got {ngpu}")
    if num_nodes < 1 or (num_nodes > 1 and ngpu == 0):
        raise ValueError(f"--num-nodes must be 1, or more with --ngpu >= 1; got --num-nodes {num_nodes} --ngpu {ngpu}")
    problem = gpu_problem(ngpu, f"--ngpu {ngpu}") if ngpu > 0 else None
    if problem:
        raise ValueError(problem)
    if ngpu == 0 and cfg.training.precision == "16-mixed":  # Lightning would switch to bf16 silently
        raise ValueError(
            f"{config}: training.precision 16-mixed needs a GPU (--ngpu >= 1); on CPU use bf16-mixed or 32-true"
        )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ugr.pipeline.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, type=Path, help="experiment YAML (see conf/)")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="[EXPERIMENT:]SECTION.KEY=VALUE ..., e.g. 'training.lr=5e-4' (see ugr.pipeline.config)",
    )
    parser.add_argument("--exp-dir", required=True, type=Path, help="experiment folder (created; resumed if it exists)")
    parser.add_argument(
        "--data",
        required=True,
        type=Path,
        help=f"prepared data folder (stage 0 output; its lists/<key>/{VALID_LIST} from stage 1)",
    )
    parser.add_argument("--ngpu", type=int, default=0, help="GPUs to use (0: CPU; >1: DDP, one process per GPU)")
    parser.add_argument(
        "--num-nodes",
        type=int,
        default=1,
        help="nodes, each with --ngpu GPUs (Slurm: one srun task per GPU, see tools/slurm/README.md)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="one line per epoch instead of a progress bar (the default when stderr is not a terminal)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    with one_line_errors(
        "train", args.exp_dir, config_lib.ConfigError, provenance.ProvenanceError, ExperimentBusy, ValueError
    ):  # TrainingFailed too
        cfg = config_lib.load(args.config, config_lib.parse_overrides(args.override))
        check_devices(cfg, args.config, args.ngpu, args.num_nodes)
        train(
            cfg,
            args.exp_dir,
            args.data,
            args.ngpu,
            progress=sys.stderr.isatty() and not args.no_progress,
            num_nodes=args.num_nodes,
        )


if __name__ == "__main__":
    main()
