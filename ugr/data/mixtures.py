"""CLI (stage 1): write a seeded mixture list; the format is documented in ugr.data.mixture_list."""
from __future__ import annotations

import argparse
import sys

from .mixing import parse_priors
from .mixture_list import write_mixture_list


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ugr.data.mixtures",
        description="Write a seeded, byte-reproducible list of two-source mixtures for a validation/test split.",
    )
    parser.add_argument("--data", required=True, help="data folder written by ugr.data.prepare")
    parser.add_argument("--split", required=True, choices=["train", "valid", "test"])
    parser.add_argument("--num", type=int, required=True, help="number of mixtures")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--segment", type=float, default=4.0, help="mixture length in seconds (default: %(default)s)")
    parser.add_argument("--sample-rate", type=int, default=8000, help="must match the prepared data (default: %(default)s)")
    parser.add_argument("--snr", type=float, nargs=2, default=(-5.0, 5.0), metavar=("LOW", "HIGH"),
                        help="SNR range in dB of source 1 over source 2 (default: -5 5)")
    parser.add_argument("--priors", nargs="+", metavar="TYPE=WEIGHT",
                        help="mixture-type weights, types speech+speech, env+env, speech+env "
                             "(default: uniform over the types the split can form)")
    parser.add_argument("--normalize", action="store_true", help="scale each mixture and its sources to unit mixture power")
    parser.add_argument("--out", required=True, help="list file to write")
    args = parser.parse_args(argv)
    try:
        priors = parse_priors(args.priors) if args.priors else None
    except ValueError as err:
        parser.error(str(err))
    try:
        out = write_mixture_list(args.data, args.split, args.out, num=args.num, seed=args.seed,
                                 segment=args.segment,
                                 sample_rate=args.sample_rate, snr_range=tuple(args.snr), priors=priors,
                                 normalize=args.normalize)
    except (ValueError, FileNotFoundError) as err:
        parser.exit(2, f"error: {err}\n")
    print(f"[mixtures] wrote {args.num} {args.split} mixtures to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
