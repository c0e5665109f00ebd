"""The wsj0_2mix and class_folders indexers, on small synthetic trees, through ``index_corpus``."""

from __future__ import annotations

import shutil
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ugr.data.corpora import CorpusLayoutError, index_corpus

SPLIT_OF = {"tr": "train", "cv": "valid", "tt": "test"}
# Utterance lengths in frames; a copy in a mixture is cut (min) or zero-padded (max) to its partner's length.
LENGTHS = {
    "011a0101": 450,
    "022b0202": 800,
    "033c0303": 300,
    "044d0404": 460,
    "055e0505": 600,
    "066f0606": 700,
    "077g0707": 350,
    "088h0808": 500,
}
MIXES = {
    "tr": [("011a0101", "022b0202"), ("011a0101", "033c0303"), ("044d0404", "011a0101")],
    "cv": [("055e0505", "066f0606")],
    "tt": [("077g0707", "088h0808")],
}


def write_audio(path: Path, frames: int = 400, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), 0.1 * np.sin(np.arange(frames) * 0.3), rate)
    return path


def mix_name(utt1: str, utt2: str) -> str:
    return f"{utt1}_1.2_{utt2}_-1.2.wav"


def make_subsets(tree: Path, mode: str = "min", mixes: dict = MIXES) -> Path:
    """``tree/{tr,cv,tt}/{s1,s2,mix_clean}`` as wsj0-2mix writes them."""
    for subset, pairs in mixes.items():
        for utt1, utt2 in pairs:
            frames = (min if mode == "min" else max)(LENGTHS[utt1], LENGTHS[utt2])
            for part in ("s1", "s2", "mix_clean"):
                write_audio(tree / subset / part / mix_name(utt1, utt2), frames)
    return tree


def make_2mix(root: Path, rates=("wav8k",), modes=("min",)) -> Path:
    for rate in rates:
        for mode in modes:
            make_subsets(root / rate / mode, mode)
    return root


def by_id(index, split: str) -> dict:
    return {s.id: s for s in index.sources if s.split == split}


# --- wsj0_2mix -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["", "wav8k", "wav8k/min"])
def test_wsj0_2mix_accepts_each_level_of_the_tree(tmp_path, level):
    root = make_2mix(tmp_path / "2speakers")
    index = index_corpus("wsj0_2mix", root / level, fs=8000)
    tree = (root / "wav8k" / "min").resolve()
    assert {(s.split, s.id) for s in index.sources} == {
        (SPLIT_OF[subset], utt) for subset, pairs in MIXES.items() for pair in pairs for utt in pair
    }
    assert all(Path(s.path).is_relative_to(tree) for s in index.sources)
    assert sorted(Path(m.mixture).name for m in index.mixtures) == sorted(
        mix_name(*pair) for pairs in MIXES.values() for pair in pairs
    )
    assert any("using wav8k" in note and "no resampling" in note for note in index.notes)


def test_wsj0_2mix_old_tree_holding_subsets_directly(tmp_path):
    root = make_subsets(tmp_path / "old")
    index = index_corpus("wsj0_2mix", root, fs=8000)
    assert len(index.mixtures) == 5 and len(index.sources) == 8
    assert [n for n in index.notes if "mode is not in the path" in n and "mode=min (the default" in n]
    assert not [n for n in index.notes if "using wav" in n]  # the rate is not in the path: nothing to say
    maxed = index_corpus("wsj0_2mix", root, fs=8000, options={"mode": "max"})
    assert [n for n in maxed.notes if "mode=max (as given)" in n]


@pytest.mark.parametrize(
    "rates, fs, used, words",
    [
        (("wav8k", "wav16k"), 8000, "wav8k", "(it matches fs=8000); no resampling"),
        (("wav8k", "wav16k"), 16000, "wav16k", "(it matches fs=16000); no resampling"),
        (("wav16k",), 8000, "wav16k", "no wav8k for fs=8000"),
        (("wav8k",), 16000, "wav8k", "resamples 8000 Hz to 16000 Hz"),
        (("wav8k", "wav16k"), 12000, "wav16k", "resamples 16000 Hz to 12000 Hz"),
    ],
)
def test_wsj0_2mix_rate_choice_and_its_note(tmp_path, rates, fs, used, words):
    root = make_2mix(tmp_path / "2speakers", rates=rates)
    index = index_corpus("wsj0_2mix", root, fs=fs)
    assert {Path(s.path).parts[-5] for s in index.sources} == {used}
    rate_notes = [n for n in index.notes if "using wav" in n]
    assert len(rate_notes) == 1 and f"using {used}" in rate_notes[0] and words in rate_notes[0]


def test_wsj0_2mix_rate_folder_given_is_used_and_noted(tmp_path):
    root = make_2mix(tmp_path / "2speakers", rates=("wav8k", "wav16k"))
    index = index_corpus("wsj0_2mix", root / "wav16k", fs=8000)
    assert {Path(s.path).parts[-5] for s in index.sources} == {"wav16k"}
    assert [n for n in index.notes if "using wav16k (the path given)" in n and "resamples 16000 Hz to 8000" in n]


def test_wsj0_2mix_min_keeps_the_longest_copy_and_counts_the_others(tmp_path):
    root = make_2mix(tmp_path / "2speakers")
    index = index_corpus("wsj0_2mix", root, fs=8000)
    tree = (root / "wav8k" / "min").resolve()
    kept = tree / "tr" / "s1" / mix_name("011a0101", "022b0202")  # 450 frames; the others are cut to 300 and 420
    assert by_id(index, "train")["011a0101"].path == str(kept)
    others = sorted(
        [tree / "tr" / "s1" / mix_name("011a0101", "033c0303"), tree / "tr" / "s2" / mix_name("044d0404", "011a0101")]
    )
    reason = f"duplicate utterance id 011a0101 (kept the longest copy, {kept})"
    assert index.skips == [{"path": str(p), "reason": reason} for p in others]
    assert [s.id for s in index.sources if s.split == "train"] == sorted(by_id(index, "train"))  # sorted, once each


def test_wsj0_2mix_max_keeps_the_shortest_copy(tmp_path):
    root = make_2mix(tmp_path / "2speakers", modes=("min", "max"))
    index = index_corpus("wsj0_2mix", root, fs=8000, options={"mode": "max"})
    tree = (root / "wav8k" / "max").resolve()
    kept = tree / "tr" / "s1" / mix_name("011a0101", "033c0303")  # padded to 450; the others to 800 and 460
    assert by_id(index, "train")["011a0101"].path == str(kept)
    assert Counter(s["reason"] for s in index.skips) == {
        f"duplicate utterance id 011a0101 (kept the shortest copy, {kept})": 2
    }
    assert all(Path(m.mixture).is_relative_to(tree) for m in index.mixtures)
    given = index_corpus("wsj0_2mix", root / "wav8k" / "max", fs=8000)  # a max folder is its own mode
    assert by_id(given, "train")["011a0101"].path == str(kept)


def test_wsj0_2mix_mixtures_pair_their_sources_with_labels(tmp_path):
    root = make_2mix(tmp_path / "2speakers")
    index = index_corpus("wsj0_2mix", root, fs=8000)
    assert len(index.mixtures) == 5
    for mixture in index.mixtures:
        path = Path(mixture.mixture)
        subset = path.parts[-3]
        assert path.parent.name == "mix_clean" and mixture.split == SPLIT_OF[subset]
        assert mixture.id == path.stem
        utt1, _, utt2, _ = path.stem.split("_")
        assert [s.id for s in mixture.sources] == [utt1, utt2]
        assert [s.path for s in mixture.sources] == [str(path.parents[1] / part / path.name) for part in ("s1", "s2")]
        for source in mixture.sources:
            assert (source.split, source.group, source.fine, source.coarse) == (
                mixture.split,
                source.id[:3],
                "speech",
                "speech",
            )


def test_wsj0_2mix_lowercases_utterance_ids(tmp_path):
    root = make_subsets(
        tmp_path / "min",
        mixes={"tr": [("011a0101", "022b0202")], "cv": [("055e0505", "066f0606")], "tt": [("077g0707", "088h0808")]},
    )
    for part in ("s1", "s2", "mix_clean"):
        old = root / "tr" / part / mix_name("011a0101", "022b0202")
        old.rename(old.with_name("011A0101_1.2_022B0202_-1.2.wav"))
    index = index_corpus("wsj0_2mix", root, fs=8000)
    assert set(by_id(index, "train")) == {"011a0101", "022b0202"}
    assert {s.group for s in by_id(index, "train").values()} == {"011", "022"}


def test_wsj0_2mix_skips_with_reasons_and_notes_unused_folders(tmp_path):
    root = make_2mix(tmp_path / "2speakers")
    tree = (root / "wav8k" / "min").resolve()
    lonely = write_audio(tree / "tr" / "mix_clean" / mix_name("099z0909", "022b0202"))  # no s1/s2 file
    bad_name = write_audio(tree / "cv" / "mix_clean" / "055e0505_loud_066f0606_-1.wav")
    short_name = write_audio(tree / "cv" / "s1" / "055e0505_1.2.wav")
    text = tree / "tt" / "s2" / "notes.txt"
    text.write_text("not audio")
    loose = tree / "tt" / "README"
    loose.write_text("not a part")
    broken = tree / "tt" / "s1" / mix_name("077g0707", "099y0909")
    broken.write_bytes(b"RIFF broken")
    for subset in ("tr", "cv", "tt"):
        write_audio(tree / subset / "noise" / "n.wav")
        (tree / subset / "mix_both").mkdir()
    index = index_corpus("wsj0_2mix", root, fs=8000)
    reasons = {Path(s["path"]): s["reason"] for s in index.skips if "duplicate utterance" not in s["reason"]}
    assert set(reasons) == {lonely, bad_name, short_name, text, loose, broken}
    assert reasons[lonely] == (
        f"mixture without its source file(s) ({tree / 'tr' / 's1' / lonely.name}, {tree / 'tr' / 's2' / lonely.name})"
    )
    assert reasons[bad_name] == reasons[short_name] == "name is not <utt1>_<snr1>_<utt2>_<snr2> (SNRs as numbers)"
    assert reasons[text].startswith("not an audio file (.txt)")
    assert reasons[loose] == "not in s1, s2 or mix_clean"
    assert reasons[broken].startswith("unreadable audio header")
    assert "099y0909" not in by_id(index, "test") and len(index.mixtures) == 5
    unused = [n for n in index.notes if "not used" in n]
    assert len(unused) == 1 and "mix_both in tr, cv, tt" in unused[0] and "noise in tr, cv, tt" in unused[0]


def test_wsj0_2mix_notes_utterances_shared_between_subsets(tmp_path):
    mixes = {**MIXES, "cv": [("055e0505", "022b0202")], "tt": [("077g0707", "022b0202")]}
    index = index_corpus("wsj0_2mix", make_subsets(tmp_path / "min", mixes=mixes), fs=8000)
    assert all("022b0202" in by_id(index, split) for split in ("train", "valid", "test"))
    shared = [n for n in index.notes if "more than one subset" in n]
    assert len(shared) == 1 and "tr&cv: 1, tr&tt: 1, cv&tt: 1" in shared[0]
    assert not [
        n
        for n in index_corpus("wsj0_2mix", make_subsets(tmp_path / "clean"), fs=8000).notes
        if "more than one subset" in n
    ]


@pytest.mark.parametrize(
    "damage, options, message",
    [
        (lambda tree: shutil.rmtree(tree / "tt"), {}, r"/tt: missing; wsj0-2mix needs all three subsets tr, cv, tt"),
        (lambda tree: shutil.rmtree(tree / "cv" / "mix_clean"), {}, r"/cv: no mix_clean folder; wsj0-2mix needs"),
        (lambda tree: None, {"mode": "max"}, r"max: missing \(mode=max\); .*wav8k holds \['min'\]"),
        (lambda tree: None, {"mode": "mean"}, r"mode='mean'; use mode=min or mode=max"),
        (lambda tree: None, {"snr": "5"}, r"unknown option\(s\) \['snr'\]"),
    ],
)
def test_wsj0_2mix_errors_name_the_folder_and_the_fix(tmp_path, damage, options, message):
    root = make_2mix(tmp_path / "2speakers")
    damage(root / "wav8k" / "min")
    with pytest.raises(CorpusLayoutError, match=message):
        index_corpus("wsj0_2mix", root, fs=8000, options=options)


def test_wsj0_2mix_layout_errors(tmp_path):
    root = make_2mix(tmp_path / "2speakers")
    with pytest.raises(CorpusLayoutError, match=r"a min folder, but mode=max; .*max"):
        index_corpus("wsj0_2mix", root / "wav8k" / "min", fs=8000, options={"mode": "max"})
    (tmp_path / "elsewhere" / "s1").mkdir(parents=True)
    with pytest.raises(CorpusLayoutError, match=r"elsewhere: no wav8k/wav16k, min/max or tr/cv/tt folder"):
        index_corpus("wsj0_2mix", tmp_path / "elsewhere", fs=8000)
    with pytest.raises(CorpusLayoutError, match="no such folder"):
        index_corpus("wsj0_2mix", tmp_path / "missing", fs=8000)
    empty = make_subsets(tmp_path / "empty")
    for path in (empty / "cv" / "s1").iterdir():
        path.unlink()
    for path in (empty / "cv" / "s2").iterdir():
        path.unlink()
    with pytest.raises(CorpusLayoutError, match=r"/cv: no usable files in s1, s2"):
        index_corpus("wsj0_2mix", empty, fs=8000)


# --- class_folders -----------------------------------------------------------------------------------------


def make_classes(root: Path, counts: dict[str, int], suffix: str = ".wav") -> Path:
    for name, n in counts.items():
        for i in range(n):
            write_audio(root / name / f"{i:02d}{suffix}", 200)
    return root


def splits_of(index) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for s in index.sources:
        out.setdefault(s.fine, {}).setdefault(s.split, []).append(s.id)
    return out


def test_class_folders_flat_layout_sizes_labels_and_small_classes(tmp_path):
    root = make_classes(tmp_path / "sounds", {"dog": 10, "cat": 20, "bird": 2})
    index = index_corpus("class_folders", root, fs=8000)
    sizes = {name: {split: len(ids) for split, ids in per.items()} for name, per in splits_of(index).items()}
    assert sizes == {
        "dog": {"train": 8, "valid": 1, "test": 1},
        "cat": {"train": 16, "valid": 2, "test": 2},
        "bird": {"train": 2},
    }
    assert all(s.group == s.fine and s.coarse == "sound" for s in index.sources)
    assert index.skips == []
    assert index.notes == [f"{root.resolve()}: class(es) with fewer than 3 files, all in train: bird"]
    fractions = index_corpus("class_folders", root, fs=8000, options={"valid": "0.2", "test": "0.3"})
    cat = splits_of(fractions)["cat"]
    assert (len(cat["valid"]), len(cat["test"]), len(cat["train"])) == (4, 6, 10)


def test_class_folders_split_follows_the_documented_rule(tmp_path):
    root = make_classes(tmp_path / "sounds", {"cat": 20})
    index = index_corpus("class_folders", root, fs=8000, options={"seed": "7"})
    files = [f"cat__{i:02d}" for i in range(20)]
    order = np.random.default_rng(np.random.SeedSequence([7, zlib.crc32(b"cat")])).permutation(20)
    shuffled = [files[i] for i in order]
    got = splits_of(index)["cat"]
    assert (set(got["valid"]), set(got["test"]), set(got["train"])) == (
        set(shuffled[:2]),
        set(shuffled[2:4]),
        set(shuffled[4:]),
    )


def test_class_folders_split_is_seeded_and_per_class(tmp_path):
    root = make_classes(tmp_path / "sounds", {"dog": 12, "cat": 20})
    first = splits_of(index_corpus("class_folders", root, fs=8000))
    assert splits_of(index_corpus("class_folders", root, fs=8000, options={"seed": "0"})) == first
    other = splits_of(index_corpus("class_folders", root, fs=8000, options={"seed": "1"}))
    assert {k: set(v["test"]) for k, v in other.items()} != {k: set(v["test"]) for k, v in first.items()}
    make_classes(root, {"eel": 9})  # a new class leaves the others' split alone
    assert {k: v for k, v in splits_of(index_corpus("class_folders", root, fs=8000)).items() if k != "eel"} == first


def test_class_folders_split_folders_layout(tmp_path):
    root = tmp_path / "sounds"
    for split, counts in {"train": {"dog": 3, "cat": 3}, "valid": {"dog": 1, "cat": 1}, "test": {"dog": 2}}.items():
        make_classes(root / split, counts)
    index = index_corpus("class_folders", root, fs=8000)
    sizes = {name: {split: len(ids) for split, ids in per.items()} for name, per in splits_of(index).items()}
    assert sizes == {"dog": {"train": 3, "valid": 1, "test": 2}, "cat": {"train": 3, "valid": 1}}
    assert all(Path(s.path).is_relative_to(root.resolve() / s.split / s.fine) for s in index.sources)
    assert by_id(index, "train").keys() == {f"{c}__{i:02d}" for c in ("dog", "cat") for i in range(3)}
    assert index.notes == [f"{(root / 'test').resolve()}: no files of class(es) cat"]
    assert "dog__00" in by_id(index, "test")  # the same id in two splits is fine: ids are unique per split


@pytest.mark.parametrize(
    "change, options, message",
    [
        (lambda root: None, {"seed": "3"}, r"has split folders, which fix the split; drop the option\(s\) seed"),
        (lambda root: None, {"valid": "0.2", "test": "0.2"}, r"drop the option\(s\) test, valid"),
        (
            lambda root: make_classes(root, {"owl": 1}),
            {},
            r"ambiguous layout: test, train, valid hold\(s\) only folders, as split folders do, but owl read\(s\) as "
            r"class folder\(s\); pass --layout classes .* or --layout splits",
        ),
        (
            lambda root: make_classes(root, {"owl": 1}),
            {"layout": "splits"},
            r"layout=splits, but owl is not a split folder; with split folders the top level holds only train, valid, test",
        ),
        (
            lambda root: write_audio(root / "train" / "stray.wav"),
            {},
            r"ambiguous layout: test, valid hold\(s\) only folders, as split folders do, but train read\(s\) as class",
        ),
        (
            lambda root: shutil.rmtree(root / "valid"),
            {},
            r"no valid folder; with split folders all of .* if the folders are classes, pass --layout classes",
        ),
        (lambda root: None, {"layout": "flat"}, r"layout='flat'; give layout=classes .* or layout=splits"),
    ],
)
def test_class_folders_split_folder_errors(tmp_path, change, options, message):
    root = tmp_path / "sounds"
    for split in ("train", "valid", "test"):
        make_classes(root / split, {"dog": 1, "cat": 1})
    change(root)
    with pytest.raises(CorpusLayoutError, match=message):
        index_corpus("class_folders", root, fs=8000, options=options)


def test_class_folders_classes_named_train_valid_test_are_classes_when_they_hold_audio(tmp_path):
    root = make_classes(tmp_path / "sounds", {"train": 10, "test": 10, "dog": 10})
    index = index_corpus("class_folders", root, fs=8000)
    sizes = {name: {split: len(ids) for split, ids in per.items()} for name, per in splits_of(index).items()}
    assert sizes == {name: {"train": 8, "valid": 1, "test": 1} for name in ("train", "test", "dog")}
    only_splits = make_classes(tmp_path / "only", {"train": 3, "valid": 3, "test": 3})
    assert {s.fine for s in index_corpus("class_folders", only_splits, fs=8000).sources} == {"train", "valid", "test"}


def test_class_folders_layout_option_settles_an_ambiguous_corpus(tmp_path):
    root = tmp_path / "sounds"
    make_classes(root / "train", {"steam": 3, "diesel": 3})  # the class train, recordings in subfolders
    make_classes(root, {"dog": 3})
    with pytest.raises(CorpusLayoutError, match=r"ambiguous layout: train hold\(s\) only folders.* but dog read"):
        index_corpus("class_folders", root, fs=8000)
    index = index_corpus("class_folders", root, fs=8000, options={"layout": "classes"})
    assert {s.fine for s in index.sources} == {"train", "dog"}
    assert "train__steam__00" in {s.id for s in index.sources}
    for split in ("valid", "test"):
        make_classes(root / split, {"steam": 1})
    shutil.rmtree(root / "dog")
    as_splits = index_corpus("class_folders", root, fs=8000)  # now exactly split folders of class folders
    assert {(s.split, s.fine) for s in as_splits.sources} == {
        ("train", "steam"),
        ("train", "diesel"),
        ("valid", "steam"),
        ("test", "steam"),
    }
    as_classes = index_corpus("class_folders", root, fs=8000, options={"layout": "classes"})
    assert {s.fine for s in as_classes.sources} == {"train", "valid", "test"}


def test_class_folders_coarse_mapping(tmp_path):
    root = make_classes(tmp_path / "sounds", {"speech": 3, "dog": 3, "rain": 3})
    index = index_corpus("class_folders", root, fs=8000, options={"coarse": "speech:speech,*:env"})
    assert {s.fine: s.coarse for s in index.sources} == {"speech": "speech", "dog": "env", "rain": "env"}
    full = index_corpus("class_folders", root, fs=8000, options={"coarse": "speech:speech, dog:animal, rain:env"})
    assert {s.fine: s.coarse for s in full.sources} == {"speech": "speech", "dog": "animal", "rain": "env"}


@pytest.mark.parametrize(
    "coarse, message",
    [
        ("cat:animal,*:env", r"unknown class\(es\) cat; the classes found are dog, rain, speech"),
        ("speech:speech", r"gives no coarse class to dog, rain; add \*:DEFAULT"),
        ("speech:speech,speech:env", r"bad or repeated entry 'speech:env'"),
        ("speech", r"bad or repeated entry 'speech'"),
        ("speech:sp eech,*:env", r"coarse class 'sp eech'"),
        ("*:a+b", r"coarse class 'a\+b'"),
    ],
)
def test_class_folders_coarse_mapping_errors(tmp_path, coarse, message):
    root = make_classes(tmp_path / "sounds", {"speech": 3, "dog": 3, "rain": 3})
    with pytest.raises(CorpusLayoutError, match=message):
        index_corpus("class_folders", root, fs=8000, options={"coarse": coarse})


@pytest.mark.parametrize("name, suggestion", [("dog bark", "dog_bark"), ("dog\tbark", "dog_bark"), ("a+b", "a_b")])
def test_class_folders_refuses_bad_class_names(tmp_path, name, suggestion):
    root = make_classes(tmp_path / "sounds", {"cat": 3, name: 3})
    with pytest.raises(
        CorpusLayoutError,
        match=rf"{name.replace('+', '[+]')}: class folder name .* "
        rf"rename the folder, e.g. to '{suggestion}'",
    ):
        index_corpus("class_folders", root, fs=8000)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"valid": "0"}, r"valid, test > 0 with valid \+ test < 1"),
        ({"valid": "0.6", "test": "0.5"}, r"valid \+ test < 1"),
        ({"seed": "-1"}, r"seed >= 0"),
        ({"seed": "x"}, r"seed='x'.*seed is an integer"),
        ({"test": "much"}, r"test='much'"),
        ({"valid": "0.45", "test": "0.45"}, r"class cat has 4 files; .* leave none for train"),
        ({"folds": "5"}, r"unknown option\(s\) \['folds'\]"),
    ],
)
def test_class_folders_bad_split_options(tmp_path, options, message):
    root = make_classes(tmp_path / "sounds", {"cat": 4, "dog": 1})
    with pytest.raises(CorpusLayoutError, match=message):
        index_corpus("class_folders", root, fs=8000, options=options)


def test_class_folders_ids_suffixes_and_collisions(tmp_path):
    root = tmp_path / "sounds"
    write_audio(root / "dog" / "park walk" / "bark 1.wav")
    write_audio(root / "dog" / "a.wav")
    a_flac = write_audio(root / "dog" / "a.flac")
    write_audio(root / "dog" / "c+d.OGG")
    write_audio(root / "cat" / "deep" / "er" / "x.MP3")
    write_audio(root / "cat" / "deep__er__x.wav")  # the same id as deep/er/x.MP3
    index = index_corpus("class_folders", root, fs=8000, options={"valid": "0.3", "test": "0.3"})
    ids = {s.id for s in index.sources}
    assert ids == {"dog__park_walk__bark_1", "dog__a", "dog__c_d", "cat__deep__er__x"}
    assert {s.id: Path(s.path).name for s in index.sources}["dog__a"] == "a.flac"  # the first by sorted path
    dog_a = root.resolve() / "dog" / "a.wav"
    assert {s["path"]: s["reason"] for s in index.skips} == {
        str(dog_a): f"duplicate id dog__a (kept {a_flac.resolve()})",
        str(
            root.resolve() / "cat" / "deep__er__x.wav"
        ): f"duplicate id cat__deep__er__x (kept {root.resolve() / 'cat' / 'deep' / 'er' / 'x.MP3'})",
    }


def test_class_folders_every_skip_has_a_reason(tmp_path):
    root = make_classes(tmp_path / "sounds", {"dog": 3, "cat": 3})
    (root / "README.txt").write_text("top-level file")
    (root / ".DS_Store").write_text("hidden")
    write_audio(root / ".trash" / "x" / "old.wav")
    (root / "dog" / "labels.csv").write_text("a,b")
    (root / "dog" / "noext").write_text("?")
    write_audio(root / "dog" / ".hidden.wav")
    write_audio(root / "dog" / "sub" / ".cache" / "y.wav")
    (root / "empty" / "sub").mkdir(parents=True)
    index = index_corpus("class_folders", root.resolve(), fs=8000)
    root = root.resolve()
    audio = "audio is .wav .flac .ogg .mp3"
    assert sorted((s["path"], s["reason"]) for s in index.skips) == sorted(
        [
            (str(root / ".DS_Store"), "hidden (name starts with '.')"),
            (str(root / ".trash"), "hidden (name starts with '.')"),
            (str(root / "README.txt"), "not in a class folder"),
            (str(root / "dog" / ".hidden.wav"), "hidden (name starts with '.')"),
            (str(root / "dog" / "labels.csv"), f"not an audio file (.csv); {audio}"),
            (str(root / "dog" / "noext"), f"not an audio file (no suffix); {audio}"),
            (str(root / "dog" / "sub" / ".cache"), "hidden (name starts with '.')"),
            (str(root / "empty"), "class folder without audio files"),
        ]
    )
    assert {s.fine for s in index.sources} == {"dog", "cat"} and len(index.sources) == 6


def test_class_folders_follow_each_linked_folder_once_and_name_a_loop(tmp_path):
    root = make_classes(tmp_path / "sounds", {"dog": 3, "cat": 3})
    write_audio(root / "dog" / "park" / "bark.wav")
    (root / "dog" / "park" / "loop").symlink_to("..")  # dog/park/loop -> dog: endless dog/park/loop/park/...
    (root / "dog" / "again").symlink_to("park")  # a second way to the same folder
    make_classes(tmp_path / "elsewhere", {"purr": 2})
    (root / "cat" / "linked").symlink_to(tmp_path / "elsewhere" / "purr")  # a link out of the tree is followed
    (root / "cat" / "dogs").symlink_to("../dog")  # another class's folder: its barks are not cats too
    (root / "cat" / "all").symlink_to("..")  # the corpus itself, walked before any class's own folder
    index = index_corpus("class_folders", root, fs=8000)
    root = root.resolve()
    assert sorted(s.id for s in index.sources) == [
        "cat__00",
        "cat__01",
        "cat__02",
        "cat__linked__00",
        "cat__linked__01",
        "dog__00",
        "dog__01",
        "dog__02",
        "dog__park__bark",
    ]
    once = "a folder already indexed (each folder is read once); skipped, remove the link"
    loop = str(root / "dog" / "park" / "loop")
    again = str(root / "dog" / "again")
    assert sorted((s["path"], s["reason"]) for s in index.skips) == sorted(
        [
            (loop, f"symlink loop: points to {root / 'dog'}, {once}"),
            (again, f"symlink: points to {root / 'dog' / 'park'}, {once}"),
            (str(root / "cat" / "dogs"), f"symlink: points to {root / 'dog'}, {once}"),
            (str(root / "cat" / "all"), f"symlink loop: points to {root}, {once}"),
        ]
    )
    assert f"{loop}: symlink loop: points to {root / 'dog'}, {once}" in index.notes


def test_class_folders_no_class_and_one_class(tmp_path):
    root = tmp_path / "sounds"
    root.mkdir()
    (root / "loose.wav").write_bytes(b"")
    with pytest.raises(CorpusLayoutError, match=r"sounds: no class folder with audio files .*expected DIR/<class>/"):
        index_corpus("class_folders", root, fs=8000)
    with pytest.raises(CorpusLayoutError, match="no such folder"):
        index_corpus("class_folders", tmp_path / "nowhere", fs=8000)
    make_classes(root, {"rain": 5})
    index = index_corpus("class_folders", root, fs=8000)
    assert [n for n in index.notes if "one class only (rain)" in n]
    assert index.skips == [{"path": str(root.resolve() / "loose.wav"), "reason": "not in a class folder"}]
