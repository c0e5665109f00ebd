"""egs/wsj0_2mix end to end in a copy: a published-layout tree at 8 kHz min, published validation and test
mixtures used as they are, training on published crops or on remixed utterances."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import soundfile as sf
from recipe_helpers import EXPERIMENTS, copy_recipe, make_wsj0_2mix, run_recipe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tree")
    tree = make_wsj0_2mix(root / "wsj0-2mix")
    copy = copy_recipe(root, "my2mix", recipe="wsj0_2mix")
    run_recipe(
        copy,
        "--wsj0_2mix",
        str(tree),
        "--experiments",
        EXPERIMENTS,
        "--override",
        "data.valid_mixtures=3 data.test_mixtures=3",
    )
    return copy, tree


def test_validation_and_test_are_the_published_mixtures_as_they_are(trained):
    copy, tree = trained
    (lists,) = (copy / "data" / "lists").iterdir()
    for split, subset in (("valid", "cv"), ("test", "tt")):
        text = (lists / f"{split}.csv").read_text().splitlines()
        assert "kind=published" in text[1]
        published = sorted(p.stem for p in (tree / "wav8k/min" / subset / "mix_clean").iterdir())
        assert sorted(text[3:]) == published
    with open(copy / "exp" / "tiny" / "scores" / "test.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["mixture_id"] for r in rows} == {p.stem for p in (tree / "wav8k/min/tt/mix_clean").iterdir()}
    assert {r["class"] for r in rows} == {r["coarse"] for r in rows} == {"speech"}
    report = json.loads((copy / "data" / "prepare_report.json").read_text())
    assert report["prepared_mixtures"] == 12 and report["used_in_place"] > 0  # 8 kHz mono wavs: no copies


def test_both_experiments_train_score_and_report(trained):
    copy, _ = trained
    for name in EXPERIMENTS.split():
        stats = json.loads((copy / "exp" / name / "scores" / "test_stats.json").read_text())
        assert stats["n"] == 6 and set(stats["per_coarse"]) == {"speech"}
    assert "| tiny_robust | robust (alpha=0.2) |" in (copy / "exp" / "report.md").read_text()


def test_training_can_remix_the_utterances_instead(trained):
    copy, _ = trained
    run_recipe(
        copy,
        "--stage",
        "2",
        "--stop_stage",
        "2",
        "--experiments",
        "tiny",
        "--tag",
        "remix",
        "--override",
        "data.valid_mixtures=3 data.test_mixtures=3 data.train_from=sources",
    )
    saved = (copy / "exp" / "tiny_remix" / "config.yaml").read_text()
    assert "train_from: sources" in saved and (copy / "exp" / "tiny_remix" / "train.done").is_file()
    # Same data settings for the lists: the published validation list is shared, not redrawn.
    assert len(list((copy / "data" / "lists").iterdir())) == 1


def test_cut_utterances_of_the_published_tree_are_the_remixing_sources(trained):
    copy, tree = trained
    with open(copy / "data" / "manifests" / "train.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    utterances = {p.stem.split("_")[i] for p in (tree / "wav8k/min/tr/s1").iterdir() for i in (0, 2)}
    assert {r["id"] for r in rows} == utterances
    for row in rows:
        assert row["group"] == row["id"][:3] and sf.info(row["path"]).samplerate == 8000
