"""Fixed, seeded mixture lists for validation and test: writing and reading (CLI: ugr.data.mixtures).

Mixture i is drawn from ``SeedSequence([seed, i])`` exactly as training
draws key i, so the same arguments give a byte-identical file. Format: two
``#`` header lines (format tag; the arguments), a column line, then one
tab-separated line per mixture: id, then per source its manifest id, crop
offset in samples (segment sample t = file sample t + offset; negative means
the clip starts inside the segment) and fine class, then the SNR in dB of
source 1 over source 2.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..atomic import atomic_write_text
from .mixing import MixtureSpec, SourceCrop, SourcePool, draw_mixture

FORMAT_TAG = "# ugr-mixture-list v1"
COLUMNS = ["id", "src1", "offset1", "class1", "src2", "offset2", "class2", "snr_db"]


def write_mixture_list(
    data_dir: str | os.PathLike,
    split: str,
    out: str | os.PathLike,
    *,
    num: int,
    seed: int,
    segment: float = 4.0,
    sample_rate: int = 8000,
    snr_range: tuple[float, float] = (-5.0, 5.0),
    priors: dict[str, float] | None = None,
    normalize: bool = False,
) -> Path:
    """Draw ``num`` mixtures of ``split`` and write them atomically to ``out``."""
    if num <= 0:
        raise ValueError(f"--num {num}: must be positive")
    pool = SourcePool(data_dir, split, sample_rate)
    chosen = pool.feasible_priors() if priors is None else pool.check_priors(priors)
    frames = int(round(segment * sample_rate))
    settings = {
        "split": split, "seed": seed, "num": num, "segment_frames": frames, "sample_rate": sample_rate,
        "snr": f"{snr_range[0]:g},{snr_range[1]:g}", "normalize": int(normalize),
        "priors": ",".join(f"{k}:{v:.6g}" for k, v in chosen.items()),
    }
    text = io.StringIO()
    text.write(FORMAT_TAG + "\n")
    text.write("# " + " ".join(f"{k}={v}" for k, v in settings.items()) + "\n")
    text.write("\t".join(COLUMNS) + "\n")
    for index in tqdm(range(num), desc=f"mixtures {split}", unit="mix", mininterval=1.0):
        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        spec, _ = draw_mixture(pool, rng, chosen, frames, snr_range)
        first, second = spec.sources
        text.write(f"{split}{index:06d}\t{first.id}\t{first.offset}\t{first.fine}\t"
                   f"{second.id}\t{second.offset}\t{second.fine}\t{spec.snr_db:.6f}\n")
    atomic_write_text(out, text.getvalue())
    return Path(out)


def read_mixture_list(path: str | os.PathLike) -> tuple[dict, list[tuple[str, MixtureSpec]]]:
    """Return the header settings and (mixture id, spec) pairs; malformed lines are errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no mixture list; write one with python -m ugr.data.mixtures")
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) < 3 or lines[0] != FORMAT_TAG or lines[2].split("\t") != COLUMNS:
        raise ValueError(f"{path}: not a mixture list ({FORMAT_TAG}); regenerate it with python -m ugr.data.mixtures")
    header = dict(item.split("=", 1) for item in lines[1].lstrip("# ").split())
    for key in ("seed", "num", "segment_frames", "sample_rate"):
        header[key] = int(header[key])
    header["normalize"] = bool(int(header["normalize"]))
    specs = []
    for number, line in enumerate(lines[3:], start=4):
        fields = line.split("\t")
        if len(fields) != len(COLUMNS):
            raise ValueError(f"{path}:{number}: {len(fields)} fields, expected {len(COLUMNS)} ({' '.join(COLUMNS)})")
        try:
            spec = MixtureSpec(
                (SourceCrop(fields[1], int(fields[2]), fields[3]), SourceCrop(fields[4], int(fields[5]), fields[6])),
                float(fields[7]),
            )
        except ValueError as err:
            raise ValueError(f"{path}:{number}: {err}") from None
        specs.append((fields[0], spec))
    if len(specs) != header["num"]:
        raise ValueError(f"{path}: {len(specs)} mixtures but the header says {header['num']}; the file is damaged")
    return header, specs
