"""Group DRO as a weighting (type: group_dro): q moves toward the worst group, once per step, exactly."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from asteroid.engine import System
from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr
from ddp_helpers import TOTAL, assert_two_ranks_equal_one_process, steps
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ugr.core.step import Terms, reweigh
from ugr.core.weighting import GroupDRO, build, group_weights, load_weighting_state, weighting_state
from ugr.integrations.asteroid import UGRLoss, UGRProgress
from ugr.integrations.lightning import CHECKPOINT_KEY, UGRModule
from ugr.pipeline.config import ConfigError
from ugr.pipeline.corpus_check import _check_group_dro

DRO = {"type": "group_dro", "group_by": "group", "step_size": 0.1}


def test_q_moves_toward_the_group_with_the_higher_loss_at_the_rate_of_the_step_size():
    """Two groups with mean losses 1 and 3, eta 0.1, q0 uniform: q = softmax(log q0 + eta [1, 3])."""
    weighting = build(DRO)
    losses = torch.tensor([0.5, 1.5, 3.0, 2.0, 4.0], dtype=torch.float64)  # a: mean 1; b: mean 3
    groups = ["a", "a", "b", "b", "b"]
    weights = reweigh(losses, weighting, groups=groups).weights
    q_b = math.exp(0.1 * 3) / (math.exp(0.1 * 1) + math.exp(0.1 * 3))  # by hand
    assert group_weights(weighting)["b"] == pytest.approx(q_b, rel=1e-15)
    assert group_weights(weighting)["a"] == pytest.approx(1 - q_b, rel=1e-14)
    # an example weighs q of its group over the group's count in the batch
    expected = torch.tensor([(1 - q_b) / 2] * 2 + [q_b / 3] * 3, dtype=torch.float64)
    assert torch.allclose(weights, expected, rtol=1e-14, atol=0)
    # the second step compounds: q = softmax(log q1 + eta [mean_a, mean_b])
    reweigh(torch.tensor([2.0, 0.0], dtype=torch.float64), weighting, groups=["a", "b"])
    q1 = torch.tensor([1 - q_b, q_b], dtype=torch.float64)
    q2 = torch.softmax(q1.log() + 0.1 * torch.tensor([2.0, 0.0], dtype=torch.float64), 0)
    assert [group_weights(weighting)[g] for g in "ab"] == pytest.approx(q2.tolist(), rel=1e-14)
    assert weighting.state.steps == 2


def test_groups_absent_from_a_batch_keep_their_q_and_get_no_weight():
    weighting = build(DRO)
    reweigh(torch.tensor([1.0, 2.0, 5.0]), weighting, groups=["a", "b", "c"])
    before = dict(weighting.state.log_q)
    weights = reweigh(torch.tensor([1.0, 1.0, 3.0]), weighting, groups=["a", "a", "b"]).weights
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-6)  # renormalised over the groups present
    log_q = weighting.state.log_q
    by_hand = torch.tensor([before["a"] + 0.1 * 1, before["b"] + 0.1 * 3, before["c"]], dtype=torch.float64)
    assert [log_q[g] for g in "abc"] == pytest.approx(torch.log_softmax(by_hand, 0).tolist(), abs=1e-15)
    q_a, q_b = math.exp(log_q["a"]), math.exp(log_q["b"])
    assert weights.tolist() == pytest.approx([q_a / 2 / (q_a + q_b)] * 2 + [q_b / (q_a + q_b)], rel=1e-6)


def test_size_adjustment_adds_c_over_sqrt_n_to_the_group_loss():
    weighting = build({**DRO, "size_adjustment": 2.0})
    reweigh(torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64), weighting, groups=list("aaaab"))
    expected = torch.softmax(0.1 * torch.tensor([1 + 2 / 2, 1 + 2 / 1], dtype=torch.float64), 0)
    assert [group_weights(weighting)[g] for g in "ab"] == pytest.approx(expected.tolist(), rel=1e-14)


def test_group_by_reads_fine_coarse_or_groups_and_per_mixture_losses_take_their_sources_labels():
    losses = torch.tensor([1.0, 2.0])
    classes, coarse = [["dog", "speech"], ["speech", "dog"]], [["env", "speech"], ["speech", "env"]]
    for group_by, key, labels in (("fine", "classes", classes), ("coarse", "coarse", coarse)):
        weighting = build({**DRO, "group_by": group_by})
        reweigh(losses, weighting, **{key: labels})
        assert set(group_weights(weighting)) == {"dog+speech" if group_by == "fine" else "env+speech"}
    weighting = build({**DRO, "group_by": "coarse"})
    with pytest.raises(ValueError, match="group_by 'coarse' needs the context key 'coarse'"):
        reweigh(losses, weighting, classes=classes)
    with pytest.raises(ValueError, match="no step begun"):
        build(DRO)(losses=losses, groups=["a", "b"])


def test_resume_continues_q_bit_exactly(tmp_path):
    g = torch.Generator().manual_seed(0)
    steps = [
        (torch.rand(6, generator=g, dtype=torch.float64) * 3, [["a", "b", "c"][i % 3] for i in range(s, s + 6)])
        for s in range(4)
    ]
    cfg = {
        "type": "sum",
        "terms": [{"type": "robust", "alpha": 0.3}, {**DRO, "size_adjustment": 0.5}],
        "normaliser": "running",
        "decay": 0.7,
    }
    continuous = build(cfg)
    expected = [reweigh(losses, continuous, groups=groups).weights for losses, groups in steps]
    first = build(cfg)
    reweigh(steps[0][0], first, groups=steps[0][1])
    torch.save(weighting_state(first), tmp_path / "state.pt")
    resumed = build(cfg)
    load_weighting_state(resumed, torch.load(tmp_path / "state.pt"))
    for (losses, groups), want in zip(steps[1:], expected[1:]):
        assert torch.equal(reweigh(losses, resumed, groups=groups).weights, want)
    assert weighting_state(resumed) == weighting_state(continuous)
    with pytest.raises(ValueError, match="holds 1 group DRO state"):
        load_weighting_state(build({"type": "uniform"}), weighting_state(first))


# ----------------------------------------------------------------------------- micro-batches and DDP

GROUPS = ["x", "y", "x", "z", "y", "x", "x", "z"]


def _data(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    return torch.randn(TOTAL, 2, generator=g, dtype=torch.float64), torch.randn(TOTAL, generator=g, dtype=torch.float64)


def _run(indices: list[int], micro_batches: int) -> dict:
    weighting = build({**DRO, "step_size": 0.5})
    return steps(weighting, _data, indices, micro_batches, lambda w: dict(w.parts()[0].state.log_q), GROUPS)


def test_micro_batches_and_two_process_ddp_equal_one_process_with_the_full_batch(tmp_path):
    full = _run(list(range(TOTAL)), 1)
    assert full["state"][-1]["x"] != full["state"][-1]["y"]
    accumulated = _run(list(range(TOTAL)), 4)  # one update of q per step, not one per micro-batch
    assert accumulated["state"] == full["state"]
    assert_two_ranks_equal_one_process(tmp_path, _run, full)  # every rank holds the full batch's q, bit for bit


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({**DRO, "step_size": 0}, r"'step_size' must be > 0"),
        ({**DRO, "step_size": -0.1}, r"'step_size' must be > 0"),
        ({"type": "group_dro", "group_by": "group"}, r"missing 'step_size'"),
        ({**DRO, "group_by": "speaker"}, r"'group_by' must be one of \['fine', 'coarse', 'group'\], got 'speaker'"),
        ({"type": "group_dro", "step_size": 0.1}, r"missing 'group_by'"),
        ({**DRO, "size_adjustment": -1}, r"'size_adjustment' must be >= 0"),
        ({**DRO, "eta": 0.1}, r"unknown key\(s\) \['eta'\]"),
    ],
)
def test_bad_values_are_one_error_naming_the_key(cfg, message):
    with pytest.raises(ValueError, match=message):
        build(cfg)


def test_label_and_words():
    weighting = build({**DRO, "size_adjustment": 1})
    assert isinstance(weighting, GroupDRO)
    assert weighting.label() == "group DRO (group_by=group, step_size=0.1, size_adjustment=1)"
    assert "worst group up" in weighting.describe()


def test_the_corpus_check_refuses_data_with_one_group_or_none():
    cfg = SimpleNamespace(weighting=build({**DRO, "group_by": "coarse"}))
    sources = [
        SimpleNamespace(fine="dog", coarse="env", group="s1"),
        SimpleNamespace(fine="cat", coarse="env", group="s2"),
    ]
    with pytest.raises(ConfigError, match=r"weighting.group_by is 'coarse', but .* carries only the group env"):
        _check_group_dro(cfg, sources, "data", "exp.yaml")
    _check_group_dro(SimpleNamespace(weighting=build(DRO)), sources, "data", "exp.yaml")
    mixtures = [SimpleNamespace(fines=("dog", "cat"), coarses=("env", "env"), groups=("", ""))]
    with pytest.raises(ConfigError, match="carries no 'group' labels"):
        _check_group_dro(SimpleNamespace(weighting=build(DRO)), mixtures, "data", "exp.yaml")


# ----------------------------------------------------------------------------- the three entry points


def _train(weighting_cfg: dict) -> tuple[torch.Tensor, dict]:
    """A linear fit of two groups, the minority shifted; the groups' mean losses at the end, and q."""
    torch.manual_seed(0)
    x = torch.randn(32, 2, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -1.0], dtype=torch.float64)
    y[24:] += 3.0  # the minority group (8 of 32) is shifted: the uniform fit leaves it far worse
    groups = ["easy"] * 24 + ["hard"] * 8
    model = torch.nn.Linear(2, 1).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    weighting = build(weighting_cfg)
    for _ in range(100):
        outcome = reweigh((model(x).squeeze(1) - y).pow(2), weighting, groups=groups)
        optimizer.zero_grad()
        outcome.loss.backward()
        optimizer.step()
    losses = (model(x).squeeze(1) - y).pow(2).detach()
    return torch.stack([losses[:24].mean(), losses[24:].mean()]), group_weights(weighting)


def test_in_a_plain_loop_the_worst_group_is_pulled_up():
    """The uniform mean leaves the minority group's loss ~9x the majority's (measured 4.97 against 0.56); group
    DRO equalises the groups (2.22 and 2.22), more than halving the worst group's loss, and gives the minority
    about half the weight, far more than its share of the batch (8/32)."""
    uniform, _ = _train({"type": "uniform"})
    dro, q = _train({**DRO, "step_size": 0.05})
    assert uniform[1] > 5 * uniform[0]
    assert dro.max() < 0.5 * uniform.max()
    assert abs(dro[0] - dro[1]) < 0.05 * dro.max()
    assert q["hard"] > 0.4


class Labelled(Dataset):
    """(mixture, (sources, {"groups": ...})): the labels mapping rides with the targets."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(1)
        self.sources = torch.randn(8, 2, 64, generator=g, dtype=torch.float64)
        self.sources[:, 0] *= torch.linspace(0.2, 3.0, 8, dtype=torch.float64)[:, None]

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int):
        return self.sources[i].sum(0), (self.sources[i], {"groups": torch.tensor([i % 2, 2])})


def test_ugr_loss_in_a_stock_asteroid_system_for_one_epoch_carries_q_in_the_state_dict(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Unflatten(1, (1, 64)), torch.nn.Conv1d(1, 2, 5, padding=2)).double()
    loss_func = UGRLoss(PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx"), {**DRO, "normaliser": "running"})
    system = System(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        loss_func,
        DataLoader(Labelled(), batch_size=4),
        DataLoader(Labelled(), batch_size=4),
    )
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        precision="64-true",
        logger=CSVLogger(tmp_path),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[UGRProgress(loss_func)],
    )
    trainer.fit(system)
    state = loss_func.weighting.parts()[0].state
    assert state.steps == 2 and set(state.log_q) == {"0", "1", "2"}  # 2 batches; validation updates nothing
    assert loss_func.weighting.normaliser.steps == 2
    saved = system.state_dict()
    fresh = UGRLoss(PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx"), {**DRO, "normaliser": "running"})
    fresh_system = System(model, None, fresh, None)
    fresh_system.load_state_dict(saved)
    assert weighting_state(fresh.weighting) == weighting_state(loss_func.weighting)


class Classifier(UGRModule):
    def __init__(self) -> None:
        super().__init__(
            {"type": "group_dro", "group_by": "fine", "step_size": 0.5, "normaliser": "running"}, micro_batches=2
        )
        torch.manual_seed(0)
        self.net = torch.nn.Linear(2, 3).double()

    def example_losses(self, batch) -> Terms:
        x, y = batch
        return Terms(torch.nn.functional.cross_entropy(self.net(x), y, reduction="none"), classes=y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(root: Path, epochs: int, ckpt_path: str | None = None) -> tuple[Classifier, pl.Trainer]:
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(16, 2, generator=g, dtype=torch.float64), torch.arange(16) % 3)
    module = Classifier()
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        precision="64-true",
        logger=CSVLogger(root),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        default_root_dir=root,
    )
    trainer.fit(module, train_dataloaders=DataLoader(data, batch_size=8), ckpt_path=ckpt_path)
    return module, trainer


def test_ugr_module_in_a_lightning_trainer_logs_q_and_resumes_it_bit_exactly(tmp_path):
    continuous, trainer = _fit(tmp_path / "a", epochs=2)
    assert {"train/q/0", "train/q/1", "train/q/2"} <= set(trainer.callback_metrics)
    assert trainer.callback_metrics["train/q/1"].item() == pytest.approx(group_weights(continuous.weighting)["1"])
    first, trainer = _fit(tmp_path / "b", epochs=1)
    trainer.save_checkpoint(tmp_path / "one.ckpt")
    assert torch.load(tmp_path / "one.ckpt", weights_only=False)[CHECKPOINT_KEY] == weighting_state(first.weighting)
    resumed, _ = _fit(tmp_path / "c", epochs=2, ckpt_path=str(tmp_path / "one.ckpt"))
    assert weighting_state(resumed.weighting) == weighting_state(continuous.weighting)
    assert resumed.weighting.parts()[0].state.steps == 4
