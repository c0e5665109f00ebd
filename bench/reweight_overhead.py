#!/usr/bin/env python
"""Cost of UGR over the uniform mean: training-step time and peak memory ratios.

Both variants run the same model, batch, seed and optimiser step (Adam,
gradient clipping after backward); they differ only in how the per-example
PIT losses become the scalar to differentiate: ``losses.mean()`` against
``reweigh(losses, weighting, ...)``. Timings alternate between the two
variants so that drift of the machine hits both alike; the figure is the
median. Peak memory: see ``peak_memory.py`` (the CUDA allocator's peak, or on CPU
the resident peak of fresh processes), median over several probes.
Target: both ratios at most 1.01.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
from peak_memory import run_probe, step_peak_bytes

from ugr.core.step import reweigh
from ugr.core.weighting import build
from ugr.pipeline import efficiency
from ugr.separation import losses as L


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        choices=["sudormrf_improved", "sudormrf"],
        default="sudormrf_improved",
        help="asteroid model in its default config (default: %(default)s)",
    )
    parser.add_argument("--batch", type=int, default=4, help="mixtures per batch (default: %(default)s)")
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="mixture length in s at 8 kHz (default: %(default)s)"
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per variant (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument(
        "--weighting",
        default='{"type": "robust", "alpha": 0.2}',
        help="UGR weighting config as JSON (default: %(default)s)",
    )
    parser.add_argument(
        "--memory-probes",
        type=int,
        default=3,
        help="fresh processes per variant for the peak memory, median (default: %(default)s)",
    )
    parser.add_argument("--memory-probe", choices=["uniform", "ugr"], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def make_step(args: argparse.Namespace, variant: str):
    """One training step of ``variant`` ('uniform' or 'ugr') on a fixed batch."""
    from asteroid.models import SuDORMRFImprovedNet, SuDORMRFNet

    torch.manual_seed(0)
    model_class = SuDORMRFImprovedNet if args.model == "sudormrf_improved" else SuDORMRFNet
    model = model_class(n_src=2, sample_rate=8000).to(args.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    src = torch.randn(args.batch, 2, int(args.seconds * 8000), device=args.device)
    mix = src.sum(1)
    classes = [["speech", "env"]] * args.batch
    weighting = build(json.loads(args.weighting))

    def step() -> None:
        per_source, _ = L.pit_neg_sisdr(model(mix), src)
        losses = L.at_granularity(per_source, weighting.granularity)
        if variant == "uniform":
            loss = losses.mean()
        else:
            logits = weighting(
                losses=losses,
                neg_sisdri=L.neg_sisdri(per_source.detach(), mix, src).detach(),
                classes=classes,
                step=0,
                epoch=0,
            )
            loss = reweigh(losses, lambda **context: logits).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    return step


def memory_probe(args: argparse.Namespace) -> None:
    """Run in a fresh process: print the peak memory that the steps of one variant add."""
    print(step_peak_bytes(make_step(args, args.memory_probe), args.device))


def peak_memory(args: argparse.Namespace, variant: str) -> int:
    command = [
        sys.executable,
        __file__,
        "--memory-probe",
        variant,
        "--model",
        args.model,
        "--batch",
        str(args.batch),
        "--seconds",
        str(args.seconds),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
        "--weighting",
        args.weighting,
    ]
    return run_probe(command)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_probe:  # a fresh process at glibc's defaults (peak_memory.py): its resident peak is the step's
        memory_probe(args)
        return
    efficiency.keep_freed_memory(True)  # timed as the training runs (training.keep_freed_memory)
    steps = {variant: make_step(args, variant) for variant in ("uniform", "ugr")}
    times: dict[str, list[float]] = {"uniform": [], "ugr": []}
    for variant in ("uniform", "ugr"):
        steps[variant]()  # warm-up
    for _ in range(args.repeats):
        for variant in ("uniform", "ugr"):
            start = time.perf_counter()
            steps[variant]()
            times[variant].append(time.perf_counter() - start)
    uniform_t, ugr_t = (statistics.median(times[v]) for v in ("uniform", "ugr"))
    peaks: dict[str, list[int]] = {"uniform": [], "ugr": []}
    for _ in range(args.memory_probes):  # alternating, like the timings
        for variant in ("uniform", "ugr"):
            peaks[variant].append(peak_memory(args, variant))
    uniform_m, ugr_m = (statistics.median(peaks[v]) for v in ("uniform", "ugr"))
    print(
        f"setup: {args.model} default config, batch {args.batch} x {args.seconds} s at 8 kHz, "
        f"{args.device}, {args.threads} threads, weighting {args.weighting}, median of {args.repeats} steps "
        f"and of {args.memory_probes} memory probes"
    )
    for variant in ("uniform", "ugr"):
        print(f"  peak memory probes {variant}: {[round(m / 2**20) for m in peaks[variant]]} MB")
    print(f"{'':14}{'uniform':>12}{'ugr':>12}{'ratio':>9}")
    print(f"{'step time (s)':14}{uniform_t:12.4f}{ugr_t:12.4f}{ugr_t / uniform_t:9.4f}")
    print(f"{'peak mem (MB)':14}{uniform_m / 2**20:12.1f}{ugr_m / 2**20:12.1f}{ugr_m / uniform_m:9.4f}")
    print(f"time ratio {ugr_t / uniform_t:.4f} (target <= 1.01); memory ratio {ugr_m / uniform_m:.4f} (target <= 1.01)")


if __name__ == "__main__":
    main()
