"""Names and values a user types are data, never paths: a tag, an override or a swept value either makes an
experiment folder inside --exp or stops the run with one clear error, and nothing outside the experiment root is
created or deleted; --seeds is bounded; a weighting type switched in a child config keeps its normaliser."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from train_helpers import run_task

from ugr.pipeline import config as config_lib
from ugr.pipeline import variants

ROOT = Path(__file__).resolve().parents[1]
RULE = (
    "a folder name is 1-100 characters of A-Z a-z 0-9 . _ + - (letters, digits, dot, underscore, plus, minus), "
    "not starting with . or -"
)
NASTY = [
    "/",
    "..",
    "../",
    "\n",
    "|",
    "'",
    '"',
    "$(touch pwned)",
    "`id`",
    "é",
    "\u202e",
    " ",
    "\\",
    "*",
    ":",
    "~",
    "%",
    "\x00",
    "a" * 150,
    ".",
    "-",
    "_",
    "+",
    "ok",
    "0",
]
texts = st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=8)), max_size=6).map("".join)


def snapshot(folder: Path) -> set:
    return {path for path in folder.rglob("*")}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A root (a temp folder's child, so that its parent can be watched) with conf/tiny.yaml and exp/."""
    root = tmp_path_factory.mktemp("names") / "root"
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "tiny.yaml").write_text("training: {epochs: 1}\n")
    (root / "exp").mkdir()
    return root


def run_options(conf: Path, tag: str = "", override: str = "", sweep: str = "", seeds: str = "") -> argparse.Namespace:
    return argparse.Namespace(experiments="tiny", conf=conf, seeds=seeds, sweep=sweep, tag=tag, override=override)


def folders_or_error(root: Path, **options: str) -> list:
    """The variants' folders inside root/exp, or [] after one clear ConfigError; never anything else."""
    try:
        found = variants.run_variants(run_options(root / "conf", **options))[1]
        paths = [variants.variant_dir(root / "exp", variant.name) for variant in found]
    except config_lib.ConfigError as err:
        assert str(err).strip(), "an empty error"
        return []
    for path in paths:
        assert path.resolve().parent == (root / "exp").resolve(), path
        assert variants.FOLDER_NAME.fullmatch(path.name), path.name
        assert len(path.name) <= 100 and not path.name.startswith((".", "-"))
    return paths


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tag=texts, value=texts, key=texts)
@example(tag="", value="", key="\\'")  # found by hypothesis: an unclosed quote in a swept key
def test_any_tag_override_or_swept_value_makes_a_folder_inside_exp_or_one_clear_error(world, tag, value, key):
    before = snapshot(world.parent)
    folders_or_error(world, tag=tag)
    folders_or_error(world, override=f"training.{key}={value}")
    folders_or_error(world, sweep=f"training.{key}={value},1")
    folders_or_error(world, tag=tag, sweep=f"weighting.alpha={value}")
    assert snapshot(world.parent) == before, "something was created or deleted"


@pytest.mark.parametrize(
    "tag, bad",
    [
        ("/../../../../../../tmp/x", "'/' (at 0)"),
        ("a/b", "'/' (at 1)"),
        ("a|b", "'|' (at 1)"),
        ("..", "starts with '.'"),
        ("-rf", "starts with '-'"),
        ("x" * 101, "101 characters long"),
        ("a b", "' ' (at 1)"),
    ],
)
def test_a_tag_outside_the_folder_name_rule_is_refused_naming_tag_the_character_and_the_rule(world, tag, bad):
    with pytest.raises(config_lib.ConfigError) as err:
        variants.run_variants(run_options(world / "conf", tag=tag))
    assert str(err.value).startswith(f"--tag {tag!r}: ") and bad in str(err.value) and str(err.value).endswith(RULE)


def test_a_sweep_made_name_outside_the_rule_is_refused(world):
    with pytest.raises(config_lib.ConfigError, match=r"the folder 'tiny_a/b1' of tiny .*'/' \(at 6\) is not allowed"):
        variants.run_variants(run_options(world / "conf", sweep="training.a/b=1,2"))


def test_an_experiment_folder_that_links_outside_exp_is_refused(tmp_path):
    exp, elsewhere = tmp_path / "exp", tmp_path / "elsewhere"
    exp.mkdir()
    elsewhere.mkdir()
    (exp / "tiny_x").symlink_to(elsewhere)
    with pytest.raises(config_lib.ConfigError, match="resolves to .*elsewhere, outside --exp"):
        variants.variant_dir(exp, "tiny_x")
    assert variants.variant_dir(exp, "tiny_y") == exp / "tiny_y"
    (tmp_path / "link_to_exp").symlink_to(exp)  # --exp itself a link: its folders are inside it
    assert variants.variant_dir(tmp_path / "link_to_exp", "tiny_y") == tmp_path / "link_to_exp" / "tiny_y"
    with pytest.raises(config_lib.ConfigError, match="'/' \\(at 2\\)"):
        variants.variant_dir(exp, "../x")


def test_the_report_refuses_a_variant_folder_that_links_outside_exp_root(world, tmp_path):
    from ugr.report import cli

    exp, elsewhere = tmp_path / "exp", tmp_path / "elsewhere"
    exp.mkdir()
    elsewhere.mkdir()
    (exp / "tiny").symlink_to(elsewhere)
    with pytest.raises(SystemExit, match="report: error: .*tiny resolves to .*elsewhere, outside --exp"):
        cli.main(["--exp-root", str(exp), "--variants-of-run", "--experiments", "tiny", "--conf", str(world / "conf")])
    with pytest.raises(SystemExit, match=r"report: error: --tag 'a\|b': the character '\|'"):
        cli.main(
            [
                "--exp-root",
                str(exp),
                "--variants-of-run",
                "--experiments",
                "tiny",
                "--conf",
                str(world / "conf"),
                "--tag",
                "a|b",
            ]
        )


@pytest.mark.parametrize("tag", ["/../../../../../../tmp/x", "../../escape", "a|b", "$(touch pwned)"])
def test_the_task_with_a_bad_tag_stops_with_one_line_and_writes_nothing(conf, tiny, tmp_path, tag):
    root = tmp_path / "root"
    root.mkdir()
    before = snapshot(tmp_path)
    done = run_task("train", conf, tiny, root / "exp", "--tag", tag)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-3000:]
    [line] = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert line.startswith(f"train: error: --tag {tag!r}: the character ") and line.endswith(RULE), line
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "pwned").exists() and not (root / "pwned").exists()


def test_the_task_trains_a_good_tag_inside_exp(conf, tiny, tmp_path):
    done = run_task("train", conf, tiny, tmp_path / "exp", "--tag", "v1.0+x")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]
    assert (tmp_path / "exp" / "tiny_v1.0+x" / "train.done").is_file()


@pytest.mark.parametrize("seeds", ["1000000000", "1001", "0,2147483648", "²", "3,-1"])
def test_seeds_are_at_most_1000_and_below_2_to_the_31(world, seeds):
    usage = rf"--seeds {seeds!r}: give a count .*at most 1000.* below 2\*\*31"
    with pytest.raises(config_lib.ConfigError, match=usage):
        variants.parse_seeds(seeds)
    with pytest.raises(SystemExit, match="variants: --seeds"):
        variants.main(["--conf", str(world / "conf"), "--experiments", "tiny", "--seeds", seeds, "names"])
    assert len(variants.parse_seeds("1000")) == 1000
    assert variants.parse_seeds("0,2147483647") == [0, 2**31 - 1]


def test_switching_the_weighting_type_in_a_child_config_keeps_its_normaliser_and_decay(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(
        f"inherit: {ROOT / 'egs' / 'wsj0_esc50' / 'conf' / 'cpu' / 'base_cpu.yaml'}\n"
        "weighting: {type: uniform, normaliser: running, decay: 0.5}\n"
    )
    child = tmp_path / "child.yaml"
    child.write_text("inherit: base.yaml\nweighting: {type: robust, alpha: 0.2}\n")
    weighting = config_lib.load(child).record["weighting"]
    assert weighting["type"] == "robust" and weighting["normaliser"] == "running" and weighting["decay"] == 0.5


def test_separate_refuses_an_input_that_is_not_a_regular_file_before_any_work(tmp_path):
    from ugr.pipeline import separate

    fifo = tmp_path / "63"  # what bash's <(cat a.wav) passes: /dev/fd/63, a pipe
    os.mkfifo(fifo)
    [(path, stem)] = separate.find_inputs([fifo])
    with pytest.raises(separate.InputError) as err:
        separate.inspect_input(path, stem)
    assert str(err.value) == f"not a regular file: {fifo} (a pipe); pass a file path"
