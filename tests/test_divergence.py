"""A training that cannot end as trained fails: one that diverges (a non-finite loss or parameter, a validation
SI-SDRi that is not finite at the end) stops naming the step and the likely causes, and one stopped by SIGTERM
outside Slurm exits non-zero saying so; neither writes train.done, and the stage never says "trained"."""

from __future__ import annotations

import csv
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from train_helpers import EPOCHS, STEPS_PER_EPOCH, error_line, task_command

from ugr.pipeline import config as config_lib
from ugr.pipeline.lists import write_lists

CAUSES = "likely causes: a learning rate too high (training.lr "


def test_a_training_that_diverges_stops_as_a_failure_naming_the_step_and_the_causes(tiny, tmp_path):
    """A real run: an absurd SNR range (300 dB: energies overflow float32) gives a NaN loss at the first step."""
    conf = tmp_path / "conf"
    conf.mkdir()
    config = yaml.safe_load(tiny["config"].read_text())
    config["data"]["snr_range"] = [300, 300]
    config["training"]["epochs"] = 1
    (conf / "tiny.yaml").write_text(yaml.safe_dump(config))
    write_lists(tiny["data"], [conf / "tiny.yaml"])
    done = subprocess.run(
        task_command("train", conf, tiny["data"], tmp_path / "exp"), capture_output=True, text=True, timeout=600
    )
    line = error_line(done)
    assert line.startswith(
        "train: error: training diverged at step 1 (epoch 1/1): the training loss is nan; " + CAUSES
    ), line
    assert "data.snr_range [300, 300]" in line and "weighting.alpha/gamma/beta0" in line, line
    assert not (tmp_path / "exp" / "tiny" / "train.done").exists()
    assert "stage 2: trained" not in done.stdout


class FakeTrainer(SimpleNamespace):
    pass


def fake_trainer(step: int = 7, epoch: int = 1) -> FakeTrainer:
    return FakeTrainer(
        global_step=step,
        current_epoch=epoch,
        max_epochs=3,
        strategy=SimpleNamespace(reduce_boolean_decision=lambda decision, all=True: decision),
    )


def test_a_parameter_that_is_not_finite_after_the_step_stops_the_training_naming_it(tiny):
    from ugr.pipeline import train

    cfg = config_lib.load(tiny["config"])
    check = train.StopOnDivergence(cfg)
    module = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    check.on_train_batch_end(fake_trainer(), module, {"loss": torch.tensor(3.0)}, None, 0)  # finite: goes on
    with torch.no_grad():
        module[1].bias.fill_(float("inf"))
    with pytest.raises(train.TrainingFailed) as err:
        check.on_train_batch_end(fake_trainer(), module, {"loss": torch.tensor(3.0)}, None, 0)
    assert str(err.value).startswith(
        "training diverged at step 7 (epoch 2/3): a parameter is not finite (NaN or inf) "
        "after the optimizer step (1.bias); " + CAUSES
    )
    with pytest.raises(train.TrainingFailed, match=r"at step 2 \(epoch 1/3\): the training loss is nan"):
        check.on_train_batch_end(fake_trainer(2, 0), torch.nn.Linear(1, 1), torch.tensor(float("nan")), None, 0)


def test_a_validation_si_sdri_that_is_not_finite_at_the_end_writes_no_train_done(tiny, tmp_path, monkeypatch):
    from ugr.pipeline import train
    from ugr.pipeline.system import SeparationSystem

    def nan_validation(self, batch, batch_idx):
        self.log("val/si_sdri", torch.tensor(float("nan")), on_epoch=True, batch_size=1)

    monkeypatch.setattr(SeparationSystem, "validation_step", nan_validation)
    cfg = config_lib.load(tiny["config"], config_lib.parse_overrides(["training.epochs=1"]))
    exp_dir = tmp_path / "exp"
    with pytest.raises(
        train.TrainingFailed,
        match=r"training ended at step 6 \(epoch 1\) with a validation SI-SDRi "
        r"that is not finite .*the model diverged; " + CAUSES.replace("(", r"\("),
    ):
        train.train(cfg, exp_dir, tiny["data"], progress=False)
    assert not (exp_dir / "train.done").exists()


def logged_steps(exp_dir: Path) -> int:
    """Training steps the running launch has logged (metrics.csv is flushed every step)."""
    steps = 0
    for path in exp_dir.glob("csv/version_*/metrics.csv"):
        try:
            with open(path, newline="") as handle:
                steps = max([steps] + [int(row["step"]) + 1 for row in csv.DictReader(handle) if row.get("step")])
        except (OSError, ValueError, KeyError):
            pass  # being written
    return steps


def test_sigterm_mid_epoch_fails_the_task_and_the_next_run_resumes_and_finishes(tiny, tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "tiny.yaml").write_text(tiny["config"].read_text())  # EPOCHS epochs: the signal comes in the second
    exp = tmp_path / "exp"
    last = exp / "tiny" / "checkpoints" / "last.ckpt"
    with open(tmp_path / "log", "w") as log:
        process = subprocess.Popen(
            task_command("train", conf, tiny["data"], exp), stdout=log, stderr=subprocess.PIPE, text=True
        )
    deadline = time.time() + 300
    while not (last.is_file() and logged_steps(exp / "tiny") > STEPS_PER_EPOCH):
        assert process.poll() is None, "the training ended before its second epoch"
        assert time.time() < deadline, "timed out waiting for the second epoch"
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=120)[1]
    done = SimpleNamespace(returncode=process.returncode, stdout=(tmp_path / "log").read_text(), stderr=stderr)
    line = error_line(done)
    step = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert step < EPOCHS * STEPS_PER_EPOCH, f"the signal came too late (step {step})"
    assert line.startswith("train: error: stopped by SIGTERM at step "), line
    assert line.endswith("; the next run resumes from the last checkpoint"), line
    assert STEPS_PER_EPOCH < int(line.split("at step ")[1].split(";")[0]) < EPOCHS * STEPS_PER_EPOCH, line
    assert not (exp / "tiny" / "train.done").exists()
    assert "stage 2: trained" not in done.stdout

    resumed = subprocess.run(
        task_command("train", conf, tiny["data"], exp), capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert f"resuming from {last}" in resumed.stdout and "stage 2: trained" in resumed.stdout
    assert (exp / "tiny" / "train.done").is_file()
