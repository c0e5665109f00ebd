"""The recipe egs/wsj0_esc50 end to end, in a copy, on a small synthetic corpus in WSJ0/ESC-50 layout.

One module-scoped run, several checks: stages 0-1 in a copied recipe folder,
a training killed (SIGKILL) after its first epoch checkpoint and resumed, the
rest of stages 2-4 for two experiments, re-runs that skip, and the files'
consistency (stats recomputed from the CSV, the report's table).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from recipe_helpers import EXPERIMENTS, TINY, copy_recipe, make_corpora
from recipe_helpers import run_recipe as run

from ugr.pipeline.lists import write_lists

EPOCHS = TINY["training"]["epochs"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    """`cp -r egs/wsj0_esc50 egs/mycopy` in a tree whose tools/ is the project's, plus tiny configs."""
    root = tmp_path_factory.mktemp("tree")
    copy = copy_recipe(root)
    run(copy, "--stage", "0", "--stop_stage", "1", *make_corpora(root / "corpora"), "--experiments", EXPERIMENTS)
    return copy


def test_copied_recipe_prepares_data_and_lists(recipe):
    assert os.readlink(recipe / "tools") == "../../tools"
    assert (
        os.readlink(recipe / "ugr.sh") == "../TEMPLATE/ugr.sh"
        and os.readlink(recipe / "scripts") == "../TEMPLATE/scripts"
    )
    assert (recipe / "data" / "prepare_report.json").is_file()
    lists = list((recipe / "data" / "lists").glob("*/test.csv"))
    assert len(lists) == 1, "tiny and tiny_robust share their data settings, hence one list folder"
    again = run(recipe, "--stage", "1", "--stop_stage", "1", "--experiments", EXPERIMENTS)
    assert "exists" in again.stdout + again.stderr and "skipping" in again.stdout + again.stderr


def test_killed_training_resumes_from_its_last_epoch(recipe):
    ckpt_dir = recipe / "exp" / "tiny" / "checkpoints"
    process = subprocess.Popen(
        ["./run.sh", "--stage", "2", "--stop_stage", "2", "--experiments", "tiny"],
        cwd=recipe,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    # last.ckpt is written just after epoch=0.ckpt: wait for both, or the kill can fall in between.
    while (
        not ((ckpt_dir / "epoch=0.ckpt").exists() and (ckpt_dir / "last.ckpt").exists())
        and process.poll() is None
        and time.time() < deadline
    ):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (recipe / "exp" / "tiny" / "train.done").exists(), "training finished before it could be killed"
    first_saved = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=False)["epoch"]

    resumed = run(recipe, "--stage", "2", "--stop_stage", "2", "--experiments", "tiny")
    assert "resuming from" in resumed.stdout + resumed.stderr
    summary = json.loads((recipe / "exp" / "tiny" / "train.done").read_text())
    assert summary["epochs"] == EPOCHS
    second_launch = recipe / "exp" / "tiny" / "csv" / "version_1" / "metrics.csv"
    with open(second_launch, newline="") as handle:
        epochs = {int(row["epoch"]) for row in csv.DictReader(handle)}
    assert min(epochs) == first_saved + 1, "the resumed launch must start right after the saved epoch"
    assert max(epochs) == EPOCHS - 1
    assert sorted(p.name for p in ckpt_dir.glob("epoch=*.ckpt")) == [
        f"epoch={EPOCHS - 2}.ckpt",
        f"epoch={EPOCHS - 1}.ckpt",
    ]
    assert (ckpt_dir / "best.ckpt").is_file()
    assert list((recipe / "exp" / "tiny" / "tensorboard").glob("version_*/events.*"))


def test_stages_2_to_4_train_score_and_report(recipe):
    done = run(recipe, "--stage", "2", "--experiments", EXPERIMENTS)
    out = done.stdout + done.stderr
    assert "exp/tiny is trained" in out and "skipping" in out  # from the previous test
    assert f"report: {recipe}/exp/report.md" in done.stdout
    for name in EXPERIMENTS.split():
        exp = recipe / "exp" / name
        with open(exp / "scores" / "test.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 2 * TINY["data"]["test_mixtures"]
        stats = json.loads((exp / "scores" / "test_stats.json").read_text())
        values = np.array([float(r["si_sdri"]) for r in rows])
        assert stats["n"] == len(values)
        assert stats["mean"] == pytest.approx(values.mean(), abs=1e-3)
        assert stats["std"] == pytest.approx(values.std(), abs=1e-3)
        for q in (1, 5, 10, 25, 50, 75, 90, 95, 99):
            assert stats[f"p{q}"] == pytest.approx(np.percentile(values, q), abs=1e-3)
        for coarse in {r["coarse"] for r in rows}:
            subset = [float(r["si_sdri"]) for r in rows if r["coarse"] == coarse]
            assert stats["per_coarse"][coarse]["mean"] == pytest.approx(np.mean(subset), abs=1e-3)
    report = (recipe / "exp" / "report.md").read_text()
    table = [line for line in report.splitlines() if line.startswith("| tiny")]
    assert [line.split("|")[1].strip() for line in table[:2]] == ["tiny", "tiny_robust"]
    robust_stats = json.loads((recipe / "exp" / "tiny_robust" / "scores" / "test_stats.json").read_text())
    assert f"| {robust_stats['mean']:.2f} |" in table[1]
    for png in ("si_sdri_density.png", "valid_si_sdri.png", "mean_vs_p5.png"):
        assert (recipe / "exp" / "figures" / png).stat().st_size > 5000

    again = run(recipe, "--stage", "3", "--experiments", EXPERIMENTS)
    out = again.stdout + again.stderr
    assert out.count("up to date, kept") == 2 and "wrote" in out


def test_other_data_is_refused_by_stages_2_and_3_not_skipped(recipe):
    """Trained and scored on data/ (the tests above), the experiments are not another data folder's results."""
    other = recipe / "data_other"
    shutil.copytree(recipe / "data", other, ignore=shutil.ignore_patterns("lists"))
    manifest = other / "manifests" / "train.tsv"
    manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[:-1]))  # one recording less
    write_lists(other, [recipe / "conf" / "tiny.yaml"])
    for stage in ("2", "3"):
        done = run(
            recipe, "--stage", stage, "--stop_stage", "3", "--data", "data_other", "--experiments", "tiny", check=False
        )
        assert done.returncode != 0 and "skipping" not in done.stdout, done.stdout[-2000:]
        assert f"exp/tiny was trained on the data of {(recipe / 'data').resolve()} (" in done.stderr, done.stderr
        assert "not on " + str(other.resolve()) in done.stderr


def test_a_second_run_on_an_experiment_stops_naming_the_first(recipe):
    lock = recipe / "exp" / ".tiny.lock"
    holder = subprocess.Popen(["flock", str(lock), "sh", "-c", f"echo pid $$ on a host > {lock}; sleep 120"])
    try:
        deadline = time.time() + 60
        while "pid" not in (lock.read_text() if lock.exists() else ""):
            assert time.time() < deadline, "the holder did not take the lock"
            time.sleep(0.05)
        done = run(recipe, "--stage", "2", "--stop_stage", "3", "--experiments", "tiny", check=False)
        assert done.returncode != 0
        assert (
            f"exp/tiny is in use by another run (pid {lock.read_text().split()[1]} on a host); wait for it "
            f"to end, or stop it (lock exp/.tiny.lock)"
        ) in done.stderr, done.stderr[-2000:]
    finally:
        holder.kill()
        holder.wait()


def test_a_wsj0_tree_without_its_training_set_stops_at_stage_0(recipe):
    corpora = recipe.parents[1] / "corpora"
    wsj0 = recipe / "wsj0_no_si_tr_s"
    shutil.copytree(corpora / "wsj0", wsj0, ignore=shutil.ignore_patterns("si_tr_s"))
    done = run(
        recipe,
        "--stage",
        "0",
        "--stop_stage",
        "1",
        "--data",
        "data_no_si_tr_s",
        "--wsj0",
        str(wsj0),
        "--esc50",
        str(corpora / "esc50"),
        "--experiments",
        "tiny",
        "--override",
        "tiny:data.priors={speech+env: 1}",
        check=False,
    )
    assert done.returncode != 0
    assert (
        "data.priors asks speech+env mixtures, but in data_no_si_tr_s split train has no coarse class 'speech' "
        "(it has: env)"
    ) in done.stdout + done.stderr
    assert not (recipe / "data_no_si_tr_s" / "lists").exists()


def test_bad_options_fail_with_a_message(recipe):
    done = run(recipe, "--experiments", "nonexistent", check=False)
    assert done.returncode != 0 and "experiment 'nonexistent': no nonexistent.yaml under conf/" in done.stderr
    assert "cpu/: base_cpu baseline_cpu" in done.stderr and "paper/: paper_base" in done.stderr  # names, by folder
    done = run(recipe, "--stage", "2", "--bogus", "1", check=False)
    assert done.returncode != 0 and "unknown option '--bogus'" in done.stderr
    help_text = run(recipe, "--help").stdout
    for option in (
        "--wsj0",
        "--esc50",
        "--download",
        "--experiments",
        "--cmd_backend",
        "--fs",
        "--override",
        "--tag",
        "--seeds",
        "--sweep",
    ):
        assert option in help_text
    assert "[baseline_cpu robust_a5_cpu]" in help_text  # the recipe's own defaults
    for args, message in (
        (["--stage", "two"], "option '--stage' takes an integer, not 'two'"),
        (["--ngpu", "abc"], "option '--ngpu' takes an integer, not 'abc'"),
        (["--stage", "3", "--stop_stage", "1"], "--stage 3 is after --stop_stage 1: no stage to run"),
        (["--fs", "8k"], "--fs '8k' must be a sample rate in Hz"),
        (["--override", "nope:training.lr=1"], "names experiment 'nope'"),
    ):
        done = run(recipe, *args, check=False)
        assert done.returncode != 0 and message in done.stderr, (args, done.stderr[-500:])


def test_seeds_and_a_sweep_train_one_folder_each_on_the_same_lists_and_report_across_seeds(recipe):
    sweep = "tiny_robust:weighting.alpha=0.1,0.3"
    done = run(
        recipe, "--stage", "1", "--experiments", "tiny_robust", "--seeds", "2", "--sweep", sweep, "--exp", "exp_seeds"
    )
    names = [f"tiny_robust_alpha{alpha}_seed{seed}" for alpha in ("0.1", "0.3") for seed in (0, 1)]
    assert f"4 experiment folders in exp_seeds: {' '.join(names)}" in done.stdout
    for name in names:
        config = yaml.safe_load((recipe / "exp_seeds" / name / "config.yaml").read_text())
        assert config["training"]["seed"] == int(name[-1])
        assert config["weighting"]["alpha"] == float(name.split("alpha")[1].split("_")[0])
    provenance = [json.loads((recipe / "exp_seeds" / name / "provenance.json").read_text()) for name in names]
    assert len({json.dumps(p["data"]["lists_sha256"], sort_keys=True) for p in provenance}) == 1, (
        "every seed and sweep point must be trained and scored on the same lists"
    )
    weights = [
        torch.load(recipe / "exp_seeds" / name / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
            "state_dict"
        ]
        for name in names[:2]
    ]
    assert any(not torch.equal(weights[0][key], weights[1][key]) for key in weights[0]), (
        "two training seeds must train different models"
    )
    report = (recipe / "exp_seeds" / "report.md").read_text()
    assert "### Across training seeds" in report
    rows = [line for line in report.splitlines() if line.startswith("| tiny_robust_alpha0.1 | robust")]
    assert rows and " ± " in rows[0] and "| 2 |" in rows[0], rows  # two seeds, mean ± std across them
    assert (recipe / "exp_seeds" / "figures" / "operating_point.png").stat().st_size > 5000
    assert "`figures/operating_point.png`" in report


def test_bad_seeds_and_sweeps_stop_the_run_before_training(recipe):
    """Every bad value is tested in test_variants.py; here, that run.sh stops on them with the message."""
    for args, message in (
        (["--seeds", "two"], "--seeds 'two': give a count"),
        (["--sweep", "tiny_robust:weighting.alphx=0.1,0.2"], "unknown key(s) ['alphx']"),
    ):
        done = run(recipe, "--stage", "2", "--experiments", EXPERIMENTS, *args, check=False)
        assert done.returncode != 0 and message in done.stderr, (args, done.stderr[-500:])
