"""Indexing of the official layouts, split rules, bad input, caching, and the ESC-50 download."""
from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from test_data_helpers import ESC_CATEGORIES, make_esc50, make_wsj0, tone, write_meta
from ugr.data.esc50 import Esc50LayoutError, index_esc50
from ugr.data.manifest import manifest_path, read_manifest
from ugr.data.prepare import prepare
from ugr.data.wsj0 import Wsj0LayoutError, index_wsj0

SETS = {"si_tr_s": ["01a", "02b"], "si_dt_05": ["20c", "21d"], "si_et_05": ["40e", "41f"]}


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
        (lambda root: write_meta(root, [["a.wav", 1, 0, "dog", "False", 1, "A"]], header=["filename", "fold"]), "header"),
        (lambda root: write_meta(root, [["5-1000-A-0.wav", 7, 0, "dog", "False", 1, "A"]]), "unknown fold 7"),
        (lambda root: write_meta(root, [["5-1000-A-0.wav", "x", 0, "dog", "False", 1, "A"]]), "not an integer"),
        (lambda root: write_meta(root, []), "no rows"),
    ],
)
def test_esc50_bad_meta_is_an_error(tmp_path, mutate, message):
    root = make_esc50(tmp_path / "esc50", clips_per_fold=1)
    mutate(root)
    with pytest.raises(Esc50LayoutError, match=message):
        index_esc50(root)


def test_wsj0_standard_layout_speakers_and_sets(tmp_path):
    root = make_wsj0(tmp_path, SETS)
    (root / "si_tr_s" / "01a" / "01ac0100.wv2").write_bytes(b"second mic")
    sources, skips = index_wsj0(root)
    assert {(s.split, s.group) for s in sources} == {
        ("train", "01a"), ("train", "02b"), ("valid", "20c"), ("valid", "21d"), ("test", "40e"), ("test", "41f")}
    assert all(s.fine == "speech" and s.group == s.id[:3] for s in sources)
    assert [Path(s["path"]).name for s in skips] == ["01ac0100.wv2"]


def test_wsj0_twomix_layout_takes_both_speakers_once(tmp_path):
    root = tmp_path / "wsj0-2mix"
    for name in ("tr", "cv", "tt"):
        for part in ("s1", "s2"):
            (root / name / part).mkdir(parents=True)
    mixes = {"tr": ["011a0101_1.2_022b0202_-1.2", "011a0101_0.5_033c0303_-0.5"], "cv": ["044d0404_0_055e0505_0"],
             "tt": ["066f0606_0_077g0707_0"]}
    for name, stems in mixes.items():
        for stem in stems:
            for part in ("s1", "s2"):
                sf.write(root / name / part / f"{stem}.wav", tone(1.0, 8000, 1), 8000)
    sources, skips = index_wsj0(root)
    assert sorted(s.id for s in sources if s.split == "train") == ["011a0101", "022b0202", "033c0303"]
    assert {s.group for s in sources if s.split == "test"} == {"066", "077"}
    assert len(skips) == 1 and "duplicate utterance id 011a0101" in skips[0]["reason"]


def test_wsj0_empty_tree_and_sphere_without_sph2pipe(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(Wsj0LayoutError, match="no si_tr_s"):
        index_wsj0(tmp_path / "empty")
    (tmp_path / "t" / "si_tr_s" / "01a").mkdir(parents=True)
    with pytest.raises(Wsj0LayoutError, match="no usable utterances"):
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
    report = prepare(tmp_path / "data", wsj0=wsj0, esc50=esc50, sample_rate=8000)
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"01ac0900.wav", "01ac0901.wav", "01ac0902.wav"}
    assert "unreadable" in reasons["01ac0900.wav"] and "empty" in reasons["01ac0901.wav"]
    assert "silent" in reasons["01ac0902.wav"]
    assert [Path(d["path"]).name for d in report["downmixed"]] == ["01ac0903.wav"]
    assert json.loads((tmp_path / "data" / "prepare_report.json").read_text())["skipped_count"] == 3
    train = read_manifest(manifest_path(tmp_path / "data", "train"))
    assert len(train) == 2 * 2 + 1 + 3 * 4  # 2 speakers x 2 utts + the stereo one + 3 classes x 4 folds
    row = next(r for r in train if r.id == "01ac0101")
    assert (row.sample_rate, row.frames, row.coarse) == (8000, 28000, "speech")  # 3.5 s at 8 kHz
    cached, rate = sf.read(tmp_path / "data" / row.path)
    assert rate == 8000 and cached.shape == (28000,)
    env = next(r for r in train if r.corpus == "esc50")
    assert env.fine in ESC_CATEGORIES and env.coarse == "env" and env.frames == 8000
    again = prepare(tmp_path / "data", wsj0=wsj0, esc50=esc50, sample_rate=8000)
    assert again["reused_from_cache"] == again["prepared"] == report["prepared"]
    assert again["downmixed_count"] == 1


def test_prepare_needs_a_corpus(tmp_path):
    with pytest.raises(ValueError, match="--wsj0 and/or --esc50"):
        prepare(tmp_path / "data")


def test_esc50_download_into_empty_folder(tmp_path):
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
    try:
        (tmp_path / "esc50").mkdir()
        url = f"http://127.0.0.1:{server.server_address[1]}/master.zip"
        report = prepare(tmp_path / "data", esc50=tmp_path / "esc50", esc50_url=url)
    finally:
        server.shutdown()
    assert (tmp_path / "esc50" / "meta" / "esc50.csv").is_file()
    assert report["prepared"] == 15 and report["splits"]["train"]["esc50"]["groups"] == 3
    shutil.rmtree(tmp_path / "build")
