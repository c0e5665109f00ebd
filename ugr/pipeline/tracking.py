"""Where a training's figures go (``training.loggers``), and the MLflow and W&B runs of an experiment folder.

The CSV logs (which the report reads, so ``csv`` is always among the loggers) and
TensorBoard serve the machine that trained; a team comparing runs across
machines and weeks keeps them in MLflow or Weights & Biases. Both come in as
Lightning's own loggers (``MLFlowLogger``, ``WandbLogger``), fed by the same
``self.log`` calls as the CSV logs, on the global rank 0 only:

    training: {loggers: [csv, tensorboard, mlflow, wandb]}

Where each run goes is read from the trackers' usual environment variables,
else a default inside the experiment folder, so that a run needs no server, no
account and no network:

* MLflow: ``MLFLOW_TRACKING_URI`` (a server, or ``sqlite:///PATH/mlflow.db``
  that several experiments share), else ``sqlite:///EXP_DIR/mlflow/mlflow.db``
  with the artifacts in ``EXP_DIR/mlflow/artifacts``; the MLflow experiment
  ``MLFLOW_EXPERIMENT_NAME``, else ``ugr``.
* W&B: ``WANDB_MODE`` (``online`` after ``wandb login``), else ``offline``,
  into ``WANDB_DIR``, else ``EXP_DIR/wandb/`` (``wandb sync`` uploads an
  offline run later); the project ``WANDB_PROJECT``, else ``ugr``
  (``WANDB_ENTITY`` as wandb reads it).

Each run is named after the experiment folder. Logged: as parameters,
``experiment`` (the folder's name: the variant), ``seed`` (``training.seed``)
and the resolved config, one parameter a key (``training.lr``, ``weighting.alpha``...;
not ``training.loggers``, which says where the run goes, not what it is); as
metrics, every figure of the CSV logs (``train/loss_step``, ``train/ess_step``,
``train/max_p_step``, their ``_epoch`` means, ``val/si_sdri``...); after stage 3,
the files of ``EXP_DIR/scores`` (artifacts under ``scores/``) and the test
statistics as metrics (``test/si_sdri_mean``, ``test/si_sdri_p5``...,
``test/sdri_mean``...: ``log_scores``).

``EXP_DIR/tracking.json`` keeps the runs' ids: a resumed training continues the
same runs (an MLflow run when the tracking URI is the recorded one), and stage
3 logs the scores to them. The loggers themselves are ``ugr.pipeline.loggers``'s;
this module imports no Lightning, so that stage 3 does not load it to log its scores.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from ugr.io.atomic import atomic_write_text
from ugr.pipeline.config import ConfigError, ExperimentConfig

RECORD_FILE = "tracking.json"
TRACKERS = ("mlflow", "wandb")
# The modules a tracker needs, and the command that installs them (the extra ugr[tracking] holds them all).
MODULES = {"mlflow": ("mlflow", "sqlalchemy", "alembic"), "wandb": ("wandb",)}
INSTALL = {"mlflow": "pip install mlflow-skinny sqlalchemy alembic", "wandb": "pip install wandb"}
DEFAULT_PROJECT = "ugr"  # MLflow's experiment, W&B's project, when the environment names none


def check_installed(cfg: ExperimentConfig) -> None:
    """ConfigError naming ``training.loggers`` and the pip command for a tracker it names whose package is not
    installed: said before the training starts, not as Lightning's ModuleNotFoundError after the data is set up."""
    for name in (name for name in TRACKERS if name in cfg.training.loggers):
        missing = _missing(name)
        if missing:
            raise ConfigError(
                f"{cfg.where}: training.loggers names {name}, but {missing}; "
                f"install it with: {INSTALL[name]} (the extra ugr[tracking]; tools/install.sh installs it), or "
                f"drop {name} from training.loggers"
            )


def _missing(tracker: str) -> str:
    """What of a tracker's modules is not installed, as a clause ("mlflow is not installed"); empty if none."""
    missing = [module for module in MODULES[tracker] if not _installed(module)]
    if not missing:
        return ""
    return f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed"


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def mlflow_location(exp_dir: Path) -> tuple[str, Optional[str]]:
    """MLflow's tracking URI and the artifact location of a new MLflow experiment: ``MLFLOW_TRACKING_URI`` and its
    own default, else a sqlite store and the artifacts inside the experiment folder."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri, None
    folder = exp_dir.resolve() / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()


def wandb_settings(exp_dir: Path) -> Dict[str, str]:
    """W&B's mode, project and folder: ``WANDB_MODE``, ``WANDB_PROJECT``, ``WANDB_DIR``, else offline, ``ugr`` and
    the experiment folder (wandb writes its runs into ``DIR/wandb/``)."""
    return {
        "mode": os.environ.get("WANDB_MODE") or "offline",
        "project": os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
        "dir": os.environ.get("WANDB_DIR") or str(exp_dir.resolve()),
    }


def run_params(cfg: ExperimentConfig, exp_dir: Path) -> Dict[str, Any]:
    """The run's parameters: the experiment (its folder's name), the seed and the config flattened to
    ``section.key`` (a mapping such as ``data.priors`` stays one value, as JSON text: its keys, e.g. ``env+env``,
    are no valid MLflow names), but ``training.loggers``: a resumed run may add a tracker, and MLflow refuses a
    parameter that changes."""
    flat = {
        f"{section}.{key}": json.dumps(value, sort_keys=True) if isinstance(value, Mapping) else value
        for section, values in cfg.to_dict().items()
        for key, value in (values.items() if isinstance(values, Mapping) else [])
        if f"{section}.{key}" != "training.loggers"
    }
    return {"experiment": exp_dir.name, "seed": cfg.training.seed, **flat}


def read_record(exp_dir: Path) -> Dict[str, Any]:
    """``EXP_DIR/tracking.json`` (empty when there is none); ValueError naming the file when it is no record."""
    path = exp_dir / RECORD_FILE
    if not path.is_file():
        return {}
    problem = f"{path}: not a record of MLflow and W&B runs (a JSON object); delete it to start new runs"
    try:
        record = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{problem} ({err})") from None
    if not isinstance(record, dict):
        raise ValueError(problem)
    return record


def write_record(exp_dir: Path, record: Mapping[str, Any]) -> None:
    """Writes ``EXP_DIR/tracking.json`` atomically: a killed writer leaves the previous record, never half of one."""
    atomic_write_text(exp_dir / RECORD_FILE, json.dumps(record, indent=2) + "\n")


def score_metrics(stats: Mapping[str, Any]) -> Dict[str, float]:
    """The test statistics of ``scores/test_stats.json`` as metrics: ``test/si_sdri_<stat>`` for the SI-SDRi over
    all sources, ``test/<metric>_<stat>`` for the other metrics; per class they stay in the artifact."""

    def numbers(values: Mapping[str, Any]) -> Dict[str, float]:
        return {
            key: float(value)
            for key, value in values.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        }

    metrics = {f"test/si_sdri_{key}": value for key, value in numbers(stats).items()}
    for name, values in (stats.get("metrics") or {}).items():
        if isinstance(values, Mapping):
            metrics.update({f"test/{name}_{key}": value for key, value in numbers(values).items()})
    return metrics


class TrackingError(ValueError):
    """The scores could not be logged to a tracker's run; the entry points print it as one line."""


def _log_to_mlflow(run: Mapping[str, Any], exp_dir: Path, files: List[Path], metrics: Mapping[str, float]) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(run["tracking_uri"])
    for key, value in metrics.items():
        client.log_metric(run["run_id"], key, value)
    for path in files:
        client.log_artifact(run["run_id"], str(path), artifact_path="scores")


def _log_to_wandb(run: Mapping[str, Any], exp_dir: Path, files: List[Path], metrics: Mapping[str, float]) -> None:
    """The run resumed by its id (offline: a second run folder of the same id, which ``wandb sync`` merges)."""
    import wandb

    resumed = wandb.init(id=run["id"], project=run["project"], dir=run["dir"], mode=run["mode"], resume="allow")
    try:
        resumed.summary.update(metrics)
        for path in files:
            resumed.save(str(path), base_path=str(exp_dir), policy="now")
    finally:
        resumed.finish()


def log_scores(exp_dir: Path) -> List[str]:
    """Logs ``EXP_DIR/scores`` to the runs of ``tracking.json``: its files as artifacts (``scores/``), the test
    statistics as metrics (``score_metrics``); returns the trackers logged to. Scores already logged (the same
    test_stats.json) are not logged again; a folder trained without a tracker has nothing to log."""
    record = read_record(exp_dir)
    scores, trackers = exp_dir / "scores", [name for name in TRACKERS if name in record]
    stats_file = scores / "test_stats.json"
    if not trackers or not stats_file.is_file():
        return []
    digest = hashlib.sha256(stats_file.read_bytes()).hexdigest()
    if record.get("scores_logged") == digest:
        return []
    for name in trackers:
        missing = _missing(name)
        if missing:
            raise ConfigError(
                f"{exp_dir / RECORD_FILE}: the training logged to {name}, but {missing} here to log the "
                f"scores; install it with: {INSTALL[name]}"
            )
    metrics = score_metrics(json.loads(stats_file.read_text()))
    files = sorted(path for path in scores.iterdir() if path.is_file() and not path.name.startswith("."))
    for name in trackers:
        log, run = (_log_to_mlflow, "run_id") if name == "mlflow" else (_log_to_wandb, "id")
        try:
            log(record[name], exp_dir, files, metrics)
        except Exception as err:  # the tracker's own errors (a server down, a store gone): one line, not a traceback
            raise TrackingError(
                f"{exp_dir / 'scores'}: could not log the scores to the {name} run {record[name].get(run)} of "
                f"{exp_dir / RECORD_FILE} ({type(err).__name__}: {err}); the scores are kept, and stage 3 run "
                f"again logs them"
            ) from err
    record["scores_logged"] = digest
    write_record(exp_dir, record)
    return trackers
