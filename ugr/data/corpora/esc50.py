"""ESC-50 in its official layout (``audio/*.wav`` + ``meta/esc50.csv``).

Splits follow the paper: folds 1-4 train; fold 5 split per class into a
validation and a test half, deterministically (files sorted by name, first
half valid). Labels: fine class = the ESC-50 category, coarse class ``env``;
group = the category, so the two clips of an env+env mixture are of
different categories (the paper's rule). Option ``download=true`` fetches the
public release archive (about 600 MB) into a missing or empty folder; an
existing empty folder is downloaded into without it.
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

from . import CorpusLayoutError, Index, SourceFile, register, take_options

META_COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
RELEASE_URL = "https://github.com/karolpiczak/ESC-50/archive/master.zip"
TRAIN_FOLDS = (1, 2, 3, 4)
HELDOUT_FOLD = 5
ENV = "env"
LICENCE = {
    "title": "ESC-50: Dataset for Environmental Sound Classification",
    "title_link": "https://github.com/karolpiczak/ESC-50",
    "author": "Karol J. Piczak",
    "author_link": "https://github.com/karolpiczak",
    "license": "CC BY-NC 3.0",
    "license_link": "https://creativecommons.org/licenses/by-nc/3.0/",
    "non_commercial": True,
}


@register("esc50", LICENCE)
def index_esc50(root: Path, *, fs: int, **options: str) -> Index:
    settings = take_options(options, {"download": "false", "url": RELEASE_URL}, "esc50")
    if settings["download"] not in ("true", "false"):
        raise CorpusLayoutError(f"corpus esc50: download={settings['download']!r}; use true or false")
    empty = root.is_dir() and not any(root.iterdir())
    if empty or (settings["download"] == "true" and not root.exists()):
        print(f"[prepare] {root} is empty: downloading ESC-50 from {settings['url']}", flush=True)
        download_esc50(root, settings["url"])
    elif not root.exists():
        raise CorpusLayoutError(
            f"{root}: no such folder (corpus esc50); check the path, or download ESC-50 "
            f"(about 600 MB) into it with download=true (run.sh --download true)"
        )
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise CorpusLayoutError(
            f"{meta}: missing. --esc50 must point at ESC-50's release folder (with audio/ and meta/esc50.csv)"
        )
    rows = _read_meta(meta)
    audio_dir = root / "audio"
    if not audio_dir.is_dir():
        raise CorpusLayoutError(f"{audio_dir}: missing; ESC-50 keeps its clips in audio/*.wav")
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
    return Index(sources=train + heldout, skips=skips)


def _source(row: dict, path: Path, split: str) -> SourceFile:
    category = row["category"]
    return SourceFile(
        id=Path(row["filename"]).stem, path=str(path), split=split, group=category, fine=category, coarse=ENV
    )


def _read_meta(meta: Path) -> list[dict]:
    with meta.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != META_COLUMNS:
            raise CorpusLayoutError(
                f"{meta}: header {reader.fieldnames}, expected {','.join(META_COLUMNS)} (ESC-50's official meta)"
            )
        rows = []
        for line, record in enumerate(reader, start=2):
            if None in record or any(
                v is None or v == "" for k, v in record.items() if k in ("filename", "fold", "category")
            ):
                raise CorpusLayoutError(
                    f"{meta}:{line}: malformed row {record}; every row needs {','.join(META_COLUMNS)}"
                )
            try:
                fold = int(record["fold"])
            except ValueError:
                raise CorpusLayoutError(f"{meta}:{line}: fold {record['fold']!r} is not an integer 1-5") from None
            if fold not in TRAIN_FOLDS + (HELDOUT_FOLD,):
                raise CorpusLayoutError(f"{meta}:{line}: unknown fold {fold}; ESC-50 has folds 1-5")
            rows.append({**record, "fold": fold})
    if not rows:
        raise CorpusLayoutError(f"{meta}: no rows; expected one row per clip in audio/")
    return rows


def download_esc50(dest: str | os.PathLike, url: str = RELEASE_URL) -> Path:
    """Fetch and unpack the release archive into the (empty) ``dest``; returns ``dest``.

    The archive is unpacked into a temp folder beside ``dest`` and moved in only
    when complete, so an interrupted download never looks like a corpus.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise CorpusLayoutError(f"{dest}: not empty; refusing to download ESC-50 over existing files")
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
            raise CorpusLayoutError(f"the archive from {url} has no meta/esc50.csv; is it ESC-50's release?")
        release = metas[0].parent.parent
        for item in sorted(release.iterdir()):
            os.replace(item, dest / item.name)
    return dest
