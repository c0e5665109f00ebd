"""Separate your own recordings with a trained experiment.

    ugr-separate --exp-dir egs/wsj0_esc50/exp/baseline_cpu --out separated/ a.wav b.flac recordings/

Inputs are files and folders; a folder stands for its audio files (any
extension soundfile reads), found recursively and taken in sorted order, and
their outputs keep their paths relative to it. Each recording is read with
soundfile (wav, flac, ogg, mp3...), mixed down to mono, resampled to the
model's rate, separated, resampled back to its own rate, and written as
``OUT/<relative path>/<name>_s1.wav``, ``_s2.wav``... (one 16-bit file per
estimated source, at the input's rate and length, peak-limited to 0.99 when an
estimate is louder, written atomically).

Long recordings are separated in chunks of ``--chunk-seconds`` that start every
``--hop-seconds``; each chunk's sources are put in the order that best
continues the previous chunk (the permutation of largest correlation over
their overlap, asteroid's PIT search) and the overlaps are crossfaded. A
recording no longer than one chunk is separated whole. Memory stays that of
one chunk whatever the recording's length: the file is read chunk by chunk
and the estimates go to disk as they are made.

Defaults: chunks of 8 s, twice the paper's 4 s training mixtures: the models
normalise over their whole input (global layer norms), so chunks near the
training length keep them in the conditions they were trained in, and the
whole run's memory stays that of one small chunk (bench/separate_memory.py).
Hop 6 s: 2 s of overlap, 16,000 samples at 8 kHz for the correlation that
matches the sources of consecutive chunks and for a crossfade that hides the
seams, for a third more computation than no overlap (asteroid's
``LambdaOverlapAdd`` default, half a chunk, doubles it). The hop must be at
least half a chunk (a sample is in at most two chunks) and shorter than a chunk.

Every input is checked before any separation starts (it is a regular file,
not a pipe such as bash's ``<(...)``, soundfile reads it, it has samples, and
it is long enough for the model), so a typo in the last name or a one-sample
file does not waste the time spent on the others.

Why not asteroid's ``LambdaOverlapAdd`` (whose ``reorder_chunks`` is the same
idea): it unfolds the whole recording and keeps every chunk's estimates until
the end (memory grows with the length), zero-pads both ends so that a short
recording is never separated whole, and its Hann window sums to one only at a
half-chunk hop.
"""

from __future__ import annotations

import argparse
import math
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Sequence

import julius
import numpy as np
import soundfile as sf
import torch
from asteroid.losses import PITLossWrapper
from tqdm import tqdm

from ugr.io.atomic import OutputError, atomic_write
from ugr.io.cli import one_line_errors
from ugr.pipeline.checkpoints import add_weights_options, load_experiment

DEFAULT_CHUNK_SECONDS = 8.0
DEFAULT_HOP_SECONDS = 6.0
MIN_CHUNK_SECONDS = 0.1  # shorter chunks round to a handful of samples (none at all below a sample: no chunking)
PEAK = 0.99  # estimates louder than this are scaled down to it, so that 16-bit output clips nothing
# What a folder's audio files are: the extensions of the formats soundfile reads (RAW needs parameters).
AUDIO_SUFFIXES = frozenset(
    {f".{name.lower()}" for name in sf.available_formats() if name != "RAW"} | {".aif", ".oga", ".opus"}
)
_COPY_FRAMES = 1 << 16  # frames per block when the estimates are scaled into the outputs

Reader = Callable[[int, int], np.ndarray]  # (start, count) -> (count,) float32 mono samples


class InputError(ValueError):
    """An input or option that cannot be used; the message names it and the fix."""


@dataclass(frozen=True)
class Recording:
    """One checked input: where it is, its outputs' name under --out (no suffix), its length and rate."""

    path: Path
    stem: Path
    frames: int
    rate: int


def find_inputs(paths: Sequence[Path]) -> List[tuple[Path, Path]]:
    """(file, output stem relative to --out) for each input: files as given, folders' audio files recursively, sorted.

    Hidden files and folders inside a folder (names starting with a dot,
    such as unfinished outputs) are left out.
    """
    found: List[tuple[Path, Path]] = []
    for path in map(Path, paths):
        if not path.is_dir():
            found.append((path, Path(path.stem)))
            continue
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in AUDIO_SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not files:
            raise InputError(
                f"{path}: folder holds no audio files (looked for {', '.join(sorted(AUDIO_SUFFIXES))}, "
                f"recursively); pass the files themselves or another folder"
            )
        found += [(p, p.relative_to(path).with_suffix("")) for p in files]
    return found


def inspect_input(path: Path, stem: Path) -> Recording:
    """The recording's length and rate from its header; unreadable or empty files are errors naming the file."""
    if not path.is_file():
        if path.exists():  # a pipe (bash's <(...) is /dev/fd/N), a device, a socket: read once, or never ends
            kind = "a pipe" if stat.S_ISFIFO(path.stat().st_mode) else "a device, socket or other special file"
            raise InputError(f"not a regular file: {path} ({kind}); pass a file path")
        raise InputError(f"{path}: no such file; check the path")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise InputError(f"{path}: not a readable audio file ({err}); convert it to wav or flac") from err
    if info.frames <= 0:
        raise InputError(f"{path}: the file holds no samples")
    return Recording(path, stem, int(info.frames), int(info.samplerate))


def resolve_device(name: str) -> torch.device:
    """``--device`` as a torch device: cpu, cuda or cuda:N, and only a CUDA device that is there."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as err:
        raise InputError(f"--device {name!r} is not a device ({err}); use cpu, cuda or cuda:N") from err
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise InputError(f"--device {name}: only cpu and cuda[:N] are supported")
    if not torch.cuda.is_available():
        why = "torch is built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise InputError(
            f"--device {name}: CUDA is not available here ({why}, torch {torch.__version__}); use --device cpu"
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise InputError(f"--device {name}: there are {count} CUDA device(s), cuda:0 to cuda:{count - 1}; pick one")
    return device


def minimum_length(model: torch.nn.Module, device: torch.device, limit: int = 1 << 20) -> int:
    """The fewest samples the model separates, found by trying silent inputs (doubling, then bisecting).

    Tried rather than derived from the architecture, so that it holds for any
    arch (Sudo rm -rf pads its input and takes one sample, Conv-TasNet needs
    one encoder window). Assumes that a model which takes n samples takes more.
    """

    def works(length: int) -> bool:
        try:
            with torch.inference_mode():
                model(torch.zeros(1, length, device=device))
        except (RuntimeError, ValueError):
            return False
        return True

    high = 1
    while not works(high):
        if high >= limit:
            raise InputError(
                f"the model fails on every silent input up to {limit} samples; is the experiment's config.yaml its own?"
            )
        high *= 2
    low = high // 2  # fails (or is 0)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if works(middle) else (middle, high)
    return high


def in_samples(chunk_seconds: float, hop_seconds: float, rate: int) -> tuple[int, int]:
    """Chunk and hop in samples at ``rate``: a recording is chunked by duration, whatever its rate."""
    return round(chunk_seconds * rate), round(hop_seconds * rate)


def chunk_starts(frames: int, chunk: int, hop: int) -> List[int]:
    """First samples of the chunks that cover [0, frames): one every ``hop`` until a chunk reaches the end."""
    return [k * hop for k in range(1 + max(0, math.ceil((frames - chunk) / hop)))]


def resample(signal: torch.Tensor, old_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (julius); identity when the rates agree."""
    return signal if old_rate == new_rate else julius.resample_frac(signal, old_rate, new_rate)


def separate_signal(
    model: torch.nn.Module, mixture: np.ndarray, rate: int, model_rate: int, device: torch.device | str = "cpu"
) -> np.ndarray:
    """(T,) mixture at ``rate`` -> (n_src, T) estimates at the same rate and length, in one forward pass."""
    x = resample(torch.from_numpy(np.ascontiguousarray(mixture, dtype=np.float32)).to(device), rate, model_rate)
    with torch.inference_mode():
        est = model(x.unsqueeze(0))[0]
    est = resample(est, model_rate, rate)
    length = mixture.shape[0]
    if est.shape[-1] < length:
        est = torch.nn.functional.pad(est, (0, length - est.shape[-1]))
    return est[..., :length].cpu().numpy()


def match_order(estimates: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """``estimates`` (n_src, T) with its sources permuted to continue ``previous`` (n_src, overlap).

    The permutation maximises the summed correlation of the zero-mean
    overlaps, found by asteroid's PIT search: the louder a source, the more
    it counts, as in asteroid's ``LambdaOverlapAdd(reorder_chunks=True)``.
    """
    overlap = previous.shape[1]
    head = torch.from_numpy(estimates[:, :overlap]).double()
    before = torch.from_numpy(previous).double()
    head, before = head - head.mean(-1, keepdim=True), before - before.mean(-1, keepdim=True)
    pairwise = -(head @ before.T).unsqueeze(0)  # [1, estimate, reference]: a loss to minimise
    _, perm = PITLossWrapper.find_best_perm(pairwise)
    return PITLossWrapper.reorder_source(torch.from_numpy(estimates).unsqueeze(0), perm)[0].numpy()


def stitch(chunks: Iterable[np.ndarray], overlap: int) -> Iterator[np.ndarray]:
    """Consecutive chunk estimates (n_src, L_k) overlapping by ``overlap`` -> the recording's estimates in blocks.

    Each chunk is put in the order that continues the one before, and every
    overlap is crossfaded with a raised-cosine ramp (weights summing to one);
    samples that only one chunk covers pass unchanged, so a single chunk
    comes out exactly as it went in. Needs ``overlap`` <= every chunk's length
    minus ``overlap`` (but the last one's), i.e. a hop of at least half a chunk.
    """
    ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)).astype(np.float32)
    pending: Optional[np.ndarray] = None  # the previous chunk's estimates not yet given out
    for estimates in chunks:
        if pending is None:
            pending = estimates
            continue
        estimates = match_order(estimates, pending[:, pending.shape[1] - overlap :])
        yield pending[:, : pending.shape[1] - overlap]
        yield pending[:, pending.shape[1] - overlap :] * (1 - ramp) + estimates[:, :overlap] * ramp
        pending = estimates[:, overlap:]
    if pending is not None:
        yield pending


def separate_stream(
    model: torch.nn.Module,
    read: Reader,
    frames: int,
    rate: int,
    model_rate: int,
    chunk: int,
    hop: int,
    *,
    device: torch.device | str = "cpu",
    on_chunk: Callable[[], object] = lambda: None,
) -> Iterator[np.ndarray]:
    """A recording's estimates, (n_src, n) blocks in order, separated chunk by chunk (``chunk``, ``hop`` in samples).

    ``read(start, count)`` gives the mono samples; the model never sees more
    than one chunk, and only one chunk's estimates are held at a time.
    """

    def estimates() -> Iterator[np.ndarray]:
        for start in chunk_starts(frames, chunk, hop):
            count = min(chunk, frames - start)
            yield separate_signal(model, read(start, count), rate, model_rate, device)
            on_chunk()

    return stitch(estimates(), chunk - hop)


def output_paths(stem: Path, out_dir: Path, n_src: int) -> List[Path]:
    return [out_dir / stem.parent / f"{stem.name}_s{i + 1}.wav" for i in range(n_src)]


def write_estimates(blocks: Iterable[np.ndarray], targets: Sequence[Path], rate: int) -> None:
    """Streams (n_src, n) blocks into one 16-bit wav per source, each scaled to peak ``PEAK`` if louder.

    A peak is known only at the end, so the blocks go to a temporary float
    file beside the outputs first, and are then scaled into the outputs block
    by block (each written atomically): memory stays bounded whatever the length.
    """
    folder = targets[0].parent
    folder.mkdir(parents=True, exist_ok=True)
    n_src = len(targets)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".ugr-separate-") as tmp:
        raw = Path(tmp) / "estimates.f32"
        peaks = np.zeros(n_src)
        try:
            with open(raw, "wb") as handle:
                for block in blocks:
                    peaks = np.maximum(peaks, np.abs(block).max(axis=1, initial=0.0))
                    handle.write(np.ascontiguousarray(block.T, dtype=np.float32).tobytes())
        except OSError as err:  # the scratch file can fill the disk before any output does: say which output
            raise OutputError(err.errno, err.strerror or str(err), str(targets[0])) from err

        def copy(handle, source: int, scale: float) -> None:
            with (
                open(raw, "rb") as samples,
                sf.SoundFile(handle, "w", samplerate=rate, channels=1, subtype="PCM_16", format="WAV") as out,
            ):
                while (block := np.fromfile(samples, np.float32, _COPY_FRAMES * n_src)).size:
                    out.write(block.reshape(-1, n_src)[:, source] * scale)

        for source, target in enumerate(targets):
            scale = PEAK / peaks[source] if peaks[source] > PEAK else 1.0
            atomic_write(target, lambda handle, s=source, k=scale: copy(handle, s, k))


def _option(option: str, value: float) -> str:
    return f"{option} {value:g}"


def _check_chunking(chunk_seconds: float, hop_seconds: float) -> None:
    """Both finite, a chunk of at least ``MIN_CHUNK_SECONDS``, a hop in [chunk / 2, chunk); one error naming the
    option (the model's own minimum, in samples, is checked per recording by ``_check_lengths``)."""
    for option, value in (("--chunk-seconds", chunk_seconds), ("--hop-seconds", hop_seconds)):
        if not math.isfinite(value):
            raise InputError(f"{option} {value}: must be a finite number of seconds")
    if not chunk_seconds >= MIN_CHUNK_SECONDS:
        raise InputError(
            f"{_option('--chunk-seconds', chunk_seconds)}: must be at least {MIN_CHUNK_SECONDS:g} s "
            f"(the default is {DEFAULT_CHUNK_SECONDS:g} s: the models normalise over their input, so "
            f"shorter chunks separate worse)"
        )
    if not chunk_seconds / 2 <= hop_seconds < chunk_seconds:
        raise InputError(
            f"--hop-seconds {hop_seconds}: must be at least half of --chunk-seconds and shorter than it "
            f"([{chunk_seconds / 2:g}, {chunk_seconds:g}) s), so that chunks overlap and a sample is in "
            f"at most two of them"
        )


def _check_lengths(
    recordings: Sequence[Recording], model_frames: int, model_rate: int, chunk_seconds: float, hop_seconds: float
) -> None:
    """Every chunk of every recording must be long enough for the model: name the file and the minimum."""
    for rec in recordings:
        needed = -(-model_frames * rec.rate // model_rate)  # julius gives floor(n * model_rate / rate) samples
        chunk, hop = in_samples(chunk_seconds, hop_seconds, rec.rate)
        if rec.frames > chunk and (hop < 1 or chunk - hop < 1):
            raise InputError(
                f"{_option('--hop-seconds', hop_seconds)}: {hop} sample(s) at {rec.rate} Hz "
                f"({rec.path}) with chunks of {chunk}: the hop must be at least one sample and shorter "
                f"than a chunk; raise --chunk-seconds"
            )
        if rec.frames > chunk and chunk < needed:
            raise InputError(
                f"{_option('--chunk-seconds', chunk_seconds)}: {chunk} sample(s) at {rec.rate} Hz "
                f"({rec.path}), fewer than the model's minimum {needed} at that rate; raise it"
            )
        shortest = rec.frames - chunk_starts(rec.frames, chunk, hop)[-1]
        if shortest >= needed:
            continue
        if shortest == rec.frames:
            raise InputError(
                f"{rec.path}: {rec.frames} sample(s) at {rec.rate} Hz is too short for the model, which "
                f"needs at least {needed} samples at that rate ({1000 * needed / rec.rate:.1f} ms); "
                f"leave it out or pad it"
            )
        raise InputError(
            f"{rec.path}: its last chunk would have {shortest} samples, fewer than the model's minimum "
            f"{needed} at {rec.rate} Hz; lower --hop-seconds (more overlap)"
        )


def separate_files(
    exp_dir: Path,
    inputs: Sequence[Path],
    out_dir: Path,
    *,
    checkpoint: Optional[Path] = None,
    average_last: Optional[int] = None,
    device: str = "cpu",
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    hop_seconds: float = DEFAULT_HOP_SECONDS,
    progress: bool = False,
) -> List[Path]:
    """Separates every input (files and folders); returns the written files. Everything is checked first."""
    if not inputs:
        raise InputError("no inputs given; pass one or more audio files or folders")
    _check_chunking(chunk_seconds, hop_seconds)
    torch_device = resolve_device(device)
    recordings = [inspect_input(path, stem) for path, stem in find_inputs(inputs)]
    by_stem: dict[Path, List[Path]] = {}
    for rec in recordings:
        by_stem.setdefault(rec.stem, []).append(rec.path)
    clashes = {stem: paths for stem, paths in by_stem.items() if len(paths) > 1}
    if clashes:
        stem, paths = next(iter(clashes.items()))
        more = f" (and {len(clashes) - 1} more such group(s))" if len(clashes) > 1 else ""
        raise InputError(
            f"{', '.join(map(str, paths))}: their outputs would overwrite each other "
            f"({out_dir / stem}_s*.wav){more}; rename them or separate them into different --out folders"
        )
    cfg, model, _ = load_experiment(exp_dir, checkpoint=checkpoint, average_last=average_last)
    model = model.to(torch_device)
    model_rate = cfg.data.sample_rate
    n_src = cfg.model.n_src
    inputs_resolved = {rec.path.resolve() for rec in recordings}
    for rec in recordings:
        overwritten = [p for p in output_paths(rec.stem, out_dir, n_src) if p.resolve() in inputs_resolved]
        if overwritten:
            raise InputError(
                f"{overwritten[0]}: is an input and would be overwritten by the outputs of {rec.path}; "
                f"choose another --out folder"
            )
    _check_lengths(recordings, minimum_length(model, torch_device), model_rate, chunk_seconds, hop_seconds)

    total = sum(len(chunk_starts(r.frames, *in_samples(chunk_seconds, hop_seconds, r.rate))) for r in recordings)
    written: List[Path] = []
    with tqdm(total=total, desc="separate", unit="chunk", disable=not progress) as bar:
        for rec in recordings:
            targets = output_paths(rec.stem, out_dir, n_src)
            with sf.SoundFile(str(rec.path)) as audio:

                def read(start: int, count: int) -> np.ndarray:
                    audio.seek(start)
                    return audio.read(count, dtype="float32", always_2d=True).mean(axis=1, dtype=np.float32)

                blocks = separate_stream(
                    model,
                    read,
                    rec.frames,
                    rec.rate,
                    model_rate,
                    *in_samples(chunk_seconds, hop_seconds, rec.rate),
                    device=torch_device,
                    on_chunk=bar.update,
                )
                write_estimates(blocks, targets, rec.rate)
            written += targets
    return written


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ugr-separate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="audio files and folders of them (any sample rate)")
    parser.add_argument("--exp-dir", required=True, type=Path, help="trained experiment folder (has config.yaml)")
    parser.add_argument("--out", required=True, type=Path, help="folder for the separated wav files")
    add_weights_options(parser, "use this one checkpoint (e.g. checkpoints/best.ckpt)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument(
        "--chunk-seconds",
        type=float,
        default=DEFAULT_CHUNK_SECONDS,
        help="longest stretch the model sees at once (default: %(default)s)",
    )
    parser.add_argument(
        "--hop-seconds",
        type=float,
        default=DEFAULT_HOP_SECONDS,
        help="start of one chunk to the next, in [chunk/2, chunk) (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    with one_line_errors("ugr-separate", args.out, InputError, ValueError):
        written = separate_files(
            args.exp_dir,
            args.inputs,
            args.out,
            checkpoint=args.checkpoint,
            average_last=args.average_last,
            device=args.device,
            chunk_seconds=args.chunk_seconds,
            hop_seconds=args.hop_seconds,
            progress=sys.stderr.isatty(),
        )
    print(f"ugr-separate: wrote {len(written)} files to {args.out}")


if __name__ == "__main__":
    main()
