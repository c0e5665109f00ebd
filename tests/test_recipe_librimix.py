"""egs/librimix end to end in copies, on a mini LibriMix built by tools/minicorpus from real recordings (a subset
of its packages): sep_clean and sep_noisy through stages 0-4, a copied recipe folder through stages 0-1
unchanged, and the corpus plug-in's refusals of a damaged tree, each one line naming the CSV row and the fix.

Like tests/test_minicorpus.py, skipped with the reason where the Debian archive cannot be reached."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from recipe_helpers import EXPERIMENTS, copy_recipe, run_recipe
from test_minicorpus import SUBSET, _debian_unreachable, _write_sources, minicorpus

from ugr.data.corpora import CorpusLayoutError, index_corpus

pytestmark = pytest.mark.slow

MIXTURES = {"train": 4, "valid": 2, "test": 2}
SPEAKERS = {"f01": "female", "f06": "female", "f07": "female", "f05": "female", "m03": "male", "f04": "female"}
SMALL = "data.valid_mixtures=2 data.test_mixtures=2"


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> Path:
    """The mini corpus's LibriMix storage folder (Libri2Mix/wav8k/min, LibriSpeech/SPEAKERS.TXT)."""
    reason = _debian_unreachable()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("minilibrimix")
    sources = _write_sources(work / "sources.tsv", SUBSET)
    folders = minicorpus.build_minicorpus(
        work / "mini", sources=sources, max_utterances=3, mixtures=MIXTURES, speech_per_speaker=2
    )
    return folders["librimix"]


@pytest.fixture(scope="module")
def recipe(mini, tmp_path_factory) -> Path:
    """A copy of egs/librimix with the tiny configs, trained and reported on sep_clean (data/, exp/)."""
    copy = copy_recipe(tmp_path_factory.mktemp("tree"), "mylibri", recipe="librimix")
    run_recipe(copy, "--librimix", str(mini), "--experiments", EXPERIMENTS, "--override", SMALL)
    return copy


def _metadata(mini: Path, subset: str, kind: str) -> list[dict]:
    with open(mini / "Libri2Mix/wav8k/min/metadata" / f"mixture_{subset}_{kind}.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _scores(copy: Path, exp: str, name: str) -> list[dict]:
    with open(copy / exp / name / "scores" / "test.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_sep_clean_lists_are_the_metadata_mixtures_in_order_and_scored(recipe, mini):
    (lists,) = (recipe / "data" / "lists").iterdir()
    for split, subset in (("valid", "dev"), ("test", "test")):
        text = (lists / f"{split}.csv").read_text().splitlines()
        assert "kind=published" in text[1]
        assert text[3:] == [row["mixture_ID"] for row in _metadata(mini, subset, "mix_clean")]
    for name in EXPERIMENTS.split():
        rows = _scores(recipe, "exp", name)
        assert {r["mixture_id"] for r in rows} == {r["mixture_ID"] for r in _metadata(mini, "test", "mix_clean")}
        assert {r["group"] for r in rows} <= {"m03", "f04"} and {r["coarse"] for r in rows} == {"speech"}
        assert all(SPEAKERS[r["group"]] == r["class"] for r in rows)  # fine class from SPEAKERS.TXT
        assert json.loads((recipe / "exp" / name / "scores" / "test_stats.json").read_text())["n"] == 4
    assert "| tiny_robust | robust (alpha=0.2) |" in (recipe / "exp" / "report.md").read_text()
    mixtures = (recipe / "data" / "manifests" / "test_mixtures.tsv").read_text()
    assert "/test/mix_clean/" in mixtures and "/mix_both/" not in mixtures


def test_sep_noisy_separates_the_two_speakers_from_mix_both(recipe, mini):
    run_recipe(
        recipe,
        *("--librimix", str(mini), "--task", "sep_noisy", "--data", "data_noisy", "--exp", "exp_noisy"),
        *("--experiments", "tiny", "--override", SMALL),
    )
    with open(recipe / "data_noisy" / "manifests" / "test_mixtures.tsv", newline="") as handle:
        prepared = list(csv.DictReader(handle, delimiter="\t"))
    published = {r["mixture_ID"]: r for r in _metadata(mini, "test", "mix_both")}
    for row in prepared:  # 8 kHz mono wav: used in place, so the paths are the tree's
        meta = published[row["id"]]
        assert Path(row["mixture"]).name == Path(meta["mixture_path"]).name and "/mix_both/" in row["mixture"]
        assert [Path(row[f"source_{k}"]).parent.name for k in (1, 2)] == ["s1", "s2"]
    noisy, clean = _scores(recipe, "exp_noisy", "tiny"), _scores(recipe, "exp", "tiny")
    assert len(noisy) == 4 and {r["mixture_id"] for r in noisy} == set(published)
    # The same speakers in noise: the mixture's own SI-SDR against each speaker is lower than in mix_clean.
    assert np.mean([float(r["si_sdr_mix"]) for r in noisy]) < np.mean([float(r["si_sdr_mix"]) for r in clean])
    report = json.loads((recipe / "data_noisy" / "prepare_report.json").read_text())
    assert any("task=sep_noisy: mix_both with s1, s2 as the references" in note for note in report["notes"])


def test_a_copied_recipe_runs_stages_0_and_1_unchanged(mini, tmp_path):
    copy = copy_recipe(tmp_path, "mine", tiny=None, recipe="librimix")
    run_recipe(copy, "--librimix", str(mini), "--stop_stage", "1", "--override", SMALL)
    report = json.loads((copy / "data" / "prepare_report.json").read_text())
    assert report["prepared_mixtures"] == sum(MIXTURES.values()) and report["skipped_count"] == report[
        "skipped_reasons"
    ].get("duplicate utterance", 0)
    assert {p.name for p in next((copy / "data" / "lists").iterdir()).iterdir()} >= {"valid.csv", "test.csv"}


def test_an_unknown_task_stops_stage_0_in_one_line(mini, tmp_path):
    copy = copy_recipe(tmp_path, "mine", tiny=None, recipe="librimix")
    done = run_recipe(copy, "--librimix", str(mini), "--task", "enh_single", "--stop_stage", "0", check=False)
    assert done.returncode != 0
    log = (copy / "exp" / "log" / "data.log").read_text()
    errors = [line for line in log.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "--task 'enh_single': use sep_clean (mix_clean) or sep_noisy" in errors[0]
    with pytest.raises(CorpusLayoutError, match=r"task='sep_both'; use task=sep_clean \(mix_clean\) or task="):
        index_corpus("librimix", mini, fs=8000, options={"task": "sep_both"})


# ----------------------------------------------------------------------------- the corpus plug-in


@pytest.fixture()
def tree(mini, tmp_path) -> Path:
    """A copy of the mini LibriMix elsewhere: its CSVs keep the absolute paths of the original, as a moved
    LibriMix's do."""
    shutil.copytree(mini, tmp_path / "LibriMix")
    return tmp_path / "LibriMix"


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_moved_tree_is_read_where_it_is_with_labels_and_counts(tree):
    index = index_corpus("librimix", tree / "Libri2Mix" / "wav8k", fs=8000, options={"task": "sep_noisy"})
    assert len(index.mixtures) == sum(MIXTURES.values())
    assert all(Path(m.mixture).is_relative_to(tree) and "/mix_both/" in m.mixture for m in index.mixtures)
    assert {s.group: s.fine for s in index.sources} == {g: SPEAKERS[g] for g in {s.group for s in index.sources}}
    (tree / "LibriSpeech" / "SPEAKERS.TXT").unlink()
    extra = tree / "Libri2Mix/wav8k/min/test/mix_clean/stray.wav"
    sf.write(extra, np.zeros(800), 8000)
    index = index_corpus("librimix", tree, fs=8000)
    assert {s.fine for s in index.sources} == {"speech"}
    assert any("no LibriSpeech/SPEAKERS.TXT" in note and "speakers=" in note for note in index.notes)
    assert {"path": str(extra), "reason": "not in the mix_clean metadata of test"} in index.skips


def _rewrite(table: Path, change) -> None:
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    change(rows)
    with open(table, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_a_missing_file_names_the_row_and_the_fix(tree):
    table = tree / "Libri2Mix/wav8k/min/metadata/mixture_test_mix_clean.csv"
    first = _metadata(tree, "test", "mix_clean")[0]
    missing = tree / "Libri2Mix/wav8k/min/test/s2" / f"{first['mixture_ID']}.wav"
    missing.unlink()
    with pytest.raises(CorpusLayoutError) as err:
        index_corpus("librimix", tree, fs=8000)
    assert _one_line(err) == (
        f"{table}:2: mixture {first['mixture_ID']}: source_2_path {missing}: no such file; regenerate the "
        "subset with LibriMix's scripts, or delete the row"
    )


def test_a_wrong_length_names_the_row_and_the_fix(tree):
    table = tree / "Libri2Mix/wav8k/min/metadata/mixture_dev_mix_both.csv"
    frames = int(_metadata(tree, "dev", "mix_both")[1]["length"])
    _rewrite(table, lambda rows: rows[1].update(length=str(frames + 5)))
    with pytest.raises(CorpusLayoutError) as err:
        index_corpus("librimix", tree, fs=8000, options={"task": "sep_noisy"})
    assert _one_line(err).startswith(f"{table}:3: mixture ")
    assert f"length says {frames + 5} samples, mixture_path " in str(err.value)
    assert str(err.value).endswith(f"has {frames}; correct the length column, or regenerate the file")


def test_a_file_at_another_rate_than_its_folder_is_refused(tree):
    row = _metadata(tree, "train-360", "mix_clean")[2]
    path = tree / "Libri2Mix/wav8k/min/train-360/mix_clean" / f"{row['mixture_ID']}.wav"
    samples, _ = sf.read(path)
    sf.write(path, samples, 16000)  # same length, the wrong rate
    other = _metadata(tree, "test", "mix_clean")[0]  # and a second bad row, in another CSV
    (tree / "Libri2Mix/wav8k/min/test/s1" / f"{other['mixture_ID']}.wav").unlink()
    with pytest.raises(CorpusLayoutError) as err:
        index_corpus("librimix", tree, fs=8000)
    message = _one_line(err)
    assert f"mixture_train-360_mix_clean.csv:4: mixture {row['mixture_ID']}: mixture_path {path} is at 16000 Hz" in (
        message
    )
    assert "in a wav8k folder (8000 Hz); regenerate it at 8000 Hz" in message
    assert message.endswith(
        f"(and 1 more bad rows, the next: {tree}/Libri2Mix/wav8k/min/metadata/mixture_test_mix_clean.csv:2)"
    )


@pytest.mark.parametrize(
    "options, message",
    [
        ({"mode": "max"}, r"wav8k/max: missing \(mode=max\); .* holds \['min'\]: pass mode=min"),
        ({"train": "train-100"}, r"mixture_train-100_mix_clean.csv: missing \(task=sep_clean reads"),
        ({"train": "train-500"}, r"train='train-500'; use train-100, train-360 or train-100,train-360"),
        ({"task": "enh_both"}, r"enh_both is asteroid's one-output task"),
        ({"speakers": "/nowhere/SPEAKERS.TXT"}, r"speakers=/nowhere/SPEAKERS.TXT: no such file"),
    ],
)
def test_options_the_tree_cannot_serve_are_refused_with_the_fix(mini, options, message):
    with pytest.raises(CorpusLayoutError, match=message):
        index_corpus("librimix", mini, fs=8000, options=options)
