"""Config value checks, in one style: a check returns what is wrong with a value, or None when it is good.

The phrase follows the key's name (``training.lr must be a positive number,
got -1``), so the owner of a section (``ugr.pipeline.config``, ``ugr.separation.models``,
``ugr.core.weighting``) raises one error naming the file, the key and this. Nothing
here imports torch: the checks serve the config before any model exists.

Every number a check accepts is finite: ``.inf`` and ``.nan`` pass no check
(``positive_number``, ``finite_number``); ``between`` and ``at_most`` bound
a value where the code would allocate from it, or diverge beyond it.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Callable, Optional

Check = Callable[[Any], Optional[str]]


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def positive_number(value: Any) -> Optional[str]:
    """A number > 0 and finite (``.inf`` and ``.nan`` are no setting: they train to NaN or allocate without end)."""
    if _is_number(value) and not math.isfinite(value):
        return f"must be a finite positive number, got {value!r}"
    return None if _is_number(value) and value > 0 else f"must be a positive number, got {value!r}"


def positive_number_or_null(value: Any) -> Optional[str]:
    return None if value is None else positive_number(value)


def finite_number(value: Any) -> Optional[str]:
    return None if _is_finite(value) else f"must be a finite number, got {value!r}"


def at_most(check: Check, high: float, unit: str = "", why: str = "") -> Check:
    """``check``, then ``value <= high``: the bound of what the code can use (it would allocate, or diverge,
    from more); ``why`` follows the bound in the message (``; a learning rate above 1 diverges``)."""
    return between(check, None, high, unit, why)


def between(check: Check, low: Optional[float], high: Optional[float], unit: str = "", why: str = "") -> Check:
    """``check``, then ``low <= value <= high`` (either bound None: none on that side)."""
    unit = f" {unit}" if unit else ""
    why = f"; {why}" if why else ""

    def check_bounds(value: Any) -> Optional[str]:
        problem = check(value)
        if problem:
            return problem
        if low is not None and high is not None and not low <= value <= high:
            return f"must be between {low:g} and {high:g}{unit}{why}, got {value!r}"
        if low is not None and value < low:
            return f"must be at least {low:g}{unit}{why}, got {value!r}"
        if high is not None and value > high:
            return f"must be at most {high:g}{unit}{why}, got {value!r}"
        return None

    return check_bounds


def positive_int(value: Any) -> Optional[str]:
    good = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return None if good else f"must be a positive integer, got {value!r}"


def non_negative_int(value: Any) -> Optional[str]:
    good = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return None if good else f"must be an integer >= 0, got {value!r}"


def boolean(value: Any) -> Optional[str]:
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


def one_of(*choices: Any) -> Check:
    def check(value: Any) -> Optional[str]:
        return None if value in choices else f"must be one of {list(choices)}, got {value!r}"

    return check
