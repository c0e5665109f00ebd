"""Weighting functions: the paper's three operating points, their sum, and config errors."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ugr.core.pmf import pmf
from ugr.core.step import reweigh
from ugr.core.weighting import build

loss_vectors = st.lists(st.floats(-30, 30, allow_nan=False), min_size=2, max_size=40).map(torch.tensor)


def _orders_agree(losses: torch.Tensor, p: torch.Tensor, direction: int) -> bool:
    """direction +1: a higher loss never gets a lower weight; -1: never a higher one."""
    order = torch.argsort(losses, stable=True)
    diffs = torch.diff(p[order].double()) * direction
    return bool((diffs >= -1e-12).all())


@settings(max_examples=80, deadline=None)
@given(losses=loss_vectors, alpha=st.floats(1e-3, 5))
def test_robust_never_gives_a_harder_example_less_weight(losses, alpha):
    p = pmf(build({"type": "robust", "alpha": alpha})(losses=losses))
    assert _orders_agree(losses, p, +1)


@settings(max_examples=30, deadline=None)
@given(losses=loss_vectors)
def test_alpha_zero_is_uniform(losses):
    p = pmf(build({"type": "robust", "alpha": 0.0})(losses=losses))
    assert torch.equal(p, torch.full_like(p, p[0].item()))
    assert p.sum().item() == pytest.approx(1.0, abs=1e-6)


@settings(max_examples=80, deadline=None)
@given(
    losses=loss_vectors,
    beta0=st.floats(-5, -1e-3),
    schedule=st.sampled_from(["linear", "exponential", "step"]),
    horizon=st.integers(1, 1000),
    fraction=st.floats(0, 0.999),
)
def test_curriculum_favours_easy_examples_before_the_horizon(losses, beta0, schedule, horizon, fraction):
    weighting = build({"type": "curriculum", "beta0": beta0, "horizon_steps": horizon, "schedule": schedule})
    step = int(fraction * horizon)
    assert weighting.beta(step) < 0
    assert _orders_agree(losses, pmf(weighting(losses=losses, step=step)), -1)


@settings(max_examples=40, deadline=None)
@given(
    losses=loss_vectors,
    schedule=st.sampled_from(["linear", "exponential", "step"]),
    horizon=st.integers(1, 50),
    after=st.integers(0, 10_000),
)
def test_curriculum_is_exactly_uniform_from_the_horizon_on(losses, schedule, horizon, after):
    weighting = build({"type": "curriculum", "beta0": -2.0, "horizon_epochs": horizon, "schedule": schedule})
    logits = weighting(losses=losses, epoch=horizon + after)
    assert weighting.beta(horizon + after) == 0.0
    assert torch.equal(logits, torch.zeros_like(losses))


@pytest.mark.parametrize("schedule", ["linear", "exponential", "step"])
def test_curriculum_beta_rises_from_beta0(schedule):
    weighting = build({"type": "curriculum", "beta0": -1.5, "horizon_steps": 100, "schedule": schedule})
    betas = [weighting.beta(k) for k in range(0, 101)]
    assert betas[0] == -1.5 and betas[-1] == 0.0
    assert all(b1 <= b2 for b1, b2 in zip(betas, betas[1:]))


@settings(max_examples=40, deadline=None)
@given(gamma_a=st.floats(-5, 5), gamma_b=st.floats(-5, 5))
def test_class_weights_have_the_ratio_exp_gamma_difference(gamma_a, gamma_b):
    weighting = build({"type": "class", "gamma": {"speech": gamma_a, "dog": gamma_b}})
    classes = [["speech", "dog"], ["dog", "rain"]]
    p = pmf(weighting(losses=torch.zeros(2, 2), classes=classes, coarse=coarse_of(classes)))
    assert (p[0, 0] / p[0, 1]).item() == pytest.approx(math.exp(gamma_a - gamma_b), rel=1e-5)
    assert (p[1, 1] / p[0, 1]).item() == pytest.approx(math.exp(-gamma_b), rel=1e-5)  # rain: not named, 0


def coarse_of(classes):
    """The paper's coarse classes of fine labels, nested alike (the corpus gives them; here: speech or env)."""
    return [coarse_of(c) if isinstance(c, list) else ("speech" if c == "speech" else "env") for c in classes]


def test_class_labels_fall_back_to_their_coarse_class():
    weighting = build({"type": "class", "gamma": {"env": 3.0, "dog": 1.0, "noise": 5.0}})
    logits = weighting(
        losses=torch.zeros(4), classes=["speech", "rain", "dog", "hum"], coarse=["speech", "env", "env", "noise"]
    )
    assert logits.tolist() == [0.0, 3.0, 1.0, 5.0]
    assert weighting(losses=torch.zeros(2), classes=["dog", "env"]).tolist() == [1.0, 3.0]  # no coarse: fine alone
    with pytest.raises(ValueError, match="needs the context key 'classes'"):
        weighting(losses=torch.zeros(1))


def test_class_bias_is_keyed_by_any_label_through_its_str():
    """Integer labels of a classifier, as a tensor or a list, meet gamma's keys (strings in YAML or not)."""
    weighting = build({"type": "class", "gamma": {0: -1.0, "2": 4.0}})
    expected = [-1.0, 0.0, 4.0, -1.0]
    assert weighting(losses=torch.zeros(4), classes=torch.tensor([0, 1, 2, 0])).tolist() == expected
    assert weighting(losses=torch.zeros(4), classes=[0, 1, 2, 0]).tolist() == expected


def test_class_logits_per_mixture_average_their_sources():
    weighting = build({"type": "class", "gamma": {"speech": 2.0}, "granularity": "mixture"})
    classes = [["speech", "dog"], ["speech", "speech"]]
    logits = weighting(losses=torch.zeros(2), classes=classes, coarse=coarse_of(classes))
    assert logits.tolist() == [1.0, 2.0]


def test_sum_adds_its_terms():
    losses = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    classes = [["speech", "dog"], ["dog", "speech"]]
    robust = build({"type": "robust", "alpha": 0.5})
    bias = build({"type": "class", "gamma": {"speech": 3.0}})
    both = build(
        {"type": "sum", "terms": [{"type": "robust", "alpha": 0.5}, {"type": "class", "gamma": {"speech": 3.0}}]}
    )
    labels = {"classes": classes, "coarse": coarse_of(classes)}
    expected = robust(losses=losses) + bias(losses=losses, **labels)
    assert torch.equal(both(losses=losses, **labels), expected)


def test_neg_sisdri_signal_uses_its_own_context_key():
    weighting = build({"type": "robust", "alpha": 1.0, "signal": "neg_sisdri"})
    assert weighting(losses=torch.zeros(2), neg_sisdri=torch.tensor([1.0, -1.0])).tolist() == [1.0, -1.0]
    with pytest.raises(ValueError, match="neg_sisdri"):
        weighting(losses=torch.zeros(2))


def test_granularity_is_carried_and_extra_context_is_ignored():
    weighting = build({"type": "uniform", "granularity": "mixture"})
    assert weighting.granularity == "mixture"
    assert build({"type": "uniform"}).granularity == "source"
    assert weighting(losses=torch.ones(3), something_else=1).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "cfg, message",
    [
        (
            {"type": "focal"},
            r"'type' must be one of \['uniform', 'robust', 'curriculum', 'class', 'group_dro', 'sum'\]",
        ),
        ({"alpha": 1}, "'type' must be one of"),
        ({"type": "robust", "alpha": 1, "beta": 2}, r"unknown key\(s\) \['beta'\]; allowed keys are"),
        ({"type": "robust"}, "missing 'alpha'"),
        ({"type": "robust", "alpha": -0.1}, "'alpha' must be >= 0"),
        ({"type": "robust", "alpha": "big"}, "'alpha' must be a finite number"),
        ({"type": "robust", "alpha": 1, "signal": "sdr"}, r"'signal' must be one of \['loss', 'neg_sisdri'\]"),
        ({"type": "curriculum", "beta0": 0.5, "horizon_steps": 10}, "'beta0' must be < 0"),
        ({"type": "curriculum", "beta0": -1}, "exactly one of 'horizon_steps' or 'horizon_epochs'"),
        ({"type": "curriculum", "beta0": -1, "horizon_steps": 5, "horizon_epochs": 2}, "exactly one of"),
        ({"type": "curriculum", "beta0": -1, "horizon_steps": 0}, "'horizon_steps' must be > 0"),
        (
            {"type": "curriculum", "beta0": -1, "horizon_steps": 5, "schedule": "cosine"},
            r"'schedule' must be one of \['linear', 'exponential', 'step', 'constant'\]",
        ),
        (
            {"type": "curriculum", "beta0": -1, "horizon_steps": 5, "schedule": "constant"},
            "schedule 'constant' keeps beta0 for good, so it takes no 'horizon_steps'",
        ),
        ({"type": "class", "gamma": {"speech": "high"}}, r"gamma\['speech'\] must be a finite number"),
        ({"type": "class", "gamma": {}}, "'gamma' must be a non-empty mapping"),
        ({"type": "class"}, "'gamma' must be a non-empty mapping"),
        ({"type": "uniform", "granularity": "frame"}, r"'granularity' must be one of \['source', 'mixture'\]"),
        ({"type": "sum", "terms": []}, "'terms' must be a non-empty list"),
        (
            {"type": "sum", "terms": [{"type": "robust", "alpha": 1, "granularity": "source"}]},
            r"terms\[0\].*unknown key\(s\) \['granularity'\]",
        ),
    ],
)
def test_config_errors_name_the_key_and_the_allowed_values(cfg, message):
    with pytest.raises(ValueError, match=message):
        build(cfg)


@pytest.mark.parametrize(
    "t, cfg",
    [
        (0.8, {"type": "robust", "alpha": 0.8}),
        (-0.6, {"type": "curriculum", "beta0": -0.6, "schedule": "constant"}),
    ],
)
def test_term_tilt_t_is_robust_alpha_t_or_constant_curriculum_beta0_t(t, cfg):
    """TERM (Li et al., ICLR 2021): weights exp(t L_i) / sum_j exp(t L_j), and the gradient of its objective
    (1/t) log mean_i exp(t L_i) is the UGR update; the constant schedule needs no step."""
    losses = [0.5, 1.0, 2.5, 4.0]
    tilted = [math.exp(t * loss) for loss in losses]
    by_hand = [w / sum(tilted) for w in tilted]
    weighting = build(cfg)
    assert pmf(weighting(losses=torch.tensor(losses, dtype=torch.float64))).tolist() == pytest.approx(
        by_hand, rel=1e-12
    )

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    w = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    per_example = (x @ w - y) ** 2
    term_objective = torch.logsumexp(t * per_example, 0) / t - math.log(len(y)) / t
    (term_grad,) = torch.autograd.grad(term_objective, w, retain_graph=True)
    (ugr_grad,) = torch.autograd.grad(reweigh(per_example, weighting).loss, w)
    torch.testing.assert_close(ugr_grad, term_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "cfg, label",
    [
        ({"type": "uniform", "granularity": "mixture"}, "uniform"),
        ({"type": "robust", "alpha": 0.2}, "robust (alpha=0.2)"),
        ({"type": "robust", "alpha": 5, "signal": "loss"}, "robust (alpha=5)"),
        ({"type": "robust", "alpha": 0.066667, "signal": "neg_sisdri"}, "robust (alpha=0.066667, signal=neg_sisdri)"),
        (
            {"type": "curriculum", "beta0": -0.2, "horizon_epochs": 10},
            "curriculum (beta0=-0.2, horizon_epochs=10, schedule=linear)",
        ),
        (
            {"type": "curriculum", "beta0": -1, "horizon_steps": 50, "schedule": "step", "levels": 2},
            "curriculum (beta0=-1, horizon_steps=50, schedule=step, levels=2)",
        ),
        ({"type": "curriculum", "beta0": -1, "schedule": "constant"}, "curriculum (beta0=-1, schedule=constant)"),
        (
            {"type": "curriculum", "beta0": -1, "schedule": "constant", "granularity": "mixture"},
            "curriculum (beta0=-1, schedule=constant), granularity=mixture",
        ),
        ({"type": "class", "gamma": {"speech": 3.0, "env": -0.5}}, "class (gamma speech=3, env=-0.5)"),
        (
            {"type": "sum", "terms": [{"type": "robust", "alpha": 0.1}, {"type": "class", "gamma": {"dog": 1}}]},
            "robust (alpha=0.1) + class (gamma dog=1)",
        ),
    ],
)
def test_each_type_labels_itself_for_the_report_tables(cfg, label):
    assert build(cfg).label() == label


def test_parts_list_the_terms_inside_sums_and_a_built_weighting_passes_through():
    nested = build(
        {
            "type": "sum",
            "terms": [
                {"type": "class", "gamma": {"dog": 1}},
                {"type": "sum", "terms": [{"type": "curriculum", "beta0": -1, "horizon_steps": 5}]},
            ],
        }
    )
    kinds = [type(part).__name__ for part in nested.parts()]
    assert kinds == ["Sum", "ClassBias", "Sum", "Curriculum"]
    assert nested.parts()[3].horizon_key == "horizon_steps"
    assert build(nested) is nested
