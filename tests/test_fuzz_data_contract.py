"""Fuzzing the data contract (hand-written manifests, read by stage 1) and the class-folder indexer (stage 0, then
stage 1): whatever the names (unicode, spaces, '+', leading dots, very long), durations, rates and columns, the
outcome is a prepared folder whose lists ``ugr.pipeline.lists`` writes and reads back, or one line naming the file (and
the row, when one row is at fault): never a traceback."""

from __future__ import annotations

import csv
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from recipe_helpers import ROOT, TINY_SIZES

from ugr.data import prepare
from ugr.data.eval_list import read_eval_list
from ugr.data.manifest import REQUIRED_COLUMNS, SPLITS
from ugr.pipeline import lists

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OPTIONAL_COLUMNS = ("frames", "rms")
# File and folder names: any character a Linux name may hold (no '/', no NUL, no lone surrogate).
NAME_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00")
NAMES = st.one_of(
    st.text(NAME_CHARS, min_size=1, max_size=12),
    st.sampled_from(
        [
            "dog",
            "train",
            "test",
            "valid",
            "a b",
            "a+b",
            ".hidden",
            "ünï",
            "狗",
            "x" * 120,
            "é" * 100,
            " lead",
            "trail ",
            "-",
            "..x",
            "a\tb",
            "a\nb",
        ]
    ),
)
FILE_NAMES = st.one_of(NAMES, st.just("caf\udce9"))  # with the Latin-1 byte of 'é': a name that is not UTF-8
# Cell values of a hand-written manifest: mostly sensible, sometimes anything.
ANY_CELL = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
LABELS = st.one_of(st.sampled_from(["sound", "sound", "sound", "a", "b", "c"]), ANY_CELL)
NUMBERS = st.one_of(
    st.integers(-10, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "0", "1e9", "nan", "inf", "-0.5", "0x10", "8000.0"]),
    ANY_CELL,
)


def tiny_config(folder: Path) -> Path:
    """The class-folder recipe's CPU preset at the test sizes (sound+sound mixtures, 8 kHz, 0.5 s)."""
    path = folder / "tiny.yaml"
    path.write_text(
        yaml.safe_dump(
            {"inherit": str(ROOT / "egs" / "class_folders" / "conf" / "cpu" / "base_cpu.yaml"), **TINY_SIZES}
        )
    )
    return path


def stage1(data: Path, config: Path) -> str | None:
    """``python -m ugr.pipeline.lists`` on ``data``: None when it wrote lists (then read back), else its error line."""
    try:
        lists.main(["--data", str(data), str(config)])
    except SystemExit as exited:
        return str(exited.code)
    written = sorted((data / "lists").rglob("*.csv"))
    assert [p.name for p in written] == ["test.csv", "valid.csv"]
    for path in written:
        read_eval_list(path, data)
    return None


def outcome(message: str) -> None:
    """The kind of outcome, for ``--hypothesis-show-statistics``: the message without paths and numbers."""
    event(re.sub(r"[^ ]*/|\d+", "", message)[:60].encode("utf-8", "backslashreplace").decode())


def assert_one_clear_line(message: str, prog: str, names: Path) -> None:
    assert message.startswith(f"{prog}: error: ") and "\n" not in message and "Traceback" not in message, message
    assert str(names) in message, f"{message!r} does not name anything in {names}"


# --- hand-written manifests --------------------------------------------------------------------------------


@st.composite
def manifest_rows(draw, audio: dict[str, str], faulty: bool) -> tuple[list[str], list[list[str]]]:
    """A header and rows of cells: a valid manifest (optional columns maybe absent, any column order, ids
    and labels any names without whitespace or '+'), then, if ``faulty``, up to 2 faults: a column missing, a cell with
    any value, a row cut short, a path to odd, missing or no audio."""
    dropped = draw(st.sets(st.sampled_from(OPTIONAL_COLUMNS)))
    columns = draw(st.permutations([c for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c not in dropped]))
    fine = draw(NAMES.map(lambda name: re.sub(r"[\s+]", "_", name)))
    records = [
        {
            "id": f"{fine}{number}",
            "path": "audio/ok.wav",
            "duration": "0.6000",
            "sample_rate": "8000",
            "group": f"g{number % 3}",
            "fine": fine,
            "coarse": "sound",
            "frames": "4800",
            "rms": "0.07",
        }
        for number in range(draw(st.integers(2, 6)))
    ]
    cut = {}
    for fault in draw(st.lists(st.sampled_from(["column", "cell", "short", "path"]), max_size=2)) if faulty else []:
        event(f"fault: {fault}")
        row = draw(st.integers(0, len(records) - 1))
        if fault == "column" and columns:
            columns.remove(draw(st.sampled_from(columns)))
        elif fault == "cell" and columns:
            column = draw(st.sampled_from(columns))
            records[row][column] = draw(
                {"id": NAMES, "group": LABELS, "fine": LABELS, "coarse": LABELS, "path": NAMES}.get(column, NUMBERS)
            )
        elif fault == "short":
            cut[row] = draw(st.integers(0, max(0, len(columns) - 1)))
        elif fault == "path":
            records[row]["path"] = draw(st.sampled_from(sorted(audio)))
    rows = [[record[c] for c in columns] for record in records]
    return columns, [cells[: cut[i]] if i in cut else cells for i, cells in enumerate(rows)]


def audio_files(data: Path) -> dict[str, str]:
    """Audio a manifest may point to, by the path it would give: usable, odd and missing files."""
    rng = np.random.default_rng(0)
    (data / "audio").mkdir(parents=True)
    sf.write(str(data / "audio" / "ok.wav"), 0.1 * rng.standard_normal(4800), 8000)
    sf.write(str(data / "audio" / "short.wav"), 0.1 * rng.standard_normal(10), 8000)
    sf.write(str(data / "audio" / "silent.wav"), np.zeros(4800), 8000)
    sf.write(str(data / "audio" / "at16k.wav"), 0.1 * rng.standard_normal(9600), 16000)
    (data / "audio" / "text.wav").write_text("not audio")
    return {
        "audio/ok.wav": "usable",
        "audio/short.wav": "10 frames",
        "audio/silent.wav": "zeros",
        "audio/at16k.wav": "16 kHz",
        "audio/text.wav": "not audio",
        "audio/missing.wav": "absent",
        str(data / "audio" / "ok.wav"): "absolute",
        "audio": "a folder",
        "": "empty",
    }


@FUZZ
@given(data=st.data())
def test_any_hand_written_manifest_gives_lists_or_one_line_naming_the_file(data):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        audio = audio_files(folder)
        faulty = data.draw(st.sampled_from(SPLITS), label="faulty split")
        for split in SPLITS:
            columns, rows = data.draw(manifest_rows(audio, split == faulty), label=split)
            (folder / "manifests").mkdir(exist_ok=True)
            with open(folder / "manifests" / f"{split}.tsv", "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
                writer.writerow(columns)
                writer.writerows(rows)
            with open(folder / "manifests" / f"{split}.tsv", "ab") as handle:  # maybe a line that is not text
                if split == faulty:
                    handle.write(
                        data.draw(st.sampled_from([b""] * 6 + [b"\xff\xfe\n", b"\x00\n", b'"open\tq\n']), label="tail")
                    )
        error = stage1(folder, tiny_config(Path(tmp)))
        outcome(error or "lists written")
        if error is not None:
            assert_one_clear_line(error, "lists", folder)
            if re.search(r"\.tsv:\d+: ", error):  # a row at fault: the line number is a row of the file
                line = int(re.search(r"\.tsv:(\d+): ", error).group(1))
                assert line >= 2, error


# --- class folders -----------------------------------------------------------------------------------------


@st.composite
def class_tree(draw) -> list[tuple[tuple[str, ...], int, int, int]]:
    """Files as (path parts, frames, sample rate, channels): 2 to 4 class folders of usable names (unicode,
    long, split names), files of any name, maybe in a subfolder, at any rate and length; sometimes one class
    folder of any name."""
    good = st.sampled_from(["dog", "train", "test", "valid", "ünï", "狗", "x" * 120, "é" * 100, "a_b", "-", "..x"])
    classes = draw(st.lists(good, min_size=2, max_size=4, unique=True))
    if draw(st.sampled_from([False, False, False, True])):
        classes.append(draw(FILE_NAMES))
    files = []
    for name in classes:
        for number in range(draw(st.integers(3, 7))):
            parts = (
                name,
                *draw(st.lists(FILE_NAMES, max_size=1)),
                draw(FILE_NAMES)
                + str(number)
                + draw(st.sampled_from([".wav", ".wav", ".wav", ".WAV", ".flac", ".ogg", ".txt", ""])),
            )
            rate = draw(st.sampled_from([8000, 16000, 22050, 44100, 11025, 7999, 100]))
            frames = draw(
                st.one_of(st.integers(rate // 4, rate), st.integers(rate // 4, rate), st.just(0), st.integers(1, 50))
            )
            files.append((parts, frames, rate, draw(st.integers(1, 3))))
    return files


def write_tree(root: Path, files) -> None:
    root.mkdir()
    rng = np.random.default_rng(0)
    for parts, frames, rate, channels in files:
        path = root.joinpath(*parts)
        if any(len(os.fsencode(part)) > 255 for part in parts) or path.exists() or path.parent.is_file():
            continue  # the file system refuses it, or the tree already has a file or folder there
        path.parent.mkdir(parents=True, exist_ok=True)
        samples = 0.1 * rng.standard_normal((frames, channels))
        suffix = path.suffix.lower()
        if suffix in (".wav", ".flac", ".ogg"):
            with open(path, "wb") as handle:  # a handle: soundfile cannot open a name that is not UTF-8
                sf.write(handle, samples, rate, format={".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}[suffix])
        else:
            path.write_text("not audio")


@settings(FUZZ, max_examples=25)  # each prepares a corpus: fewer examples keep it to seconds
@given(files=class_tree(), seed=st.integers(0, 3))
def test_any_class_folder_tree_gives_a_folder_lists_accept_or_one_line_naming_it(files, seed):
    with tempfile.TemporaryDirectory() as tmp:
        corpus, data = Path(tmp) / "corpus", Path(tmp) / "data"
        write_tree(corpus, files)
        try:
            prepare.main(
                [
                    "--out",
                    str(data),
                    "--fs",
                    "8000",
                    "--jobs",
                    "1",
                    "--corpus",
                    "class_folders",
                    str(corpus),
                    f"seed={seed}",
                ]
            )
        except SystemExit as exited:
            outcome(str(exited.code))
            assert_one_clear_line(str(exited.code), "prepare", corpus)
            return
        error = stage1(data, tiny_config(Path(tmp)))
        outcome(error or "lists written")
        if error is not None:
            assert_one_clear_line(error, "lists", data)


# --- what the fuzzing found, pinned -------------------------------------------------------------------------


def write_manifests(folder: Path, first_path: str, extra: bytes = b"", cut: int | None = None) -> None:
    """Three usable rows per split; line 2 of valid.tsv (drawn from in stage 1) gets ``first_path``, maybe cut
    to ``cut`` cells, and ``extra`` bytes follow it."""
    (folder / "manifests").mkdir(parents=True, exist_ok=True)
    columns = list(REQUIRED_COLUMNS)
    for split in SPLITS:
        lines = ["\t".join(columns)]
        for number in range(3):
            faulty = number == 0 and split == "valid"
            cells = [f"r{number}", first_path if faulty else "audio/ok.wav", "0.6", "8000", f"g{number}", "f", "sound"]
            lines.append("\t".join(cells[:cut] if faulty and cut is not None else cells))
        (folder / "manifests" / f"{split}.tsv").write_bytes(
            ("\n".join(lines) + "\n").encode() + (extra if split == "valid" else b"")
        )


@pytest.mark.parametrize(
    "first_path, extra, cut, message",
    [
        (
            "audio/missing.wav",
            b"",
            None,
            "{m}: row r0: {d}/audio/missing.wav: no such file; correct the row's path, or "
            "prepare the data folder again (stage 0)",
        ),
        (
            "audio/text.wav",
            b"",
            None,
            "{m}: row r0: {d}/audio/text.wav: unreadable audio (Format not recognised.); "
            "correct the row's path, or prepare the data folder again (stage 0)",
        ),
        (
            "audio",
            b"",
            None,
            "{m}: row r0: {d}/audio: a folder, not an audio file; correct the row's path, or prepare "
            "the data folder again (stage 0)",
        ),
        ("", b"", None, "{c} (tiny): {m}:2: empty path; give the audio file, relative to the data folder or absolute"),
        ("audio/ok.wav", b"", 2, "{c} (tiny): {m}:2: 2 cell(s), the header has 7; write every cell, tab separated"),
        (
            "audio/ok.wav",
            b"r9\t\xff\xfe\n",
            None,
            "{c} (tiny): {m}:5: not UTF-8 text (invalid start byte at byte 158); write the manifest in UTF-8",
        ),
    ],
)
def test_bad_manifest_rows_are_named_by_file_and_row(tmp_path, first_path, extra, cut, message):
    folder = tmp_path / "data"
    audio_files(folder)
    write_manifests(folder, first_path, extra, cut)
    config = tiny_config(tmp_path)
    expected = message.format(m=folder / "manifests" / "valid.tsv", d=folder, c=config)
    assert stage1(folder, config) == f"lists: error: {expected}"


def test_a_name_too_long_for_a_cache_file_or_not_utf8_is_a_counted_skip(tmp_path):
    corpus = tmp_path / "corpus"
    files = [((c, f"{i}.wav"), 4000, 16000, 1) for c in ("dog", "cat") for i in range(3)]
    files += [(("dog", "x" * 250 + ".wav"), 4000, 16000, 1), (("cat", "caf\udce9.wav"), 4000, 16000, 1)]
    write_tree(corpus, files)
    report = prepare.prepare(tmp_path / "data", [prepare.CorpusInput("class_folders", str(corpus))], fs=8000)
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert reasons == {
        "x" * 250 + ".wav": "id too long (255 bytes, at most 200: it names the cache file); shorten "
        "the file or folder names",
        "caf\udce9.wav": "name not UTF-8 (ids and lists are UTF-8 text); rename it",
    }
    assert report["prepared_sources"] == 6


def test_an_error_naming_a_file_with_a_line_break_stays_one_line(tmp_path):
    corpus = tmp_path / "corpus"
    write_tree(corpus, [(("a\nb", "0.wav"), 4000, 8000, 1)])
    try:
        prepare.main(["--out", str(tmp_path / "data"), "--fs", "8000", "--corpus", "class_folders", str(corpus)])
    except SystemExit as exited:
        assert str(exited.code) == (
            f"prepare: error: {corpus}/a\\nb: class folder name 'a\\nb' holds whitespace or "
            f"'+', which class labels cannot (lists are TSV, priors are written A+B); rename "
            f"the folder, e.g. to 'a_b'"
        )
