"""Probability tables of discretised densities over a symbol alphabet with an escape.

A channel whose symbols follow a density ``p`` with scale ``σ`` (in units of
the quantization step) gets the table

``q(k) = ∫_{k-½}^{k+½} p(y) dy``  for ``k = -K .. K``,  and
``q(escape) = P(|S| > K)``,

floored at :data:`PROBABILITY_FLOOR` and renormalised, where ``K`` covers
:data:`TAIL_SIGMAS` scales (at least one symbol each side, at most
:data:`MAX_HALF_WIDTH`). Symbols outside ``[-K, K]`` are coded as the escape
followed by their exact value, so no symbol is ever clipped.

The tables depend only on the parameters the codec stores, so the encoder and
decoder build identical tables from identical parameters; the parameter hash in
each stream makes sure they do (:mod:`rdgap.codecs.coders.container`).
"""

from __future__ import annotations

import numpy as np
from scipy import special

PROBABILITY_FLOOR = 2.0 ** -20
TAIL_SIGMAS = 10.0
MAX_HALF_WIDTH = 4096
FAMILIES = ("gaussian", "laplace")


def half_width(scale: np.ndarray) -> np.ndarray:
    """The alphabet half-width ``K`` for each scale (in steps)."""
    return np.clip(np.ceil(TAIL_SIGMAS * np.asarray(scale, float)), 1, MAX_HALF_WIDTH).astype(int)


def _cdf(family: str, x: np.ndarray) -> np.ndarray:
    if family == "gaussian":
        return special.ndtr(x)
    return np.where(x < 0, 0.5 * np.exp(np.minimum(x, 0)), 1 - 0.5 * np.exp(-np.maximum(x, 0)))


def _sf(family: str, x: np.ndarray) -> np.ndarray:
    return _cdf(family, -x)


def discretised_table(family: str, mean: float, scale: float, width: int,
                      rounding: float = 0.5) -> np.ndarray:
    """Table of ``2·width + 2`` probabilities: symbols ``-width..width`` then escape.

    With ``rounding`` ``ρ < ½`` the quantizer has a dead zone,
    ``S = sign(x)·⌊|x| + ρ⌋``: symbol ``k ≥ 1`` covers ``[k − ρ, k + 1 − ρ)``,
    ``0`` covers ``(ρ − 1, 1 − ρ)``, negative symbols mirror the positive ones
    (``ρ = ½`` is plain rounding and the cells ``[k − ½, k + ½)``).

    Parameters
    ----------
    family : {"gaussian", "laplace"}
        Density (Laplace with ``scale`` its standard deviation / √2, i.e. its b).
    mean, scale : float
        Location and scale, in quantization steps (``scale > 0``).
    width : int
        Half-width ``K`` of the alphabet.
    rounding : float
        The quantizer's rounding offset ``ρ`` in ``(0, ½]``.

    Examples
    --------
    >>> table = discretised_table("gaussian", 0.0, 1.0, 10)
    >>> print(table.shape, round(float(table.sum()), 12), round(float(table[10]), 4))
    (22,) 1.0 0.3829
    """
    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
    if not scale > 0:
        raise ValueError(f"scale: expected > 0, got {scale}")
    if not 0 < rounding <= 0.5:
        raise ValueError(f"rounding: expected an offset in (0, 0.5], got {rounding}")
    k = np.arange(-width, width + 2)  # edge k lies between symbols k − 1 and k
    edges = (np.where(k >= 1, k - rounding, k - 1 + rounding) - mean) / scale
    # Upper half by survival differences, lower half by CDF differences: no cancellation.
    lower = np.diff(_cdf(family, edges))
    upper = -np.diff(_sf(family, edges))
    inner = np.where(edges[:-1] + edges[1:] > 0, upper, lower)
    escape = _cdf(family, edges[0]) + _sf(family, edges[-1])
    table = np.maximum(np.append(inner, escape), PROBABILITY_FLOOR)
    return table / table.sum()
