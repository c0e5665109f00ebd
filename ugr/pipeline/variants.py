"""Experiment variants: every experiment config, at every point of a sweep, once per training seed.

One training run is not evidence: another training seed moves the test means
as much as the effects the recipes show, and an operating point is chosen on
a curve, not from one run. So the recipes' per-experiment stages run over
*variants*, each one experiment folder:

    ./run.sh --experiments 'baseline_cpu robust_a5_cpu' --seeds 3 \\
             --sweep 'robust_a5_cpu:weighting.alpha=0.05,0.1,0.2'

makes ``baseline_cpu_seed{0,1,2}`` and ``robust_a5_cpu_alpha{0.05,0.1,0.2}_seed{0,1,2}``.

* ``--seeds N`` (seeds 0..N-1) or ``--seeds 0,3,7``: ``training.seed`` of each
  run, the folder's suffix ``_seed<k>``. The seed sets the model's
  initialisation and Lightning's randomness; the data settings (and so the
  validation and test lists, and the stream of training mixtures, which
  ``data.seed`` keys) are the same for every seed, so seeds measure what
  training alone varies. Without ``--seeds`` each variant is one run at its
  config's seed, in a folder without the suffix.
* ``--sweep 'KEY=V1,V2 ...'``: every combination of the listed values (a
  grid over several keys), for every experiment or, with ``EXPERIMENT:KEY``,
  for that experiment alone (so a baseline can run beside a sweep of
  weightings it does not have). Keys and values are written as ``--override``
  writes them (values are YAML, separated by commas outside brackets and
  braces: ``weighting.gamma={speech: 3},{env: 3}``) and meet the same checks:
  a mistyped key or a bad value stops the run naming the file and the key.
  The folder gets ``_<last key><value>`` per key, e.g. ``_alpha0.1``, ``_gamma-speech-3``.

Folders are ``<experiment>[_<tag>][_<sweep point>][_seed<k>]`` in ``--exp``. Names are data, never paths:
each part and the whole name is a folder name (``check_folder_name``: 1-100 characters of ``A-Za-z0-9._+-``,
not starting with ``.`` or ``-``), and every experiment folder is found through ``variant_dir``, which
refuses one that would lie (links followed) outside ``--exp``. ``--seeds`` gives at most 1000 seeds, each
below 2**31.
A variant's overrides are the user's ``--override`` followed by its sweep
values and its seed; an override of a swept key or of ``training.seed``
beside ``--seeds`` would be silently overruled, so it is refused.

An experiment is named by its file's name without ``.yaml``: ``baseline_cpu`` is the one
file ``conf/**/baseline_cpu.yaml``, at any depth under ``conf/`` (the recipes group their
configs in folders, e.g. ``conf/cpu/``, ``conf/gpu/``, ``conf/paper/``). A name no file has,
or that two folders both have, stops the run (``find_config``); ugr.sh and the stages resolve
names here, so there is one rule.

The stages ask this module, so they agree on the variants without a file
between them (a Slurm job runs long after ``run.sh`` started it)::

    python -m ugr.pipeline.variants --experiments 'a b' [--seeds S] [--sweep S] [--tag T] [--override O] plan
    python -m ugr.pipeline.variants ... names       # every variant's folder, one per line
    python -m ugr.pipeline.variants ... check [--data DATA]

The per-variant stages (2, 3) resolve their variant in Python (``python -m ugr.pipeline.task``,
``task_variant``), with its overrides as values (``variant_override_list``), never as text read back;
stage 1 (``python -m ugr.pipeline.lists --experiments``) and stage 4 (``python -m ugr.report
--variants-of-run``) expand the run's options themselves. The run options are read in one way
everywhere (``add_run_options``, ``check_run_text``): a value holding a control character (a newline
would split it where a line is read back) is refused, naming its option.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ugr.pipeline import config as config_lib
from ugr.pipeline.corpus_check import check_corpus

SEED_KEY = ("training", "seed")
# Keys a sweep may not move: they are shared by every experiment of a run (run.sh --fs sets them).
_UNSWEEPABLE = {("data", "sample_rate"), ("model", "sample_rate"), SEED_KEY}
SEED_SUFFIX = re.compile(r"^(?P<group>.+)_seed(?P<seed>\d+)$")


@dataclass(frozen=True)
class SweepAxis:
    """One swept key: ``[EXPERIMENT:]SECTION.KEY=V1,V2,...``."""

    text: str
    experiment: Optional[str]
    keys: Tuple[str, ...]
    values: Tuple[Any, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.keys)


@dataclass(frozen=True)
class Variant:
    """One experiment folder: a config at one sweep point and one training seed."""

    name: str  # the folder under --exp
    config: Path
    group: str  # the name without the seed suffix: the runs that differ only by seed
    seed: Optional[int]  # None: the config's own training.seed, no suffix
    point: Tuple[Tuple[str, Any], ...]  # (dotted key, value) of each swept key
    overrides: Tuple[str, ...]  # the override texts this variant adds to the user's

    @property
    def experiment(self) -> str:
        return self.config.stem


MAX_SEEDS = 1000  # seeds of one run: each is a training
SEED_LIMIT = 2**31  # a seed is below it: torch's (and numpy's) seed range as Lightning seeds them
_DIGITS = re.compile(r"[0-9]{1,12}")  # ASCII digits (str.isdigit takes '²', which int() refuses)


def parse_seeds(text: str) -> Optional[List[int]]:
    """``""``: no seed axis; ``"3"``: seeds 0, 1, 2; ``"0,4,7"``: those seeds. At most ``MAX_SEEDS`` seeds,
    each below ``SEED_LIMIT``."""
    text = text.strip()
    if not text:
        return None
    usage = (
        f"--seeds {text!r}: give a count (e.g. 3 for seeds 0,1,2; at most {MAX_SEEDS}) or a comma-separated "
        f"list (e.g. 0,1,2) of seeds below 2**31"
    )
    if "," not in text:
        if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= MAX_SEEDS:
            raise config_lib.ConfigError(usage)
        return list(range(int(text)))
    words = [word.strip() for word in text.split(",")]
    if not all(_DIGITS.fullmatch(word) for word in words):
        raise config_lib.ConfigError(usage)
    seeds = [int(word) for word in words]
    if len(seeds) > MAX_SEEDS or any(seed >= SEED_LIMIT for seed in seeds):
        raise config_lib.ConfigError(usage)
    if len(set(seeds)) != len(seeds):
        raise config_lib.ConfigError(f"--seeds {text!r} names a seed twice")
    return seeds


# A folder name under --exp (an experiment folder, a tag in it): data, never a path. The characters value_tag
# keeps, '_' (the parts' glue), no leading '.' (hidden, '..') or '-' (an option to the shell's tools).
FOLDER_NAME = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]{0,99}")
FOLDER_RULE = (
    "a folder name is 1-100 characters of A-Z a-z 0-9 . _ + - (letters, digits, dot, underscore, plus, "
    "minus), not starting with . or -"
)


def check_folder_name(name: str, what: str) -> None:
    """ConfigError naming ``what`` (e.g. ``--tag 'a/b'``), the first character outside the rule and the rule,
    unless ``name`` is a folder name (``FOLDER_NAME``)."""
    if FOLDER_NAME.fullmatch(name):
        return
    bad = next(
        (
            f"the character {char!r} (at {index}) is not allowed"
            for index, char in enumerate(name)
            if not re.fullmatch(r"[A-Za-z0-9._+-]", char)
        ),
        None,
    )
    why = (
        "it is empty"
        if not name
        else bad
        if bad
        else f"it starts with {name[0]!r}"
        if name[0] in ".-"
        else f"it is {len(name)} characters long"
    )
    raise config_lib.ConfigError(f"{what}: {why}; {FOLDER_RULE}")


def variant_dir(exp_root: Path, name: str) -> Path:
    """``exp_root / name``, the folder of the experiment ``name`` (a folder name, ``check_folder_name``), once it
    is sure to lie inside ``exp_root``: resolved (links followed), it is a child of the resolved ``exp_root``.
    A folder there that is a link to elsewhere is refused (ConfigError), as nothing outside --exp is written."""
    check_folder_name(name, f"experiment folder {name!r}")
    path = Path(exp_root) / name
    root = Path(exp_root).resolve()
    if path.resolve().parent != root:
        raise config_lib.ConfigError(
            f"{path} resolves to {path.resolve()}, outside --exp {exp_root} ({root}); an "
            f"experiment folder must lie in --exp: remove the link or use another --exp"
        )
    return path


def _split_values(raw: str) -> List[str]:
    """Comma-separated values, commas inside brackets, braces or quotes not splitting."""
    values, depth, quote, current = [], 0, "", ""
    for char in raw:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(current)
            current = ""
            continue
        current += char
    return values + [current]


def parse_sweep(text: str) -> List[SweepAxis]:
    """The axes of ``--sweep`` (override syntax, comma-separated values); keys must not repeat."""
    axes: List[SweepAxis] = []
    for item in config_lib.split_overrides(text):
        target, _, raw = item.partition("=")
        override = dataclasses.replace(config_lib.parse_overrides([f"{target}="])[0], text=item)  # the key alone
        values = []
        for word in _split_values(raw):
            try:
                values.append(config_lib.yaml_load(word) if word.strip() else None)
            except Exception as err:  # yaml's errors: name the value
                raise config_lib.ConfigError(
                    f"--sweep {override.text!r}: value {word!r} is not valid YAML ({err})"
                ) from err
        if len(values) < 1 or any(value is None for value in values):
            raise config_lib.ConfigError(f"--sweep {override.text!r}: write KEY=V1,V2,... with no empty value")
        if override.keys in _UNSWEEPABLE:
            raise config_lib.ConfigError(
                f"--sweep {override.text!r}: {'.'.join(override.keys)} cannot be swept "
                f"(use --seeds for training seeds; one sample rate per run: --fs)"
            )
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise config_lib.ConfigError(f"--sweep {override.text!r} lists a value twice")
        axis = SweepAxis(override.text, override.experiment, override.keys, tuple(values))
        if any(
            a.keys == axis.keys and (None in (a.experiment, axis.experiment) or a.experiment == axis.experiment)
            for a in axes
        ):
            raise config_lib.ConfigError(f"--sweep sweeps {axis.dotted} twice; list all its values in one KEY=V1,V2")
        axes.append(axis)
    return axes


def value_tag(value: Any) -> str:
    """A value as folder names show it: ``0.1``, ``true``, ``speech-3`` (``{speech: 3}``)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"{value:g}"
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":")).replace('"', "")
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-") or "x"


def _point_tag(label: str, value: Any) -> str:
    """``alpha0.1``; a word or a mapping after a dash: ``schedule-linear``, ``gamma-speech-3``."""
    glue = "" if isinstance(value, (bool, int, float)) else "-"
    return f"{label}{glue}{value_tag(value)}"


def _override_text(keys: Sequence[str], value: Any) -> str:
    # JSON is YAML: the value reads back as it was (numbers, strings, mappings).
    return shlex.quote(f"{'.'.join(keys)}={json.dumps(value)}")


def expand(
    configs: Sequence[Path],
    seeds: str = "",
    sweep: str = "",
    tag: str = "",
    overrides: Sequence[config_lib.Override] = (),
) -> List[Variant]:
    """The variants of a run, in order: experiment by experiment, sweep points in the order given, then seeds."""
    names = [path.stem for path in configs]
    for name in names:
        check_folder_name(name, f"experiment {name!r} (its config's file name makes its folder)")
    if tag:
        check_folder_name(tag, f"--tag {tag!r}")
    config_lib.check_override_targets(overrides, names)
    seed_list = parse_seeds(seeds)
    axes = parse_sweep(sweep)
    for axis in axes:
        if axis.experiment and axis.experiment not in names:
            raise config_lib.ConfigError(
                f"--sweep {axis.text!r} names experiment {axis.experiment!r}, which is not "
                f"among the experiments run ({', '.join(names)})"
            )
    variants: List[Variant] = []
    for path in configs:
        mine = [axis for axis in axes if axis.experiment in (None, path.stem)]
        for override in overrides:
            if override.experiment not in (None, path.stem):
                continue
            clash = [axis.text for axis in mine if axis.keys == override.keys]
            if clash:
                raise config_lib.ConfigError(
                    f"override {override.text!r} sets {'.'.join(override.keys)}, which "
                    f"--sweep {clash[0]!r} sweeps; put the value among the swept ones"
                )
            if seed_list is not None and override.keys == SEED_KEY:
                raise config_lib.ConfigError(
                    f"override {override.text!r} sets training.seed, which --seeds sets; use one of them"
                )
        short = [axis.keys[-1] for axis in mine]
        labels = [axis.keys[-1] if short.count(axis.keys[-1]) == 1 else "-".join(axis.keys) for axis in mine]
        for values in itertools.product(*(axis.values for axis in mine)):
            point = tuple((axis.dotted, value) for axis, value in zip(mine, values))
            group = "_".join(
                [path.stem]
                + ([tag] if tag else [])
                + [_point_tag(label, value) for label, value in zip(labels, values)]
            )
            swept = tuple(_override_text(axis.keys, value) for axis, value in zip(mine, values))
            for seed in seed_list if seed_list is not None else [None]:
                seeded = () if seed is None else (_override_text(SEED_KEY, seed),)
                name = group if seed is None else f"{group}_seed{seed}"
                variants.append(Variant(name, path, group, seed, point, swept + seeded))
    seen: Dict[str, Variant] = {}
    for variant in variants:
        check_folder_name(
            variant.name,
            f"the folder {variant.name!r} of {variant.experiment} at {variant.point}"
            if variant.point
            else f"the folder {variant.name!r} of {variant.experiment}",
        )
        if variant.name in seen:
            raise config_lib.ConfigError(
                f"two variants would share the folder {variant.name} ({seen[variant.name].point}"
                f" and {variant.point}); give values that print differently"
            )
        seen[variant.name] = variant
    return variants


def variant_overrides(user: str, variant: Variant) -> str:
    """The override string of one variant: the user's, then its sweep values and seed (the later win)."""
    return " ".join(([user] if user.strip() else []) + list(variant.overrides))


def _override(keys: Sequence[str], value: Any) -> config_lib.Override:
    return config_lib.Override(f"{'.'.join(keys)}={json.dumps(value)}", None, tuple(keys), value)


def variant_override_list(user: str | Sequence[config_lib.Override], variant: Variant) -> List[config_lib.Override]:
    """The overrides of one variant as values: the user's (text, or parsed already), then its sweep values and
    its seed (the later win). The swept values are the values ``--sweep`` gave, not text to parse again."""
    parsed = config_lib.parse_overrides([user]) if isinstance(user, str) else list(user)
    swept = [_override(tuple(dotted.split(".")), value) for dotted, value in variant.point]
    seeded = [] if variant.seed is None else [_override(SEED_KEY, variant.seed)]
    return parsed + swept + seeded


def load(variant: Variant, user: str | Sequence[config_lib.Override]) -> config_lib.ExperimentConfig:
    """The variant's resolved, validated config (errors name its file and the overrides applied)."""
    return config_lib.load(variant.config, variant_override_list(user, variant))


# What a run option may not hold: a control character (C0, DEL). A newline would end the value where a
# line is read back; a tab or a carriage return would show one thing in the logs and mean another.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
RUN_TEXT_OPTIONS = ("experiments", "seeds", "sweep", "tag", "override")


def check_run_text(**options: Any) -> None:
    """Refuses a run option (``experiments=..., override=...``; a list is checked word by word) whose value
    holds a control character, naming the option and the character."""
    for name, value in options.items():
        for text in [value] if isinstance(value, str) else list(value or ()):
            found = _CONTROL.search(text)
            if found:
                raise config_lib.ConfigError(
                    f"--{name.replace('_', '-')} {text!r} holds a control character ({found.group()!r} at "
                    f"{found.start()}); write the value on one line, without tabs or other control characters"
                )


def add_run_options(parser: Any, leave_out: Sequence[str] = ()) -> None:
    """The run's options (run.sh's) on ``parser`` (or an argument group): ``--experiments``, ``--conf``,
    ``--seeds``, ``--sweep``, ``--tag``, ``--override``, less those named in ``leave_out`` (the caller has its own)."""
    options = {
        "experiments": dict(
            required=True, help="experiment names, space-separated: NAME is the one file conf/**/NAME.yaml"
        ),
        "conf": dict(type=Path, default=Path("conf"), help="folder of the experiment configs [conf]"),
        "seeds": dict(default="", help="training seeds: a count N (0..N-1) or a list 0,1,2 [none]"),
        "sweep": dict(default="", help="'[EXPERIMENT:]SECTION.KEY=V1,V2 ...': a grid of values [none]"),
        "tag": dict(default="", help="folder tag, as run.sh --tag [none]"),
        "override": dict(default="", help="the user's overrides, as run.sh --override"),
    }
    for name, settings in options.items():
        if name not in leave_out:
            parser.add_argument(f"--{name}", **settings)


def task_variant(variants: Sequence[Variant], index: Optional[int]) -> Variant:
    """Variant number ``index`` of a run (``UGR_TASK_ID``: task i of a stage's array job is variant i); None
    picks the one variant of a run that has one."""
    if index is None:
        if len(variants) != 1:
            raise config_lib.ConfigError(
                f"UGR_TASK_ID is not set; it picks one of the {len(variants)} variants "
                f"(tools/launch.sh --array sets it)"
            )
        index = 0
    if not 0 <= index < len(variants):
        raise config_lib.ConfigError(f"UGR_TASK_ID={index} is out of range for {len(variants)} variants")
    return variants[index]


def run_variants(args: argparse.Namespace, experiments: Optional[str] = None) -> Tuple[List[Path], List[Variant]]:
    """The configs and the variants of a run from its options (``add_run_options``), checked
    (``check_run_text``); ``experiments`` replaces ``args.experiments``."""
    names = args.experiments if experiments is None else experiments
    check_run_text(**{name: names if name == "experiments" else getattr(args, name) for name in RUN_TEXT_OPTIONS})
    configs = find_configs(args.conf, names.split())
    for option in ("override", "sweep"):  # shlex's errors (an unclosed quote) are ValueErrors: name the option
        try:
            config_lib.split_overrides(getattr(args, option))
        except ValueError as err:
            if isinstance(err, config_lib.ConfigError):
                raise
            raise config_lib.ConfigError(
                f"--{option} {getattr(args, option)!r}: {err}; quote each value as a shell would read it"
            ) from err
    return configs, expand(configs, args.seeds, args.sweep, args.tag, config_lib.parse_overrides([args.override]))


def seed_group(name: str) -> Tuple[str, Optional[int]]:
    """A folder name's variant and seed: ``robust_alpha0.1_seed2`` -> ``("robust_alpha0.1", 2)``."""
    match = SEED_SUFFIX.match(name)
    return (match["group"], int(match["seed"])) if match else (name, None)


def available_configs(conf_dir: Path) -> Dict[str, List[Path]]:
    """The experiment configs under ``conf_dir``, any depth: each name (file stem) with the file(s) of that name."""
    found: Dict[str, List[Path]] = {}
    for path in sorted(conf_dir.rglob("*.yaml")):
        if path.is_file():
            found.setdefault(path.stem, []).append(path)
    return found


def _listing(conf_dir: Path, found: Dict[str, List[Path]]) -> str:
    """The available names grouped by folder: ``cpu/: base_cpu baseline_cpu; gpu/: ...``."""
    by_folder: Dict[str, List[str]] = {}
    for name, paths in found.items():
        for path in paths:
            folder = path.parent.relative_to(conf_dir).as_posix()
            by_folder.setdefault("" if folder == "." else f"{folder}/", []).append(name)
    return "; ".join(f"{folder or './'}: {' '.join(sorted(names))}" for folder, names in sorted(by_folder.items()))


def find_config(conf_dir: Path, name: str) -> Path:
    """The one file ``conf_dir/**/NAME.yaml`` of the experiment ``name`` (any depth under ``conf_dir``).

    Raises ``ConfigError`` when no file has that name (listing the names there are, by folder) or when two
    folders have one (naming both files: an experiment name must say which config it is)."""
    if not name or "/" in name or name.endswith(".yaml") or name in (".", ".."):
        raise config_lib.ConfigError(
            f"experiment {name!r}: name an experiment by its config's file name without "
            f"folder or .yaml (e.g. baseline_cpu for {conf_dir}/cpu/baseline_cpu.yaml)"
        )
    if not conf_dir.is_dir():
        raise config_lib.ConfigError(f"experiment {name!r}: no config folder {conf_dir}")
    found = available_configs(conf_dir)
    paths = found.get(name, [])
    if not paths:
        raise config_lib.ConfigError(
            f"experiment {name!r}: no {name}.yaml under {conf_dir}/; the experiments there "
            f"are {_listing(conf_dir, found) or 'none'}"
        )
    if len(paths) > 1:
        raise config_lib.ConfigError(
            f"experiment {name!r} is ambiguous: {' and '.join(map(str, paths))} share the "
            f"name; rename one (experiment names are unique across {conf_dir}/)"
        )
    return paths[0]


def find_configs(conf_dir: Path, names: Sequence[str]) -> List[Path]:
    """``find_config`` of each name, in order; a name given twice is refused (its folders would clash)."""
    repeated = sorted({name for name in names if list(names).count(name) > 1})
    if repeated:
        raise config_lib.ConfigError(f"--experiments names {', '.join(repeated)} twice; name each experiment once")
    return [find_config(conf_dir, name) for name in names]


def load_each(variants: Sequence[Variant], user: str) -> List[Tuple[Variant, config_lib.ExperimentConfig]]:
    """Every variant with its validated config; the seeds of a sweep point (which differ in training.seed
    alone) are validated once, by their first."""
    loaded: List[Tuple[Variant, config_lib.ExperimentConfig]] = []
    first: Dict[Tuple[Path, str], config_lib.ExperimentConfig] = {}
    for variant in variants:
        key = (variant.config, variant.group)
        if key not in first:
            first[key] = load(variant, user)
        loaded.append((variant, first[key]))
    return loaded


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ugr.pipeline.variants",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("names", help="print every variant's folder name, one per line, in order")
    sub.add_parser("configs", help="print each experiment's config file (conf/**/NAME.yaml), one per line, in order")
    sub.add_parser(
        "plan",
        help="validate every variant's config; print the number of variants and their one "
        "sample rate (for run.sh: array sizes, stage 0's rate), then the folder names",
    )
    check = sub.add_parser("check", help="validate every variant's config (and against a data folder)")
    check.add_argument("--data", type=Path, help="also check that this prepared data folder serves each variant")
    args = parser.parse_args(argv)
    try:
        configs, variants = run_variants(args)
        if args.command == "configs":
            print("\n".join(map(str, configs)))
        elif args.command == "names":
            print("\n".join(variant.name for variant in variants))
        else:
            loaded = load_each(variants, args.override)
            if args.command == "plan":
                rates = {variant.name: cfg.data.sample_rate for variant, cfg in loaded}
                if len(set(rates.values())) > 1:
                    raise config_lib.ConfigError(
                        "the experiments must share one sample rate (run them separately, or pass --fs HZ): "
                        + ", ".join(f"{name} {rate}" for name, rate in rates.items())
                    )
                print(len(variants), next(iter(rates.values())))
                print(" ".join(rates))  # the folders, for the log (run options hold no control character)
            elif args.data is not None:
                groups = {(variant.config, variant.group): (variant, cfg) for variant, cfg in reversed(loaded)}
                for variant, cfg in reversed(groups.values()):  # one check per group, by its first variant
                    check_corpus(cfg, args.data, f"{variant.config} ({variant.name})")
    except config_lib.ConfigError as err:
        sys.exit(f"variants: {err}")


if __name__ == "__main__":
    main()
