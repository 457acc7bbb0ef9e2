"""T8: PAC bounds for estimating a rate from N i.i.d. sequences.

Length (≈500 lines): the whole T8 family (Hoeffding, Bernstein, empirical Bernstein,
betting) sharing one set of argument checks, so every member validates its inputs the
same way.

Per-sequence code lengths ``l_i`` (bits) lie in ``[0, B]``, and the i.i.d.
unit is the sequence (THEORY.md, "Setting"): concentration counts sequences,
never tokens. All radii are in the units of ``bound`` (bits when ``bound`` is
in bits); ``ln`` is the natural logarithm throughout, as in the theorems.

Functions taking ``samples`` accept an array of shape ``(..., N)``: the last
axis holds the N i.i.d. values, and leading axes index independent batches
(one bound per batch), which is how the coverage tests vectorize their trials.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _arguments as check
from .catalogue import register

_SIDES = "two_sided"


def _sides(two_sided: bool) -> int:
    if not isinstance(two_sided, bool):
        raise ValueError(f"{_SIDES}: expected True or False, got {two_sided!r}")
    return 2 if two_sided else 1


def _scalar(value):
    """A 0-d result as a Python float, anything else unchanged."""
    return float(value) if np.ndim(value) == 0 else value


@register(
    theory="T8",
    statement="P(|Rhat - R| >= eps) <= 2 exp(-2 N eps^2 / B^2), so with probability "
              ">= 1 - delta: |Rhat - R| <= B sqrt(ln(2/delta) / (2N)); one-sided: "
              "R <= Rhat + B sqrt(ln(1/delta) / (2N)).",
    latex=r"|\hat R - R| \le B\sqrt{\frac{\ln(2/\delta)}{2N}}"
          r"\ \text{w.p.}\ \ge 1-\delta",
    hypotheses=["l_1..l_N i.i.d. (one value per sequence)", "0 <= l_i <= B",
                "0 < delta < 1", "N >= 1"],
    references=["hoeffding1963"],
)
def hoeffding_radius(n: int, delta: float, bound: float, two_sided: bool = True) -> float:
    r"""Hoeffding's confidence radius for the mean of N values in [0, B].

    .. math:: \varepsilon = B\sqrt{\frac{\ln(k/\delta)}{2N}},\qquad
              k = 2\ \text{(two-sided)},\ k = 1\ \text{(one-sided)}.

    With probability at least ``1 - delta``, ``|Rhat - R| <= eps`` (two-sided),
    or ``R <= Rhat + eps`` (one-sided, likewise ``R >= Rhat - eps``).

    Parameters
    ----------
    n : int
        Number N of i.i.d. sequences, ``>= 1``.
    delta : float
        Failure probability, ``0 < delta < 1``.
    bound : float
        Range B of each per-sequence value, ``> 0``.
    two_sided : bool
        ``True`` (default) for ``|Rhat - R|``, ``False`` for one side.

    Returns
    -------
    float
        The radius, in the units of ``bound``.

    Notes
    -----
    Hypotheses: ``l_1..l_N`` i.i.d. with values in ``[0, B]``. THEORY.md T8,
    first item. Derivation: ``rdgap.proofs.DERIVATIONS["hoeffding_radius"]``.

    References
    ----------
    .. [1] Hoeffding (1963), Probability inequalities for sums of bounded
       random variables, JASA 58, Thm 2.

    Examples
    --------
    >>> round(hoeffding_radius(1000, 0.05, 64.0), 4)
    2.7486
    >>> round(hoeffding_radius(1000, 0.05, 64.0, two_sided=False), 4)
    2.4769
    """
    n = check.count(n, "n")
    delta = check.probability(delta)
    bound = check.positive(bound, "bound")
    return bound * math.sqrt(math.log(_sides(two_sided) / delta) / (2.0 * n))


@register(
    theory="T8",
    statement="N = ceil(B^2 ln(k/delta) / (2 eps^2)) is the smallest N whose Hoeffding "
              "radius is <= eps (k = 2 two-sided, 1 one-sided).",
    latex=r"N = \left\lceil \frac{B^2 \ln(k/\delta)}{2\varepsilon^2} \right\rceil",
    hypotheses=["l_1..l_N i.i.d.", "0 <= l_i <= B", "0 < delta < 1", "eps > 0"],
    references=["hoeffding1963"],
)
def sample_size(epsilon: float, delta: float, bound: float, two_sided: bool = True) -> int:
    r"""The number of sequences that Hoeffding needs to reach radius epsilon.

    .. math:: N = \left\lceil \frac{B^2 \ln(k/\delta)}{2\varepsilon^2} \right\rceil

    the smallest integer N with ``hoeffding_radius(N, delta, B) <= epsilon``.

    Parameters
    ----------
    epsilon : float
        Target radius, ``> 0``, in the units of ``bound``.
    delta : float
        Failure probability, ``0 < delta < 1``.
    bound : float
        Range B of each per-sequence value, ``> 0``.
    two_sided : bool
        Whether the radius is two-sided (default) or one-sided.

    Returns
    -------
    int
        N, at least 1.

    Notes
    -----
    Hypotheses as :func:`hoeffding_radius`. THEORY.md T8, "Inversions".
    Derivation: ``rdgap.proofs.DERIVATIONS["sample_size"]``.

    References
    ----------
    .. [1] Hoeffding (1963), JASA 58, Thm 2.

    Examples
    --------
    >>> sample_size(0.5, 0.05, 64.0)
    30220
    >>> hoeffding_radius(30220, 0.05, 64.0) <= 0.5 < hoeffding_radius(30219, 0.05, 64.0)
    True
    """
    epsilon = check.positive(epsilon, "epsilon")
    delta = check.probability(delta)
    bound = check.positive(bound, "bound")
    sides = _sides(two_sided)
    n = max(1, math.ceil(bound ** 2 * math.log(sides / delta) / (2.0 * epsilon ** 2)))
    # Guard the ceiling against one ulp of rounding on either side.
    radius = lambda m: bound * math.sqrt(math.log(sides / delta) / (2.0 * m))  # noqa: E731
    while radius(n) > epsilon:
        n += 1
    while n > 1 and radius(n - 1) <= epsilon:
        n -= 1
    return n


@register(
    theory="T8",
    statement="N sequences reach radius eps with confidence 1 - delta, "
              "delta = min(1, k exp(-2 N eps^2 / B^2)) (k = 2 two-sided, 1 one-sided).",
    latex=r"\delta = \min\{1,\ k\, e^{-2N\varepsilon^2/B^2}\}",
    hypotheses=["l_1..l_N i.i.d.", "0 <= l_i <= B", "N >= 1", "eps > 0"],
    references=["hoeffding1963"],
)
def hoeffding_confidence(n: int, epsilon: float, bound: float,
                         two_sided: bool = True) -> float:
    r"""The failure probability delta that N sequences reach at radius epsilon.

    .. math:: \delta = \min\{1,\ k\,\exp(-2N\varepsilon^2/B^2)\}

    (the tail bound of Hoeffding's inequality; capped at 1 because it is a
    probability, and a value of 1 means the radius is vacuous).

    Parameters
    ----------
    n : int
        Number N of i.i.d. sequences, ``>= 1``.
    epsilon : float
        Radius, ``> 0``.
    bound : float
        Range B, ``> 0``.
    two_sided : bool
        Whether the event is ``|Rhat - R| < eps`` (default) or one side.

    Returns
    -------
    float
        delta in ``(0, 1]``.

    Notes
    -----
    THEORY.md T8, "Inversions". Derivation:
    ``rdgap.proofs.DERIVATIONS["hoeffding_confidence"]``.

    References
    ----------
    .. [1] Hoeffding (1963), JASA 58, Thm 2.

    Examples
    --------
    >>> round(hoeffding_confidence(30220, 0.5, 64.0), 4)
    0.05
    >>> hoeffding_confidence(10, 0.5, 64.0)
    1.0
    """
    n = check.count(n, "n")
    epsilon = check.positive(epsilon, "epsilon")
    bound = check.positive(bound, "bound")
    return min(1.0, _sides(two_sided) * math.exp(-2.0 * n * epsilon ** 2 / bound ** 2))


def _bernstein_terms(samples, delta: float, bound: float):
    """Mean, and the Maurer-Pontil deviation, along the last axis of samples."""
    delta = check.probability(delta)
    bound = check.positive(bound, "bound")
    values = check.finite_array(samples, "samples", min_size=2)
    if values.ndim == 0 or values.shape[-1] < 2:
        raise ValueError(f"samples: expected at least 2 values along the last axis "
                         f"(the sample variance needs N >= 2), got shape {values.shape}")
    check.bounded_samples(values.reshape(-1), bound)
    n = values.shape[-1]
    log_term = math.log(2.0 / delta)
    variance = values.var(axis=-1, ddof=1)
    deviation = (np.sqrt(2.0 * variance * log_term / n)
                 + 7.0 * bound * log_term / (3.0 * (n - 1)))
    return values.mean(axis=-1), deviation


_EB_HYPOTHESES = ["X_1..X_N i.i.d. (one value per sequence)", "0 <= X_i <= B",
                  "N >= 2", "0 < delta < 1",
                  "Vhat = unbiased sample variance (ddof = 1)"]


@register(
    theory="T8",
    statement="With probability >= 1 - delta: E X <= mean + sqrt(2 Vhat ln(2/delta) / N) "
              "+ 7 B ln(2/delta) / (3 (N - 1)), Vhat the unbiased sample variance.",
    latex=r"\mathbb{E}X \le \bar X + \sqrt{\frac{2\hat V\ln(2/\delta)}{N}}"
          r" + \frac{7B\ln(2/\delta)}{3(N-1)}",
    hypotheses=_EB_HYPOTHESES,
    references=["maurer2009"],
)
def empirical_bernstein_upper(samples, delta: float, bound: float):
    r"""One-sided empirical Bernstein upper bound on the mean (Maurer & Pontil).

    .. math:: \mathbb{E}X \le \bar X_N + \sqrt{\frac{2\hat V_N\ln(2/\delta)}{N}}
              + \frac{7B\ln(2/\delta)}{3(N-1)}
              \quad\text{with probability}\ \ge 1-\delta,

    where :math:`\hat V_N = \frac{1}{N-1}\sum_i (X_i-\bar X_N)^2` is the
    unbiased sample variance. This is exactly Maurer & Pontil (2009), Thm 4,
    stated for values in [0, 1], rescaled to [0, B] (apply it to X/B and
    multiply by B). The ``ln(2/delta)`` of THEORY.md is the theorem's: a
    one-sided bound at confidence ``1 - delta`` that spends delta/2 on the
    concentration of the sample standard deviation and delta/2 on Bernstein's
    inequality.

    Parameters
    ----------
    samples : array_like, shape (..., N)
        i.i.d. values in ``[0, bound]`` along the last axis, ``N >= 2``.
    delta : float
        Failure probability, ``0 < delta < 1``.
    bound : float
        Range B, ``> 0``.

    Returns
    -------
    float or ndarray of shape (...)
        The upper confidence bound (not clipped to B).

    Notes
    -----
    THEORY.md T8, second item. Derivation:
    ``rdgap.proofs.DERIVATIONS["empirical_bernstein_upper"]``.

    References
    ----------
    .. [1] Maurer & Pontil (2009), Empirical Bernstein bounds and sample
       variance penalization, COLT, Theorem 4.

    Examples
    --------
    >>> x = [10.0, 12.0, 11.0, 13.0, 9.0, 12.0, 11.0, 10.0]
    >>> round(empirical_bernstein_upper(x, 0.05, 64.0), 3)
    90.953
    """
    mean, deviation = _bernstein_terms(samples, delta, bound)
    return _scalar(mean + deviation)


@register(
    theory="T8",
    statement="With probability >= 1 - delta: E X >= mean - sqrt(2 Vhat ln(2/delta) / N) "
              "- 7 B ln(2/delta) / (3 (N - 1)) (Maurer-Pontil Thm 4 applied to B - X).",
    latex=r"\mathbb{E}X \ge \bar X - \sqrt{\frac{2\hat V\ln(2/\delta)}{N}}"
          r" - \frac{7B\ln(2/\delta)}{3(N-1)}",
    hypotheses=_EB_HYPOTHESES,
    references=["maurer2009"],
)
def empirical_bernstein_lower(samples, delta: float, bound: float):
    r"""One-sided empirical Bernstein lower bound on the mean.

    .. math:: \mathbb{E}X \ge \bar X_N - \sqrt{\frac{2\hat V_N\ln(2/\delta)}{N}}
              - \frac{7B\ln(2/\delta)}{3(N-1)}
              \quad\text{with probability}\ \ge 1-\delta.

    Maurer & Pontil (2009), Thm 4 applied to ``B - X``, which lies in
    ``[0, B]``, has mean ``B - E X`` and the same sample variance.

    Parameters
    ----------
    samples : array_like, shape (..., N)
        i.i.d. values in ``[0, bound]`` along the last axis, ``N >= 2``.
    delta : float
        Failure probability, ``0 < delta < 1``.
    bound : float
        Range B, ``> 0``.

    Returns
    -------
    float or ndarray of shape (...)
        The lower confidence bound (not clipped to 0).

    Notes
    -----
    THEORY.md T8. Derivation:
    ``rdgap.proofs.DERIVATIONS["empirical_bernstein_lower"]``.

    References
    ----------
    .. [1] Maurer & Pontil (2009), COLT, Theorem 4.

    Examples
    --------
    >>> x = [10.0, 12.0, 11.0, 13.0, 9.0, 12.0, 11.0, 10.0]
    >>> round(empirical_bernstein_lower(x, 0.05, 64.0), 3)
    -68.953
    """
    mean, deviation = _bernstein_terms(samples, delta, bound)
    return _scalar(mean - deviation)


@register(
    theory="T8",
    statement="With probability >= 1 - delta, E X lies in [lower, upper], the empirical "
              "Bernstein bounds each taken at delta/2.",
    latex=r"\mathbb{E}X \in \bar X \pm \Big(\sqrt{\frac{2\hat V\ln(4/\delta)}{N}}"
          r" + \frac{7B\ln(4/\delta)}{3(N-1)}\Big)",
    hypotheses=_EB_HYPOTHESES,
    references=["maurer2009"],
)
def empirical_bernstein_interval(samples, delta: float, bound: float):
    r"""Two-sided empirical Bernstein interval: delta/2 on each side.

    .. math:: \mathbb{E}X \in \bar X_N \pm \Big(\sqrt{\frac{2\hat V_N\ln(4/\delta)}{N}}
              + \frac{7B\ln(4/\delta)}{3(N-1)}\Big)
              \quad\text{with probability}\ \ge 1-\delta

    (a union bound over :func:`empirical_bernstein_upper` and
    :func:`empirical_bernstein_lower` at ``delta / 2`` each).

    Parameters
    ----------
    samples : array_like, shape (..., N)
        i.i.d. values in ``[0, bound]`` along the last axis, ``N >= 2``.
    delta : float
        Total failure probability, ``0 < delta < 1``.
    bound : float
        Range B, ``> 0``.

    Returns
    -------
    (lower, upper) : tuple of float or of ndarray of shape (...)

    Notes
    -----
    THEORY.md T8, "Two-sided: spend delta/2 on each side".

    References
    ----------
    .. [1] Maurer & Pontil (2009), COLT, Theorem 4.

    Examples
    --------
    >>> x = [10.0, 12.0, 11.0, 13.0, 9.0, 12.0, 11.0, 10.0]
    >>> lower, upper = empirical_bernstein_interval(x, 0.05, 64.0)
    >>> round(lower, 2), round(upper, 2)
    (-83.85, 105.85)
    """
    mean, deviation = _bernstein_terms(samples, check.probability(delta) / 2.0, bound)
    return _scalar(mean - deviation), _scalar(mean + deviation)


@dataclass(frozen=True)
class RateInterval:
    """A confidence interval for an expected per-sequence rate.

    Attributes
    ----------
    estimate : float
        The sample mean Rhat.
    lower, upper : float
        Bounds that hold together with probability ``>= 1 - delta``; clipped
        to ``[0, bound]``, which keeps them valid since the truth lies there.
    method : str
        ``"hoeffding"`` or ``"bernstein"``.
    delta : float
        Total failure probability.
    n : int
        Number of sequences.
    """

    estimate: float
    lower: float
    upper: float
    method: str
    delta: float
    n: int

    @property
    def width(self) -> float:
        """``upper - lower``."""
        return self.upper - self.lower


_METHODS = ("bernstein", "hoeffding")


@register(
    theory="T8",
    statement="A two-sided (1 - delta) interval for the expected per-sequence rate: "
              "Hoeffding's, or the empirical Bernstein interval at delta/2 per side, "
              "clipped to [0, B].",
    latex=r"\Pr\{R \in [\mathrm{lower}, \mathrm{upper}]\} \ge 1-\delta",
    hypotheses=["per-sequence rates i.i.d. (one value per sequence)",
                "0 <= l_i <= B", "0 < delta < 1", "N >= 2"],
    references=["hoeffding1963", "maurer2009"],
)
def rate_interval(per_sequence_bits, delta: float, bound: float,
                  method: str = "bernstein") -> RateInterval:
    r"""A (1 - delta) confidence interval for the expected rate of a codec.

    ``method="hoeffding"``: :math:`\hat R \pm B\sqrt{\ln(2/\delta)/(2N)}`;
    ``method="bernstein"``: :func:`empirical_bernstein_interval`. Both ends
    are clipped to ``[0, B]``.

    Parameters
    ----------
    per_sequence_bits : array_like, shape (N,)
        The code length of each sequence (or its bits per token, with
        ``bound`` in the same unit), i.i.d. across sequences, in ``[0, bound]``.
    delta : float
        Total failure probability, ``0 < delta < 1``.
    bound : float
        Range B, ``> 0``.
    method : {"bernstein", "hoeffding"}
        The inequality to use.

    Returns
    -------
    RateInterval

    Notes
    -----
    THEORY.md T8. The gap estimate combines this with an entropy interval.
    Given per-sequence *bits per token*, the interval is for the expected
    per-sequence bits per token — the mean over sequences of each one's
    bits/token — which is not total bits / total tokens when sequences differ
    in length (the latter weights long sequences more); say which one a
    reported figure is.

    References
    ----------
    .. [1] Hoeffding (1963), JASA 58. .. [2] Maurer & Pontil (2009), COLT.

    Examples
    --------
    >>> x = [10.0, 12.0, 11.0, 13.0, 9.0, 12.0, 11.0, 10.0]
    >>> r = rate_interval(x, 0.05, 64.0, method="hoeffding")
    >>> r.method, round(r.estimate, 2), round(r.lower, 2), round(r.upper, 2)
    ('hoeffding', 11.0, 0.0, 41.73)
    """
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {_METHODS}, got {method!r}")
    delta = check.probability(delta)
    bound = check.positive(bound, "bound")
    values = check.bounded_samples(per_sequence_bits, bound, name="per_sequence_bits",
                                   min_size=2)
    estimate = float(values.mean())
    if method == "hoeffding":
        radius = hoeffding_radius(values.size, delta, bound)
        lower, upper = estimate - radius, estimate + radius
    else:
        lower, upper = empirical_bernstein_interval(values, delta, bound)
    return RateInterval(estimate=estimate, lower=max(0.0, lower), upper=min(bound, upper),
                        method=method, delta=delta, n=int(values.size))
