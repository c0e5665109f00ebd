"""Experiment configuration: one YAML file per experiment, overridable from the command line, validated up front.

A typo in a config must stop the run before hours of training, not be
silently ignored, so every key is checked against the schema below and every
error names the file and the key. A file may start with ``inherit: OTHER.yaml``
(a path relative to it): the other file is loaded first and this file's
sections are merged over it key by key, so experiments differ from a shared
base by a few lines.

Overrides change any value from the command line (``--override``), after
the files are merged and before validation:

    training.lr=5e-4 weighting.alpha=0.1 "weighting.gamma={dog: 3}"
    robust_cpu:weighting.alpha=0.3     # only for the experiment (config) robust_cpu

Values are YAML (``null``, ``true``, lists, mappings); numbers written as
``1e-3`` are numbers, here and in the files (plain YAML 1.1 reads them as
strings). The experiment folder's ``config.yaml`` records the resolved
config, overrides included.

``load`` returns the config typed (``ExperimentConfig``), built once per
process and handed to what needs it. Sections, each a frozen dataclass
checked by its owner:

* ``data`` (``DataConfig``): how mixtures are made. ``priors`` weighs pairs
  of the corpus's coarse classes (``speech+env``, ``sound+sound``...);
  ``train_from``/``eval_from``: ``sources`` (mixtures drawn from the source
  recordings) or ``published`` (the corpus's fixed mixtures, e.g. wsj0-2mix).
* ``model`` (``ugr.separation.models.ModelConfig``): the arch and its keys, checked
  without building the model.
* ``weighting``: the weighting itself, built by ``ugr.core.weighting.build``;
  ``granularity`` is ``source`` (one weight per (mixture, source) pair, as the
  authors' code) or ``mixture`` (one per mixture, the paper's formula).
* ``training`` (``TrainingConfig``): optimisation, speed and memory, and
  ``loggers``, where the training's figures go (``ugr.pipeline.tracking``:
  ``csv``, always, ``tensorboard``, ``mlflow``, ``wandb``).
* ``scoring`` (``ScoringConfig``): which weights are scored and how.
  ``protocol: weights`` scores one model, the average of the weights of the
  last ``average_last_k`` epoch checkpoints (1: the last epoch alone);
  ``protocol: epochs`` scores each of those checkpoints separately and reports
  every statistic as its mean (and std) across those epochs, the paper's
  "averaged over ten epochs". ``metrics`` lists the metrics of
  ``ugr.separation.metrics.METRICS`` to compute beside ``si_sdri``, which is always
  computed (``[si_sdri]``: it alone).

Whether a prepared data folder can serve a config is ``ugr.pipeline.corpus_check``'s
question (``check --data`` here asks it).
"""

from __future__ import annotations

import copy
import math
import os
import re
import shlex
import stat
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Dict, Iterable, List, Mapping, Optional, Sequence

import yaml

from ugr.core.checks import (
    Check,
    at_most,
    between,
    boolean,
    non_negative_int,
    one_of,
    positive_int,
    positive_number,
    positive_number_or_null,
)
from ugr.data.mixing import MixingSettings, parse_pair

SOURCES, PUBLISHED = "sources", "published"


class ConfigError(ValueError):
    """A config (or override) that cannot be used; the message names the file, the key and the fix."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` as a number (YAML 1.1 wants ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    """YAML as every ugr config is read."""
    return yaml.load(text, Loader=_Loader)


# ----------------------------------------------------------------------------- value checks


def _finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _snr_range(value: Any) -> Optional[str]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(_finite(v) for v in value)
        or value[0] > value[1]
    ):
        return f"must be [low_db, high_db], two finite numbers with low <= high, got {value!r}"
    return None


def _priors(value: Any) -> Optional[str]:
    usage = (
        "must map mixture types, pairs of coarse classes such as speech+env or sound+sound, to finite "
        f"weights >= 0 with a positive sum; got {value!r}"
    )
    if not isinstance(value, dict) or not value:
        return usage
    for name, weight in value.items():
        try:
            parse_pair(str(name))
        except ValueError as err:
            return f"{usage} ({err})"
        if not _finite(weight) or weight < 0:
            return usage
    return None if sum(value.values()) > 0 else usage


# Lightning's loggers a training may write to (ugr.pipeline.tracking builds them); csv is always among them.
LOGGERS = ("csv", "tensorboard", "mlflow", "wandb")
REQUIRED_LOGGER = "csv"


def _names(value: Any, known: Sequence[str], what: str, example: str, empty: bool) -> Optional[str]:
    """The check of a list of names among ``known`` (each at most once; ``empty``: whether [] is allowed)."""
    allowed = ", ".join(known)
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value) or not (value or empty):
        return f"must be a list of {what}s among {allowed} (e.g. {example}), got {value!r}"
    unknown = [name for name in value if name not in known]
    if unknown:
        return f"names unknown {what}(s) {', '.join(map(repr, unknown))}; allowed: {allowed}"
    if len(set(value)) != len(value):
        return f"lists a {what} twice: {value!r}"
    return None


def _loggers(value: Any) -> Optional[str]:
    problem = _names(value, LOGGERS, "logger", "[csv, tensorboard, mlflow]", empty=False)
    if problem:
        return problem
    if REQUIRED_LOGGER not in value:
        return (
            f"must keep {REQUIRED_LOGGER}: the report (stage 4) reads the training curves from the CSV logs; "
            f"add it, e.g. [{', '.join([REQUIRED_LOGGER, *value])}], got {value!r}"
        )
    return None


# What every training logged to before ``training.loggers`` existed: what a config.yaml without the key ran with.
LOGGERS_BEFORE_THE_KEY = ["csv", "tensorboard"]


def recorded(cfg: Any) -> Any:
    """A copy of a config an experiment folder recorded (its config.yaml), with the keys added to the schema since
    filled with what that training ran with, so that every folder trained before a key existed still validates
    (anything but a mapping is returned as it is, for ``validate`` to refuse)."""
    if not isinstance(cfg, Mapping):
        return cfg
    cfg = copy.deepcopy(dict(cfg))
    training = cfg.get("training")
    if isinstance(training, dict) and "loggers" not in training:
        training["loggers"] = list(LOGGERS_BEFORE_THE_KEY)
    return cfg


SCORING_PROTOCOLS = ("weights", "epochs")

# Bounds of what the code can use: it allocates from a rate and a segment, and a learning rate above 1 diverges.
SAMPLE_RATES = (1000, 192000)  # Hz
MAX_SEGMENT = 60.0  # seconds
MAX_LR = 1.0
_sample_rate = between(
    positive_int,
    *SAMPLE_RATES,
    unit="Hz",
    why="a rate allocates the buffers of every mixture (8000 or 16000 for speech)",
)
_segment = at_most(
    positive_number,
    MAX_SEGMENT,
    unit="seconds",
    why="a training mixture is a few seconds; a longer one allocates its batch from it",
)
_lr = at_most(positive_number, MAX_LR, why="a learning rate above 1 diverges; Adam's usual rates are 1e-4 to 1e-3")


def _metric_names(value: Any) -> Optional[str]:
    from ugr.separation.metrics import METRICS  # imported here: it pulls in torch and torchmetrics

    return _names(value, list(METRICS), "metric", "[si_sdri, sdri]", empty=True)


# ----------------------------------------------------------------------------- the sections
# Each section is a frozen dataclass whose fields are its keys; a field's
# metadata holds the check of its value (a message, or None when the value is
# good). ``from_section`` builds one from its YAML mapping, naming the file and
# the key of the first problem.


def _key(check: Check) -> Any:
    return field(metadata={"check": check})


class _Section:
    """What the sections share: built from their mapping with every key checked."""

    NAME: ClassVar[str]

    @classmethod
    def from_section(cls, values: Mapping[str, Any], where: str) -> Any:
        """The section from its mapping, or ConfigError naming ``where``, the key and what it must be."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where}: section '{cls.NAME}' must be a mapping of keys, got {values!r}")
        keys = {f.name: f.metadata["check"] for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - set(keys))
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(f'{cls.NAME}.{k}' for k in unknown)}; "
                f"allowed: {', '.join(sorted(keys))}"
            )
        missing = sorted(set(keys) - set(values))
        if missing:
            raise ConfigError(
                f"{where}: missing key(s) {', '.join(f'{cls.NAME}.{k}' for k in missing)}; "
                f"add them or inherit a base config that has them"
            )
        for key, check in keys.items():
            problem = check(values[key])
            if problem:
                raise ConfigError(f"{where}: {cls.NAME}.{key} {problem}")
        return cls(**copy.deepcopy(dict(values)))


@dataclass(frozen=True)
class DataConfig(_Section):
    """The ``data`` section: how mixtures are made (``mixing_settings``)."""

    NAME: ClassVar[str] = "data"

    sample_rate: int = _key(_sample_rate)  # Hz; the data folder must be prepared at this rate (--fs)
    segment: float = _key(_segment)  # seconds per training (and drawn evaluation) mixture
    snr_range: List[float] = _key(_snr_range)  # dB, drawn uniformly per mixture
    priors: Dict[str, float] = _key(_priors)  # weights of the mixture types (pairs of coarse classes)
    normalize: bool = _key(boolean)  # scale each mixture and its sources to unit mixture power
    train_from: str = _key(one_of(SOURCES, PUBLISHED))  # training mixtures: drawn from the sources, or published
    eval_from: str = _key(one_of(SOURCES, PUBLISHED))  # validation/test: lists drawn from the sources, or published
    train_mixtures_per_epoch: int = _key(positive_int)
    valid_mixtures: int = _key(positive_int)
    test_mixtures: int = _key(positive_int)
    seed: int = _key(non_negative_int)

    def mixing_settings(self) -> MixingSettings:
        """How this section makes mixtures, for the data layer (priors normalised, zero weights dropped)."""
        weights = {parse_pair(name): float(weight) for name, weight in self.priors.items() if weight > 0}
        total = sum(weights.values())
        return MixingSettings(
            sample_rate=int(self.sample_rate),
            segment=float(self.segment),
            snr_range=(float(self.snr_range[0]), float(self.snr_range[1])),
            priors=tuple((pair, w / total) for pair, w in weights.items()),
            normalize=bool(self.normalize),
            seed=int(self.seed),
        )


@dataclass(frozen=True)
class TrainingConfig(_Section):
    """The ``training`` section: optimisation, and the speed and memory settings of ``ugr.pipeline.efficiency``."""

    NAME: ClassVar[str] = "training"

    batch_size: int = _key(positive_int)  # the effective batch: the pmf spans all of it
    micro_batches: int = _key(positive_int)  # split the batch into K forward/backward passes
    lr: float = _key(_lr)
    clip: Optional[float] = _key(positive_number_or_null)  # max gradient norm after backward; null: no clipping
    epochs: int = _key(positive_int)
    num_workers: int = _key(non_negative_int)
    seed: int = _key(non_negative_int)
    precision: str = _key(one_of("32-true", "16-mixed", "bf16-mixed"))  # 16-mixed needs a GPU
    valid_batch_size: int = _key(positive_int)
    # Speed and memory (figures in the README's "Speed and memory"):
    compile: bool = _key(boolean)  # torch.compile of the model
    tf32: bool = _key(boolean)  # TF32 fp32 matrix products and convolutions on NVIDIA GPUs
    activation_checkpointing: bool = _key(boolean)  # recompute Sudo rm -rf's U-blocks in the backward
    log_every_n_steps: int = _key(positive_int)  # training figures to the logs every N steps (a host sync each)
    keep_freed_memory: bool = _key(boolean)  # glibc malloc reuses freed host memory (no page faults a step)
    loggers: List[str] = _key(_loggers)  # csv (always), tensorboard, mlflow, wandb: ugr.pipeline.tracking


@dataclass(frozen=True)
class ScoringConfig(_Section):
    """The ``scoring`` section: which weights are scored and how (``ugr.pipeline.score``)."""

    NAME: ClassVar[str] = "scoring"

    average_last_k: int = _key(positive_int)  # the last K epoch checkpoints are scored
    protocol: str = _key(one_of(*SCORING_PROTOCOLS))  # weights: their average, once; epochs: each, then mean/std
    metrics: List[str] = _key(_metric_names)  # besides si_sdri (always computed): sdri, stoi, pesq

    def as_dict(self) -> Dict[str, Any]:
        """The section as a plain mapping (scores record the settings they were made with)."""
        return asdict(self)


SECTIONS = ("data", "model", "weighting", "training", "scoring")


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment's config, every section typed and checked; built once per process by ``load``.

    ``model`` is ``ugr.separation.models.ModelConfig``, ``weighting`` the built weighting
    of ``ugr.core.weighting`` (each section checked by its owner). ``record`` is
    the resolved mapping the sections were built from, as the experiment
    folder's config.yaml and the checkpoints keep it (``to_dict``); ``where``
    names the file (and overrides) for messages.
    """

    data: DataConfig
    model: Any
    weighting: Any
    training: TrainingConfig
    scoring: ScoringConfig
    record: Mapping[str, Any] = field(repr=False, compare=False)
    where: str = field(default="config", compare=False)

    def to_dict(self) -> Dict[str, Any]:
        """The resolved config as YAML holds it (a copy)."""
        return copy.deepcopy(dict(self.record))


# ----------------------------------------------------------------------------- files and merging


CONFIG_SUFFIXES = (".yaml", ".yml")
MAX_CONFIG_BYTES = 1 << 20  # a config is a few kB


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "an unknown place"


def _yaml_problem(err: yaml.YAMLError) -> str:
    """What is wrong and where, without the file's text: no snippet, no quoted token (a file inherited by mistake,
    e.g. one of secrets, is never echoed into the error or the log)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = re.sub(r"'[^']*'|\"[^\"]*\"", "...", str(getattr(err, "problem", None) or "a syntax error"))
    return f"not valid YAML at {_where(mark)} ({problem[:80]})"


def _read_yaml(path: Path) -> Dict[str, Any]:
    """One config file's mapping. Only a regular file named .yaml or .yml of at most ``MAX_CONFIG_BYTES`` is
    opened (no device, FIFO or folder: they would hang or never end); errors name the file and the line and
    column, never its content."""
    try:
        info = path.stat()
    except OSError:
        raise ConfigError(
            f"{path}: config file not found; pass an existing YAML file (see conf/ and its folders)"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path}: is not a regular file (a device, a FIFO or a folder); inherit a .yaml config")
    if path.suffix.lower() not in CONFIG_SUFFIXES:
        raise ConfigError(f"{path}: is not a config (its name does not end in .yaml or .yml); inherit a .yaml config")
    if info.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: {info.st_size} bytes, too large to be a config (at most "
            f"{MAX_CONFIG_BYTES // 1024} kB); inherit a .yaml config"
        )
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a file swapped for a FIFO: no hang
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ConfigError(
                    f"{path}: is not a regular file (a device, a FIFO or a folder); inherit a .yaml config"
                )
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror}); check its permissions") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: too large to be a config (more than {MAX_CONFIG_BYTES // 1024} kB); inherit a .yaml config"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (line {line}); a config is a YAML text file") from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        loaded = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: {_yaml_problem(err)}; fix the syntax") from None
    finally:
        loader.dispose()
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"{path}: must be a mapping of sections {list(SECTIONS)}, got a {type(loaded).__name__} "
            f"at {_where(node.start_mark)}"
        )
    return loaded


# The key that switches a section to another kind, and the keys kept across the switch.
_SWITCHES = {"weighting": ("type", ("granularity", "normaliser", "decay")), "model": ("arch", ("sample_rate", "n_src"))}


def _merge(base: Dict[str, Any], override: Dict[str, Any]) -> Dict[str, Any]:
    """Section-wise merge: a key in ``override`` replaces the same key of ``base``.

    A new weighting ``type`` replaces the whole weighting section but its
    ``granularity``, ``normaliser`` and ``decay`` (they apply to any type),
    and a new model ``arch`` the whole model section but its ``sample_rate``
    and ``n_src``: the arguments of one weighting type or one architecture
    make no sense for another.
    """
    merged = copy.deepcopy(base)
    for section, values in override.items():
        if not (isinstance(merged.get(section), dict) and isinstance(values, dict)):
            merged[section] = copy.deepcopy(values)
        elif section in _SWITCHES and values.get(
            _SWITCHES[section][0], merged[section].get(_SWITCHES[section][0])
        ) != merged[section].get(_SWITCHES[section][0]):
            kept = {k: v for k, v in merged[section].items() if k in _SWITCHES[section][1]}
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


# ----------------------------------------------------------------------------- overrides


@dataclass(frozen=True)
class Override:
    """One ``[EXPERIMENT:]SECTION.KEY[.SUBKEY...]=VALUE``."""

    text: str
    experiment: Optional[str]
    keys: tuple[str, ...]
    value: Any


_OVERRIDE_START = re.compile(r"^(?:[\w.-]+:)?(?:" + "|".join(SECTIONS) + r")\.[\w.]+=")


def split_overrides(item: str) -> List[str]:
    """Space-separated overrides; a word that does not start one continues the previous value.

    So ``weighting.gamma={dog: 3} training.lr=1e-3`` is two overrides, without quoting ``{dog: 3}``.
    """
    texts: List[str] = []
    try:
        words = shlex.split(item)
    except ValueError as err:  # an unclosed quote
        raise ConfigError(f"{item!r}: {err}; quote each value as a shell would read it") from err
    for word in words:
        if texts and not _OVERRIDE_START.match(word):
            texts[-1] += " " + word
        else:
            texts.append(word)
    return texts


def parse_overrides(items: Iterable[str]) -> List[Override]:
    """Overrides from command-line strings; each string may hold several, space-separated."""
    parsed = []
    for item in items:
        for text in split_overrides(item):
            target, sep, raw = text.partition("=")
            experiment, _, dotted = target.rpartition(":")
            keys = tuple(dotted.split("."))
            if not sep or len(keys) < 2 or not all(keys) or keys[0] not in SECTIONS:
                raise ConfigError(
                    f"override {text!r}: write [EXPERIMENT:]SECTION.KEY=VALUE with SECTION one of "
                    f"{', '.join(SECTIONS)}, e.g. training.lr=5e-4"
                )
            try:
                value = yaml_load(raw) if raw else None
            except yaml.YAMLError as err:
                raise ConfigError(f"override {text!r}: the value is not valid YAML ({err})") from err
            parsed.append(Override(text, experiment or None, keys, value))
    return parsed


def check_override_targets(overrides: Sequence[Override], experiments: Sequence[str]) -> None:
    """An override for an experiment that is not run would be silently lost: refuse it."""
    for override in overrides:
        if override.experiment and override.experiment not in experiments:
            raise ConfigError(
                f"override {override.text!r} names experiment {override.experiment!r}, which is not "
                f"among the experiments run ({', '.join(experiments)})"
            )


def apply_overrides(cfg: Dict[str, Any], overrides: Sequence[Override], experiment: str) -> Dict[str, Any]:
    """A copy of ``cfg`` with the overrides for every experiment and for ``experiment`` set."""
    cfg = copy.deepcopy(cfg)
    for override in overrides:
        if override.experiment not in (None, experiment):
            continue
        node = cfg
        for key in override.keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {override.text!r}: {key} is {child!r}, not a mapping")
            node = child
        node[override.keys[-1]] = copy.deepcopy(override.value)
    return cfg


# ----------------------------------------------------------------------------- validation


def validate(cfg: Mapping[str, Any], where: str = "config") -> ExperimentConfig:
    """The merged config typed (``ExperimentConfig``), or ConfigError naming ``where`` and the key.

    The model and weighting sections are judged by their owners
    (``ugr.separation.models.ModelConfig``, ``ugr.core.weighting.build``), then the checks that
    span sections.
    """
    from ugr.core import weighting
    from ugr.separation import models  # imported here: they pull in torch and asteroid

    unknown = sorted(set(cfg) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)}; allowed: {', '.join(SECTIONS)}")
    for section in SECTIONS:
        if not isinstance(cfg.get(section), dict):
            raise ConfigError(
                f"{where}: section '{section}' is missing or not a mapping; "
                f"add it or inherit a base config (e.g. 'inherit: base_cpu.yaml')"
            )
    data = DataConfig.from_section(cfg["data"], where)
    training = TrainingConfig.from_section(cfg["training"], where)
    scoring = ScoringConfig.from_section(cfg["scoring"], where)
    try:
        built_weighting = weighting.build(cfg["weighting"])
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"{where}: bad 'weighting' section: {err}") from err
    try:
        model = models.ModelConfig.from_section(cfg["model"])
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"{where}: bad 'model' section: {err}") from err
    experiment = ExperimentConfig(
        data, model, built_weighting, training, scoring, record=copy.deepcopy(dict(cfg)), where=where
    )
    if training.batch_size % training.micro_batches:
        raise ConfigError(
            f"{where}: training.batch_size ({training.batch_size}) must be a multiple "
            f"of training.micro_batches ({training.micro_batches})"
        )
    if cfg["model"].get("sample_rate", data.sample_rate) != data.sample_rate:
        raise ConfigError(
            f"{where}: model.sample_rate ({cfg['model']['sample_rate']}) differs from data.sample_rate "
            f"({data.sample_rate}); set both (run.sh --fs sets both)"
        )
    _check_curriculum_horizon(experiment)
    check_metric_rates(scoring, data.sample_rate, where)
    _check_activation_checkpointing(experiment)
    return experiment


def check_metric_rates(scoring: ScoringConfig, sample_rate: int, where: str = "") -> None:
    """ConfigError for a metric of ``scoring`` that is unknown or defined at other sample rates only (PESQ: 8 and
    16 kHz), which would fail after the training; ``where`` (the config's file) leads the message."""
    from ugr.separation import metrics

    try:
        metrics.check(scoring.metrics, sample_rate)
    except ValueError as err:
        raise ConfigError(f"{where + ': ' if where else ''}scoring.metrics: {err}") from err


def _check_activation_checkpointing(cfg: ExperimentConfig) -> None:
    """Checkpointing acts on Sudo rm -rf's U-blocks: another arch would silently use the full memory."""
    from ugr.separation.models import U_BLOCK_ARCHS

    if cfg.training.activation_checkpointing and cfg.model.arch not in U_BLOCK_ARCHS:
        raise ConfigError(
            f"{cfg.where}: training.activation_checkpointing checkpoints the U-blocks of "
            f"{' and '.join(U_BLOCK_ARCHS)}; model.arch {cfg.model.arch} has none: set it to false "
            f"(or use micro_batches to save memory)"
        )


def _check_curriculum_horizon(cfg: ExperimentConfig) -> None:
    """A horizon beyond the training would leave beta < 0 to the end: the run would never become uniform."""
    from ugr.core.weighting import Curriculum, number_text

    training, where = cfg.training, cfg.where
    steps = training.epochs * (cfg.data.train_mixtures_per_epoch // training.batch_size)
    for term in cfg.weighting.parts():
        if not isinstance(term, Curriculum) or term.horizon is None:
            continue
        horizon = f"weighting {term.horizon_key} ({number_text(term.horizon)}) is longer than the training"
        if term.unit == "epoch" and term.horizon > training.epochs:
            raise ConfigError(
                f"{where}: {horizon} (training.epochs {training.epochs}), so beta would never "
                f"reach 0; shorten the horizon or train longer"
            )
        if term.unit == "step" and term.horizon > steps:
            raise ConfigError(
                f"{where}: {horizon} ({steps} steps: training.epochs x data.train_mixtures_per_epoch "
                f"// training.batch_size), so beta would never reach 0; shorten the horizon"
            )


def load(path: str | Path, overrides: Sequence[Override] = (), experiment: Optional[str] = None) -> ExperimentConfig:
    """Loads, merges (``inherit``), overrides and validates one experiment config.

    ``experiment`` (default: the file's stem) selects the overrides addressed
    to one experiment.
    """
    path = Path(path)
    name = experiment or path.stem
    cfg = apply_overrides(_load_raw(path), overrides, name)
    applied = [o.text for o in overrides if o.experiment in (None, name)]
    where = f"{path}" + (f" (with overrides {' '.join(applied)})" if applied else "")
    return validate(cfg, where=where)
