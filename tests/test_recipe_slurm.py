"""The recipe's `slurm` backend on a real one-node cluster (fixture `slurm_cluster`):
the same outputs as the `local` backend, experiments as job arrays, --wait false,
and a failed stage cancelling the stages after it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from recipe_helpers import EXPERIMENTS, TINY, copy_recipe, make_corpora, run_recipe

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# Smaller than the recipe test's: 2 epochs of 4 steps.
SMALL = {
    **TINY,
    "data": {**TINY["data"], "train_mixtures_per_epoch": 16},
    "training": {**TINY["training"], "epochs": 2},
}
# The shipped conf asks 6 CPUs and a GPU per job; the test cluster is one 2-CPU node.
TEST_SLURM_CONF = """\
[cpu]
--cpus-per-task=1
--mem=2G
--time=10:00
[gpu]
--gres=gpu:{ngpu}
--ntasks-per-node={ngpu}
--nodes={nodes}
--time=10:00
"""
WAIT_LINE = re.compile(r"^tools/launch\.sh --backend slurm --wait-for ((?:\d+:)*\d+)$")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, list[str], Path]:
    """The tree, run.sh's corpus arguments, and a copy run by the local backend
    through stage 1 (its data/ serves the tests that start at stage 2)."""
    root = tmp_path_factory.mktemp("tree")
    corpora = make_corpora(root / "corpora")
    local = copy_recipe(root, "local", SMALL)
    run_recipe(local, "--stop_stage", "1", *corpora, "--experiments", EXPERIMENTS)
    return root, corpora, local


def slurm_copy(root: Path, name: str) -> Path:
    copy = copy_recipe(root, name, SMALL)
    (copy / "conf" / "slurm.conf").write_text(TEST_SLURM_CONF)
    return copy


def job_states(job_id: str, env: dict[str, str]) -> list[str]:
    """JobState=... Reason=... of the job, one per array task."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], env=env, check=True, capture_output=True, text=True
    ).stdout
    return [" ".join(re.findall(r"\b(?:JobState|Reason)=\S+", line)) for line in out.splitlines()]


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]


def test_slurm_backend_submits_job_arrays_and_matches_the_local_backend(tree, slurm_cluster):
    root, corpora, local = tree
    stages = [*corpora, "--experiments", EXPERIMENTS]
    # The same CPU threads on both backends (the local one runs its experiments side by side, a thread each;
    # sums over threads round differently): the results must then be equal to the last bit.
    run_recipe(local, *stages, "--stage", "2", env={**os.environ, "OMP_NUM_THREADS": "1"})

    slurm = slurm_copy(root, "slurm")
    start = time.monotonic()
    submitted = run_recipe(
        slurm, *stages, "--cmd_backend", "slurm", "--wait", "false", env={**slurm_cluster, "OMP_NUM_THREADS": "1"}
    )
    took = time.monotonic() - start
    match = WAIT_LINE.match(submitted.stdout.strip().splitlines()[-1])
    assert match, f"no wait command on the last line:\n{submitted.stdout}"
    ids = match.group(1).split(":")
    assert len(ids) == 5, "one job per stage, the per-experiment stages as arrays"
    report_job = ids[-1]
    # It returned after submitting: the report job still waits for training.
    assert job_states(report_job, slurm_cluster)[0].startswith("JobState=PENDING"), took
    assert not (slurm / "exp" / "report.md").exists()
    waited = subprocess.run(
        ["tools/launch.sh", "--backend", "slurm", "--wait-for", match.group(1)],
        cwd=slurm,
        env=slurm_cluster,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert waited.returncode == 0, waited.stderr + (slurm / "exp/log/train.0.log").read_text()[-3000:]

    train_job = (slurm / "exp/log/train.jobid").read_text().strip()
    assert train_job == ids[2]
    for task, name in enumerate(EXPERIMENTS.split()):
        header = (slurm / f"exp/log/train.{task}.log").read_text().splitlines()[1]
        assert f", task {task}, slurm job {train_job}_{task}, restart 0" in header
        assert f"exp/{name} is trained" not in (slurm / f"exp/log/train.{task}.log").read_text()
        score_header = (slurm / f"exp/log/score.{task}.log").read_text().splitlines()[1]
        assert f"slurm job {ids[3]}_{task}," in score_header
        for path in ("scores/test.csv", "scores/test_stats.json", "train.done"):
            assert (slurm / "exp" / name / path).read_text() == (local / "exp" / name / path).read_text().replace(
                str(local), str(slurm)
            ), f"{name}/{path} differs between the local and slurm backends"
        for ckpt in ("last.ckpt", "epoch=1.ckpt", "best.ckpt"):
            ours, theirs = (weights(c / "exp" / name / "checkpoints" / ckpt) for c in (slurm, local))
            assert ours.keys() == theirs.keys()
            for key in ours:
                assert torch.equal(ours[key], theirs[key]), f"{name}/{ckpt}: {key} differs"
    assert (slurm / "exp/report.md").read_text() == (local / "exp/report.md").read_text()


def test_seeds_go_out_as_one_array_task_each_and_are_reported_across_seeds(tree, slurm_cluster):
    root, corpora, _ = tree
    copy = slurm_copy(root, "seeds")
    (copy / "data").symlink_to(root / "egs" / "local" / "data")  # prepared by the local backend (fixture)
    done = run_recipe(
        copy, "--stage", "2", "--experiments", "tiny", "--seeds", "2", "--cmd_backend", "slurm", env=slurm_cluster
    )
    train_job = (copy / "exp/log/train.jobid").read_text().strip()
    for task in (0, 1):
        log = (copy / f"exp/log/train.{task}.log").read_text()
        assert f", task {task}, slurm job {train_job}_{task}," in log.splitlines()[1]
        assert f"task {task}: conf/tiny.yaml -> exp/tiny_seed{task} (overrides: training.seed={task})" in log
        assert yaml.safe_load((copy / f"exp/tiny_seed{task}/config.yaml").read_text())["training"]["seed"] == task
    first, second = (weights(copy / f"exp/tiny_seed{s}/checkpoints/last.ckpt") for s in (0, 1))
    assert any(not torch.equal(first[key], second[key]) for key in first)
    report = (copy / "exp/report.md").read_text()
    assert "| tiny | uniform | 2 |" in report, done.stdout[-2000:]


def test_a_failed_stage_cancels_the_stages_after_it_and_run_fails(tree, slurm_cluster):
    copy = slurm_copy(tree[0], "failing")
    # Training has no prepared corpus to read: stage 2 fails, 3 and 4 must never run.
    done = run_recipe(
        copy,
        "--stage",
        "2",
        "--experiments",
        EXPERIMENTS,
        "--data",
        "missing",
        "--cmd_backend",
        "slurm",
        env=slurm_cluster,
        check=False,
    )
    assert done.returncode != 0
    ids = {stage: (copy / f"exp/log/{stage}.jobid").read_text().strip() for stage in ("train", "score", "report")}
    assert all(state.startswith("JobState=FAILED") for state in job_states(ids["train"], slurm_cluster))
    for stage in ("score", "report"):
        states = job_states(ids[stage], slurm_cluster)
        assert states and all(s == "JobState=CANCELLED Reason=DependencyNeverSatisfied" for s in states), states
        assert f"({'ugr_' + stage}) CANCELLED" in done.stderr
    assert f"job {ids['train']}_0 (ugr_train) FAILED" in done.stderr
    for name in EXPERIMENTS.split():
        assert not (copy / "exp" / name / "scores").exists()
        assert (copy / f"exp/log/score.{EXPERIMENTS.split().index(name)}.log").read_text() == ""
    assert not (copy / "exp/report.md").exists()


def test_requeued_training_resumes_from_its_last_checkpoint_and_finishes(tree, slurm_cluster):
    """`scontrol requeue` (as preemption) kills the training job after its first epoch;
    Slurm starts it again and ugr.pipeline.train goes on from checkpoints/last.ckpt."""
    root, _, local = tree
    copy = slurm_copy(root, "requeue")
    epochs = SMALL["training"]["epochs"] + 1
    (copy / "conf" / "tiny.yaml").write_text(
        yaml.safe_dump({**SMALL, "training": {**SMALL["training"], "epochs": epochs}})
    )
    run_recipe(
        copy,
        "--stage",
        "2",
        "--stop_stage",
        "2",
        "--experiments",
        "tiny",
        "--data",
        str(local / "data"),
        "--cmd_backend",
        "slurm",
        "--wait",
        "false",
        env=slurm_cluster,
    )
    job = (copy / "exp/log/train.jobid").read_text().strip()
    exp, log = copy / "exp" / "tiny", copy / "exp/log/train.0.log"
    deadline = time.monotonic() + 120
    while not (exp / "checkpoints/last.ckpt").exists():
        assert time.monotonic() < deadline, f"no epoch finished in time:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)
    subprocess.run(["scontrol", "requeue", job], env=slurm_cluster, check=True)
    waited = subprocess.run(
        ["tools/launch.sh", "--backend", "slurm", "--wait-for", job],
        cwd=copy,
        env=slurm_cluster,
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = log.read_text()
    assert waited.returncode == 0, waited.stderr + text[-3000:]
    assert f"slurm job {job}_0, restart 1" in text
    assert "train: resuming from " in text and "last.ckpt" in text.split("train: resuming from ", 1)[1].splitlines()[0]
    assert json.loads((exp / "train.done").read_text())["epochs"] == epochs
    first, second = (exp / "csv" / f"version_{v}" / "metrics.csv" for v in (0, 1))
    assert first.is_file() and second.is_file(), "one CSV log per launch: the requeued job is a second launch"
