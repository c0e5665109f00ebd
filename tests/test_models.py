"""The fast mask layer is the stock asteroid layer; build_model builds every arch from its defaults and checks its keys."""

from __future__ import annotations

import pytest
import torch
from asteroid.models import ConvTasNet, DPRNNTasNet, SuDORMRFImprovedNet, SuDORMRFNet
from test_system import one_step, tiny_cfg
from torch import nn

from ugr.separation.models import (
    ARCH_DEFAULTS,
    ARCHS,
    CPU_PRESET,
    MODEL_DEFAULTS,
    ToeplitzMaskConv2d,
    TwoSourceSoftmaxMask,
    build_model,
)

TINY = {"n_src": 2, "bn_chan": 16, "num_blocks": 2, "n_filters": 32, "kernel_size": 16}
# A small model of every arch, for the tests that train or export one.
TINY_ARCHS = {
    "sudormrf": {"arch": "sudormrf", "num_blocks": 1, "n_filters": 32, "bn_chan": 16, "upsampling_depth": 2},
    "sudormrf_improved": {
        "arch": "sudormrf_improved",
        "num_blocks": 1,
        "n_filters": 32,
        "bn_chan": 16,
        "upsampling_depth": 2,
    },
    "convtasnet": {
        "arch": "convtasnet",
        "n_blocks": 2,
        "n_repeats": 1,
        "bn_chan": 16,
        "hid_chan": 16,
        "skip_chan": 16,
        "n_filters": 32,
    },
    "dprnntasnet": {
        "arch": "dprnntasnet",
        "n_filters": 16,
        "bn_chan": 16,
        "hid_size": 16,
        "chunk_size": 20,
        "hop_size": 10,
        "n_repeats": 1,
        "kernel_size": 16,
        "stride": 8,
    },
}


def stock_mask_layer(n_bases: int, n_src: int) -> nn.Conv2d:
    """The layer exactly as asteroid's SuDORMRF masker builds it."""
    return nn.Conv2d(1, n_src, kernel_size=(n_bases + 1, 1), padding=(n_bases - n_bases // 2, 0))


def assert_close_relative(actual: torch.Tensor, expected: torch.Tensor, what: str, rtol: float = 1e-5) -> None:
    """Largest error at most rtol times the largest magnitude of the reference."""
    assert actual.shape == expected.shape, what
    scale = expected.abs().max().item()
    error = (actual - expected).abs().max().item()
    assert error <= rtol * scale, f"{what}: max error {error:.3g} > {rtol} * {scale:.3g}"


def forward_backward(layer: nn.Module, x: torch.Tensor, grad_out: torch.Tensor, conv: nn.Conv2d | None = None):
    """Output, input gradient and the gradients of ``conv``'s weight and bias (``conv``: ``layer`` itself by default)."""
    conv = conv or layer
    x = x.clone().requires_grad_(True)
    layer.zero_grad(set_to_none=True)
    out = layer(x)
    out.backward(grad_out)
    return out.detach(), x.grad, conv.weight.grad.clone(), conv.bias.grad.clone()


@pytest.mark.parametrize("n_bases", [1, 2, 7, 8, 33, 64, 512])
@pytest.mark.parametrize("n_src", [1, 2, 3])
def test_fast_layer_matches_stock_forward_and_gradients(n_bases: int, n_src: int) -> None:
    torch.manual_seed(n_bases * 10 + n_src)
    stock = stock_mask_layer(n_bases, n_src)
    with torch.no_grad():  # larger than the default init, so that bias does not dominate
        stock.weight.normal_()
        stock.bias.normal_()
    fast = ToeplitzMaskConv2d.replacing(stock)
    frames = 9 if n_bases < 512 else 50
    x = torch.randn(3, 1, n_bases, frames)
    out_height = 2 * (n_bases - n_bases // 2)  # N for even N, N + 1 for odd N, as in asteroid
    grad_out = torch.randn(3, n_src, out_height, frames)
    expected = forward_backward(stock, x, grad_out)
    actual = forward_backward(fast, x, grad_out)
    assert expected[0].shape == (3, n_src, out_height, frames)
    for name, a, e in zip(("output", "input grad", "weight grad", "bias grad"), actual, expected):
        assert_close_relative(a, e, name)


@pytest.mark.parametrize("taps, pad, n_rows", [(5, 1, 10), (3, 0, 4), (9, 4, 3), (2, 3, 6)])
def test_fast_layer_matches_other_kernel_and_padding_sizes(taps: int, pad: int, n_rows: int) -> None:
    torch.manual_seed(taps)
    stock = nn.Conv2d(1, 2, kernel_size=(taps, 1), padding=(pad, 0)).double()
    fast = ToeplitzMaskConv2d.replacing(stock)
    x = torch.randn(2, 1, n_rows, 4, dtype=torch.double)
    torch.testing.assert_close(fast(x), stock(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_bases", [2, 8, 64, 512])
def test_two_source_layer_gives_the_stock_layers_softmax_and_its_gradients(n_bases: int) -> None:
    torch.manual_seed(n_bases)
    stock = stock_mask_layer(n_bases, 2).double()  # in float64: the identity itself, not fp32 rounding of logits
    with torch.no_grad():
        stock.weight.normal_()
        stock.bias.normal_()
    fused = TwoSourceSoftmaxMask.replacing(stock)
    frames = 9 if n_bases < 512 else 50
    x = torch.randn(3, 1, n_bases, frames, dtype=torch.double)
    grad_out = torch.randn(3, 2, n_bases, frames, dtype=torch.double)
    expected = forward_backward(nn.Sequential(stock, nn.Softmax(dim=1)), x, grad_out, stock)
    actual = forward_backward(fused, x, grad_out)
    for name, a, e in zip(("masks", "input grad", "weight grad", "bias grad"), actual, expected):
        assert_close_relative(a, e, name, rtol=1e-10)


def test_fused_softmax_only_for_two_sources_with_softmax_masks() -> None:
    default = build_model(TINY)
    assert type(default.masker.m) is TwoSourceSoftmaxMask and isinstance(default.masker.output_act, nn.Identity)
    for changed in ({"n_src": 3}, {"mask_act": "relu"}):
        model = build_model({**TINY, **changed})
        assert type(model.masker.m) is ToeplitzMaskConv2d, changed
        assert not isinstance(model.masker.output_act, nn.Identity), changed
    with pytest.raises(ValueError, match="two sources"):
        TwoSourceSoftmaxMask(1, 3, kernel_size=(5, 1), padding=(2, 0))


def test_fast_layer_refuses_what_it_does_not_reproduce() -> None:
    with pytest.raises(ValueError, match="mask layer"):
        ToeplitzMaskConv2d(1, 2, kernel_size=(5, 1), padding=(2, 0), stride=2)
    with pytest.raises(ValueError, match="mask layer"):
        ToeplitzMaskConv2d(2, 2, kernel_size=(5, 1), padding=(2, 0))


def test_fast_model_draws_the_same_weights_as_stock() -> None:
    torch.manual_seed(3)
    ours = build_model(TINY)
    after_ours = torch.rand(1)
    torch.manual_seed(3)
    stock = SuDORMRFNet(**TINY)
    after_stock = torch.rand(1)
    assert isinstance(ours.masker.m, ToeplitzMaskConv2d)
    assert list(ours.state_dict()) == list(stock.state_dict())
    for key, value in stock.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    assert torch.equal(after_ours, after_stock)  # the random stream after the model is unchanged


def test_state_dict_moves_between_stock_and_fast_in_both_directions() -> None:
    torch.manual_seed(0)
    stock = SuDORMRFNet(**TINY).eval()
    ours = build_model({**TINY, "mask_layer": "fast"}).eval()
    ours.load_state_dict(stock.state_dict())  # strict: same keys and shapes
    mixture = torch.randn(2, 1000)
    with torch.no_grad():
        stock_out = stock(mixture)
        assert_close_relative(ours(mixture), stock_out, "stock weights in ours")
        for p in ours.parameters():  # train ours away from stock, then load it back into stock
            p.add_(0.01 * torch.randn_like(p))
        ours_out = ours(mixture)
        stock.load_state_dict(ours.state_dict())
        assert_close_relative(stock(mixture), ours_out, "our weights in stock")
    assert stock_out.shape == (2, 2, 1000)


def test_fast_and_stock_models_have_equal_gradients() -> None:
    torch.manual_seed(1)
    ours = build_model(TINY)
    stock = build_model({**TINY, "mask_layer": "stock"})
    assert type(stock.masker.m) is nn.Conv2d
    stock.load_state_dict(ours.state_dict())
    mixture = torch.randn(2, 1000)
    target = torch.randn(2, 2, 1000)
    grads = []
    for model in (ours, stock):
        ((model(mixture) - target) ** 2).mean().backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
    for name, grad in grads[1].items():
        assert_close_relative(grads[0][name], grad, name)


def test_defaults_are_the_papers_model() -> None:
    model = build_model()
    assert isinstance(model, SuDORMRFNet)
    assert isinstance(model.masker.m, ToeplitzMaskConv2d)
    assert model.masker.num_blocks == 16 and model.masker.bn_chan == 128 and model.masker.in_chan == 512
    assert model.masker.mask_act == "softmax" and model.masker.upsampling_depth == 4
    assert 2.5e6 < sum(p.numel() for p in model.parameters()) < 2.7e6  # about 2.6 M, as in the paper
    assert set(CPU_PRESET) <= set(MODEL_DEFAULTS)


def test_improved_arch_keeps_its_cheap_1x1_mask_layer() -> None:
    torch.manual_seed(0)
    model = build_model({**TINY, "arch": "sudormrf_improved"})
    assert isinstance(model, SuDORMRFImprovedNet)
    assert not any(isinstance(m, ToeplitzMaskConv2d) for m in model.modules())
    assert model(torch.randn(2, 1000)).shape == (2, 2, 1000)


@pytest.mark.parametrize(
    "cfg, named",
    [
        ({"arch": "tasnet"}, "arch"),
        ({"mask_layer": "toeplitz"}, "mask_layer"),
        ({"nfilters": 256}, "nfilters"),
        ({"mask_act": "softplus"}, "mask_act"),
        ({"fb_name": "mel"}, "fb_name"),
        ({"n_src": 0}, "n_src"),
        ({"num_blocks": 2.0}, "num_blocks"),
        ({"bn_chan": True}, "bn_chan"),
        ({"kernel_size": 1}, "kernel_size"),
        ({"bf16_pointwise": "yes"}, "bf16_pointwise"),
        ({"bf16_pointwise": True, "mask_layer": "stock"}, "bf16_pointwise"),
        ({"sample_rate": -8000}, "sample_rate"),
        ({**TINY, "n_filters": 33}, "n_filters"),
        ({"arch": "convtasnet", "norm_type": "LN"}, "norm_type"),
        ({"arch": "convtasnet", "causal": "no"}, "causal"),
        ({"arch": "dprnntasnet", "dropout": 1.5}, "dropout"),
        ({"arch": "dprnntasnet", "rnn_type": "lstm"}, "rnn_type"),
    ],
)
def test_bad_config_names_the_key(cfg: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        build_model(cfg)


@pytest.mark.parametrize(
    "arch, key",
    [
        ("convtasnet", "mask_layer"),
        ("sudormrf_improved", "mask_layer"),
        ("sudormrf", "n_blocks"),
        ("dprnntasnet", "num_blocks"),
    ],
)
def test_keys_of_another_arch_are_refused_with_this_archs_keys(arch: str, key: str) -> None:
    value = MODEL_DEFAULTS.get(key, ARCH_DEFAULTS["convtasnet"].get(key))
    with pytest.raises(ValueError, match=rf"\['{key}'\] for arch '{arch}'; its keys: \['arch', ") as refused:
        build_model({"arch": arch, key: value})
    for allowed in ARCH_DEFAULTS[arch]:
        assert repr(allowed) in str(refused.value)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_each_arch_builds_from_its_own_defaults(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model({"arch": arch}).eval()
    assert type(model) is ARCHS[arch]
    assert any(isinstance(m, ToeplitzMaskConv2d) for m in model.modules()) == (arch == "sudormrf")
    # The defaults reached asteroid's constructor (its own record of its arguments).
    args = model.get_model_args()
    for key, value in ARCH_DEFAULTS[arch].items():
        if key not in ("mask_layer", "bf16_pointwise", "fb_name"):
            assert args[key] == value, key
    with torch.no_grad():
        assert model(torch.randn(2, 1200)).shape == (2, 2, 1200)


def test_stated_defaults_are_asteroids() -> None:
    """Sudo rm -rf: asteroid's constructor defaults; Conv-TasNet and DPRNN: asteroid's WHAM! recipe values."""
    recipes = {
        ConvTasNet: {
            "n_filters": 512,
            "kernel_size": 16,
            "stride": 8,
            "n_blocks": 8,
            "n_repeats": 3,
            "mask_act": "relu",
            "bn_chan": 128,
            "skip_chan": 128,
            "hid_chan": 512,
        },
        DPRNNTasNet: {
            "n_filters": 64,
            "kernel_size": 2,
            "stride": 1,
            "bn_chan": 128,
            "hid_size": 128,
            "chunk_size": 250,
            "hop_size": 125,
            "n_repeats": 6,
            "mask_act": "sigmoid",
            "bidirectional": True,
            "dropout": 0,
        },
    }
    for arch, cls in (("convtasnet", ConvTasNet), ("dprnntasnet", DPRNNTasNet)):
        assert {k: ARCH_DEFAULTS[arch][k] for k in recipes[cls]} == recipes[cls]
    for arch, cls in (("sudormrf", SuDORMRFNet), ("sudormrf_improved", SuDORMRFImprovedNet)):
        stock = cls(n_src=2).get_model_args()
        ours_only = ("mask_layer", "bf16_pointwise", "fb_name")
        assert all(stock[k] == v for k, v in ARCH_DEFAULTS[arch].items() if k not in ours_only)


@pytest.mark.parametrize("arch", list(TINY_ARCHS))
def test_each_arch_trains_one_step_through_the_lightning_system(arch: str, tmp_path) -> None:
    cfg = tiny_cfg({"type": "robust", "alpha": 0.5})
    cfg["model"] = TINY_ARCHS[arch]
    grads, initial, trainer = one_step(cfg, tmp_path)
    assert type(initial.model) is ARCHS[arch]
    params = {name: p.detach().clone() for name, p in initial.model.named_parameters()}
    # Every parameter the model uses gets a gradient (Conv-TasNet's last residual conv is unused by asteroid).
    initial.model(torch.randn(2, 800)).sum().backward()
    used = {f"model.{name}" for name, p in initial.model.named_parameters() if p.grad is not None}
    assert set(grads) == used and len(used) >= len(params) - 2
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert sum(g.abs().sum().item() for g in grads.values()) > 0
    trained = dict(trainer.lightning_module.model.named_parameters())
    assert any(not torch.equal(trained[name], value) for name, value in params.items()), "the step changed nothing"
