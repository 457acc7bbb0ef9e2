r"""T5: exact entropy of a uniformly quantized scalar, and its high-resolution limit.

Length (≈410 lines): one theorem (T5) for three laws — the exact entropy, its high-
resolution limit and their gap — each with the derivation in its docstring.

A scalar ``Y = loc + scale * X`` (``X`` standard Gaussian, Laplace or logistic)
is quantized to ``S = round(Y / step)``: symbol ``k`` is the cell
``[(k - 1/2) step, (k + 1/2) step)``. The exact entropy

.. math:: H(S) = -\sum_k P_k \log_2 P_k,\qquad
          P_k = F\Big(\tfrac{(k+\frac12)\Delta - \mu}{\sigma}\Big)
              - F\Big(\tfrac{(k-\frac12)\Delta - \mu}{\sigma}\Big)

is summed from cell probabilities computed in log space, each from the side
of the distribution where it is not a difference of two numbers close to one:
log survival functions in the tails (``log_ndtr``, ``logaddexp`` and the
Laplace closed form), and ``F(x) - 1/2`` (``erf``, ``tanh``, ``expm1``) for the
cell that holds the median. Cells are summed over ``|x| <= T`` standard units,
with ``T`` chosen so that the truncated tail changes ``H`` by less than
``1e-18`` relative (``T = 13`` for the Gaussian, ``T = 50`` for the
exponential tails of Laplace and logistic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
from scipy import special

from . import _arguments as check
from .catalogue import register

LN2 = math.log(2.0)

#: Gish & Pierce (1968): entropy-coded uniform scalar quantization of a Gaussian
#: at high resolution lies ``1/2 log2(pi e / 6)`` bits above R(D).
GISH_PIERCE_GAP_BITS = 0.5 * math.log2(math.pi * math.e / 6.0)

#: Most cells one call sums; ``step = 1e-4 * scale`` needs 1e6 of them.
MAX_CELLS = 20_000_000


@dataclass(frozen=True)
class _Standard:
    """A standard symmetric distribution: tails, centre and entropy."""

    logsf: Callable[[np.ndarray], np.ndarray]      # log P(X > x)
    central: Callable[[np.ndarray], np.ndarray]    # F(x) - 1/2, exact near 0
    entropy_nats: float                            # h(X) for scale 1
    tail: float                                    # T: standard units summed


def _laplace_logsf(x):
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 0.0, -LN2 - np.abs(x), np.log1p(-0.5 * np.exp(-np.abs(x))))


_DISTRIBUTIONS = {
    "gaussian": _Standard(
        logsf=lambda x: special.log_ndtr(-np.asarray(x, dtype=np.float64)),
        central=lambda x: 0.5 * special.erf(np.asarray(x) / math.sqrt(2.0)),
        entropy_nats=0.5 * math.log(2.0 * math.pi * math.e),
        tail=13.0),
    "laplace": _Standard(
        logsf=_laplace_logsf,
        central=lambda x: -0.5 * np.sign(x) * np.expm1(-np.abs(x)),
        entropy_nats=1.0 + LN2,
        tail=50.0),
    "logistic": _Standard(
        logsf=lambda x: -np.logaddexp(0.0, np.asarray(x, dtype=np.float64)),
        central=lambda x: 0.5 * np.tanh(np.asarray(x) / 2.0),
        entropy_nats=2.0,
        tail=50.0),
}

DISTRIBUTIONS = tuple(_DISTRIBUTIONS)


def _standard(dist) -> _Standard:
    try:
        return _DISTRIBUTIONS[dist]
    except (KeyError, TypeError):
        raise ValueError(f"dist: expected one of {DISTRIBUTIONS}, got {dist!r}") from None


def _log1mexp(d: np.ndarray) -> np.ndarray:
    """``log(1 - exp(d))`` for ``d <= 0``, accurate for every ``d`` (Maechler 2012)."""
    d = np.minimum(d, 0.0)
    out = np.empty_like(d)
    near = d > -LN2
    with np.errstate(divide="ignore"):
        out[near] = np.log(-np.expm1(d[near]))
    out[~near] = np.log1p(-np.exp(d[~near]))
    return out


def _log_cell(standard: _Standard, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Natural log of ``F(b) - F(a)`` for standard edges ``a < b``, elementwise."""
    out = np.empty_like(a)
    right, left = a >= 0.0, b <= 0.0
    for mask, lo, hi in ((right, a, b), (left, -b, -a)):       # mirror the left tail
        if np.any(mask):
            la, lb = standard.logsf(lo[mask]), standard.logsf(hi[mask])
            with np.errstate(invalid="ignore"):
                d = np.where(np.isfinite(la), lb - la, -np.inf)
            out[mask] = la + _log1mexp(d)
    middle = ~(right | left)
    if np.any(middle):
        am, bm = a[middle], b[middle]
        outside = np.exp(standard.logsf(-am)) + np.exp(standard.logsf(bm))
        with np.errstate(divide="ignore", invalid="ignore"):
            out[middle] = np.where(outside < 0.5, np.log1p(-np.minimum(outside, 0.5)),
                                   np.log(standard.central(bm) - standard.central(am)))
    return out


def _parameters(dist, scale, step, loc):
    return (_standard(dist), check.positive(scale, "scale"), check.positive(step, "step"),
            check.finite(loc, "loc"))


def _cell_range(standard, scale, step, offset):
    """Symbols ``k`` (relative to the offset) whose cells meet ``|x| <= T``, and two more."""
    reach = standard.tail * scale / step
    low = math.floor(offset / step - reach + 0.5) - 2      # two cells past T: when
    high = math.ceil(offset / step + reach - 0.5) + 2      # step >> scale they hold H
    if high - low + 1 > MAX_CELLS:
        raise ValueError(f"step: expected step >= scale * {2 * standard.tail / MAX_CELLS:.1e} "
                         f"(at most {MAX_CELLS} cells), got step/scale = {step / scale:.3g}; "
                         f"use high_resolution_entropy for finer steps")
    return np.arange(low, high + 1, dtype=np.int64)


def _log_pmf_at(standard, scale, step, offset, k):
    """Natural-log cell probabilities of symbols ``k`` for ``loc = offset``."""
    k = np.asarray(k, dtype=np.float64)
    a = ((k - 0.5) * step - offset) / scale
    b = ((k + 0.5) * step - offset) / scale
    return _log_cell(standard, a, b)


def quantized_log_pmf(dist: str, scale: float, step: float, loc: float = 0.0,
                      symbols=None) -> tuple[np.ndarray, np.ndarray]:
    """Symbols and natural-log probabilities of ``S = round(Y / step)``.

    Parameters
    ----------
    dist : {"gaussian", "laplace", "logistic"}
        Law of the standardized ``X``; ``Y = loc + scale * X``.
    scale, step : float
        Positive scale of ``Y`` and quantization step.
    loc : float, optional
        Location (median) of ``Y``.
    symbols : array of int, optional
        Symbols to evaluate. By default, every symbol whose cell meets
        ``loc +- T * scale`` (all mass but a fraction below ``1e-20``).

    Returns
    -------
    symbols : ndarray of int64
    log_pmf : ndarray of float64
        ``log P(S = k)`` in nats (``-inf`` where it underflows).

    Examples
    --------
    >>> k, logp = quantized_log_pmf("laplace", 1.0, 1.0)
    >>> print(round(float(np.exp(logp[k == 0][0])), 6))   # 1 - exp(-1/2)
    0.393469
    """
    standard, scale, step, loc = _parameters(dist, scale, step, loc)
    shift = round(loc / step)                      # H is invariant to whole cells
    offset = loc - shift * step
    if symbols is None:
        relative = _cell_range(standard, scale, step, offset)
    else:
        relative = np.asarray(symbols, dtype=np.int64) - shift
    return relative + shift, _log_pmf_at(standard, scale, step, offset, relative)


def quantized_pmf(dist: str, scale: float, step: float,
                  loc: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Symbols and probabilities of ``S = round(Y / step)``; see :func:`quantized_log_pmf`.

    Examples
    --------
    >>> k, p = quantized_pmf("gaussian", 1.0, 1.0)
    >>> print(round(float(p.sum()), 12), int(k[np.argmax(p)]))
    1.0 0
    """
    symbols, log_pmf = quantized_log_pmf(dist, scale, step, loc)
    return symbols, np.exp(log_pmf)


def _entropy_bits(log_pmf: np.ndarray) -> float:
    finite = np.isfinite(log_pmf)
    return float(-np.sum(np.exp(log_pmf[finite]) * log_pmf[finite]) / LN2) + 0.0


@register(
    theory="T5",
    statement="H(round(Y/step)) = -sum_k P_k log2 P_k, P_k = F(((k+1/2) step - loc)/scale) "
              "- F(((k-1/2) step - loc)/scale), exact (tail truncated below 1e-18 relative)",
    latex=r"H(S) = -\sum_k P_k \log_2 P_k,\ P_k = F\big(\tfrac{(k+\frac12)\Delta-\mu}"
          r"{\sigma}\big) - F\big(\tfrac{(k-\frac12)\Delta-\mu}{\sigma}\big)",
    hypotheses=["Y = loc + scale X, X standard Gaussian, Laplace or logistic",
                "uniform mid-tread quantizer: S = round(Y / step)", "scale > 0, step > 0"],
    references=["cover2006"],
)
def quantized_entropy(dist: str, scale: float, step: float, loc: float = 0.0) -> float:
    r"""Exact entropy in bits of a uniformly quantized Gaussian, Laplace or logistic scalar.

    .. math:: H(S) = -\sum_k P_k \log_2 P_k,\quad
              P_k = P\big((k-\tfrac12)\Delta \le Y < (k+\tfrac12)\Delta\big)

    Parameters
    ----------
    dist : {"gaussian", "laplace", "logistic"}
        Law of ``X`` in ``Y = loc + scale * X`` (Laplace: density
        ``exp(-|x|)/2``; logistic: ``exp(-x)/(1+exp(-x))^2``).
    scale : float
        Scale ``sigma > 0`` (standard deviation for the Gaussian).
    step : float
        Quantization step ``Delta > 0``. Accurate to ~1e-12 relative for
        ``1e-4 <= step/scale <= 100`` (tested against 80-digit mpmath sums and,
        at ``1e-4``, the second-order expansion of :func:`high_resolution_entropy`).
    loc : float, optional
        Location of ``Y``; ``H`` depends on it only modulo ``step``.

    Returns
    -------
    float
        ``H(S)`` in bits.

    Notes
    -----
    Hypotheses: ``Y`` has the stated law; the quantizer is the mid-tread
    rounding of THEORY.md (T5). Every cell probability is taken in log space
    from the tail where it is small, so cells of probability ``1e-300`` and
    cells of probability ``1 - 1e-20`` are both exact to rounding.

    References
    ----------
    Cover & Thomas (2006), *Elements of Information Theory*, Sec. 8.3.

    Examples
    --------
    >>> print(round(quantized_entropy("gaussian", 1.0, 1.0), 6))
    2.104833
    >>> print(round(quantized_entropy("laplace", 2.0, 0.5, loc=0.25), 6))
    4.446446
    """
    _, log_pmf = quantized_log_pmf(dist, scale, step, loc)
    return _entropy_bits(log_pmf)


@register(
    theory="T5",
    statement="Laplace(0, b), step D, r = exp(-D/b): H(S) = [-(1-sqrt r) ln(1-sqrt r) "
              "- sqrt r ln((1-r)/2) - sqrt r ln r (r/(1-r) + 1/2)] / ln 2",
    latex=r"H(S) = \tfrac{1}{\ln 2}\Big[-(1-\sqrt r)\ln(1-\sqrt r) - \sqrt r\ln\tfrac{1-r}{2}"
          r" - \sqrt r \ln r\big(\tfrac{r}{1-r}+\tfrac12\big)\Big],\ r=e^{-\Delta/b}",
    hypotheses=["Y ~ Laplace(0, scale): density exp(-|y|/b)/(2b)",
                "S = round(Y / step): the cell of symbol 0 is centred on the mode"],
    references=["cover2006"],
)
def laplace_quantized_entropy(scale: float, step: float) -> float:
    r"""Closed form of the entropy (bits) of a quantized zero-mean Laplace scalar.

    With ``r = exp(-step/scale)``, the cell probabilities are geometric:
    ``P_0 = 1 - sqrt(r)`` and ``P_{+-k} = (1-r) r^{k-1/2} / 2`` for ``k >= 1``;
    summing ``-P log P`` gives

    .. math:: H = \frac{1}{\ln 2}\Big[-(1-\sqrt r)\ln(1-\sqrt r)
              - \sqrt r\ln\frac{1-r}{2} - \sqrt r\,\ln r\Big(\frac{r}{1-r}
              + \frac12\Big)\Big].

    Derived symbolically in :func:`rdgap.proofs.quantized.laplace_quantized_entropy`.

    Parameters
    ----------
    scale : float
        Laplace scale ``b > 0`` (variance ``2 b^2``).
    step : float
        Quantization step ``> 0``.

    Returns
    -------
    float
        ``H(S)`` in bits; equals ``quantized_entropy("laplace", scale, step)``.

    References
    ----------
    Cover & Thomas (2006), Sec. 8.3 (quantized entropy); geometric series.

    Examples
    --------
    >>> print(round(laplace_quantized_entropy(1.0, 1.0), 6))
    2.484143
    """
    scale, step = check.positive(scale, "scale"), check.positive(step, "step")
    x = step / scale                                # r = exp(-x), ln r = -x
    root = math.exp(-x / 2.0)                       # sqrt(r)
    one_minus_r = -math.expm1(-x)
    log_one_minus_root = _log1mexp(np.array([-x / 2.0]))[0]
    log_one_minus_r = _log1mexp(np.array([-x]))[0]
    nats = (-(-math.expm1(-x / 2.0)) * log_one_minus_root
            - root * (log_one_minus_r - LN2)
            + root * x * (math.exp(-x) / one_minus_r + 0.5))
    return nats / LN2


@register(
    theory="T5",
    statement="Y standard law scaled by sigma: h(Y) = h(X) + log2 sigma bits; Gaussian "
              "1/2 log2(2 pi e sigma^2), Laplace log2(2 e b), logistic log2 s + 2/ln 2",
    latex=r"h(Y) = h(X) + \log_2\sigma",
    hypotheses=["Y = loc + scale X with X standard Gaussian, Laplace or logistic"],
    references=["cover2006"],
)
def differential_entropy(dist: str, scale: float) -> float:
    r"""Differential entropy ``h(Y)`` in bits of ``Y = loc + scale * X``.

    .. math:: h(Y) = h(X) + \log_2 \sigma

    with ``h(X)`` = ``1/2 ln(2 pi e)``, ``1 + ln 2`` and ``2`` nats for the
    standard Gaussian, Laplace and logistic laws.

    Parameters
    ----------
    dist : {"gaussian", "laplace", "logistic"}
    scale : float
        Scale ``> 0``.

    Returns
    -------
    float
        ``h(Y)`` in bits.

    References
    ----------
    Cover & Thomas (2006), Sec. 8.1 and Table 17.1.

    Examples
    --------
    >>> print(round(differential_entropy("gaussian", 1.0), 6))
    2.047096
    """
    standard = _standard(dist)
    scale = check.positive(scale, "scale")
    return standard.entropy_nats / LN2 + math.log2(scale)


class HighResolution(NamedTuple):
    """High-resolution approximation of a quantized entropy (all in bits)."""

    approximation: float   # h(Y) - log2(step)
    exact: float           # H(round(Y / step))
    error: float           # approximation - exact


@register(
    theory="T5",
    statement="H(round(Y/step)) = h(Y) - log2 step + o(1) as step -> 0; MSE step^2/12; for "
              "a Gaussian, the gap to R(D) at D = step^2/12 tends to 1/2 log2(pi e/6)",
    latex=r"H(\mathrm{round}(Y/\Delta)) = h(Y) - \log_2\Delta + o(1),\quad "
          r"H - R(\Delta^2/12) \to \tfrac12\log_2\tfrac{\pi e}{6}",
    hypotheses=["Y has a Riemann-integrable density with finite h(Y)", "step -> 0"],
    references=["cover2006", "gish1968"],
)
def high_resolution_entropy(dist: str, scale: float, step: float,
                            loc: float = 0.0) -> HighResolution:
    r"""The high-resolution approximation ``h(Y) - log2(step)`` and its error.

    .. math:: H(\mathrm{round}(Y/\Delta)) = h(Y) - \log_2 \Delta + o(1)
              \quad (\Delta \to 0)

    (Cover & Thomas, Thm 8.3.1). For the three laws here the error is
    ``-step^2 J / (24 ln 2) + o(step^2)`` bits, with ``J`` the Fisher
    information for location (``1/sigma^2`` Gaussian, ``1/b^2`` Laplace,
    ``1/(3 s^2)`` logistic): a smooth density's cell masses exceed
    ``step * p(center)`` by ``step^3 p''/24``. For a Gaussian at ``D = step^2/12`` the
    approximation exceeds ``R(D) = 1/2 log2(sigma^2/D)`` by exactly
    :data:`GISH_PIERCE_GAP_BITS` ``= 1/2 log2(pi e / 6) ~ 0.2546`` bits.

    Parameters
    ----------
    dist : {"gaussian", "laplace", "logistic"}
    scale, step : float
        Positive scale and step.
    loc : float, optional
        Location (changes only the exact value, and only modulo ``step``).

    Returns
    -------
    HighResolution
        ``(approximation, exact, error)`` in bits, ``error = approximation - exact``.

    References
    ----------
    Cover & Thomas (2006), Thm 8.3.1; Gish & Pierce (1968).

    Examples
    --------
    >>> result = high_resolution_entropy("gaussian", 1.0, 0.01)
    >>> print(round(result.approximation, 6), abs(result.error) < 1e-5)
    8.690952 True
    """
    approximation = differential_entropy(dist, scale) - math.log2(check.positive(step, "step"))
    exact = quantized_entropy(dist, scale, step, loc)
    return HighResolution(approximation, exact, approximation - exact)
