"""Config value checks, in one style: a check returns what is wrong with a value, or None when it is good.

The phrase follows the key's name (``training.lr must be a positive number,
got -1``), so the owner of a section (``ugr.pipeline.config``, ``ugr.separation.models``,
``ugr.core.weighting``) raises one error naming the file, the key and this. Nothing
here imports torch: the checks serve the config before any model exists.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any, Callable, Optional

Check = Callable[[Any], Optional[str]]


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def positive_number(value: Any) -> Optional[str]:
    return None if _is_number(value) and value > 0 else f"must be a positive number, got {value!r}"


def positive_number_or_null(value: Any) -> Optional[str]:
    return None if value is None else positive_number(value)


def finite_number(value: Any) -> Optional[str]:
    return None if _is_number(value) and math.isfinite(value) else f"must be a finite number, got {value!r}"


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
