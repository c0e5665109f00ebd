"""Stage 4's command line: ``python -m ugr.report`` writes report.md with its figures, then RESULTS.md.

The folders reported are ``--experiments`` (folder names), or with ``--variants-of-run`` the variants of a
run, from the run's own options (the recipe's stage 4)::

    python -m ugr.report --exp-root exp --variants-of-run --experiments 'a b' --seeds 3 --sweep ... --tag ... \
        --override ...
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Optional, Sequence

from ugr.io.cli import one_line_errors
from ugr.pipeline import variants
from ugr.report import report as report_lib
from ugr.report import results


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ugr.report",
        description=report_lib.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--exp-root", required=True, type=Path, help="folder holding one folder per experiment")
    parser.add_argument(
        "--experiments",
        nargs="*",
        help="experiment folder names in table order (default: all "
        "scored); folders <variant>_seed<k> are seeds of one variant."
        " With --variants-of-run: the run's experiment names "
        "(conf/**/NAME.yaml), as run.sh --experiments",
    )
    parser.add_argument(
        "--sweep",
        default="",
        help="the swept keys, as run.sh --sweep writes them "
        "('robust:weighting.alpha=0.1,0.2'): the operating-point figure",
    )
    run = parser.add_argument_group("the variants of a run (the recipe's stage 4)")
    run.add_argument(
        "--variants-of-run",
        action="store_true",
        help="report the variants of the run that --experiments, --seeds, --sweep, --tag and --override "
        "name (python -m ugr.pipeline.variants), in its order",
    )
    variants.add_run_options(run, leave_out=("experiments", "sweep"))
    parser.add_argument("--recipe", default="", help="RESULTS.md's title: the recipe (stage 4: its folder's name)")
    parser.add_argument(
        "--command",
        default="",
        help="RESULTS.md's command line that reproduces the run (stage 4: ./run.sh with the run's options)",
    )
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None, started: Optional[float] = None) -> None:
    """``started``: when the stage began (``time.monotonic()``; default: now), for RESULTS.md's report time."""
    started = time.monotonic() if started is None else started
    args = parse_args(argv)
    with one_line_errors("report", args.exp_root, ValueError):
        if args.variants_of_run:
            if not args.experiments:
                raise ValueError("--variants-of-run needs --experiments, the run's experiment names")
            found = variants.run_variants(args, " ".join(args.experiments))[1]
            args.experiments = [variants.variant_dir(args.exp_root, v.name).name for v in found]  # inside --exp-root
        elif args.seeds or args.tag or args.override:
            raise ValueError("--seeds, --tag and --override describe a run's variants: give --variants-of-run too")
        path = report_lib.report(args.exp_root, args.experiments, args.sweep)
        results_path = results.write(args.exp_root, args.experiments, args.recipe, args.command, started)
    print(f"report: wrote {path} and figures in {path.parent / 'figures'}; the results to publish: {results_path}")
