"""Experiment configuration: one YAML file per experiment, validated up front.

A typo in a config must stop the run before hours of training, not be
silently ignored, so every key is checked against the schema below and every
error names the file and the key. A file may start with ``inherit: OTHER.yaml``
(a path relative to it): the other file is loaded first and this file's
sections are merged over it key by key, so experiments differ from a shared
base (``base_gpu.yaml``, ``base_cpu.yaml``) by a few lines.

Sections:

* ``data``: how mixtures are made (see ``DATA_SCHEMA``).
* ``model``: passed as is to ``ugr.models.build_model`` (which checks it).
* ``weighting``: passed as is to ``ugr.weighting.build`` (which checks it),
  including ``granularity`` (``source``: one weight per (mixture, source)
  pair, as the authors' code; ``mixture``: one per mixture, as the paper's
  formula).
* ``training``: optimisation (see ``TRAINING_SCHEMA``).
* ``scoring``: ``average_last_k``, how many last epoch checkpoints the test
  score averages (the paper reports an average over ten epochs; 1 scores the
  last epoch alone).
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import yaml

MIXTURE_TYPES = ("speech+speech", "env+env", "speech+env")  # as ugr.data.mixing names them

Check = Callable[[Any], Optional[str]]


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, the key and the fix."""


def _positive_number(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return f"must be a positive number, got {value!r}"
    return None


def _positive_int(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return f"must be a positive integer, got {value!r}"
    return None


def _non_negative_int(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"must be an integer >= 0, got {value!r}"
    return None


def _snr_range(value: Any) -> Optional[str]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)
            or value[0] > value[1]):
        return f"must be [low_db, high_db] with low <= high, got {value!r}"
    return None


def _priors(value: Any) -> Optional[str]:
    if (not isinstance(value, dict) or not value or set(value) - set(MIXTURE_TYPES)
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in value.values())
            or sum(value.values()) <= 0):
        return (f"must map mixture types ({', '.join(MIXTURE_TYPES)}) to non-negative weights with a positive "
                f"sum, got {value!r}")
    return None


def _one_of(*choices: Any) -> Check:
    def check(value: Any) -> Optional[str]:
        if value not in choices:
            return f"must be one of {list(choices)}, got {value!r}"
        return None
    return check


def _boolean(value: Any) -> Optional[str]:
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


DATA_SCHEMA: Dict[str, Check] = {
    "sample_rate": _positive_int,
    "segment": _positive_number,               # seconds per training/validation/test mixture
    "snr_range": _snr_range,                   # dB, drawn uniformly per mixture
    "priors": _priors,                         # weights of the mixture types (speech+speech, env+env, speech+env)
    "normalize": _boolean,                     # scale each mixture and its sources to unit mixture power
    "train_mixtures_per_epoch": _positive_int,
    "valid_mixtures": _positive_int,
    "test_mixtures": _positive_int,
    "seed": _non_negative_int,
}

TRAINING_SCHEMA: Dict[str, Check] = {
    "batch_size": _positive_int,               # the effective batch: the pmf spans all of it
    "micro_batches": _positive_int,            # split the batch into K forward/backward passes
    "lr": _positive_number,
    "clip": _positive_number,                  # max gradient norm, applied after backward
    "epochs": _positive_int,
    "num_workers": _non_negative_int,
    "seed": _non_negative_int,
    "precision": _one_of("32-true", "16-mixed", "bf16-mixed"),
    "valid_batch_size": _positive_int,
}

SCORING_SCHEMA: Dict[str, Check] = {
    "average_last_k": _positive_int,
}

SECTIONS = ("data", "model", "weighting", "training", "scoring")


def _read_yaml(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass an existing YAML file (see conf/)")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err}); fix the syntax") from err
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: must be a mapping of sections {list(SECTIONS)}, got {type(loaded).__name__}")
    return loaded


def _merge(base: Dict[str, Any], override: Dict[str, Any]) -> Dict[str, Any]:
    """Section-wise merge: a key in ``override`` replaces the same key of ``base``.

    ``weighting`` and ``model`` are replaced key by key too, except that a new
    weighting ``type`` replaces the whole weighting section but its
    ``granularity``: the arguments of one weighting type make no sense for
    another.
    """
    merged = copy.deepcopy(base)
    for section, values in override.items():
        if not (isinstance(merged.get(section), dict) and isinstance(values, dict)):
            merged[section] = copy.deepcopy(values)
        elif section == "weighting" and "type" in values:
            kept = {k: v for k, v in merged[section].items() if k == "granularity"}
            merged[section] = {**kept, **copy.deepcopy(values)}
        else:
            merged[section].update(copy.deepcopy(values))
    return merged


def _load_raw(path: Path, chain: tuple = ()) -> Dict[str, Any]:
    path = path.resolve()
    if path in chain:
        raise ConfigError(f"{path}: 'inherit' loops back to itself ({' -> '.join(map(str, chain))}); break the cycle")
    raw = _read_yaml(path)
    parent = raw.pop("inherit", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: 'inherit' must be a file name relative to this file, got {parent!r}")
    return _merge(_load_raw(path.parent / parent, chain + (path,)), raw)


def _check_section(cfg: Dict[str, Any], section: str, schema: Dict[str, Check], where: str) -> None:
    values = cfg[section]
    unknown = sorted(set(values) - set(schema))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
                          f"allowed: {', '.join(sorted(schema))}")
    missing = sorted(set(schema) - set(values))
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(f'{section}.{k}' for k in missing)}; "
                          f"add them or inherit a base config that has them")
    for key, check in schema.items():
        problem = check(values[key])
        if problem:
            raise ConfigError(f"{where}: {section}.{key} {problem}")


def validate(cfg: Dict[str, Any], where: str = "config") -> Dict[str, Any]:
    """Checks a merged config; returns it unchanged or raises ConfigError naming ``where`` and the key."""
    unknown = sorted(set(cfg) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)}; allowed: {', '.join(SECTIONS)}")
    for section in SECTIONS:
        if not isinstance(cfg.get(section), dict):
            raise ConfigError(f"{where}: section '{section}' is missing or not a mapping; "
                              f"add it or inherit a base config (e.g. 'inherit: base_cpu.yaml')")
    _check_section(cfg, "data", DATA_SCHEMA, where)
    _check_section(cfg, "training", TRAINING_SCHEMA, where)
    _check_section(cfg, "scoring", SCORING_SCHEMA, where)
    if cfg["training"]["batch_size"] % cfg["training"]["micro_batches"]:
        raise ConfigError(f"{where}: training.batch_size ({cfg['training']['batch_size']}) must be a multiple "
                          f"of training.micro_batches ({cfg['training']['micro_batches']})")
    _check_with_builders(cfg, where)
    return cfg


def _check_with_builders(cfg: Dict[str, Any], where: str) -> None:
    """The model and weighting sections are owned by their builders: let them judge, and name the file."""
    from ugr import models, weighting  # imported here: they pull in torch and asteroid

    try:
        weighting.build(cfg["weighting"])
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"{where}: bad 'weighting' section: {err}") from err
    try:
        models.build_model(cfg["model"])
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"{where}: bad 'model' section: {err}") from err


def load(path: str | Path) -> Dict[str, Any]:
    """Loads, merges (``inherit``) and validates one experiment config."""
    path = Path(path)
    return validate(_load_raw(path), where=str(path))


def dump(cfg: Dict[str, Any], path: str | Path) -> None:
    """Writes the resolved config atomically, so an experiment folder records what it ran."""
    from ugr.atomic import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(cfg, sort_keys=False))


LIST_KEYS = ("sample_rate", "segment", "snr_range", "priors", "normalize", "valid_mixtures", "test_mixtures", "seed")


def lists_key(cfg: Dict[str, Any]) -> str:
    """Name of the folder of validation/test lists for this config's data settings.

    Experiments whose data settings agree share one test list, so their
    scores compare the same mixtures; any other setting gets its own lists.
    """
    data = cfg["data"]
    canonical = yaml.safe_dump({k: data[k] for k in LIST_KEYS}, sort_keys=True)
    return f"{data['sample_rate'] // 1000}k_{data['segment']:g}s_" + hashlib.sha1(canonical.encode()).hexdigest()[:8]


def mixture_args(cfg: Dict[str, Any], split: str) -> List[str]:
    """The options of ``python -m ugr.data.mixtures`` that make this config's list for ``split``."""
    data = cfg["data"]
    args = ["--split", split, "--num", str(data[f"{split}_mixtures"]), "--seed", str(data["seed"]),
            "--segment", str(data["segment"]), "--sample-rate", str(data["sample_rate"]),
            "--snr", *(str(v) for v in data["snr_range"]),
            "--priors", *(f"{name}={weight}" for name, weight in data["priors"].items())]
    return args + (["--normalize"] if data["normalize"] else [])


def main(argv=None) -> None:
    """Shell helpers for run.sh: check configs, print a config value or its lists folder name."""
    parser = argparse.ArgumentParser(prog="python -m ugr.config", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate configs; exit 1 naming the first bad file and key")
    check.add_argument("configs", nargs="+", type=Path)
    key = sub.add_parser("lists-key", help="print the lists folder name of a config's data settings")
    key.add_argument("config", type=Path)
    margs = sub.add_parser("mixture-args", help="print the python -m ugr.data.mixtures options for a split")
    margs.add_argument("config", type=Path)
    margs.add_argument("split", choices=("valid", "test"))
    get = sub.add_parser("get", help="print one value, e.g. data.valid_mixtures")
    get.add_argument("config", type=Path)
    get.add_argument("key", help="SECTION.KEY")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            for path in args.configs:
                load(path)
        elif args.command == "lists-key":
            print(lists_key(load(args.config)))
        elif args.command == "mixture-args":
            print(" ".join(mixture_args(load(args.config), args.split)))
        else:
            section, _, name = args.key.partition(".")
            cfg = load(args.config)
            if name not in cfg.get(section, {}):
                raise ConfigError(f"{args.config}: no key {args.key}")
            value = cfg[section][name]
            print(json.dumps(value) if isinstance(value, (dict, list)) else value)
    except ConfigError as err:
        sys.exit(f"config: {err}")


if __name__ == "__main__":
    main()
