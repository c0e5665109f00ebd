"""ugr.separation.kernels' layers compute the stock layers' function and gradients, and build_model uses them in the U-blocks
without changing the state_dict."""

from __future__ import annotations

import pytest
import torch
from asteroid.models import SuDORMRFImprovedNet, SuDORMRFNet
from asteroid_filterbanks import make_enc_dec
from torch import nn

from ugr.separation import kernels
from ugr.separation.kernels import (
    Bf16PointwiseConv1d,
    DepthwiseConv1d,
    OverlapAddDecoder,
    PointwiseConv1d,
    PReLU,
    overlap_add,
)
from ugr.separation.models import build_model

TINY = {"n_src": 2, "bn_chan": 16, "num_blocks": 2, "n_filters": 32, "kernel_size": 16, "upsampling_depth": 3}


def max_relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    assert actual.shape == expected.shape
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def gradients(layer: nn.Module, x: torch.Tensor, grad_out: torch.Tensor) -> dict[str, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    out = layer(x)
    out.backward(grad_out)
    found = {"output": out.detach(), "input": x.grad, "weight": layer.weight.grad}
    if getattr(layer, "bias", None) is not None:
        found["bias"] = layer.bias.grad
    return found


# (taps, stride, padding, dilation, bias): the U-blocks' two layers (asteroid's _DilatedConvNorm: 5 taps, stride 1
# and 2, padding 2, with bias) first, then other shapes the layer accepts.
SHAPES = [
    (5, 1, 2, 1, True),
    (5, 2, 2, 1, True),
    (3, 1, 2, 2, True),
    (3, 3, 1, 2, False),
    (4, 2, 0, 1, True),
    (2, 1, 3, 1, True),
    (1, 1, 0, 1, False),
]


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("taps, stride, padding, dilation, bias", SHAPES)
def test_depthwise_layer_has_the_stock_layers_output_and_gradients(
    taps, stride, padding, dilation, bias, dtype, rtol
) -> None:
    torch.manual_seed(taps * 100 + stride * 10 + dilation)
    channels = 12
    stock = nn.Conv1d(
        channels, channels, taps, stride=stride, padding=padding, dilation=dilation, groups=channels, bias=bias
    ).to(dtype)
    fast = DepthwiseConv1d.replacing(stock)
    assert fast.weight is stock.weight and fast.bias is stock.bias
    for frames in (37, 400):  # odd and even lengths meet the strides differently
        x = torch.randn(3, channels, frames, dtype=dtype)
        grad_out = torch.randn_like(stock(x))
        expected = gradients(stock, x, grad_out)
        stock.zero_grad(set_to_none=True)
        actual = gradients(fast, x, grad_out)
        stock.zero_grad(set_to_none=True)
        assert actual.keys() == expected.keys() == {"output", "input", "weight", *(["bias"] if bias else [])}
        for name in expected:
            assert max_relative_error(actual[name], expected[name]) <= rtol, (name, frames)


def test_depthwise_layer_refuses_other_convolutions() -> None:
    with pytest.raises(ValueError, match="depthwise"):
        DepthwiseConv1d(4, 4, 3, groups=2)
    with pytest.raises(ValueError, match="depthwise"):
        DepthwiseConv1d(4, 4, 3, groups=4, padding_mode="reflect")


@pytest.mark.parametrize("arch, stock_class", [("sudormrf", SuDORMRFNet), ("sudormrf_improved", SuDORMRFImprovedNet)])
def test_u_blocks_use_the_depthwise_layer_with_the_stock_state_dict(arch, stock_class) -> None:
    torch.manual_seed(0)
    stock = stock_class(**TINY).eval()
    cfg = {"arch": arch, **TINY, **({"mask_layer": "stock"} if arch == "sudormrf" else {})}
    ours = build_model(cfg).eval()
    swapped = [m for m in ours.modules() if isinstance(m, DepthwiseConv1d)]
    stock_depthwise = [m for m in stock.modules() if isinstance(m, nn.Conv1d) and m.groups > 1]
    assert len(swapped) == len(stock_depthwise) == TINY["num_blocks"] * TINY["upsampling_depth"]
    assert {m.stride for m in swapped} == {(1,), (2,)}
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in stock.state_dict().items()]
    ours.load_state_dict(stock.state_dict())
    mixture = torch.randn(2, 1000)
    with torch.no_grad():
        representation = stock.forward_encoder(mixture.unsqueeze(1))
        # The masker runs the same oneDNN forward: identical, not only close; the decoder adds in another order.
        assert torch.equal(ours.forward_masker(representation), stock.forward_masker(representation))
        assert max_relative_error(ours(mixture), stock(mixture)) <= 1e-6


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("channels_in, channels_out, bias", [(128, 256, True), (256, 128, True), (7, 3, False)])
def test_pointwise_layer_has_the_stock_layers_output_and_gradients(
    channels_in, channels_out, bias, dtype, rtol
) -> None:
    torch.manual_seed(3)
    stock = nn.Conv1d(channels_in, channels_out, 1, bias=bias).to(dtype)
    fast = PointwiseConv1d.replacing(stock)
    x = torch.randn(3, channels_in, 50, dtype=dtype)
    grad_out = torch.randn(3, channels_out, 50, dtype=dtype)
    expected = gradients(stock, x, grad_out)
    for p in stock.parameters():
        p.grad = None
    found = gradients(fast, x, grad_out)
    assert fast.weight is stock.weight and list(fast.state_dict()) == list(stock.state_dict())
    assert found.keys() == expected.keys()
    for key in expected:
        assert max_relative_error(found[key], expected[key]) <= rtol, key


def test_pointwise_layer_refuses_other_convolutions() -> None:
    for kwargs in ({"kernel_size": 3}, {"kernel_size": 1, "groups": 2}, {"kernel_size": 1, "stride": 2}):
        with pytest.raises(ValueError, match="1x1"):
            PointwiseConv1d(4, 4, **kwargs)


@pytest.mark.parametrize("arch", ["sudormrf", "sudormrf_improved"])
def test_maskers_pointwise_convolutions_use_the_pointwise_layer_unless_in_bf16(arch) -> None:
    stock_class = SuDORMRFNet if arch == "sudormrf" else SuDORMRFImprovedNet
    torch.manual_seed(0)
    stock = stock_class(**TINY)
    expected = [
        name
        for name, m in stock.masker.named_modules()
        if type(m) is nn.Conv1d and m.kernel_size == (1,) and m.groups == 1
    ]
    ours = build_model({"arch": arch, **TINY})
    assert expected and [name for name, m in ours.masker.named_modules() if type(m) is PointwiseConv1d] == expected
    if arch == "sudormrf":
        in_bf16 = build_model({"arch": arch, **TINY, "bf16_pointwise": True})
        assert not any(isinstance(m, PointwiseConv1d) for m in in_bf16.modules())
        assert [name for name, m in in_bf16.masker.named_modules() if type(m) is Bf16PointwiseConv1d] == expected


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("slopes", [24, 1])
@pytest.mark.parametrize("chunk_bytes", [kernels.PRELU_CHUNK_BYTES, 3000])  # one chunk; chunks of 2 of 5 items
def test_prelu_layer_has_the_stock_layers_output_and_gradients(slopes, chunk_bytes, dtype, rtol, monkeypatch) -> None:
    monkeypatch.setattr(kernels, "PRELU_CHUNK_BYTES", chunk_bytes)
    torch.manual_seed(6)
    stock = nn.PReLU(slopes, init=0.3).to(dtype)
    with torch.no_grad():
        stock.weight.uniform_(-0.5, 1.5)  # slopes of either sign, above and below lerp's 0.5 switch
    fast = PReLU.replacing(stock)
    x = torch.randn(5, 24, 16, dtype=dtype)
    x[0, 0, :4] = 0.0  # PReLU's gradient at 0 is the slope's side
    grad_out = torch.randn(5, 24, 16, dtype=dtype)
    expected = gradients(stock, x, grad_out)
    stock.weight.grad = None
    found = gradients(fast, x, grad_out)
    assert fast.weight is stock.weight and list(fast.state_dict()) == list(stock.state_dict())
    for key in expected:
        assert max_relative_error(found[key], expected[key]) <= rtol, key


def test_prelu_layer_is_the_stock_layer_for_other_shapes() -> None:
    stock = nn.PReLU(6)
    fast = PReLU.replacing(stock)
    for shape in ((4, 6), (2, 6, 3, 5)):
        x = torch.randn(*shape)
        assert torch.equal(fast(x), stock(x)), shape


def test_prelu_layer_takes_an_empty_batch_like_the_stock_layer() -> None:
    stock = nn.PReLU(6)
    fast = PReLU.replacing(stock)
    x = torch.randn(0, 6, 5, requires_grad=True)
    fast(x).sum().backward()
    assert x.grad.shape == x.shape and torch.equal(stock.weight.grad, torch.zeros(6))


@pytest.mark.parametrize("arch", ["sudormrf", "sudormrf_improved"])
def test_maskers_prelus_use_the_prelu_layer(arch) -> None:
    stock_class = SuDORMRFNet if arch == "sudormrf" else SuDORMRFImprovedNet
    torch.manual_seed(0)
    expected = [name for name, m in stock_class(**TINY).masker.named_modules() if type(m) is nn.PReLU]
    ours = build_model({"arch": arch, **TINY})
    assert expected and [name for name, m in ours.masker.named_modules() if type(m) is PReLU] == expected
    assert not any(type(m) is nn.PReLU for m in ours.modules())


# (taps, hop, padding, output_padding): Sudo rm -rf's decoder (21 taps, hop 10, padding 10, output padding 9)
# first, then Conv-TasNet's (16, 8, no padding), a hop that divides the taps, a single hop, a hop longer than the taps.
DECODERS = [(21, 10, 10, 9), (16, 8, 0, 0), (12, 4, 3, 1), (5, 1, 2, 0), (3, 4, 0, 2)]


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("taps, hop, padding, output_padding", DECODERS)
def test_overlap_add_is_the_transposed_convolution_with_its_gradients(
    taps, hop, padding, output_padding, dtype, rtol
) -> None:
    torch.manual_seed(4)
    frames = torch.randn(3, 8, 40, dtype=dtype, requires_grad=True)
    filters = torch.randn(8, 1, taps, dtype=dtype, requires_grad=True)
    expected = torch.nn.functional.conv_transpose1d(
        frames, filters, stride=hop, padding=padding, output_padding=output_padding
    )
    grad_out = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, (frames, filters), grad_out)
    found = overlap_add(frames, filters, hop, padding, output_padding)
    found_grads = torch.autograd.grad(found, (frames, filters), grad_out)
    assert max_relative_error(found, expected) <= rtol
    for got, want in zip(found_grads, expected_grads):
        assert max_relative_error(got, want) <= rtol


def test_overlap_add_decoder_is_the_stock_decoder_for_every_input_shape() -> None:
    torch.manual_seed(5)
    _, stock = make_enc_dec("free", n_filters=16, kernel_size=21, stride=10, padding=10, output_padding=9)
    fast = OverlapAddDecoder.replacing(stock)
    assert fast.filterbank is stock.filterbank and list(fast.state_dict()) == list(stock.state_dict())
    for shape, length in (((3, 16, 30), None), ((2, 2, 16, 30), None), ((2, 2, 16, 30), 250), ((16, 30), None)):
        spec = torch.randn(*shape)
        with torch.no_grad():
            expected, found = stock(spec, length), fast(spec, length)
        assert found.shape == expected.shape and max_relative_error(found, expected) <= 1e-6, shape


@pytest.mark.parametrize("arch", ["sudormrf", "sudormrf_improved"])
def test_u_block_models_decode_by_overlap_add_and_other_filterbanks_stay_stock(arch) -> None:
    assert type(build_model({"arch": arch, **TINY}).decoder) is OverlapAddDecoder
    assert type(build_model({"arch": arch, **TINY, "fb_name": "param_sinc"}).decoder) is not OverlapAddDecoder


def test_model_gradients_equal_stock_asteroids() -> None:
    torch.manual_seed(1)
    stock = SuDORMRFNet(**TINY).double()
    ours = build_model({**TINY, "mask_layer": "stock"}).double()
    ours.load_state_dict(stock.state_dict())
    mixture = torch.randn(2, 1000, dtype=torch.double)
    target = torch.randn(2, 2, 1000, dtype=torch.double)
    for model in (stock, ours):
        ((model(mixture) - target) ** 2).mean().backward()
    stock_grads = dict(stock.named_parameters())
    for name, p in ours.named_parameters():
        assert max_relative_error(p.grad, stock_grads[name].grad) <= 1e-10, name


def test_bf16_pointwise_layer_rounds_to_bf16_and_keeps_fp32_parameters() -> None:
    torch.manual_seed(2)
    stock = nn.Conv1d(24, 12, 1)
    fast = Bf16PointwiseConv1d.replacing(stock)
    x = torch.randn(3, 24, 50)
    grad_out = torch.randn(3, 12, 50)
    expected = gradients(stock, x, grad_out)
    stock.zero_grad(set_to_none=True)
    actual = gradients(fast, x, grad_out)
    for name in expected:
        assert actual[name].dtype == torch.float32, name
        error = max_relative_error(actual[name], expected[name])
        assert 1e-6 < error < 3e-2, (name, error)  # bf16's rounding (8 bits of mantissa), not fp32's
    with torch.no_grad():  # exactly the product of the bf16-rounded operands
        rounded = nn.functional.conv1d(x.bfloat16(), stock.weight.bfloat16(), stock.bias.bfloat16())
        assert torch.equal(fast(x), rounded.float())
    with pytest.raises(ValueError, match="1x1"):
        Bf16PointwiseConv1d(4, 4, 3)


def test_bf16_pointwise_config_is_opt_in_and_changes_only_the_products() -> None:
    torch.manual_seed(3)
    fp32 = build_model(TINY)
    bf16 = build_model({**TINY, "bf16_pointwise": True})
    assert not any(isinstance(m, Bf16PointwiseConv1d) for m in fp32.modules())
    assert fp32.masker.m.product_dtype is None and bf16.masker.m.product_dtype is torch.bfloat16
    pointwise = [m for m in bf16.modules() if isinstance(m, Bf16PointwiseConv1d)]
    # l1, reshape_before_masks, and per U-block the reduction and the expansion
    assert len(pointwise) == 2 + 2 * TINY["num_blocks"]
    assert not any(type(m) is nn.Conv1d and m.kernel_size == (1,) for m in bf16.masker.modules())
    bf16.load_state_dict(fp32.state_dict())  # strict: the same keys and shapes
    mixture = torch.randn(2, 1000)
    target = torch.randn(2, 2, 1000)
    outs, grads = [], []
    for model in (fp32, bf16):
        out = model(mixture)
        ((out - target) ** 2).mean().backward()
        outs.append(out.detach())
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    assert outs[1].dtype == torch.float32 and not torch.equal(outs[1], outs[0])
    assert max_relative_error(outs[1], outs[0]) < 5e-2
    assert torch.nn.functional.cosine_similarity(grads[1], grads[0], dim=0) > 0.99


def test_model_speed_counts_depthwise_backward_flops_once() -> None:
    """bench/model_speed.py's FLOP count: a depthwise layer's backward costs twice its forward (input and weight
    gradients), where torch's own formula counts the weight gradient ``groups`` times over; our layer's gradients,
    computed as convolutions of other shapes, count the same."""
    import sys
    from pathlib import Path

    from torch.utils.flop_counter import FlopCounterMode

    bench = str(Path(__file__).resolve().parents[1] / "bench")
    sys.path.insert(0, bench)
    try:
        import model_speed
    finally:
        sys.path.remove(bench)
    channels, frames, taps = 64, 100, 5
    forward = 2 * 4 * frames * taps * channels  # multiply-adds x 2: batch x output frames x taps x channels
    layer = DepthwiseConv1d(channels, channels, taps, padding=2, groups=channels)
    x = torch.randn(4, channels, frames, requires_grad=True)

    def step() -> None:
        layer(x).sum().backward()

    assert sum(op[1] for op in model_speed.step_costs(step)) == 3 * forward
    stock = nn.Conv1d(channels, channels, taps, padding=2, groups=channels)
    assert sum(op[1] for op in model_speed.step_costs(lambda: stock(x).sum().backward())) == 3 * forward
    with FlopCounterMode(display=False) as torch_counter:  # torch's formula, for contrast
        stock(x).sum().backward()
    assert torch_counter.get_total_flops() == 2 * forward + channels * forward
