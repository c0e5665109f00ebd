"""The reweighting core: pmf properties and the gradient identity on a real separator."""

import math

import numpy as np
import pytest
import torch
from asteroid.models import SuDORMRFImprovedNet
from hypothesis import given, settings
from hypothesis import strategies as st

from ugr.core.pmf import effective_sample_size, max_weight, pmf
from ugr.core.step import reweigh
from ugr.core.weighting import build
from ugr.separation import losses as L

shapes = st.lists(st.integers(1, 6), min_size=1, max_size=3)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, scale=st.floats(1e-3, 1e4), seed=st.integers(0, 2**31 - 1))
def test_pmf_is_a_distribution(shape, scale, seed):
    logits = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale
    p = pmf(logits)
    assert p.shape == logits.shape
    assert (p >= 0).all()
    assert abs(p.double().sum().item() - 1.0) <= 1e-6


def test_pmf_is_stable_for_huge_logits_and_gives_zero_to_minus_inf():
    p = pmf(torch.tensor([1e4, -1e4, 1e4 - 1.0, -math.inf]))
    assert torch.isfinite(p).all()
    assert p[3] == 0 and p[1] == 0
    assert p[0] / p[2] == pytest.approx(math.e, rel=1e-5)


@pytest.mark.parametrize(
    "logits, message",
    [
        (torch.full((3,), -math.inf), "every logit is -inf"),
        (torch.tensor([0.0, math.nan]), "NaN"),
        (torch.tensor([0.0, math.inf]), "\\+inf"),
        (torch.zeros(0), "empty"),
    ],
)
def test_pmf_rejects_logits_that_define_no_distribution(logits, message):
    with pytest.raises(ValueError, match=message):
        pmf(logits)


def test_uniform_logits_give_the_mean():
    losses = torch.randn(4, 3)
    assert reweigh(losses, lambda **context: torch.zeros(4, 3)).loss.item() == pytest.approx(
        losses.mean().item(), abs=1e-6
    )


def test_reweigh_refuses_a_weighting_that_gives_one_logit_per_batch():
    with pytest.raises(ValueError, match=r"logits \(\) for losses \(3,\); it must give one logit per per-example"):
        reweigh(torch.zeros(3), lambda **context: torch.zeros(()))


def test_weights_are_constants_for_backward():
    losses = torch.tensor([0.5, 2.0, -1.0], requires_grad=True)
    logits = 0.7 * losses  # not detached by the caller
    assert not pmf(logits).requires_grad
    reweigh(losses, lambda **context: logits).loss.backward()
    # d/dL sum p L with p constant is p itself; a p with a graph would add p*(L - sum pL)*alpha.
    assert torch.allclose(losses.grad, pmf(logits), atol=0, rtol=0)


def test_diagnostics():
    uniform = pmf(torch.zeros(8))
    assert effective_sample_size(uniform).item() == pytest.approx(8.0)
    assert max_weight(uniform).item() == pytest.approx(1 / 8)
    peaked = pmf(torch.tensor([0.0, -math.inf, -math.inf]))
    assert effective_sample_size(peaked).item() == pytest.approx(1.0)
    assert max_weight(peaked).item() == 1.0


# --- gradient identity on a real separation model -------------------------------------

CLASSES = [["speech", "dog"], ["rain", "speech"], ["dog", "rain"]]
COARSE = [["speech" if c == "speech" else "env" for c in row] for row in CLASSES]
WEIGHTINGS = {
    "uniform": {"type": "uniform"},
    "robust": {"type": "robust", "alpha": 0.3},
    "robust_neg_sisdri": {"type": "robust", "alpha": 0.3, "signal": "neg_sisdri"},
    "curriculum": {"type": "curriculum", "beta0": -0.5, "horizon_steps": 10, "schedule": "exponential"},
    "class": {"type": "class", "gamma": {"speech": 1.5, "dog": -0.5}},
    "sum": {"type": "sum", "terms": [{"type": "robust", "alpha": 0.2}, {"type": "class", "gamma": {"env": 1.0}}]},
}


@pytest.fixture(scope="module")
def separation_batch():
    torch.manual_seed(0)
    model = SuDORMRFImprovedNet(
        n_src=2, bn_chan=8, num_blocks=2, upsampling_depth=2, n_filters=16, kernel_size=9, sample_rate=8000
    ).double()
    src = torch.randn(3, 2, 400, dtype=torch.float64)
    src[:, 0] *= torch.tensor([1.0, 0.3, 2.0], dtype=torch.float64)[:, None]
    return model, src.sum(1), src


def _terms(model, mix, src, granularity):
    per_source, _ = L.pit_neg_sisdr(model(mix), src)
    neg_sisdri = L.neg_sisdri(per_source, mix, src)
    return L.at_granularity(per_source, granularity), L.at_granularity(neg_sisdri, granularity)


def _flat_grad(model, scalar, retain_graph=False):
    grads = torch.autograd.grad(scalar, list(model.parameters()), retain_graph=retain_graph)
    return torch.cat([g.reshape(-1) for g in grads])


@pytest.mark.parametrize("granularity", ["source", "mixture"])
@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_gradient_equals_weighted_sum_of_per_example_gradients(separation_batch, name, granularity):
    model, mix, src = separation_batch
    weighting = build({**WEIGHTINGS[name], "granularity": granularity})
    losses, neg_sisdri = _terms(model, mix, src, granularity)
    logits = weighting(losses=losses, neg_sisdri=neg_sisdri, classes=CLASSES, coarse=COARSE, step=3, epoch=0)
    p = pmf(logits)
    batch_grad = _flat_grad(model, reweigh(losses, lambda **context: logits).loss)

    expected = torch.zeros_like(batch_grad)
    for b in range(mix.shape[0]):  # one example at a time: its own forward pass
        own, _ = _terms(model, mix[b : b + 1], src[b : b + 1], granularity)
        for index in np.ndindex(*own.shape[1:]):
            expected += p[(b, *index)] * _flat_grad(model, own[(0, *index)], retain_graph=True)
    assert torch.linalg.norm(batch_grad - expected) <= 1e-5 * torch.linalg.norm(expected)
    assert torch.allclose(batch_grad, expected, rtol=1e-5, atol=1e-9 * expected.abs().max().item())
    if name != "uniform":
        assert not torch.allclose(p, torch.full_like(p, 1 / p.numel())), "test needs non-uniform weights"


@pytest.mark.parametrize("granularity", ["source", "mixture"])
def test_uniform_weights_give_the_gradient_of_the_plain_mean(separation_batch, granularity):
    model, mix, src = separation_batch
    losses, _ = _terms(model, mix, src, granularity)
    logits = build({"type": "uniform", "granularity": granularity})(losses=losses)
    reweighted = _flat_grad(model, reweigh(losses, lambda **context: logits).loss)
    losses, _ = _terms(model, mix, src, granularity)
    plain = _flat_grad(model, losses.mean())
    assert torch.allclose(reweighted, plain, rtol=1e-10, atol=1e-14)
