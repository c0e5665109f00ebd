"""ugr-separate: files and folders in, one wav per source out; chunked separation; every input checked first."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from test_score import save_epoch_checkpoints, tiny_experiment_cfg

from ugr.pipeline import checkpoints, separate
from ugr.separation.models import build_model

RATE = 8000  # the tiny experiment's model rate


@pytest.fixture(scope="module")
def exp_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("separate")
    save_epoch_checkpoints(root / "exp", tiny_experiment_cfg(), epochs=2)
    return root / "exp"


@pytest.fixture(scope="module")
def model(exp_dir):
    """The weights ugr-separate uses: the average of the last two epochs."""
    model = build_model(tiny_experiment_cfg()["model"])
    model.load_state_dict(checkpoints.average_last_epochs(exp_dir / "checkpoints", 2)[0])
    return model.eval()


def separate_array(model, mixture: np.ndarray, rate: int, chunk: int, hop: int) -> np.ndarray:
    """What separate_files does to a recording, on an array (chunk and hop in samples)."""
    blocks = separate.separate_stream(
        model, lambda start, count: mixture[start : start + count], mixture.size, rate, RATE, chunk, hop
    )
    return np.concatenate(list(blocks), axis=1)


def noise(samples: int, seed: int, channels: int = 0) -> np.ndarray:
    shape = (samples, channels) if channels else samples
    return (np.random.default_rng(seed).standard_normal(shape) * 0.1).astype(np.float32)


def test_any_rate_and_channels_in_one_file_per_source_out(exp_dir, model, tmp_path):
    stereo_16k = noise(16000 + 37, 0, channels=2)
    sf.write(tmp_path / "a.wav", stereo_16k, 16000)
    mono_8k = noise(4000, 1)
    sf.write(tmp_path / "b.flac", mono_8k, RATE)
    written = separate.separate_files(exp_dir, [tmp_path / "a.wav", tmp_path / "b.flac"], tmp_path / "out")
    assert [p.name for p in written] == ["a_s1.wav", "a_s2.wav", "b_s1.wav", "b_s2.wav"]
    for path, (frames, rate) in zip(written, [(16037, 16000)] * 2 + [(4000, RATE)] * 2):
        info = sf.info(path)
        assert (info.frames, info.samplerate, info.channels, info.subtype) == (frames, rate, 1, "PCM_16")
    assert not list((tmp_path / "out").glob(".*")), "temporary files left behind"

    # At the model's own rate the output is the model's estimate (up to 16-bit rounding and the peak limit).
    with torch.no_grad():
        expected = model(torch.from_numpy(mono_8k)[None])[0].numpy()
    for s in range(2):
        got, _ = sf.read(tmp_path / "out" / f"b_s{s + 1}.wav", dtype="float32")
        scale = min(1.0, 0.99 / float(np.abs(expected[s]).max()))
        np.testing.assert_allclose(got, expected[s] * scale, atol=2e-4)


def test_a_recording_shorter_than_a_chunk_is_separated_whole_exactly(model):
    for length in (1, 999, 8000):  # the last one is exactly one chunk
        mixture = noise(length, 2)
        whole = separate.separate_signal(model, mixture, RATE, RATE)
        np.testing.assert_array_equal(separate_array(model, mixture, RATE, chunk=8000, hop=6000), whole)


def test_chunked_separation_matches_whole_file_separation_away_from_the_seams(model):
    """A stationary mixture: chunks of 1 s give nearly what one pass over 3.1 s gives."""
    mixture = noise(24800, 3)
    whole = separate.separate_signal(model, mixture, RATE, RATE)
    chunked = separate_array(model, mixture, RATE, chunk=8000, hop=6000)
    assert chunked.shape == whole.shape
    correlation = (chunked * whole).sum() / np.sqrt((chunked**2).sum() * (whole**2).sum())
    assert correlation > 0.99


class LouderFirst(torch.nn.Module):
    """A perfect separator of a low and a high band that, like any PIT-trained model, picks its own output
    order: the louder source first. On a recording whose sources swap dominance, its chunks swap order."""

    def __init__(self, split_hz: float, rate: int) -> None:
        super().__init__()
        self.split_hz, self.rate = split_hz, rate
        self.seen: list[int] = []

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        self.seen.append(mixture.shape[-1])
        spectrum = torch.fft.rfft(mixture)
        low = torch.fft.rfftfreq(mixture.shape[-1], 1 / self.rate) < self.split_hz
        bands = torch.stack(
            [
                torch.fft.irfft(spectrum * low, n=mixture.shape[-1]),
                torch.fft.irfft(spectrum * ~low, n=mixture.shape[-1]),
            ],
            dim=1,
        )
        louder_first = (bands**2).sum(-1).argsort(dim=1, descending=True)
        return torch.gather(bands, 1, louder_first[..., None].expand_as(bands))


def swapping_sources(seconds: int, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """A 300 Hz and a 2 kHz tone whose loudness cross over and back every 6 s: (2, T) sources."""
    time = np.arange(seconds * rate) / rate
    fade = 0.5 + 0.45 * np.sin(2 * np.pi * time / 12)
    low = fade * np.sin(2 * np.pi * 300 * time)
    high = (1 - fade) * np.sin(2 * np.pi * 2000 * time + 1.0)
    return np.stack([low, high]).astype(np.float32)


def test_sources_keep_their_order_across_chunks_where_naive_concatenation_swaps():
    sources = swapping_sources(30, RATE)
    mixture = sources.sum(0)
    fake = LouderFirst(1000, RATE)
    chunk, hop = 4 * RATE, 3 * RATE
    starts = separate.chunk_starts(mixture.size, chunk, hop)
    naive = [separate.separate_signal(fake, mixture[s : s + chunk], RATE, RATE) for s in starts]
    # Which reference each naive chunk's first output follows: it changes, so concatenation would swap.
    follows = [
        int(np.argmax([abs(np.dot(est[0], ref[s : s + chunk])) for ref in sources])) for est, s in zip(naive, starts)
    ]
    assert len(set(follows)) == 2
    stitched = separate_array(fake, mixture, RATE, chunk, hop)
    assert stitched.shape == sources.shape
    order = [0, 1] if np.dot(stitched[0], sources[0]) > np.dot(stitched[0], sources[1]) else [1, 0]
    for second in range(30):  # every second of every output follows one and the same reference
        piece = slice(second * RATE, (second + 1) * RATE)
        for out, ref in zip(stitched, sources[order]):
            error = np.linalg.norm(out[piece] - ref[piece]) / np.linalg.norm(ref[piece])
            assert error < 0.05, f"second {second}: relative error {error:.3f}"


def test_the_model_never_sees_more_than_one_chunk_of_a_long_file(exp_dir, tmp_path, monkeypatch):
    """A 40 s file at 16 kHz through separate_files: every forward pass gets at most one chunk at the model rate."""
    sf.write(tmp_path / "long.wav", noise(40 * 16000, 4), 16000)
    real_load = separate.load_experiment
    recorders: list[LouderFirst] = []

    def load_with_recorder(*args, **kwargs):
        cfg, _, used = real_load(*args, **kwargs)
        recorders.append(LouderFirst(1000, RATE))
        return cfg, recorders[-1], used

    monkeypatch.setattr(separate, "load_experiment", load_with_recorder)
    written = separate.separate_files(
        exp_dir, [tmp_path / "long.wav"], tmp_path / "out", chunk_seconds=2.0, hop_seconds=1.5
    )
    seen = recorders[0].seen
    separations = [n for n in seen if n > 2]  # beyond minimum_length's probes (the fake takes one sample)
    assert len(separations) == len(separate.chunk_starts(40 * 16000, 32000, 24000)) == 27
    assert max(seen) == 2 * RATE
    assert all(sf.info(p).frames == 40 * 16000 for p in written)


def test_folders_recursively_in_sorted_order_keep_their_relative_paths(exp_dir, tmp_path):
    data = tmp_path / "recordings"
    for name in ("b.wav", "a.flac", "sub/deeper/c.ogg", "sub/d.WAV"):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(data / name, noise(2000, len(name)), RATE)
    (data / "notes.txt").write_text("not audio")
    (data / ".hidden").mkdir()
    sf.write(data / ".hidden" / "e.wav", noise(2000, 9), RATE)
    sf.write(tmp_path / "single.wav", noise(2000, 10), RATE)
    written = separate.separate_files(exp_dir, [data, tmp_path / "single.wav"], tmp_path / "out")
    relative = [p.relative_to(tmp_path / "out").as_posix() for p in written]
    assert relative == [
        "a_s1.wav",
        "a_s2.wav",
        "b_s1.wav",
        "b_s2.wav",
        "sub/d_s1.wav",
        "sub/d_s2.wav",
        "sub/deeper/c_s1.wav",
        "sub/deeper/c_s2.wav",
        "single_s1.wav",
        "single_s2.wav",
    ]
    assert all(sf.info(p).frames == 2000 for p in written)


def test_bad_inputs_are_named_before_any_work(exp_dir, tmp_path):
    out = tmp_path / "out"
    sf.write(tmp_path / "good.wav", noise(4000, 5), RATE)
    good = tmp_path / "good.wav"
    (tmp_path / "notaudio.wav").write_text("hello")
    with pytest.raises(separate.InputError, match="missing.wav: no such file"):
        separate.separate_files(exp_dir, [good, tmp_path / "missing.wav"], out)
    with pytest.raises(separate.InputError, match="notaudio.wav: not a readable audio file"):
        separate.separate_files(exp_dir, [good, tmp_path / "notaudio.wav"], out)
    sf.write(tmp_path / "x.wav", np.zeros(100, np.float32), RATE)
    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "sub" / "x.wav", np.zeros(100, np.float32), RATE)
    with pytest.raises(separate.InputError, match="outputs would overwrite each other"):
        separate.separate_files(exp_dir, [good, tmp_path / "x.wav", tmp_path / "sub" / "x.wav"], out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(separate.InputError, match="empty: folder holds no audio files"):
        separate.separate_files(exp_dir, [good, tmp_path / "empty"], out)
    # One sample at 16 kHz resamples to nothing at the model's 8 kHz: named, with the minimum, before any output.
    sf.write(tmp_path / "click.wav", np.zeros(1, np.float32), 16000)
    with pytest.raises(
        separate.InputError,
        match=r"click.wav: 1 sample\(s\) at 16000 Hz is too short for the model, "
        r"which needs at least 2 samples at that rate",
    ):
        separate.separate_files(exp_dir, [good, tmp_path / "click.wav"], out)
    for chunk, hop in ((4.0, 1.0), (4.0, 4.0), (0.0, 0.0)):
        with pytest.raises(separate.InputError, match="--(hop|chunk)-seconds"):
            separate.separate_files(exp_dir, [good], out, chunk_seconds=chunk, hop_seconds=hop)
    with pytest.raises(separate.InputError, match="is an input and would be overwritten"):
        sf.write(tmp_path / "good_s1.wav", noise(4000, 6), RATE)
        separate.separate_files(exp_dir, [good, tmp_path / "good_s1.wav"], tmp_path)
    assert not out.exists()


def test_a_model_that_needs_a_whole_window_gives_its_minimum(tmp_path):
    cfg = tiny_experiment_cfg()
    cfg["model"] = {
        "arch": "convtasnet",
        "n_blocks": 1,
        "n_repeats": 1,
        "bn_chan": 8,
        "hid_chan": 8,
        "skip_chan": 8,
        "n_filters": 16,
    }
    save_epoch_checkpoints(tmp_path / "exp", cfg, epochs=2)
    model = build_model(cfg["model"]).eval()
    assert separate.minimum_length(model, torch.device("cpu")) == 16  # one encoder window of 16 taps
    sf.write(tmp_path / "short.wav", noise(15, 7), RATE)
    with pytest.raises(separate.InputError, match=r"short.wav: 15 sample\(s\) at 8000 Hz .* at least 16 samples"):
        separate.separate_files(tmp_path / "exp", [tmp_path / "short.wav"], tmp_path / "out")
    sf.write(tmp_path / "ok.wav", noise(16, 7), RATE)
    assert len(separate.separate_files(tmp_path / "exp", [tmp_path / "ok.wav"], tmp_path / "out")) == 2


def test_device_is_checked_and_named():
    assert separate.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(separate.InputError, match="'gpu' is not a device"):
        separate.resolve_device("gpu")
    with pytest.raises(separate.InputError, match="only cpu and cuda"):
        separate.resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(separate.InputError, match="--device cuda:1: CUDA is not available here.*use --device cpu"):
            separate.resolve_device("cuda:1")
    else:
        count = torch.cuda.device_count()
        assert separate.resolve_device("cuda") == torch.device("cuda")
        with pytest.raises(separate.InputError, match=f"there are {count} CUDA device"):
            separate.resolve_device(f"cuda:{count}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_separates_like_cpu(exp_dir, tmp_path):
    sf.write(tmp_path / "g.wav", noise(3 * 16000, 8), 16000)
    on_cpu = separate.separate_files(
        exp_dir, [tmp_path / "g.wav"], tmp_path / "cpu", chunk_seconds=1.0, hop_seconds=0.75
    )
    on_gpu = separate.separate_files(
        exp_dir, [tmp_path / "g.wav"], tmp_path / "gpu", device="cuda", chunk_seconds=1.0, hop_seconds=0.75
    )
    for a, b in zip(on_cpu, on_gpu):
        np.testing.assert_allclose(sf.read(a)[0], sf.read(b)[0], atol=3 / 32768)


def test_cli(exp_dir, tmp_path, capsys):
    sf.write(tmp_path / "c.wav", noise(3000, 1), 11025)
    command = [
        sys.executable,
        "-m",
        "ugr.pipeline.separate",
        "--exp-dir",
        str(exp_dir),
        "--out",
        str(tmp_path / "out"),
        "--device",
        "cpu",
        str(tmp_path / "c.wav"),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c_s1.wav", "c_s2.wav"]
    assert "separate" not in done.stderr, "a progress bar although stderr is not a terminal"
    with pytest.raises(SystemExit, match="ugr-separate: .*nope.wav: no such file"):
        separate.main(["--exp-dir", str(exp_dir), "--out", str(tmp_path / "out"), str(tmp_path / "nope.wav")])
    with pytest.raises(SystemExit) as helped:
        separate.main(["--help"])
    assert helped.value.code == 0
    assert "--chunk-seconds" in capsys.readouterr().out
