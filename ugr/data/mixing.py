"""Drawing and rendering two-source mixtures, shared by on-the-fly training data and fixed lists.

One draw, as in the paper: pick a mixture type by prior, a speaker/class for
each source (different when both come from the same corpus), a file of that
group, a random crop that is not silent (short files are placed at a random
offset in silence), and an SNR. Rendering scales each crop to unit power
(mean square 1 over the segment), scales source 1 by the SNR relative to
source 2, and sums, so the mixture is exactly the sum of the sources.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import read_segment
from .manifest import ManifestRow, coarse_class, manifest_path, read_manifest

MIXTURE_TYPES: dict[str, tuple[str, str]] = {
    "speech+speech": ("speech", "speech"),
    "env+env": ("env", "env"),
    "speech+env": ("speech", "env"),
}
# A crop counts as silent when its power is this far below the whole file's power.
SILENT_CROP_RATIO = 1e-2
CROP_TRIES = 10


@dataclass(frozen=True)
class SourceCrop:
    id: str
    offset: int  # segment sample t is file sample t + offset (negative: padded in front)
    fine: str


@dataclass(frozen=True)
class MixtureSpec:
    sources: tuple[SourceCrop, SourceCrop]
    snr_db: float  # power of source 1 over source 2


def parse_priors(items: list[str]) -> dict[str, float]:
    """``["env+env=1", "speech+env=0.5"]`` -> dict; rejects unknown types and bad weights."""
    priors: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"prior {item!r}: write TYPE=WEIGHT, e.g. env+env=1")
        try:
            priors[name] = float(value)
        except ValueError:
            raise ValueError(f"prior {item!r}: weight {value!r} is not a number") from None
    return priors


class SourcePool:
    """The prepared files of one split, grouped by coarse class and speaker/category."""

    def __init__(self, data_dir: str | os.PathLike, split: str, sample_rate: int) -> None:
        self.data_dir = Path(data_dir)
        path = manifest_path(data_dir, split)
        rows = read_manifest(path)
        rates = {r.sample_rate for r in rows}
        if rates - {sample_rate}:
            raise ValueError(
                f"{path}: prepared at {sorted(rates)} Hz but {sample_rate} Hz was asked; "
                f"re-run ugr.data.prepare with --sample-rate {sample_rate} or use that rate"
            )
        self.manifest = path
        self.split = split
        self.by_id: dict[str, ManifestRow] = {r.id: r for r in rows}
        self.groups: dict[str, dict[str, list[ManifestRow]]] = {"speech": {}, "env": {}}
        for row in sorted(rows, key=lambda r: (r.group, r.id)):
            self.groups[row.coarse].setdefault(row.group, []).append(row)
        self.group_names = {coarse: sorted(groups) for coarse, groups in self.groups.items()}

    def read(self, row: ManifestRow, offset: int, frames: int) -> np.ndarray:
        return read_segment(self.data_dir / row.path, offset, frames, row.frames)

    def check_priors(self, priors: dict[str, float]) -> dict[str, float]:
        """Normalised priors, or a clear error when the split cannot form a requested type."""
        unknown = set(priors) - set(MIXTURE_TYPES)
        if unknown:
            raise ValueError(f"unknown mixture type(s) {sorted(unknown)}; choose from {list(MIXTURE_TYPES)}")
        if any(p < 0 for p in priors.values()) or sum(priors.values()) <= 0:
            raise ValueError(f"priors {priors}: weights must be >= 0 with a positive sum")
        for name, weight in priors.items():
            if weight == 0:
                continue
            need = {c: MIXTURE_TYPES[name].count(c) for c in MIXTURE_TYPES[name]}
            for coarse, count in need.items():
                have = len(self.group_names[coarse])
                if have < count:
                    unit = "speaker" if coarse == "speech" else "sound class"
                    raise ValueError(
                        f"{self.manifest}: split {self.split} has {have} {unit}(s) but {name} mixtures need {count}; "
                        f"set the prior {name}=0 or prepare a corpus with more {unit}s"
                    )
        total = sum(priors.values())
        return {name: priors[name] / total for name in MIXTURE_TYPES if priors.get(name, 0) > 0}

    def feasible_priors(self) -> dict[str, float]:
        """Uniform over the mixture types this split can form."""
        ok = {}
        for name, kinds in MIXTURE_TYPES.items():
            if all(len(self.group_names[c]) >= kinds.count(c) for c in kinds):
                ok[name] = 1.0
        if not ok:
            raise ValueError(f"{self.manifest}: split {self.split} has no files to mix")
        return self.check_priors(ok)


def draw_mixture(
    pool: SourcePool, rng: np.random.Generator, priors: dict[str, float], segment_frames: int,
    snr_range: tuple[float, float],
) -> tuple[MixtureSpec, list[np.ndarray]]:
    """Draw one mixture; returns its spec and the two (unscaled) crops."""
    names = list(priors)
    kinds = MIXTURE_TYPES[names[rng.choice(len(names), p=[priors[n] for n in names])]]
    crops: list[SourceCrop] = []
    audio: list[np.ndarray] = []
    used: set[str] = set()
    for coarse in kinds:
        candidates = [g for g in pool.group_names[coarse] if g not in used]
        group = candidates[rng.integers(len(candidates))]
        used.add(group)
        files = pool.groups[coarse][group]
        row = files[rng.integers(len(files))]
        offset, samples = _draw_crop(pool, row, rng, segment_frames)
        crops.append(SourceCrop(row.id, offset, row.fine))
        audio.append(samples)
    snr = float(rng.uniform(snr_range[0], snr_range[1]))
    return MixtureSpec((crops[0], crops[1]), snr), audio


def _draw_crop(pool: SourcePool, row: ManifestRow, rng: np.random.Generator, frames: int) -> tuple[int, np.ndarray]:
    if row.frames <= frames:
        offset = -int(rng.integers(0, frames - row.frames + 1))
        return offset, pool.read(row, offset, frames)
    floor = SILENT_CROP_RATIO * row.rms**2
    best: tuple[float, int, np.ndarray] | None = None
    for _ in range(CROP_TRIES):
        offset = int(rng.integers(0, row.frames - frames + 1))
        samples = pool.read(row, offset, frames)
        power = float(np.mean(np.square(samples, dtype=np.float64)))
        if power >= floor:
            return offset, samples
        if best is None or power > best[0]:
            best = (power, offset, samples)
    if best[0] > 0:
        return best[1], best[2]
    # Every random crop was digital silence: centre the crop on the loudest sample instead.
    whole = pool.read(row, 0, row.frames)
    offset = int(np.clip(np.argmax(np.abs(whole)) - frames // 2, 0, row.frames - frames))
    return offset, whole[offset : offset + frames].copy()


def render(crops: list[np.ndarray], snr_db: float, normalize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Unit-power sources, source 1 at ``snr_db`` over source 2; returns (mixture (T,), sources (2, T)).

    Computed in float64 and cast once, so the achieved SNR matches the drawn one;
    the mixture is summed from the float32 sources, so it equals their sum exactly.
    ``normalize`` scales all of them by one factor so the mixture has unit power.
    """
    scaled = []
    for crop in crops:
        power = np.mean(np.square(crop, dtype=np.float64))
        if power == 0:
            raise ValueError("a source crop is digital silence; re-run ugr.data.prepare (it drops silent files)")
        scaled.append(crop.astype(np.float64) / np.sqrt(power))
    scaled[0] *= 10.0 ** (snr_db / 20.0)
    sources = np.stack(scaled)
    if normalize:
        sources /= np.sqrt(np.mean(np.square(sources.sum(axis=0))))
    sources = sources.astype(np.float32)
    return sources.sum(axis=0, dtype=np.float32), sources


def coarse_labels(fine: list[str]) -> list[str]:
    return [coarse_class(f) for f in fine]
