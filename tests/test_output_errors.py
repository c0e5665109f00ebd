"""Every entry point, given an output folder on a full disk or a read-only file system, stops with one line
naming the file or folder and the cause (no traceback, no "System error.") and leaves no partial file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from small_disk import left_behind, run_with_folder_on
from test_report import fake_experiment

FULL, READ_ONLY = "No space left on device", "Read-only file system"
VENV_BIN = Path(sys.executable).parent


def check_one_line(done: subprocess.CompletedProcess, prog: str, folder: Path, cause: str) -> str:
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "System error" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    line = lines[-1]  # after the warnings of Lightning, if any
    assert [x for x in lines if ": error: " in x] == [line], done.stderr[-3000:]
    assert line.startswith(f"{prog}: error: ") and str(folder) in line and cause in line, line
    assert left_behind(done) == []
    return line


def test_prepare_on_a_full_disk(tiny, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    corpora = tiny["root"] / "corpora"
    done = run_with_folder_on(
        out,
        [
            sys.executable,
            "-m",
            "ugr.data.prepare",
            "--out",
            str(out),
            "--fs",
            "8000",
            "--corpus",
            "wsj0",
            str(corpora / "wsj0"),
            "--corpus",
            "esc50",
            str(corpora / "esc50"),
        ],
    )
    line = check_one_line(done, "prepare", out, FULL)
    assert f"cannot write {out}/" in line and "(check that" in line


def test_lists_in_a_read_only_folder(tiny, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny["data"], data, ignore=shutil.ignore_patterns("lists"))
    (data / "lists").mkdir()
    done = run_with_folder_on(
        data / "lists",
        [sys.executable, "-m", "ugr.pipeline.lists", "--data", str(data), str(tiny["config"])],
        read_only=True,
    )
    assert f"cannot write {data}/lists/" in check_one_line(done, "lists", data / "lists", READ_ONLY)


def test_train_on_a_full_disk(tiny, tmp_path):
    exp_dir = tmp_path / "exp"
    exp_dir.mkdir()
    done = run_with_folder_on(
        exp_dir,
        [
            sys.executable,
            "-m",
            "ugr.pipeline.train",
            "--config",
            str(tiny["config"]),
            "--exp-dir",
            str(exp_dir),
            "--data",
            str(tiny["data"]),
            "--no-progress",
        ],
    )
    assert f"cannot write {exp_dir}/checkpoints/" in check_one_line(done, "train", exp_dir, FULL)


def test_score_in_a_read_only_folder(tiny, tiny_trained, tmp_path):
    exp_dir = tmp_path / "exp"
    shutil.copytree(tiny_trained, exp_dir)
    (exp_dir / "scores").mkdir(exist_ok=True)
    done = run_with_folder_on(
        exp_dir / "scores",
        [
            sys.executable,
            "-m",
            "ugr.pipeline.score",
            "--exp-dir",
            str(exp_dir),
            "--data",
            str(tiny["data"]),
            "--no-progress",
        ],
        read_only=True,
    )
    assert f"{exp_dir}/scores/test" in check_one_line(done, "score", exp_dir / "scores", READ_ONLY)


def test_report_in_a_read_only_folder(tmp_path):
    classes = ["speech", "dog"] * 10
    fake_experiment(
        tmp_path,
        "baseline",
        np.linspace(-5, 10, 20),
        classes,
        {"type": "uniform", "granularity": "source"},
        [{0: 1.0, 1: 2.0}],
    )
    (tmp_path / "figures").mkdir()
    done = run_with_folder_on(
        tmp_path / "figures",
        [sys.executable, "-m", "ugr.report", "--exp-root", str(tmp_path), "--experiments", "baseline"],
        read_only=True,
    )
    assert f"cannot write {tmp_path}/figures/" in check_one_line(done, "report", tmp_path / "figures", READ_ONLY)
    assert not (tmp_path / "report.md").exists(), "the report is written after its figures"


def test_separate_on_a_full_disk(tiny, tiny_trained, tmp_path):
    out = tmp_path / "separated"
    out.mkdir()
    song = next((tiny["root"] / "corpora" / "wsj0").rglob("*.wav"))
    done = run_with_folder_on(
        out, [str(VENV_BIN / "ugr-separate"), "--exp-dir", str(tiny_trained), "--out", str(out), str(song)], size="16k"
    )
    assert f"cannot write {out}/" in check_one_line(done, "ugr-separate", out, FULL)
