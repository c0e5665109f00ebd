"""Audio I/O (soundfile), resampling (julius) and segment reads for mixing."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import julius
import numpy as np
import soundfile as sf
import torch

from ugr.io.atomic import atomic_write

SPHERE_SUFFIXES = (".wv1", ".wv2")


# A signal is degenerate (near-constant, "DC") when the power left after removing its mean is at most this
# fraction of its power: its zero-mean content, all that a scale-invariant metric (SI-SDR) and the models see,
# is then 60 dB or more below its offset. 1e-6 sits five orders of magnitude under real recordings with an
# offset (ESC-50 clips whose power is 70-76 % DC keep 24-30 % of it after the mean: 0.24 >> 1e-6) and far
# above what a constant clip keeps (0 as stored; about 1e-13 after julius resamples it, float32 rounding): a
# reference that degenerate scores -130 to -156 dB SI-SDRi, which says nothing about the separation. An
# all-zero signal is degenerate too (0 <= 0), so the rule extends the silent one.
DEGENERATE_RATIO = 1e-6


def zero_mean_fraction(samples: np.ndarray) -> float:
    """The power after removing the mean over the power (float64); 0.0 for an all-zero signal."""
    samples = np.asarray(samples)
    if samples.size == 0:
        return 0.0
    total = float(np.mean(np.square(samples, dtype=np.float64)))
    return float(np.var(samples, dtype=np.float64)) / total if total > 0 else 0.0


def is_degenerate(samples: np.ndarray) -> bool:
    """Near-constant (``DEGENERATE_RATIO``): silent, or one value (DC) up to rounding; such a source is never
    drawn or scored."""
    return zero_mean_fraction(samples) <= DEGENERATE_RATIO


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file and the reason."""


@dataclass(frozen=True)
class LoadedAudio:
    samples: np.ndarray  # float32, (frames,), mono
    sample_rate: int
    channels: int  # channels in the file before the downmix


def sph2pipe_available() -> bool:
    return shutil.which("sph2pipe") is not None


SPH2PIPE_HELP = (
    "WSJ0 ships its audio as shorten-compressed NIST SPHERE (.wv1) which soundfile cannot read. "
    "Put `sph2pipe` on PATH (Kaldi: `cd kaldi/tools && make sph2pipe`; or build it from LDC's "
    "sph2pipe_v2.5 sources) and re-run, or convert the tree yourself: "
    '`find WSJ0 -name \'*.wv1\' | while read f; do sph2pipe -f wav "$f" "${f%.wv1}.wav"; done`.'
)


def load_mono(path: str | os.PathLike) -> LoadedAudio:
    """Read any soundfile-readable file (or SPHERE via sph2pipe), downmixed to mono float32.

    Raises AudioError (never returns garbage) so the caller can count and report the file.
    """
    path = Path(path)
    if path.suffix.lower() in SPHERE_SUFFIXES:
        return _load_sphere(path)
    truncated = wav_truncation(path)
    if truncated:
        raise AudioError(f"{path}: truncated WAV ({truncated}); copy or download the file again")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types for corrupt input
        raise AudioError(f"{path}: unreadable audio ({err})") from err
    channels = data.shape[1]
    samples = data[:, 0] if channels == 1 else data.mean(axis=1, dtype=np.float32)
    return LoadedAudio(np.ascontiguousarray(samples), int(rate), int(channels))


def wav_truncation(path: str | os.PathLike) -> Optional[str]:
    """For a RIFF WAV file that holds less audio than its header declares, how much less; else None.

    soundfile reads what is there without a word, so a file cut short (an
    interrupted copy or download) would pass for a shorter, or silent, or
    empty recording. A data chunk of declared size 0 or 0xFFFFFFFF (written
    while streaming; RF64) has no size to compare.
    """
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        size = os.fstat(handle.fileno()).st_size
        position = 12
        while position + 8 <= size:
            handle.seek(position)
            chunk = handle.read(8)
            declared = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                held = size - position - 8
                if declared in (0, 0xFFFFFFFF) or held >= declared:
                    return None
                return f"its header declares {declared} bytes of audio, the file holds {held}"
            position += 8 + declared + (declared & 1)  # chunks are padded to an even size
    return None


def _load_sphere(path: Path) -> LoadedAudio:
    if not sph2pipe_available():
        raise RuntimeError(f"{path}: {SPH2PIPE_HELP}")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "converted.wav"
        done = subprocess.run(["sph2pipe", "-f", "wav", str(path), str(wav)], capture_output=True, text=True)
        if done.returncode != 0:
            raise AudioError(f"{path}: sph2pipe failed ({done.stderr.strip()})")
        return load_mono(wav)


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling with julius; a no-op when the rates match (julius refuses empty input)."""
    if rate_in == rate_out or samples.size == 0:
        return samples
    common = math.gcd(rate_in, rate_out)
    out = julius.resample_frac(torch.from_numpy(samples), rate_in // common, rate_out // common)
    return out.numpy().astype(np.float32, copy=False)


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int, subtype: str = "FLOAT") -> None:
    """Write atomically. FLOAT by default so resampling overshoot is kept, not clipped."""
    atomic_write(path, lambda handle: sf.write(handle, samples, sample_rate, subtype=subtype, format="WAV"))


def read_segment(path: str | os.PathLike, offset: int, frames: int, total_frames: int) -> np.ndarray:
    """``frames`` samples where output[t] = file[t + offset], zero outside the file.

    A negative offset places a short clip inside the segment (padding in silence);
    only the overlapping part is read from disk.
    """
    out = np.zeros(frames, dtype=np.float32)
    start, stop = max(0, offset), min(total_frames, offset + frames)
    if stop > start:
        chunk, _ = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
        out[start - offset : start - offset + chunk.shape[0]] = chunk[:, 0]
    return out
