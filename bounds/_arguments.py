"""Argument checks shared by the bounds: each error names the argument.

Every public bound validates its inputs with these helpers, so a caller who
passes ``delta=1.5`` reads ``delta: expected 0 < delta < 1, got 1.5`` rather
than a ``nan`` three calls later.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np


def probability(value, name: str = "delta") -> float:
    """``value`` as a float in the open interval (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name}: expected a real number with 0 < {name} < 1, "
                         f"got {value!r}")
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name}: expected 0 < {name} < 1, got {value!r}")
    return value


def finite(value, name: str) -> float:
    """``value`` as a finite float."""
    if isinstance(value, bool) or not isinstance(value, Real) \
            or not math.isfinite(float(value)):
        raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    return float(value)


def positive(value, name: str) -> float:
    """``value`` as a finite float > 0."""
    if isinstance(value, bool) or not isinstance(value, Real) \
            or not (math.isfinite(float(value)) and float(value) > 0.0):
        raise ValueError(f"{name}: expected a finite real number > 0, got {value!r}")
    return float(value)


def count(value, name: str, minimum: int = 1) -> int:
    """``value`` as an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def finite_array(values, name: str, ndim: int | None = None,
                 min_size: int = 1) -> np.ndarray:
    """``values`` as a finite float64 array with ``ndim`` dimensions."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected an array of real numbers, "
                         f"got {type(values).__name__}") from None
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-dimensional array, "
                         f"got shape {array.shape}")
    if array.size < min_size:
        raise ValueError(f"{name}: expected at least {min_size} values, "
                         f"got {array.size}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: expected finite values, found nan or inf")
    return array


def positive_array(values, name: str, ndim: int | None = None) -> np.ndarray:
    """``values`` as a finite float64 array whose entries are all > 0."""
    array = finite_array(values, name, ndim=ndim)
    if np.any(array <= 0.0):
        raise ValueError(f"{name}: expected entries > 0, found min {array.min()!r}")
    return array


def bounded_samples(samples, bound: float, name: str = "samples",
                    min_size: int = 1) -> np.ndarray:
    """``samples`` as a 1-D float64 array with every value in [0, bound]."""
    array = finite_array(samples, name, ndim=1, min_size=min_size)
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > bound:
        raise ValueError(f"{name}: expected every value in [0, bound] = [0, {bound!r}], "
                         f"found range [{low!r}, {high!r}]; raise `bound` or check "
                         f"the per-sequence values")
    return array
