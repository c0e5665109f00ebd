"""Experiment configs: the shipped files validate, inheritance merges, bad keys and values are named."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ugr import config

CONF_DIR = Path(__file__).resolve().parents[1] / "egs" / "wsj0_esc50" / "conf"
SHIPPED = sorted(CONF_DIR.glob("*.yaml"))


def _write(folder: Path, name: str, content: dict) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(content))
    return path


@pytest.fixture
def base(tmp_path) -> Path:
    """A copy of the CPU preset resolved into one file, so tests edit plain dicts."""
    return _write(tmp_path, "base.yaml", config.load(CONF_DIR / "base_cpu.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_config_is_valid(path):
    cfg = config.load(path)
    assert set(cfg) == set(config.SECTIONS)


def test_paper_settings_and_cpu_preset():
    gpu = config.load(CONF_DIR / "robust_a15.yaml")
    assert gpu["data"]["segment"] == 4.0 and gpu["training"]["batch_size"] == 28
    assert gpu["model"]["num_blocks"] == 16 and gpu["model"]["n_filters"] == 512
    assert gpu["weighting"] == {"type": "robust", "alpha": pytest.approx(1 / 15), "granularity": "source"}
    assert gpu["training"]["lr"] == 0.001 and gpu["training"]["clip"] == 5.0
    speech = config.load(CONF_DIR / "class_speech3.yaml")
    assert speech["weighting"]["gamma"] == {"speech": 3.0} and speech["data"]["priors"] == {"speech+env": 1.0}
    cpu = config.load(CONF_DIR / "robust_a5_cpu.yaml")
    assert cpu["model"]["mask_layer"] == "fast" and cpu["data"]["priors"] == {"env+env": 1.0}


def test_inherit_overrides_keys_and_a_new_weighting_type_replaces_its_arguments(tmp_path, base):
    _write(tmp_path, "robust.yaml", {"inherit": "base.yaml", "weighting": {"type": "robust", "alpha": 0.1,
                                                                          "granularity": "mixture"}})
    child = _write(tmp_path, "child.yaml", {"inherit": "robust.yaml", "training": {"epochs": 3},
                                           "weighting": {"type": "curriculum", "beta0": -0.1, "horizon_steps": 5}})
    cfg = config.load(child)
    assert cfg["training"]["epochs"] == 3
    assert cfg["training"]["lr"] == config.load(base)["training"]["lr"]
    # alpha belongs to robust and is dropped; granularity is kept.
    assert cfg["weighting"] == {"type": "curriculum", "beta0": -0.1, "horizon_steps": 5, "granularity": "mixture"}


@pytest.mark.parametrize("section, key, value, message", [
    ("training", "lr", -1.0, "training.lr must be a positive number"),
    ("training", "precision", "64", "training.precision must be one of"),
    ("training", "micro_batches", 3, "multiple of training.micro_batches"),
    ("data", "snr_range", [5, -5], "data.snr_range"),
    ("data", "priors", {"speech+noise": 1.0}, "data.priors"),
    ("data", "normalize", "yes", "data.normalize must be true or false"),
    ("scoring", "average_last_k", 0, "scoring.average_last_k"),
    ("training", "learning_rate", 0.1, "unknown key(s) training.learning_rate"),
    ("weighting", "alpha", 0.1, "bad 'weighting' section"),
    ("model", "num_block", 4, "bad 'model' section"),
])
def test_bad_values_and_unknown_keys_name_the_file_and_key(tmp_path, base, section, key, value, message):
    bad = _write(tmp_path, "bad.yaml", {"inherit": "base.yaml", section: {key: value}})
    with pytest.raises(config.ConfigError) as err:
        config.load(bad)
    assert message in str(err.value) and str(bad) in str(err.value)


def test_structural_errors(tmp_path, base):
    with pytest.raises(config.ConfigError, match="unknown section"):
        config.load(_write(tmp_path, "a.yaml", {"inherit": "base.yaml", "optim": {}}))
    with pytest.raises(config.ConfigError, match="loops back"):
        _write(tmp_path, "b.yaml", {"inherit": "c.yaml"})
        config.load(_write(tmp_path, "c.yaml", {"inherit": "b.yaml"}))
    with pytest.raises(config.ConfigError, match="not found"):
        config.load(tmp_path / "missing.yaml")
    missing = config.load(base)
    del missing["training"]["clip"]
    with pytest.raises(config.ConfigError, match="missing key"):
        config.load(_write(tmp_path, "d.yaml", missing))
    (tmp_path / "e.yaml").write_text("data: [unclosed\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(tmp_path / "e.yaml")


def test_lists_key_and_mixture_args_follow_the_data_settings(tmp_path, base):
    same = config.load(_write(tmp_path, "same.yaml", {"inherit": "base.yaml", "training": {"epochs": 1}}))
    other = config.load(_write(tmp_path, "other.yaml", {"inherit": "base.yaml", "data": {"test_mixtures": 7}}))
    assert config.lists_key(same) == config.lists_key(config.load(base)) != config.lists_key(other)
    args = config.mixture_args(other, "test")
    assert args[args.index("--num") + 1] == "7"
    assert args[args.index("--priors") + 1] == "env+env=1.0"
    assert "--normalize" not in args


def test_cli_check_exits_naming_the_problem(tmp_path, base, capsys):
    bad = _write(tmp_path, "bad.yaml", {"inherit": "base.yaml", "training": {"epochs": 0}})
    with pytest.raises(SystemExit) as err:
        config.main(["check", str(base), str(bad)])
    assert "training.epochs" in str(err.value)
    config.main(["get", str(base), "training.batch_size"])
    assert capsys.readouterr().out.strip() == str(config.load(base)["training"]["batch_size"])
