"""ugr.atomic: outputs appear whole or not at all, with the umask's mode (not mkstemp's 0600)."""
from __future__ import annotations

import os
import stat

import pytest

from ugr.atomic import atomic_write, atomic_write_text


def test_written_files_take_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        shared = atomic_write_text(tmp_path / "a" / "shared.txt", "x\n")
        os.umask(0o077)
        private = atomic_write_text(tmp_path / "private.txt", "y\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert shared.read_text() == "x\n"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = atomic_write_text(tmp_path / "scores.json", "old\n")

    def half_then_fail(handle):
        handle.write(b"half a fi")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.json"]
