"""Fixed evaluation lists (validation, test): the format, writing and reading.

Two kinds, one format (``# ugr-eval-list v2``, then a ``key=value`` header
line, a column line and one tab-separated line per mixture):

* ``drawn``: mixtures drawn from the split's sources by ``MixingSettings``;
  mixture i comes from ``stream(seed, split, i)``, so the same settings give a
  byte-identical file. Columns: id, then per source its manifest id, crop
  offset (segment sample t = file sample t + offset; negative: the clip
  starts inside the segment), fine and coarse class, then the SNR in dB of
  source 1 over source 2.
* ``published``: the first ``num`` published mixtures of the split, used as
  they are (``manifests/<split>_mixtures.tsv``). Column: id.

The header records a fingerprint of the manifest the list was made from: a
list never silently outlives a re-prepared data folder. Lists of the older
format v1 (whose validation and test lists shared their random streams) are
refused.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from ugr.io.atomic import atomic_write_text

from .manifest import manifest_path, mixtures_path, rate_problem, read_mixtures
from .mixing import MixingSettings, MixtureSpec, SourceCrop, SourcePool, draw_mixture, stream

FORMAT_TAG = "# ugr-eval-list v2"
KINDS = ("drawn", "published")
DRAWN_COLUMNS = ["id", "src1", "offset1", "fine1", "coarse1", "src2", "offset2", "fine2", "coarse2", "snr_db"]
PUBLISHED_COLUMNS = ["id"]


# The data settings that define the validation and test mixtures: configs that agree on them share lists.
class StaleListError(ValueError):
    """A list that no longer describes its data folder, or is of an older format; regenerate it (stage 1)."""


def fingerprint(path: Path) -> str:
    """A short hash of a manifest's bytes: the identity of the data a list was drawn from."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class EvalList:
    """A list as read back: its header settings and, per kind, drawn specs or published mixture ids."""

    path: Path
    header: dict
    drawn: list[tuple[str, MixtureSpec]]
    published: list[str]

    @property
    def kind(self) -> str:
        return self.header["kind"]


def write_drawn_list(
    data_dir: str | os.PathLike, split: str, out: str | os.PathLike, *, num: int, settings: MixingSettings
) -> Path:
    """Draws ``num`` mixtures of ``split`` and writes them atomically to ``out``."""
    if num <= 0:
        raise ValueError(f"{num} mixtures asked for the {split} list: must be positive")
    pool = SourcePool(data_dir, split, settings.sample_rate)
    pool.check(settings)
    header = {
        "kind": "drawn",
        "split": split,
        "num": str(num),
        "manifest": fingerprint(pool.manifest),
        **settings.header(),
    }
    text = io.StringIO()
    _write_header(text, header, DRAWN_COLUMNS)
    for index in tqdm(range(num), desc=f"{split} list", unit="mix", mininterval=1.0, disable=None):
        spec, _ = draw_mixture(pool, stream(settings.seed, split, index), settings)
        cells = [f"{split}{index:06d}"]
        for crop in spec.sources:
            row = pool.by_id[crop.id]
            cells += [crop.id, str(crop.offset), row.fine, row.coarse]
        text.write("\t".join(cells + [f"{spec.snr_db:.6f}"]) + "\n")
    return atomic_write_text(out, text.getvalue())


def write_published_list(
    data_dir: str | os.PathLike, split: str, out: str | os.PathLike, *, num: int, sample_rate: int
) -> Path:
    """The first ``num`` published mixtures of ``split`` (in the published order) as a list."""
    path = mixtures_path(data_dir, split)
    rows = read_mixtures(path)
    if num > len(rows):
        raise ValueError(
            f"{path}: {len(rows)} published {split} mixtures, but {num} asked "
            f"(data.{'valid' if split == 'valid' else 'test'}_mixtures); ask at most {len(rows)}"
        )
    problem = rate_problem(path, (row.sample_rate for row in rows), sample_rate)
    if problem:
        raise ValueError(problem)
    header = {
        "kind": "published",
        "split": split,
        "num": str(num),
        "manifest": fingerprint(path),
        "sample_rate": str(sample_rate),
    }
    text = io.StringIO()
    _write_header(text, header, PUBLISHED_COLUMNS)
    text.writelines(f"{row.id}\n" for row in rows[:num])
    return atomic_write_text(out, text.getvalue())


def _write_header(text: io.StringIO, header: dict, columns: list[str]) -> None:
    text.write(FORMAT_TAG + "\n")
    text.write("# " + " ".join(f"{k}={v}" for k, v in header.items()) + "\n")
    text.write("\t".join(columns) + "\n")


def source_manifest(data_dir: str | os.PathLike, header: dict) -> Path:
    """The manifest a list's fingerprint refers to."""
    split = header["split"]
    return manifest_path(data_dir, split) if header["kind"] == "drawn" else mixtures_path(data_dir, split)


def read_eval_list(path: str | os.PathLike, data_dir: Optional[str | os.PathLike] = None) -> EvalList:
    """A list read back; with ``data_dir``, also checked against that folder's manifest (else StaleListError)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no evaluation list; run stage 1 (mixture lists) first")
    lines = path.read_text(encoding="utf-8").splitlines()
    if lines and lines[0].startswith("# ugr-mixture-list"):
        raise StaleListError(
            f"{path}: a list of the older format v1 (its validation and test lists shared their "
            f"random streams); run stage 1 again (python -m ugr.pipeline.lists) to regenerate it"
        )
    if len(lines) < 3 or lines[0] != FORMAT_TAG:
        raise ValueError(f"{path}: not an evaluation list ({FORMAT_TAG}); regenerate it with stage 1")
    header = dict(item.split("=", 1) for item in lines[1].lstrip("# ").split())
    kind = header.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{path}: list kind {kind!r} unknown (expected one of {KINDS})")
    for key in ("num", "sample_rate") + (("seed", "segment_frames", "normalize") if kind == "drawn" else ()):
        header[key] = int(header[key])
    columns = DRAWN_COLUMNS if kind == "drawn" else PUBLISHED_COLUMNS
    if lines[2].split("\t") != columns:
        raise ValueError(f"{path}: columns {lines[2]!r}, expected {' '.join(columns)}; regenerate it with stage 1")
    drawn, published = [], []
    for number, line in enumerate(lines[3:], start=4):
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise ValueError(f"{path}:{number}: {len(fields)} fields, expected {len(columns)} ({' '.join(columns)})")
        if kind == "published":
            published.append(fields[0])
            continue
        try:
            spec = MixtureSpec(
                (SourceCrop(fields[1], int(fields[2])), SourceCrop(fields[5], int(fields[6]))), float(fields[9])
            )
        except ValueError as err:
            raise ValueError(f"{path}:{number}: {err}") from None
        drawn.append((fields[0], spec))
    if len(drawn) + len(published) != header["num"]:
        raise ValueError(
            f"{path}: {len(drawn) + len(published)} mixtures but the header says {header['num']}; "
            f"the file is damaged: regenerate it with stage 1"
        )
    if data_dir is not None:
        manifest = source_manifest(data_dir, header)
        if not manifest.is_file() or fingerprint(manifest) != header["manifest"]:
            raise StaleListError(
                f"{path}: written for another version of {manifest} (the data folder was "
                f"prepared again); run stage 1 again to regenerate the list"
            )
    return EvalList(path, header, drawn, published)
