r"""T6: rate–distortion references under MSE: reverse water-filling and the Shannon lower bound.

Distortion ``D`` is the *total* expected squared error ``E||Y - Yhat||^2`` over
the ``n`` dimensions of one vector; rates are bits per vector.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import _arguments as check
from .catalogue import register


class GaussianRateDistortion(NamedTuple):
    """Reverse water-filling solution (bits per vector)."""

    rate: float                          # R(D) = sum_i 1/2 log2(lambda_i / D_i)
    theta: float                         # water level
    component_distortions: np.ndarray    # D_i = min(theta, lambda_i), summing to D
    component_rates: np.ndarray          # 1/2 log2(lambda_i / D_i) (0 where D_i = lambda_i)


@register(
    theory="T6",
    statement="Gaussian, covariance eigenvalues lambda_i: R(D) = sum_i 1/2 log2(lambda_i / D_i), "
              "D_i = min(theta, lambda_i), sum_i D_i = D (reverse water-filling)",
    latex=r"R(D) = \sum_i \tfrac12\log_2\frac{\lambda_i}{D_i},\ D_i = \min(\theta,\lambda_i),"
          r"\ \sum_i D_i = D",
    hypotheses=["Y Gaussian with covariance eigenvalues lambda_i >= 0",
                "distortion = total squared error E||Y - Yhat||^2 > 0"],
    references=["cover2006"],
)
def gaussian_rate_distortion(eigenvalues, distortion: float) -> GaussianRateDistortion:
    r"""Rate–distortion function of a Gaussian vector under total MSE, by reverse water-filling.

    .. math:: R(D) = \sum_i \tfrac12\log_2\frac{\lambda_i}{D_i},\quad
              D_i = \min(\theta, \lambda_i),\quad \sum_i D_i = D

    ``theta`` is found exactly: ``f(theta) = sum_i min(theta, lambda_i)`` is
    piecewise linear and increasing, so with the eigenvalues sorted,
    ``theta = (D - sum_{i<k} lambda_(i)) / (n - k)`` on the piece where it
    lands. For ``D >= sum_i lambda_i``, ``R = 0`` and ``theta = max lambda``.

    Parameters
    ----------
    eigenvalues : array_like, shape (n,)
        Covariance eigenvalues ``>= 0`` (e.g. ``numpy.linalg.eigvalsh(cov)``).
    distortion : float
        Total MSE ``D > 0``.

    Returns
    -------
    GaussianRateDistortion
        ``(rate, theta, component_distortions, component_rates)``.

    References
    ----------
    Cover & Thomas (2006), Thm 10.3.3.

    Examples
    --------
    >>> result = gaussian_rate_distortion([4.0, 1.0, 0.25], 1.0)
    >>> print(round(result.rate, 6), round(result.theta, 6))
    2.415037 0.375
    """
    lam = check.finite_array(eigenvalues, "eigenvalues", ndim=1)
    if np.any(lam < 0.0):
        raise ValueError(f"eigenvalues: expected values >= 0, found min {lam.min()!r}")
    d = check.positive(distortion, "distortion")
    ordered = np.sort(lam)
    n = ordered.size
    below = np.concatenate(([0.0], np.cumsum(ordered)))      # sum of the k smallest
    # f(lambda_(k)) = below[k] + (n - k) lambda_(k): theta lies past every lambda_(k) with f <= D
    level = below[:n] + (n - np.arange(n)) * ordered
    k = int(np.searchsorted(level, d, side="right"))
    theta = float(ordered[-1]) if k == n else float((d - below[k]) / (n - k))
    parts = np.minimum(theta, lam)
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = np.where(lam > parts, 0.5 * np.log2(lam / np.where(parts > 0, parts, 1.0)), 0.0)
    return GaussianRateDistortion(float(rates.sum()), theta, parts, rates)


@register(
    theory="T6",
    statement="any source with density on R^n, total MSE D: R(D) >= h(Y) - (n/2) log2(2 pi e D/n)",
    latex=r"R(D) \ge h(Y) - \tfrac n2\log_2\frac{2\pi e D}{n}",
    hypotheses=["Y has a density with finite differential entropy h(Y) (bits)",
                "distortion = total squared error E||Y - Yhat||^2 > 0"],
    references=["cover2006"],
)
def shannon_lower_bound(h: float, n: int, distortion: float) -> float:
    r"""Shannon lower bound on the MSE rate–distortion function, bits per vector.

    .. math:: R(D) \ge h(Y) - \frac n2\log_2\frac{2\pi e D}{n}

    since ``I(Y; Yhat) >= h(Y) - h(Y - Yhat)`` and, at ``E||Y - Yhat||^2 <= D``,
    ``h(Y - Yhat)`` is largest for ``N(0, (D/n) I)``. The value may be
    negative (then ``R(D) >= 0`` is the better bound). Tight for a Gaussian
    when ``D <= n lambda_min``.

    Parameters
    ----------
    h : float
        Differential entropy ``h(Y)`` in bits.
    n : int
        Dimension ``>= 1``.
    distortion : float
        Total MSE ``D > 0``.

    Returns
    -------
    float

    References
    ----------
    Cover & Thomas (2006), Problem 10.8 and Thm 10.3.3; Shannon (1959).

    Examples
    --------
    >>> print(round(shannon_lower_bound(0.5 * math.log2(2 * math.pi * math.e), 1, 0.25), 6))
    1.0
    """
    h = check.finite(h, "h")
    n = check.count(n, "n")
    d = check.positive(distortion, "distortion")
    return h - 0.5 * n * math.log2(2.0 * math.pi * math.e * d / n)
