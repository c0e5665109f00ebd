"""ugr-separate: one wav per estimated source at the input's rate and length; clear errors for bad inputs."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from ugr import checkpoints, separate
from ugr.models import build_model
from test_score import save_epoch_checkpoints, tiny_experiment_cfg


@pytest.fixture
def exp_dir(tmp_path):
    save_epoch_checkpoints(tmp_path / "exp", tiny_experiment_cfg(), epochs=2)
    return tmp_path / "exp"


def test_any_rate_and_channels_in_one_file_per_source_out(exp_dir, tmp_path):
    rng = np.random.default_rng(0)
    stereo_16k = rng.standard_normal((16000 + 37, 2)).astype(np.float32) * 0.1
    sf.write(tmp_path / "a.wav", stereo_16k, 16000)
    mono_8k = rng.standard_normal(4000).astype(np.float32) * 0.1
    sf.write(tmp_path / "b.flac", mono_8k, 8000)
    written = separate.separate_files(exp_dir, [tmp_path / "a.wav", tmp_path / "b.flac"], tmp_path / "out",
                                      progress=False)
    assert [p.name for p in written] == ["a_s1.wav", "a_s2.wav", "b_s1.wav", "b_s2.wav"]
    for path, (frames, rate) in zip(written, [(16037, 16000)] * 2 + [(4000, 8000)] * 2):
        info = sf.info(path)
        assert (info.frames, info.samplerate, info.channels, info.subtype) == (frames, rate, 1, "PCM_16")

    # At the model's own rate the output is the model's estimate (up to 16-bit rounding).
    model = build_model(tiny_experiment_cfg()["model"])
    model.load_state_dict(checkpoints.average_last_epochs(exp_dir / "checkpoints", 2)[0])
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(mono_8k)[None])[0].numpy()
    for s in range(2):
        got, _ = sf.read(tmp_path / "out" / f"b_s{s + 1}.wav", dtype="float32")
        scale = min(1.0, 0.99 / float(np.abs(expected[s]).max()))
        np.testing.assert_allclose(got, expected[s] * scale, atol=2e-4)


def test_bad_inputs_are_named_before_any_work(exp_dir, tmp_path):
    (tmp_path / "notaudio.wav").write_text("hello")
    with pytest.raises(separate.InputError, match="missing.wav: no such file"):
        separate.separate_files(exp_dir, [tmp_path / "missing.wav"], tmp_path / "out")
    with pytest.raises(separate.InputError, match="notaudio.wav: not a readable audio file"):
        separate.separate_files(exp_dir, [tmp_path / "notaudio.wav"], tmp_path / "out")
    sf.write(tmp_path / "x.wav", np.zeros(100, np.float32), 8000)
    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "sub" / "x.wav", np.zeros(100, np.float32), 8000)
    with pytest.raises(separate.InputError, match="outputs would overwrite"):
        separate.separate_files(exp_dir, [tmp_path / "x.wav", tmp_path / "sub" / "x.wav"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli(exp_dir, tmp_path):
    sf.write(tmp_path / "c.wav", np.random.default_rng(1).standard_normal(3000).astype(np.float32) * 0.1, 11025)
    done = subprocess.run([sys.executable, "-m", "ugr.separate", "--exp-dir", str(exp_dir), "--out",
                           str(tmp_path / "out"), "--no-progress", str(tmp_path / "c.wav")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c_s1.wav", "c_s2.wav"]
    failed = subprocess.run([sys.executable, "-m", "ugr.separate", "--exp-dir", str(exp_dir), "--out",
                             str(tmp_path / "out"), str(tmp_path / "nope.wav")], capture_output=True, text=True)
    assert failed.returncode != 0 and "nope.wav: no such file" in failed.stderr
