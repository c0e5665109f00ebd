"""Small WSJ0/ESC-50 trees for the data tests (written with soundfile, a few KB each); no tests here."""

from __future__ import annotations

import csv
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

ESC_CATEGORIES = ("dog", "rain", "siren")


def tone(seconds: float, rate: int, seed: int, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frames = int(seconds * rate)
    t = np.arange(frames) / rate
    signal = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t) + 0.05 * rng.standard_normal(frames)
    signal = signal.astype(np.float32)
    return signal if channels == 1 else np.stack([signal] * channels, axis=1)


def make_wsj0(root: Path, speakers: dict[str, list[str]], per_speaker: int = 2, rate: int = 16000) -> Path:
    """speakers: set name (si_tr_s...) -> speaker ids; utterances of 2-5 s."""
    for set_name, ids in speakers.items():
        for spk in ids:
            for u in range(per_speaker):
                path = root / "wsj0" / set_name / spk / f"{spk}c010{u}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, tone(2.0 + u * 1.5, rate, zlib.crc32(f"{spk}{u}".encode())), rate)
    return root / "wsj0"


def make_esc50(root: Path, clips_per_fold: int = 2, rate: int = 44100, seconds: float = 1.0) -> Path:
    """Official layout with every category in every fold (short clips keep the test fast)."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    rows = []
    for target, category in enumerate(ESC_CATEGORIES):
        for fold in range(1, 6):
            for take in range(clips_per_fold):
                name = f"{fold}-{1000 + target * 100 + take}-{'AB'[take]}-{target}.wav"
                sf.write(root / "audio" / name, tone(seconds, rate, target * 100 + fold * 10 + take), rate)
                rows.append([name, fold, target, category, "False", 1000 + target, "AB"[take]])
    write_meta(root, rows)
    return root


def write_meta(root: Path, rows: list[list], header: list[str] | None = None) -> None:
    with (root / "meta" / "esc50.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header or ["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        writer.writerows(rows)
