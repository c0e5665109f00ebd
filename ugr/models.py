"""The separation model: asteroid's Sudo rm -rf with a fast mask layer.

Why a mask layer of our own: asteroid's ``SuDORMRF`` masker ends in
``nn.Conv2d(1, n_src, kernel_size=(N + 1, 1), padding=(N - N // 2, 0))``, a
convolution ALONG the N encoder bases with a kernel as long as the bases. On
CPU its backward pass takes most of a training step (about 9 of 12 s for the
default model, batch 4 x 2 s at 8 kHz, 2 threads). The same function is a
product with a Toeplitz matrix built from the kernel, which costs a small
fraction of that; ``ToeplitzMaskConv2d`` computes it that way, keeping the
Conv2d's parameters, initialisation and ``state_dict`` keys, so checkpoints
move between the fast and the stock layer in either direction.

``SuDORMRFImprovedNet`` masks with a 1x1 ``Conv1d``, which is already cheap:
``mask_layer`` changes nothing there.
"""
from __future__ import annotations

from numbers import Real
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from asteroid.models import SuDORMRFImprovedNet, SuDORMRFNet
from torch import Tensor, nn

ARCHS = {"sudormrf": SuDORMRFNet, "sudormrf_improved": SuDORMRFImprovedNet}
MASK_LAYERS = ("fast", "stock")
FILTERBANKS = ("free", "analytic_free", "param_sinc", "stft")
MASK_ACTIVATIONS = ("softmax", "relu", "sigmoid", "linear", "prelu", "leaky_relu", "tanh", "gelu", "swish")

# The paper's model: SuDORMRFNet, 16 U-blocks, 128 bottleneck channels, 512
# encoder bases of 21 taps, upsampling depth 4, softmax masks (2.58 M parameters).
MODEL_DEFAULTS: dict[str, Any] = {
    "arch": "sudormrf",
    "mask_layer": "fast",
    "n_src": 2,
    "bn_chan": 128,
    "num_blocks": 16,
    "upsampling_depth": 4,
    "kernel_size": 21,
    "n_filters": 512,
    "fb_name": "free",
    "sample_rate": 8000,
    "mask_act": "softmax",
}

# A model that trains on 2 CPU cores in minutes: a quarter of the U-blocks and
# half the bases of the paper's model (about 0.4 M parameters, one training
# step of batch 4 x 2 s about 0.4 s). Override keys of MODEL_DEFAULTS.
CPU_PRESET: dict[str, Any] = {"bn_chan": 128, "num_blocks": 4, "n_filters": 256}

_POSITIVE_INTS = ("n_src", "bn_chan", "num_blocks", "upsampling_depth", "n_filters")


class ToeplitzMaskConv2d(nn.Conv2d):
    """asteroid's SuDORMRF mask layer computed as one Toeplitz matrix product.

    The stock layer cross-correlates the (B, 1, N, T) input along its N axis
    with a kernel w_s of K taps per output source s, zero-padded by P at both
    ends: ``out[b, s, i, t] = bias[s] + sum_k w_s[k] * x_pad[b, i + k, t]``.
    Substituting j = i + k - P gives ``out[b, s] = M_s @ x[b] + bias[s]`` with
    ``M_s[i, j] = w_s[j + P - i]`` where ``0 <= j + P - i < K``, else 0: the
    same sums without the products with padding zeros, as a matrix product
    that BLAS runs fast in both directions. Gradients reach ``weight`` and
    ``bias`` through the construction of M.

    Same constructor, parameters and ``state_dict`` keys as the ``nn.Conv2d``
    it replaces; only the configuration asteroid uses (one input channel,
    kernel (K, 1), padding (P, 0), stride 1, no dilation) is accepted.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int],
                 padding: tuple[int, int], **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, **kwargs)
        supported = (self.in_channels == 1 and self.kernel_size[1] == 1 and self.padding[1] == 0
                     and self.stride == (1, 1) and self.dilation == (1, 1) and self.groups == 1
                     and self.padding_mode == "zeros" and self.bias is not None)
        if not supported:
            raise ValueError(f"ToeplitzMaskConv2d reproduces only asteroid's SuDORMRF mask layer "
                             f"(1 input channel, kernel (K, 1), padding (P, 0), stride 1, with bias); got {self}")

    @classmethod
    def replacing(cls, stock: nn.Conv2d) -> "ToeplitzMaskConv2d":
        """A fast layer that takes over the stock layer's own Parameter objects.

        Built without initialising new weights, so a seeded model gets the same
        numbers, and the random stream after it, as stock asteroid.
        """
        fast = cls(stock.in_channels, stock.out_channels, stock.kernel_size, padding=stock.padding, device="meta")
        fast.weight, fast.bias = stock.weight, stock.bias
        return fast

    def toeplitz(self, n_rows_in: int) -> Tensor:
        """M of shape (n_src, n_rows_out, n_rows_in): rows of M_s are shifted kernels.

        Built by sliding a window of n_rows_in over the zero-padded kernel
        (``unfold``) and reversing the window order, so that row i starts at
        kernel tap P - i.
        """
        taps, pad = self.kernel_size[0], self.padding[0]
        n_rows_out = n_rows_in + 2 * pad - taps + 1
        left, right = n_rows_out - 1 - pad, n_rows_in - 1 + pad - (taps - 1)
        kernel = self.weight[:, 0, :, 0]  # (n_src, K)
        # Negative padding crops: taps that can only ever meet padding zeros drop out.
        padded = F.pad(kernel, (left, right))
        return padded.unfold(1, n_rows_in, 1).flip(1)

    def forward(self, x: Tensor) -> Tensor:
        batch, _, n_rows_in, frames = x.shape
        matrix = self.toeplitz(n_rows_in)
        n_src, n_rows_out, _ = matrix.shape
        out = torch.matmul(matrix.reshape(n_src * n_rows_out, n_rows_in), x.reshape(batch, n_rows_in, frames))
        return out.view(batch, n_src, n_rows_out, frames) + self.bias.view(1, n_src, 1, 1)


def _check(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults filled in, every key and value checked; the errors say what is allowed."""
    unknown = sorted(set(cfg) - set(MODEL_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown model config key(s) {unknown}; allowed keys: {sorted(MODEL_DEFAULTS)}")
    full = {**MODEL_DEFAULTS, **cfg}
    for key, allowed in (("arch", tuple(ARCHS)), ("mask_layer", MASK_LAYERS), ("fb_name", FILTERBANKS),
                         ("mask_act", MASK_ACTIVATIONS)):
        if full[key] not in allowed:
            raise ValueError(f"model config {key}={full[key]!r} is not allowed; use one of {allowed}")
    for key in _POSITIVE_INTS:
        value = full[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"model config {key}={value!r} must be a positive integer")
    kernel_size = full["kernel_size"]
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 2:
        raise ValueError(f"model config kernel_size={kernel_size!r} must be an integer >= 2 "
                         f"(the encoder hops by kernel_size // 2)")
    rate = full["sample_rate"]
    if isinstance(rate, bool) or not isinstance(rate, Real) or rate <= 0:
        raise ValueError(f"model config sample_rate={rate!r} must be a positive number (Hz)")
    return full


def build_model(cfg: Mapping[str, Any] | None = None) -> nn.Module:
    """asteroid's SuDORMRFNet / SuDORMRFImprovedNet from a config dict.

    Keys: those of ``MODEL_DEFAULTS`` (missing keys take its values). ``arch``
    picks the asteroid class, ``mask_layer`` ("fast" or "stock") the
    implementation of SuDORMRFNet's mask layer, and the rest go to asteroid's
    constructor. The model maps (B, T) to (B, n_src, T), and its
    ``state_dict`` is interchangeable with stock asteroid's.
    """
    full = _check(cfg or {})
    arch, mask_layer = full.pop("arch"), full.pop("mask_layer")
    model = ARCHS[arch](**full)
    if arch == "sudormrf":
        n_bases = model.masker.in_chan
        if n_bases % 2:
            raise ValueError(f"model config n_filters={full['n_filters']} gives {n_bases} encoder bases; asteroid's "
                             f"SuDORMRF mask layer outputs N + 1 masks for odd N, which the decoder cannot apply: "
                             f"use an even n_filters")
        if mask_layer == "fast":
            model.masker.m = ToeplitzMaskConv2d.replacing(model.masker.m)
    return model
