"""The experiment folder: one owner for its file names, its saved config, its done marker and its lock.

Stage 2 writes the folder (``ugr.pipeline.train``), stages 3-4 and the tools read it
(score, report, export, separate, provenance). They all go through
``ExperimentDir``, so a file name is written once.

One run at a time works on a folder: its lock (``ExperimentDir.lock``) is taken
in Python only, by the recipe's task (``python -m ugr.pipeline.task``) or by
``python -m ugr.pipeline.train`` run alone; the training inside a task finds it
held by its own process and does not take it again. The lock lives beside the
folder (``exp/.baseline_cpu.lock``), not inside it, so removing the folder
(``run.sh --force true``) keeps it.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import yaml

from ugr.io.atomic import atomic_write_text
from ugr.pipeline.config import ExperimentConfig, recorded, validate

CONFIG_FILE = "config.yaml"
DONE_FILE = "train.done"


class ExperimentBusy(RuntimeError):
    """The experiment folder is being trained by another run."""


@dataclass(frozen=True)
class ExperimentDir:
    """An experiment folder's paths and records. ``path`` need not exist yet."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def done_file(self) -> Path:
        """Written last by the training (JSON summary): the training finished."""
        return self.path / DONE_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def lock_file(self) -> Path:
        """Beside the folder, so that removing the folder (--force) keeps it."""
        return self.path.parent / f".{self.path.name}.lock"

    def is_done(self) -> bool:
        return self.done_file.is_file()

    def trained(self) -> bool:
        """Whether the folder holds training results (a checkpoint, or the done marker) that a config or data
        mismatch would misattribute; a folder with none holds nothing to protect."""
        return self.is_done() or any(self.checkpoints.glob("*.ckpt")) or any(self.path.glob("hpc_ckpt_*.ckpt"))

    def saved_config(self) -> Optional[Dict[str, Any]]:
        """The resolved config the folder was trained with; None when it has none."""
        return yaml.safe_load(self.config_file.read_text()) if self.config_file.is_file() else None

    def config(self) -> ExperimentConfig:
        """The saved config, checked and typed (keys added to the schema since it was written filled with what it
        ran with: ``config.recorded``); FileNotFoundError saying that this is no trained experiment folder, or
        ConfigError naming config.yaml and the key."""
        cfg = self.saved_config()
        if cfg is None:
            raise FileNotFoundError(
                f"{self.config_file}: no config; is {self.path} a trained experiment (stage 2 output)?"
            )
        return validate(recorded(cfg), where=str(self.config_file))

    def save_config(self, cfg: ExperimentConfig) -> None:
        """Writes the resolved config atomically, so the folder records what it ran."""
        atomic_write_text(self.config_file, yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    @contextmanager
    def lock(self, is_global_zero: bool = True, busy: str = "is being trained") -> Iterator[None]:
        """Holds the folder's lock (flock) for the block, or raises ExperimentBusy naming the run that holds it
        (``"<folder> <busy> by another run (<holder>)..."``).

        The kernel releases it when the process ends, killed or not. Taken by
        the global rank 0 only (the other DDP ranks belong to its run), and not
        again inside a block of this process that holds it already (the
        recipe's task holds it around the training).
        """
        global _held_lock
        path = self.lock_file
        if not is_global_zero or (_held_lock is not None and _is_file(_held_lock, path)):
            yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # not truncated until locked: it names the holder
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 1000).decode(errors="replace").strip() or "holder unknown"
                raise ExperimentBusy(
                    f"{self.path} {busy} by another run ({holder}); wait for it to end, or stop it (lock {path})"
                ) from None
            os.ftruncate(fd, 0)
            os.write(
                fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode()
            )
            _held_lock = fd
            yield
        finally:
            _held_lock = None
            os.close(fd)


_held_lock: Optional[int] = None  # the descriptor of the experiment lock this process holds, if any


def _is_file(fd: int, path: Path) -> bool:
    """Whether the open descriptor ``fd`` is the file at ``path``."""
    try:
        here = os.stat(path)
    except OSError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (here.st_dev, here.st_ino)


def _release_in_child() -> None:
    """A forked child (a data worker) closes its copy of the lock: the lock ends with this process, not with
    the last of its children."""
    global _held_lock
    if _held_lock is not None:
        os.close(_held_lock)
        _held_lock = None


os.register_at_fork(after_in_child=_release_in_child)
