"""Weighting functions F: the logits whose softmax over the batch gives the pmf.

``build(cfg)`` turns one config mapping into a callable. Called with keyword
context it returns logits shaped like ``losses``:

    weighting = build({"type": "robust", "alpha": 0.2})
    logits = weighting(losses=losses, classes=classes, step=step, epoch=epoch)

Each type is a frozen dataclass that owns its config keys and their
validation (``from_config``), its short label for the report's tables
(``label()``: ``robust (alpha=0.2)``) and its sentence for the model card
(``describe()``; ``in_words`` adds what UGR is). ``TYPES`` maps the config's
``type`` to them, so a new type is one class and one entry.

Context keys: ``losses`` (per-example training losses, (B, n_src) or (B,)),
``neg_sisdri`` (negative SI-SDR improvement, same shape; only needed by
``signal: neg_sisdri``), ``classes`` and ``coarse`` (fine and coarse labels
per loss, or per source with per-mixture losses: nested lists or an integer
tensor; any hashable labels, looked up by their ``str``), ``step`` and ``epoch``
(optimisation step and epoch, from 0). Other keys are ignored, so the trainer
can pass one context to every type. Nothing here imports the audio stack or
Lightning: the weightings serve any per-example loss.

Types (F of the paper):

* ``uniform``: F = 0, the ordinary mean.
* ``robust``: F = alpha * signal, alpha >= 0. Hard examples weigh more.
* ``curriculum``: F = beta(k) * signal with beta(0) = beta0 < 0 rising to
  exactly 0 at the horizon (``horizon_steps`` or ``horizon_epochs``) and 0
  after it. Easy examples first, then the uniform update. Schedules of the
  progress ``r = k / horizon`` in [0, 1]:
  ``linear`` beta0 * (1 - r);
  ``exponential`` beta0 * (exp(-rate r) - exp(-rate)) / (1 - exp(-rate)),
  fast early relaxation (``rate``, default 5);
  ``step`` beta0 * (1 - floor(r * levels) / levels), ``levels`` plateaus
  (default 4); ``constant`` beta0 throughout, with no horizon (never
  uniform: TERM's negative tilt, below).
* ``class``: F = gamma[label]. A source is looked up by its fine class
  first, then by its coarse class (any labels of the corpus, e.g. ``dog``
  then ``env``; ``coarse`` may be left out); sources not named get 0. With per-mixture losses a
  mixture's logit is the mean over its sources, so a speech-vs-env bias needs
  ``granularity: source`` when every mixture holds one source of each.
* ``group_dro``: F = log q[group] - log n[group] (group DRO, Sagawa et al.,
  ICLR 2020): ``group_by`` (``fine``, ``coarse``, or ``group``: the context key
  ``groups``, e.g. the speaker) names the groups, ``step_size`` (eta > 0) how
  fast q moves, ``size_adjustment`` (C >= 0, default 0) adds C / sqrt(n_g) to
  a group's loss. Stateful: q is updated once per optimizer step
  (``begin_step``, called by ``ugr.core.step``) from the group means over the
  global batch, q_g <- q_g exp(eta mean_g) normalised, before the step's
  logits. Fixed gamma (``class``) when you know what you want; group DRO when
  you want the worst group up.
* ``sum``: the sum of ``terms`` (e.g. robust + class).

Top-level ``normaliser`` (``batch``, the default: softmax over the global
batch; or ``running``: TERM's running normaliser, ``decay`` in [0, 1), default
0.9) says how the logits become weights: see ``ugr.core.normaliser``. The
built weighting carries it (``weighting.normaliser``); ``weighting_state`` and
``load_weighting_state`` save and restore the state of the normaliser and of
group DRO for checkpoints.

The signal of loss-based types (``signal``): ``loss`` (default, the paper's
formula) or ``neg_sisdri`` (negative SI-SDR improvement, the authors' code).

``granularity`` (top level only; default ``source``) is carried as an
attribute for the trainer, which picks per-source or per-mixture losses
accordingly (see ``ugr.separation.losses``).

Tilted empirical risk minimisation (TERM, Li, Beirami, Sanjabi, Smith, ICLR
2021) is this softmax weighting of ``t * L``: the gradient of its objective
``(1/t) log mean_i exp(t L_i)`` is ``sum_i softmax(t L)_i g_i``. So tilt
``t > 0`` is ``robust`` with ``alpha = t``, ``t < 0`` is ``curriculum`` with
``beta0 = t, schedule: constant``, and ``t -> 0`` is ``uniform``; TERM's
per-sample loss is a mixture's (``granularity: mixture``) or, with
``granularity: source``, each source is a sample. Over a batch this is TERM's
mini-batch estimate (the paper's stochastic TERM with no running
normaliser; ``normaliser: running`` adds it). ``t -> +inf`` tends to the hardest example alone (the max-loss,
top-1 limit), ``t -> -inf`` to the easiest. TERM's hierarchical tilt (one
tilt across groups, another within) and top-k/CVaR (uniform over the hardest
fraction) do not fit: their weight of an example depends on the other losses
of its group, or on the batch's k-th loss, not on the example alone, so they
are no per-example F whose softmax over every rank and micro-batch stays
exact.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Callable, ClassVar, Mapping, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from ugr.core.checks import finite_number, one_of
from ugr.core.distributed import gather_objects
from ugr.core.normaliser import NORMALISERS, BatchNormaliser, Normaliser, make

GRANULARITIES = ("source", "mixture")
SIGNALS = ("loss", "neg_sisdri")
SCHEDULES = ("linear", "exponential", "step", "constant")


def _signal(context: Mapping[str, Any], signal: str) -> Tensor:
    key = "losses" if signal == "loss" else "neg_sisdri"
    if key not in context:
        raise ValueError(f"weighting with signal {signal!r} needs the context key {key!r}")
    return context[key].detach()


# ----------------------------------------------------------------------------- config values, one style: raise naming where


def _number(cfg: Mapping[str, Any], key: str, where: str) -> float:
    problem = finite_number(cfg[key])
    if problem:
        raise ValueError(f"{where}: {key!r} {problem}")
    return float(cfg[key])


def _check_keys(cfg: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(allowed)}")


def _check_choice(value: Any, choices: Sequence[str], key: str, where: str) -> str:
    problem = one_of(*choices)(value)
    if problem:
        raise ValueError(f"{where}: {key!r} {problem}")
    return value


def number_text(value: float) -> str:
    """A number as configs write it: ``5`` for 5.0, ``0.2``, ``0.066667``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _signal_words(signal: str) -> str:
    return "its negative SI-SDR improvement" if signal == "neg_sisdri" else "its loss L"


# ----------------------------------------------------------------------------- the types
# Each type owns its config keys (``from_config``, which validates them), its
# short label for tables (``label``) and its sentence for model cards
# (``describe``); ``parts`` lists it and the terms inside it, for the checks of
# a whole config (curriculum horizons, class names).


class _Labelled:
    """``label()``: the type's own label, with ``granularity=mixture`` where the weights are per mixture (two
    runs that differ only there are told apart in the report) and the normaliser's settings where it is not
    the batch softmax."""

    normaliser: Normaliser

    def _label(self) -> str:
        raise NotImplementedError

    def label(self) -> str:
        extras = [self.normaliser.label()]
        if getattr(self, "granularity", None) == "mixture" and not isinstance(self, Uniform):
            extras.insert(0, "granularity=mixture")
        return ", ".join([self._label(), *(extra for extra in extras if extra)])


@dataclass(frozen=True)
class Uniform(_Labelled):
    granularity: str = "source"
    normaliser: Normaliser = field(default_factory=BatchNormaliser, compare=False, repr=False)

    KEYS: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], where: str, granularity: str) -> "Uniform":
        return cls(granularity=granularity)

    def __call__(self, **context: Any) -> Tensor:
        return torch.zeros_like(context["losses"].detach())

    def _label(self) -> str:
        return "uniform"

    def describe(self) -> str:
        return "uniform: every example weighs the same (the ordinary mean of the losses; the baseline)"

    def parts(self) -> tuple[Any, ...]:
        return (self,)


@dataclass(frozen=True)
class Robust(_Labelled):
    alpha: float
    signal: str = "loss"
    granularity: str = "source"
    normaliser: Normaliser = field(default_factory=BatchNormaliser, compare=False, repr=False)

    KEYS: ClassVar[frozenset[str]] = frozenset({"alpha", "signal"})

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], where: str, granularity: str) -> "Robust":
        if "alpha" not in cfg:
            raise ValueError(f"{where}: missing 'alpha' (a number >= 0; 0 is the uniform update)")
        alpha = _number(cfg, "alpha", where)
        if alpha < 0:
            raise ValueError(
                f"{where}: 'alpha' must be >= 0 (alpha < 0 favours easy examples: use type curriculum), got {alpha}"
            )
        signal = _check_choice(cfg.get("signal", "loss"), SIGNALS, "signal", where)
        return cls(alpha=alpha, signal=signal, granularity=granularity)

    def __call__(self, **context: Any) -> Tensor:
        return self.alpha * _signal(context, self.signal)

    def _label(self) -> str:
        signal = "" if self.signal == "loss" else f", signal={self.signal}"
        return f"robust (alpha={number_text(self.alpha)}{signal})"

    def describe(self) -> str:
        return (
            f"robust, alpha = {self.alpha:g}: an example's weight grows as exp(alpha x "
            f"{_signal_words(self.signal)}), so the hard examples weigh more (fewer catastrophic failures, the "
            f"paper's robust setting)"
        )

    def parts(self) -> tuple[Any, ...]:
        return (self,)


@dataclass(frozen=True)
class Curriculum(_Labelled):
    beta0: float
    horizon: float | None  # None: schedule constant
    unit: str | None  # "step" or "epoch": the context key that measures progress; None: schedule constant
    schedule: str = "linear"
    rate: float = 5.0
    levels: int = 4
    signal: str = "loss"
    granularity: str = "source"
    normaliser: Normaliser = field(default_factory=BatchNormaliser, compare=False, repr=False)

    KEYS: ClassVar[frozenset[str]] = frozenset(
        {"beta0", "horizon_steps", "horizon_epochs", "schedule", "rate", "levels", "signal"}
    )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], where: str, granularity: str) -> "Curriculum":
        if "beta0" not in cfg:
            raise ValueError(f"{where}: missing 'beta0' (a number < 0)")
        beta0 = _number(cfg, "beta0", where)
        if beta0 >= 0:
            raise ValueError(f"{where}: 'beta0' must be < 0 (beta rises from beta0 to 0), got {beta0}")
        schedule = _check_choice(cfg.get("schedule", "linear"), SCHEDULES, "schedule", where)
        signal = _check_choice(cfg.get("signal", "loss"), SIGNALS, "signal", where)
        horizons = [k for k in ("horizon_steps", "horizon_epochs") if k in cfg]
        if schedule == "constant":
            if horizons:
                raise ValueError(
                    f"{where}: schedule 'constant' keeps beta0 for good, so it takes no {horizons[0]!r}; "
                    "drop it, or pick a schedule that rises to 0"
                )
            return cls(beta0=beta0, horizon=None, unit=None, schedule=schedule, signal=signal, granularity=granularity)
        if len(horizons) != 1:
            raise ValueError(
                f"{where}: give exactly one of 'horizon_steps' or 'horizon_epochs' (got {horizons or 'none'})"
            )
        horizon = _number(cfg, horizons[0], where)
        if horizon <= 0:
            raise ValueError(f"{where}: {horizons[0]!r} must be > 0, got {horizon}")
        rate = _number(cfg, "rate", where) if "rate" in cfg else 5.0
        if rate <= 0:
            raise ValueError(f"{where}: 'rate' must be > 0, got {rate}")
        levels = cfg.get("levels", 4)
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"{where}: 'levels' must be an integer >= 1, got {levels!r}")
        unit = "step" if horizons[0] == "horizon_steps" else "epoch"
        return cls(
            beta0=beta0,
            horizon=horizon,
            unit=unit,
            schedule=schedule,
            rate=rate,
            levels=levels,
            signal=signal,
            granularity=granularity,
        )

    @property
    def horizon_key(self) -> str | None:
        """The config key of the horizon: ``horizon_steps`` or ``horizon_epochs`` (None: schedule constant)."""
        return None if self.unit is None else f"horizon_{self.unit}s"

    def beta(self, progress: float) -> float:
        """beta at step/epoch ``progress``: beta0 at 0, exactly 0 from the horizon on (beta0 throughout: constant)."""
        if self.horizon is None:
            return self.beta0
        r = progress / self.horizon
        if r >= 1.0:
            return 0.0
        r = max(r, 0.0)
        if self.schedule == "linear":
            factor = 1.0 - r
        elif self.schedule == "exponential":
            floor = math.exp(-self.rate)
            factor = (math.exp(-self.rate * r) - floor) / (1.0 - floor)
        else:
            factor = 1.0 - math.floor(r * self.levels) / self.levels
        return self.beta0 * factor

    def __call__(self, **context: Any) -> Tensor:
        if self.unit is None:
            return self.beta0 * _signal(context, self.signal)
        if context.get(self.unit) is None:
            raise ValueError(f"curriculum weighting needs the context key {self.unit!r} (the {self.unit} from 0)")
        return self.beta(float(context[self.unit])) * _signal(context, self.signal)

    def _label(self) -> str:
        details = [f"beta0={number_text(self.beta0)}"]
        if self.horizon is not None:
            details.append(f"{self.horizon_key}={number_text(self.horizon)}")
        details.append(f"schedule={self.schedule}")
        if self.schedule == "exponential":
            details.append(f"rate={number_text(self.rate)}")
        if self.schedule == "step":
            details.append(f"levels={self.levels}")
        if self.signal != "loss":
            details.append(f"signal={self.signal}")
        return f"curriculum ({', '.join(details)})"

    def describe(self) -> str:
        signal = _signal_words(self.signal)
        if self.horizon is None:
            return (
                f"curriculum, constant: weights exp(beta0 x {signal}) with beta0 = {self.beta0:g} throughout "
                f"(TERM's negative tilt), so the easy examples weigh more for the whole training"
            )
        return (
            f"curriculum: weights exp(beta x {signal}) with beta rising from {self.beta0:g} to 0 over "
            f"{self.horizon:g} {self.unit}s ({self.schedule} schedule), so the easy examples weigh more at first, "
            f"and the update is uniform after that"
        )

    def parts(self) -> tuple[Any, ...]:
        return (self,)


@dataclass(frozen=True)
class ClassBias(_Labelled):
    gamma: Mapping[str, float]
    granularity: str = "source"
    normaliser: Normaliser = field(default_factory=BatchNormaliser, compare=False, repr=False)

    KEYS: ClassVar[frozenset[str]] = frozenset({"gamma"})

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], where: str, granularity: str) -> "ClassBias":
        gamma = cfg.get("gamma")
        if not isinstance(gamma, Mapping) or not gamma:
            raise ValueError(f"{where}: 'gamma' must be a non-empty mapping {{class_name: number}}, got {gamma!r}")
        values = {}
        for name, value in gamma.items():
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                raise ValueError(f"{where}: gamma[{name!r}] must be a finite number, got {value!r}")
            values[str(name)] = float(value)
        return cls(gamma=values, granularity=granularity)

    def __call__(self, **context: Any) -> Tensor:
        losses = context["losses"].detach()
        if context.get("classes") is None:
            raise ValueError("class weighting needs the context key 'classes' (a label per loss, or per source)")
        fine = _labels(context["classes"])
        coarse = fine if context.get("coarse") is None else _labels(context["coarse"])
        if fine.shape != coarse.shape:
            raise ValueError(f"class weighting: fine labels {fine.shape} and coarse labels {coarse.shape} differ")
        values = np.vectorize(self._lookup, otypes=[float])(fine, coarse) if fine.size else fine.astype(float)
        logits = torch.as_tensor(values, dtype=losses.dtype, device=losses.device)
        if logits.shape == losses.shape:
            return logits
        if logits.dim() == losses.dim() + 1 and logits.shape[: losses.dim()] == losses.shape:
            return logits.mean(dim=-1)  # per-mixture losses, per-source labels
        raise ValueError(
            f"class weighting: classes of shape {tuple(logits.shape)} do not match losses "
            f"{tuple(losses.shape)}; pass one label per loss, or (B, n_src) labels for (B,) losses"
        )

    def _lookup(self, fine: Any, coarse: Any) -> float:
        return self.gamma.get(str(fine), self.gamma.get(str(coarse), 0.0))

    def _label(self) -> str:
        return f"class (gamma {', '.join(f'{name}={number_text(v)}' for name, v in self.gamma.items())})"

    def describe(self) -> str:
        biases = ", ".join(f"{name} {value:g}" for name, value in self.gamma.items())
        return (
            f"class bias: weights exp(gamma[class]) with gamma {biases} (other classes 0), so an example "
            f"of a class with gamma g weighs e^g times more"
        )

    def parts(self) -> tuple[Any, ...]:
        return (self,)


def _labels(labels: Any) -> np.ndarray:
    """Labels as an object array: nested lists as they are, a tensor (on any device) by its values."""
    if isinstance(labels, Tensor):
        labels = labels.tolist()
    return np.asarray(labels, dtype=object)


@dataclass(frozen=True)
class Sum(_Labelled):
    terms: Sequence["Weighting"] = field(default_factory=tuple)
    granularity: str = "source"
    normaliser: Normaliser = field(default_factory=BatchNormaliser, compare=False, repr=False)

    KEYS: ClassVar[frozenset[str]] = frozenset({"terms"})

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], where: str, granularity: str) -> "Sum":
        terms = cfg.get("terms")
        if not isinstance(terms, Sequence) or isinstance(terms, (str, bytes)) or not terms:
            raise ValueError(f"{where}: 'terms' must be a non-empty list of weighting configs, got {terms!r}")
        built = tuple(_build(term, f"{where} terms[{i}]", granularity=None) for i, term in enumerate(terms))
        return cls(terms=built, granularity=granularity)

    def __call__(self, **context: Any) -> Tensor:
        total = torch.zeros_like(context["losses"].detach())
        for term in self.terms:
            total = total + term(**context)
        return total

    def _label(self) -> str:
        return " + ".join(term.label() for term in self.terms)

    def describe(self) -> str:
        return "the sum of: " + "; ".join(term.describe() for term in self.terms)

    def parts(self) -> tuple[Any, ...]:
        return (self,) + tuple(part for term in self.terms for part in term.parts())


GROUP_BY = ("fine", "coarse", "group")
_GROUP_KEYS = {"fine": "classes", "coarse": "coarse", "group": "groups"}


class GroupState:
    """Group DRO's state: ``log q`` per group seen (float64, normalised), the steps taken, this step's counts.

    ``state_dict`` holds ``log_q`` and ``steps`` as Python floats and ints, so a
    checkpoint restores q bit for bit; ``counts`` (the global batch's count per
    group, set by ``GroupDRO.begin_step``) lives within a step and is not saved.
    """

    def __init__(self) -> None:
        self.log_q: dict[str, float] = {}
        self.steps = 0
        self.counts: dict[str, int] | None = None
        self.means: dict[str, float] = {}

    def q(self) -> dict[str, float]:
        """q per group seen, by name."""
        return {name: math.exp(value) for name, value in self.log_q.items()}

    def update(
        self, means: Mapping[str, float], counts: Mapping[str, int], step_size: float, size_adjustment: float
    ) -> None:
        """One exponentiated-gradient step: ``q_g <- q_g exp(eta (mean_g + C / sqrt(n_g)))``, then normalised.

        Groups seen for the first time join with q = 1 / (number of groups seen), the others scaled to make
        room, so the first step starts from the uniform q."""
        new = sorted(set(counts) - set(self.log_q))
        if new:
            total = len(self.log_q) + len(new)
            shift = math.log(len(self.log_q) / total) if self.log_q else 0.0
            self.log_q = {name: value + shift for name, value in self.log_q.items()}
            self.log_q.update({name: -math.log(total) for name in new})
        for name in sorted(counts):
            self.log_q[name] += step_size * (means[name] + size_adjustment / math.sqrt(counts[name]))
        names = sorted(self.log_q)
        top = max(self.log_q[name] for name in names)
        log_total = top + math.log(math.fsum(math.exp(self.log_q[name] - top) for name in names))
        self.log_q = {name: self.log_q[name] - log_total for name in names}
        self.counts, self.means = dict(counts), dict(means)
        self.steps += 1

    def state_dict(self) -> dict[str, Any]:
        return {"log_q": dict(self.log_q), "steps": self.steps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "log_q" not in state or not isinstance(state["log_q"], Mapping):
            raise ValueError(f"group DRO state: expected a mapping with 'log_q', got {sorted(state)}")
        self.log_q = {str(name): float(value) for name, value in state["log_q"].items()}
        self.steps = int(state.get("steps", 0))
        self.counts = None


@dataclass(frozen=True)
class GroupDRO(_Labelled):
    """Group DRO (Sagawa, Koh, Hashimoto, Liang, ICLR 2020) as logits ``F_i = log q_g(i) - log n_g(i)``.

    q is updated once per optimizer step (``begin_step``, called by
    ``ugr.core.step.reweigh`` and ``reweigh_backward`` with every micro-batch's
    context) from each group's mean loss over the global batch, then the
    softmax over the batch gives an example ``q_g / n_g`` renormalised over
    the groups present.
    """

    step_size: float
    group_by: str
    size_adjustment: float = 0.0
    granularity: str = "source"
    normaliser: Normaliser = field(default_factory=BatchNormaliser, compare=False, repr=False)
    state: GroupState = field(default_factory=GroupState, compare=False, repr=False)

    KEYS: ClassVar[frozenset[str]] = frozenset({"step_size", "group_by", "size_adjustment"})

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], where: str, granularity: str) -> "GroupDRO":
        if "step_size" not in cfg:
            raise ValueError(f"{where}: missing 'step_size' (eta > 0: how fast q moves toward the worst group)")
        step_size = _number(cfg, "step_size", where)
        if step_size <= 0:
            raise ValueError(f"{where}: 'step_size' must be > 0, got {step_size}")
        if "group_by" not in cfg:
            raise ValueError(f"{where}: missing 'group_by' (one of {list(GROUP_BY)})")
        group_by = _check_choice(cfg["group_by"], GROUP_BY, "group_by", where)
        adjustment = _number(cfg, "size_adjustment", where) if "size_adjustment" in cfg else 0.0
        if adjustment < 0:
            raise ValueError(f"{where}: 'size_adjustment' must be >= 0, got {adjustment}")
        return cls(step_size=step_size, group_by=group_by, size_adjustment=adjustment, granularity=granularity)

    def groups_of(self, context: Mapping[str, Any]) -> list[str]:
        """The group of each loss, flattened: per-loss labels as they are; with per-mixture losses and
        per-source labels a mixture's group is its sources' labels, sorted and joined by ``+``."""
        key = _GROUP_KEYS[self.group_by]
        if context.get(key) is None:
            raise ValueError(
                f"group_dro weighting with group_by {self.group_by!r} needs the context key {key!r} "
                f"(a label per loss, or per source)"
            )
        shape = tuple(context["losses"].shape)
        labels = _labels(context[key])
        if labels.shape == shape:
            return [str(label) for label in labels.reshape(-1)]
        if labels.ndim == len(shape) + 1 and labels.shape[: len(shape)] == shape:
            return ["+".join(sorted(str(label) for label in row)) for row in labels.reshape(-1, labels.shape[-1])]
        raise ValueError(
            f"group_dro weighting: {key} of shape {labels.shape} do not match losses {shape}; pass "
            f"one label per loss, or (B, n_src) labels for (B,) losses"
        )

    def begin_step(self, contexts: Sequence[Mapping[str, Any]]) -> None:
        """Updates q once from the step's contexts (every micro-batch), gathered over every DDP rank."""
        names: list[str] = []
        values: list[float] = []
        for context in contexts:
            names += self.groups_of(context)
            values += context["losses"].detach().reshape(-1).to(torch.float64).tolist()
        by_group: dict[str, list[float]] = {}
        for rank_names, rank_values in gather_objects((names, values)):
            for name, value in zip(rank_names, rank_values):
                by_group.setdefault(name, []).append(value)
        means = {name: math.fsum(group) / len(group) for name, group in by_group.items()}
        bad = sorted(name for name, mean in means.items() if not math.isfinite(mean))
        if bad:
            raise ValueError(f"group_dro weighting: the losses of group(s) {bad} are not finite")
        self.state.update(
            means, {name: len(group) for name, group in by_group.items()}, self.step_size, self.size_adjustment
        )

    def __call__(self, **context: Any) -> Tensor:
        losses = context["losses"].detach()
        counts = self.state.counts
        if counts is None:
            raise ValueError(
                "group_dro weighting: no step begun; q is updated once per optimizer step by "
                "ugr.core.step.reweigh or reweigh_backward (or call begin_step(weighting, contexts))"
            )
        names = self.groups_of(context)
        unknown = sorted(set(names) - set(counts))
        if unknown:
            raise ValueError(f"group_dro weighting: group(s) {unknown} are not in this step's batch")
        values = [self.state.log_q[name] - math.log(counts[name]) for name in names]
        return torch.tensor(values, dtype=losses.dtype, device=losses.device).reshape(losses.shape)

    def _label(self) -> str:
        adjustment = f", size_adjustment={number_text(self.size_adjustment)}" if self.size_adjustment else ""
        return f"group DRO (group_by={self.group_by}, step_size={number_text(self.step_size)}{adjustment})"

    def describe(self) -> str:
        groups = {"fine": "fine classes", "coarse": "coarse classes", "group": "groups"}[self.group_by]
        adjustment = f" plus {self.size_adjustment:g} / sqrt(its count in the batch)" if self.size_adjustment else ""
        return (
            f"group DRO over the {groups}, step size {self.step_size:g}: each group's weight q grows as "
            f"exp(step size x its mean loss{adjustment}) every step, and an example weighs q of its group over "
            f"the group's count in the batch, so the worst group is pulled up (fixed gamma, class bias, when "
            f"you know what you want; group DRO when you want the worst group up)"
        )

    def parts(self) -> tuple[Any, ...]:
        return (self,)


Weighting = Union[Uniform, Robust, Curriculum, ClassBias, GroupDRO, Sum]
WeightingType = Union[type[Uniform], type[Robust], type[Curriculum], type[ClassBias], type[GroupDRO], type[Sum]]
TYPES: dict[str, WeightingType] = {
    "uniform": Uniform,
    "robust": Robust,
    "curriculum": Curriculum,
    "class": ClassBias,
    "group_dro": GroupDRO,
    "sum": Sum,
}
_UNITS = {"source": "(mixture, source) pair", "mixture": "mixture"}


# Bounds of a weighting config, checked before anything of it is built or shown: YAML anchors and aliases let a
# file of a few hundred bytes stand for 10^9 nested terms (or a value that refers to itself), which building,
# or only printing it in an error, would never finish. Real weightings have a handful of terms.
MAX_TERMS = 64  # terms of every sum, in all
MAX_SUM_DEPTH = 4  # sums inside sums (a top-level sum is depth 1)
MAX_VALUES = 4096  # mapping entries and list items of the whole section
MAX_NESTING = 16  # mappings and lists inside each other


def _check_size(cfg: Any, where: str) -> None:
    """Raise ``ValueError`` naming the key and the limit when the config passes a bound (``MAX_TERMS``...).

    Each container is counted before it is looked into, so the walk stops after at most ``MAX_VALUES`` values
    however many times aliases repeat them."""
    counts = {"terms": 0, "values": 0}
    aliases = "(a YAML alias counts each time it is used)"

    def walk(node: Any, path: str, sums: int, nesting: int) -> None:
        if nesting > MAX_NESTING:
            raise ValueError(
                f"{path}: nested more than {MAX_NESTING} mappings or lists deep, the limit "
                f"{aliases}; a weighting config is a few levels deep"
            )
        if isinstance(node, Mapping):
            children: list[tuple[Any, Any]] = list(node.items())
        elif isinstance(node, (list, tuple)):
            children = list(enumerate(node))
        else:
            return
        counts["values"] += len(children)
        if counts["values"] > MAX_VALUES:
            raise ValueError(
                f"{path}: the weighting config holds more than {MAX_VALUES} values, the limit "
                f"{aliases}; write a smaller one"
            )
        is_sum = isinstance(node, Mapping) and node.get("type") == "sum"
        for key, value in children:
            if is_sum and key == "terms" and isinstance(value, (list, tuple)):
                if sums + 1 > MAX_SUM_DEPTH:
                    raise ValueError(
                        f"{path}: 'terms' nests sums {sums + 1} deep, more than the limit "
                        f"{MAX_SUM_DEPTH} {aliases}; flatten the sum (a sum of sums is one sum)"
                    )
                counts["terms"] += len(value)
                if counts["terms"] > MAX_TERMS:
                    raise ValueError(
                        f"{path}: 'terms' makes more than {MAX_TERMS} terms in all, the limit "
                        f"{aliases}; write a smaller sum"
                    )
                for i, term in enumerate(value):
                    walk(term, f"{path} terms[{i}]", sums + 1, nesting + 2)
            elif isinstance(node, Mapping):
                walk(value, f"{path} {key}", sums, nesting + 1)
            else:
                walk(value, f"{path}[{key}]", sums, nesting + 1)

    walk(cfg, where, 0, 0)


def build(cfg: Mapping[str, Any] | Weighting) -> Weighting:
    """A weighting function from its config mapping (a built one is returned as it is); bad configs raise
    ``ValueError`` naming the key, and so do configs past the bounds (``MAX_TERMS``, ``MAX_SUM_DEPTH``,
    ``MAX_VALUES``, ``MAX_NESTING``), before anything is built."""
    if isinstance(cfg, (Uniform, Robust, Curriculum, ClassBias, GroupDRO, Sum)):
        return cfg
    _check_size(cfg, "weighting")
    return _build(cfg, where="weighting", granularity="source")


def _build(cfg: Mapping[str, Any], where: str, granularity: str | None) -> Weighting:
    """``granularity`` is the default of a top-level section; None for a term of a sum, which takes none."""
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{where}: expected a mapping with a 'type' key, got {cfg!r}")
    kind = _check_choice(cfg.get("type"), list(TYPES), "type", where)
    where = f"{where} ({kind})"
    weighting_type = TYPES[kind]
    top_level = {"granularity", "normaliser", "decay"} if granularity else set()
    _check_keys(cfg, {"type"} | set(weighting_type.KEYS) | top_level, where)
    if not granularity:
        return weighting_type.from_config(cfg, where, "source")
    granularity = _check_choice(cfg.get("granularity", granularity), GRANULARITIES, "granularity", where)
    kind = _check_choice(cfg.get("normaliser", "batch"), NORMALISERS, "normaliser", where)
    decay = None
    if "decay" in cfg:
        if kind != "running":
            raise ValueError(f"{where}: 'decay' goes only with 'normaliser: running' (normaliser is {kind!r})")
        decay = _number(cfg, "decay", where)
        if not 0 <= decay < 1:
            raise ValueError(f"{where}: 'decay' must be in [0, 1) (0 is the batch softmax), got {decay}")
    built = weighting_type.from_config(cfg, where, granularity)
    return dataclasses.replace(built, normaliser=make(kind, decay))


def in_words(weighting: Weighting) -> str:
    """What a weighting does, in a sentence or two: the model card's paragraph."""
    running = "" if weighting.normaliser.kind == "batch" else f" The weights use {weighting.normaliser.describe()}."
    return (
        f"Unified gradient reweighting (Tzinis et al., ICASSP 2021): each training step takes sum_i p_i grad L_i "
        f"with p the softmax over the batch of a logit per {_UNITS[weighting.granularity]}. "
        f"Here {weighting.describe()}.{running}"
    )


def begin_step(weighting: Weighting | Callable[..., Tensor], contexts: Sequence[Mapping[str, Any]]) -> None:
    """Starts one optimizer step of a stateful weighting (group DRO updates q) from every micro-batch's
    context; a no-op for the others. ``ugr.core.step`` calls it once per step, before the logits."""
    parts: Callable[[], tuple[Any, ...]] | None = getattr(weighting, "parts", None)
    for part in parts() if parts else ():
        if isinstance(part, GroupDRO):
            part.begin_step(contexts)


def _group_parts(weighting: Weighting) -> list[GroupDRO]:
    return [part for part in weighting.parts() if isinstance(part, GroupDRO)]


def group_weights(weighting: Weighting) -> dict[str, float]:
    """q per group of the group DRO terms (``<group>``; ``<i>/<group>`` with several group DRO terms), for logs."""
    parts = _group_parts(weighting)
    if len(parts) == 1:
        return parts[0].state.q()
    return {f"{i}/{name}": value for i, part in enumerate(parts) for name, value in part.state.q().items()}


def weighting_state(weighting: Weighting) -> dict[str, Any]:
    """The state a checkpoint keeps: the normaliser's (running: log Z, steps) and each group DRO term's q."""
    return {
        "normaliser": weighting.normaliser.state_dict(),
        "group_dro": [part.state.state_dict() for part in _group_parts(weighting)],
    }


def load_weighting_state(weighting: Weighting, state: Mapping[str, Any]) -> None:
    """Restores ``weighting_state``: training resumes with the same log Z and q, bit for bit."""
    parts = _group_parts(weighting)
    saved = list(state.get("group_dro", []))
    if len(saved) != len(parts):
        raise ValueError(
            f"weighting state: the checkpoint holds {len(saved)} group DRO state(s), the weighting "
            f"has {len(parts)} group_dro term(s); resume with the config it was trained with"
        )
    weighting.normaliser.load_state_dict(state.get("normaliser", {}))
    for part, part_state in zip(parts, saved):
        part.state.load_state_dict(part_state)
