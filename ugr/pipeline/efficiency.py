"""The speed and memory settings of a training, in one place: ``training.compile``, ``training.tf32``,
``training.activation_checkpointing`` and ``training.keep_freed_memory`` (with ``training.precision`` and
``training.micro_batches``, which Lightning and ``ugr.core.step`` apply).

None of them changes what is learnt beyond floating-point rounding: compiling
fuses the same operations, TF32 rounds the inputs of fp32 matrix products and
convolutions on NVIDIA GPUs to 10 mantissa bits, checkpointing recomputes
the U-blocks in the backward pass instead of storing their activations, and
keeping freed memory changes only where the host allocator finds its pages. What
each costs and saves is measured by ``bench/model_speed.py``; the README's
"Speed and memory" section gives the figures and which settings fit which GPU.
"""

from __future__ import annotations

import ctypes
import platform

import torch
from torch import nn

from ugr.pipeline.config import TrainingConfig
from ugr.separation import models


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


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory(enabled: bool) -> bool:
    """Lets glibc's malloc keep the host memory that freed tensors leave, for the next step; True if it took effect.

    Why: glibc serves each allocation above its mmap threshold (at most 32 MB)
    with fresh pages of the OS and unmaps them when freed, and gives the top of
    its heap back past 128 kB, so every training step on the CPU faults its
    activation memory in anew, in page faults that cost a large share of the
    step. With mmap (``M_MMAP_MAX = 0``) and trimming (``M_TRIM_THRESHOLD``
    2 GiB) off, freed memory is reused instead (the figures: README "Speed
    and memory", bench/README.md). The cost: the process keeps its peak
    resident size. Process-wide and for the rest of the process (data workers
    forked later inherit it); a no-op returning False when ``enabled`` is
    false or the C library is not glibc.
    """
    if not enabled or platform.libc_ver()[0] != "glibc":  # other C libraries' allocators have other knobs
        return False
    libc = ctypes.CDLL(None)  # the process's own C library
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def apply_memory_settings(model: nn.Module, training: TrainingConfig) -> nn.Module:
    """The model with its U-blocks under activation checkpointing when ``training.activation_checkpointing``."""
    if training.activation_checkpointing:
        models.checkpoint_blocks(model)
    return model


def compile_model(model: nn.Module, training: TrainingConfig) -> None:
    """``torch.compile`` of the model in place when ``training.compile``.

    In place (``nn.Module.compile``), so parameters and ``state_dict`` keys
    stay those of the eager model and checkpoints move between the two. Done
    in the training process itself (Lightning's ``configure_model``), as
    compiled code does not travel to spawned processes.
    """
    if training.compile:
        model.compile()
