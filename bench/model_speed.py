#!/usr/bin/env python
"""Training step of our SuDORMRFNet (fast mask layer) against stock asteroid's, and the speed and memory settings.

All variants hold the same weights (ours is loaded from stock's state_dict, and
the first outputs are checked equal), see the same batch of random sources and
do the same training step: forward, negative PIT SI-SDR, backward, gradient
clipping at 5 and an Adam step (``--no-optimizer-step`` leaves the last two
out). A variant is ``stock``, ``ours`` or ``ours`` joined with settings by
``+``: ``tf32`` (TF32 matrix products and convolutions, CUDA), ``compile``
(torch.compile; the first step, which compiles, is reported apart), ``bf16``
(bf16 autocast, loss in fp32, as ``training.precision: bf16-mixed``),
``ckpt`` (activation checkpointing of the U-blocks, as
``training.activation_checkpointing``), ``microK`` (K micro-batches through
``ugr.step.reweighted_backward``, as ``training.micro_batches: K``: the same
gradient for less activation memory). Timings alternate between the variants
so that drift of the machine hits all alike; the figure is the median. Peak
memory over two steps: see ``peak_memory.py`` (the CUDA allocator's peak,
``torch.cuda.max_memory_allocated``, or on CPU the resident peak of a fresh
process per variant). The machine's load average is printed too: other
processes on the cores distort CPU timings.

Configs: ``default`` (the paper's model, ugr.models.MODEL_DEFAULTS),
``cpu_preset`` (ugr.models.CPU_PRESET over the defaults).
Targets: ours at least 4 times faster than stock for ``default`` on CPU; on
GPU, the best variant at least 6 times faster than stock at the paper's
config (``--batch 28 --seconds 4``), and a variant within 11 GB at no more
than 1.2 times the time of ``ours``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from typing import Any, Callable

import torch
from asteroid.models import SuDORMRFNet
from tqdm import tqdm

from peak_memory import run_probe, step_peak_bytes
from ugr import efficiency, models, weighting
from ugr.losses import pit_neg_sisdr
from ugr.models import CPU_PRESET, MODEL_DEFAULTS, build_model
from ugr.step import Terms, reweighted_backward

CONFIGS = {"default": {}, "cpu_preset": CPU_PRESET}
SETTINGS = ("tf32", "compile", "bf16", "ckpt")  # and microK
CPU_VARIANTS = ("stock", "ours")
GPU_VARIANTS = ("stock", "ours", "ours+tf32", "ours+compile+tf32", "ours+bf16", "ours+compile+tf32+bf16",
                "ours+ckpt", "ours+micro2", "ours+micro4", "ours+bf16+ckpt", "ours+compile+tf32+ckpt")
TARGET_SPEEDUP = 4.0
GPU_TARGET_SPEEDUP = 6.0
GPU_MEMORY_TARGET_GB, GPU_MEMORY_TIME_RATIO = 11.0, 1.2


def settings_of(variant: str) -> dict[str, Any]:
    """``ours+bf16+micro4`` -> {"bf16": True, "micro": 4, ...}; raises ValueError naming what is allowed."""
    base, *extras = variant.split("+")
    if base not in ("stock", "ours") or (base == "stock" and extras):
        raise ValueError(f"variant {variant!r}: write stock, ours, or ours+SETTING+... with SETTING one of "
                         f"{', '.join(SETTINGS)}, microK")
    chosen: dict[str, Any] = {"stock": base == "stock", "micro": 1, **{name: False for name in SETTINGS}}
    for extra in extras:
        if extra in SETTINGS:
            chosen[extra] = True
        elif extra.startswith("micro") and extra[5:].isdigit() and int(extra[5:]) >= 1:
            chosen["micro"] = int(extra[5:])
        else:
            raise ValueError(f"variant {variant!r}: unknown setting {extra!r}; use {', '.join(SETTINGS)}, microK")
    return chosen


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS),
                        help="model configs to compare (default: %(default)s)")
    parser.add_argument("--variants", nargs="+",
                        help=f"variants, stock and ours first (default on CPU: {' '.join(CPU_VARIANTS)}; "
                             f"on CUDA: {' '.join(GPU_VARIANTS)})")
    parser.add_argument("--batch", type=int, default=4, help="mixtures per batch (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="mixture length in s at the model's sample rate (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed steps per variant, after one warm-up step (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--no-optimizer-step", dest="optimizer_step", action="store_false",
                        help="time forward + backward only, without gradient clipping and Adam step")
    parser.add_argument("--malloc-defaults", action="store_true",
                        help="time with glibc's malloc at its defaults (as training.keep_freed_memory: false); "
                             "by default the timings keep freed memory, as the recipe's training does")
    parser.add_argument("--memory-probe", nargs=2, metavar=("CONFIG", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch < 1 or args.seconds <= 0 or args.repeats < 1 or args.threads < 1:
        parser.error("--batch, --repeats and --threads must be >= 1 and --seconds > 0")
    if args.variants is None:
        args.variants = list(GPU_VARIANTS if args.device.startswith("cuda") else CPU_VARIANTS)
    if args.variants[:2] != ["stock", "ours"]:
        parser.error("--variants must start with stock ours (the ratios are taken against them)")
    for variant in args.variants:
        try:
            chosen = settings_of(variant)
        except ValueError as err:
            parser.error(str(err))
        if args.batch % chosen["micro"]:
            parser.error(f"variant {variant}: --batch {args.batch} is not a multiple of {chosen['micro']} micro-batches")
    return args


def model_config(name: str) -> dict[str, Any]:
    return {**MODEL_DEFAULTS, **CONFIGS[name]}


def make_model(name: str, variant: str, device: str) -> torch.nn.Module:
    """The model of one variant, holding the weights of stock asteroid's SuDORMRFNet seeded with 0."""
    cfg = model_config(name)
    chosen = settings_of(variant)
    torch.manual_seed(0)
    stock = SuDORMRFNet(**{k: v for k, v in cfg.items() if k not in ("arch", "mask_layer")})
    if chosen["stock"]:
        return stock.to(device)
    ours = build_model({**cfg, "mask_layer": "fast"})
    ours.load_state_dict(stock.state_dict())
    if chosen["ckpt"]:
        models.checkpoint_blocks(ours)
    ours.to(device)
    if chosen["compile"]:
        ours.compile()
    return ours


def make_batch(name: str, args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = model_config(name)
    generator = torch.Generator().manual_seed(1)
    sources = torch.randn(args.batch, cfg["n_src"], int(args.seconds * cfg["sample_rate"]), generator=generator)
    sources = sources.to(args.device)
    return sources.sum(1), sources


def make_step(model: torch.nn.Module, mixture: torch.Tensor, sources: torch.Tensor,
              args: argparse.Namespace, variant: str = "ours") -> Callable[[], None]:
    """One training step of ``model`` on the fixed batch, with the variant's precision and micro-batches."""
    chosen = settings_of(variant)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    device_type = torch.device(args.device).type
    uniform = weighting.build({"type": "uniform"})
    labels = [["env"] * sources.shape[1]] * sources.shape[0]
    size = sources.shape[0] // chosen["micro"]
    pieces = [(mixture[i:i + size], sources[i:i + size], labels[i:i + size]) for i in range(0, len(labels), size)]

    def terms(piece: tuple) -> Terms:
        with torch.autocast(device_type, dtype=torch.bfloat16) if chosen["bf16"] else contextlib.nullcontext():
            estimates = model(piece[0])
        per_source, _ = pit_neg_sisdr(estimates.float(), piece[1])  # the loss in fp32, as ugr.system
        return Terms(per_source, classes=piece[2], coarse=piece[2])

    def step() -> None:
        if chosen["tf32"]:  # process-wide: set for this variant's step; the others run in strict fp32 (ieee)
            torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = "tf32"
        optimizer.zero_grad(set_to_none=True)
        if chosen["micro"] == 1:
            terms(pieces[0]).losses.mean().backward()
        else:  # the recipe's micro-batch path: one pass without graph, then K weighted backward passes
            reweighted_backward(terms, pieces, uniform, step=0, epoch=0)
        if args.optimizer_step:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = "ieee"

    return step


def max_relative_difference(stock: torch.nn.Module, ours: torch.nn.Module, mixture: torch.Tensor) -> float:
    with torch.no_grad():
        reference, out = stock(mixture), ours(mixture)
    return ((out - reference).abs().max() / reference.abs().max()).item()


def memory_probe(args: argparse.Namespace) -> None:
    """Run in a fresh process: print the peak memory that two steps of one variant add."""
    name, variant = args.memory_probe
    mixture, sources = make_batch(name, args)
    model = make_model(name, variant, args.device)
    print(step_peak_bytes(make_step(model, mixture, sources, args, variant), args.device))


def peak_memory(args: argparse.Namespace, name: str, variant: str) -> int:
    command = [sys.executable, __file__, "--memory-probe", name, variant, "--batch", str(args.batch),
               "--seconds", str(args.seconds), "--threads", str(args.threads), "--device", args.device]
    if not args.optimizer_step:
        command.append("--no-optimizer-step")
    return run_probe(command)


def step_times(args: argparse.Namespace, name: str) -> tuple[dict[str, float], dict[str, float], float, int]:
    """Median step time and first-step time per variant, stock/ours output difference, parameter count."""
    mixture, sources = make_batch(name, args)
    built = {variant: make_model(name, variant, args.device) for variant in args.variants}
    difference = max_relative_difference(built["stock"], built["ours"], mixture)
    steps = {variant: make_step(built[variant], mixture, sources, args, variant) for variant in args.variants}
    times: dict[str, list[float]] = {variant: [] for variant in args.variants}
    first: dict[str, float] = {}
    for round_ in tqdm(range(args.repeats + 1), desc=f"{name}: rounds of {len(steps)} variants", file=sys.stderr):
        for variant in args.variants:
            start = time.perf_counter()
            steps[variant]()
            if round_:  # round 0 warms up (allocator, oneDNN primitives, compilation)
                times[variant].append(time.perf_counter() - start)
            else:
                first[variant] = time.perf_counter() - start
    params = sum(p.numel() for p in built["ours"].parameters())
    return {variant: statistics.median(times[variant]) for variant in args.variants}, first, difference, params


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_probe:  # a fresh process at glibc's defaults (peak_memory.py): its resident peak is the step's
        memory_probe(args)
        return
    kept = efficiency.keep_freed_memory(not args.malloc_defaults)
    load_before = os.getloadavg()[0]
    rows = []
    for name in args.configs:
        times, first, difference, params = step_times(args, name)
        memory = {variant: peak_memory(args, name, variant) for variant in args.variants}
        rows.append((name, params, times, first, memory, difference))
    load_after = os.getloadavg()[0]

    what = "forward + PIT loss + backward" + (" + clip + Adam step" if args.optimizer_step else "")
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{os.cpu_count()} CPUs"
    print(f"setup: batch {args.batch} x {args.seconds} s at {MODEL_DEFAULTS['sample_rate']} Hz, {args.device}, "
          f"{args.threads} threads, {what}, median of {args.repeats} interleaved steps, "
          f"freed host memory {'kept' if kept else 'returned (glibc defaults)'}")
    print(f"machine: {device}, torch {torch.__version__}, "
          f"1-min load average {load_before:.1f} before, {load_after:.1f} after")
    for name, params, times, first, memory, difference in rows:
        print(f"config {name} ({params / 1e6:.2f}M parameters; ours vs stock output difference {difference:.1e})")
        print(f"  {'variant':26}{'step s':>9}{'vs stock':>10}{'vs ours':>9}{'1st step s':>12}{'peak MB':>10}"
              f"{'mem vs ours':>13}")
        for variant in args.variants:
            print(f"  {variant:26}{times[variant]:9.3f}{times['stock'] / times[variant]:9.2f}x"
                  f"{times[variant] / times['ours']:9.3f}{first[variant]:12.1f}{memory[variant] / 2**20:10.0f}"
                  f"{memory[variant] / memory['ours']:13.3f}")
    if args.device == "cpu" and max(load_before, load_after) > args.threads:
        print(f"WARNING: load average above {args.threads} threads: other processes share the cores, and the "
              f"timings are inflated, unevenly between the models; rerun on a quiet machine")
    for name, _, times, _, memory, _ in rows:
        if name == "default" and args.device == "cpu":
            speedup = times["stock"] / times["ours"]
            verdict = "met" if speedup >= TARGET_SPEEDUP else "NOT met"
            print(f"default config speed-up {speedup:.2f}x (target >= {TARGET_SPEEDUP:g}x: {verdict})")
        elif args.device.startswith("cuda"):
            best = min(args.variants[1:], key=times.__getitem__)
            speedup = times["stock"] / times[best]
            print(f"{name}: best {best} {speedup:.2f}x stock (target >= {GPU_TARGET_SPEEDUP:g}x: "
                  f"{'met' if speedup >= GPU_TARGET_SPEEDUP else 'NOT met'})")
            fitting = [v for v in args.variants[1:] if memory[v] <= GPU_MEMORY_TARGET_GB * 2**30]
            if fitting:
                fastest = min(fitting, key=times.__getitem__)
                ratio = times[fastest] / times["ours"]
                print(f"{name}: fastest within {GPU_MEMORY_TARGET_GB:g} GB: {fastest}, {memory[fastest] / 2**30:.1f} GB, "
                      f"{ratio:.2f}x the time of ours (target <= {GPU_MEMORY_TIME_RATIO:g}: "
                      f"{'met' if ratio <= GPU_MEMORY_TIME_RATIO else 'NOT met'})")
            else:
                print(f"{name}: no variant within {GPU_MEMORY_TARGET_GB:g} GB (NOT met)")


if __name__ == "__main__":
    main()
