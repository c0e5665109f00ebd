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
``training.activation_checkpointing``), ``bf16pw`` (the model config's
``bf16_pointwise``: only the 1x1 convolutions and the mask product in bf16),
``microK`` (K micro-batches through
``ugr.core.step.reweigh_backward``, as ``training.micro_batches: K``: the same
gradient for less activation memory). Timings alternate between the variants
so that drift of the machine hits all alike; the figure is the median. Peak
memory over two steps: see ``peak_memory.py`` (the CUDA allocator's peak,
``torch.cuda.max_memory_allocated``, or on CPU the resident peak of a fresh
process per variant). The machine's load average is printed too: other
processes on the cores distort CPU timings.

OpenMP wait policies (``--policies``): OMP_WAIT_POLICY is read once, when
OpenMP starts, so each policy runs in a subprocess of its own; ``default`` is
the variable unset (threads spin a while before sleeping: what the recipe
runs with, as tools/env.sh leaves the variable to the user), ``PASSIVE`` is
what tools/test.sh sets. A summary puts the policies side by side.

Roofline: the FLOPs of one step of each variant (matrix products and
convolutions, forward and backward, counted by torch's FlopCounterMode
formulas with the convolution-backward one corrected for groups; elementwise
ops, norms and Adam count no FLOPs), the bytes each op reads and writes
(``StepCosts``), the achieved GFLOP/s, and two roofs measured in the same
process and threads: the GFLOP/s of an fp32 GEMM (sgemm) and the GB/s of a
large copy. ``FLOP bound`` = FLOPs / sgemm rate (memory traffic free);
``roofline`` = the sum over ops of the slower of FLOPs / sgemm rate and
bytes / copy rate: the time of the step if every op ran at its roof, which
is the bound of the target.

Configs: ``default`` (the paper's model, ugr.separation.models.MODEL_DEFAULTS),
``cpu_preset`` (ugr.separation.models.CPU_PRESET over the defaults).
Targets: ours at least 4 times faster than stock under every policy, and the
CPU step of ours within 2 times its roofline bound under every policy; on
GPU, the best variant at least 6 times faster than stock at the paper's
config (``--batch 28 --seconds 4``), and a variant within 11 GB at no more
than 1.2 times the time of ``ours``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from asteroid.models import SuDORMRFNet
from peak_memory import run_probe, step_peak_bytes
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import conv_flop_count, flop_registry, shape_wrapper
from tqdm import tqdm

from ugr.core import weighting
from ugr.core.step import Terms, reweigh_backward
from ugr.pipeline import efficiency
from ugr.separation import models
from ugr.separation.losses import pit_neg_sisdr
from ugr.separation.models import CPU_PRESET, MODEL_DEFAULTS, build_model

CONFIGS = {"default": {}, "cpu_preset": CPU_PRESET}
SETTINGS = ("tf32", "compile", "bf16", "bf16pw", "ckpt")  # and microK
CPU_VARIANTS = ("stock", "ours")
GPU_VARIANTS = (
    "stock",
    "ours",
    "ours+tf32",
    "ours+compile+tf32",
    "ours+bf16",
    "ours+compile+tf32+bf16",
    "ours+ckpt",
    "ours+micro2",
    "ours+micro4",
    "ours+bf16+ckpt",
    "ours+compile+tf32+ckpt",
)
TARGET_SPEEDUP = 4.0
TARGET_BOUND_RATIO = 2.0  # CPU step of ours / its roofline bound (roofline_bound)
POLICIES = ("default", "PASSIVE", "ACTIVE")  # OMP_WAIT_POLICY; default: unset
SGEMM_SIZE = 2048
COPY_MEGABYTES = 256  # the copy that measures the memory roof: far larger than the caches
GPU_TARGET_SPEEDUP = 6.0
GPU_MEMORY_TARGET_GB, GPU_MEMORY_TIME_RATIO = 11.0, 1.2


def settings_of(variant: str) -> dict[str, Any]:
    """``ours+bf16+micro4`` -> {"bf16": True, "micro": 4, ...}; raises ValueError naming what is allowed."""
    base, *extras = variant.split("+")
    if base not in ("stock", "ours") or (base == "stock" and extras):
        raise ValueError(
            f"variant {variant!r}: write stock, ours, or ours+SETTING+... with SETTING one of "
            f"{', '.join(SETTINGS)}, microK"
        )
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
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=list(CONFIGS),
        default=list(CONFIGS),
        help="model configs to compare (default: %(default)s)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        help=f"variants, stock and ours first (default on CPU: {' '.join(CPU_VARIANTS)}; "
        f"on CUDA: {' '.join(GPU_VARIANTS)})",
    )
    parser.add_argument("--batch", type=int, default=4, help="mixtures per batch (default: %(default)s)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=2.0,
        help="mixture length in s at the model's sample rate (default: %(default)s)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed steps per variant, after one warm-up step (default: %(default)s)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument(
        "--no-optimizer-step",
        dest="optimizer_step",
        action="store_false",
        help="time forward + backward only, without gradient clipping and Adam step",
    )
    parser.add_argument(
        "--malloc-defaults",
        action="store_true",
        help="time with glibc's malloc at its defaults (as training.keep_freed_memory: false); "
        "by default the timings keep freed memory, as the recipe's training does",
    )
    parser.add_argument(
        "--policies",
        nargs="+",
        choices=POLICIES,
        default=["default", "PASSIVE"],
        help="OpenMP wait policies, each in a subprocess (default: %(default)s; default = "
        "OMP_WAIT_POLICY unset, the recipe's unless the user exports it; "
        "PASSIVE: tools/test.sh's)",
    )
    parser.add_argument("--memory-probe", nargs=2, metavar=("CONFIG", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--policy-child", choices=POLICIES, help=argparse.SUPPRESS)
    parser.add_argument("--json-out", help=argparse.SUPPRESS)
    parser.add_argument("--skip-memory", action="store_true", help=argparse.SUPPRESS)
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
            parser.error(
                f"variant {variant}: --batch {args.batch} is not a multiple of {chosen['micro']} micro-batches"
            )
    return args


def model_config(name: str) -> dict[str, Any]:
    return {**MODEL_DEFAULTS, **CONFIGS[name]}


def make_model(name: str, variant: str, device: str) -> torch.nn.Module:
    """The model of one variant, holding the weights of stock asteroid's SuDORMRFNet seeded with 0."""
    cfg = model_config(name)
    chosen = settings_of(variant)
    torch.manual_seed(0)
    stock = SuDORMRFNet(**{k: v for k, v in cfg.items() if k not in ("arch", "mask_layer", "bf16_pointwise")})
    if chosen["stock"]:
        return stock.to(device)
    ours = build_model({**cfg, "mask_layer": "fast", "bf16_pointwise": chosen["bf16pw"]})
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


def make_step(
    model: torch.nn.Module,
    mixture: torch.Tensor,
    sources: torch.Tensor,
    args: argparse.Namespace,
    variant: str = "ours",
) -> Callable[[], None]:
    """One training step of ``model`` on the fixed batch, with the variant's precision and micro-batches."""
    chosen = settings_of(variant)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    device_type = torch.device(args.device).type
    uniform = weighting.build({"type": "uniform"})
    labels = [["env"] * sources.shape[1]] * sources.shape[0]
    size = sources.shape[0] // chosen["micro"]
    pieces = [(mixture[i : i + size], sources[i : i + size], labels[i : i + size]) for i in range(0, len(labels), size)]

    def terms(piece: tuple) -> Terms:
        with torch.autocast(device_type, dtype=torch.bfloat16) if chosen["bf16"] else contextlib.nullcontext():
            estimates = model(piece[0])
        per_source, _ = pit_neg_sisdr(estimates.float(), piece[1])  # the loss in fp32, as ugr.pipeline.system
        return Terms(per_source, classes=piece[2], coarse=piece[2])

    def step() -> None:
        if chosen["tf32"]:  # process-wide: set for this variant's step; the others run in strict fp32 (ieee)
            torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = "tf32"
        optimizer.zero_grad(set_to_none=True)
        if chosen["micro"] == 1:
            terms(pieces[0]).losses.mean().backward()
        else:  # the recipe's micro-batch path: one pass without graph, then K weighted backward passes
            reweigh_backward(terms, pieces, uniform, step=0, epoch=0)
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


def conv_backward_flop(
    grad_out_shape: list[int],
    x_shape: list[int],
    w_shape: list[int],
    _bias: Any,
    _stride: Any,
    _padding: Any,
    _dilation: Any,
    transposed: bool,
    _output_padding: Any,
    _groups: int,
    output_mask: list[bool],
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    """FLOPs of ``aten.convolution_backward``: each requested gradient costs what the forward costs.

    Every multiply-add of the forward (output position x tap x input channel
    of the group) appears once in the input gradient and once in the weight
    gradient. torch's own formula builds the weight-gradient term from the
    full channel counts and drops ``groups``, so it counts a depthwise layer's
    weight gradient ``groups`` times over (256x for the CPU preset's U-blocks).
    """
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


class StepCosts(TorchDispatchMode):
    """Records, for every aten op that runs under it, its FLOPs and the bytes it reads and writes.

    FLOPs: torch's formulas (those of FlopCounterMode, the same ops: matrix
    products and convolutions), with ``conv_backward_flop`` for the
    convolution backward. Bytes: each distinct tensor the op takes or returns,
    once, at most its storage (a broadcast view reads what it views);
    a view (an output aliasing an input, not in place) moves nothing. That is
    what the op must move from and to memory when its tensors are not in
    cache: most of the step's tensors (26 MB each at batch 16 of the CPU
    preset) do not stay in a 32 MB L3 between ops.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, int, int]] = []  # (op, FLOPs, bytes), in order
        self.formulas = {**flop_registry, torch.ops.aten.convolution_backward: shape_wrapper(conv_backward_flop)}

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        input_storages = {t.untyped_storage().data_ptr() for t in inputs}
        in_place = func._schema.is_mutable
        if not in_place and outputs and all(t.untyped_storage().data_ptr() in input_storages for t in outputs):
            moved = 0
        else:
            distinct = {
                (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride())): t
                for t in inputs + outputs
            }
            moved = sum(min(t.numel() * t.element_size(), t.untyped_storage().nbytes()) for t in distinct.values())
        flops = self.formulas[packet](*args, **kwargs, out_val=out) if packet in self.formulas else 0
        self.ops.append((packet.__name__, flops, moved))
        return out


def step_costs(step: Callable[[], None]) -> list[tuple[str, int, int]]:
    """(op, FLOPs, bytes) of every op of one call of ``step`` (``StepCosts``).

    ``ugr.separation.kernels.DepthwiseConv1d`` computes its gradients with convolutions
    too, so its multiply-adds are counted as those of the stock layer.
    """
    with StepCosts() as costs:
        step()
    return costs.ops


def roofline_bound(costs: list[tuple[str, int, int]], gflops: float, gbytes: float) -> float:
    """Seconds a step cannot beat when each op runs at the compute roof (sgemm) or the memory roof (copy), the
    slower of the two: ``sum over ops of max(FLOPs / sgemm rate, bytes / copy rate)``."""
    return sum(max(flops / (gflops * 1e9), moved / (gbytes * 1e9)) for _, flops, moved in costs)


def median_seconds(work: Callable[[], Any], device: str, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``work`` after one warm-up call (CUDA: synchronised)."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        work()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def copy_rate(device: str, megabytes: int = COPY_MEGABYTES, repeats: int = 5) -> float:
    """GB/s (bytes read + written) of copying a tensor far larger than the caches, median of ``repeats``: the memory
    roof of this process."""
    source = torch.randn(megabytes * 2**20 // 4, device=device)
    target = torch.empty_like(source)
    return 2 * source.numel() * 4 / median_seconds(lambda: target.copy_(source), device, repeats) / 1e9


def sgemm_rate(device: str, size: int = SGEMM_SIZE, repeats: int = 5) -> float:
    """GFLOP/s of a square fp32 matrix product, median of ``repeats``: the compute roof of this process."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    return 2 * size**3 / median_seconds(lambda: torch.mm(a, b), device, repeats) / 1e9


def memory_probe(args: argparse.Namespace) -> None:
    """Run in a fresh process: print the peak memory that two steps of one variant add."""
    name, variant = args.memory_probe
    mixture, sources = make_batch(name, args)
    model = make_model(name, variant, args.device)
    print(step_peak_bytes(make_step(model, mixture, sources, args, variant), args.device))


def peak_memory(args: argparse.Namespace, name: str, variant: str) -> int:
    command = [
        sys.executable,
        __file__,
        "--memory-probe",
        name,
        variant,
        "--batch",
        str(args.batch),
        "--seconds",
        str(args.seconds),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
    ]
    if not args.optimizer_step:
        command.append("--no-optimizer-step")
    return run_probe(command)


@dataclass
class Measured:
    """One config's figures in one process: per variant the median and first step times (s), FLOPs and bytes of a
    step and its roofline bound (s); the stock/ours output difference, the parameter count of ours, and the roofs:
    sgemm GFLOP/s and copy GB/s (medians of measurements before and between the rounds)."""

    times: dict[str, float]
    first: dict[str, float]
    flops: dict[str, int]
    bytes: dict[str, int]
    roofline: dict[str, float]
    difference: float
    params: int
    sgemm: float
    copy: float


def step_times(args: argparse.Namespace, name: str) -> Measured:
    """Every variant's step, interleaved round by round, with the roofs measured before each round."""
    mixture, sources = make_batch(name, args)
    built = {variant: make_model(name, variant, args.device) for variant in args.variants}
    difference = max_relative_difference(built["stock"], built["ours"], mixture)
    steps = {variant: make_step(built[variant], mixture, sources, args, variant) for variant in args.variants}
    times: dict[str, list[float]] = {variant: [] for variant in args.variants}
    first: dict[str, float] = {}
    rates, copies = [sgemm_rate(args.device)], [copy_rate(args.device)]
    for round_ in tqdm(range(args.repeats + 1), desc=f"{name}: rounds of {len(steps)} variants", file=sys.stderr):
        rates.append(sgemm_rate(args.device))
        copies.append(copy_rate(args.device))
        for variant in args.variants:
            start = time.perf_counter()
            steps[variant]()
            if round_:  # round 0 warms up (allocator, oneDNN primitives, compilation)
                times[variant].append(time.perf_counter() - start)
            else:
                first[variant] = time.perf_counter() - start
    sgemm, copy = statistics.median(rates), statistics.median(copies)
    costs = {variant: step_costs(steps[variant]) for variant in args.variants}
    return Measured(
        times={variant: statistics.median(times[variant]) for variant in args.variants},
        first=first,
        flops={variant: sum(op[1] for op in costs[variant]) for variant in args.variants},
        bytes={variant: sum(op[2] for op in costs[variant]) for variant in args.variants},
        roofline={variant: roofline_bound(costs[variant], sgemm, copy) for variant in args.variants},
        difference=difference,
        params=sum(p.numel() for p in built["ours"].parameters()),
        sgemm=sgemm,
        copy=copy,
    )


def child_command(argv: list[str], policy: str, json_out: str, skip_memory: bool) -> list[str]:
    return [
        sys.executable,
        __file__,
        *argv,
        "--policy-child",
        policy,
        "--json-out",
        json_out,
        *(["--skip-memory"] if skip_memory else []),
    ]


def run_policies(args: argparse.Namespace, argv: list[str]) -> None:
    """Every policy of ``--policies`` in a subprocess of its own (OpenMP reads the variable once, at start), one
    after the other; then their figures side by side and the targets."""
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for index, policy in enumerate(args.policies):
            env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
            if policy != "default":
                env["OMP_WAIT_POLICY"] = policy
            print(f"=== OMP_WAIT_POLICY={'(unset)' if policy == 'default' else policy}", flush=True)
            json_out = os.path.join(folder, f"{policy}.json")
            # Peak memory does not depend on the wait policy: probed under the first policy only.
            subprocess.run(child_command(argv, policy, json_out, skip_memory=index > 0), env=env, check=True)
            with open(json_out) as done:
                results.append(json.load(done))
    print()
    print(
        f"side by side (sgemm: {SGEMM_SIZE}^3 fp32 matrix product, copy: a {COPY_MEGABYTES} MB tensor copied, "
        f"both in the same process; FLOP bound: FLOPs at the sgemm rate; roofline: each op at the sgemm rate or "
        f"the copy rate, the slower; the recipe's policy: tools/env.sh leaves OMP_WAIT_POLICY to the user, so it "
        f"runs as 'default' unless exported; tools/test.sh sets PASSIVE; this shell has "
        f"{os.environ.get('OMP_WAIT_POLICY', '(unset)')})"
    )
    print(
        f"  {'policy':9}{'config':12}{'variant':22}{'step s':>8}{'vs stock':>10}{'GFLOP':>8}{'GFLOP/s':>9}"
        f"{'sgemm':>7}{'of sgemm':>10}{'FLOP bound':>11}{'step/it':>9}{'GB':>7}{'copy':>6}{'roofline':>10}"
        f"{'step/it':>9}{'load':>10}"
    )
    for result in results:
        for name, row in result["configs"].items():
            for variant in args.variants:
                step, flops = row["times"][variant], row["flops"][variant]
                achieved = flops / step / 1e9
                bound = flops / (row["sgemm"] * 1e9)
                roofline = row["roofline"][variant]
                print(
                    f"  {result['policy']:9}{name:12}{variant:22}{step:8.3f}{row['times']['stock'] / step:9.2f}x"
                    f"{flops / 1e9:8.1f}{achieved:9.1f}{row['sgemm']:7.0f}{achieved / row['sgemm']:10.3f}"
                    f"{bound:11.3f}{step / bound:9.2f}{row['bytes'][variant] / 1e9:7.1f}{row['copy']:6.1f}"
                    f"{roofline:10.3f}{step / roofline:9.2f}{result['load'][0]:5.1f}-{result['load'][1]:.1f}"
                )
    for name in args.configs:
        for result in results:
            row = result["configs"][name]
            speedup = row["times"]["stock"] / row["times"]["ours"]
            print(
                f"{name}, {result['policy']}: ours {speedup:.2f}x stock (target >= {TARGET_SPEEDUP:g}x: "
                f"{'met' if speedup >= TARGET_SPEEDUP else 'NOT met'})"
            )
            if args.device == "cpu":
                ratio = row["times"]["ours"] / row["roofline"]["ours"]
                flop_ratio = row["times"]["ours"] / (row["flops"]["ours"] / (row["sgemm"] * 1e9))
                print(
                    f"{name}, {result['policy']}: ours {ratio:.2f}x its roofline bound (target <= "
                    f"{TARGET_BOUND_RATIO:g}x: {'met' if ratio <= TARGET_BOUND_RATIO else 'NOT met'}); "
                    f"{flop_ratio:.2f}x its FLOP bound alone (compute roof only, memory traffic free)"
                )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_probe:  # a fresh process at glibc's defaults (peak_memory.py): its resident peak is the step's
        memory_probe(args)
        return
    if args.policy_child is None:
        run_policies(args, argv)
        return
    kept = efficiency.keep_freed_memory(not args.malloc_defaults)
    load_before = os.getloadavg()[0]
    rows = []
    for name in args.configs:
        measured = step_times(args, name)
        memory = {
            variant: math.nan if args.skip_memory else peak_memory(args, name, variant) for variant in args.variants
        }
        rows.append((name, measured, memory))
    load_after = os.getloadavg()[0]
    with open(args.json_out, "w") as out:
        json.dump(
            {
                "policy": args.policy_child,
                "load": [load_before, load_after],
                "configs": {name: asdict(measured) for name, measured, _ in rows},
            },
            out,
        )

    what = "forward + PIT loss + backward" + (" + clip + Adam step" if args.optimizer_step else "")
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{os.cpu_count()} CPUs"
    print(
        f"setup: batch {args.batch} x {args.seconds} s at {MODEL_DEFAULTS['sample_rate']} Hz, {args.device}, "
        f"{args.threads} threads, {what}, median of {args.repeats} interleaved steps, "
        f"freed host memory {'kept' if kept else 'returned (glibc defaults)'}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}"
    )
    print(
        f"machine: {device}, torch {torch.__version__}, "
        f"1-min load average {load_before:.1f} before, {load_after:.1f} after"
    )
    for name, measured, memory in rows:
        times, flops = measured.times, measured.flops
        print(
            f"config {name} ({measured.params / 1e6:.2f}M parameters; ours vs stock output difference "
            f"{measured.difference:.1e}; sgemm {measured.sgemm:.0f} GFLOP/s, copy {measured.copy:.1f} GB/s)"
        )
        print(
            f"  {'variant':26}{'step s':>9}{'vs stock':>10}{'vs ours':>9}{'1st step s':>12}{'peak MB':>10}"
            f"{'mem vs ours':>13}{'GFLOP':>8}{'GFLOP/s':>9}{'of sgemm':>10}{'GB':>7}{'roofline s':>12}"
        )
        for variant in args.variants:
            achieved = flops[variant] / times[variant] / 1e9
            print(
                f"  {variant:26}{times[variant]:9.3f}{times['stock'] / times[variant]:9.2f}x"
                f"{times[variant] / times['ours']:9.3f}{measured.first[variant]:12.1f}"
                f"{memory[variant] / 2**20:10.0f}{memory[variant] / memory['ours']:13.3f}{flops[variant] / 1e9:8.1f}"
                f"{achieved:9.1f}{achieved / measured.sgemm:10.3f}{measured.bytes[variant] / 1e9:7.1f}"
                f"{measured.roofline[variant]:12.3f}"
            )
    if args.device == "cpu" and max(load_before, load_after) > args.threads:
        print(
            f"WARNING: load average above {args.threads} threads: other processes share the cores, and the "
            f"timings are inflated, unevenly between the models; rerun on a quiet machine"
        )
    for name, measured, memory in rows:
        times = measured.times
        if args.device.startswith("cuda"):
            best = min(args.variants[1:], key=times.__getitem__)
            speedup = times["stock"] / times[best]
            print(
                f"{name}: best {best} {speedup:.2f}x stock (target >= {GPU_TARGET_SPEEDUP:g}x: "
                f"{'met' if speedup >= GPU_TARGET_SPEEDUP else 'NOT met'})"
            )
            fitting = [v for v in args.variants[1:] if memory[v] <= GPU_MEMORY_TARGET_GB * 2**30]
            if args.skip_memory:
                print(f"{name}: peak memory was probed under the first policy (see there)")
            elif fitting:
                fastest = min(fitting, key=times.__getitem__)
                ratio = times[fastest] / times["ours"]
                print(
                    f"{name}: fastest within {GPU_MEMORY_TARGET_GB:g} GB: {fastest}, {memory[fastest] / 2**30:.1f} GB, "
                    f"{ratio:.2f}x the time of ours (target <= {GPU_MEMORY_TIME_RATIO:g}: "
                    f"{'met' if ratio <= GPU_MEMORY_TIME_RATIO else 'NOT met'})"
                )
            else:
                print(f"{name}: no variant within {GPU_MEMORY_TARGET_GB:g} GB (NOT met)")


if __name__ == "__main__":
    main()
