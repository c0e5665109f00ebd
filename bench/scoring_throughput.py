"""Scoring throughput (estimated sources per second): ugr.pipeline.score vs. a PITLossWrapper evaluation.

Both compute, per estimated source, the SI-SDR under the best permutation and
the mixture's SI-SDR against the same reference. The asteroid-style
evaluation reorders the estimates with ``PITLossWrapper(..., return_est=True)``
and then scores them again; ``ugr.pipeline.score.score_batch`` reads the matched
values off the pairwise matrix the permutation search already computed. The
model's forward pass is left out: it is the same for both and would hide the
difference. Both run side by side in one process on the same signals, and
the script checks they agree before it prints the ratio.

    tools/venv/bin/python bench/scoring_throughput.py [--mixtures 2000] [--seconds 4] [--batch 16]
"""

from __future__ import annotations

import argparse
import time

import torch
from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr, singlesrc_neg_sisdr

from ugr.pipeline.score import score_batch


def asteroid_evaluation(
    est: torch.Tensor, sources: torch.Tensor, mixture: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluation one writes with asteroid's PIT wrapper: reorder, then score each source."""
    _, reordered = PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")(est, sources, return_est=True)
    batch, n_src, frames = sources.shape
    flat_src = sources.reshape(-1, frames)
    est_sdr = -singlesrc_neg_sisdr(reordered.reshape(-1, frames), flat_src).reshape(batch, n_src)
    mix_sdr = -singlesrc_neg_sisdr(mixture.repeat_interleave(n_src, 0), flat_src).reshape(batch, n_src)
    return est_sdr, mix_sdr


def measure(fn, batches, repeats: int) -> float:
    """Best-of-``repeats`` seconds for one pass over every batch."""
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            for est, sources, mixture in batches:
                fn(est, sources, mixture)
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mixtures", type=int, default=2000, help="test mixtures (two sources each)")
    parser.add_argument("--seconds", type=float, default=4.0, help="mixture length at 8 kHz")
    parser.add_argument("--batch", type=int, default=16, help="mixtures per call")
    parser.add_argument("--repeats", type=int, default=3, help="passes; the fastest counts")
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    frames = int(args.seconds * 8000)
    batches = []
    for start in range(0, args.mixtures, args.batch):
        n = min(args.batch, args.mixtures - start)
        sources = torch.randn(n, 2, frames, generator=g)
        mixture = sources.sum(1)
        # estimates: the sources in a random order, plus noise, so that the permutation matters
        flip = torch.rand(n, generator=g) < 0.5
        est = torch.where(flip[:, None, None], sources.flip(1), sources) + 0.5 * torch.randn(n, 2, frames, generator=g)
        batches.append((est, sources, mixture))

    with torch.inference_mode():
        for est, sources, mixture in batches[:4]:
            for ours, theirs in zip(score_batch(est, sources, mixture), asteroid_evaluation(est, sources, mixture)):
                torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-3)

    n_sources = 2 * args.mixtures
    t_ugr = measure(score_batch, batches, args.repeats)
    t_ast = measure(asteroid_evaluation, batches, args.repeats)
    print(
        f"torch threads: {torch.get_num_threads()}; {args.mixtures} mixtures x 2 sources, {args.seconds:g} s at 8 kHz, "
        f"batch {args.batch}"
    )
    print(f"ugr.pipeline.score.score_batch       : {n_sources / t_ugr:10.0f} estimated sources/s ({t_ugr:.3f} s)")
    print(f"PITLossWrapper + re-scoring : {n_sources / t_ast:10.0f} estimated sources/s ({t_ast:.3f} s)")
    print(f"ratio (ugr / asteroid)      : {t_ast / t_ugr:.2f}x")


if __name__ == "__main__":
    main()
