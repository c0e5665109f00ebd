"""A resumed training is the same run: killed after an epoch, or checkpointed mid-epoch by Slurm's
warning signal and requeued, it ends with bit-identical weights to an uninterrupted run, with a data
worker process (every shipped config has one).

Each case runs ``python -m ugr.pipeline.train`` as the recipe does, in its own process, on a tiny corpus:
3 epochs of 6 steps.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from train_helpers import EPOCHS, STEPS_PER_EPOCH, start_training, train

from ugr.data.dataset import EpochSampler


def logged_steps(exp_dir: Path) -> int:
    """Training steps the running launch has logged (metrics.csv is flushed every step)."""
    steps = 0
    for path in exp_dir.glob("csv/version_*/metrics.csv"):
        try:
            with open(path, newline="") as handle:
                steps = max([steps] + [int(row["step"]) + 1 for row in csv.DictReader(handle) if row.get("step")])
        except (OSError, ValueError, KeyError):
            pass  # being written
    return steps


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, f"training ended before {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def final_state(exp_dir: Path) -> dict:
    ckpt = torch.load(exp_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return {
        "weights": ckpt["state_dict"],
        "adam": ckpt["optimizer_states"][0]["state"],
        "global_step": ckpt["global_step"],
    }


def assert_same_run(resumed: Path, reference: Path) -> None:
    got, want = final_state(resumed), final_state(reference)
    assert got["global_step"] == want["global_step"] == EPOCHS * STEPS_PER_EPOCH
    different = [name for name, value in want["weights"].items() if not torch.equal(value, got["weights"][name])]
    assert not different, f"resumed weights differ from the uninterrupted run's: {different[:5]}"
    for index, state in want["adam"].items():
        assert all(torch.equal(state[k], got["adam"][index][k]) for k in state), "Adam state differs"


def test_a_training_killed_after_an_epoch_resumes_bit_exactly(tiny, tiny_trained):
    exp_dir = tiny["root"] / "exp" / "killed"
    last = exp_dir / "checkpoints" / "last.ckpt"
    process = start_training(tiny, exp_dir)
    # Killed once the first epoch's checkpoints are written and the second epoch has started.
    wait_for(lambda: last.is_file() and logged_steps(exp_dir) > STEPS_PER_EPOCH + 1, process, "epoch 2")
    process.kill()
    process.wait()
    saved = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert 0 < saved < EPOCHS * STEPS_PER_EPOCH, f"killed too late to test resuming (step {saved})"

    resumed = train(tiny, exp_dir)
    assert "resuming from" in resumed.stdout
    assert_same_run(exp_dir, tiny_trained)


def test_a_mid_epoch_slurm_checkpoint_resumes_at_its_batch(tiny, tiny_trained, tmp_path):
    """On Slurm's warning signal (--signal=B:USR1@90), Lightning's SLURM handler saves hpc_ckpt_1.ckpt in the
    middle of an epoch and calls `scontrol requeue`, which ends the job; the next launch resumes from it. (Run
    inside the signal handler, as Lightning does, the save hung whenever the signal came during the TensorBoard
    flush of a step.)"""
    exp_dir = tiny["root"] / "exp" / "requeued"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"  # Slurm's requeue ends the job: here, at once
    scontrol.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/requeued\nkill -9 $PPID\n')
    scontrol.chmod(0o755)
    slurm = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_NTASKS": "1",
        "SLURM_JOB_ID": "7",
        "SLURM_JOB_NAME": "ugr_train",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "localhost",
    }
    process = start_training(tiny, exp_dir, slurm)
    wait_for(lambda: logged_steps(exp_dir) >= STEPS_PER_EPOCH + 2, process, "the middle of epoch 2")
    process.send_signal(signal.SIGUSR1)
    process.wait(timeout=120)
    assert (tmp_path / "requeued").read_text().split() == ["requeue", "7"]
    hpc = exp_dir / "hpc_ckpt_1.ckpt"
    step = torch.load(hpc, map_location="cpu", weights_only=False)["global_step"]
    assert step % STEPS_PER_EPOCH, f"the signal came at an epoch's end (step {step}): not a mid-epoch test"

    resumed = train(tiny, exp_dir)
    assert f"resuming from {hpc}" in resumed.stdout
    assert "dataloader is not resumable" not in resumed.stdout + resumed.stderr
    assert_same_run(exp_dir, tiny_trained)


@pytest.mark.parametrize("rank", [0, 1])
def test_the_sampler_starts_where_the_batches_done_end(rank):
    world, per_rank_batch = 2, 3
    fresh = EpochSampler(24, rank=rank, world_size=world, batch_size=per_rank_batch)
    stream = []
    for epoch in range(3):
        fresh.set_epoch(epoch)
        stream += list(fresh)
    assert stream[:12] == list(range(rank, 24, world)) and stream[12:24] == list(range(24 + rank, 48, world))
    for done in range(0, 3 * 4):  # 4 batches per epoch and rank
        resumed = EpochSampler(24, rank=rank, world_size=world, batch_size=per_rank_batch, batches_done=done)
        epoch = done // 4
        resumed.set_epoch(epoch)  # Lightning sets the epoch it resumes in, before or after making the iterator
        rest = list(resumed)
        for later in range(epoch + 1, 3):
            resumed.set_epoch(later)
            rest += list(resumed)
        assert rest == stream[done * per_rank_batch :], f"resumed after {done} batches"
        assert len(resumed) == 12, "the length stays the epoch's, as Lightning counts the epoch's batches"
