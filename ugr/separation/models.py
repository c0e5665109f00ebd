"""The separation models: asteroid's Sudo rm -rf (with a fast mask layer), Conv-TasNet and DPRNN-TasNet.

``model.arch`` picks the asteroid class; every arch has its own defaults
(``ARCH_DEFAULTS``) and accepts exactly those keys, so a key meant for another
arch is an error that lists the allowed ones:

* ``sudormrf``: ``SuDORMRFNet``, the paper's model (asteroid's constructor
  defaults: 16 U-blocks, 128 bottleneck channels, 512 bases of 21 taps,
  softmax masks, 2.58 M parameters), with ``mask_layer`` (below) and
  ``bf16_pointwise`` (default false: opt-in bf16 for the 1x1 convolutions and
  the mask product only, for CPUs and GPUs with fast bf16 matrix units; not a
  default, as it rounds gradients to bf16 and is slower without such units).
* ``sudormrf_improved``: ``SuDORMRFImprovedNet``, asteroid's constructor
  defaults (as ``sudormrf`` but ReLU masks through a 1x1 convolution).
* ``convtasnet``: ``ConvTasNet`` with the values of asteroid's WHAM!
  sep_clean recipe (``egs/wham/ConvTasNet``, i.e. wsj0-2mix): 512 bases of 16
  taps, hop 8, 8 blocks x 3 repeats, 128/512/128 channels, ReLU masks
  (asteroid's constructor has sigmoid masks; all else is the same), 5.05 M
  parameters.
* ``dprnntasnet``: ``DPRNNTasNet`` with the values of asteroid's WHAM!
  sep_clean recipe (``egs/wham/DPRNN``): 64 bases of 2 taps, hop 1 (the DPRNN
  paper's best and most expensive setting: one frame per sample), chunks of
  250 frames, hop 125, 6 repeats of bidirectional LSTMs of 128 units. For a
  model 8x cheaper use asteroid's constructor values ``kernel_size: 16,
  stride: 8, chunk_size: 100, hop_size: 50``.

Why a mask layer of our own for ``sudormrf``: asteroid's ``SuDORMRF`` masker
ends in ``nn.Conv2d(1, n_src, kernel_size=(N + 1, 1), padding=(N - N // 2, 0))``,
a convolution ALONG the N encoder bases with a kernel as long as the bases,
whose CPU backward takes most of a training step. The same function is a
product with a Toeplitz matrix built from the kernel; ``ToeplitzMaskConv2d``
computes it that way with the Conv2d's parameters, initialisation and
``state_dict`` keys, so checkpoints move between the fast and the stock layer
in either direction. The other archs have no such layer
(``SuDORMRFImprovedNet`` masks with a cheap 1x1 ``Conv1d``), so
``mask_layer`` is a ``sudormrf`` key only.

Both Sudo rm -rf archs also get ``ugr.separation.kernels``' CPU layers, each with the
stock layer's parameters and keys, for the layers whose stock CPU kernels are
slow: the U-blocks' depthwise convolutions, the masker's 1x1 convolutions and
PReLUs, and a free filterbank's decoder (``ugr.separation.kernels`` says why each;
bench/README.md has the figures).

Activation checkpointing (``checkpoint_blocks``, the config's
``training.activation_checkpointing``) keeps only the input of each of Sudo rm
-rf's U-blocks during the forward pass and recomputes the block in the
backward: the activations of the U-blocks are most of a step's memory, so
the paper's batch fits a smaller GPU for one more forward pass of the blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import Any, Callable, Mapping, Optional

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from asteroid.models import ConvTasNet, DPRNNTasNet, SuDORMRFImprovedNet, SuDORMRFNet
from asteroid_filterbanks.enc_dec import Decoder
from asteroid_filterbanks.free_fb import FreeFB
from torch import Tensor, nn

from ugr.core.checks import Check, boolean, one_of, positive_int, positive_number
from ugr.separation.kernels import Bf16PointwiseConv1d, DepthwiseConv1d, OverlapAddDecoder, PointwiseConv1d, PReLU

ARCHS = {
    "sudormrf": SuDORMRFNet,
    "sudormrf_improved": SuDORMRFImprovedNet,
    "convtasnet": ConvTasNet,
    "dprnntasnet": DPRNNTasNet,
}
MASK_LAYERS = ("fast", "stock")
U_BLOCK_ARCHS = ("sudormrf", "sudormrf_improved")  # the archs whose masker is a chain of U-blocks
FILTERBANKS = ("free", "analytic_free", "param_sinc", "stft")
MASK_ACTIVATIONS = ("softmax", "relu", "sigmoid", "linear", "prelu", "leaky_relu", "tanh", "gelu", "swish")
NORM_TYPES = ("gLN", "cLN", "cgLN", "fgLN", "bN")  # asteroid.masknn.norms
RNN_TYPES = ("LSTM", "GRU", "RNN")

_SUDORMRF_COMMON: dict[str, Any] = {
    "n_src": 2,
    "bn_chan": 128,
    "num_blocks": 16,
    "upsampling_depth": 4,
    "kernel_size": 21,
    "n_filters": 512,
    "fb_name": "free",
    "sample_rate": 8000,
}
# Each arch's defaults; its keys are the keys the arch accepts (besides "arch").
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "sudormrf": {"mask_layer": "fast", "bf16_pointwise": False, **_SUDORMRF_COMMON, "mask_act": "softmax"},
    "sudormrf_improved": {**_SUDORMRF_COMMON, "mask_act": "relu"},
    "convtasnet": {
        "n_src": 2,
        "n_blocks": 8,
        "n_repeats": 3,
        "bn_chan": 128,
        "hid_chan": 512,
        "skip_chan": 128,
        "conv_kernel_size": 3,
        "norm_type": "gLN",
        "mask_act": "relu",
        "causal": False,
        "fb_name": "free",
        "kernel_size": 16,
        "n_filters": 512,
        "stride": 8,
        "sample_rate": 8000,
    },
    "dprnntasnet": {
        "n_src": 2,
        "bn_chan": 128,
        "hid_size": 128,
        "chunk_size": 250,
        "hop_size": 125,
        "n_repeats": 6,
        "norm_type": "gLN",
        "mask_act": "sigmoid",
        "bidirectional": True,
        "rnn_type": "LSTM",
        "num_layers": 1,
        "dropout": 0.0,
        "fb_name": "free",
        "kernel_size": 2,
        "n_filters": 64,
        "stride": 1,
        "sample_rate": 8000,
    },
}

# The paper's model, the default of build_model: SuDORMRFNet, 16 U-blocks, 128
# bottleneck channels, 512 encoder bases of 21 taps, upsampling depth 4,
# softmax masks (2.58 M parameters).
MODEL_DEFAULTS: dict[str, Any] = {"arch": "sudormrf", **ARCH_DEFAULTS["sudormrf"]}

# A model that trains on 2 CPU cores in minutes: a quarter of the U-blocks and
# half the bases of the paper's model (about 0.4 M parameters). Override keys
# of MODEL_DEFAULTS.
CPU_PRESET: dict[str, Any] = {"bn_chan": 128, "num_blocks": 4, "n_filters": 256}


def _kernel_size(value: Any) -> Optional[str]:
    good = positive_int(value) is None and value >= 2
    return None if good else f"must be an integer >= 2 (Sudo rm -rf's encoder hops by kernel_size // 2), got {value!r}"


def _dropout(value: Any) -> Optional[str]:
    good = isinstance(value, Real) and not isinstance(value, bool) and 0 <= value < 1
    return None if good else f"must be a number in [0, 1), got {value!r}"


# What every key must be, whichever arch takes it (``ugr.core.checks``' style: a message, or None).
RULES: dict[str, Check] = {
    **{
        key: positive_int
        for key in (
            "n_src",
            "bn_chan",
            "num_blocks",
            "upsampling_depth",
            "n_filters",
            "n_blocks",
            "n_repeats",
            "hid_chan",
            "skip_chan",
            "conv_kernel_size",
            "hid_size",
            "chunk_size",
            "hop_size",
            "num_layers",
            "stride",
        )
    },
    "kernel_size": _kernel_size,
    "sample_rate": positive_number,  # Hz
    "dropout": _dropout,
    "causal": boolean,
    "bf16_pointwise": boolean,
    "bidirectional": boolean,
    "mask_layer": one_of(*MASK_LAYERS),
    "fb_name": one_of(*FILTERBANKS),
    "mask_act": one_of(*MASK_ACTIVATIONS),
    "norm_type": one_of(*NORM_TYPES),
    "rnn_type": one_of(*RNN_TYPES),
}


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
    ``product_dtype`` (None: the input's; ``build_model``'s ``bf16_pointwise``
    sets bf16) is the dtype the matrix product runs in.
    """

    product_dtype: torch.dtype | None = None

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: tuple[int, int], padding: tuple[int, int], **kwargs: Any
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, **kwargs)
        supported = (
            self.in_channels == 1
            and self.kernel_size[1] == 1
            and self.padding[1] == 0
            and self.stride == (1, 1)
            and self.dilation == (1, 1)
            and self.groups == 1
            and self.padding_mode == "zeros"
            and self.bias is not None
        )
        if not supported:
            raise ValueError(
                f"ToeplitzMaskConv2d reproduces only asteroid's SuDORMRF mask layer "
                f"(1 input channel, kernel (K, 1), padding (P, 0), stride 1, with bias); got {self}"
            )

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
        out = batched_product(
            matrix.reshape(n_src * n_rows_out, n_rows_in), x.reshape(batch, n_rows_in, frames), self.product_dtype
        )
        return out.view(batch, n_src, n_rows_out, frames) + self.bias.view(1, n_src, 1, 1)


def batched_product(matrix: Tensor, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """``matrix @ x[b]`` for every b of a (B, N, T) ``x``, as one batched product on a broadcast view.

    ``torch.matmul`` of a matrix with a batch folds the batch into one matrix
    product by transposing ``x`` and the result, two copies of the largest
    tensors of the step; ``bmm`` on the stride-0 view reads ``x`` as it lies.
    ``dtype`` (e.g. bf16): the product is computed in it and returned in ``x``'s dtype.
    """
    if dtype is None or dtype == x.dtype:
        return torch.bmm(matrix.expand(x.shape[0], -1, -1), x)
    return torch.bmm(matrix.to(dtype).expand(x.shape[0], -1, -1), x.to(dtype)).to(x.dtype)


class TwoSourceSoftmaxMask(ToeplitzMaskConv2d):
    """The fast mask layer and its softmax over two sources, in one: the masks from one N x N product.

    A softmax over two logits a and b is ``(sigmoid(a - b), 1 - sigmoid(a - b))``,
    and ``a - b = (M_0 - M_1) x + (bias_0 - bias_1)``: one product with the
    difference of the two Toeplitz matrices instead of two products, and no
    softmax over a (B, 2, N, T) tensor. The gradients reach both
    kernels and biases through the difference, with opposite signs, as
    through the softmax. It returns masks, not logits: the masker's
    ``output_act`` must be the identity (``build_model`` sets it).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: tuple[int, int], padding: tuple[int, int], **kwargs: Any
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding, **kwargs)
        if self.out_channels != 2:
            raise ValueError(f"TwoSourceSoftmaxMask computes the softmax of two sources; got {self.out_channels}")

    def forward(self, x: Tensor) -> Tensor:
        batch, _, n_rows_in, frames = x.shape
        first, second = self.toeplitz(n_rows_in)
        difference = batched_product(first - second, x.reshape(batch, n_rows_in, frames), self.product_dtype)
        mask = torch.sigmoid(difference + (self.bias[0] - self.bias[1]))
        return torch.stack([mask, 1 - mask], dim=1)


def resolve_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` with its arch's defaults filled in, every key and value checked; the errors say what is allowed."""
    arch = cfg.get("arch", MODEL_DEFAULTS["arch"])
    if arch not in ARCHS:
        raise ValueError(f"model config arch={arch!r} is not allowed; use one of {list(ARCHS)}")
    defaults = ARCH_DEFAULTS[arch]
    unknown = sorted(set(cfg) - set(defaults) - {"arch"})
    if unknown:
        raise ValueError(
            f"unknown model config key(s) {unknown} for arch {arch!r}; its keys: {sorted(['arch', *defaults])}"
        )
    full = {**defaults, **cfg, "arch": arch}
    for key in defaults:
        problem = RULES[key](full[key])
        if problem:
            raise ValueError(f"model config {key} {problem} (arch {arch!r})")
    if full.get("bf16_pointwise") and full.get("mask_layer") != "fast":
        raise ValueError(
            "model config bf16_pointwise=True computes the fast mask layer's product in bf16; it needs mask_layer: fast"
        )
    if arch == "sudormrf" and full["fb_name"] == "free" and full["n_filters"] % 2:
        raise ValueError(
            f"model config n_filters={full['n_filters']} gives {full['n_filters']} encoder bases; "
            f"asteroid's SuDORMRF mask layer outputs N + 1 masks for odd N, which the decoder cannot "
            f"apply: use an even n_filters"
        )
    return full


@dataclass(frozen=True)
class ModelConfig:
    """The config's ``model`` section, checked without building the model: its arch and every key of that arch,
    defaults filled in (``resolve_config``). ``build()`` makes the model."""

    arch: str
    options: Mapping[str, Any]

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> "ModelConfig":
        """The section checked; ValueError saying what is allowed."""
        full = resolve_config(section)
        return cls(full.pop("arch"), full)

    @property
    def n_src(self) -> int:
        return self.options["n_src"]

    def build(self) -> nn.Module:
        return build_model({"arch": self.arch, **self.options})


def build_model(cfg: Mapping[str, Any] | None = None) -> nn.Module:
    """The asteroid model of ``cfg["arch"]`` (default ``sudormrf``), mapping (B, T) to (B, n_src, T).

    Keys: ``arch`` and those of ``ARCH_DEFAULTS[arch]`` (missing keys take its
    values). ``mask_layer`` ("fast" or "stock", ``sudormrf`` only) picks the
    mask layer (``TwoSourceSoftmaxMask`` for two sources and softmax masks,
    else ``ToeplitzMaskConv2d``); ``bf16_pointwise`` (needs the fast mask
    layer) calls ``use_bf16_pointwise``; every other key goes to asteroid's
    constructor. The Sudo rm -rf archs get ``ugr.separation.kernels``' CPU layers. The
    ``state_dict`` is interchangeable with stock asteroid's.
    """
    full = resolve_config(cfg or {})
    arch = full.pop("arch")
    mask_layer = full.pop("mask_layer", None)
    bf16_pointwise = full.pop("bf16_pointwise", False)
    model = ARCHS[arch](**full)
    if arch == "sudormrf":
        if mask_layer == "fast" and full["n_src"] == 2 and full["mask_act"] == "softmax":
            model.masker.m = TwoSourceSoftmaxMask.replacing(model.masker.m)
            model.masker.output_act = nn.Identity()  # the layer returns the softmax's masks
        elif mask_layer == "fast":
            model.masker.m = ToeplitzMaskConv2d.replacing(model.masker.m)
    if arch in U_BLOCK_ARCHS:
        _replace_layers(model.masker, _is_depthwise_conv, DepthwiseConv1d.replacing)  # the U-blocks' spp_dw convs
        if bf16_pointwise:
            use_bf16_pointwise(model)
        _replace_layers(model.masker, _is_pointwise_conv, PointwiseConv1d.replacing)  # those not in bf16
        _replace_layers(model.masker, lambda layer: type(layer) is nn.PReLU, PReLU.replacing)
        if type(model.decoder) is Decoder and type(model.decoder.filterbank) is FreeFB:
            model.decoder = OverlapAddDecoder.replacing(model.decoder)
    return model


def _replace_layers(
    module: nn.Module, wanted: Callable[[nn.Module], bool], replacement: Callable[[nn.Module], nn.Module]
) -> None:
    """Every layer inside ``module`` for which ``wanted`` is true becomes ``replacement(layer)``, in place."""
    found = [(parent, name) for parent in module.modules() for name, child in parent.named_children() if wanted(child)]
    for parent, name in found:
        setattr(parent, name, replacement(getattr(parent, name)))


def _is_depthwise_conv(layer: nn.Module) -> bool:
    """A stock depthwise ``nn.Conv1d`` (groups = in = out channels): in the Sudo rm -rf maskers, the U-blocks'."""
    return (
        type(layer) is nn.Conv1d
        and layer.groups == layer.in_channels == layer.out_channels > 1
        and layer.padding_mode == "zeros"
    )


def _is_pointwise_conv(layer: nn.Module) -> bool:
    """A stock 1x1 ``nn.Conv1d``: in the maskers, the bottleneck, the U-block projections and the mask head."""
    return (
        type(layer) is nn.Conv1d
        and layer.kernel_size == (1,)
        and layer.groups == 1
        and layer.stride == (1,)
        and layer.padding == (0,)
        and layer.dilation == (1,)
    )


def use_bf16_pointwise(model: nn.Module) -> None:
    """The masker's 1x1 convolutions as ``Bf16PointwiseConv1d`` and the fast mask layer's product in bf16, in place.

    The opt-in ``bf16_pointwise``: only the matrix products go to bf16 (where
    bf16 hardware is several times faster), the norms, activations, depthwise
    convolutions, encoder, decoder and loss stay fp32.
    """
    _replace_layers(model.masker, _is_pointwise_conv, Bf16PointwiseConv1d.replacing)
    model.masker.m.product_dtype = torch.bfloat16


class CheckpointedBlocks(nn.Sequential):
    """asteroid's chain of U-blocks (``masker.sm``) with each block under activation checkpointing.

    A subclass of the ``nn.Sequential`` it replaces, holding the same blocks
    under the same names, so parameters and ``state_dict`` keys are
    unchanged. Checkpointing acts only while gradients are recorded; the
    non-reentrant variant works with ``torch.compile`` and DDP. The blocks
    hold no randomness (no dropout), so the recomputation is exact.
    """

    def forward(self, x: Tensor) -> Tensor:
        for block in self:
            if torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


def checkpoint_blocks(model: nn.Module) -> nn.Module:
    """Puts every U-block of a Sudo rm -rf model (``U_BLOCK_ARCHS``) under activation checkpointing, in place."""
    blocks = getattr(getattr(model, "masker", None), "sm", None)
    if not isinstance(blocks, nn.Sequential):
        raise ValueError(
            f"activation checkpointing needs a model with U-blocks (arch one of {list(U_BLOCK_ARCHS)}), "
            f"got {type(model).__name__}; set training.activation_checkpointing: false"
        )
    checkpointed = CheckpointedBlocks()
    for name, block in blocks.named_children():
        checkpointed.add_module(name, block)
    model.masker.sm = checkpointed
    return model
