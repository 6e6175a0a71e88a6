"""Checked numbers: the one place that decides what counts as an int or a finite float.

Every number a user or a file hands the library (options, hyperparameters, JSON configs,
checkpoint fields) goes through these, so each class of bad value has one answer: a bool is
not a number, 4.7 is not an int, NaN and inf are not finite, numpy scalars are welcome, and
the message names the value, what was expected, and where it came from.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def as_int(value: Any, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as a Python int (numpy integers too) within [minimum, maximum]; anything
    else (a bool, a float such as 4.7 or 4.0, a string) raises ValueError."""
    if _is_bool(value) or isinstance(value, (float, np.floating)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    _check_range(number, name, minimum, maximum)
    return number


def as_float(
    value: Any,
    name: str,
    minimum: float | None = None,
    maximum: float | None = None,
    below: float | None = None,
) -> float:
    """``value`` as a finite Python float within [minimum, maximum] (and < ``below``);
    NaN, infinities, bools and non-numbers raise ValueError."""
    if _is_bool(value) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    _check_range(number, name, minimum, maximum)
    if below is not None and not number < below:
        raise ValueError(f"{name} must be below {below}, got {value!r}")
    return number


def _check_range(number: float, name: str, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and maximum is not None and not minimum <= number <= maximum:
        raise ValueError(f"{name} must be in {minimum}..{maximum}, got {number}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {number}")
