r"""Bitwise comparison and description of codec outputs (tensors, arrays, lists).

:func:`same` is the equality every property of :mod:`rdgap.testing.suite` uses:
shape, dtype and bytes (a ``bfloat16`` tensor compared through its bits), so
``-0.0`` differs from ``0.0`` and a NaN equals the same NaN.

Examples
--------
>>> import numpy as np
>>> print(same(np.zeros(2), np.zeros(2)), same(np.zeros(2), -np.zeros(2)))
True False
>>> print(difference(np.arange(3), np.array([0, 1, 5])))
1 of 3 elements differ, first at index (2,): np.int64(2) instead of np.int64(5)
"""

from __future__ import annotations

import numpy as np


def array(value):
    """A numpy view of a tensor/array/list for bitwise comparison."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        import torch
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            value = value.view(torch.int16)
        return value.numpy()
    return np.asarray(value)


def same(a, b) -> bool:
    try:
        x, y = array(a), array(b)
    except (TypeError, ValueError):
        return a == b
    if x.dtype == object or y.dtype == object:
        return bool(np.array_equal(x, y))
    return x.shape == y.shape and x.dtype == y.dtype and \
        np.ascontiguousarray(x).tobytes() == np.ascontiguousarray(y).tobytes()


def difference(a, b) -> str:
    """Where two outputs differ, with the numbers."""
    try:
        x, y = array(a), array(b)
    except (TypeError, ValueError):
        return "they differ"
    if x.shape != y.shape:
        return f"shape {x.shape} instead of {y.shape}"
    if x.dtype != y.dtype:
        return f"dtype {x.dtype} instead of {y.dtype}"
    differ = np.ascontiguousarray(x).view(np.uint8).reshape(x.size, -1) != \
        np.ascontiguousarray(y).view(np.uint8).reshape(y.size, -1) if x.size else np.zeros((0, 1))
    rows = np.flatnonzero(differ.any(axis=1))
    if not rows.size:
        return "they differ"
    where = np.unravel_index(rows[0], x.shape)
    return (f"{rows.size} of {x.size} elements differ, first at index "
            f"{tuple(int(i) for i in where)}: {x[where]!r} instead of {y[where]!r}")


def describe(x, limit: int = 48) -> str:
    try:
        a = array(x)
    except (TypeError, ValueError):
        return repr(x)[:400]
    head = f"{type(x).__name__} shape {a.shape} dtype {getattr(x, 'dtype', a.dtype)}"
    if a.size and a.dtype != object:
        head += f", min {a.min():.6g}, max {a.max():.6g}"
    if a.size <= limit:
        return head + "\n    " + np.array2string(a, threshold=limit, precision=6).replace(
            "\n", "\n    ")
    return head + "\n    first values " + np.array2string(a.ravel()[:16], precision=6)


def copy(x):
    """An independent copy of a decoded result (``clone`` of a tensor, a numpy copy, else
    ``copy.deepcopy``): what the properties keep to compare a later result against."""
    if hasattr(x, "clone") and hasattr(x, "detach"):
        return x.detach().clone()
    if isinstance(x, np.ndarray):
        return x.copy()
    import copy as copy_module
    return copy_module.deepcopy(x)
