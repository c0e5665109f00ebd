"""Commands run with one folder on a small or read-only file system, for the tests of write failures; no tests here.

The folder becomes a fresh tmpfs in a private mount namespace (``unshare``;
no root needed where unprivileged user namespaces are allowed), so a full
disk and a read-only folder are real ones, for the command alone.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Optional

import pytest

UNSHARE = ["unshare", "--user", "--map-root-user", "--mount"]
LEFT = "left behind:"  # the stdout line that lists the temporary files the command left in the folder


def require_namespaces() -> None:
    try:
        usable = subprocess.run([*UNSHARE, "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        usable = False
    if not usable:
        pytest.skip("needs unshare with user and mount namespaces (util-linux) to mount a small file system")


def run_with_folder_on(
    folder: Path,
    command: list[str],
    *,
    size: str = "64k",
    read_only: bool = False,
    setup: Optional[list[str]] = None,
    cwd: Optional[Path] = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """``command`` with ``folder`` (an existing folder) on a tmpfs of ``size``, read-only if asked, after the
    optional ``setup`` command has written there. The last stdout line lists the temporary files left there."""
    require_namespaces()
    steps = [f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(folder))}"]
    if setup:
        steps.append(shlex.join(setup))
    if read_only:
        steps.append(f"mount -o remount,ro {shlex.quote(str(folder))}")
    script = (
        " && ".join(steps) + f" && {{ {shlex.join(command)}; status=$?; "
        f"echo {LEFT} $(find {shlex.quote(str(folder))} -name '*.tmp'); exit $status; }}"
    )
    return subprocess.run([*UNSHARE, "sh", "-c", script], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def left_behind(done: subprocess.CompletedProcess) -> list[str]:
    line = [line for line in done.stdout.splitlines() if line.startswith(LEFT)][-1]
    return line[len(LEFT) :].split()
