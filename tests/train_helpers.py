"""A prepared tiny corpus with its lists and a tiny experiment config, and `python -m ugr.pipeline.train` on them, for
the tests of stage 2 (conftest.py's fixtures ``tiny`` and ``tiny_trained``); no tests here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from recipe_helpers import ROOT, TINY_SIZES, make_corpora

from ugr.data.prepare import CorpusInput, prepare
from ugr.pipeline.lists import write_lists

EPOCHS, MIXTURES, BATCH = 3, 24, 4
STEPS_PER_EPOCH = MIXTURES // BATCH


def tiny_config(path: Path, **training) -> Path:
    """A tiny experiment over the recipe's CPU preset, with one data worker (as the GPU
    configs have; resume once diverged only with workers): EPOCHS epochs of STEPS_PER_EPOCH steps."""
    sizes = {section: dict(values) for section, values in TINY_SIZES.items()}
    sizes["data"]["train_mixtures_per_epoch"] = MIXTURES
    sizes["training"].update({"batch_size": BATCH, "epochs": EPOCHS, "num_workers": 1, **training})
    path.write_text(
        yaml.safe_dump({"inherit": str(ROOT / "egs" / "wsj0_esc50" / "conf" / "cpu" / "base_cpu.yaml"), **sizes})
    )
    return path


def tiny_setup(root: Path) -> dict:
    """Corpora, a data folder prepared from them with the lists of tiny_config, and that config."""
    corpora = make_corpora(root / "corpora")
    data = root / "data"
    prepare(data, [CorpusInput("wsj0", corpora[1]), CorpusInput("esc50", corpora[3])], fs=8000)
    config = tiny_config(root / "tiny.yaml")
    write_lists(data, [config])
    return {"root": root, "data": data, "config": config}


def train_command(
    setup: dict, exp_dir: Path, *args: str, config: Path | None = None, data: Path | None = None
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ugr.pipeline.train",
        "--config",
        str(config or setup["config"]),
        "--exp-dir",
        str(exp_dir),
        "--data",
        str(data or setup["data"]),
        "--no-progress",
        *args,
    ]


def train(setup: dict, exp_dir: Path, *args: str, check: bool = True, **paths: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(train_command(setup, exp_dir, *args, **paths), capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def start_training(setup: dict, exp_dir: Path, env: dict | None = None, **paths: Path) -> subprocess.Popen:
    """The training in the background, its output in EXP_DIR.log (a pipe nobody reads could fill and block it)."""
    exp_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{exp_dir}.log", "w") as log:
        return subprocess.Popen(train_command(setup, exp_dir, **paths), stdout=log, stderr=subprocess.STDOUT, env=env)


def task_command(stage: str, conf: Path, data: Path, exp: Path, *args: str) -> list[str]:
    """``python -m ugr.pipeline.task STAGE`` for the experiment ``tiny`` of ``conf`` on ``data`` into ``exp``."""
    return [sys.executable, "-m", "ugr.pipeline.task", stage, "--conf", str(conf), "--experiments", "tiny",
            "--data", str(data), "--exp", str(exp), *args]  # fmt: skip


def run_task(stage: str, conf: Path, tiny: dict, exp: Path, *args: str) -> subprocess.CompletedProcess:
    """The task as a subprocess, in the folder above ``exp`` (nothing it writes lands elsewhere)."""
    command = task_command(stage, conf, tiny["data"], exp, *args)
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=exp.parent)


def error_line(done) -> str:
    """The one ``PROG: error: ...`` line of a failed entry point (exit 1, no traceback)."""
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    [line] = [line for line in done.stderr.splitlines() if ": error: " in line]
    return line
