"""egs/class_folders end to end: the user's own sounds (odd rates, stereo, wav/flac/ogg, classes named like split
folders), a copied recipe on a second folder with no file edited, 16 kHz from stage 0 on, and a class the corpus
lacks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from recipe_helpers import EXPERIMENTS, copy_recipe, make_class_folders, run_recipe, tiny_overrides

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tree")


def test_own_sounds_at_odd_rates_and_channels_run_stages_0_to_4_with_classes_named_train_and_test(tree):
    corpus = make_class_folders(tree / "sounds", classes=("dog", "test", "train", "speech"))  # ESC-50 has `train`
    copy = copy_recipe(tree, "mysounds", recipe="class_folders")
    run_recipe(copy, "--corpus", str(corpus), "--experiments", EXPERIMENTS)
    report = json.loads((copy / "data" / "prepare_report.json").read_text())
    assert report["downmixed_count"] > 0 and report["skipped_count"] == 0
    for split, expected in (("train", 3), ("valid", 1), ("test", 1)):  # 5 files per class, 10 % + 10 % held out
        content = report["splits"][split]["sources"]["sound"]
        assert content["fine_classes"] == ["dog", "speech", "test", "train"]
        assert content["files"] == 4 * expected
    stats = json.loads((copy / "exp" / "tiny_robust" / "scores" / "test_stats.json").read_text())
    assert set(stats["per_class"]) <= {"dog", "speech", "test", "train"} and set(stats["per_coarse"]) == {"sound"}
    assert (copy / "exp" / "report.md").is_file()


def test_a_copy_works_on_another_folder_at_16_khz_with_no_file_edited(tree):
    corpus = make_class_folders(tree / "other", classes=("bell", "car", "voice"), per_class=4)
    copy = copy_recipe(tree, "copy16k", tiny=None, recipe="class_folders")
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    run_recipe(copy, "--corpus", str(corpus), "--fs", "16000", "--override", tiny_overrides())
    assert {p: p.read_bytes() for p in before} == before, "the run edited a file of the recipe"
    with open(copy / "data" / "manifests" / "train.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert {r["sample_rate"] for r in rows} == {"16000"} and {r["fine"] for r in rows} == {"bell", "car", "voice"}
    for name in ("baseline_cpu", "robust_a5_cpu"):  # the shipped experiments, at 16 kHz
        saved = (copy / "exp" / name / "config.yaml").read_text()
        assert "sample_rate: 16000" in saved and "segment: 0.5" in saved
        assert json.loads((copy / "exp" / name / "scores" / "test_stats.json").read_text())["n"] == 2 * 6
    lists = list((copy / "data" / "lists").iterdir())
    assert len(lists) == 1 and lists[0].name.startswith("16k_")


def test_a_class_the_corpus_lacks_stops_before_training_listing_its_classes(tree):
    corpus = tree / "other" if (tree / "other").is_dir() else make_class_folders(tree / "other")
    copy = copy_recipe(tree, "bias", tiny=None, recipe="class_folders")
    done = run_recipe(
        copy,
        "--corpus",
        str(corpus),
        "--experiments",
        "baseline_cpu class_bias_cpu",
        "--override",
        "class_bias_cpu:weighting.gamma={zebra: 3}",
        check=False,
    )
    assert done.returncode != 0
    assert "gamma names class(es) zebra" in done.stderr and "its classes are: bell, car, sound, voice" in done.stderr
    assert not (copy / "exp" / "class_bias_cpu").exists() and not (copy / "data" / "lists").exists()
