"""Stage 0's generic part: any registered corpora -> a data folder that meets the data contract.

    python -m ugr.data.prepare --out data --fs 8000 --corpus wsj0 /corpora/wsj0 --corpus esc50 /corpora/ESC-50

Each ``--corpus NAME DIR [KEY=VALUE ...]`` is indexed by the indexer
registered as NAME (``ugr.data.corpora``); every file it lists is read once,
downmixed to mono, resampled to ``--fs`` (julius) and checked (unreadable,
empty, non-finite, silent, constant (DC: ``ugr.data.audio.DEGENERATE_RATIO``), or shorter than
``--min-seconds`` after
resampling: skipped and counted with the reason). Mono WAV files already at
``--fs`` are used where they are; the others are cached under
``OUT/audio/`` (a re-run reuses cache files newer than their original).
Writes ``OUT/manifests/<split>.tsv`` (and ``<split>_mixtures.tsv`` for
corpora with published mixtures; see ``ugr.data.manifest``) and, last,
``OUT/prepare_report.json``: the settings, counts per split and class, and
every skipped or downmixed file.

A folder prepared from the same corpora and settings is reported and left
alone; one prepared from others is refused (``--force`` redoes it), so a data
folder never silently stands for another corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import soundfile as sf
from tqdm import tqdm

from ugr.io.atomic import atomic_write_text
from ugr.io.cli import one_line_errors

from .audio import DEGENERATE_RATIO, SPHERE_SUFFIXES, AudioError, load_mono, resample, write_wav, zero_mean_fraction
from .corpora import SPLITS, CorpusLayoutError, Index, MixtureFile, SourceFile, index_corpus, registered
from .manifest import (
    ManifestError,
    MixtureRow,
    SourceRow,
    check_label,
    manifest_path,
    mixtures_path,
    write_manifest,
    write_mixtures,
)

REPORT_NAME = "prepare_report.json"
REPORT_FORMAT = 2
CONSTANT = "constant (DC) signal"  # the skip reason of a degenerate clip (its kind in the report's counts)
MIN_SECONDS = 0.1  # shorter recordings carry too little to separate: a counted skip, not a 5-frame source
# Longest id (UTF-8 bytes): the cache file <id>.wav and atomic_write's temporary .<id>.wav.HHHHHH-PID.XXXXXXXX.tmp
# (up to 29 bytes more than the id and its .wav) beside it
# must fit the 255-byte file names of common file systems.
MAX_ID_BYTES = 200


class PrepareError(ValueError):
    """A data folder that cannot be (re)prepared as asked; the message says why and what to do."""


@dataclass(frozen=True)
class CorpusInput:
    """One ``--corpus NAME DIR KEY=VALUE...``."""

    name: str
    root: str
    options: dict = field(default_factory=dict)

    @staticmethod
    def parse(words: Sequence[str]) -> "CorpusInput":
        if len(words) < 2:
            raise PrepareError(f"--corpus {' '.join(words)}: give NAME DIR [KEY=VALUE ...]")
        options = {}
        for word in words[2:]:
            key, sep, value = word.partition("=")
            if not sep or not key:
                raise PrepareError(f"--corpus {words[0]}: option {word!r} must be KEY=VALUE")
            options[key] = value
        return CorpusInput(words[0], str(Path(words[1]).resolve()), options)


@dataclass(frozen=True)
class _Task:
    """Prepare one file: ``source`` read from ``original``, written to ``cached`` unless usable in place."""

    original: str
    cached: str
    relative: str
    sample_rate: int
    min_frames: int


@dataclass(frozen=True)
class _Prepared:
    path: Optional[str]  # as the manifest names it; None when skipped
    frames: int = 0
    rms: float = 0.0
    skip_reason: Optional[str] = None
    downmixed_from: Optional[int] = None
    reused: bool = False
    in_place: bool = False


def prepare(
    out: str | os.PathLike,
    corpora: Sequence[CorpusInput],
    *,
    fs: int,
    jobs: int = 1,
    min_seconds: float = MIN_SECONDS,
    force: bool = False,
) -> dict:
    """Builds (or finds up to date) the data folder ``out``; returns the report (also in ``out/prepare_report.json``)."""
    if not corpora:
        raise PrepareError(f"no corpus given; pass --corpus NAME DIR (registered: {', '.join(registered())})")
    if fs <= 0 or min_seconds < 0:
        raise PrepareError(f"--fs {fs} must be > 0 and --min-seconds {min_seconds} >= 0")
    out = Path(out).resolve()
    settings = {
        "corpora": [{"name": c.name, "root": c.root, "options": c.options} for c in corpora],
        "sample_rate": fs,
        "min_seconds": min_seconds,
    }
    existing = _existing_report(out)
    if existing is not None and not force:
        if existing.get("settings") == settings:
            existing["up_to_date"] = True
            return existing
        raise PrepareError(
            f"{out} was prepared from {_describe(existing.get('settings'))}, not from "
            f"{_describe(settings)}; pass another data folder (--data), or --force true to redo it"
        )
    index = Index()
    for corpus in corpora:
        found = index_corpus(corpus.name, corpus.root, fs=fs, options=corpus.options)
        if not found.sources and not found.mixtures:
            raise PrepareError(f"{corpus.root}: corpus {corpus.name} has no usable file")
        index.extend(found)
    index.sources = _unique(_short_ids(index.sources, index.skips), lambda s: (s.split, s.id), index.skips)
    index.mixtures = _unique(index.mixtures, lambda m: (m.split, m.id), index.skips)
    (out / REPORT_NAME).unlink(missing_ok=True)  # written last: its absence marks an unfinished folder
    min_frames = max(1, int(round(min_seconds * fs)))
    source_tasks = [
        _task(out, s.path, f"audio/{s.split}/{s.coarse}/{s.group}/{s.id}.wav", fs, min_frames) for s in index.sources
    ]
    mixture_tasks = [
        _task(out, path, f"audio/{m.split}/mixtures/{m.id}/{name}.wav", fs, min_frames)
        for m in index.mixtures
        for name, path in [("mix", m.mixture)] + [(f"s{k + 1}", s.path) for k, s in enumerate(m.sources)]
    ]
    tasks = source_tasks + mixture_tasks
    results = _run(tasks, jobs)
    source_results, mixture_results = results[: len(source_tasks)], results[len(source_tasks) :]
    rows = _source_rows(index.sources, source_results, fs, index.skips)
    mixtures = _mixture_rows(index.mixtures, mixture_results, fs, index.skips)
    for split in SPLITS:
        write_manifest(manifest_path(out, split), [r for s, r in rows if s == split])
        if index.mixtures:
            write_mixtures(mixtures_path(out, split), [m for s, m in mixtures if s == split])
    report = _report(out, settings, rows, mixtures, index, tasks, results)
    atomic_write_text(out / REPORT_NAME, json.dumps(report, indent=2) + "\n")
    return report


def _existing_report(out: Path) -> Optional[dict]:
    path = out / REPORT_NAME
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    if report.get("format") != REPORT_FORMAT:
        raise PrepareError(
            f"{path}: written by an older ugr (format {report.get('format')}, now {REPORT_FORMAT}); "
            f"--force true re-prepares {out} in the current format"
        )
    return report


def _describe(settings: Optional[dict]) -> str:
    if not settings:
        return "unknown inputs"
    corpora = ", ".join(
        f"{c['name']} {c['root']}" + "".join(f" {k}={v}" for k, v in c["options"].items()) for c in settings["corpora"]
    )
    return f"{corpora} at {settings['sample_rate']} Hz (min {settings['min_seconds']} s)"


def _task(out: Path, original: str, relative: str, fs: int, min_frames: int) -> _Task:
    return _Task(original, str(out / relative), relative, fs, min_frames)


def _run(tasks: list[_Task], jobs: int) -> list[_Prepared]:
    progress = dict(total=len(tasks), desc="prepare", unit="file", mininterval=1.0, disable=None)
    if jobs <= 1:
        return [_prepare_file(t) for t in tqdm(tasks, **progress)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(tqdm(pool.map(_prepare_file, tasks, chunksize=16), **progress))


def _usable_in_place(path: Path, fs: int) -> bool:
    """Mono WAV at the target rate: read where it is (no copy of a large corpus)."""
    if path.suffix.lower() in SPHERE_SUFFIXES:
        return False
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError):
        return False
    return info.format == "WAV" and info.channels == 1 and info.samplerate == fs


def _prepare_file(task: _Task) -> _Prepared:
    """Read, downmix, resample and check one file; write it to the cache unless it is usable in place."""
    original, cached = Path(task.original), Path(task.cached)
    in_place = _usable_in_place(original, task.sample_rate)
    reused = not in_place and _cache_is_fresh(cached, original, task.sample_rate)
    try:
        loaded = load_mono(cached if reused else original)
    except AudioError as err:  # the skip record names the file: keep the reason alone
        return _Prepared(None, skip_reason=str(err).removeprefix(f"{cached if reused else original}: "))
    channels = _channels_of(original) if reused else loaded.channels
    samples = resample(loaded.samples, loaded.sample_rate, task.sample_rate)
    if samples.size == 0:
        return _Prepared(None, skip_reason="empty audio (0 frames)")
    if not np.isfinite(samples).all():
        return _Prepared(None, skip_reason="non-finite samples (NaN/inf)")
    if not np.any(samples):
        return _Prepared(None, skip_reason="silent (all samples are zero)")
    fraction = zero_mean_fraction(samples)
    if fraction <= DEGENERATE_RATIO:
        return _Prepared(
            None,
            skip_reason=f"{CONSTANT}: its power after removing the mean is {fraction:.2g} of its "
            f"power, at most {DEGENERATE_RATIO:g} (nothing to separate or score)",
        )
    if samples.size < task.min_frames:
        return _Prepared(
            None,
            skip_reason=f"too short: {samples.size} frames at {task.sample_rate} Hz after "
            f"resampling, the minimum is {task.min_frames} (--min-seconds)",
        )
    if not (in_place or reused):
        write_wav(cached, samples, task.sample_rate)
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return _Prepared(
        str(original) if in_place else task.relative,
        int(samples.size),
        rms,
        downmixed_from=channels if channels > 1 else None,
        reused=reused,
        in_place=in_place,
    )


def _channels_of(original: Path) -> int:
    """Channel count of a reused file's original, so re-runs report downmixes too (SPHERE is mono)."""
    return 1 if original.suffix.lower() in SPHERE_SUFFIXES else sf.info(str(original)).channels


def _cache_is_fresh(cached: Path, original: Path, sample_rate: int) -> bool:
    if not cached.is_file() or cached.stat().st_mtime < original.stat().st_mtime:
        return False
    try:
        return sf.info(str(cached)).samplerate == sample_rate
    except (RuntimeError, sf.LibsndfileError):
        return False


def _short_ids(sources: list[SourceFile], skips: list[dict]) -> list[SourceFile]:
    """The sources whose id can name a cache file; the others are counted skips naming the fix."""
    kept = []
    for source in sources:
        size = len(source.id.encode("utf-8"))
        if size > MAX_ID_BYTES:
            skips.append(
                {
                    "path": source.path,
                    "reason": f"id too long ({size} bytes, at most {MAX_ID_BYTES}: "
                    f"it names the cache file); shorten the file or folder names",
                }
            )
        else:
            kept.append(source)
    return kept


def _unique(items: list, key, skips: list[dict]) -> list:
    """The first item of each (split, id); later ones are counted skips (they would share a cache file)."""
    kept: dict = {}
    for item in items:
        path = getattr(item, "path", None) or item.mixture
        if key(item) in kept:
            first = getattr(kept[key(item)], "path", None) or kept[key(item)].mixture
            skips.append({"path": path, "reason": f"duplicate id {item.id} in split {item.split} (kept {first})"})
        else:
            kept[key(item)] = item
    return list(kept.values())


def _labels_checked(source: SourceFile) -> SourceFile:
    for key in ("id", "group", "fine", "coarse"):
        check_label(getattr(source, key), f"{source.path}: {key}")
    return source


def _source_rows(
    sources: list[SourceFile], results: list[_Prepared], fs: int, skips: list[dict]
) -> list[tuple[str, SourceRow]]:
    rows = []
    for source, done in zip(sources, results):
        _labels_checked(source)
        if done.skip_reason:
            skips.append({"path": source.path, "reason": done.skip_reason})
        else:
            rows.append(
                (
                    source.split,
                    SourceRow(
                        source.id,
                        done.path,
                        done.frames / fs,
                        fs,
                        source.group,
                        source.fine,
                        source.coarse,
                        done.frames,
                        done.rms,
                    ),
                )
            )
    return rows


def _mixture_rows(
    mixtures: list[MixtureFile], results: list[_Prepared], fs: int, skips: list[dict]
) -> list[tuple[str, MixtureRow]]:
    rows, per_mixture = [], 1 + 2
    for i, mixture in enumerate(mixtures):
        parts = results[i * per_mixture : (i + 1) * per_mixture]
        for source in mixture.sources:
            _labels_checked(source)
        bad = [p.skip_reason for p in parts if p.skip_reason]
        lengths = {p.frames for p in parts}
        if bad or len(lengths) != 1:
            reason = bad[0] if bad else f"mixture and sources differ in length ({sorted(lengths)} frames)"
            skips.append({"path": mixture.mixture, "reason": f"{reason} (published mixture {mixture.id})"})
            continue
        rows.append(
            (
                mixture.split,
                MixtureRow(
                    mixture.id,
                    parts[0].path,
                    parts[0].frames,
                    fs,
                    tuple(p.path for p in parts[1:]),
                    tuple(s.group for s in mixture.sources),
                    tuple(s.fine for s in mixture.sources),
                    tuple(s.coarse for s in mixture.sources),
                ),
            )
        )
    return rows


def _report(
    out: Path, settings: dict, rows, mixtures, index: Index, tasks: list[_Task], results: list[_Prepared]
) -> dict:
    splits: dict = {}
    for split in SPLITS:
        chosen = [r for s, r in rows if s == split]
        classes: dict = {}
        for coarse in sorted({r.coarse for r in chosen}):
            members = [r for r in chosen if r.coarse == coarse]
            classes[coarse] = {
                "files": len(members),
                "hours": round(sum(r.duration for r in members) / 3600, 4),
                "groups": len({r.group for r in members}),
                "fine_classes": sorted({r.fine for r in members}),
            }
        splits[split] = {"sources": classes, "published_mixtures": sum(1 for s, _ in mixtures if s == split)}
    downmixed = [{"path": t.original, "channels": r.downmixed_from} for t, r in zip(tasks, results) if r.downmixed_from]
    return {
        "format": REPORT_FORMAT,
        "settings": settings,
        "data_dir": str(out),
        "sample_rate": settings["sample_rate"],
        "prepared_sources": len(rows),
        "prepared_mixtures": len(mixtures),
        "used_in_place": sum(r.in_place for r in results),
        "reused_from_cache": sum(r.reused for r in results),
        "splits": splits,
        "skipped_count": len(index.skips),
        "skipped_reasons": dict(Counter(_reason_kind(s["reason"]) for s in index.skips)),
        "skipped": index.skips,
        "downmixed_count": len(downmixed),
        "downmixed": downmixed,
        "notes": index.notes,
    }


def _reason_kind(reason: str) -> str:
    """Group per-file reasons for the summary: the words before any detail (``: ...``, `` (...)``, `` id ...``)."""
    if reason.startswith(CONSTANT):
        return CONSTANT
    return reason.split(" (")[0].split(":")[0].split(" id ")[0]


def summary_lines(report: dict) -> list[str]:
    """What stage 0's log says about a data folder."""
    lines = [
        f"{report['prepared_sources']} sources, {report['prepared_mixtures']} published mixtures at "
        f"{report['sample_rate']} Hz in {report['data_dir']} ({report['used_in_place']} files used in place, "
        f"{report['reused_from_cache']} reused from the cache)"
    ]
    for split, content in report["splits"].items():
        for coarse, stats in content["sources"].items():
            lines.append(
                f"  {split:5s} {coarse:10s} {stats['files']:6d} files {stats['hours']:8.3f} h "
                f"{stats['groups']:5d} groups {len(stats['fine_classes']):4d} fine classes"
            )
        if content["published_mixtures"]:
            lines.append(f"  {split:5s} {content['published_mixtures']} published mixtures")
    lines.append(
        f"skipped {report['skipped_count']} {report['skipped_reasons']}; downmixed "
        f"{report['downmixed_count']}; details in {Path(report['data_dir']) / REPORT_NAME}"
    )
    lines += [f"note: {note}" for note in report["notes"]]
    return lines


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ugr.data.prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus",
        action="append",
        nargs="+",
        required=True,
        metavar="NAME DIR [KEY=VALUE",
        help=f"a corpus to index: registered names {', '.join(registered())}; repeat for several",
    )
    parser.add_argument("--out", required=True, help="data folder to write")
    parser.add_argument("--fs", type=int, required=True, help="sample rate of the prepared audio (Hz)")
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=MIN_SECONDS,
        help="shortest usable recording after resampling (default: %(default)s)",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="redo a folder prepared from other inputs")
    args = parser.parse_args(argv)
    with one_line_errors("prepare", args.out, PrepareError, CorpusLayoutError, ManifestError, RuntimeError):
        report = prepare(
            args.out,
            [CorpusInput.parse(words) for words in args.corpus],
            fs=args.fs,
            jobs=args.jobs,
            min_seconds=args.min_seconds,
            force=args.force,
        )
    if report.get("up_to_date"):
        print(f"[prepare] {report['data_dir']} is prepared from these corpora already; skipping (--force redoes it)")
    for line in summary_lines(report):
        print(f"[prepare] {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
