"""The speed and memory settings of a training, in one place: ``training.compile``, ``training.tf32`` and
``training.activation_checkpointing`` (with ``training.precision`` and ``training.micro_batches``, which
Lightning and ``ugr.step`` apply).

None of them changes what is learnt beyond floating-point rounding: compiling
fuses the same operations, TF32 rounds the inputs of fp32 matrix products and
convolutions on NVIDIA GPUs to 10 mantissa bits, checkpointing recomputes
the U-blocks in the backward pass instead of storing their activations. What
each costs and saves is measured by ``bench/model_speed.py``; the README's
"Speed and memory" section gives the figures and which settings fit which GPU.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from ugr import models


def set_tf32(enabled: bool) -> None:
    """TF32 for fp32 matrix products and cuDNN convolutions and RNNs (CUDA only; CPU arithmetic is unchanged).

    Set explicitly both ways: PyTorch's own default allows TF32 in cuDNN
    convolutions but not in matrix products, which would make ``tf32: false``
    only half true.
    """
    precision = "tf32" if enabled else "ieee"
    torch.backends.cuda.matmul.fp32_precision = precision
    torch.backends.cudnn.conv.fp32_precision = precision
    torch.backends.cudnn.rnn.fp32_precision = precision


def apply_memory_settings(model: nn.Module, training: Mapping[str, Any]) -> nn.Module:
    """The model with its U-blocks under activation checkpointing when ``training.activation_checkpointing``."""
    if training["activation_checkpointing"]:
        models.checkpoint_blocks(model)
    return model


def compile_model(model: nn.Module, training: Mapping[str, Any]) -> None:
    """``torch.compile`` of the model in place when ``training.compile``.

    In place (``nn.Module.compile``), so parameters and ``state_dict`` keys
    stay those of the eager model and checkpoints move between the two. Done
    in the training process itself (Lightning's ``configure_model``), as
    compiled code does not travel to spawned processes.
    """
    if training["compile"]:
        model.compile()
