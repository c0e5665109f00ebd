"""Shared fixtures: a real one-node Slurm cluster for the `slurm` backend tests; a tiny prepared corpus and an
experiment trained on it for the stage 2 tests. How tools/test.sh's pytest-xdist workers share the files."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "tools" / "slurm" / "cluster.sh"
# cluster.sh's exit codes that mean "this machine cannot have a cluster", not "broken".
NOT_ROOT, NO_ARCHIVE = 3, 4


# The files whose tests use the one Slurm cluster (fixture slurm_cluster): one worker runs them all, since a
# worker whose session ends stops the cluster it started, under another worker's jobs.
SLURM_FILES = ("tests/test_launch.py", "tests/test_recipe_slurm.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadfile`` (tools/test.sh) with SLURM_FILES as one unit: a file's tests run on one worker, in
    their order (a recipe test module shares one run, test after test)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "slurm_cluster" if path in SLURM_FILES else path

    return FileScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow files first (stable, so a file keeps its order), so that the workers end together; and no test
    of the cluster outside SLURM_FILES."""
    for item in items:
        if "slurm_cluster" in getattr(item, "fixturenames", ()) and item.nodeid.split("::")[0] not in SLURM_FILES:
            raise pytest.UsageError(
                f"{item.nodeid} uses the fixture slurm_cluster: add its file to SLURM_FILES in tests/conftest.py"
            )
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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


@pytest.fixture(scope="module")
def conf(tiny, tmp_path_factory) -> Path:
    """A conf/ folder holding tiny.yaml: the tiny config whose lists the tiny data folder has (epochs: 1, quick)."""
    folder = tmp_path_factory.mktemp("conf")
    config = yaml.safe_load(tiny["config"].read_text())
    config["training"]["epochs"] = 1
    config["scoring"]["average_last_k"] = 1
    (folder / "tiny.yaml").write_text(yaml.safe_dump(config))
    return folder
