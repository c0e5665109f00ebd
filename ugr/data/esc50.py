"""Index ESC-50 in its official layout (``audio/*.wav`` + ``meta/esc50.csv``).

Splits follow the paper: folds 1-4 train; fold 5 split per class into a
validation and a test half, deterministically (files sorted by name, first
half valid). The optional download fetches the public release archive when
the given folder is empty.
"""
from __future__ import annotations

import csv
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections import defaultdict
from pathlib import Path

from .manifest import SourceFile

META_COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
RELEASE_URL = "https://github.com/karolpiczak/ESC-50/archive/master.zip"
TRAIN_FOLDS = (1, 2, 3, 4)
HELDOUT_FOLD = 5


class Esc50LayoutError(ValueError):
    """The folder is not ESC-50's official layout; the message says what to fix."""


def index_esc50(root: str | os.PathLike) -> tuple[list[SourceFile], list[dict]]:
    """Return the indexed files and the counted skips (``{"path", "reason"}``)."""
    root = Path(root).resolve()
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise Esc50LayoutError(
            f"{meta}: missing. --esc50 must point at ESC-50's release folder (with audio/ and meta/esc50.csv)"
        )
    rows = _read_meta(meta)
    audio_dir = root / "audio"
    if not audio_dir.is_dir():
        raise Esc50LayoutError(f"{audio_dir}: missing; ESC-50 keeps its clips in audio/*.wav")
    skips: list[dict] = []
    listed = {row["filename"] for row in rows}
    for path in sorted(audio_dir.iterdir()):
        if path.name not in listed:
            skips.append({"path": str(path), "reason": "not listed in meta/esc50.csv"})
    by_class: dict[str, list[dict]] = defaultdict(list)
    train: list[SourceFile] = []
    for row in rows:
        path = audio_dir / row["filename"]
        if not path.is_file():
            skips.append({"path": str(path), "reason": "listed in meta/esc50.csv but missing from audio/"})
            continue
        if row["fold"] == HELDOUT_FOLD:
            by_class[row["category"]].append(row)
        else:
            train.append(_source(row, path, "train"))
    heldout: list[SourceFile] = []
    for category in sorted(by_class):
        members = sorted(by_class[category], key=lambda r: r["filename"])
        half = len(members) // 2
        for i, row in enumerate(members):
            heldout.append(_source(row, audio_dir / row["filename"], "valid" if i < max(half, 1) else "test"))
    return train + heldout, skips


def _source(row: dict, path: Path, split: str) -> SourceFile:
    return SourceFile(
        id=Path(row["filename"]).stem, corpus="esc50", group=row["category"], fine=row["category"],
        split=split, path=str(path),
    )


def _read_meta(meta: Path) -> list[dict]:
    with meta.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != META_COLUMNS:
            raise Esc50LayoutError(
                f"{meta}: header {reader.fieldnames}, expected {','.join(META_COLUMNS)} (ESC-50's official meta)"
            )
        rows = []
        for line, record in enumerate(reader, start=2):
            if None in record or any(v is None or v == "" for k, v in record.items() if k in ("filename", "fold", "category")):
                raise Esc50LayoutError(f"{meta}:{line}: malformed row {record}; every row needs {','.join(META_COLUMNS)}")
            try:
                fold = int(record["fold"])
            except ValueError:
                raise Esc50LayoutError(f"{meta}:{line}: fold {record['fold']!r} is not an integer 1-5") from None
            if fold not in TRAIN_FOLDS + (HELDOUT_FOLD,):
                raise Esc50LayoutError(f"{meta}:{line}: unknown fold {fold}; ESC-50 has folds 1-5")
            rows.append({**record, "fold": fold})
    if not rows:
        raise Esc50LayoutError(f"{meta}: no rows; expected one row per clip in audio/")
    return rows


def download_esc50(dest: str | os.PathLike, url: str = RELEASE_URL) -> Path:
    """Fetch and unpack the release archive into the (empty) ``dest``; returns ``dest``.

    The archive is unpacked into a temp folder beside ``dest`` and moved in only
    when complete, so an interrupted download never looks like a corpus.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise Esc50LayoutError(f"{dest}: not empty; refusing to download ESC-50 over existing files")
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}.download.") as tmp:
        archive = Path(tmp) / "esc50.zip"
        try:
            with urllib.request.urlopen(url) as response, archive.open("wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as err:
            raise RuntimeError(
                f"downloading ESC-50 from {url} failed ({err}); download it by hand and pass its folder as --esc50"
            ) from err
        unpacked = Path(tmp) / "unpacked"
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(unpacked)
        metas = sorted(unpacked.glob("**/meta/esc50.csv"))
        if not metas:
            raise Esc50LayoutError(f"the archive from {url} has no meta/esc50.csv; is it ESC-50's release?")
        release = metas[0].parent.parent
        for item in sorted(release.iterdir()):
            os.replace(item, dest / item.name)
    return dest
