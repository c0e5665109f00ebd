"""Prepare WSJ0 and/or ESC-50 for the recipe (stage 0).

Indexes the corpora, resamples every usable file once to the recipe's rate
(cached under ``OUT/audio``; a re-run reuses files newer than their source),
writes ``OUT/manifests/{train,valid,test}.tsv`` and ``OUT/prepare_report.json``
(counts, every skipped file with its reason, every downmixed file).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from ..atomic import atomic_write_text
from .audio import SPHERE_SUFFIXES, AudioError, load_mono, resample, write_wav
from .esc50 import RELEASE_URL, download_esc50, index_esc50
from .manifest import SPLITS, ManifestRow, SourceFile, coarse_class, manifest_path, write_manifest
from .wsj0 import index_wsj0

REPORT_NAME = "prepare_report.json"


@dataclass(frozen=True)
class _Task:
    source: SourceFile
    cached: str
    relative: str
    sample_rate: int


@dataclass(frozen=True)
class _Outcome:
    row: ManifestRow | None
    skip_reason: str | None
    downmixed_from: int | None
    reused: bool


def prepare(
    out: str | os.PathLike,
    *,
    wsj0: str | os.PathLike | None = None,
    esc50: str | os.PathLike | None = None,
    sample_rate: int = 8000,
    jobs: int = 1,
    esc50_url: str = RELEASE_URL,
) -> dict:
    """Build the data folder; returns the report (also written to ``out/prepare_report.json``)."""
    if wsj0 is None and esc50 is None:
        raise ValueError("give --wsj0 and/or --esc50 (or build the mini corpus: python -m ugr.data.minicorpus --out DIR)")
    out = Path(out).resolve()
    sources: list[SourceFile] = []
    skips: list[dict] = []
    if wsj0 is not None:
        found, skipped = index_wsj0(wsj0)
        sources += found
        skips += skipped
    if esc50 is not None:
        esc50 = Path(esc50)
        if not esc50.exists() or (esc50.is_dir() and not any(esc50.iterdir())):
            print(f"[prepare] {esc50} is empty: downloading ESC-50 from {esc50_url}", flush=True)
            download_esc50(esc50, esc50_url)
        found, skipped = index_esc50(esc50)
        sources += found
        skips += skipped
    tasks = [_task(out, s, sample_rate) for s in sources]
    outcomes = _run(tasks, jobs)
    rows: list[ManifestRow] = []
    downmixed: list[dict] = []
    reused = 0
    for task, outcome in zip(tasks, outcomes):
        if outcome.skip_reason is not None:
            skips.append({"path": task.source.path, "reason": outcome.skip_reason})
            continue
        rows.append(outcome.row)
        reused += outcome.reused
        if outcome.downmixed_from:
            downmixed.append({"path": task.source.path, "channels": outcome.downmixed_from})
    report = _report(out, rows, skips, downmixed, reused, sample_rate, wsj0, esc50)
    for split in SPLITS:
        write_manifest(manifest_path(out, split), [r for r in rows if r.split == split])
    atomic_write_text(out / REPORT_NAME, json.dumps(report, indent=2) + "\n")
    return report


def _task(out: Path, source: SourceFile, sample_rate: int) -> _Task:
    relative = f"audio/{source.corpus}/{source.split}/{source.group}/{source.id}.wav"
    return _Task(source, str(out / relative), relative, sample_rate)


def _run(tasks: list[_Task], jobs: int) -> list[_Outcome]:
    progress = dict(total=len(tasks), desc="prepare", unit="file", mininterval=1.0)
    if jobs <= 1:
        return [_convert(t) for t in tqdm(tasks, **progress)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(tqdm(pool.map(_convert, tasks, chunksize=16), **progress))


def _convert(task: _Task) -> _Outcome:
    """Resample one file into the cache (or reuse it) and describe it for the manifest."""
    source, cached = task.source, Path(task.cached)
    channels = None
    reused = _cache_is_fresh(cached, Path(source.path), task.sample_rate)
    if reused:
        samples = sf.read(str(cached), dtype="float32")[0]
        channels = _channels_of(Path(source.path))
    else:
        try:
            loaded = load_mono(source.path)
        except AudioError as err:
            return _Outcome(None, str(err), None, False)
        if loaded.samples.size == 0:
            return _Outcome(None, "empty audio (0 frames)", None, False)
        if not np.isfinite(loaded.samples).all():
            return _Outcome(None, "non-finite samples (NaN/inf)", None, False)
        if not np.any(loaded.samples):
            return _Outcome(None, "silent (all samples are zero)", None, False)
        channels = loaded.channels if loaded.channels > 1 else None
        samples = resample(loaded.samples, loaded.sample_rate, task.sample_rate)
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_wav(cached, samples, task.sample_rate)
    row = ManifestRow(
        id=source.id, corpus=source.corpus, group=source.group, fine=source.fine,
        coarse=coarse_class(source.fine), split=source.split, frames=int(samples.size),
        duration=samples.size / task.sample_rate, sample_rate=task.sample_rate,
        rms=float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))), path=task.relative,
    )
    return _Outcome(row, None, channels, reused)


def _channels_of(original: Path) -> int | None:
    """Channel count of a reused file's original, so re-runs report downmixes too (SPHERE is mono)."""
    if original.suffix.lower() in SPHERE_SUFFIXES:
        return None
    channels = sf.info(str(original)).channels
    return channels if channels > 1 else None


def _cache_is_fresh(cached: Path, original: Path, sample_rate: int) -> bool:
    if not cached.is_file() or cached.stat().st_mtime < original.stat().st_mtime:
        return False
    try:
        return sf.info(str(cached)).samplerate == sample_rate
    except RuntimeError:
        return False


def _report(out, rows, skips, downmixed, reused, sample_rate, wsj0, esc50) -> dict:
    splits: dict = defaultdict(dict)
    for split in SPLITS:
        for corpus in ("wsj0", "esc50"):
            chosen = [r for r in rows if r.split == split and r.corpus == corpus]
            if chosen:
                splits[split][corpus] = {
                    "files": len(chosen),
                    "hours": round(sum(r.duration for r in chosen) / 3600, 4),
                    "groups": len({r.group for r in chosen}),
                }
    return {
        "data_dir": str(out),
        "sample_rate": sample_rate,
        "inputs": {"wsj0": str(wsj0) if wsj0 else None, "esc50": str(esc50) if esc50 else None},
        "prepared": len(rows),
        "reused_from_cache": reused,
        "splits": dict(splits),
        "skipped_count": len(skips),
        "skipped_reasons": dict(Counter(_reason_kind(s["reason"]) for s in skips)),
        "skipped": skips,
        "downmixed_count": len(downmixed),
        "downmixed": downmixed,
    }


def _reason_kind(reason: str) -> str:
    """Group per-file reasons for the summary (drop the file-specific tail)."""
    return reason.split(" (")[0].split(": ")[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ugr.data.prepare",
        description="Index WSJ0 and/or ESC-50, resample once to the recipe's rate (cached), write per-split "
        "manifests and a preparation report into OUT.",
    )
    parser.add_argument("--wsj0", help="WSJ0 tree (si_tr_s/si_dt_05/si_et_05) or wsj0-2mix folder (tr/cv/tt with s1/s2)")
    parser.add_argument("--esc50", help="ESC-50 release folder (audio/ + meta/esc50.csv); an empty folder is downloaded into")
    parser.add_argument("--esc50-url", default=RELEASE_URL, help="archive to download when --esc50 is empty (default: %(default)s)")
    parser.add_argument("--out", required=True, help="data folder to write (audio cache, manifests, report)")
    parser.add_argument("--sample-rate", type=int, default=8000, help="recipe sample rate in Hz (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel worker processes (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.wsj0 is None and args.esc50 is None:
        parser.error("give --wsj0 and/or --esc50 (no corpus? build one: python -m ugr.data.minicorpus --out DIR)")
    try:
        report = prepare(args.out, wsj0=args.wsj0, esc50=args.esc50, sample_rate=args.sample_rate,
                         jobs=args.jobs, esc50_url=args.esc50_url)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        parser.exit(2, f"error: {err}\n")
    print(f"[prepare] {report['prepared']} files ({report['reused_from_cache']} reused from cache) at "
          f"{report['sample_rate']} Hz into {report['data_dir']}")
    for split, corpora in report["splits"].items():
        for corpus, stats in corpora.items():
            print(f"[prepare]   {split:5s} {corpus:5s} {stats['files']:6d} files {stats['hours']:8.3f} h {stats['groups']:4d} groups")
    print(f"[prepare] skipped {report['skipped_count']} {report['skipped_reasons']}; downmixed {report['downmixed_count']}; "
          f"details in {Path(report['data_dir']) / REPORT_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
