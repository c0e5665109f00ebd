"""Atomic file writes: a killed job never leaves a half file that looks whole.

Every output of the project (manifests, audio cache, lists, configs,
checkpoints, scores, reports, figures) goes through ``atomic_write``: the
bytes go to a temporary file in the target's folder (``os.replace`` is only
atomic within one file system), are flushed to disk, and the file is renamed
into place. The temporary file gets the mode a plain ``open()`` would give
(0666 minus the umask), not mkstemp's private 0600, so data folders shared on
a cluster stay readable by the group.

Temporary files are named ``.<target>.<host>-<pid>.<random>.tmp`` (``<host>``: six hex digits of the host
name). One that a killed job left (SIGKILL, a node crash: no cleanup ran) is removed by
``remove_stale_temporaries``, which ``atomic_write`` calls on the first write into each folder in each
process: one listing per folder, and only files of this naming whose writer is gone (its pid is not
running on this host) or, when the writer is on another host (a shared file system) or the name carries
no pid (older ugr), untouched for ``STALE_SECONDS``.

A write that the system refuses (disk full, read-only or foreign folder, quota)
raises ``OutputError``, an ``OSError`` whose message names the file and the
cause, whichever library did the writing: soundfile and torch turn the
underlying ``OSError`` into "System error." or an assertion, so the handle
they write to keeps the first one and reports it instead.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import IO, Callable, List, Optional

STALE_SECONDS = 3600  # a temporary file of another host, or without a pid, untouched this long is a leftover
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
# .<target>.<host>-<pid>.<mkstemp's 8 characters>.tmp, or .<target>.<8 characters>.tmp (before pids were named)
_TEMPORARY = re.compile(r"^\.(?P<target>.+?)\.(?:(?P<host>[0-9a-f]{6})-(?P<pid>[0-9]+)\.)?[a-z0-9_]{8}\.tmp$")
_cleaned: set = set()  # folders this process has cleaned already


class OutputError(OSError):
    """An output the system would not let us write; ``str()`` is one line naming the file and the cause."""

    def __str__(self) -> str:
        return (
            f"cannot write {self.filename}: {self.strerror} (check that {Path(self.filename).parent} is writable "
            f"and has free space)"
        )


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
                view = view[self._raw.write(view) :]
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


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, pattern: str = "*") -> List[Path]:
    """Removes the temporary files of ``atomic_write`` in ``folder`` (not below) whose target name matches
    ``pattern`` (a glob, e.g. ``"*.png"``) and whose writer is gone; returns them. Other files are never
    touched. Gone: the pid in the name is not running on this host; for a file of another host, or one
    without a pid, untouched for ``STALE_SECONDS``. Errors (a folder that is missing or not readable, a
    file removed meanwhile) are ignored: cleaning never fails a write."""
    removed: List[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if not match or not fnmatch.fnmatchcase(match.group("target"), pattern):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if match.group("pid") and match.group("host") == _HOST:
                stale = not _running(int(match.group("pid")))
            else:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
            if stale:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Calls ``write(handle)`` on a temporary binary file, then renames it to ``path``; returns ``path``.

    On any error (disk full, read-only folder, Ctrl-C) the temporary file is
    removed and ``path`` keeps its previous content, if any; the first write into a folder also removes
    what killed writers left there (``remove_stale_temporaries``). What the system
    refuses (creating, writing, syncing, renaming the file) raises
    ``OutputError``; the writer's own errors pass through unchanged.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if str(path.parent) not in _cleaned:  # leftovers of killed writers, once per folder and process
            _cleaned.add(str(path.parent))
            remove_stale_temporaries(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".tmp")
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
