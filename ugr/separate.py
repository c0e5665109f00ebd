"""Separate your own recordings with a trained experiment.

    ugr-separate --exp-dir egs/wsj0_esc50/exp/baseline_cpu --out separated/ a.wav b.flac

Each input is read with soundfile (wav, flac, ogg, mp3...), mixed down to
mono if it has several channels, resampled to the model's rate, separated,
resampled back to its own rate, and written as ``OUT/<name>_s1.wav``,
``OUT/<name>_s2.wav``... (one file per estimated source, 16-bit). Every input
is checked before any separation starts, so a typo in the last file name does
not waste the time spent on the first ones.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional, Sequence

import julius
import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from ugr.checkpoints import load_experiment
from ugr.cli import one_line_errors
from ugr.data.audio import write_wav


class InputError(ValueError):
    """An input file that cannot be separated; the message names it and the fix."""


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    """The file's samples as float32 mono, and its sample rate."""
    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise InputError(f"{path}: not a readable audio file ({err}); convert it to wav or flac") from err
    if audio.shape[0] == 0:
        raise InputError(f"{path}: the file holds no samples")
    return audio.mean(axis=1), rate


def resample(signal: torch.Tensor, old_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (julius); identity when the rates agree."""
    return signal if old_rate == new_rate else julius.resample_frac(signal, old_rate, new_rate)


def separate_signal(model: torch.nn.Module, mixture: np.ndarray, rate: int, model_rate: int) -> np.ndarray:
    """(T,) mixture at ``rate`` -> (n_src, T) estimates at the same rate and length."""
    x = resample(torch.from_numpy(mixture), rate, model_rate)
    with torch.inference_mode():
        est = model(x.unsqueeze(0))[0]
    est = resample(est, model_rate, rate)
    length = mixture.shape[0]
    if est.shape[-1] < length:
        est = torch.nn.functional.pad(est, (0, length - est.shape[-1]))
    return est[..., :length].numpy()


def output_paths(path: Path, out_dir: Path, n_src: int) -> List[Path]:
    return [out_dir / f"{path.stem}_s{i + 1}.wav" for i in range(n_src)]


def _write(path: Path, signal: np.ndarray, rate: int) -> None:
    """16-bit wav, peak-limited so that a loud estimate clips nothing, written atomically."""
    peak = float(np.abs(signal).max())
    if peak > 0.99:
        signal = signal * (0.99 / peak)
    write_wav(path, signal, rate, subtype="PCM_16")


def separate_files(exp_dir: Path, inputs: Sequence[Path], out_dir: Path, *, checkpoint: Optional[Path] = None,
                   average_last: Optional[int] = None, progress: bool = True) -> List[Path]:
    """Separates every input; returns the written files. All inputs are validated first."""
    if not inputs:
        raise InputError("no input files given; pass one or more audio files")
    names = [Path(p).stem for p in inputs]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise InputError(f"several inputs are named {', '.join(clashes)}: their outputs would overwrite each other; "
                         f"rename them or separate them into different --out folders")
    audio = [read_mono(Path(p)) for p in inputs]
    cfg, model, _ = load_experiment(exp_dir, checkpoint=checkpoint, average_last=average_last)
    model_rate = cfg["data"]["sample_rate"]
    out_dir.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    for path, (mixture, rate) in tqdm(list(zip(inputs, audio)), desc="separate", unit="file", disable=not progress):
        estimates = separate_signal(model, mixture, rate, model_rate)
        for target, estimate in zip(output_paths(Path(path), out_dir, len(estimates)), estimates):
            _write(target, estimate, rate)
            written.append(target)
    return written


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ugr-separate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", type=Path, help="audio files to separate (any sample rate)")
    parser.add_argument("--exp-dir", required=True, type=Path, help="trained experiment folder (has config.yaml)")
    parser.add_argument("--out", required=True, type=Path, help="folder for the separated wav files")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--average-last", type=int, metavar="K",
                       help="average the last K epoch checkpoints (default: the config's scoring.average_last_k)")
    which.add_argument("--checkpoint", type=Path, help="use this one checkpoint (e.g. checkpoints/best.ckpt)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    with one_line_errors("ugr-separate", args.out, InputError, ValueError):
        written = separate_files(args.exp_dir, args.inputs, args.out, checkpoint=args.checkpoint,
                                 average_last=args.average_last, progress=not args.no_progress)
    print(f"ugr-separate: wrote {len(written)} files to {args.out}")


if __name__ == "__main__":
    main()
