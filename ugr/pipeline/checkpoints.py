"""Checkpoint files: atomic writes and the average of the last K epochs.

Atomic: a job killed mid-write (Slurm preemption, Ctrl-C) must never leave a
truncated ``last.ckpt`` that resume would then choke on, so every file goes to
a temporary name in the same folder and is renamed into place. Lightning's own
save goes through fsspec, whose temporary file lives in /tmp and is moved
(copied) across file systems, which is not atomic; ``ugr.pipeline.train``'s
``AtomicCheckpointIO`` replaces it with ``atomic_torch_save``. (This module
does not import Lightning: scoring, export and separation start seconds
sooner without it.)

Loading: unpickling calls whatever callables a pickle names, and experiment
folders and checkpoints are shared, so ``torch.load(weights_only=False)`` on
someone else's file would run their code. Every load here and in resume
(``ugr.pipeline.train``'s ``AtomicCheckpointIO`` loads through ``load_checkpoint`` in
place of Lightning's own ``torch.load``; Lightning restores the state as
before) uses torch's weights-only unpickler and allows nothing beyond its
defaults: our checkpoints hold only dicts, lists, strings, numbers, None,
OrderedDicts and tensors (Lightning's state: the model, optimizer, loops and
callbacks, and the config as ``hyper_parameters``), all of which it allows.
A file that names anything else is refused with the names, unloaded.

Averaging: the paper reports test scores "averaged over ten epochs"; we
average the *weights* of the last K epoch checkpoints (a standard, cheap
ensemble) and score that one model.
"""

from __future__ import annotations

import argparse
import pickle
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from ugr.io.atomic import atomic_write
from ugr.pipeline.config import ExperimentConfig
from ugr.pipeline.experiment_dir import ExperimentDir

EPOCH_CKPT = re.compile(r"^epoch=(\d+)\.ckpt$")


class CheckpointError(ValueError):
    """A checkpoint ugr will not load (unsafe, damaged, not a training checkpoint); the message names the file."""


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` via a temporary file and a rename."""
    atomic_write(Path(path), lambda handle: torch.save(obj, handle))


def epoch_checkpoints(ckpt_dir: Path) -> List[Path]:
    """The per-epoch checkpoints (``epoch=N.ckpt``) in epoch order."""
    found = [(int(m.group(1)), p) for p in Path(ckpt_dir).glob("epoch=*.ckpt") if (m := EPOCH_CKPT.match(p.name))]
    return [p for _, p in sorted(found)]


def load_checkpoint(path: Path, map_location: Any = "cpu") -> Dict[str, Any]:
    """A checkpoint's contents, unpickled by torch's weights-only unpickler (the module docstring says why).

    Raises ``CheckpointError`` naming the file: for one whose unpickling would call anything beyond plain
    data (with what it names: nothing of it has run), for a damaged file, and for one without a
    ``state_dict`` (not written by ugr's training).
    """
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(_unloadable(Path(path), err)) from None
    except (RuntimeError, EOFError) as err:  # torch's reading of a truncated or foreign file
        reason = str(err).splitlines()[0] if str(err) else "the file ends early"
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({reason}); it is damaged "
            f"or not a file torch.save wrote: use another, or train again (stage 2)"
        ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(
            f"{path}: no state_dict, so not a checkpoint of ugr's training (an exported model "
            f"file is loaded by asteroid's BaseModel.from_pretrained); pass a checkpoints/*.ckpt"
        )
    return ckpt


def _unloadable(path: Path, err: pickle.UnpicklingError) -> str:
    try:
        names = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except (ValueError, RuntimeError):  # not torch's zip format: no list of names to give
        names = []
    if not names:
        return (
            f"{path}: refused: not plain data (torch's weights-only unpickler: {str(err).splitlines()[-1][:200]}); "
            f"ugr loads only checkpoints of tensors and plain values, as its training writes"
        )
    return (
        f"{path}: refused: unpickling it would call {', '.join(names)}, which no checkpoint of ugr's training "
        f"holds (loading it could run code, so nothing of it was loaded); use a checkpoint that stage 2 "
        f"wrote, not this file"
    )


def model_state(ckpt_path: Path) -> Dict[str, torch.Tensor]:
    """The separation model's weights from a Lightning checkpoint (keys without the ``model.`` prefix)."""
    state = load_checkpoint(ckpt_path)["state_dict"]
    return {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}


def check_finite(state: Dict[str, torch.Tensor], path: Path) -> None:
    """Raises ``CheckpointError`` naming ``path`` when a floating-point weight holds NaN or inf: the model of a
    diverged training would separate into constant garbage, written as if it were a result."""
    bad = [
        name
        for name, value in state.items()
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]
    if bad:
        raise CheckpointError(
            f"{path}: the weights are not finite (the training diverged): {len(bad)} of "
            f"{len(state)} tensor(s) hold NaN or inf, e.g. {bad[0]}; use an earlier checkpoint "
            f"(--checkpoint .../checkpoints/epoch=N.ckpt) or train again with a lower learning rate"
        )


def last_epochs(ckpt_dir: Path, k: int) -> List[Path]:
    """The last ``k`` epoch checkpoints; fewer is an error rather than a silently smaller average."""
    if k < 1:
        raise ValueError(f"average over k={k} checkpoints: k must be >= 1")
    available = epoch_checkpoints(ckpt_dir)
    if len(available) < k:
        raise FileNotFoundError(
            f"{ckpt_dir}: {len(available)} epoch checkpoint(s) found, {k} needed to average the last {k}; "
            f"train more epochs or lower scoring.average_last_k"
        )
    return available[-k:]


def average_last_epochs(ckpt_dir: Path, k: int) -> tuple[Dict[str, torch.Tensor], List[Path]]:
    """Mean of the model weights of the last ``k`` epoch checkpoints, and the files used."""
    chosen = last_epochs(ckpt_dir, k)
    total: Dict[str, torch.Tensor] = {}
    dtypes: Dict[str, torch.dtype] = {}
    for path in chosen:
        state = model_state(path)
        check_finite(state, path)
        for name, value in state.items():
            dtypes[name] = value.dtype
            if value.is_floating_point():
                total[name] = total.get(name, 0) + value.double()
            else:
                total[name] = value  # integer buffers (counters) are not averaged: keep the latest
    averaged = {name: (v / k).to(dtypes[name]) if v.is_floating_point() else v for name, v in total.items()}
    return averaged, chosen


def add_weights_options(parser: argparse.ArgumentParser, checkpoint_help: str) -> None:
    """The choice of weights that ``load_experiment`` takes: ``--average-last K`` or ``--checkpoint FILE``.

    One definition for every entry point that loads a trained experiment
    (``ugr-export``, ``ugr-separate``), so the two options mean the same and
    exclude each other everywhere.
    """
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--average-last",
        type=int,
        metavar="K",
        help="average the last K epoch checkpoints (default: the config's scoring.average_last_k)",
    )
    which.add_argument("--checkpoint", type=Path, help=checkpoint_help)


def load_experiment(
    exp_dir: Path, *, checkpoint: Optional[Path] = None, average_last: Optional[int] = None
) -> tuple[ExperimentConfig, torch.nn.Module, str]:
    """A trained experiment's config, its model in eval mode, and which weights it holds.

    The weights are ``checkpoint`` when given, else the average of the last
    ``average_last`` epochs (default: the config's ``scoring.average_last_k``).
    Weights holding NaN or inf (a diverged training) are refused with one
    ``CheckpointError`` naming the file (``check_finite``), for every caller alike.
    """
    cfg = ExperimentDir(exp_dir).config()
    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"{checkpoint}: checkpoint not found; pass an existing .ckpt file")
        state, used = model_state(Path(checkpoint)), str(checkpoint)
        check_finite(state, Path(checkpoint))
    else:
        state, files = average_last_epochs(
            ExperimentDir(exp_dir).checkpoints, average_last or cfg.scoring.average_last_k
        )
        used = "average of " + ", ".join(p.name for p in files)
    model = cfg.model.build()
    model.load_state_dict(state)
    return cfg, model.eval(), used
