"""CPU implementations of the layers whose stock CPU kernels are slow, each with the stock layer's parameters.

Each layer keeps the parameters and ``state_dict`` keys of the layer it
replaces, so checkpoints move between them and stock asteroid, and the first
four below are tested against the stock layer within 1e-6 (float32) and 1e-12
(float64) relative (``tests/test_kernels.py``). ``PointwiseConv1d``,
``OverlapAddDecoder`` and ``PReLU`` fall back to the stock layer on CUDA,
under autocast and for other input shapes (only the CPU path was measured).
The measurements behind each choice are in bench/README.md.

``DepthwiseConv1d``: oneDNN computes a depthwise ``Conv1d``'s weight gradient
as one small GEMM per channel, each a parallel region, which is slow on CPU
and very slow with passive OpenMP threads. The same gradient is one depthwise
``conv1d`` over batch x channels groups (``depthwise_weight_grad``), which
costs about the same under either wait policy. The forward and the input
gradient stay oneDNN's.

``PointwiseConv1d``: the 1x1 ``Conv1d`` layers carry most of the masker's
FLOPs, and oneDNN's backward of them runs well below its matrix-product
rate; the two gradients as batched matrix products (``bmm``) run near it.

``OverlapAddDecoder``: asteroid's ``Decoder`` is a transposed convolution
into one channel, which oneDNN runs far below its matrix-product rate; the
same sums are one batched product of the filters with the frames and a few
shifted adds (``overlap_add``).

``PReLU``: the native CPU backward writes a full-size per-element slope
gradient and then sums it; ``prelu_backward`` computes both gradients a
cache-sized chunk of the batch at a time, so memory is read and written
about once.

``Bf16PointwiseConv1d``: the 1x1 convolutions in bf16, for the opt-in
``bf16_pointwise`` (its docstring says why only these layers).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from asteroid_filterbanks.enc_dec import Decoder
from torch import Tensor, nn


def depthwise_weight_grad(grad_out: Tensor, x: Tensor, taps: int, stride: int, padding: int, dilation: int) -> Tensor:
    """The (C, 1, K) weight gradient of a depthwise ``conv1d``: for each tap k,
    ``sum_{b,t} grad_out[b, c, t] * x_pad[b, c, t * stride + k * dilation]``.

    For each (b, c) that is a correlation of the padded input row with the
    gradient row as a kernel of T taps (dilation ``stride``, stride
    ``dilation``), at least K outputs long: one depthwise ``conv1d`` over B*C
    groups, one oneDNN call (a single parallel region), then a sum over the
    batch. The convolution pads the input itself, as a padded copy of it
    would cost a large share of the time.
    """
    batch, channels, frames = x.shape
    rows = x.reshape(1, batch * channels, frames)
    kernel = grad_out.reshape(batch * channels, 1, grad_out.shape[-1])
    per_row = F.conv1d(rows, kernel, None, dilation, padding, stride, groups=batch * channels)[..., :taps]
    return per_row.reshape(batch, channels, taps).sum(0).unsqueeze(1)


def cpu_kernel_applies(x: Tensor, dtype: torch.dtype, dims: tuple[int, ...]) -> bool:
    """Whether a layer here computes ``x`` with its CPU kernel: a CPU tensor of the layer's dtype with one of
    ``dims`` dimensions, outside CPU autocast; else the layer is the stock one (measured on CPU only)."""
    return x.device.type == "cpu" and x.dim() in dims and x.dtype == dtype and not torch.is_autocast_enabled("cpu")


class _DepthwiseConv1dFunction(torch.autograd.Function):
    """``F.conv1d`` with groups = channels; the backward of ``DepthwiseConv1d`` (module docstring)."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int, dilation: int
    ) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.conf = stride, padding, dilation, bias is not None
        return F.conv1d(x, weight, bias, stride, padding, dilation, groups=weight.shape[0])

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        stride, padding, dilation, has_bias = ctx.conf
        # Under autocast the forward ran in the autocast dtype: compute in the gradient's, return in the inputs'.
        x_, weight_ = x.to(grad_out.dtype), weight.to(grad_out.dtype)
        channels, _, taps = weight.shape
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            if stride == 1 and padding <= dilation * (taps - 1):
                # The adjoint of a stride-1 correlation is the correlation with the flipped kernel.
                grad_x = F.conv1d(
                    grad_out, weight_.flip(-1), None, 1, dilation * (taps - 1) - padding, dilation, groups=channels
                )
            else:
                grad_x = torch.ops.aten.convolution_backward(
                    grad_out,
                    x_,
                    weight_,
                    None,
                    [stride],
                    [padding],
                    [dilation],
                    False,
                    [0],
                    channels,
                    [True, False, False],
                )[0]
            grad_x = grad_x.to(x.dtype)
        if ctx.needs_input_grad[1]:
            grad_w = depthwise_weight_grad(grad_out, x_, taps, stride, padding, dilation).to(weight.dtype)
        if has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2)).to(weight.dtype)
        return grad_x, grad_w, grad_b, None, None, None


class DepthwiseConv1d(nn.Conv1d):
    """A depthwise ``nn.Conv1d`` (groups = in = out channels) whose weight gradient is ``depthwise_weight_grad``.

    Same parameters and ``state_dict`` keys as the ``nn.Conv1d`` it replaces,
    so checkpoints move between it and stock asteroid in either direction.
    Only zero padding, symmetric (an int) is accepted: what asteroid's
    U-blocks use.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not (
            self.groups == self.in_channels == self.out_channels
            and self.padding_mode == "zeros"
            and isinstance(self.padding, tuple)
        ):
            raise ValueError(
                f"DepthwiseConv1d computes depthwise convolutions (groups = in = out channels) with "
                f"zero padding given as an int; got {self}"
            )

    @classmethod
    def replacing(cls, stock: nn.Conv1d) -> "DepthwiseConv1d":
        """A layer that takes over ``stock``'s own Parameter objects (no new initialisation, the random stream
        unchanged)."""
        fast = cls(
            stock.in_channels,
            stock.out_channels,
            stock.kernel_size,
            stride=stock.stride,
            padding=stock.padding,
            dilation=stock.dilation,
            groups=stock.groups,
            bias=stock.bias is not None,
            padding_mode=stock.padding_mode,
            device="meta",
        )
        fast.weight, fast.bias = stock.weight, stock.bias
        return fast

    def forward(self, x: Tensor) -> Tensor:
        return _DepthwiseConv1dFunction.apply(
            x, self.weight, self.bias, self.stride[0], self.padding[0], self.dilation[0]
        )


class _PointwiseConv1dFunction(torch.autograd.Function):
    """``F.conv1d`` with a (C_out, C_in, 1) kernel; the backward of ``PointwiseConv1d`` (module docstring)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return F.conv1d(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        matrix = weight[:, :, 0]  # (C_out, C_in)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.bmm(matrix.t().expand(x.shape[0], -1, -1), grad_out)
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(grad_out, x.transpose(1, 2)).sum(0).unsqueeze(-1)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2))
        return grad_x, grad_w, grad_b


class PointwiseConv1d(nn.Conv1d):
    """A 1x1 ``nn.Conv1d`` (kernel 1, stride 1, groups 1) whose CPU backward is two batched matrix products.

    Same parameters and ``state_dict`` keys as the ``nn.Conv1d`` it
    replaces. On CPU, for (B, C_in, T) float inputs, the forward is oneDNN's
    and the gradients are ``_PointwiseConv1dFunction``'s; elsewhere (CUDA,
    unbatched or autocast inputs) it is the stock layer.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not (
            self.kernel_size == (1,)
            and self.stride == (1,)
            and self.groups == 1
            and self.padding == (0,)
            and self.dilation == (1,)
        ):
            raise ValueError(
                f"PointwiseConv1d computes 1x1 convolutions (kernel 1, stride 1, groups 1, no padding); got {self}"
            )

    @classmethod
    def replacing(cls, stock: nn.Conv1d) -> "PointwiseConv1d":
        """A layer that takes over ``stock``'s own Parameter objects."""
        fast = cls(stock.in_channels, stock.out_channels, 1, bias=stock.bias is not None, device="meta")
        fast.weight, fast.bias = stock.weight, stock.bias
        return fast

    def forward(self, x: Tensor) -> Tensor:
        if not cpu_kernel_applies(x, self.weight.dtype, dims=(3,)):
            return super().forward(x)
        return _PointwiseConv1dFunction.apply(x, self.weight, self.bias)


class Bf16PointwiseConv1d(nn.Conv1d):
    """A 1x1 ``nn.Conv1d`` computed in bf16 (inputs and weight rounded to bf16, oneDNN's bf16 convolution, the output
    back in the input's dtype), for ``build_model``'s opt-in ``bf16_pointwise``.

    Why only these layers: the 1x1 convolutions are the model's matrix
    products, where bf16 hardware (AVX-512 BF16, AMX, GPU tensor cores) runs
    several times the fp32 rate; whole-model autocast also casts the many
    elementwise and normalisation ops, which costs more than it gains on CPU
    and moves gradients by about 4e-3. Parameters and their gradients stay
    fp32, so the optimizer and ``state_dict`` are those of the fp32 layer.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.kernel_size != (1,) or self.groups != 1:
            raise ValueError(f"Bf16PointwiseConv1d computes 1x1 convolutions (kernel 1, groups 1); got {self}")

    @classmethod
    def replacing(cls, stock: nn.Conv1d) -> "Bf16PointwiseConv1d":
        """A layer that takes over ``stock``'s own Parameter objects."""
        fast = cls(
            stock.in_channels,
            stock.out_channels,
            stock.kernel_size,
            stride=stock.stride,
            padding=stock.padding,
            groups=stock.groups,
            bias=stock.bias is not None,
            device="meta",
        )
        fast.weight, fast.bias = stock.weight, stock.bias
        return fast

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias.to(torch.bfloat16)
        out = F.conv1d(x.to(torch.bfloat16), self.weight.to(torch.bfloat16), bias, self.stride, self.padding)
        return out.to(x.dtype)


def overlap_add(frames: Tensor, filters: Tensor, hop: int, padding: int, output_padding: int) -> Tensor:
    """``F.conv_transpose1d(frames, filters, stride=hop, padding=padding, output_padding=output_padding)`` for one
    output channel: (N, C, T) frames, (C, 1, K) filters -> (N, 1, L).

    Frame t adds ``sum_c frames[n, c, t] * filters[c, 0, k]`` at sample
    ``t * hop + k``. With the taps padded to R = ceil(K / hop) hops, piece r of
    frame t (taps r * hop ... r * hop + hop - 1) lands on hop-long output block
    t + r: one ``bmm`` of the (R * hop, C) taps with the frames (the weight
    broadcast, no copy), then R shifted adds of (T, hop) blocks, then the
    crop of ``padding`` at both ends (and ``output_padding`` zeros or samples
    at the end). Gradients come from autograd through these ops.
    """
    batch, _, n_frames = frames.shape
    taps = filters.shape[-1]
    pieces = -(-taps // hop)
    padded = F.pad(filters[:, 0, :], (0, pieces * hop - taps))  # (C, R * hop)
    products = torch.bmm(padded.t().expand(batch, -1, -1), frames)  # (N, R * hop, T)
    blocks = products.view(batch, pieces, hop, n_frames).transpose(2, 3)  # (N, R, T, hop)
    summed = sum(F.pad(blocks[:, r], (0, 0, r, pieces - 1 - r)) for r in range(pieces))  # (N, T + R - 1, hop)
    out = summed.reshape(batch, 1, (n_frames + pieces - 1) * hop)
    end = (n_frames - 1) * hop - padding + taps + output_padding  # padding + the transposed convolution's length
    if end > out.shape[-1]:
        out = F.pad(out, (0, end - out.shape[-1]))
    return out[..., padding:end]


class OverlapAddDecoder(Decoder):
    """asteroid's ``Decoder`` computing its transposed convolution as ``overlap_add`` on CPU.

    Holds the stock decoder's own filterbank (same parameters, ``state_dict``
    keys and config). On CPU, for (N, C, T) or (B, n_src, C, T) float input
    outside autocast, ``overlap_add``; otherwise (CUDA, unbatched input,
    autocast) the stock ``Decoder.forward``.
    """

    @classmethod
    def replacing(cls, stock: Decoder) -> "OverlapAddDecoder":
        return cls(stock.filterbank, is_pinv=stock.is_pinv, padding=stock.padding, output_padding=stock.output_padding)

    def forward(self, spec: Tensor, length: int | None = None) -> Tensor:
        filters = self.get_filters()
        if not cpu_kernel_applies(spec, filters.dtype, dims=(3, 4)):
            return super().forward(spec, length)
        spec = self.filterbank.pre_synthesis(spec)
        wav = overlap_add(
            spec.reshape((-1,) + spec.shape[-2:]), filters, self.stride, self.padding, self.output_padding
        )
        if spec.dim() == 4:
            wav = wav.view(spec.shape[:-2] + (-1,))
        wav = self.filterbank.post_synthesis(wav)
        return wav if length is None else wav[..., :length]


PRELU_CHUNK_BYTES = 2 * 2**20  # the input rows prelu_backward takes at a time: their temporaries stay in cache


def prelu_backward(grad_out: Tensor, x: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """The input and slope gradients of ``F.prelu(x, weight)`` for (B, C, T) ``x`` and C or 1 slopes.

    ``grad_x`` is ``grad_out`` where x > 0 and ``slope * grad_out`` elsewhere:
    ``threshold_backward`` (the ReLU's gradient, vectorised) and a ``lerp``
    from it to ``grad_out`` by the slope. The slope's gradient is the sum of
    ``grad_out * min(x, 0)`` over the batch and time (and channels, for one
    slope). Computed ``PRELU_CHUNK_BYTES`` of batch items at a time: each
    chunk's temporaries stay in cache, so memory is read and written about
    once, against the native kernel's full-size per-element slope gradient
    and its sum.
    """
    batch = x.shape[0]
    slopes = weight.numel()
    slope = weight.reshape(1, slopes, 1)
    reduced = (2,) if slopes > 1 else (1, 2)
    rows = max(1, PRELU_CHUNK_BYTES // max(1, x.shape[1] * x.shape[2] * x.element_size()))
    grad_x = torch.empty_like(x)
    per_item = x.new_empty(batch, slopes)
    for start in range(0, batch, rows):
        part = slice(start, start + rows)
        x_part, grad_part = x[part], grad_out[part]
        where_positive = torch.ops.aten.threshold_backward(grad_part, x_part, 0)
        torch.lerp(where_positive, grad_part, slope, out=grad_x[part])
        per_item[part] = (grad_part * x_part.clamp(max=0)).sum(reduced).reshape(-1, slopes)
    return grad_x, per_item.sum(0).reshape(weight.shape)


class _PReLUFunction(torch.autograd.Function):
    """``F.prelu`` with ``prelu_backward`` as its backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        return F.prelu(x, weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, Tensor]:
        x, weight = ctx.saved_tensors
        return prelu_backward(grad_out, x, weight)


class PReLU(nn.PReLU):
    """``nn.PReLU`` whose CPU backward is ``prelu_backward``.

    Same parameter and ``state_dict`` key as the ``nn.PReLU`` it replaces. On
    CPU, for (B, C, T) float inputs outside autocast, ``_PReLUFunction``;
    elsewhere (CUDA, other shapes, autocast) the stock layer.
    """

    @classmethod
    def replacing(cls, stock: nn.PReLU) -> "PReLU":
        """A layer that takes over ``stock``'s own Parameter object."""
        fast = cls(stock.num_parameters, device="meta")
        fast.weight = stock.weight
        return fast

    def forward(self, x: Tensor) -> Tensor:
        if not cpu_kernel_applies(x, self.weight.dtype, dims=(3,)):
            return super().forward(x)
        return _PReLUFunction.apply(x, self.weight)
