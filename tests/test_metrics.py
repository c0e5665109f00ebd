"""ugr.separation.metrics against known answers and independent implementations; the registry's checks."""

from __future__ import annotations

import math
import warnings

import mir_eval
import numpy as np
import pystoi
import pytest
import torch
from scipy.signal import lfilter, resample_poly
from test_score import np_si_sdr

from ugr.separation import metrics


def speech_like(seconds: float, rate: int, seed: int) -> np.ndarray:
    """A voiced, syllabic signal (harmonics of a gliding 120 Hz pitch, 3 bursts a second): PESQ and STOI accept it."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(120 + 30 * np.sin(2 * np.pi * 0.7 * t + seed)) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 20) if k * 150 < rate / 2)
    envelope = (np.sin(2 * np.pi * 3 * t + seed) > -0.3) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    return (voiced * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def with_noise(clean: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(clean.size)
    noise *= np.linalg.norm(clean) / np.linalg.norm(noise) / 10 ** (snr_db / 20)
    return (clean + noise).astype(np.float32)


def t(*arrays: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays))


# --- SI-SDRi -----------------------------------------------------------------------------------------


def test_si_sdri_known_answer_and_numpy_reference():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(4000)
    other = rng.standard_normal(4000)
    ref, other = ref - ref.mean(), other - other.mean()
    other -= (other @ ref) / (ref @ ref) * ref  # orthogonal to the reference: SI-SDR is then exact
    mix, est = ref + other, ref + 0.1 * other  # the estimate keeps a tenth of the interference: +20 dB
    got = metrics.si_sdri(t(est)[None], t(ref)[None], t(mix))
    assert got.shape == (1, 1)
    assert got.item() == pytest.approx(20.0, abs=1e-6)

    src = rng.standard_normal((3, 2, 2000))
    mixture = src.sum(1)
    est = src + 0.3 * rng.standard_normal(src.shape)
    got = metrics.si_sdri(torch.from_numpy(est), torch.from_numpy(src), torch.from_numpy(mixture))
    for b in range(3):
        for s in range(2):
            expected = np_si_sdr(est[b, s], src[b, s]) - np_si_sdr(mixture[b], src[b, s])
            assert got[b, s].item() == pytest.approx(expected, abs=1e-6)


# --- SDRi --------------------------------------------------------------------------------------------


def test_sdri_matches_mir_eval_bss_eval():
    rng = np.random.default_rng(1)
    src = rng.standard_normal((2, 2, 8000))
    mix = src.sum(1)
    est = src + 0.4 * rng.standard_normal(src.shape) + 0.2 * src[:, ::-1]  # noise and a little of the other source
    got = metrics.sdri(torch.from_numpy(est), torch.from_numpy(src), torch.from_numpy(mix))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # bss_eval_sources is deprecated in mir_eval 0.8
        for b in range(2):
            sdr_est = mir_eval.separation.bss_eval_sources(src[b], est[b], compute_permutation=False)[0]
            sdr_mix = mir_eval.separation.bss_eval_sources(src[b], np.stack([mix[b]] * 2), compute_permutation=False)[0]
            np.testing.assert_allclose(got[b].numpy(), sdr_est - sdr_mix, atol=1e-3)


def test_sdr_forgives_a_short_filter_and_si_sdr_does_not():
    """The bss_eval sense: an estimate that is the reference through a short filter is perfect for SDR."""
    rng = np.random.default_rng(2)
    ref = rng.standard_normal(8000)
    ref[-8:] = 0  # so that the filtered reference ends within the 8000 samples, as bss_eval's shifted copies do
    coloured = lfilter([1.0, -0.9, 0.5, 0.3], [1.0], ref)  # a 4-tap filter, well under bss_eval's 512 taps
    mix = ref + rng.standard_normal(8000)
    est, src, mixture = t(coloured)[None], t(ref)[None], t(mix)
    sdr_gain, si_sdr_gain = metrics.sdri(est, src, mixture).item(), metrics.si_sdri(est, src, mixture).item()
    assert sdr_gain > 60 and si_sdr_gain < 5


def test_sdr_of_a_perfect_estimate_is_the_ceiling_not_nan_and_nan_input_stays_nan():
    """torchmetrics returns NaN when the estimate is the reference to float64 precision; the score is capped."""
    rng = np.random.default_rng(3)
    ref, noise = rng.standard_normal(4000), rng.standard_normal(4000)
    src, mixture = t(ref)[None], t(ref + noise)
    perfect = metrics.sdri(src.clone(), src, mixture).item()
    from torchmetrics.functional.audio import signal_distortion_ratio

    expected = metrics.SDR_CEILING_DB - signal_distortion_ratio(mixture[None], src).item()
    assert math.isfinite(perfect) and perfect == pytest.approx(expected, abs=1e-6)
    broken = src.clone()
    broken[..., 10] = float("nan")
    assert math.isnan(metrics.sdri(broken, src, mixture).item())


# --- STOI --------------------------------------------------------------------------------------------


def reference_stoi(clean: np.ndarray, degraded: np.ndarray) -> float:
    """Classic STOI (Taal et al. 2011) at 10 kHz, written from the paper for signals without silent frames.

    Independent of pystoi (which also resamples and drops silent frames): 256-sample
    Hann frames at half overlap, 512-point FFT, 15 third-octave bands from 150 Hz,
    30-frame segments, degraded bands scaled to the clean ones and clipped at
    -15 dB SDR, then the mean correlation.
    """
    n_frame, n_fft, n_seg, beta = 256, 512, 30, -15.0
    freqs = np.arange(n_fft // 2 + 1) * 10000 / n_fft
    centres = 150.0 * 2 ** (np.arange(15) / 3)
    edges = [(np.argmin(abs(freqs - c * 2 ** (-1 / 6))), np.argmin(abs(freqs - c * 2 ** (1 / 6)))) for c in centres]
    window = np.hanning(n_frame + 2)[1:-1]

    def bands(signal: np.ndarray) -> np.ndarray:
        frames = np.lib.stride_tricks.sliding_window_view(signal, n_frame)[: signal.size - n_frame : n_frame // 2]
        power = np.abs(np.fft.rfft(frames * window, n_fft)) ** 2
        return np.sqrt(np.stack([power[:, lo:hi].sum(1) for lo, hi in edges]))

    x_bands, y_bands = bands(clean), bands(degraded)
    scores = []
    for m in range(n_seg, x_bands.shape[1] + 1):
        x, y = x_bands[:, m - n_seg : m], y_bands[:, m - n_seg : m]
        y = y * np.linalg.norm(x, axis=1, keepdims=True) / np.linalg.norm(y, axis=1, keepdims=True)
        y = np.minimum(y, x * (1 + 10 ** (-beta / 20)))
        x, y = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
        scores.append((x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)))
    return float(np.mean(scores))


def noisy_tones(seed: int) -> np.ndarray:
    """3 s at 10 kHz of 40 tones across the STOI bands with a slow envelope that never falls silent."""
    rng = np.random.default_rng(seed)
    time = np.arange(30000) / 10000
    tones = sum(np.sin(2 * np.pi * f * time + rng.uniform(0, 6)) for f in rng.uniform(150, 4000, 40))
    return (tones * (1.2 + np.sin(2 * np.pi * 3 * time))).astype(np.float32)


@pytest.mark.parametrize("snr_db", [-5.0, 5.0])
def test_stoi_matches_an_implementation_from_the_paper(snr_db):
    clean = noisy_tones(0)
    degraded = with_noise(clean, snr_db, seed=1)
    got = metrics.stoi(t(degraded)[None], t(clean)[None], 10000).item()
    assert got == pytest.approx(reference_stoi(clean, degraded), abs=3e-3)
    # The argument order matters (clipping acts on the degraded signal): ours is (estimate, reference).
    assert abs(got - pystoi.stoi(degraded, clean, 10000)) > 5 * abs(got - pystoi.stoi(clean, degraded, 10000))


def test_stoi_is_one_for_a_perfect_estimate_and_falls_with_the_snr_at_any_rate():
    for rate in (8000, 16000):
        clean = speech_like(3.0, rate, seed=0)
        est = t(clean, with_noise(clean, 10, 1), with_noise(clean, 0, 2), with_noise(clean, -10, 3))[None]
        got = metrics.stoi(est, torch.from_numpy(np.stack([clean] * 4))[None], rate)[0]
        assert got[0].item() == pytest.approx(1.0, abs=1e-6)
        assert got[0] > got[1] > got[2] > got[3]
    # Rates only change pystoi's resampling to 10 kHz: the same signal at 10 and 20 kHz scores alike.
    clean = noisy_tones(2)
    degraded = with_noise(clean, 0, seed=3)
    at_10k = metrics.stoi(t(degraded)[None], t(clean)[None], 10000).item()
    up = [resample_poly(x, 2, 1).astype(np.float32) for x in (degraded, clean)]
    assert metrics.stoi(t(up[0])[None], t(up[1])[None], 20000).item() == pytest.approx(at_10k, abs=0.01)


# --- PESQ --------------------------------------------------------------------------------------------


def mos_lqo(raw: float, mode: str) -> float:
    """ITU-T P.862.1 (narrow band) and P.862.2 (wide band) mappings of a raw PESQ score to MOS-LQO."""
    a, b = {"nb": (1.4945, 4.6607), "wb": (1.3669, 3.8224)}[mode]
    return 0.999 + 4.0 / (1 + math.exp(-a * raw + b))


@pytest.mark.parametrize("rate, mode", [(8000, "nb"), (16000, "wb")])
def test_pesq_of_a_perfect_estimate_is_the_standards_maximum(rate, mode):
    clean = speech_like(3.0, rate, seed=4)
    est = t(clean, with_noise(clean, 20, 5), with_noise(clean, 0, 6))[None]
    got = metrics.pesq(est, torch.from_numpy(np.stack([clean] * 3))[None], rate)[0]
    assert got[0].item() == pytest.approx(mos_lqo(4.5, mode), abs=1e-3)  # 4.5 is P.862's best raw score
    assert got[0] > got[1] > got[2] > 1.0


@pytest.mark.parametrize("rate", [16001, 22050, 44100, 48000])
def test_pesq_refuses_rates_it_is_not_defined_at(rate):
    x = torch.randn(1, 1, rate)
    with pytest.raises(ValueError, match=rf"PESQ is defined at \[8000, 16000\] Hz only, not {rate} Hz"):
        metrics.pesq(x, x, rate)
    with pytest.raises(ValueError, match=rf"'pesq' supports sample rates \[8000, 16000\] Hz, not {rate} Hz"):
        metrics.check(["si_sdri", "pesq"], rate)


def test_pesq_on_a_silent_reference_says_what_it_needs():
    with pytest.raises(ValueError, match="needs a reference with speech, at least 1/4 s long"):
        metrics.pesq(torch.randn(1, 1, 8000), torch.zeros(1, 1, 8000), 8000)


# --- the registry ------------------------------------------------------------------------------------


def test_registry_knows_where_each_metric_applies():
    assert list(metrics.METRICS) == ["si_sdri", "sdri", "stoi", "pesq"]
    assert [m.speech_only for m in metrics.METRICS.values()] == [False, False, True, True]
    assert metrics.METRICS["pesq"].sample_rates == (8000, 16000)
    assert all(m.sample_rates is None for name, m in metrics.METRICS.items() if name != "pesq")
    assert [m.name for m in metrics.check(["stoi", "sdri"], 44100)] == ["stoi", "sdri"]
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['sisdr'\]; available: \['si_sdri', 'sdri'"):
        metrics.check(["sisdr"], 8000)


def test_evaluate_computes_speech_metrics_on_speech_sources_only():
    rate = 8000
    speech = [speech_like(2.0, rate, seed=s) for s in range(3)]
    env = [with_noise(np.zeros(2 * rate, np.float32), 0, seed=10 + s) * 0.01 + 0.1 for s in range(3)]
    src = torch.from_numpy(np.stack([[speech[0], env[0]], [env[1], speech[1]], [env[2], speech[2] * 0.5]]))
    mix = src.sum(1)
    est = src + 0.05 * torch.randn(src.shape, generator=torch.Generator().manual_seed(0))
    is_speech = torch.tensor([[True, False], [False, True], [False, True]])
    names = ["pesq", "si_sdri", "stoi", "sdri"]
    got = metrics.evaluate(names, est, src, mix, rate, is_speech)
    assert list(got) == names and all(v.shape == (3, 2) and v.dtype == torch.float64 for v in got.values())
    for name in ("stoi", "pesq"):
        assert torch.isnan(got[name][~is_speech]).all() and torch.isfinite(got[name][is_speech]).all()
        for b, s in is_speech.nonzero().tolist():
            alone = getattr(metrics, name)(est[b, s][None, None], src[b, s][None, None], rate)
            assert got[name][b, s].item() == pytest.approx(alone.item(), abs=1e-9)
    torch.testing.assert_close(got["si_sdri"], metrics.si_sdri(est, src, mix).double())
    torch.testing.assert_close(got["sdri"], metrics.sdri(est, src, mix).double())
    with pytest.raises(ValueError, match="speech mask"):
        metrics.evaluate(names, est, src, mix, rate, is_speech[:, :1])
    with pytest.raises(ValueError, match="same shape"):
        metrics.si_sdri(est[:, :1], src, mix)
