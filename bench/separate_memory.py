#!/usr/bin/env python
"""Peak memory of ugr-separate on a long recording against a short one: it must not grow with the length.

Both runs separate one file (stereo, 16-bit, at --rate, downmixed and
resampled to the model's 8 kHz, in chunks) with an experiment of random
weights of the --model config, through ``ugr.pipeline.separate.separate_files`` (model
loading included), each in a fresh process: see ``peak_memory.py`` (the rise
of VmHWM over the idle process, fixed glibc mmap threshold). Target: the long
file's peak within 1.3x the short file's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from peak_memory import run_probe, step_peak_bytes

from ugr.pipeline import checkpoints, config, separate
from ugr.pipeline.experiment_dir import ExperimentDir
from ugr.separation.models import CPU_PRESET

CONF = Path(__file__).resolve().parents[1] / "egs" / "wsj0_esc50" / "conf" / "gpu" / "base_gpu.yaml"
MODELS = {"default": {}, "cpu_preset": CPU_PRESET}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        choices=list(MODELS),
        default="default",
        help="default: the paper's Sudo rm -rf (2.58 M parameters); cpu_preset (default: %(default)s)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        nargs=2,
        default=[1.0, 6.0],
        metavar=("SHORT", "LONG"),
        help="lengths of the two recordings (default: %(default)s)",
    )
    parser.add_argument("--rate", type=int, default=16000, help="the recordings' sample rate (default: %(default)s)")
    parser.add_argument("--chunk-seconds", type=float, default=separate.DEFAULT_CHUNK_SECONDS)
    parser.add_argument("--hop-seconds", type=float, default=separate.DEFAULT_HOP_SECONDS)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument(
        "--probes", type=int, default=1, help="fresh processes per length, median (default: %(default)s)"
    )
    parser.add_argument("--memory-probe", nargs=2, metavar=("EXP", "WAV"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def make_experiment(folder: Path, model: str) -> Path:
    """An experiment folder ugr-separate accepts: the recipe's config and one epoch of random weights."""
    record = config.load(CONF).to_dict()
    record["model"].update(MODELS[model])
    record["scoring"]["average_last_k"] = 1
    cfg = config.validate(record, where=f"{CONF} with the {model} model")
    ExperimentDir(folder).save_config(cfg)
    torch.manual_seed(0)
    state = cfg.model.build().state_dict()
    checkpoints.atomic_torch_save(
        {"state_dict": {f"model.{k}": v for k, v in state.items()}}, ExperimentDir(folder).checkpoints / "epoch=0.ckpt"
    )
    return folder


def make_recording(path: Path, minutes: float, rate: int) -> Path:
    """Stereo noise with a slow envelope, written in blocks (the benchmark's parent stays small too)."""
    rng = np.random.default_rng(0)
    frames, block = int(minutes * 60 * rate), 60 * rate
    with sf.SoundFile(path, "w", samplerate=rate, channels=2, subtype="PCM_16") as out:
        for start in range(0, frames, block):
            n = min(block, frames - start)
            envelope = 0.5 + 0.4 * np.sin(2 * np.pi * (start + np.arange(n)) / (7 * rate))
            out.write(0.1 * rng.standard_normal((n, 2)) * envelope[:, None])
    return path


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_probe:
        exp_dir, wav = map(Path, args.memory_probe)
        with tempfile.TemporaryDirectory() as out:
            print(
                step_peak_bytes(
                    lambda: separate.separate_files(
                        exp_dir,
                        [wav],
                        Path(out),
                        device=args.device,
                        chunk_seconds=args.chunk_seconds,
                        hop_seconds=args.hop_seconds,
                    ),
                    args.device,
                    steps=1,
                )
            )
        return
    with tempfile.TemporaryDirectory() as tmp:
        exp_dir = make_experiment(Path(tmp) / "exp", args.model)
        peaks, seconds = {}, {}
        for minutes in args.minutes:
            wav = make_recording(Path(tmp) / f"{minutes:g}min.wav", minutes, args.rate)
            command = [
                sys.executable,
                __file__,
                "--memory-probe",
                str(exp_dir),
                str(wav),
                "--threads",
                str(args.threads),
                "--device",
                args.device,
                "--chunk-seconds",
                str(args.chunk_seconds),
                "--hop-seconds",
                str(args.hop_seconds),
            ]
            start = time.perf_counter()
            peaks[minutes] = [run_probe(command) for _ in range(args.probes)]
            seconds[minutes] = (time.perf_counter() - start) / args.probes
    short, long = args.minutes
    print(
        f"setup: {args.model} model, stereo 16-bit at {args.rate} Hz -> 8 kHz, chunks {args.chunk_seconds:g} s "
        f"hop {args.hop_seconds:g} s, {args.device}, {args.threads} threads, median of {args.probes} probe(s)"
    )
    for minutes in args.minutes:
        print(
            f"  {minutes:g} min: peak probes {[round(p / 2**20) for p in peaks[minutes]]} MB, "
            f"{seconds[minutes]:.0f} s per run"
        )
    short_peak, long_peak = (statistics.median(peaks[m]) for m in (short, long))
    ratio = long_peak / short_peak
    print(
        f"peak memory: {short:g} min {short_peak / 2**20:.1f} MB, {long:g} min {long_peak / 2**20:.1f} MB, "
        f"ratio {ratio:.3f} (target <= 1.3)"
    )


if __name__ == "__main__":
    main()
