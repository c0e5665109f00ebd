"""An experiment folder knows its data and is trained by one run at a time: `python -m ugr.pipeline.train` refuses a
folder trained on other data (it does not say "already trained"), refuses a second training while one runs
(and not once it was killed), leaves no config behind when it fails before training, and says how to get
a CUDA torch when GPUs are asked of a CPU one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from train_helpers import start_training, tiny_config, train

from ugr.pipeline import provenance, score
from ugr.pipeline import train as train_module
from ugr.pipeline.experiment_dir import ExperimentBusy, ExperimentDir
from ugr.pipeline.lists import write_lists


def provenance_check(exp_dir: Path, data: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ugr.pipeline.provenance", "check", "--exp-dir", str(exp_dir), "--data", str(data)],
        capture_output=True,
        text=True,
    )


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert len(lines) == 1, done.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def other_data(tiny) -> Path:
    """The tiny data folder less one training recording, with its own lists."""
    other = tiny["root"] / "other_data"
    shutil.copytree(tiny["data"], other)
    manifest = other / "manifests" / "train.tsv"
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines[:-1]))
    write_lists(other, [tiny["config"]], force=True)
    return other


def test_a_folder_trained_on_other_data_is_refused_not_found_trained(tiny, tiny_trained, other_data):
    done_mark = (tiny_trained / "train.done").stat().st_mtime_ns
    line = one_error_line(train(tiny, tiny_trained, data=other_data, check=False))
    data, other = tiny["data"].resolve(), other_data.resolve()
    assert (
        f"train: error: {tiny_trained} was trained on the data of {data} (wsj0 {tiny['root']}/corpora/wsj0, "
        f"esc50 {tiny['root']}/corpora/esc50 at 8000 Hz), not on {other} ("
    ) in line
    assert "): its manifests differ; use another experiment folder" in line and "--force true to retrain" in line
    assert (tiny_trained / "train.done").stat().st_mtime_ns == done_mark
    # The recipe's stages 2 and 3 ask the same before skipping or scoring.
    assert provenance_check(tiny_trained, tiny["data"]).returncode == 0
    assert "was trained on the data of" in one_error_line(provenance_check(tiny_trained, other_data))
    moved = tiny["root"] / "moved_data"  # the same data elsewhere is the same data
    shutil.copytree(tiny["data"], moved)
    assert provenance_check(tiny_trained, moved).returncode == 0, provenance_check(tiny_trained, moved).stderr


def test_the_folder_records_its_data_lists_and_code(tiny, tiny_trained):
    record = json.loads((tiny_trained / provenance.FILE).read_text())
    assert record["data"]["data_dir"] == str(tiny["data"].resolve())
    assert [c["name"] for c in record["data"]["prepared_from"]["corpora"]] == ["wsj0", "esc50"]
    lists = sorted(p.name for p in (tiny["data"] / "lists").iterdir())
    assert [record["data"]["lists_key"]] == lists and set(record["data"]["lists_sha256"]) == {"valid", "test"}
    [launch] = record["launches"]
    assert launch["code"].startswith("0.1.0 git ") and launch["host"]


def test_a_second_training_of_a_folder_is_refused_while_the_first_runs(tiny, tmp_path):
    exp_dir = tiny["root"] / "exp" / "twice"
    lock = exp_dir.parent / f".{exp_dir.name}.lock"
    long = tiny_config(tmp_path / "long.yaml", epochs=1000)  # still running when the second launch has started
    first = start_training(tiny, exp_dir, config=long)
    deadline = time.time() + 300
    while not (lock.is_file() and "pid" in lock.read_text()):
        assert first.poll() is None and time.time() < deadline, "the first training did not start"
        time.sleep(0.05)
    line = one_error_line(train(tiny, exp_dir, config=long, check=False))
    assert f"train: error: {exp_dir} is being trained by another run (pid {first.pid} on " in line
    assert f"wait for it to end, or stop it (lock {lock})" in line
    assert first.poll() is None, "the first training ended before the second launch: nothing was tested"
    assert not [p.name for p in exp_dir.glob("checkpoints/*-v*")] and len(list(exp_dir.glob("csv/version_*"))) == 1
    first.kill()  # the kernel releases the lock of a killed process
    first.wait()
    assert subprocess.run(["flock", "--nonblock", str(lock), "true"]).returncode == 0


def test_an_early_failure_leaves_nothing_a_corrected_rerun_is_refused_for(tiny, tmp_path):
    exp_dir = tiny["root"] / "exp" / "corrected"
    no_lists = tmp_path / "no_lists"  # fails inside Lightning, before the first step
    shutil.copytree(tiny["data"], no_lists, ignore=shutil.ignore_patterns("lists"))
    line = one_error_line(train(tiny, exp_dir, data=no_lists, check=False))
    assert "valid.csv: validation mixture list missing; run stage 1" in line
    assert not (exp_dir / "config.yaml").exists() and not (exp_dir / provenance.FILE).exists()
    corrected = tiny_config(tmp_path / "corrected.yaml", lr=5e-4)
    train(tiny, exp_dir, config=corrected)
    assert yaml.safe_load((exp_dir / "config.yaml").read_text())["training"]["lr"] == 5e-4


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpus_asked_of_a_cpu_torch_are_refused_with_the_way_to_a_cuda_torch(tiny, tiny_trained):
    exp_dir = tiny["root"] / "exp" / "on_gpu"
    with pytest.raises(SystemExit) as stop:
        train_module.main(
            ["--config", str(tiny["config"]), "--exp-dir", str(exp_dir), "--data", str(tiny["data"]), "--ngpu", "1"]
        )
    assert stop.value.code == (
        f"train: error: --ngpu 1 needs 1 GPU(s), but this torch ({torch.__version__}) is built without CUDA; "
        f"install a CUDA torch with PYTHON=/path/to/python-with-cuda-torch tools/install.sh (see tools/install.sh "
        f"--help), or run on the CPU"
    )
    assert not exp_dir.exists()
    with pytest.raises(SystemExit, match="score: error: --device cuda needs 1 GPU"):
        score.main(["--exp-dir", str(tiny_trained), "--data", str(tiny["data"]), "--device", "cuda"])


def test_the_lock_of_another_process_is_refused_naming_it_and_ours_is_not_taken_twice(tmp_path):
    folder = ExperimentDir(tmp_path / "exp" / "robust")
    assert folder.lock_file == tmp_path / "exp" / ".robust.lock"  # beside the folder: --force keeps it
    folder.lock_file.parent.mkdir(parents=True)
    folder.lock_file.write_text("pid 1 on elsewhere\n")
    holder = subprocess.Popen(["flock", "--close", str(folder.lock_file), "sleep", "60"])  # another process
    try:
        deadline = time.time() + 30
        while subprocess.run(["flock", "--nonblock", str(folder.lock_file), "true"]).returncode == 0:
            assert time.time() < deadline, "flock did not take the lock"
            time.sleep(0.05)
        with pytest.raises(ExperimentBusy, match=r"robust is being trained by another run \(pid 1 on elsewhere\)"):
            with folder.lock():
                pass
    finally:
        holder.kill()
        holder.wait()
    with folder.lock():  # free once the holder is gone
        assert "pid" in folder.lock_file.read_text()
        with folder.lock():  # the task holds it around the training, which asks for it again: not a second run
            assert f"pid {os.getpid()} " in folder.lock_file.read_text()
        assert subprocess.run(["flock", "--nonblock", str(folder.lock_file), "true"]).returncode == 1  # still held
    assert subprocess.run(["flock", "--nonblock", str(folder.lock_file), "true"]).returncode == 0
