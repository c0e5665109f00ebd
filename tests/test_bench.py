"""The benchmark scripts are documented from the command line (every one answers --help), and the variants of
bench/model_speed.py compute the step they name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_every_benchmark_script_answers_help(script):
    done = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True, cwd=BENCH)
    assert done.returncode == 0 and done.stdout.startswith("usage:") and len(done.stdout.splitlines()) > 3, (
        script,
        done.stdout,
        done.stderr[-2000:],
    )


def test_model_speed_variants_do_the_same_step():
    """The memory-capped variants of bench/model_speed.py (the GPU table's rows) run the step they name: the
    same gradient as ours (checkpointing, micro-batches), a close one in bf16; checked here on CPU."""
    sys.path.insert(0, str(BENCH))
    try:
        import model_speed
    finally:
        sys.path.remove(str(BENCH))
    args = model_speed.parse_args(
        [
            "--configs",
            "cpu_preset",
            "--batch",
            "2",
            "--seconds",
            "0.1",
            "--no-optimizer-step",
            "--variants",
            "stock",
            "ours",
            "ours+ckpt",
            "ours+micro2",
            "ours+bf16",
        ]
    )
    mixture, sources = model_speed.make_batch("cpu_preset", args)
    grads = {}
    for variant in args.variants[1:]:
        model = model_speed.make_model("cpu_preset", variant, "cpu")
        model_speed.make_step(model, mixture, sources, args, variant)()
        grads[variant] = torch.cat([p.grad.reshape(-1) for _, p in sorted(model.named_parameters())])
    for variant in ("ours+ckpt", "ours+micro2"):
        torch.testing.assert_close(grads[variant], grads["ours"], rtol=1e-4, atol=1e-6 * grads["ours"].abs().max())
    assert torch.nn.functional.cosine_similarity(grads["ours+bf16"], grads["ours"], dim=0) > 0.9
    assert not torch.equal(grads["ours+bf16"], grads["ours"])
    with pytest.raises(SystemExit):
        model_speed.parse_args(["--variants", "stock", "ours", "ours+fp8"])


def test_model_speed_roofline_counts_each_ops_bytes_and_takes_the_slower_roof():
    """bench/model_speed.py's roofline: an op moves each distinct tensor it reads or writes once (a broadcast view
    only what it views, a view nothing, an in-place op its operand once), and its bound is the slower of its FLOPs
    at the sgemm rate and its bytes at the copy rate."""
    sys.path.insert(0, str(BENCH))
    try:
        import model_speed
    finally:
        sys.path.remove(str(BENCH))
    a, b = torch.randn(64, 32), torch.randn(32, 16)
    row = torch.randn(1, 16)

    def ops() -> None:
        product = a @ b  # reads a and b, writes the product
        product.view(16, 64)  # a view: nothing moves
        product.add_(row.expand(64, 16))  # in place: the product once, the broadcast row once
        torch.mul(a, a)  # one tensor taken twice: read once

    costs = model_speed.step_costs(ops)
    assert [name for name, _, _ in costs] == ["mm", "view", "expand", "add_", "mul"]
    assert costs[0] == ("mm", 2 * 64 * 32 * 16, 4 * (64 * 32 + 32 * 16 + 64 * 16))
    assert costs[1][2] == costs[2][2] == 0
    assert costs[3] == ("add_", 0, 4 * (64 * 16 + 16))
    assert costs[4] == ("mul", 0, 4 * 2 * 64 * 32)
    # At 1 GFLOP/s and 1 GB/s the product is bound by its FLOPs (65536 against 14336 bytes), the rest by their bytes;
    # with a memory roof 1000x lower, every op by its bytes.
    bound = model_speed.roofline_bound(costs, gflops=1.0, gbytes=1.0)
    assert bound == pytest.approx((2 * 64 * 32 * 16 + 4 * (64 * 16 + 16) + 4 * 2 * 64 * 32) / 1e9)
    assert model_speed.roofline_bound(costs, gflops=1.0, gbytes=1e-3) == pytest.approx(
        sum(moved for _, _, moved in costs) / 1e6
    )
