"""Shared fixtures: a real one-node Slurm cluster for the `slurm` backend tests; a tiny prepared corpus and an
experiment trained on it for the stage 2 tests."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "tools" / "slurm" / "cluster.sh"
# cluster.sh's exit codes that mean "this machine cannot have a cluster", not "broken".
NOT_ROOT, NO_ARCHIVE = 3, 4


def _skip(reason: str) -> None:
    # Printed as well, so the reason shows even without -rs.
    print(f"\nSlurm tests skipped: {reason}", file=sys.stderr)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[dict[str, str]]:
    """Starts tools/slurm/cluster.sh for the session and yields an environment
    (os.environ plus SLURM_CONF) for the clients. A cluster that was already
    running (another session in the same tree) is used and left running."""
    if os.geteuid() != 0:
        _skip("needs root to install and run slurmctld/slurmd/munged")
    was_running = subprocess.run([CLUSTER, "status"], capture_output=True).returncode == 0
    start = subprocess.run([CLUSTER, "start"], capture_output=True, text=True)
    if start.returncode in (NOT_ROOT, NO_ARCHIVE):
        _skip(start.stderr.strip())
    if start.returncode != 0:
        pytest.fail(f"tools/slurm/cluster.sh start failed (exit {start.returncode}):\n{start.stderr}")
    export = subprocess.run([CLUSTER, "env"], capture_output=True, text=True, check=True).stdout
    name, _, value = shlex.split(export.strip().removeprefix("export "))[0].partition("=")
    assert name == "SLURM_CONF", f"unexpected output of cluster.sh env: {export!r}"
    yield {**os.environ, "SLURM_CONF": value}
    if not was_running:
        subprocess.run([CLUSTER, "stop"], check=True, capture_output=True)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict:
    """train_helpers.tiny_setup: corpora, the data folder with its lists, the tiny config."""
    from train_helpers import tiny_setup

    return tiny_setup(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_trained(tiny) -> Path:
    """An uninterrupted training of the tiny config (the reference of the resume tests): leave it as it is."""
    from train_helpers import train

    exp_dir = tiny["root"] / "exp" / "uninterrupted"
    train(tiny, exp_dir)
    return exp_dir
