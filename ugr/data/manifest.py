"""The data contract: what stage 0 writes and everything after it reads.

A prepared data folder holds, per split (``train``, ``valid``, ``test``):

* ``manifests/<split>.tsv``: one row per usable source recording, tab
  separated, with a header line. Required columns: ``id`` (unique, no
  whitespace), ``path`` (relative to the data folder, or absolute),
  ``duration`` (seconds), ``sample_rate`` (Hz, the same for every row of the
  folder), ``group`` (what must differ between the sources of one mixture:
  the speaker, or the recording), ``fine`` and ``coarse`` (class labels: any
  strings without whitespace or ``+``; mixture priors are written over pairs
  of coarse classes, e.g. ``speech+env``, and class weighting's gamma may name
  fine or coarse labels). Optional columns: ``frames`` (exact length; else
  read from the file's header) and ``rms`` (else computed from the audio when
  the file is first drawn). Other columns are ignored.
* optionally ``manifests/<split>_mixtures.tsv``: published, fixed mixtures
  (wsj0-2mix style) with columns ``id``, ``mixture`` (path), ``frames``,
  ``sample_rate`` and, for source k = 1, 2: ``source_k`` (path), ``group_k``,
  ``fine_k``, ``coarse_k``.

The coarse label ``speech`` (``SPEECH``) marks speech sources: the
speech-only metrics (STOI, PESQ) score those alone, whichever corpus they come
from.

Files are mono, at the folder's sample rate, readable by soundfile.
``ugr.data.prepare`` writes such a folder from any registered corpus; a
recipe may also write it by other means.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, Optional

from ugr.io.atomic import atomic_write_text

SPLITS = ("train", "valid", "test")
REQUIRED_COLUMNS = ("id", "path", "duration", "sample_rate", "group", "fine", "coarse")
N_SOURCES = 2
SPEECH = "speech"  # the coarse label of speech sources (the speech-only metrics apply to them)
_BAD_LABEL = re.compile(r"[\s+]")


class ManifestError(ValueError):
    """A manifest that breaks the data contract; the message names the file, the line and the fix."""


def rate_problem(path: str | os.PathLike, rates: Iterable[int], sample_rate: int) -> Optional[str]:
    """The one message for a data file prepared at another rate than the config's; None when they agree."""
    rates = sorted(set(rates))
    if rates == [sample_rate] or not rates:
        return None
    return (
        f"{path}: prepared at {rates} Hz but {sample_rate} Hz was asked (data.sample_rate); prepare the data "
        f"at {sample_rate} Hz (run.sh --fs {sample_rate}) or set data.sample_rate to the data's rate"
    )


def check_label(label: str, what: str) -> str:
    """A class label or id usable in lists and priors: non-empty, no whitespace, no ``+``."""
    if not label or _BAD_LABEL.search(label):
        raise ManifestError(f"{what} {label!r}: labels and ids must be non-empty, without whitespace or '+'")
    return label


@dataclass(frozen=True)
class SourceRow:
    """One prepared source recording (a row of ``manifests/<split>.tsv``)."""

    id: str
    path: str
    duration: float
    sample_rate: int
    group: str
    fine: str
    coarse: str
    frames: Optional[int] = None
    rms: Optional[float] = None


@dataclass(frozen=True)
class MixtureRow:
    """One prepared published mixture (a row of ``manifests/<split>_mixtures.tsv``)."""

    id: str
    mixture: str
    frames: int
    sample_rate: int
    sources: tuple[str, ...]
    groups: tuple[str, ...]
    fines: tuple[str, ...]
    coarses: tuple[str, ...]


def manifest_path(data_dir: str | os.PathLike, split: str) -> Path:
    return Path(data_dir) / "manifests" / f"{split}.tsv"


def mixtures_path(data_dir: str | os.PathLike, split: str) -> Path:
    return Path(data_dir) / "manifests" / f"{split}_mixtures.tsv"


def resolve(data_dir: str | os.PathLike, path: str) -> Path:
    """A manifest path: relative to the data folder, or absolute."""
    return Path(path) if os.path.isabs(path) else Path(data_dir) / path


def _tsv(header: list[str], records: Iterable[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def write_manifest(path: str | os.PathLike, rows: list[SourceRow]) -> None:
    """Writes source rows (with frames and rms) sorted by class, group and id, atomically."""
    header = [f.name for f in fields(SourceRow)]
    records = []
    for row in sorted(rows, key=lambda r: (r.coarse, r.fine, r.group, r.id)):
        record = asdict(row)
        record["duration"] = f"{row.duration:.4f}"
        record["rms"] = "" if row.rms is None else f"{row.rms:.6g}"
        records.append(record)
    atomic_write_text(path, _tsv(header, records))


def write_mixtures(path: str | os.PathLike, rows: list[MixtureRow]) -> None:
    header = ["id", "mixture", "frames", "sample_rate"] + [
        f"{name}_{k}" for k in range(1, N_SOURCES + 1) for name in ("source", "group", "fine", "coarse")
    ]
    records = []
    for row in sorted(rows, key=lambda r: r.id):
        record = {"id": row.id, "mixture": row.mixture, "frames": row.frames, "sample_rate": row.sample_rate}
        for k in range(N_SOURCES):
            record.update(
                {
                    f"source_{k + 1}": row.sources[k],
                    f"group_{k + 1}": row.groups[k],
                    f"fine_{k + 1}": row.fines[k],
                    f"coarse_{k + 1}": row.coarses[k],
                }
            )
        records.append(record)
    atomic_write_text(path, _tsv(header, records))


def _records(path: Path, required: Iterable[str], fix: str) -> list[tuple[int, dict]]:
    """The rows as ``(line, {column: cell})``; a file that is not UTF-8 TSV, or a row with fewer cells than
    the header (a cell would be missing, not empty), is an error naming the line."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest; {fix}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ManifestError(
            f"{path}:{line}: not UTF-8 text ({err.reason} at byte {err.start}); write the manifest in UTF-8"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t")
    try:
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(
                f"{path}: missing column(s) {missing} (has {reader.fieldnames}); "
                f"the data contract needs {list(required)} ({fix})"
            )
        records = []
        for record in reader:
            if None in record.values():
                raise ManifestError(
                    f"{path}:{reader.line_num}: {sum(v is not None for v in record.values())} "
                    f"cell(s), the header has {len(reader.fieldnames)}; write every cell, tab "
                    f"separated"
                )
            records.append((reader.line_num, record))
    except csv.Error as err:
        raise ManifestError(f"{path}:{reader.line_num}: not tab-separated text as csv reads it ({err})") from None
    return records


def _number(record: dict, key: str, kind: type, path: Path, line: int, optional: bool = False):
    value = record.get(key)
    if optional and value in (None, ""):
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ManifestError(f"{path}:{line}: {key}={value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise ManifestError(f"{path}:{line}: {key}={value!r} must be a finite number >= 0")
    return number


def read_manifest(path: str | os.PathLike) -> list[SourceRow]:
    """The source rows of one split; a row that breaks the contract is an error naming its line."""
    path = Path(path)
    rows, seen = [], set()
    for line, record in _records(path, REQUIRED_COLUMNS, "run stage 0 (data preparation) first"):
        try:
            for key in ("id", "group", "fine", "coarse"):
                check_label(record[key] or "", key)
        except ManifestError as err:
            raise ManifestError(f"{path}:{line}: {err}") from None
        if not record["path"]:
            raise ManifestError(
                f"{path}:{line}: empty path; give the audio file, relative to the data folder or absolute"
            )
        if record["id"] in seen:
            raise ManifestError(f"{path}:{line}: id {record['id']} appears twice; ids must be unique")
        seen.add(record["id"])
        rows.append(
            SourceRow(
                id=record["id"],
                path=record["path"],
                duration=_number(record, "duration", float, path, line),
                sample_rate=_number(record, "sample_rate", int, path, line),
                group=record["group"],
                fine=record["fine"],
                coarse=record["coarse"],
                frames=_number(record, "frames", int, path, line, optional=True),
                rms=_number(record, "rms", float, path, line, optional=True),
            )
        )
    return rows


def read_mixtures(path: str | os.PathLike) -> list[MixtureRow]:
    """The published mixtures of one split (``manifests/<split>_mixtures.tsv``)."""
    path = Path(path)
    per_source = ("source", "group", "fine", "coarse")
    required = ["id", "mixture", "frames", "sample_rate"] + [
        f"{n}_{k}" for k in range(1, N_SOURCES + 1) for n in per_source
    ]
    rows = []
    for line, record in _records(path, required, "this corpus has no published mixtures; use eval_from: sources"):

        def each(name: str, record: dict = record) -> tuple[str, ...]:
            return tuple(record[f"{name}_{k}"] for k in range(1, N_SOURCES + 1))

        rows.append(
            MixtureRow(
                id=record["id"],
                mixture=record["mixture"],
                frames=_number(record, "frames", int, path, line),
                sample_rate=_number(record, "sample_rate", int, path, line),
                sources=each("source"),
                groups=each("group"),
                fines=each("fine"),
                coarses=each("coarse"),
            )
        )
    return rows
