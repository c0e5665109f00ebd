#!/usr/bin/env python
"""Training step of our SuDORMRFNet (fast mask layer) against stock asteroid's.

Both models hold the same weights (ours is loaded from stock's state_dict, and
the first outputs are checked equal), see the same batch of random sources and
do the same training step: forward, negative PIT SI-SDR, backward, gradient
clipping at 5 and an Adam step (``--no-optimizer-step`` leaves the last two
out). Timings alternate between the two models so that drift of the machine
hits both alike; the figure is the median. Peak memory over two
steps: see ``peak_memory.py`` (the CUDA allocator's peak, or on CPU the
resident peak of a fresh process per model). The machine's load average is
printed too: other processes on the cores distort CPU timings.

Configs: ``default`` (the paper's model, ugr.models.MODEL_DEFAULTS) and
``cpu_preset`` (ugr.models.CPU_PRESET over the defaults).
Target: ours at least 4 times faster than stock for ``default`` on CPU.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, Callable

import torch
from asteroid.models import SuDORMRFNet
from tqdm import tqdm

from peak_memory import run_probe, step_peak_bytes
from ugr.losses import pit_neg_sisdr
from ugr.models import CPU_PRESET, MODEL_DEFAULTS, build_model

CONFIGS = {"default": {}, "cpu_preset": CPU_PRESET}
VARIANTS = ("stock", "ours")
TARGET_SPEEDUP = 4.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS),
                        help="model configs to compare (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=4, help="mixtures per batch (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="mixture length in s at the model's sample rate (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed steps per model, after one warm-up step (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--no-optimizer-step", dest="optimizer_step", action="store_false",
                        help="time forward + backward only, without gradient clipping and Adam step")
    parser.add_argument("--memory-probe", nargs=2, metavar=("CONFIG", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch < 1 or args.seconds <= 0 or args.repeats < 1 or args.threads < 1:
        parser.error("--batch, --repeats and --threads must be >= 1 and --seconds > 0")
    return args


def model_config(name: str) -> dict[str, Any]:
    return {**MODEL_DEFAULTS, **CONFIGS[name]}


def make_models(name: str, device: str) -> dict[str, torch.nn.Module]:
    """Stock asteroid SuDORMRFNet and ours, holding the same weights."""
    cfg = model_config(name)
    asteroid_kwargs = {k: v for k, v in cfg.items() if k not in ("arch", "mask_layer")}
    torch.manual_seed(0)
    stock = SuDORMRFNet(**asteroid_kwargs)
    ours = build_model({**cfg, "mask_layer": "fast"})
    ours.load_state_dict(stock.state_dict())
    return {"stock": stock.to(device), "ours": ours.to(device)}


def make_batch(name: str, args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = model_config(name)
    generator = torch.Generator().manual_seed(1)
    sources = torch.randn(args.batch, cfg["n_src"], int(args.seconds * cfg["sample_rate"]), generator=generator)
    sources = sources.to(args.device)
    return sources.sum(1), sources


def make_step(model: torch.nn.Module, mixture: torch.Tensor, sources: torch.Tensor,
              args: argparse.Namespace) -> Callable[[], None]:
    """One training step of ``model`` on the fixed batch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        per_source, _ = pit_neg_sisdr(model(mixture), sources)
        optimizer.zero_grad(set_to_none=True)
        per_source.mean().backward()
        if args.optimizer_step:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    return step


def max_relative_difference(models: dict[str, torch.nn.Module], mixture: torch.Tensor) -> float:
    with torch.no_grad():
        stock, ours = models["stock"](mixture), models["ours"](mixture)
    return ((ours - stock).abs().max() / stock.abs().max()).item()


def memory_probe(args: argparse.Namespace) -> None:
    """Run in a fresh process: print the peak memory that two steps of one model add."""
    name, variant = args.memory_probe
    mixture, sources = make_batch(name, args)
    print(step_peak_bytes(make_step(make_models(name, args.device)[variant], mixture, sources, args), args.device))


def peak_memory(args: argparse.Namespace, name: str, variant: str) -> int:
    command = [sys.executable, __file__, "--memory-probe", name, variant, "--batch", str(args.batch),
               "--seconds", str(args.seconds), "--threads", str(args.threads), "--device", args.device]
    if not args.optimizer_step:
        command.append("--no-optimizer-step")
    return run_probe(command)


def step_times(args: argparse.Namespace, name: str) -> tuple[dict[str, float], float, int]:
    """Median step time per model, the models' output difference, and the parameter count."""
    models = make_models(name, args.device)
    mixture, sources = make_batch(name, args)
    difference = max_relative_difference(models, mixture)
    steps = {variant: make_step(models[variant], mixture, sources, args) for variant in VARIANTS}
    times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for round_ in tqdm(range(args.repeats + 1), desc=f"{name}: rounds of stock + ours", file=sys.stderr):
        for variant in VARIANTS:
            start = time.perf_counter()
            steps[variant]()
            if round_:  # round 0 warms up (allocator, oneDNN primitives)
                times[variant].append(time.perf_counter() - start)
    params = sum(p.numel() for p in models["ours"].parameters())
    return {variant: statistics.median(times[variant]) for variant in VARIANTS}, difference, params


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_probe:
        memory_probe(args)
        return
    load_before = os.getloadavg()[0]
    rows = []
    for name in args.configs:
        times, difference, params = step_times(args, name)
        memory = {variant: peak_memory(args, name, variant) for variant in VARIANTS}
        rows.append((name, params, times, memory, difference))
    load_after = os.getloadavg()[0]

    what = "forward + PIT loss + backward" + (" + clip + Adam step" if args.optimizer_step else "")
    print(f"setup: batch {args.batch} x {args.seconds} s at {MODEL_DEFAULTS['sample_rate']} Hz, {args.device}, "
          f"{args.threads} threads, {what}, median of {args.repeats} interleaved steps")
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"1-min load average {load_before:.1f} before, {load_after:.1f} after")
    header = (f"{'config':12}{'params':>9}{'stock s':>10}{'ours s':>10}{'speed-up':>10}"
              f"{'stock MB':>10}{'ours MB':>10}{'mem ratio':>11}{'out diff':>10}")
    print(header)
    for name, params, times, memory, difference in rows:
        print(f"{name:12}{params / 1e6:8.2f}M{times['stock']:10.3f}{times['ours']:10.3f}"
              f"{times['stock'] / times['ours']:9.2f}x{memory['stock'] / 2**20:10.0f}{memory['ours'] / 2**20:10.0f}"
              f"{memory['ours'] / memory['stock']:11.3f}{difference:10.1e}")
    if args.device == "cpu" and max(load_before, load_after) > args.threads:
        print(f"WARNING: load average above {args.threads} threads: other processes share the cores, and the "
              f"timings are inflated, unevenly between the models; rerun on a quiet machine")
    for name, _, times, _, _ in rows:
        if name == "default":
            speedup = times["stock"] / times["ours"]
            verdict = "met" if speedup >= TARGET_SPEEDUP else "NOT met"
            print(f"default config speed-up {speedup:.2f}x (target >= {TARGET_SPEEDUP:g}x: {verdict})")


if __name__ == "__main__":
    main()
