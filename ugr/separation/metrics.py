"""Separation metrics per estimated source: SI-SDRi, SDRi, STOI, PESQ. Pure functions, no I/O.

Every function takes estimates already in reference order (``est`` and ``src``
of shape (..., n_src, T), the mixture ``mix`` of shape (..., T)) and returns
one value per estimated source, shape (..., n_src):

* ``si_sdri``: SI-SDR improvement in dB (asteroid's SI-SDR, ``ugr.separation.losses``),
  the recipe's main score.
* ``sdri``: SDR improvement in dB in the bss_eval sense: the estimate may
  differ from the reference by a 512-tap filter at no cost (torchmetrics'
  ``signal_distortion_ratio``, the bss_eval v4 / fast_bss_eval algorithm),
  at most ``SDR_CEILING_DB``: where the estimate is the filtered reference to
  within float64 precision, torchmetrics divides by zero and returns NaN.
* ``stoi``: short-time objective intelligibility in [0, 1] of speech
  estimates (pystoi, which resamples to its 10 kHz internally: any rate).
* ``pesq``: perceptual speech quality, MOS-LQO of ITU-T P.862 (pesq): narrow
  band (P.862.1 mapping) at 8 kHz, wide band (P.862.2) at 16 kHz, no other
  rate.

The registry ``METRICS`` maps the names a config may list (``scoring.metrics``)
to a ``Metric``: its function with one signature for all, whether it applies
to speech sources only, and the sample rates it supports. ``check`` refuses
unknown names and unsupported rates before any work; ``evaluate`` computes a
list of metrics, NaN where a speech-only metric does not apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from ugr.separation import losses

PESQ_MODES = {8000: "nb", 16000: "wb"}  # P.862 is defined at these rates only
# bss_eval SDR of an estimate equal to the filtered reference to within float64 precision: 10 log10 of a
# signal-to-distortion ratio beyond 1e10, where torchmetrics' coh / (1 - coh) meets 1 - coh <= 0 (NaN).
SDR_CEILING_DB = 100.0


def _check_shapes(est: Tensor, src: Tensor, mix: Optional[Tensor] = None) -> None:
    if est.shape != src.shape or est.dim() < 2:
        raise ValueError(
            f"estimates {tuple(est.shape)} and references {tuple(src.shape)} must have the same shape (..., n_src, T)"
        )
    if mix is not None and mix.shape != est.shape[:-2] + est.shape[-1:]:
        raise ValueError(
            f"mixture {tuple(mix.shape)} must have the estimates' shape without the source axis, "
            f"{tuple(est.shape[:-2] + est.shape[-1:])}"
        )


def si_sdri(est: Tensor, src: Tensor, mix: Tensor) -> Tensor:
    """SI-SDR(estimate) - SI-SDR(mixture) per source, dB: the improvement the separation brings."""
    _check_shapes(est, src, mix)
    return losses.si_sdr(est, src) - losses.si_sdr(mix.unsqueeze(-2), src)


def sdri(est: Tensor, src: Tensor, mix: Tensor) -> Tensor:
    """bss_eval SDR(estimate) - SDR(mixture) per source, dB.

    Unlike SI-SDR, SDR forgives any 512-tap filtering of the reference (the
    bss_eval definition), so it does not punish a model for a colouration; the
    two together tell filtering errors from interference.
    """
    from torchmetrics.functional.audio import signal_distortion_ratio  # slow to import: only for this metric

    _check_shapes(est, src, mix)
    mixture = mix.unsqueeze(-2).expand_as(src)

    def sdr(estimate: Tensor) -> Tensor:
        value = signal_distortion_ratio(estimate, src)
        # NaN from finite signals is the perfect-estimate case (SDR_CEILING_DB); NaN inputs stay NaN
        finite = torch.isfinite(estimate).all(-1) & torch.isfinite(src).all(-1)
        value = torch.where(torch.isnan(value) & finite, torch.full_like(value, SDR_CEILING_DB), value)
        return value.clamp(max=SDR_CEILING_DB)

    return sdr(est) - sdr(mixture)


def _per_pair(est: Tensor, src: Tensor, score: Callable[[np.ndarray, np.ndarray], float]) -> Tensor:
    """``score(reference, estimate)`` on every (estimate, reference) pair, (..., n_src, T) -> (..., n_src)."""
    ests = est.detach().reshape(-1, est.shape[-1]).double().cpu().numpy()
    refs = src.detach().reshape(-1, src.shape[-1]).double().cpu().numpy()
    values = [score(ref, e) for ref, e in zip(refs, ests)]
    return torch.tensor(values, dtype=torch.float64).reshape(est.shape[:-1])


def stoi(est: Tensor, src: Tensor, sample_rate: int) -> Tensor:
    """STOI of each estimate against its (speech) reference, in [0, 1] (pystoi, classic STOI).

    Meaningful for speech only: it measures the intelligibility of an
    utterance, so the caller picks the speech sources (``evaluate`` does).
    """
    from pystoi import stoi as backend  # imported here: only this metric needs it

    _check_shapes(est, src)
    return _per_pair(est, src, lambda ref, e: float(backend(ref, e, sample_rate)))


def pesq(est: Tensor, src: Tensor, sample_rate: int) -> Tensor:
    """PESQ (MOS-LQO) of each estimate against its (speech) reference: narrow band at 8 kHz, wide band at 16 kHz.

    Raises ValueError at other rates (P.862 defines no others), and when
    PESQ finds no utterance in a reference (silent, or shorter than a quarter
    of a second).
    """
    mode = PESQ_MODES.get(sample_rate)
    if mode is None:
        raise ValueError(
            f"PESQ is defined at {sorted(PESQ_MODES)} Hz only, not {sample_rate} Hz: resample the "
            f"signals to one of those rates or leave 'pesq' out of scoring.metrics"
        )
    from pesq import PesqError
    from pesq import pesq as backend  # imported here: only this metric needs it

    _check_shapes(est, src)

    def score(ref: np.ndarray, e: np.ndarray) -> float:
        try:
            return float(backend(sample_rate, ref, e, mode))
        except PesqError as err:
            raise ValueError(
                f"PESQ failed on a reference of {ref.size} samples ({type(err).__name__}: {err}): it "
                f"needs a reference with speech, at least 1/4 s long; score only such sources"
            ) from err

    return _per_pair(est, src, score)


@dataclass(frozen=True)
class Metric:
    """A registered metric: ``compute(est, src, mix, sample_rate) -> (..., n_src)``, where it applies, its unit."""

    name: str
    compute: Callable[[Tensor, Tensor, Tensor, int], Tensor]
    speech_only: bool
    sample_rates: Optional[Tuple[int, ...]]  # None: any rate
    unit: str


METRICS: Dict[str, Metric] = {
    "si_sdri": Metric("si_sdri", lambda est, src, mix, rate: si_sdri(est, src, mix), False, None, "dB"),
    "sdri": Metric("sdri", lambda est, src, mix, rate: sdri(est, src, mix), False, None, "dB"),
    "stoi": Metric("stoi", lambda est, src, mix, rate: stoi(est, src, rate), True, None, "[0, 1]"),
    "pesq": Metric(
        "pesq", lambda est, src, mix, rate: pesq(est, src, rate), True, tuple(sorted(PESQ_MODES)), "MOS-LQO"
    ),
}


def check(names: Sequence[str], sample_rate: int) -> list[Metric]:
    """The registered metrics of ``names``; unknown names and unsupported rates are errors that say what works."""
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; available: {list(METRICS)}")
    chosen = [METRICS[name] for name in names]
    for metric in chosen:
        if metric.sample_rates is not None and sample_rate not in metric.sample_rates:
            raise ValueError(
                f"metric {metric.name!r} supports sample rates {list(metric.sample_rates)} Hz, not "
                f"{sample_rate} Hz: leave it out of scoring.metrics or score at a supported rate"
            )
    return chosen


def evaluate(
    names: Sequence[str], est: Tensor, src: Tensor, mix: Tensor, sample_rate: int, speech: Tensor
) -> Dict[str, Tensor]:
    """Every metric of ``names`` per estimated source, (..., n_src) float64 each, in the order of ``names``.

    ``speech`` (bool, (..., n_src)) marks the speech references; speech-only
    metrics are computed on those alone and are NaN elsewhere.
    """
    chosen = check(names, sample_rate)
    _check_shapes(est, src, mix)
    speech = torch.as_tensor(speech, dtype=torch.bool, device=est.device)
    if speech.shape != est.shape[:-1]:
        raise ValueError(
            f"speech mask {tuple(speech.shape)} must have the shape {tuple(est.shape[:-1])} "
            f"(one flag per reference source)"
        )
    mixtures = mix.unsqueeze(-2).expand_as(src)
    results: Dict[str, Tensor] = {}
    for metric in chosen:
        if not metric.speech_only:
            results[metric.name] = metric.compute(est, src, mix, sample_rate).double().cpu()
            continue
        values = torch.full(speech.shape, float("nan"), dtype=torch.float64)
        if speech.any():
            # Gather the speech pairs as a batch of one-source items: (K, 1, T).
            picked = metric.compute(est[speech][:, None], src[speech][:, None], mixtures[speech], sample_rate)
            values[speech.cpu()] = picked[:, 0].double().cpu()
        results[metric.name] = values
    return results
