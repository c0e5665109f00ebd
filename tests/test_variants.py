"""Variants: experiments x sweep points x training seeds, their folder names and overrides, and the same clear
errors as --override for mistyped keys and values."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ugr.pipeline import config as config_lib
from ugr.pipeline import variants
from ugr.pipeline.lists import lists_key

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "egs" / "wsj0_esc50" / "conf"


def _expand(experiments: str, **kwargs) -> list[variants.Variant]:
    overrides = config_lib.parse_overrides([kwargs.pop("override", "")])
    return variants.expand(variants.find_configs(CONF, experiments.split()), overrides=overrides, **kwargs)


@pytest.mark.parametrize("text, seeds", [("", None), ("3", [0, 1, 2]), ("1", [0]), ("0,4, 7", [0, 4, 7])])
def test_seeds_are_a_count_or_a_list(text, seeds):
    assert variants.parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["0", "two", "1,1", "1,-2", "1,,2"])
def test_bad_seeds_are_refused_naming_the_value(text):
    with pytest.raises(config_lib.ConfigError, match=r"--seeds"):
        variants.parse_seeds(text)


def test_without_seeds_or_sweep_each_experiment_is_one_folder_named_as_before():
    found = _expand("baseline_cpu robust_a5_cpu", tag="lr5e-4")
    assert [(v.name, v.seed, v.overrides) for v in found] == [
        ("baseline_cpu_lr5e-4", None, ()),
        ("robust_a5_cpu_lr5e-4", None, ()),
    ]


def test_a_sweep_on_one_experiment_with_seeds_makes_its_grid_times_the_seeds():
    found = _expand(
        "baseline_cpu robust_a5_cpu", seeds="2", sweep="robust_a5_cpu:weighting.alpha=0.05,0.1 training.lr=1e-3,5e-4"
    )
    names = [v.name for v in found]
    assert names[:2] == ["baseline_cpu_lr0.001_seed0", "baseline_cpu_lr0.001_seed1"]
    assert len(names) == 2 * 2 + 2 * 2 * 2 and len(set(names)) == len(names)
    robust = [v for v in found if v.experiment == "robust_a5_cpu"]
    assert robust[0].name == "robust_a5_cpu_alpha0.05_lr0.001_seed0"
    assert robust[0].point == (("weighting.alpha", 0.05), ("training.lr", 1e-3))
    assert robust[-1].group == "robust_a5_cpu_alpha0.1_lr0.0005" and robust[-1].seed == 1
    cfg = variants.load(robust[-1], "training.epochs=2")
    assert (cfg.weighting.alpha, cfg.training.lr, cfg.training.seed, cfg.training.epochs) == (0.1, 5e-4, 1, 2)


def test_seeds_change_only_the_training_seed():
    first, second = (variants.load(v, "") for v in _expand("baseline_cpu", seeds="0,5"))
    assert (first.training.seed, second.training.seed) == (0, 5)
    assert dataclasses.replace(second, training=dataclasses.replace(second.training, seed=0)) == first
    assert lists_key(first) == lists_key(second)


def test_mapping_values_split_at_top_level_commas_and_name_their_folder():
    found = _expand("class_none_cpu", sweep="weighting.type=class weighting.gamma={speech: 3},{env: 3, speech: 0}")
    assert [v.name for v in found] == [
        "class_none_cpu_type-class_gamma-speech-3",
        "class_none_cpu_type-class_gamma-env-3-speech-0",
    ]
    assert variants.load(found[1], "").weighting.gamma == {"env": 3, "speech": 0}


@pytest.mark.parametrize(
    "sweep, override, message",
    [
        ("weighting.alphx=0.1,0.2", "", r"unknown key\(s\) \['alphx'\]"),
        ("weighting.alpha=0.1,abc", "", r"'alpha' must be a finite number, got 'abc'"),
        ("training.lr=", "", r"no empty value"),
        ("lr=1,2", "", r"write \[EXPERIMENT:\]SECTION.KEY=VALUE"),
        ("nope:training.lr=1,2", "", r"names experiment 'nope'"),
        ("training.seed=1,2", "", r"training.seed cannot be swept \(use --seeds"),
        ("data.sample_rate=8000,16000", "", r"cannot be swept"),
        ("training.lr=1e-3,0.001", "", r"lists a value twice"),
        ("training.lr=1e-3 robust_a5_cpu:training.lr=5e-4", "", r"sweeps training.lr twice"),
        (
            "training.lr=1e-3,5e-4",
            "training.lr=1e-2",
            r"sets training.lr, which --sweep 'training.lr=1e-3,5e-4' sweeps",
        ),
    ],
)
def test_mistyped_sweeps_get_the_errors_of_overrides(sweep, override, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        for variant in _expand("robust_a5_cpu", sweep=sweep, override=override):
            variants.load(variant, override)


def test_an_override_of_the_seed_beside_seeds_is_refused():
    with pytest.raises(config_lib.ConfigError, match="sets training.seed, which --seeds sets"):
        _expand("baseline_cpu", seeds="2", override="training.seed=3")


def test_values_that_print_alike_would_share_a_folder_and_are_refused():
    with pytest.raises(config_lib.ConfigError, match="share the folder"):
        _expand("robust_a5_cpu", sweep="weighting.alpha=0.1000001,0.1")


def test_the_command_line_gives_the_stages_names_and_tasks(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "a.yaml").write_text(yaml.safe_dump({"inherit": str(CONF / "cpu" / "base_cpu.yaml")}))
    (conf / "b.yaml").write_text(yaml.safe_dump({"inherit": "a.yaml", "weighting": {"type": "robust", "alpha": 0.2}}))
    base = [
        sys.executable,
        "-m",
        "ugr.pipeline.variants",
        "--conf",
        str(conf),
        "--experiments",
        "a b",
        "--seeds",
        "2",
        "--sweep",
        "b:weighting.alpha=0.1,0.3",
        "--override",
        "training.epochs=2 b:training.lr=5e-4",
    ]
    names = subprocess.run(base + ["names"], capture_output=True, text=True, check=True).stdout.split()
    assert names == [
        "a_seed0",
        "a_seed1",
        "b_alpha0.1_seed0",
        "b_alpha0.1_seed1",
        "b_alpha0.3_seed0",
        "b_alpha0.3_seed1",
    ]
    found = variants.expand(variants.find_configs(conf, ["a", "b"]), "2", "b:weighting.alpha=0.1,0.3")
    task = variants.task_variant(found, 5)
    assert (task.config, task.name) == (conf / "b.yaml", "b_alpha0.3_seed1")
    overrides = variants.variant_override_list("training.epochs=2 b:training.lr=5e-4", task)
    assert [(o.experiment, o.keys, o.value) for o in overrides] == [
        (None, ("training", "epochs"), 2),
        ("b", ("training", "lr"), 5e-4),
        (None, ("weighting", "alpha"), 0.3),
        (None, ("training", "seed"), 1),
    ]
    for index, message in ((6, "UGR_TASK_ID=6 is out of range for 6 variants"), (None, "UGR_TASK_ID is not set")):
        with pytest.raises(config_lib.ConfigError, match=message):
            variants.task_variant(found, index)
    bad = subprocess.run(base[:-2] + ["--override", "c:training.lr=1", "check"], capture_output=True, text=True)
    assert bad.returncode == 1 and "names experiment 'c'" in bad.stderr and "Traceback" not in bad.stderr


def _conf_tree(root: Path, files: list[str]) -> Path:
    conf = root / "conf"
    for name in files:
        (conf / name).parent.mkdir(parents=True, exist_ok=True)
        (conf / name).write_text(yaml.safe_dump({"inherit": str(CONF / "cpu" / "base_cpu.yaml")}))
    return conf


def test_an_experiment_name_is_its_file_in_any_folder_of_conf(tmp_path):
    conf = _conf_tree(tmp_path, ["top.yaml", "cpu/a_cpu.yaml", "study/deep/b.yaml"])
    assert variants.find_config(conf, "a_cpu") == conf / "cpu" / "a_cpu.yaml"
    assert variants.find_config(conf, "b") == conf / "study" / "deep" / "b.yaml"
    assert variants.find_config(conf, "top") == conf / "top.yaml"
    # The shipped recipes: the names run.sh has always taken, now in folders.
    assert variants.find_config(CONF, "baseline_cpu") == CONF / "cpu" / "baseline_cpu.yaml"
    assert variants.find_config(CONF, "paper_robust_a5") == CONF / "paper" / "paper_robust_a5.yaml"
    assert [v.name for v in _expand("baseline_cpu robust_a5")] == ["baseline_cpu", "robust_a5"]


def test_an_unknown_experiment_lists_the_names_there_are_by_folder(tmp_path):
    conf = _conf_tree(tmp_path, ["top.yaml", "cpu/a_cpu.yaml", "cpu/c_cpu.yaml", "gpu/a.yaml"])
    with pytest.raises(config_lib.ConfigError) as err:
        variants.find_config(conf, "a_cpux")
    message = str(err.value)
    assert "no a_cpux.yaml" in message
    assert "./: top" in message and "cpu/: a_cpu c_cpu" in message and "gpu/: a" in message
    for bad in ("cpu/a_cpu", "a_cpu.yaml", ""):  # a name, not a path
        with pytest.raises(config_lib.ConfigError, match="without folder or .yaml"):
            variants.find_config(conf, bad)


def test_a_name_in_two_folders_is_refused_naming_both_files(tmp_path):
    conf = _conf_tree(tmp_path, ["cpu/same.yaml", "study/same.yaml", "cpu/other.yaml"])
    with pytest.raises(config_lib.ConfigError, match="ambiguous") as err:
        variants.find_config(conf, "same")
    assert str(conf / "cpu" / "same.yaml") in str(err.value) and str(conf / "study" / "same.yaml") in str(err.value)
    assert variants.find_config(conf, "other") == conf / "cpu" / "other.yaml"  # the others still resolve
    with pytest.raises(config_lib.ConfigError, match="names other twice"):
        variants.find_configs(conf, ["other", "other"])


def test_the_command_line_resolves_names_for_the_shell(tmp_path):
    conf = _conf_tree(tmp_path, ["cpu/a.yaml", "gpu/b.yaml", "x/dup.yaml", "y/dup.yaml"])
    base = [sys.executable, "-m", "ugr.pipeline.variants", "--conf", str(conf)]
    out = subprocess.run(base + ["--experiments", "b a", "configs"], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [str(conf / "gpu" / "b.yaml"), str(conf / "cpu" / "a.yaml")]
    names = subprocess.run(base + ["--experiments", "a b", "names"], capture_output=True, text=True, check=True)
    assert names.stdout.splitlines() == ["a", "b"]
    for names, expected in (("a nope", "no nope.yaml"), ("dup", "ambiguous")):
        for command in ("configs", "names", "check"):
            bad = subprocess.run(base + ["--experiments", names, command], capture_output=True, text=True)
            assert bad.returncode == 1 and expected in bad.stderr and "Traceback" not in bad.stderr
            assert bad.stdout == ""
