"""The uniform scalar quantizer: round to the nearest multiple of the step, reconstruct
at the cell centre.

``S = round(x / Δ)`` (ties to even), ``x̂ = Δ·S``: cells ``[(k − ½)Δ, (k + ½)Δ)`` of width
``Δ`` and reconstruction error at most ``Δ/2`` per value (THEORY.md T3/T7: the
``Δ²/12`` of a uniform cell). ``x`` is the value *after* the transform and centring
(``A (Y − μ)``, or ``Y − μ`` for the identity transform): the transform, not the
quantizer, owns means and matrices.

Used by :class:`rdgap.codecs.entropy_models.factorized.FactorizedCodec` (every
position), by position 0 of the context codecs, and by their torch coders. Each
function takes a numpy array or a torch tensor and returns the same kind (the torch
coders quantize on their device): ``np.rint`` and ``torch.round`` both round half to
even, so both give the same symbols for the same float64 values.

>>> import numpy as np
>>> symbols = quantize(np.array([0.4, -1.6, 2.5, 3.5]), np.array([1.0, 1.0, 1.0, 1.0]))
>>> symbols.tolist(), symbols.dtype.name
([0, -2, 2, 4], 'int64')
>>> dequantize(np.array([0, -2, 2]), np.array([0.5, 0.5, 2.0])).tolist()
[0.0, -1.0, 4.0]
"""

from __future__ import annotations

import numpy as np
import torch


def quantize(x, step, limit: int | None = None, origin: str = "its mean"):
    """Integer symbols ``round(x / step)`` (round half to even) of values ``x``.

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor
        Centred (and transformed) values, any shape.
    step : array or tensor broadcasting against ``x``
        The step ``Δ`` of each value (> 0; the codec checks its steps once).
    limit : int, optional
        The largest magnitude the coder writes (:data:`rdgap.codecs.coders.ans.MAX_MAGNITUDE`);
        checked on the rounded floats, before the cast to int64 could wrap around.
    origin : str
        What ``x`` is measured from, for the error message.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        int64 symbols of ``x``'s shape, of ``x``'s kind (and device).

    Raises
    ------
    ValueError
        Naming ``hidden`` when a symbol would exceed ``limit``.
    """
    return to_symbols(x / step, limit, origin)


def to_symbols(scaled, limit: int | None = None, origin: str = "its mean"):
    """Integer symbols ``round(scaled)`` of values already in steps (int64); ``limit``
    and ``origin`` as in :func:`quantize`.

    >>> to_symbols(np.array([-0.5, 0.5, 1.5])).tolist()
    [0, 0, 2]
    >>> to_symbols(np.array([5e9]), limit=2 ** 32 - 1)
    Traceback (most recent call last):
    ...
    ValueError: hidden: a value is more than 2^32 steps from its mean; expected hidden states like those the codec was fitted on
    """
    if isinstance(scaled, torch.Tensor):
        rounded = torch.round(scaled)
        check_range(rounded, limit, origin)
        return rounded.to(torch.int64)
    rounded = np.rint(scaled)
    check_range(rounded, limit, origin)
    return rounded.astype(np.int64)


def check_range(symbols, limit: int | None, origin: str = "its mean") -> None:
    """Raise a ValueError naming ``hidden`` when an integer-valued float symbol (numpy or
    torch) is more than ``limit`` steps from ``origin``, or not finite; ``None``: no check."""
    if limit is None:
        return
    if isinstance(symbols, torch.Tensor):
        outside = bool(symbols.numel()) and not bool(symbols.abs().max() <= limit)
    else:
        outside = not np.abs(symbols).max(initial=0) <= limit
    if outside:
        power = (limit + 1).bit_length() - 1  # the coder's limits are 2^k − 1
        bound = f"2^{power}" if limit + 1 == 1 << power else f"{limit}"
        raise ValueError(f"hidden: a value is more than {bound} steps from {origin}; expected "
                         "hidden states like those the codec was fitted on")


def dequantize(symbols, step):
    """Reconstruction at the cell centre, ``Δ·S`` (float64 for numpy steps; the steps'
    dtype for a tensor).

    Parameters
    ----------
    symbols : numpy.ndarray or torch.Tensor
        Integer symbols.
    step : array or tensor broadcasting against ``symbols``
        The step of each symbol.
    """
    return step * symbols
