"""``training.loggers``: a tiny training of the recipe's stage 2 (``python -m ugr.pipeline.task train``) logging to
MLflow and W&B with their defaults (a sqlite store and an offline run inside the experiment folder), read back with
each tracker's own client and format: the parameters, the per-step figures the CSV logs hold too, and, after
stage 3, the scores; the key's bad values and a missing tracker package, each one clear error."""

from __future__ import annotations

import csv
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from train_helpers import error_line, task_command, train_command

from ugr.pipeline import config as config_lib
from ugr.pipeline import tracking
from ugr.pipeline.config import ConfigError, parse_overrides
from ugr.pipeline.experiment_dir import ExperimentDir

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "egs" / "wsj0_esc50" / "conf" / "cpu" / "baseline_cpu.yaml"
TRACKED = "training.loggers=[csv,mlflow,wandb] weighting.type=robust weighting.alpha=0.3"


def clean_env() -> dict[str, str]:
    """This environment without the trackers' own variables: the defaults inside the experiment folder apply."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "WANDB_"))}
    return {**env, "MLFLOW_DISABLE_TELEMETRY": "true"}  # MLflow's own usage reports: no network here


@pytest.fixture(scope="module")
def tracked(conf, tiny, tmp_path_factory) -> Path:
    """The tiny experiment trained (one epoch) and scored by the recipe's tasks, logging to MLflow and W&B."""
    exp = tmp_path_factory.mktemp("tracked") / "exp"
    for stage in ("train", "score"):
        command = task_command(stage, conf, tiny["data"], exp, "--override", TRACKED)
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=exp.parent, env=clean_env())
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "logged" in done.stdout and "to the mlflow and wandb run(s) of tracking.json" in done.stdout
    return exp / "tiny"


def csv_steps(exp_dir: Path, column: str) -> list[float]:
    """The per-step values of a column of the CSV logs (what the report reads)."""
    [metrics] = exp_dir.glob("csv/version_*/metrics.csv")
    with open(metrics, newline="") as handle:
        return [float(row[column]) for row in csv.DictReader(handle) if row[column]]


def test_mlflow_holds_the_parameters_the_step_figures_and_the_scores(tracked):
    from mlflow.tracking import MlflowClient

    record = json.loads((tracked / "tracking.json").read_text())["mlflow"]
    assert record["tracking_uri"] == f"sqlite:///{tracked.resolve()}/mlflow/mlflow.db"  # the default store
    client = MlflowClient(record["tracking_uri"])
    run = client.get_run(record["run_id"])
    assert run.info.run_name == "tiny" and run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith((tracked.resolve() / "mlflow" / "artifacts").as_uri())
    params = run.data.params
    assert params["experiment"] == "tiny" and params["seed"] == "0"
    assert params["training.lr"] == "0.001" and params["weighting.type"] == "robust"
    assert params["weighting.alpha"] == "0.3" and params["data.priors"] == '{"env+env": 1.0}'
    assert "training.loggers" not in params
    for figure in ("train/loss_step", "train/ess_step", "train/max_p_step"):
        history = sorted(client.get_metric_history(record["run_id"], figure), key=lambda m: m.step)
        steps = csv_steps(tracked, figure)
        assert len(steps) == 6  # 24 mixtures in batches of 4, one epoch, every step logged
        assert [m.value for m in history] == pytest.approx(steps)
        assert [m.step for m in history] == list(range(6))
    assert max(csv_steps(tracked, "train/max_p_step")) > 1 / 8  # robust weighting: unequal weights
    assert run.data.metrics["val/si_sdri"] == pytest.approx(csv_steps(tracked, "val/si_sdri")[-1])

    stats = json.loads((tracked / "scores" / "test_stats.json").read_text())
    assert run.data.metrics["test/si_sdri_mean"] == pytest.approx(stats["mean"])
    assert run.data.metrics["test/si_sdri_p5"] == pytest.approx(stats["p5"])
    assert run.data.metrics["test/sdri_mean"] == pytest.approx(stats["metrics"]["sdri"]["mean"])
    artifacts = {a.path for a in client.list_artifacts(record["run_id"], "scores")}
    assert {"scores/test.csv", "scores/test_stats.json"} <= artifacts
    local = Path(client.download_artifacts(record["run_id"], "scores/test_stats.json", str(tracked.parent)))
    assert json.loads(local.read_text()) == stats


def wandb_records(run_file: Path) -> list[Any]:
    """The records of a W&B run file (``run-ID.wandb``): LevelDB's log format (32 KiB blocks of chunks, each a
    7-byte header: CRC32, length, type 1 full, 2 first, 3 middle, 4 last) after W&B's 7-byte header, each record
    one of W&B's own protobuf ``Record``s."""
    from wandb.proto import wandb_internal_pb2

    data, block, records, chunks = run_file.read_bytes(), 32768, [], b""
    assert data[:4] == b":W&B", data[:7]
    position = 7
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:  # the block's tail, too short for a header: padding
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if kind == 0 and length == 0:
            position += left
            continue
        chunks += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            records.append(record)
            chunks = b""
    return records


def wandb_state(run_file: Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """The config, the summary and the history rows a W&B run file holds, as W&B would sync them."""
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    history: list[dict[str, Any]] = []

    def key(item: Any) -> str:
        return item.key or "/".join(item.nested_key)

    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind in ("run", "config"):
            updates = record.run.config.update if kind == "run" else record.config.update
            config.update({key(item): json.loads(item.value_json) for item in updates})
        elif kind == "summary":
            summary.update({key(item): json.loads(item.value_json) for item in record.summary.update})
        elif kind == "history":
            history.append({key(item): json.loads(item.value_json) for item in record.history.item})
    return config, summary, history


def test_wandb_writes_an_offline_run_into_the_experiment_folder(tracked):
    record = json.loads((tracked / "tracking.json").read_text())["wandb"]
    assert record["mode"] == "offline" and record["project"] == "ugr"
    run_dir = Path(record["run_dir"])
    assert run_dir.parent == (tracked / "wandb").resolve() and run_dir.name.startswith("offline-run-")
    assert run_dir.name.endswith(f"-{record['id']}")
    run_file = run_dir / f"run-{record['id']}.wandb"
    assert run_file.is_file()
    config, summary, history = wandb_state(run_file)
    assert config["experiment"] == "tiny" and config["seed"] == 0
    assert config["training.lr"] == 0.001 and config["weighting.type"] == "robust"
    assert "training.loggers" not in config
    losses = csv_steps(tracked, "train/loss_step")
    logged = [row["train/loss_step"] for row in history if "train/loss_step" in row]
    assert logged == pytest.approx(losses)
    assert [row["train/ess_step"] for row in history if "train/ess_step" in row] == pytest.approx(
        csv_steps(tracked, "train/ess_step")
    )
    assert summary["train/loss_step"] == pytest.approx(losses[-1])
    assert summary["train/max_p_step"] == pytest.approx(csv_steps(tracked, "train/max_p_step")[-1])

    # Stage 3 resumed the run (same id, a second offline folder) for the scores: files and summary.
    [scored] = [d for d in (tracked / "wandb").glob(f"offline-run-*-{record['id']}") if d.resolve() != run_dir]
    stats = json.loads((tracked / "scores" / "test_stats.json").read_text())
    assert json.loads((scored / "files" / "scores" / "test_stats.json").read_text()) == stats
    assert (scored / "files" / "scores" / "test.csv").read_text() == (tracked / "scores" / "test.csv").read_text()
    _, scored_summary, _ = wandb_state(scored / f"run-{record['id']}.wandb")
    assert scored_summary["test/si_sdri_mean"] == pytest.approx(stats["mean"])


def test_scores_are_logged_once(tracked):
    """The same test_stats.json is not logged again (stage 3 rerun on current scores)."""
    assert tracking.log_scores(tracked) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[csv, comet]", "training.loggers names unknown logger(s) 'comet'; allowed: csv, tensorboard, mlflow, wandb"),
        (
            "[tensorboard, mlflow]",
            "training.loggers must keep csv: the report (stage 4) reads the training curves from the CSV logs; "
            "add it, e.g. [csv, tensorboard, mlflow]",
        ),
        ("[csv, mlflow, csv]", "training.loggers lists a logger twice"),
        ("csv", "training.loggers must be a list of loggers among csv, tensorboard, mlflow, wandb"),
        ("[]", "training.loggers must be a list of loggers among csv, tensorboard, mlflow, wandb"),
        ("[csv, {mlflow: 1}]", "training.loggers must be a list of loggers among csv, tensorboard, mlflow, wandb"),
    ],
)
def test_bad_loggers_are_one_clear_error(value, message):
    with pytest.raises(ConfigError) as raised:
        config_lib.load(BASE, parse_overrides([f"training.loggers={value}"]))
    assert str(raised.value).startswith(f"{BASE} (with overrides training.loggers={value}): {message}")


def test_every_base_config_logs_to_csv_and_tensorboard():
    bases = sorted(ROOT.glob("egs/*/conf/*/base_*.yaml"))
    assert len(bases) >= 6
    for base in bases:
        assert config_lib.load(base).training.loggers == ["csv", "tensorboard"], base


def test_a_missing_tracker_is_one_error_with_the_pip_command(tiny, tmp_path):
    """mlflow hidden from the training (as if not installed): exit 1, one line, the folder not even made."""
    exp_dir = tmp_path / "exp" / "tiny"
    argv = train_command(tiny, exp_dir, "--override", "training.loggers=[csv,mlflow]")[3:]  # after -m MODULE
    hide = (
        "import runpy, sys; sys.modules['mlflow'] = None; sys.argv = ['train'] + sys.argv[1:]; "
        "runpy.run_module('ugr.pipeline.train', run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", hide, *argv], capture_output=True, text=True, timeout=300)
    line = error_line(done)
    assert line.startswith(f"train: error: {tiny['config']} (with overrides training.loggers=[csv,mlflow]): ")
    assert (
        "training.loggers names mlflow, but mlflow is not installed; install it with: "
        "pip install mlflow-skinny sqlalchemy alembic (the extra ugr[tracking]"
    ) in line
    assert not exp_dir.exists()


def test_a_folder_trained_before_the_key_reads_as_csv_and_tensorboard(tmp_path):
    """A config.yaml written before training.loggers existed: what those trainings logged to, no error."""
    cfg = config_lib.load(BASE).to_dict()
    del cfg["training"]["loggers"]
    folder = ExperimentDir(tmp_path / "old")
    folder.path.mkdir()
    folder.config_file.write_text(yaml.safe_dump(cfg))
    assert folder.config().training.loggers == ["csv", "tensorboard"]


def test_a_folder_without_trackers_logs_no_scores(tmp_path):
    (tmp_path / "scores").mkdir()
    (tmp_path / "scores" / "test_stats.json").write_text('{"mean": 1.0}')
    assert tracking.log_scores(tmp_path) == [] and not (tmp_path / "tracking.json").exists()


def test_a_run_the_tracker_does_not_have_is_one_error_that_keeps_the_scores(tmp_path):
    (tmp_path / "scores").mkdir()
    (tmp_path / "scores" / "test_stats.json").write_text('{"mean": 1.0}')
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking.write_record(tmp_path, {"mlflow": {"tracking_uri": uri, "run_id": "0" * 32}})
    with pytest.raises(tracking.TrackingError) as raised:
        tracking.log_scores(tmp_path)
    assert str(raised.value).startswith(
        f"{tmp_path / 'scores'}: could not log the scores to the mlflow run {'0' * 32} of {tmp_path / 'tracking.json'}"
    )
    assert str(raised.value).endswith("the scores are kept, and stage 3 run again logs them")
    assert "scores_logged" not in tracking.read_record(tmp_path)  # so that the next stage 3 tries again


def test_a_resumed_training_continues_the_recorded_runs(tmp_path, monkeypatch):
    """The loggers of a resumed training carry the runs of tracking.json: the MLflow run (set running again) when
    its store is the recorded one, else a new run; the W&B run when its project and mode are the recorded ones."""
    from mlflow.tracking import MlflowClient

    from ugr.pipeline import loggers

    for name in [name for name in os.environ if name.startswith(("MLFLOW_", "WANDB_"))]:
        monkeypatch.delenv(name)
    cfg = config_lib.load(BASE, parse_overrides(["training.loggers=[csv,mlflow,wandb]"]))
    exp_dir = tmp_path / "robust"
    uri, _ = tracking.mlflow_location(exp_dir)
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("ugr"))
    client.set_terminated(run.info.run_id)
    wandb = {"id": "abc123", "project": "ugr", "mode": "offline"}
    tracking.write_record(exp_dir, {"mlflow": {"tracking_uri": uri, "run_id": run.info.run_id}, "wandb": wandb})
    mlflow_logger, wandb_logger = loggers.tracker_loggers(cfg, exp_dir)
    assert mlflow_logger.run_id == run.info.run_id and wandb_logger._id == "abc123"
    assert client.get_run(run.info.run_id).info.status == "RUNNING"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # a server: not asked until the run starts
    monkeypatch.setenv("WANDB_PROJECT", "other")
    mlflow_logger, wandb_logger = loggers.tracker_loggers(cfg, exp_dir)
    assert mlflow_logger._run_id is None and wandb_logger._id is None  # new runs, where the environment says


def test_a_training_without_trackers_writes_no_record(tmp_path):
    from types import SimpleNamespace

    from pytorch_lightning.loggers import CSVLogger

    from ugr.pipeline import loggers

    trainer = SimpleNamespace(is_global_zero=True, loggers=[CSVLogger(tmp_path)])
    loggers.RecordRuns(tmp_path).on_train_start(trainer, None)  # type: ignore[arg-type]
    assert not (tmp_path / "tracking.json").exists()


def test_the_test_statistics_become_metrics():
    stats = {"n": 4, "mean": 1.5, "p5": -2.0, "ok": True, "per_class": {"dog": {"mean": 3.0}}}
    stats["metrics"] = {"stoi": {"n": 2, "mean": 0.8, "p1": float("nan")}}
    assert tracking.score_metrics(stats) == {
        "test/si_sdri_n": 4.0,
        "test/si_sdri_mean": 1.5,
        "test/si_sdri_p5": -2.0,
        "test/stoi_n": 2.0,
        "test/stoi_mean": 0.8,
    }
