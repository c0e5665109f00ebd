"""Peak memory of a training step, measured one way for every benchmark.

CUDA has a resettable allocator peak. The CPU allocator has none, so each
variant runs in a fresh process and reports how far its peak resident set
(``VmHWM``) rose above the idle process. Two details make that figure the
tensors' peak rather than allocator noise: ``VmHWM`` instead of
``ru_maxrss`` (Linux carries the latter over fork and exec, so a probe would
report its large parent), and a fixed glibc mmap threshold (glibc otherwise
raises the threshold as large blocks are freed and keeps them resident, so
the peak would depend on allocation history: probes of the same step
differed by 600 MB, with the fixed threshold by 1 MB).
"""

from __future__ import annotations

import os
import subprocess
from typing import Callable

import torch


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}: peak memory on CPU needs Linux")


def step_peak_bytes(step: Callable[[], None], device: str, steps: int = 2) -> int:
    """Memory that ``steps`` calls of ``step`` add at their peak; call it in a fresh process."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        for _ in range(steps):
            step()
        return torch.cuda.max_memory_allocated() - base
    base = _status_bytes("VmRSS")
    for _ in range(steps):
        step()
    return _status_bytes("VmHWM") - base


def run_probe(command: list[str]) -> int:
    """Run a probe process that prints ``step_peak_bytes`` last; return that number."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    result = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return int(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="This is the measuring helper of bench/model_speed.py and bench/reweight_overhead.py (run those); "
        "by itself it measures nothing.",
    )
    parser.parse_args()
    parser.print_help()
