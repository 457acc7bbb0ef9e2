"""Argument checks for pmfs, covariance matrices and symbol arrays.

Complements :mod:`rdgap.bounds._arguments` (scalars and plain arrays) with the
structured inputs of T1, T3 and T4; every error names the argument.
"""

from __future__ import annotations

import numpy as np

from . import _arguments as check

PMF_TOLERANCE = 1e-9


def pmf(values, name: str, axis: int = -1) -> np.ndarray:
    """``values`` as non-negative float64 pmfs summing to one along ``axis``."""
    array = check.finite_array(values, name)
    if np.any(array < 0.0):
        raise ValueError(f"{name}: expected probabilities >= 0, found min {array.min()!r}")
    totals = array.sum(axis=axis)
    worst = float(np.max(np.abs(totals - 1.0)))
    if worst > PMF_TOLERANCE:
        raise ValueError(f"{name}: expected a pmf summing to 1 (within "
                         f"{PMF_TOLERANCE:g}), off by {worst:.3g}")
    return array


def psd_matrix(values, name: str, size: int | None = None) -> np.ndarray:
    """``values`` as a symmetric positive semi-definite float64 matrix."""
    array = check.finite_array(values, name, ndim=2)
    if array.shape[0] != array.shape[1]:
        raise ValueError(f"{name}: expected a square matrix, got shape {array.shape}")
    if size is not None and array.shape[0] != size:
        raise ValueError(f"{name}: expected shape ({size}, {size}), got {array.shape}")
    scale = max(float(np.max(np.abs(array))), 1e-300)
    if np.max(np.abs(array - array.T)) > 1e-10 * scale:
        raise ValueError(f"{name}: expected a symmetric matrix")
    smallest = float(np.linalg.eigvalsh(array)[0])
    if smallest < -1e-10 * scale:
        raise ValueError(f"{name}: expected a positive semi-definite matrix, "
                         f"smallest eigenvalue {smallest:.3g}")
    return (array + array.T) / 2.0


def steps_for(values, name: str, size: int) -> np.ndarray:
    """Quantization steps: a positive scalar broadcast to ``size``, or ``size`` of them."""
    array = check.positive_array(np.atleast_1d(values), name, ndim=1)
    if array.size == 1:
        return np.full(size, float(array[0]))
    if array.size != size:
        raise ValueError(f"{name}: expected 1 or {size} steps, got {array.size}")
    return array


def integer_array(values, name: str, ndim: int) -> np.ndarray:
    """``values`` as an int64 array with ``ndim`` dimensions and at least one entry."""
    array = np.asarray(values)
    if array.dtype.kind not in "iub":
        if array.dtype.kind != "f" or not np.all(np.isfinite(array)) \
                or np.any(array != np.round(array)):
            raise ValueError(f"{name}: expected integer symbols, got dtype {array.dtype}")
    if array.ndim != ndim or array.size == 0:
        raise ValueError(f"{name}: expected a non-empty {ndim}-dimensional array, "
                         f"got shape {array.shape}")
    return array.astype(np.int64)
