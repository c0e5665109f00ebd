"""Checkpoints are unpickled as plain data only: a shared checkpoint whose unpickling would run code (here:
create a file) is refused by every entry point that loads one, with one line naming the file, and the code
never runs; the checkpoints our training writes need nothing more."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from test_score import corpus, save_epoch_checkpoints, tiny_experiment_cfg  # noqa: F401 (corpus: a fixture)
from train_helpers import train_command

from ugr.pipeline import checkpoints, score, separate
from ugr.report import export
from ugr.separation.models import build_model


class CreatesFile:
    """Unpickled, this creates ``path``: what a shared file could do instead (``os.system``, ...)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.path),)


def malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A checkpoint as our training writes one (real weights, epoch, config) plus the payload."""
    cfg = tiny_experiment_cfg()
    state = {f"model.{k}": v for k, v in build_model(cfg["model"]).state_dict().items()}
    checkpoints.atomic_torch_save(
        {"state_dict": state, "epoch": 1, "hyper_parameters": {"cfg": cfg}, "payload": CreatesFile(marker)}, path
    )
    return path


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def evil_exp(tmp_path, marker) -> Path:
    """A trained-looking experiment folder whose newest epoch checkpoint carries the payload."""
    exp_dir = tmp_path / "shared_exp"
    save_epoch_checkpoints(exp_dir, tiny_experiment_cfg(), epochs=2)
    malicious_checkpoint(exp_dir / "checkpoints" / "epoch=1.ckpt", marker)
    (exp_dir / "train.done").write_text(json.dumps({"epochs": 2}) + "\n")
    return exp_dir


def refusal(path: Path) -> str:
    return (
        f"{path}: refused: unpickling it would call builtins.getattr, pathlib.Path, pathlib.PosixPath, which "
        f"no checkpoint of ugr's training holds (loading it could run code, so nothing of it was loaded); use a "
        f"checkpoint that stage 2 wrote, not this file"
    )


def test_the_crafted_checkpoint_does_create_the_file_when_loaded_unsafely(tmp_path, marker):
    """The bait is real: without the weights-only unpickler, loading it runs the payload."""
    path = malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    torch.load(path, map_location="cpu", weights_only=False)
    assert marker.is_file()


def test_loading_refuses_it_naming_what_it_would_call(tmp_path, marker):
    path = malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(checkpoints.CheckpointError) as refused:
        checkpoints.model_state(path)
    assert str(refused.value) == refusal(path)
    assert not marker.exists()


def entry_points(exp_dir: Path, work: Path, data: Path) -> dict:
    """Each CLI that loads a trained experiment, as ``(main, argv)``; ``{ckpt}`` is the checkpoint's place."""
    wav = work / "in.wav"
    sf.write(str(wav), 0.1 * np.random.default_rng(0).standard_normal(8000).astype(np.float32), 8000)
    return {
        "ugr-separate --exp-dir": (separate.main, [str(wav), "--exp-dir", str(exp_dir), "--out", str(work / "sep")]),
        "ugr-separate --checkpoint": (
            separate.main,
            [str(wav), "--exp-dir", str(exp_dir), "--out", str(work / "sep"), "--checkpoint", "{ckpt}"],
        ),
        "ugr-export": (export.main, ["--exp-dir", str(exp_dir), "--out", str(work / "pub" / "m.pth")]),
        "ugr-export --checkpoint": (
            export.main,
            ["--exp-dir", str(exp_dir), "--out", str(work / "pub" / "m.pth"), "--checkpoint", "{ckpt}"],
        ),
        "python -m ugr.pipeline.score": (score.main, ["--exp-dir", str(exp_dir), "--data", str(data), "--no-progress"]),
        "python -m ugr.pipeline.score --checkpoint": (
            score.main,
            ["--exp-dir", str(exp_dir), "--data", str(data), "--no-progress", "--checkpoint", "{ckpt}"],
        ),
    }


@pytest.mark.parametrize(
    "entry",
    [
        "ugr-separate --exp-dir",
        "ugr-separate --checkpoint",
        "ugr-export",
        "ugr-export --checkpoint",
        "python -m ugr.pipeline.score",
        "python -m ugr.pipeline.score --checkpoint",
    ],
)
def test_every_entry_point_refuses_it_in_one_line_and_the_file_is_not_created(
    entry,
    evil_exp,
    corpus,  # noqa: F811 (the fixture imported from test_score)
    marker,
    tmp_path,
):
    data, _ = corpus
    evil = evil_exp / "checkpoints" / "epoch=1.ckpt"
    main, argv = entry_points(evil_exp, tmp_path, data)[entry]
    with pytest.raises(SystemExit) as exited:
        main([word.replace("{ckpt}", str(evil)) for word in argv])
    prog = entry.split(" --")[0].removeprefix("python -m ugr.pipeline.")
    assert exited.value.code in (f"{prog}: error: {refusal(evil)}", f"{prog}: {refusal(evil)}")
    assert not marker.exists()
    assert not (tmp_path / "pub").exists() and not list((tmp_path / "sep").glob("*.wav"))


def test_resume_refuses_it_in_one_line_and_the_file_is_not_created(tiny, tiny_trained, marker, tmp_path):
    """A shared, unfinished experiment folder whose resume point carries the payload."""
    exp_dir = tmp_path / "shared"
    shutil.copytree(tiny_trained, exp_dir)
    (exp_dir / "train.done").unlink()
    last = exp_dir / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    checkpoints.atomic_torch_save({**ckpt, "payload": CreatesFile(marker)}, last)
    done = subprocess.run(train_command(tiny, exp_dir), capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == f"train: error: {refusal(last)}"
    assert "Traceback" not in done.stderr
    assert not marker.exists() and not (exp_dir / "train.done").exists()


def test_our_training_checkpoints_need_nothing_beyond_plain_data(tiny_trained):
    """What the refusal allows is what our checkpoints hold: a change that adds another type fails here."""
    files = sorted((tiny_trained / "checkpoints").glob("*.ckpt"))
    assert {p.name for p in files} >= {"last.ckpt", "best.ckpt", "epoch=2.ckpt"}
    for path in files:
        assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == [], path
        assert checkpoints.load_checkpoint(path)["state_dict"]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"not a readable checkpoint"),
        (b"PK\x03\x04 truncated zip", r"not a readable checkpoint"),
    ],
)
def test_a_damaged_file_is_named_not_a_traceback(tmp_path, content, message):
    path = tmp_path / "epoch=0.ckpt"
    path.write_bytes(content)
    with pytest.raises(checkpoints.CheckpointError, match=rf"^{path}: {message} .*train again \(stage 2\)$"):
        checkpoints.load_checkpoint(path)


def test_a_file_without_state_dict_is_named(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"model_args": {}}, path)
    with pytest.raises(checkpoints.CheckpointError, match=rf"^{path}: no state_dict, so not a checkpoint of ugr's"):
        checkpoints.model_state(path)
