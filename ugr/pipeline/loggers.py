"""Lightning's loggers of a training, as ``training.loggers`` names them (where they write, and what they log:
``ugr.pipeline.tracking``): the CSV logs and TensorBoard's built with the trainer, MLflow's and W&B's once the
training's checks have passed, and the callback that records the MLflow and W&B runs in ``tracking.json``."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger

from ugr.pipeline.config import ExperimentConfig
from ugr.pipeline.tracking import (
    DEFAULT_PROJECT,
    mlflow_location,
    read_record,
    run_params,
    wandb_settings,
    write_record,
)


def file_loggers(cfg: ExperimentConfig, exp_dir: Path) -> List[Logger]:
    """The loggers that write into the experiment folder, csv first (``trainer.logger``): built with the trainer,
    they write nothing before the training logs."""
    # Flushed at every logging step: a killed launch keeps the log of every epoch it finished.
    loggers: List[Logger] = [CSVLogger(exp_dir, name="csv", flush_logs_every_n_steps=1)]
    if "tensorboard" in cfg.training.loggers:
        loggers.append(TensorBoardLogger(exp_dir, name="tensorboard", default_hp_metric=False))
    return loggers


def tracker_loggers(cfg: ExperimentConfig, exp_dir: Path) -> List[Logger]:
    """The MLflow and W&B loggers ``training.loggers`` names, continuing the runs of ``tracking.json``; for the
    global rank 0, once the training's checks have passed (MLflow's client creates its store when built)."""
    record, params = read_record(exp_dir), run_params(cfg, exp_dir)
    loggers: List[Logger] = []
    if "mlflow" in cfg.training.loggers:
        uri, artifacts = mlflow_location(exp_dir)
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # "Creating initial MLflow database..."
        logging.getLogger("alembic").setLevel(logging.WARNING)
        loggers.append(
            _MLflow(
                params,
                experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_PROJECT,
                run_name=exp_dir.name,
                tracking_uri=uri,
                artifact_location=artifacts,
                run_id=_mlflow_run_to_continue(record.get("mlflow"), uri),
            )
        )
    if "wandb" in cfg.training.loggers:
        settings = wandb_settings(exp_dir)
        previous = record.get("wandb") or {}
        same = previous.get("project") == settings["project"] and previous.get("mode") == settings["mode"]
        loggers.append(
            _Wandb(
                params,
                name=exp_dir.name,
                save_dir=settings["dir"],
                project=settings["project"],
                id=previous.get("id") if same else None,
                mode=settings["mode"],
            )
        )
    return loggers


def _mlflow_run_to_continue(previous: Optional[Mapping[str, Any]], uri: str) -> Optional[str]:
    """The recorded MLflow run when it lives in the store ``uri`` (set running again), else None: a new run."""
    if not previous or previous.get("tracking_uri") != uri or not previous.get("run_id"):
        return None
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    try:
        client.update_run(previous["run_id"], status="RUNNING")
    except MlflowException:
        print(
            f"train: the MLflow run {previous['run_id']} recorded in tracking.json is not in {uri}; starting a new run"
        )
        return None
    return str(previous["run_id"])


class _MLflow(MLFlowLogger):
    """Lightning's MLflow logger with the run's parameters (``run_params``) for the module's hyperparameters."""

    def __init__(self, params: Dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.params, self.tracking_uri = params, kwargs["tracking_uri"]

    def log_hyperparams(self, params: Any) -> None:
        super().log_hyperparams(self.params)


class _Wandb(WandbLogger):
    """Lightning's W&B logger with the run's parameters (``run_params``) as its config, whose run ends with the
    training (else it would end at the process's exit, and a second training in the process would reuse it)."""

    def __init__(self, params: Dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._wandb_init.pop("anonymous", None)  # Lightning's default, which wandb warns has no effect
        self.params, self.mode = params, kwargs["mode"]

    def log_hyperparams(self, params: Any) -> None:
        super().log_hyperparams(self.params)

    def finalize(self, status: str) -> None:
        super().finalize(status)
        if self._experiment is not None:
            self._experiment.finish(exit_code=0 if status == "success" else 1)
            self._experiment = None


class RecordRuns(Callback):
    """Writes the MLflow and W&B runs' ids to ``EXP_DIR/tracking.json`` when the training starts (rank 0)."""

    def __init__(self, exp_dir: Path) -> None:
        self.exp_dir = exp_dir

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        record = read_record(self.exp_dir)
        before = {name: dict(record.get(name) or {}) for name in ("mlflow", "wandb")}
        for logger in trainer.loggers:
            if isinstance(logger, _MLflow):
                record["mlflow"] = {
                    "tracking_uri": logger.tracking_uri,
                    "experiment_id": logger.experiment_id,
                    "run_id": logger.run_id,
                }
            elif isinstance(logger, _Wandb):
                run = logger.experiment
                record["wandb"] = {
                    "id": run.id,
                    "project": run.project,
                    "mode": logger.mode,
                    "dir": str(logger.save_dir),
                    "run_dir": str(Path(run.dir).parent),
                }
        if all(record.get(name, {}) == runs for name, runs in before.items()):
            return  # no tracker, or the same runs continued: nothing new to record (no tracking.json without one)
        if any(
            record.get(name, {}).get(key) != runs.get(key) for name, runs in before.items() for key in ("run_id", "id")
        ):
            record.pop("scores_logged", None)  # a new run has none of the scores yet
        write_record(self.exp_dir, record)
