"""Atomic file writes: a killed job never leaves a half file that looks whole.

Every output of the project (manifests, audio cache, lists, configs,
checkpoints, scores, reports, figures) goes through ``atomic_write``: the
bytes go to a temporary file in the target's folder (``os.replace`` is only
atomic within one file system), are flushed to disk, and the file is renamed
into place. The temporary file gets the mode a plain ``open()`` would give
(0666 minus the umask), not mkstemp's private 0600, so data folders shared on
a cluster stay readable by the group.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Calls ``write(handle)`` on a temporary binary file, then renames it to ``path``; returns ``path``.

    On any error (disk full, read-only folder, Ctrl-C) the temporary file is
    removed and ``path`` keeps its previous content, if any.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` (UTF-8, lines as given) atomically to ``path``."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
