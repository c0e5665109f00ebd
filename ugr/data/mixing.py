"""Drawing and rendering two-source mixtures: one settings object for fixed lists and on-the-fly training alike.

One draw, as in the paper: pick a pair of coarse classes by prior (e.g.
``env+env``, ``speech+env``), for each source a group of that class (the two
groups differ: another speaker, another sound class), a file of that group,
a random crop that is neither silent nor near-constant (short files are placed at a random offset
in silence), and an SNR. Rendering scales each crop to unit power, source 1
by the SNR relative to source 2, and sums, so the mixture is exactly the sum
of the sources.

Random streams are keyed by (seed, split, key) (``stream``): mixture i of
the validation list, of the test list and of any training epoch come from
unrelated generators, so the splits share no crop offsets or SNRs by
construction, whatever the worker or process that draws them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf

from .audio import DEGENERATE_RATIO, is_degenerate, read_segment
from .manifest import SPLITS, SourceRow, manifest_path, rate_problem, read_manifest, resolve

# A crop counts as silent when its power is this far below the whole file's power.
SILENT_CROP_RATIO = 1e-2
CROP_TRIES = 10
PAIR_SEPARATOR = "+"


def stream(seed: int, split: str, key: int) -> np.random.Generator:
    """The generator of draw ``key`` of ``split``: independent across splits, keys and seeds."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), int(key)]))


def parse_pair(name: str) -> tuple[str, str]:
    """``"speech+env"`` -> ``("speech", "env")``: the coarse classes of source 1 and source 2."""
    parts = name.split(PAIR_SEPARATOR)
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"mixture type {name!r}: write two coarse classes joined by '+', e.g. speech+env")
    return parts[0], parts[1]


@dataclass(frozen=True)
class MixingSettings:
    """How mixtures are made; built from a config's ``data`` section (``ugr.pipeline.config.DataConfig.mixing_settings``).

    ``priors`` maps pairs of coarse classes to probabilities (normalised);
    ``normalize`` scales each mixture and its sources to unit mixture power.
    """

    sample_rate: int
    segment: float
    snr_range: tuple[float, float]
    priors: tuple[tuple[tuple[str, str], float], ...]
    normalize: bool
    seed: int

    @property
    def segment_frames(self) -> int:
        return int(round(self.segment * self.sample_rate))

    def header(self) -> dict[str, str]:
        """The settings as ``key=value`` words of a list header (so a list says how it was drawn)."""
        return {
            "seed": str(self.seed),
            "sample_rate": str(self.sample_rate),
            "segment_frames": str(self.segment_frames),
            "snr": f"{self.snr_range[0]:g},{self.snr_range[1]:g}",
            "normalize": str(int(self.normalize)),
            "priors": ",".join(f"{a}{PAIR_SEPARATOR}{b}:{p:.6g}" for (a, b), p in self.priors),
        }


@dataclass(frozen=True)
class SourceCrop:
    id: str
    offset: int  # segment sample t is file sample t + offset (negative: padded in front)


@dataclass(frozen=True)
class MixtureSpec:
    sources: tuple[SourceCrop, SourceCrop]
    snr_db: float  # power of source 1 over source 2


class SourcePool:
    """The prepared sources of one split, by coarse class and group."""

    def __init__(self, data_dir: str | os.PathLike, split: str, sample_rate: int) -> None:
        self.data_dir = Path(data_dir)
        self.manifest = manifest_path(data_dir, split)
        self.split = split
        rows = read_manifest(self.manifest)
        problem = rate_problem(self.manifest, (r.sample_rate for r in rows), sample_rate)
        if problem:
            raise ValueError(problem)
        self.by_id: dict[str, SourceRow] = {r.id: r for r in rows}
        self.groups: dict[str, dict[str, list[SourceRow]]] = {}
        for row in sorted(rows, key=lambda r: (r.coarse, r.group, r.id)):
            self.groups.setdefault(row.coarse, {}).setdefault(row.group, []).append(row)
        self.group_names = {coarse: sorted(groups) for coarse, groups in self.groups.items()}
        self._frames: dict[str, int] = {}
        self._rms: dict[str, float] = {}

    def path(self, row: SourceRow) -> Path:
        return resolve(self.data_dir, row.path)

    def frames(self, row: SourceRow) -> int:
        """The row's length: from the manifest, else from the file's header (once)."""
        if row.frames is not None:
            return row.frames
        if row.id not in self._frames:
            try:
                self._frames[row.id] = sf.info(str(self.path(row))).frames
            except (RuntimeError, sf.SoundFileError) as err:
                raise self._unreadable(row, err) from None
        return self._frames[row.id]

    def rms(self, row: SourceRow) -> float:
        """The row's RMS: from the manifest, else computed from the audio (once)."""
        if row.rms is not None:
            return row.rms
        if row.id not in self._rms:
            samples = self.read(row, 0, self.frames(row))
            self._rms[row.id] = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
        return self._rms[row.id]

    def read(self, row: SourceRow, offset: int, frames: int) -> np.ndarray:
        try:
            return read_segment(self.path(row), offset, frames, self.frames(row))
        except (RuntimeError, sf.SoundFileError) as err:
            raise self._unreadable(row, err) from None

    def _unreadable(self, row: SourceRow, err: Exception) -> ValueError:
        """A row whose audio soundfile cannot open: named by manifest and id, as a manifest error is (the data
        contract lets recipes write manifests, so their paths are input too)."""
        path = self.path(row)
        if path.is_file():
            cause = f"unreadable audio ({getattr(err, 'error_string', err)})"
        else:
            cause = "a folder, not an audio file" if path.is_dir() else "no such file"
        return ValueError(
            f"{self.manifest}: row {row.id}: {path}: {cause}; correct the row's path, or prepare the "
            f"data folder again (stage 0)"
        )

    def degenerate(self, row: SourceRow) -> ValueError:
        """A row whose audio has no crop to draw: near-constant (DC) everywhere."""
        return ValueError(
            f"{self.manifest}: row {row.id}: {self.path(row)}: the audio is constant (DC: its power "
            f"after removing the mean is at most {DEGENERATE_RATIO:g} of its power in every crop), so it has "
            f"nothing to separate or score; prepare the data folder again (stage 0 skips such files) "
            f"or drop the row"
        )

    def problem(self, pair: tuple[str, str]) -> Optional[str]:
        """Why this split cannot form mixtures of ``pair``, or None when it can."""
        for coarse in pair:
            if coarse not in self.groups:
                return (
                    f"split {self.split} has no coarse class {coarse!r} (it has: "
                    f"{', '.join(sorted(self.groups)) or 'nothing'})"
                )
        groups = set(self.group_names[pair[0]]) | set(self.group_names[pair[1]])
        if len(groups) < 2:
            return (
                f"split {self.split} has one group ({', '.join(groups)}) for {PAIR_SEPARATOR.join(pair)} "
                f"mixtures, whose two sources must come from different groups (speakers, classes)"
            )
        return None

    def check(self, settings: MixingSettings) -> None:
        """A clear error when this split cannot form a mixture type the settings ask for."""
        for pair, _ in settings.priors:
            problem = self.problem(pair)
            if problem:
                raise ValueError(
                    f"{self.manifest}: {problem}; set the prior {PAIR_SEPARATOR.join(pair)} to 0 or "
                    f"prepare a corpus that has them"
                )


def draw_mixture(
    pool: SourcePool, rng: np.random.Generator, settings: MixingSettings
) -> tuple[MixtureSpec, list[np.ndarray]]:
    """Draw one mixture; returns its spec and the two (unscaled) crops."""
    pairs = [pair for pair, _ in settings.priors]
    pair = pairs[rng.choice(len(pairs), p=[p for _, p in settings.priors])]
    crops: list[SourceCrop] = []
    audio: list[np.ndarray] = []
    used: set[str] = set()
    for coarse in pair:
        candidates = [g for g in pool.group_names[coarse] if g not in used]
        group = candidates[rng.integers(len(candidates))]
        used.add(group)
        files = pool.groups[coarse][group]
        row = files[rng.integers(len(files))]
        offset, samples = _draw_crop(pool, row, rng, settings.segment_frames)
        crops.append(SourceCrop(row.id, offset))
        audio.append(samples)
    snr = float(rng.uniform(settings.snr_range[0], settings.snr_range[1]))
    return MixtureSpec((crops[0], crops[1]), snr), audio


def _draw_crop(pool: SourcePool, row: SourceRow, rng: np.random.Generator, frames: int) -> tuple[int, np.ndarray]:
    """A crop of ``frames`` samples that is not silent and not degenerate (``is_degenerate``: near-constant, e.g.
    the flat part of a clip with an offset), drawn from ``rng`` alone so the same stream gives the same crop.

    Up to ``CROP_TRIES`` random offsets: the first whose power reaches ``SILENT_CROP_RATIO`` of the file's and
    that is not degenerate, else the most powerful non-degenerate one; when every try was silent or
    degenerate, the crop centred on the loudest sample, or if that one is degenerate too, the crop of most
    power after its mean. A file with no such crop (a constant one, which stage 0 skips) is an error naming it.
    """
    length = pool.frames(row)
    if length <= frames:
        offset = -int(rng.integers(0, frames - length + 1))
        samples = pool.read(row, offset, frames)
        if is_degenerate(samples[-offset : -offset + length]):
            raise pool.degenerate(row)
        return offset, samples
    floor = SILENT_CROP_RATIO * pool.rms(row) ** 2
    best: tuple[float, int, np.ndarray] | None = None
    for _ in range(CROP_TRIES):
        offset = int(rng.integers(0, length - frames + 1))
        samples = pool.read(row, offset, frames)
        if is_degenerate(samples):
            continue
        power = float(np.mean(np.square(samples, dtype=np.float64)))
        if power >= floor:
            return offset, samples
        if best is None or power > best[0]:
            best = (power, offset, samples)
    if best is not None:
        return best[1], best[2]
    # Every random crop was digital silence or near-constant: centre the crop on the loudest sample instead.
    whole = pool.read(row, 0, length)
    offset = int(np.clip(np.argmax(np.abs(whole)) - frames // 2, 0, length - frames))
    if is_degenerate(whole[offset : offset + frames]):
        # The crop of most power after removing its mean (sums over every window, in float64).
        values = whole.astype(np.float64)
        sums = np.concatenate([[0.0], np.cumsum(values)])
        squares = np.concatenate([[0.0], np.cumsum(values * values)])
        window_sum = sums[frames:] - sums[:-frames]
        offset = int(np.argmax((squares[frames:] - squares[:-frames]) - window_sum * window_sum / frames))
        if is_degenerate(whole[offset : offset + frames]):
            raise pool.degenerate(row)
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
            raise ValueError("a source crop is digital silence; re-run stage 0 (it drops silent files)")
        scaled.append(crop.astype(np.float64) / np.sqrt(power))
    scaled[0] *= 10.0 ** (snr_db / 20.0)
    sources = np.stack(scaled)
    if normalize:
        sources /= np.sqrt(np.mean(np.square(sources.sum(axis=0))))
    sources = sources.astype(np.float32)
    return sources.sum(axis=0, dtype=np.float32), sources
