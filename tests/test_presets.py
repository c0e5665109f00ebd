"""The paper presets (egs/wsj0_esc50/conf/paper/paper_*.yaml) hold the paper's values, or the authors' code's where the
paper is silent, and differ from one another only where the paper's experiments do; the CPU presets of the three
effects (and of the three-effects study) differ from their reference only in the weighting. Every recipe's conf/
tree, folders included, holds configs that load and that its experiment names find one by one."""

from __future__ import annotations

from pathlib import Path

import pytest

from ugr.core.weighting import build
from ugr.pipeline import config, variants

EGS = Path(__file__).resolve().parents[1] / "egs"
CONF = EGS / "wsj0_esc50" / "conf"
PAPER = sorted(p.stem for p in (CONF / "paper").glob("paper_*.yaml") if p.stem != "paper_base")
# Every YAML file of every recipe's conf/, at any depth: none escapes validation.
PRESETS = sorted(EGS.glob("*/conf/**/*.yaml"))
AUTHORS_PRIORS = {"speech+speech": 0.25, "env+env": 0.25, "speech+env": 0.5}


def _load(name: str) -> dict:
    """The preset checked, as its resolved mapping: these tests compare what the files say."""
    return config.load(variants.find_config(CONF, name)).to_dict()


def _without(cfg: dict, *sections: str) -> dict:
    return {k: v for k, v in cfg.items() if k not in sections}


@pytest.mark.parametrize("path", PRESETS, ids=[str(p.relative_to(EGS)) for p in PRESETS])
def test_every_preset_of_every_recipe_loads_and_its_name_finds_it(path):
    conf = next(parent for parent in path.parents if parent.name == "conf")
    assert variants.find_config(conf, path.stem) == path  # names are unique across the recipe's conf/ tree
    cfg = config.load(path)
    assert set(cfg.to_dict()) == set(config.SECTIONS)


def test_the_presets_are_grouped_by_purpose():
    """The folders a reader sees: the paper's, the GPU, the CPU and the study presets; nothing left at the top."""
    for recipe in sorted(p.parent for p in EGS.glob("*/conf")):
        assert not list(recipe.glob("*.yaml")), f"{recipe}: configs belong in a folder (cpu/, gpu/...)"
        folders = {p.parent.name for p in recipe.rglob("*.yaml")}
        assert {"cpu", "gpu"} <= folders, recipe
        for path in recipe.glob("cpu/*.yaml"):
            assert path.stem.endswith("_cpu"), path
    assert {p.parent.name for p in CONF.rglob("*.yaml")} == {"cpu", "gpu", "paper", "study"}
    assert len(PAPER) == 10 and len(list((CONF / "study").glob("study_*.yaml"))) == 6


@pytest.mark.parametrize("name", PAPER)
def test_every_paper_preset_has_the_papers_setup(name):
    cfg = _load(name)
    data, model, training, scoring = cfg["data"], cfg["model"], cfg["training"], cfg["scoring"]
    assert (data["sample_rate"], data["segment"], data["snr_range"]) == (8000, 4.0, [-5, 5])
    assert (
        model["arch"],
        model["num_blocks"],
        model["bn_chan"],
        model["n_filters"],
        model["kernel_size"],
        model["upsampling_depth"],
        model["mask_act"],
    ) == ("sudormrf", 16, 128, 512, 21, 5, "softmax")
    assert (training["batch_size"], training["lr"], training["clip"], training["micro_batches"]) == (28, 1e-3, None, 1)
    assert (scoring["protocol"], scoring["average_last_k"]) == ("epochs", 10)
    assert cfg["weighting"]["granularity"] == "source"
    if cfg["weighting"]["type"] in ("robust", "curriculum"):
        assert cfg["weighting"]["signal"] == "neg_sisdri"
    build(cfg["weighting"])


def test_paper_table1_presets_differ_only_in_alpha():
    baseline = _load("paper_baseline")
    assert baseline["data"]["priors"] == {"env+env": 1.0} and baseline["weighting"]["type"] == "uniform"
    for name, alpha in (("paper_robust_a15", 1 / 15), ("paper_robust_a10", 1 / 10), ("paper_robust_a5", 1 / 5)):
        cfg = _load(name)
        assert _without(cfg, "weighting") == _without(baseline, "weighting")
        assert cfg["weighting"]["alpha"] == pytest.approx(alpha, abs=1e-6)


def test_paper_class_bias_presets_use_the_authors_priors_and_differ_only_in_gamma():
    none = _load("paper_class_none")
    assert none["data"]["priors"] == AUTHORS_PRIORS and none["weighting"]["type"] == "uniform"
    for name, gamma in (("paper_class_speech3", {"speech": 3.0}), ("paper_class_env3", {"env": 3.0})):
        cfg = _load(name)
        assert _without(cfg, "weighting") == _without(none, "weighting")
        assert cfg["weighting"]["gamma"] == gamma


def test_paper_class_bias_design_b_is_speech_with_env_and_the_authors_weights_one_and_zero():
    none, speech1 = _load("paper_class_b_none"), _load("paper_class_b_speech1")
    assert none["data"]["priors"] == {"speech+env": 1.0} and none["weighting"]["type"] == "uniform"
    assert _without(none, "data") == _without(_load("paper_class_none"), "data")
    assert _without(speech1, "weighting") == _without(none, "weighting")
    assert speech1["weighting"]["gamma"] == {"speech": 1.0}


@pytest.mark.parametrize(
    "name, reference",
    [
        ("robust_a5_cpu", "baseline_cpu"),
        ("curriculum_cpu", "baseline_cpu"),
        ("class_speech3_cpu", "class_none_cpu"),
        ("study_robust", "study_baseline"),
        ("study_curriculum", "study_baseline"),
        ("study_class", "study_class_none"),
        ("early_placebo", "early_uniform"),
        ("early_curriculum", "early_uniform"),
        ("early_curriculum_source", "early_uniform"),
        ("class_a", "class_a_none"),
        ("class_b", "class_b_none"),
        ("class_b_dro", "class_b_none"),
        ("bsize_robust", "bsize_uniform"),
        ("bsize_robust_running", "bsize_uniform"),
    ],
)
def test_each_cpu_effect_preset_differs_from_its_reference_only_in_the_weighting(name, reference):
    cfg, ref = _load(name), _load(reference)
    assert _without(cfg, "weighting") == _without(ref, "weighting")
    assert ref["weighting"]["type"] == "uniform" and cfg["weighting"]["type"] != "uniform"


def test_the_curriculum_cpu_preset_reaches_uniform_weights_within_the_run():
    cfg = _load("curriculum_cpu")
    weighting = build(cfg["weighting"])
    assert weighting.beta(0) < 0
    assert weighting.beta(cfg["training"]["epochs"] - 1) == 0.0
