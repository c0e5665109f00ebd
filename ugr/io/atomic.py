"""Atomic file writes: a killed job never leaves a half file that looks whole.

Every output of the project (manifests, audio cache, lists, configs,
checkpoints, scores, reports, figures) goes through ``atomic_write``: the
bytes go to a temporary file in the target's folder (``os.replace`` is only
atomic within one file system), are flushed to disk, and the file is renamed
into place. The temporary file gets the mode a plain ``open()`` would give
(0666 minus the umask), not mkstemp's private 0600, so data folders shared on
a cluster stay readable by the group.

A write that the system refuses (disk full, read-only or foreign folder, quota)
raises ``OutputError``, an ``OSError`` whose message names the file and the
cause, whichever library did the writing: soundfile and torch turn the
underlying ``OSError`` into "System error." or an assertion, so the handle
they write to keeps the first one and reports it instead.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable, Optional


class OutputError(OSError):
    """An output the system would not let us write; ``str()`` is one line naming the file and the cause."""

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror} (check that {Path(self.filename).parent} is writable " \
               f"and has free space)"


class _FirstWriteError:
    """The temporary file as the writer sees it: unbuffered, so a refused write fails in ``write`` itself,
    not later in a flush or close. The first refusal is kept, and it and all later writes report 0
    bytes written instead of raising: a writer calling from C (soundfile) would otherwise print the
    exception as "ignored", and no writer goes on filling a disk that is full."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.error: Optional[OSError] = None

    def write(self, data) -> int:
        if self.error is not None:
            return 0
        view = memoryview(data).cast("B")
        size = view.nbytes
        try:
            while view:  # an unbuffered write may take part of the bytes
                view = view[self._raw.write(view):]
        except OSError as err:
            self.error = err
            return 0
        return size

    def flush(self) -> None:
        """Nothing is buffered here."""

    def __getattr__(self, name: str):
        if name == "fileno":  # writers that find one write to the descriptor from C, past ``write``
            raise AttributeError(name)
        return getattr(self._raw, name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _output_error(err: OSError, path: Path) -> OutputError:
    return OutputError(err.errno, err.strerror or str(err), str(path))


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Calls ``write(handle)`` on a temporary binary file, then renames it to ``path``; returns ``path``.

    On any error (disk full, read-only folder, Ctrl-C) the temporary file is
    removed and ``path`` keeps its previous content, if any. What the system
    refuses (creating, writing, syncing, renaming the file) raises
    ``OutputError``; the writer's own errors pass through unchanged.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _output_error(err, path) from err
    try:
        with os.fdopen(fd, "wb", buffering=0) as raw:
            handle = _FirstWriteError(raw)
            try:
                write(handle)  # type: ignore[arg-type]
            except Exception:
                if handle.error is None:
                    raise
            if handle.error is not None:  # whatever the writer made of it
                raise _output_error(handle.error, path) from handle.error
            try:
                os.fchmod(fd, 0o666 & ~_umask())
                os.fsync(fd)
            except OSError as err:
                raise _output_error(err, path) from err
        try:
            os.replace(tmp, path)
        except OSError as err:
            raise _output_error(err, path) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` (UTF-8, lines as given) atomically to ``path``."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
