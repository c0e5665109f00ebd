"""Indexing of WSJ0 and ESC-50, then preparation of any corpus: bad input, caching, published mixtures, refusals."""

from __future__ import annotations

import functools
import http.server
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_corpora import make_2mix
from test_data_helpers import ESC_CATEGORIES, make_esc50, make_wsj0, tone, write_meta

from ugr.data.corpora import CorpusLayoutError, index_corpus
from ugr.data.manifest import manifest_path, mixtures_path, read_manifest, read_mixtures
from ugr.data.prepare import CorpusInput, PrepareError, prepare

SETS = {"si_tr_s": ["01a", "02b"], "si_dt_05": ["20c", "21d"], "si_et_05": ["40e", "41f"]}


def index_esc50(root):
    index = index_corpus("esc50", root, fs=8000)
    return index.sources, index.skips


def index_wsj0(root):
    index = index_corpus("wsj0", root, fs=8000)
    return index.sources, index.skips


def corpora(**roots) -> list[CorpusInput]:
    return [CorpusInput(name, str(Path(root).resolve()), {}) for name, root in roots.items()]


def test_esc50_folds_and_heldout_split(tmp_path):
    root = make_esc50(tmp_path / "esc50", clips_per_fold=2)
    sources, skips = index_esc50(root)
    assert skips == []
    by_split = {s: [x for x in sources if x.split == s] for s in ("train", "valid", "test")}
    assert len(by_split["train"]) == 3 * 4 * 2
    assert all(Path(x.path).name[0] in "1234" for x in by_split["train"])
    for category in ESC_CATEGORIES:
        valid = sorted(Path(x.path).name for x in by_split["valid"] if x.fine == category)
        test = sorted(Path(x.path).name for x in by_split["test"] if x.fine == category)
        assert len(valid) == len(test) == 1 and valid[0] < test[0]  # sorted: first half valid
        assert valid[0].startswith("5-") and test[0].startswith("5-")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda root: (root / "meta" / "esc50.csv").unlink(), "missing"),
        (
            lambda root: write_meta(root, [["a.wav", 1, 0, "dog", "False", 1, "A"]], header=["filename", "fold"]),
            "header",
        ),
        (lambda root: write_meta(root, [["5-1000-A-0.wav", 7, 0, "dog", "False", 1, "A"]]), "unknown fold 7"),
        (lambda root: write_meta(root, [["5-1000-A-0.wav", "x", 0, "dog", "False", 1, "A"]]), "not an integer"),
        (lambda root: write_meta(root, []), "no rows"),
    ],
)
def test_esc50_bad_meta_is_an_error(tmp_path, mutate, message):
    root = make_esc50(tmp_path / "esc50", clips_per_fold=1)
    mutate(root)
    with pytest.raises(CorpusLayoutError, match=message):
        index_esc50(root)


def test_wsj0_standard_layout_speakers_and_sets(tmp_path):
    root = make_wsj0(tmp_path, SETS)
    (root / "si_tr_s" / "01a" / "01ac0100.wv2").write_bytes(b"second mic")
    sources, skips = index_wsj0(root)
    assert {(s.split, s.group) for s in sources} == {
        ("train", "01a"),
        ("train", "02b"),
        ("valid", "20c"),
        ("valid", "21d"),
        ("test", "40e"),
        ("test", "41f"),
    }
    assert all(s.fine == s.coarse == "speech" and s.group == s.id[:3] for s in sources)
    assert [Path(s["path"]).name for s in skips] == ["01ac0100.wv2"]


def test_wsj0_empty_tree_and_sphere_without_sph2pipe(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusLayoutError, match="no si_tr_s"):
        index_wsj0(tmp_path / "empty")
    (tmp_path / "t" / "si_tr_s" / "01a").mkdir(parents=True)
    with pytest.raises(CorpusLayoutError, match="no usable utterances"):
        index_wsj0(tmp_path / "t")
    (tmp_path / "t" / "si_tr_s" / "01a" / "01ac0101.wv1").write_bytes(b"NIST_1A")
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match="sph2pipe"):
        index_wsj0(tmp_path / "t")


def test_prepare_counts_bad_files_downmixes_and_reuses_cache(tmp_path):
    wsj0 = make_wsj0(tmp_path, SETS)
    esc50 = make_esc50(tmp_path / "esc50", clips_per_fold=1)
    bad = wsj0 / "si_tr_s" / "01a"
    (bad / "01ac0900.wav").write_bytes(b"RIFF garbage")  # corrupt
    sf.write(bad / "01ac0901.wav", np.zeros((0,), np.float32), 16000)  # empty
    sf.write(bad / "01ac0902.wav", np.zeros(1600, np.float32), 16000)  # silent
    sf.write(bad / "01ac0903.wav", tone(2.0, 16000, 5, channels=2), 16000)  # stereo: downmixed, kept
    sf.write(bad / "01ac0904.wav", tone(0.05, 16000, 6), 16000)  # 0.05 s: shorter than the 0.1 s minimum
    sf.write(bad / "01ac0905.wav", tone(1 / 44100, 44100, 7), 44100)  # one sample: 0 frames at 8 kHz
    # Cut short (an interrupted copy): in its leading silence, and a mono file at the rate, used in place.
    sf.write(bad / "01ac0906.wav", np.concatenate([np.zeros(8000, np.float32), tone(1.0, 16000, 8)]), 16000)
    sf.write(bad / "01ac0907.wav", tone(2.0, 8000, 9), 8000, subtype="PCM_16")
    for name, keep in (("01ac0906.wav", 4000), ("01ac0907.wav", 10000)):
        with open(bad / name, "r+b") as handle:
            handle.truncate(keep)
    report = prepare(tmp_path / "data", corpora(wsj0=wsj0, esc50=esc50), fs=8000)
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {f"01ac090{i}.wav" for i in (0, 1, 2, 4, 5, 6, 7)}
    assert "truncated WAV (its header declares 32000 bytes of audio, the file holds 9956" in reasons["01ac0907.wav"]
    assert "truncated WAV" in reasons["01ac0906.wav"] and report["skipped_reasons"]["truncated WAV"] == 2
    assert "unreadable" in reasons["01ac0900.wav"] and "empty" in reasons["01ac0901.wav"]
    assert "silent" in reasons["01ac0902.wav"]
    assert "too short: 400 frames at 8000 Hz" in reasons["01ac0904.wav"] and "minimum is 800" in reasons["01ac0904.wav"]
    assert "empty" in reasons["01ac0905.wav"] or "too short" in reasons["01ac0905.wav"]
    assert report["skipped_reasons"]["too short"] == 1
    assert [Path(d["path"]).name for d in report["downmixed"]] == ["01ac0903.wav"]
    assert json.loads((tmp_path / "data" / "prepare_report.json").read_text())["skipped_count"] == 7
    train = read_manifest(manifest_path(tmp_path / "data", "train"))
    assert len(train) == 2 * 2 + 1 + 3 * 4  # 2 speakers x 2 utts + the stereo one + 3 classes x 4 folds
    row = next(r for r in train if r.id == "01ac0101")
    assert (row.sample_rate, row.frames, row.coarse, row.fine) == (8000, 28000, "speech", "speech")  # 3.5 s
    cached, rate = sf.read(tmp_path / "data" / row.path)
    assert rate == 8000 and cached.shape == (28000,)
    assert row.rms == pytest.approx(float(np.sqrt(np.mean(cached.astype(np.float64) ** 2))), rel=1e-4)
    env = next(r for r in train if r.coarse == "env")
    assert env.fine in ESC_CATEGORIES and env.group == env.fine and env.frames == 8000
    again = prepare(tmp_path / "data", corpora(wsj0=wsj0, esc50=esc50), fs=8000, force=True)
    assert again["reused_from_cache"] == again["prepared_sources"] == report["prepared_sources"]
    assert again["downmixed_count"] == 1


def test_a_prepared_folder_is_kept_and_never_stands_for_other_inputs(tmp_path):
    esc50 = make_esc50(tmp_path / "esc50", clips_per_fold=1, seconds=0.3)
    first = prepare(tmp_path / "data", corpora(esc50=esc50), fs=8000)
    manifest = manifest_path(tmp_path / "data", "train")
    written = manifest.stat().st_mtime_ns
    again = prepare(tmp_path / "data", corpora(esc50=esc50), fs=8000)
    assert again["up_to_date"] and manifest.stat().st_mtime_ns == written
    with pytest.raises(PrepareError, match="was prepared from esc50 .* at 8000 Hz.*not from esc50 .* at 16000 Hz"):
        prepare(tmp_path / "data", corpora(esc50=esc50), fs=16000)
    redone = prepare(tmp_path / "data", corpora(esc50=esc50), fs=16000, force=True)
    assert redone["sample_rate"] == 16000 and first["prepared_sources"] == redone["prepared_sources"]
    assert {r.sample_rate for r in read_manifest(manifest)} == {16000}


def test_mono_wavs_at_the_rate_are_used_in_place(tmp_path):
    root = tmp_path / "sounds"
    for name, rate, channels in (
        ("dog/a.wav", 8000, 1),
        ("dog/b.flac", 8000, 1),
        ("rain/c.wav", 16000, 1),
        ("rain/d.wav", 8000, 2),
        ("rain/e.wav", 8000, 1),
        ("dog/f.wav", 8000, 1),
    ):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(0.5, rate, len(name), channels=channels), rate)
    report = prepare(
        tmp_path / "data", [CorpusInput("class_folders", str(root), {"valid": "0.1", "test": "0.1"})], fs=8000
    )
    rows = [r for split in ("train", "valid", "test") for r in read_manifest(manifest_path(tmp_path / "data", split))]
    in_place = {Path(r.path).name for r in rows if Path(r.path).is_absolute()}
    assert in_place == {"a.wav", "e.wav", "f.wav"} and report["used_in_place"] == 3
    assert all((tmp_path / "data" / r.path).is_file() for r in rows if not Path(r.path).is_absolute())


def test_published_mixtures_are_prepared_with_their_sources(tmp_path):
    tree = make_2mix(tmp_path / "wsj0-2mix")
    report = prepare(tmp_path / "data", [CorpusInput("wsj0_2mix", str(tree), {})], fs=8000, min_seconds=0.01)
    assert report["splits"]["train"]["published_mixtures"] == 3 and report["prepared_mixtures"] == 5
    (cv,) = read_mixtures(mixtures_path(tmp_path / "data", "valid"))
    assert cv.id == "055e0505_1.2_066f0606_-1.2" and cv.groups == ("055", "066")
    assert cv.fines == cv.coarses == ("speech", "speech") and cv.frames == 600
    assert sf.info(cv.mixture).frames == 600 and all(sf.info(p).frames == 600 for p in cv.sources)
    train = read_manifest(manifest_path(tmp_path / "data", "train"))
    assert sorted(r.id for r in train) == ["011a0101", "022b0202", "033c0303", "044d0404"]


def test_prepare_needs_a_corpus_and_names_the_registered_ones(tmp_path):
    with pytest.raises(PrepareError, match="registered: class_folders, esc50, librimix, wsj0, wsj0_2mix"):
        prepare(tmp_path / "data", [], fs=8000)
    with pytest.raises(CorpusLayoutError, match="unknown corpus 'timit'"):
        prepare(tmp_path / "data", corpora(timit=tmp_path), fs=8000)


def _serve_release(tmp_path):
    release = make_esc50(tmp_path / "build" / "ESC-50-master", clips_per_fold=1, seconds=0.2)
    archive = tmp_path / "serve" / "master.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(release.rglob("*")):
            bundle.write(path, path.relative_to(release.parent))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(archive.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/master.zip"


def test_esc50_downloads_into_an_empty_folder_or_on_request_only(tmp_path):
    server, url = _serve_release(tmp_path)
    try:
        with pytest.raises(CorpusLayoutError, match="no such folder.*download=true"):
            prepare(tmp_path / "data", [CorpusInput("esc50", str(tmp_path / "typo"), {"url": url})], fs=8000)
        assert not (tmp_path / "typo").exists(), "a mistyped path must not be created and downloaded into"
        (tmp_path / "esc50").mkdir()
        report = prepare(tmp_path / "data", [CorpusInput("esc50", str(tmp_path / "esc50"), {"url": url})], fs=8000)
        asked = prepare(
            tmp_path / "data2", [CorpusInput("esc50", str(tmp_path / "new"), {"url": url, "download": "true"})], fs=8000
        )
    finally:
        server.shutdown()
    assert (tmp_path / "esc50" / "meta" / "esc50.csv").is_file() and (tmp_path / "new" / "audio").is_dir()
    assert report["prepared_sources"] == asked["prepared_sources"] == 15
    assert report["splits"]["train"]["sources"]["env"]["groups"] == 3
