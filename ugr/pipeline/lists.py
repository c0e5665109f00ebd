"""Stage 1: the fixed validation and test lists of every experiment config.

    python -m ugr.pipeline.lists --data data conf/cpu/baseline_cpu.yaml conf/cpu/robust_a5_cpu.yaml [--override ...]

Each config is loaded (with its overrides) and checked against the prepared
data folder first: a class or mixture type the corpus lacks stops here,
listing what it has. Experiments whose data settings agree share one folder
``DATA/lists/<key>/`` (``lists_key``), so their test scores compare
the same mixtures. A list that exists, is of the current format and was made
from the current manifests is kept ("exists; skipping"); one of an older
format or from a re-prepared data folder is written again, with a message.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path
from typing import Sequence

import yaml

from ugr.data.eval_list import read_eval_list, write_drawn_list, write_published_list
from ugr.io.cli import one_line_errors
from ugr.pipeline import config as config_lib
from ugr.pipeline import variants
from ugr.pipeline.config import ExperimentConfig
from ugr.pipeline.corpus_check import check_corpus

EVAL_SPLITS = ("valid", "test")

LIST_KEYS = (
    "sample_rate",
    "segment",
    "snr_range",
    "priors",
    "normalize",
    "eval_from",
    "valid_mixtures",
    "test_mixtures",
    "seed",
)


def lists_key(cfg: ExperimentConfig) -> str:
    """Name of the folder of validation/test lists for this config's data settings.

    Experiments whose data settings agree share one test list, so their
    scores compare the same mixtures; any other setting gets its own lists.
    """
    data = cfg.data
    canonical = yaml.safe_dump({k: getattr(data, k) for k in LIST_KEYS}, sort_keys=True)
    return f"{data.sample_rate // 1000}k_{data.segment:g}s_" + hashlib.sha1(canonical.encode()).hexdigest()[:8]


def lists_dir(cfg: ExperimentConfig, data_dir: str | os.PathLike) -> Path:
    """Where stage 1 writes this config's lists (and stages 2-3 read them)."""
    return Path(data_dir) / "lists" / lists_key(cfg)


def write_lists(
    data_dir: Path, configs: Sequence[Path], overrides: str = "", force: bool = False, sweep: str = ""
) -> list[Path]:
    """Writes (or finds current) the lists of every config at every sweep point; returns the list files, in order.

    Training seeds change no data setting, so they share their variant's lists.
    """
    written: list[Path] = []
    for variant in variants.expand(configs, sweep=sweep, overrides=config_lib.parse_overrides([overrides])):
        path = variant.config
        cfg = variants.load(variant, overrides)
        check_corpus(cfg, data_dir, f"{path} ({variant.name})")
        data = cfg.data
        folder = lists_dir(cfg, data_dir)
        for split in EVAL_SPLITS:
            target = folder / f"{split}.csv"
            if target in written:
                continue
            written.append(target)
            if target.is_file() and not force:
                try:
                    read_eval_list(target, data_dir)
                    print(f"lists: {target} exists ({path.name}); skipping")
                    continue
                except ValueError as err:  # an older format, a re-prepared data folder, a damaged file
                    print(f"lists: {err}: writing it again")
            num = getattr(data, f"{split}_mixtures")
            if data.eval_from == config_lib.PUBLISHED:
                write_published_list(data_dir, split, target, num=num, sample_rate=data.sample_rate)
            else:
                write_drawn_list(data_dir, split, target, num=num, settings=data.mixing_settings())
            origin = "published" if data.eval_from == config_lib.PUBLISHED else "drawn from the sources"
            print(f"lists: wrote {target} ({num} mixtures {origin}, {path.name})")
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ugr.pipeline.lists", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "configs", nargs="*", type=Path, help="experiment config files; or name the experiments with --experiments"
    )
    parser.add_argument(
        "--experiments",
        help="experiment names, space-separated: NAME is the one file CONF/**/NAME.yaml (the recipe's stage 1)",
    )
    parser.add_argument("--conf", type=Path, default=Path("conf"), help="folder of the experiment configs [conf]")
    parser.add_argument("--data", required=True, type=Path, help="prepared data folder (stage 0 output)")
    parser.add_argument("--override", default="", help="[EXPERIMENT:]SECTION.KEY=VALUE ...")
    parser.add_argument(
        "--sweep", default="", help="'[EXPERIMENT:]SECTION.KEY=V1,V2 ...' (python -m ugr.pipeline.variants)"
    )
    parser.add_argument("--force", action="store_true", help="write the lists again even when they are current")
    args = parser.parse_args(argv)
    if (args.experiments is None) == (not args.configs):
        parser.error("give the config files or --experiments, one of them")
    with one_line_errors("lists", args.data / "lists", ValueError):
        variants.check_run_text(experiments=args.experiments or "", override=args.override, sweep=args.sweep)
        configs = args.configs or variants.find_configs(args.conf, args.experiments.split())
        write_lists(args.data, configs, args.override, args.force, args.sweep)


if __name__ == "__main__":
    main()
