"""One task of stages 2-3 is one Python process, `python -m ugr.pipeline.task {train,score}`: it resolves its
variant with the overrides as values, takes the folder's lock once, checks the data, and trains or scores;
a control character in a run option is refused naming the option, --force removes only an experiment folder
of ours."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest
import yaml
from train_helpers import error_line, run_task

from ugr.pipeline import task

SWEEP = "weighting.gamma={dog: 3},{dog: 1, rain: 2}"  # values with a comma and braces
SWEPT = "tiny_gamma-dog-1-rain-2"  # variant 1: the second value


@pytest.mark.parametrize("option", ["--override", "--tag", "--sweep", "--experiments"])
def test_a_control_character_in_a_run_option_is_refused_naming_the_option(conf, tiny, tmp_path, option):
    value = {
        "--override": "training.lr=1e-3\ntraining.epochs=2",
        "--tag": "a\tb",
        "--sweep": "training.lr=1e-3,\r2e-3",
        "--experiments": "tiny\n",
    }[option]
    done = run_task("train", conf, tiny, tmp_path / "exp", option, value)
    line = error_line(done)
    assert line.startswith(f"train: error: {option} {value!r} holds a control character"), line
    assert not (tmp_path / "exp").exists()
    # run.sh's first call, so a bad value stops the run before stage 0
    plan = subprocess.run(
        [
            sys.executable,
            "-m",
            "ugr.pipeline.variants",
            "--conf",
            str(conf),
            "--experiments",
            "tiny",
            option,
            value,
            "plan",
        ],
        capture_output=True,
        text=True,
    )
    assert plan.returncode == 1 and f"variants: {option} {value!r} holds a control character" in plan.stderr


def test_the_task_trains_the_variant_it_is_given_with_its_swept_value_as_a_value(conf, tiny, tmp_path_factory):
    exp = tmp_path_factory.getbasetemp() / "task_exp"
    done = run_task("train", conf, tiny, exp, "--index", "1", "--override", "weighting.type=class", "--sweep", SWEEP)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert (
        f"task 1: {conf / 'tiny.yaml'} -> {exp / SWEPT} (overrides: weighting.type=class "
        f'weighting.gamma={{"dog": 1, "rain": 2}})' in done.stdout
    )
    saved = yaml.safe_load((exp / SWEPT / "config.yaml").read_text())
    assert saved["weighting"]["gamma"] == {"dog": 1, "rain": 2}
    assert not (exp / "tiny_gamma-dog-3").exists(), "only the variant of the task is trained"
    again = run_task("train", conf, tiny, exp, "--index", "1", "--override", "weighting.type=class", "--sweep", SWEEP)
    assert again.returncode == task.CURRENT, again.stderr[-3000:]
    assert f"{exp / SWEPT} is trained" in again.stdout and "skipping" in again.stdout
    for index, message in (("2", "UGR_TASK_ID=2 is out of range for 2 variants"), (None, "UGR_TASK_ID is not set")):
        out = run_task("train", conf, tiny, exp, *(["--index", index] if index else []), "--sweep", SWEEP)
        assert message in error_line(out)


def test_force_removes_an_experiment_folder_of_ours_and_trains_from_scratch(conf, tiny, tmp_path):
    exp = tmp_path / "exp"
    stale = exp / "tiny" / "stale.txt"
    stale.parent.mkdir(parents=True)
    (exp / "tiny" / "config.yaml").write_text("old: true\n")  # ours: a previous training's record
    stale.write_text("from before")
    done = run_task("train", conf, tiny, exp, "--force")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"--force true: removing {exp / 'tiny'} to train from scratch" in done.stdout
    assert not stale.exists() and (exp / "tiny" / "train.done").is_file()
    assert "old" not in yaml.safe_load((exp / "tiny" / "config.yaml").read_text())


def test_force_refuses_a_folder_that_is_not_ours_and_leaves_it_intact(conf, tiny, tmp_path):
    exp = tmp_path / "exp"
    mine = exp / "tiny" / "thesis.tex"  # a user's folder that happens to have the variant's name
    mine.parent.mkdir(parents=True)
    mine.write_text("months of work")
    line = error_line(run_task("train", conf, tiny, exp, "--force"))
    assert line == (
        f"train: error: --force: {exp / 'tiny'} is not an experiment folder (it has none of config.yaml, "
        f"provenance.json, train.done); it is left as it is: remove it yourself, or use another --exp "
        f"or --tag"
    )
    assert sorted(p.name for p in (exp / "tiny").iterdir()) == ["thesis.tex"] and mine.read_text() == "months of work"
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "tiny").symlink_to(mine.parent, target_is_directory=True)
    assert error_line(run_task("train", conf, tiny, linked, "--force")) == (  # refused before --force looks at it
        f"train: error: {linked / 'tiny'} resolves to {mine.parent.resolve()}, outside --exp {linked} "
        f"({linked.resolve()}); an experiment folder must lie in --exp: remove the link or use another --exp"
    )
    assert mine.read_text() == "months of work"


def test_a_second_task_on_a_locked_folder_stops_naming_the_holder(conf, tiny, tmp_path):
    exp = tmp_path / "exp"
    lock = exp / ".tiny.lock"
    exp.mkdir()
    holder = subprocess.Popen(["flock", str(lock), "sh", "-c", f"echo pid $$ on a host > {lock}; sleep 60"])
    try:
        deadline = time.time() + 30
        while "pid" not in (lock.read_text() if lock.exists() else ""):
            assert time.time() < deadline, "the holder did not take the lock"
            time.sleep(0.05)
        for stage in ("train", "score"):
            line = error_line(run_task(stage, conf, tiny, exp))
            assert line == (
                f"{stage}: error: {exp / 'tiny'} is in use by another run (pid "
                f"{lock.read_text().split()[1]} on a host); wait for it to end, or stop it (lock {lock})"
            )
        assert not (exp / "tiny").exists()
    finally:
        holder.kill()
        holder.wait()


def test_score_refuses_an_untrained_folder(conf, tiny, tmp_path):
    exp = tmp_path / "exp"
    line = error_line(run_task("score", conf, tiny, exp))
    assert line == f"score: error: {exp / 'tiny'} is not trained (no {exp / 'tiny' / 'train.done'}): run stage 2 first"


def test_a_folder_of_ours_is_one_with_a_record_or_an_empty_one(tmp_path):
    for files in ([], ["config.yaml"], ["provenance.json"], ["train.done"]):
        folder = tmp_path / f"ours{len(files)}{''.join(files)}"
        folder.mkdir()
        for name in files:
            (folder / name).write_text("{}")
        task.remove_experiment(folder)
        assert not folder.exists()
    task.remove_experiment(tmp_path / "absent")  # nothing to remove
    other = tmp_path / "other"
    other.mkdir()
    (other / "checkpoints").mkdir()  # a folder named like ours is not a record
    with pytest.raises(task.NotOurs):
        task.remove_experiment(other)
    assert (other / "checkpoints").is_dir()
    shutil.rmtree(other)
