"""Per-split manifests of prepared (resampled, cached) source files.

A manifest is a TSV with a header; one row per usable file. ``group`` is the unit
that must differ between the two sources of a mixture: the speaker for WSJ0,
the category for ESC-50. ``fine`` is the class label used for class-biased
weighting: ``speech`` for every WSJ0 file, the ESC-50 category otherwise.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..atomic import atomic_write_text

SPLITS = ("train", "valid", "test")
CORPORA = ("wsj0", "esc50")


def coarse_class(fine: str) -> str:
    """Map a fine label to the paper's two coarse classes."""
    return "speech" if fine == "speech" else "env"


@dataclass(frozen=True)
class SourceFile:
    """One indexed input file, before preparation."""

    id: str
    corpus: str
    group: str
    fine: str
    split: str
    path: str  # absolute path of the original file


@dataclass(frozen=True)
class ManifestRow:
    id: str
    corpus: str
    group: str
    fine: str
    coarse: str
    split: str
    frames: int
    duration: float
    sample_rate: int
    rms: float
    path: str  # relative to the data folder


_COLUMNS = [f.name for f in fields(ManifestRow)]
_TYPES = {f.name: f.type for f in fields(ManifestRow)}


def manifest_path(data_dir: str | os.PathLike, split: str) -> Path:
    return Path(data_dir) / "manifests" / f"{split}.tsv"


def write_manifest(path: str | os.PathLike, rows: list[ManifestRow]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: (r.corpus, r.group, r.id)):
        record = asdict(row)
        record["duration"] = f"{row.duration:.4f}"
        record["rms"] = f"{row.rms:.6g}"
        writer.writerow(record)
    atomic_write_text(path, buffer.getvalue())


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no manifest; run `python -m ugr.data.prepare --out {path.parent.parent} ...` first"
        )
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if reader.fieldnames != _COLUMNS:
            raise ValueError(f"{path}: columns {reader.fieldnames}, expected {_COLUMNS}; re-run ugr.data.prepare")
        rows = []
        for record in reader:
            converted = {k: (int(v) if _TYPES[k] == "int" else float(v) if _TYPES[k] == "float" else v)
                         for k, v in record.items()}
            rows.append(ManifestRow(**converted))
    return rows
