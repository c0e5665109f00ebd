"""Experiment configs: the shipped files validate, inheritance and overrides merge, bad keys and values are named,
and a config is checked against a prepared corpus."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from ugr.pipeline import config
from ugr.pipeline.corpus_check import check_corpus
from ugr.pipeline.lists import lists_dir, lists_key

EGS = Path(__file__).resolve().parents[1] / "egs"
CONF_DIR = EGS / "wsj0_esc50" / "conf"
SHIPPED = sorted(EGS.glob("*/conf/**/*.yaml"))  # every folder of conf/ (cpu/, gpu/, paper/, study/)


def _write(folder: Path, name: str, content: dict) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(content))
    return path


@pytest.fixture
def base(tmp_path) -> Path:
    """A copy of the CPU preset resolved into one file, so tests edit plain dicts."""
    return _write(tmp_path, "base.yaml", config.load(CONF_DIR / "cpu" / "base_cpu.yaml").to_dict())


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(EGS)) for p in SHIPPED])
def test_every_shipped_config_is_valid(path):
    cfg = config.load(path)
    assert set(cfg.to_dict()) == set(config.SECTIONS)
    assert config.validate(cfg.to_dict(), where=str(path)) == cfg  # the record rebuilds the same typed config


def test_the_config_is_typed_and_frozen(base):
    cfg = config.load(base)
    assert isinstance(cfg.data, config.DataConfig) and isinstance(cfg.training, config.TrainingConfig)
    assert cfg.training.batch_size == cfg.to_dict()["training"]["batch_size"] and cfg.model.arch == "sudormrf"
    assert cfg.weighting.label() == "uniform" and cfg.scoring.as_dict() == cfg.to_dict()["scoring"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.training.lr = 1.0
    copy = cfg.to_dict()
    copy["training"]["lr"] = 1.0  # a copy: the config it came from is unchanged
    assert cfg.training.lr != 1.0 and cfg.to_dict()["training"]["lr"] == cfg.training.lr


def test_paper_settings_and_cpu_preset():
    gpu = config.load(CONF_DIR / "gpu" / "robust_a15.yaml")
    assert gpu.data.segment == 4.0 and gpu.training.batch_size == 28
    assert gpu.model.options["num_blocks"] == 16 and gpu.model.options["n_filters"] == 512
    assert gpu.to_dict()["weighting"] == {"type": "robust", "alpha": pytest.approx(1 / 15), "granularity": "source"}
    assert gpu.weighting.alpha == pytest.approx(1 / 15) and gpu.weighting.granularity == "source"
    assert gpu.training.lr == 0.001 and gpu.training.clip == 5.0
    speech = config.load(CONF_DIR / "gpu" / "class_speech3.yaml")
    assert speech.weighting.gamma == {"speech": 3.0} and speech.data.priors == {"speech+env": 1.0}
    cpu = config.load(CONF_DIR / "cpu" / "robust_a5_cpu.yaml")
    assert cpu.model.options["mask_layer"] == "fast" and cpu.data.priors == {"env+env": 1.0}


def test_inherit_overrides_keys_and_a_new_weighting_type_replaces_its_arguments(tmp_path, base):
    _write(
        tmp_path,
        "robust.yaml",
        {"inherit": "base.yaml", "weighting": {"type": "robust", "alpha": 0.1, "granularity": "mixture"}},
    )
    child = _write(
        tmp_path,
        "child.yaml",
        {
            "inherit": "robust.yaml",
            "training": {"epochs": 3},
            "weighting": {"type": "curriculum", "beta0": -0.1, "horizon_steps": 5},
        },
    )
    cfg = config.load(child)
    assert cfg.training.epochs == 3
    assert cfg.training.lr == config.load(base).training.lr
    # alpha belongs to robust and is dropped; granularity is kept.
    assert cfg.to_dict()["weighting"] == {
        "type": "curriculum",
        "beta0": -0.1,
        "horizon_steps": 5,
        "granularity": "mixture",
    }


def test_a_new_model_arch_replaces_the_model_section_but_rate_and_sources(tmp_path, base):
    tasnet = config.load(_write(tmp_path, "tasnet.yaml", {"inherit": "base.yaml", "model": {"arch": "convtasnet"}}))
    assert tasnet.to_dict()["model"] == {"arch": "convtasnet", "sample_rate": 8000, "n_src": 2}
    assert tasnet.model.arch == "convtasnet" and tasnet.model.options["n_blocks"] == 8  # the arch's defaults
    same = config.load(_write(tmp_path, "same.yaml", {"inherit": "base.yaml", "model": {"num_blocks": 2}}))
    assert same.model.options["num_blocks"] == 2
    assert same.model.options["n_filters"] == config.load(base).model.options["n_filters"]


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("training", "lr", -1.0, "training.lr must be a positive number"),
        ("training", "precision", "64", "training.precision must be one of"),
        ("training", "micro_batches", 3, "multiple of training.micro_batches"),
        ("data", "snr_range", [5, -5], "data.snr_range"),
        ("data", "priors", {"speech": 1.0}, "data.priors must map mixture types, pairs of coarse classes"),
        ("data", "train_from", "files", "data.train_from must be one of ['sources', 'published']"),
        ("data", "normalize", "yes", "data.normalize must be true or false"),
        ("scoring", "average_last_k", 0, "scoring.average_last_k"),
        ("training", "learning_rate", 0.1, "unknown key(s) training.learning_rate"),
        ("weighting", "alpha", 0.1, "bad 'weighting' section"),
        ("model", "num_block", 4, "bad 'model' section"),
    ],
)
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
    missing = config.load(base).to_dict()
    del missing["training"]["clip"]
    with pytest.raises(config.ConfigError, match="missing key"):
        config.load(_write(tmp_path, "d.yaml", missing))
    (tmp_path / "e.yaml").write_text("data: [unclosed\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(tmp_path / "e.yaml")


def test_lists_key_follows_the_data_settings(tmp_path, base):
    same = config.load(_write(tmp_path, "same.yaml", {"inherit": "base.yaml", "training": {"epochs": 1}}))
    other = config.load(_write(tmp_path, "other.yaml", {"inherit": "base.yaml", "data": {"test_mixtures": 7}}))
    published = config.load(_write(tmp_path, "pub.yaml", {"inherit": "base.yaml", "data": {"eval_from": "published"}}))
    assert lists_key(same) == lists_key(config.load(base)) != lists_key(other)
    assert lists_key(published) != lists_key(same)
    assert lists_dir(same, tmp_path) == tmp_path / "lists" / lists_key(same)


def test_numbers_in_exponent_notation_are_numbers(tmp_path, base):
    (tmp_path / "exp.yaml").write_text("inherit: base.yaml\ntraining:\n  lr: 1e-3\n  clip: 5E+0\n")
    cfg = config.load(tmp_path / "exp.yaml")
    assert cfg.training.lr == 0.001 and cfg.training.clip == 5.0


def test_overrides_change_values_for_all_or_one_experiment(tmp_path, base):
    overrides = config.parse_overrides(
        [
            "training.lr=5e-4 weighting.type=robust weighting.alpha=0.1",
            "other:training.epochs=9 base:weighting.gamma={dog: 3} training.clip=null",
        ]
    )
    assert [o.text for o in overrides] == [
        "training.lr=5e-4",
        "weighting.type=robust",
        "weighting.alpha=0.1",
        "other:training.epochs=9",
        "base:weighting.gamma={dog: 3}",
        "training.clip=null",
    ]
    cfg = config.load(base, overrides[:3] + overrides[5:])
    assert cfg.training.lr == 0.0005 and cfg.training.clip is None
    assert cfg.to_dict()["weighting"] == {"type": "robust", "alpha": 0.1, "granularity": "source"}
    other = config.load(base, overrides, experiment="other")
    assert other.training.epochs == 9 and config.load(base).training.epochs != 9
    with pytest.raises(config.ConfigError, match=r"with overrides .*base:weighting.gamma=\{dog: 3\}.*weighting"):
        config.load(base, overrides[4:5])  # gamma on a uniform weighting: unknown key
    with pytest.raises(config.ConfigError, match="names experiment 'nope'"):
        config.check_override_targets(config.parse_overrides(["nope:training.lr=1"]), ["base"])
    for bad in ("lr=1", "optim.lr=1", "training.lr"):
        with pytest.raises(config.ConfigError, match="write \\[EXPERIMENT:\\]SECTION.KEY=VALUE"):
            config.parse_overrides([bad])
    with pytest.raises(config.ConfigError, match="training.lr must be a positive number, got 'abc'"):
        config.load(base, config.parse_overrides(["training.lr=abc"]))


def test_a_curriculum_longer_than_the_training_is_refused(tmp_path, base):
    curriculum = {"type": "curriculum", "beta0": -0.2, "horizon_epochs": 10}
    with pytest.raises(config.ConfigError, match="horizon_epochs \\(10\\) is longer than the training"):
        config.load(
            _write(tmp_path, "c.yaml", {"inherit": "base.yaml", "weighting": curriculum, "training": {"epochs": 6}})
        )
    steps = {"type": "curriculum", "beta0": -0.2, "horizon_steps": 10_000}
    with pytest.raises(config.ConfigError, match="horizon_steps \\(10000\\) is longer than the training"):
        config.load(_write(tmp_path, "s.yaml", {"inherit": "base.yaml", "weighting": steps}))
    inside = {"type": "sum", "terms": [{"type": "robust", "alpha": 0.1}, curriculum]}
    with pytest.raises(config.ConfigError, match="horizon_epochs"):
        config.load(
            _write(tmp_path, "t.yaml", {"inherit": "base.yaml", "weighting": inside, "training": {"epochs": 6}})
        )


@pytest.fixture(scope="module")
def speech_and_env(tmp_path_factory):
    from test_data_helpers import make_esc50, make_wsj0

    from ugr.data.prepare import CorpusInput, prepare

    root = tmp_path_factory.mktemp("corpus")
    wsj0 = make_wsj0(root, {"si_tr_s": ["01a", "02b"], "si_dt_05": ["20c"], "si_et_05": ["40e", "41f"]})
    esc50 = make_esc50(root / "esc50", clips_per_fold=2, seconds=0.3)
    prepare(root / "data", [CorpusInput("wsj0", str(wsj0)), CorpusInput("esc50", str(esc50))], fs=8000)
    return root / "data"


def test_a_config_is_checked_against_the_corpus_classes(tmp_path, base, speech_and_env):
    data = speech_and_env
    check_corpus(config.load(base), data, "base")  # env+env: every split has 3 sound classes
    gamma = config.load(base, config.parse_overrides(["weighting.type=class weighting.gamma={speach: 3}"]))
    with pytest.raises(
        config.ConfigError, match="gamma names class\\(es\\) speach.*classes are: dog, env, rain, siren, speech"
    ):
        check_corpus(gamma, data, "base")
    for label in ("dog", "env", "speech"):  # fine or coarse labels
        ok = config.load(base, config.parse_overrides([f"weighting.type=class weighting.gamma={{{label}: 3}}"]))
        check_corpus(ok, data, "base")
    noise = config.load(base, config.parse_overrides(["data.priors={speech+noise: 1}"]))
    with pytest.raises(
        config.ConfigError, match="speech\\+noise mixtures.*no coarse class 'noise' \\(it has: env, speech\\)"
    ):
        check_corpus(noise, data, "base")
    one_speaker = config.load(base, config.parse_overrides(["data.priors={speech+speech: 1}"]))
    with pytest.raises(config.ConfigError, match="split valid has one group \\(20c\\)"):
        check_corpus(one_speaker, data, "base")
    published = config.load(base, config.parse_overrides(["data.eval_from=published"]))
    with pytest.raises(config.ConfigError, match="valid_mixtures.tsv: no manifest"):
        check_corpus(published, data, "base")
    fast = config.load(base, config.parse_overrides(["data.sample_rate=16000 model.sample_rate=16000"]))
    with pytest.raises(
        config.ConfigError, match=r"prepared at \[8000\] Hz but 16000 Hz was asked \(data.sample_rate\)"
    ):
        check_corpus(fast, data, "base")
