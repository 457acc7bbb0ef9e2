r"""T8: betting confidence intervals for a bounded mean (Waudby-Smith & Ramdas).

For values ``X_i`` in ``[0, B]`` put ``Z_i = X_i / B`` in ``[0, 1]``. For a
candidate mean ``m`` a gambler who bets the fraction ``λ_t`` of her wealth
that ``Z_t`` exceeds ``m`` has wealth (capital)

.. math:: K^+_t(m) = \prod_{i \le t} \bigl(1 + \lambda^+_i(m)\,(Z_i - m)\bigr),\qquad
          K^-_t(m) = \prod_{i \le t} \bigl(1 - \lambda^-_i(m)\,(Z_i - m)\bigr).

With *predictable* bets (``λ_t`` a function of ``Z_1..Z_{t-1}`` only) that
keep every factor positive, both are nonnegative martingales with
``K_0 = 1`` when ``m`` is the true mean, so by Ville's inequality
``P(sup_t K_t >= 1/α) <= α``. The set of ``m`` the gambler never
multiplies her wealth ``1/α``-fold against is a ``(1 - α)`` confidence set
(Waudby-Smith & Ramdas 2023, Thm 3 and Sec. 4–5). Derivation:
``rdgap.proofs.DERIVATIONS["betting_interval"]`` (:mod:`rdgap.proofs.betting`).

The choices made here, all from the paper:

- **Predictable plug-in bets for a fixed N** (the paper's eq. (26) with
  ``t log(1+t)`` replaced by ``N``, its recommendation for a fixed-N
  interval): ``λ_t = sqrt(2 ln(1/α') / (N σ̂²_{t-1}))`` with the regularised
  running mean ``μ̂_t = (1/2 + Σ_{i≤t} Z_i)/(t + 1)`` and variance
  ``σ̂²_t = (1/4 + Σ_{i≤t} (Z_i - μ̂_i)²)/(t + 1)``, ``σ̂²_0 = 1/4``
  (``α' = α/2`` for each side of a two-sided interval, ``α`` for one side).
- **Truncation** ``λ^+_t(m) = min(λ_t, c/m)``, ``λ^-_t(m) = min(λ_t, c/(1-m))``
  with ``c = 3/4`` (the paper's choice): every factor is ``>= 1 - c > 0``, and ``K^+`` is
  decreasing, ``K^-`` increasing in ``m``, so the confidence set is an
  interval whose ends are found by bisection (vectorised over batches).
- **Hedging**: the two-sided set is ``{m : max(θ K^+_t, (1-θ) K^-_t) < 1/α
  for all t <= N}``, ``θ = 1/2``; ``max <= θ K^+ + (1-θ) K^-``, a martingale
  from 1, so Ville applies to it. Taking every ``t <= N`` (the running
  intersection) is free: Ville bounds the supremum.

The interval is data-adaptive: on low-variance data it is far narrower than
Hoeffding's and, unlike Maurer & Pontil's bound, it has no ``7B ln/(3(N-1))``
range term. It cannot beat the limit of THEORY.md T8 ("the range is the limit,
not the inequality"): with ``B`` in the tens of thousands it stays wide.

Functions take ``samples`` of shape ``(..., N)``: the last axis holds the N
i.i.d. values *in the order they were drawn* (the bets are predictable, so the
interval depends on the order; any order fixed before looking at the values
is valid), and leading axes index independent batches.
"""

from __future__ import annotations

import math

import numpy as np

from . import _arguments as check
from .catalogue import register
from .concentration import _scalar

#: The truncation ``c`` of the bets (every capital factor stays >= 1 - c).
TRUNCATION = 0.75
#: Weight θ of the upward capital process in the hedged two-sided interval.
HEDGE = 0.5
#: Bisection steps: the ends are located to ``B · 2^-ITERATIONS``, rounded outwards.
ITERATIONS = 44

_HYPOTHESES = ["X_1..X_N i.i.d. (one value per sequence), in an order fixed in advance",
               "0 <= X_i <= B", "N >= 1", "0 < delta < 1"]
_REFERENCES = ["waudbysmith2023", "ville1939"]


def plugin_bets(unit_samples, level: float) -> np.ndarray:
    r"""The predictable plug-in bets ``λ_t`` of a fixed-N betting interval.

    .. math:: \lambda_t = \sqrt{\frac{2\ln(1/\alpha')}{N\,\hat\sigma^2_{t-1}}},\quad
              \hat\sigma^2_t = \frac{1/4 + \sum_{i\le t}(Z_i - \hat\mu_i)^2}{t+1},\quad
              \hat\mu_t = \frac{1/2 + \sum_{i\le t} Z_i}{t+1}

    (untruncated; ``σ̂²_0 = 1/4``). ``λ_t`` uses ``Z_1..Z_{t-1}`` only.

    Parameters
    ----------
    unit_samples : ndarray, shape (..., N)
        Values in ``[0, 1]`` along the last axis.
    level : float
        ``α'`` in ``(0, 1)``: the miscoverage that this capital process spends.

    Returns
    -------
    ndarray, shape (..., N)
    """
    z = np.asarray(unit_samples, dtype=np.float64)
    n = z.shape[-1]
    t = np.arange(1, n + 1, dtype=np.float64)
    mean = (0.5 + np.cumsum(z, axis=-1)) / (t + 1.0)
    variance = (0.25 + np.cumsum((z - mean) ** 2, axis=-1)) / (t + 1.0)
    previous = np.concatenate([np.full(z.shape[:-1] + (1,), 0.25), variance[..., :-1]],
                              axis=-1)
    return np.sqrt(2.0 * math.log(1.0 / level) / (n * previous))


def upward_log_capital(unit_samples, bets, m) -> np.ndarray:
    r"""``max_{t <= N} ln K^+_t(m)`` for candidate means ``m`` (shape ``(...)``).

    ``K^+_t(m) = Π_{i<=t} (1 + min(λ_i, c/m)(Z_i - m))``, ``c`` = :data:`TRUNCATION`.
    Large when the data sit above ``m``: it rejects means that are too small.
    """
    z = np.asarray(unit_samples, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)[..., None]
    with np.errstate(divide="ignore"):
        cap = np.where(m > 0, TRUNCATION / m, np.inf)
    factors = 1.0 + np.minimum(bets, cap) * (z - m)
    return np.log(factors).cumsum(axis=-1).max(axis=-1)


def _lower_unit(z: np.ndarray, bets: np.ndarray, threshold: float) -> np.ndarray:
    """Smallest ``m`` not rejected by ``K^+`` (``ln K^+ >= threshold`` rejects), rounded down."""
    rejected_below = np.zeros(z.shape[:-1])   # every m <= this is rejected (or it is 0)
    accepted = np.ones(z.shape[:-1])          # K^+ <= 1 at m = 1: never rejected
    for _ in range(ITERATIONS):
        middle = (rejected_below + accepted) / 2.0
        rejected = upward_log_capital(z, bets, middle) >= threshold
        rejected_below = np.where(rejected, middle, rejected_below)
        accepted = np.where(rejected, accepted, middle)
    return rejected_below


def _unit(samples, bound: float):
    bound = check.positive(bound, "bound")
    values = check.finite_array(samples, "samples", min_size=1)
    if values.ndim == 0:
        raise ValueError(f"samples: expected at least 1 value along the last axis, "
                         f"got a scalar {values!r}")
    check.bounded_samples(values.reshape(-1), bound)
    return values / bound, bound


def _one_sided(samples, delta: float, bound: float, upward: bool):
    """``betting_lower`` (``upward``: K^+ at level delta) or ``betting_upper`` (K^-)."""
    delta = check.probability(delta)
    z, bound = _unit(samples, bound)
    bets, threshold = plugin_bets(z, delta), math.log(1.0 / delta)
    if upward:
        return _scalar(bound * _lower_unit(z, bets, threshold))
    return _scalar(bound * (1.0 - _lower_unit(1.0 - z, bets, threshold)))


@register(
    theory="T8",
    statement="With probability >= 1 - delta, E X lies in {m : max(K+_t(m), K-_t(m)) "
              "< 2/delta for all t <= N}, K+- the capital of predictable plug-in bets "
              "on X/B above/below m/B (hedged, theta = 1/2); an interval.",
    latex=r"\Pr\Big\{\mathbb{E}X \in \big\{m : \max_{t\le N}\max(\tfrac12 K^+_t(m),"
          r"\tfrac12 K^-_t(m)) < 1/\delta\big\}\Big\} \ge 1-\delta",
    hypotheses=_HYPOTHESES,
    references=_REFERENCES,
)
def betting_interval(samples, delta: float, bound: float):
    r"""Two-sided betting confidence interval for the mean of values in [0, B].

    .. math:: \Pr\Big\{\mathbb{E}X \in \big\{m : \max_{t\le N}
              \max\big(\theta K^+_t(m), (1-\theta) K^-_t(m)\big) < 1/\delta\big\}\Big\}
              \ge 1-\delta,\qquad \theta = 1/2

    (module docstring; each process bets at level ``δ/2``).

    Parameters
    ----------
    samples : array_like, shape (..., N)
        i.i.d. values in ``[0, bound]`` along the last axis (in drawing order), ``N >= 1``.
    delta : float
        Total failure probability, ``0 < delta < 1``.
    bound : float
        Range B, ``> 0``.

    Returns
    -------
    (lower, upper) : tuple of float or of ndarray of shape (...)
        Inside ``[0, bound]``; each end rounded outwards by at most
        ``bound · 2^-ITERATIONS``.

    Notes
    -----
    Hypotheses: i.i.d. values in ``[0, B]`` (or, more generally, a
    conditional mean that is the same ``E X`` at every step). THEORY.md T8,
    "Betting confidence intervals". Derivation:
    ``rdgap.proofs.DERIVATIONS["betting_interval"]``.

    References
    ----------
    .. [1] Waudby-Smith & Ramdas (2023), Estimating means of bounded random
       variables by betting, JRSS-B 86(1), Thm 3, eqs. (26)-(27) and Sec. 5
       (hedged capital, predictable plug-in).
    .. [2] Ville (1939), Étude critique de la notion de collectif (Ville's
       inequality for nonnegative supermartingales).

    Examples
    --------
    >>> x = [10.0, 12.0, 11.0, 13.0, 9.0, 12.0, 11.0, 10.0] * 5
    >>> lower, upper = betting_interval(x, 0.05, 64.0)
    >>> round(lower, 2), round(upper, 2)
    (9.05, 17.08)
    """
    delta = check.probability(delta)
    z, bound = _unit(samples, bound)
    threshold = math.log(1.0 / (HEDGE * delta))
    bets = plugin_bets(z, HEDGE * delta)
    lower = _lower_unit(z, bets, threshold)
    upper = 1.0 - _lower_unit(1.0 - z, bets, threshold)   # K^-(m; Z) = K^+(1 - m; 1 - Z)
    return _scalar(bound * lower), _scalar(bound * upper)


@register(
    theory="T8",
    statement="With probability >= 1 - delta, E X < sup{m : K-_t(m) < 1/delta for all "
              "t <= N}, K- the capital of predictable plug-in bets that X/B is below m/B.",
    latex=r"\Pr\Big\{\mathbb{E}X \le \sup\{m : \max_{t\le N} K^-_t(m) < 1/\delta\}\Big\}"
          r" \ge 1-\delta",
    hypotheses=_HYPOTHESES,
    references=_REFERENCES,
)
def betting_upper(samples, delta: float, bound: float):
    r"""One-sided betting upper confidence bound on the mean of values in [0, B].

    .. math:: \Pr\big\{\mathbb{E}X \le \sup\{m : \max_{t\le N} K^-_t(m) < 1/\delta\}\big\}
              \ge 1-\delta

    (only the downward capital process, betting at level ``δ``).

    Parameters
    ----------
    samples : array_like, shape (..., N)
        i.i.d. values in ``[0, bound]`` along the last axis (in drawing order), ``N >= 1``.
    delta : float
        Failure probability, ``0 < delta < 1``.
    bound : float
        Range B, ``> 0``.

    Returns
    -------
    float or ndarray of shape (...)
        At most ``bound``; rounded up by at most ``bound · 2^-ITERATIONS``.

    Notes
    -----
    THEORY.md T8. Derivation: ``rdgap.proofs.DERIVATIONS["betting_upper"]``.

    References
    ----------
    .. [1] Waudby-Smith & Ramdas (2023), JRSS-B 86(1), Thm 3 and Sec. 5.
    .. [2] Ville (1939).

    Examples
    --------
    >>> x = [10.0, 12.0, 11.0, 13.0, 9.0, 12.0, 11.0, 10.0] * 5
    >>> round(betting_upper(x, 0.05, 64.0), 2)
    16.02
    """
    return _one_sided(samples, delta, bound, upward=False)


@register(
    theory="T8",
    statement="With probability >= 1 - delta, E X > inf{m : K+_t(m) < 1/delta for all "
              "t <= N}, K+ the capital of predictable plug-in bets that X/B is above m/B.",
    latex=r"\Pr\Big\{\mathbb{E}X \ge \inf\{m : \max_{t\le N} K^+_t(m) < 1/\delta\}\Big\}"
          r" \ge 1-\delta",
    hypotheses=_HYPOTHESES,
    references=_REFERENCES,
)
def betting_lower(samples, delta: float, bound: float):
    r"""One-sided betting lower confidence bound on the mean of values in [0, B].

    .. math:: \Pr\big\{\mathbb{E}X \ge \inf\{m : \max_{t\le N} K^+_t(m) < 1/\delta\}\big\}
              \ge 1-\delta

    Parameters
    ----------
    samples : array_like, shape (..., N)
        i.i.d. values in ``[0, bound]`` along the last axis (in drawing order), ``N >= 1``.
    delta : float
        Failure probability, ``0 < delta < 1``.
    bound : float
        Range B, ``> 0``.

    Returns
    -------
    float or ndarray of shape (...)
        At least 0; rounded down by at most ``bound · 2^-ITERATIONS``.

    Notes
    -----
    THEORY.md T8. Derivation: ``rdgap.proofs.DERIVATIONS["betting_lower"]``.

    References
    ----------
    .. [1] Waudby-Smith & Ramdas (2023), JRSS-B 86(1), Thm 3 and Sec. 5.
    .. [2] Ville (1939).

    Examples
    --------
    >>> x = [10.0, 12.0, 11.0, 13.0, 9.0, 12.0, 11.0, 10.0] * 5
    >>> round(betting_lower(x, 0.05, 64.0), 2)
    9.26
    """
    return _one_sided(samples, delta, bound, upward=True)
