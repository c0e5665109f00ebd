"""ugr.io.atomic: outputs appear whole or not at all, with the umask's mode (not mkstemp's 0600); a write the
system refuses (full disk, read-only folder) is one error naming the file and the cause, whatever the writer."""

from __future__ import annotations

import os
import stat
import sys

import pytest
from small_disk import left_behind, run_with_folder_on

from ugr.io.atomic import atomic_write, atomic_write_text


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


WRITERS = {  # every kind of output, each larger than the small disk
    "text": "atomic_write_text(target, 'x' * 200_000)",
    "torch": "atomic_torch_save({'w': torch.zeros(100_000)}, target)",
    "wav": "write_wav(target, np.zeros(100_000, np.float32), 8000)",
    "png": "figure = plt.figure(); plt.imshow(np.random.rand(400, 400)); "
    "atomic_write(target, lambda handle: figure.savefig(handle, format='png', dpi=300))",
}
PROBE = """
import sys, numpy as np, torch, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from ugr.io.atomic import OutputError, atomic_write, atomic_write_text
from ugr.pipeline.checkpoints import atomic_torch_save
from ugr.data.audio import write_wav
for kind, write in {writers!r}.items():
    target = f"{{sys.argv[1]}}/output.{{kind}}"
    try:
        exec(write)
    except OutputError as err:
        print(kind, "OutputError:", err)
    print(kind, "kept:", open(target).read().strip())
"""


@pytest.mark.parametrize("read_only", [False, True], ids=["full disk", "read-only folder"])
def test_a_refused_write_is_one_error_naming_the_file_and_the_cause(tmp_path, read_only):
    """soundfile and torch alone would say "System error." or fail an assertion, and print the OSError as ignored."""
    folder = tmp_path / "out"
    folder.mkdir()
    old = "; ".join(f"echo old > {folder}/output.{kind}" for kind in WRITERS)
    done = run_with_folder_on(
        folder,
        [sys.executable, "-c", PROBE.format(writers=WRITERS), str(folder)],
        read_only=read_only,
        setup=["sh", "-c", old],
    )
    cause = "Read-only file system" if read_only else "No space left on device"
    for kind in WRITERS:
        assert (
            f"{kind} OutputError: cannot write {folder}/output.{kind}: {cause} (check that {folder} is writable"
            in done.stdout
        ), (kind, done.stdout, done.stderr)
        assert f"{kind} kept: old" in done.stdout
    assert left_behind(done) == []
    assert done.stderr == "", "nothing printed as an ignored exception"


def test_the_writers_own_errors_pass_through(tmp_path):
    def failing_writer(handle):
        raise ValueError("a bug in the writer")

    with pytest.raises(ValueError, match="a bug in the writer"):
        atomic_write(tmp_path / "x", failing_writer)
    assert list(tmp_path.iterdir()) == []
