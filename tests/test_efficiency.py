"""The speed and memory settings change how a step is computed, never what it computes: torch.compile and
activation checkpointing give the eager step's gradients, checkpoints keep their keys, keeping freed memory
stops the page faults of a step's allocations, and the config refuses what a setting cannot do."""

from __future__ import annotations

import copy
import json
import platform
import subprocess
import sys

import pytest
import torch
from test_config import CONF_DIR
from test_system import BATCH, FixedBatches, collate, one_step, tiny_cfg

from ugr.pipeline import config, efficiency
from ugr.pipeline.config import ConfigError, load, parse_overrides
from ugr.pipeline.system import SeparationSystem
from ugr.separation import models


def test_compiled_model_trains_like_the_eager_one(tmp_path):
    """training.compile: the Lightning step through the compiled model (CPU, inductor) gives the eager gradients,
    and the model keeps its parameter names (checkpoints move between the two)."""
    cfg = tiny_cfg({"type": "robust", "alpha": 0.5})
    eager, _, _ = one_step(cfg, tmp_path)
    cfg["training"]["compile"] = True
    compiled, initial, trainer = one_step(cfg, tmp_path)
    assert trainer.lightning_module.model._compiled_call_impl is not None, "configure_model did not compile"
    assert compiled.keys() == eager.keys()
    for name in eager:  # fused kernels sum in another order: tolerances relative to the gradient's scale
        torch.testing.assert_close(compiled[name], eager[name], rtol=1e-3, atol=1e-4 * eager[name].abs().max())
    assert trainer.lightning_module.state_dict().keys() == initial.state_dict().keys()
    # The outputs of the trained model, compiled against eager: with gradients on and the training batch's
    # shape, the compiled graph of the step is reused (no second compilation in the test).
    batch = collate([FixedBatches(BATCH)[i] for i in range(BATCH)])
    trained = trainer.lightning_module.model
    eager_model = copy.deepcopy(initial.model)
    eager_model.load_state_dict(trained.state_dict())
    torch.testing.assert_close(
        trained(batch["mixture"]).detach(), eager_model(batch["mixture"]).detach(), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("micro_batches", [1, 2])
def test_activation_checkpointing_gives_the_same_gradients(tmp_path, micro_batches):
    cfg = tiny_cfg({"type": "robust", "alpha": 0.5}, micro_batches=micro_batches)
    plain, plain_system, _ = one_step(cfg, tmp_path)
    cfg["training"]["activation_checkpointing"] = True
    checkpointed, system, _ = one_step(cfg, tmp_path)
    assert isinstance(system.model.masker.sm, models.CheckpointedBlocks)
    assert system.state_dict().keys() == plain_system.state_dict().keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-6, atol=1e-9)


def test_checkpointed_blocks_are_recomputed_in_the_backward_only():
    cfg = tiny_cfg({"type": "uniform"})
    model = models.checkpoint_blocks(models.build_model(cfg["model"]))
    calls = []
    block = model.masker.sm[0]
    forward = block.forward

    def counted(x):  # counted here: module hooks do not fire in the recomputation
        calls.append(torch.is_grad_enabled())
        return forward(x)

    block.forward = counted
    mixture = torch.randn(2, 800)
    with torch.no_grad():
        model(mixture)
    assert len(calls) == 1  # no graph, nothing to recompute
    model(mixture).sum().backward()
    assert len(calls) == 3  # forward, then the recomputation during backward


def test_activation_checkpointing_needs_u_blocks():
    cfg = load(CONF_DIR / "cpu" / "baseline_cpu.yaml").to_dict()
    cfg["training"]["activation_checkpointing"] = True
    cfg["model"] = {"arch": "convtasnet", "n_blocks": 1, "n_repeats": 1}
    with pytest.raises(ConfigError, match="mine.yaml: training.activation_checkpointing.*convtasnet.*set it to false"):
        config.validate(cfg, where="mine.yaml")
    with pytest.raises(ValueError, match="U-blocks"):
        models.checkpoint_blocks(models.build_model(cfg["model"]))
    cfg["model"] = {"arch": "sudormrf_improved", "num_blocks": 1, "n_filters": 32, "bn_chan": 16}
    assert isinstance(SeparationSystem(config.validate(cfg)).model.masker.sm, models.CheckpointedBlocks)


# Allocates and frees a 48 MB tensor (above glibc's largest mmap threshold) 30 times and prints the minor
# page faults of each round.
_FAULTS_OF_REPEATED_ALLOCATIONS = """
import json, resource, sys, torch
from ugr.pipeline import efficiency
took = efficiency.keep_freed_memory(sys.argv[1] == "on")
per_round = []
for _ in range(30):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(12 * 2**20).sum()
    per_round.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"took": took, "per_round": per_round}))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting acts on glibc's malloc")
def test_keeping_freed_memory_stops_the_page_faults_of_repeated_allocations():
    """training.keep_freed_memory: freed tensors' pages are reused, not unmapped and faulted in again.

    Off (glibc's default), every round maps its tensor anew and faults all its pages in. On, the heap
    grows while it settles (2 to 4 rounds on the machines measured, as the other allocations of the
    first rounds fragment it), then every round reuses pages it already holds.
    """

    def faulting_rounds(setting):
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS_OF_REPEATED_ALLOCATIONS, setting], capture_output=True, text=True, check=True
        )
        result = json.loads(out.stdout)
        return result["took"], sum(faults >= pages / 2 for faults in result["per_round"])

    pages = 12 * 2**20 * 4 // 4096
    (took_off, off), (took_on, on) = faulting_rounds("off"), faulting_rounds("on")
    assert not took_off and took_on
    assert off == 30, off  # each round faults its pages in anew
    assert on <= 6, on  # only while the heap settles


@pytest.mark.parametrize("key", ["compile", "tf32", "activation_checkpointing", "keep_freed_memory"])
def test_speed_settings_are_validated(key):
    with pytest.raises(ConfigError, match=f"training.{key} must be true or false"):
        load(CONF_DIR / "cpu" / "baseline_cpu.yaml", parse_overrides([f"training.{key}=yes please"]))


def test_tf32_is_set_both_ways():
    before = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    try:
        efficiency.set_tf32(True)
        assert torch.backends.cuda.matmul.fp32_precision == torch.backends.cudnn.conv.fp32_precision == "tf32"
        efficiency.set_tf32(False)  # PyTorch's default leaves cuDNN convolutions in TF32: false means off there too
        assert torch.backends.cuda.matmul.fp32_precision == torch.backends.cudnn.conv.fp32_precision == "ieee"
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = before


def test_shipped_cpu_and_gpu_bases_choose_every_setting():
    bases = sorted(CONF_DIR.parents[1].glob("*/conf/*/base_*.yaml"))  # conf/cpu/base_cpu.yaml, conf/gpu/base_gpu.yaml
    recipes = sorted(CONF_DIR.parents[1].glob("*/conf"))
    assert len(bases) == 2 * len(recipes) >= 8  # two per recipe
    for base in bases:
        training = load(base).to_dict()["training"]
        assert {"compile", "tf32", "activation_checkpointing", "log_every_n_steps", "keep_freed_memory"} <= set(
            training
        ), base
