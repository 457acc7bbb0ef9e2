r"""T4: the marginal-entropy floor of factorized codecs, with a proven confidence bound.

A factorized model ``q(s) = prod_j q_j(s_j)`` pays, per token,
``sum_j E[-log2 q_j(S_j)] >= sum_j H(S_j)`` (Gibbs, T1, channel by channel), so
``sum_j H(S_j)`` is a floor no factorized codec beats, and it exceeds ``H(S)``
by the total correlation.

Estimation from ``N`` i.i.d. sequences of ``m`` tokens each (tokens inside a
sequence may be dependent). ``H(S_j)`` is the entropy of the *position-averaged*
marginal ``pbar_j = (1/m) sum_t P(S_{t,j} = .)``, which is exactly what a
factorized codec shared by all positions pays. The plug-in estimate
``Hhat_j = H(phat_j)`` from all ``M = N m`` tokens has ``E phat_j = pbar_j``
even under dependence, so by concavity and Jensen ``E Hhat_j <= H(S_j)``.
Changing one token changes ``Hhat_j`` by at most ``c(M) = h_b(1/M)`` (binary
entropy; derived in :func:`plugin_entropy_sensitivity`), so one sequence
changes ``sum_j Hhat_j`` by at most ``n m c(M)``, and McDiarmid's inequality
over the ``N`` independent sequences, in its *upper* tail (the floor fails only
when the plug-in lies more than the radius above its mean ``E Hhat_j <=
H(S_j)``), gives, with probability ``>= 1 - delta``,

.. math:: \sum_j H(S_j) \ge \sum_j \hat H_j - n\,m\,c(M)\sqrt{N\ln(1/\delta)/2}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _arguments as check
from . import _inputs
from .catalogue import register

LN2 = math.log(2.0)


def _counts(values, name: str) -> np.ndarray:
    counts = check.finite_array(values, name, ndim=1)
    if np.any(counts < 0) or np.any(counts != np.round(counts)):
        raise ValueError(f"{name}: expected non-negative integer counts")
    if counts.sum() <= 0:
        raise ValueError(f"{name}: expected at least one sample (counts sum to 0)")
    return counts


def _plugin_bits(counts: np.ndarray, axis: int = -1) -> np.ndarray:
    """Plug-in entropy (bits) of count vectors along ``axis``; zeros are skipped."""
    total = counts.sum(axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(counts > 0, counts * np.log2(np.where(counts > 0, counts, 1.0)), 0.0)
    return np.log2(np.squeeze(total, axis)) - terms.sum(axis=axis) / np.squeeze(total, axis)


def _column_counts(column: np.ndarray) -> np.ndarray:
    """Counts of the distinct values of an integer column (bincount when the range is small)."""
    low, high = int(column.min()), int(column.max())
    if high - low < 4 * column.size + 1024:
        counts = np.bincount(column - low)
        return counts[counts > 0]
    return np.unique(column, return_counts=True)[1]


def plugin_entropy(counts) -> float:
    r"""Plug-in (maximum-likelihood) entropy in bits of a vector of counts.

    .. math:: \hat H = -\sum_i \frac{n_i}{M}\log_2\frac{n_i}{M},\quad M = \sum_i n_i

    Biased low: ``E Hhat <= H`` (Jensen, concavity of ``H``).

    Parameters
    ----------
    counts : array_like, shape (K,)
        Non-negative integer counts, not all zero.

    Returns
    -------
    float

    Examples
    --------
    >>> print(round(plugin_entropy([2, 1, 1]), 6))
    1.5
    """
    return float(_plugin_bits(_counts(counts, "counts"))) + 0.0


def miller_madow_entropy(counts) -> float:
    r"""Miller–Madow bias-corrected entropy ``Hhat + (Khat - 1) / (2 M ln 2)`` bits.

    ``Khat`` is the number of non-zero counts. A point estimate with bias
    ``O(1/M^2)`` for a fixed alphabet; unlike the plug-in it is *not*
    guaranteed to be biased low, so no confidence bound uses it.

    Parameters
    ----------
    counts : array_like, shape (K,)

    Returns
    -------
    float

    References
    ----------
    Miller (1955); Paninski (2003), Sec. 3.

    Examples
    --------
    >>> print(round(miller_madow_entropy([2, 1, 1]), 6))
    1.860674
    """
    counts = _counts(counts, "counts")
    return plugin_entropy(counts) + (np.count_nonzero(counts) - 1) / (2.0 * counts.sum() * LN2)


@register(
    theory="T4",
    statement="changing one of M samples changes the plug-in entropy by at most "
              "c(M) = h_b(1/M) = [log2 M + (M-1) log2(M/(M-1))]/M <= log2(e M)/M bits (sharp)",
    latex=r"|\hat H(x) - \hat H(x')| \le h_b(1/M) = \tfrac{1}{M}\log_2 M"
          r" + \tfrac{M-1}{M}\log_2\tfrac{M}{M-1} \le \tfrac{\log_2(eM)}{M}",
    hypotheses=["x, x' sequences of M >= 1 samples differing in one position"],
    references=["antos2001"],
)
def plugin_entropy_sensitivity(num_samples: int) -> float:
    r"""Sharp bounded-difference constant of the plug-in entropy, in bits.

    .. math:: c(M) = \max_{x \sim x'}|\hat H(x) - \hat H(x')| = h_b(1/M)
              = \frac{\log_2 M}{M} + \frac{M-1}{M}\log_2\frac{M}{M-1}
              \le \frac{\log_2(eM)}{M}

    Proof: with ``g(k) = (k+1) log(k+1) - k log k`` (increasing, ``g(0) = 0``),
    moving one sample from symbol ``a`` to ``b`` changes ``Hhat`` by
    ``(g(n_a - 1) - g(n_b)) / M``, whose modulus is at most ``g(M-1) / M``
    because ``n_a - 1, n_b <= M - 1``; this equals ``h_b(1/M)`` and is
    attained by moving one sample out of a constant sequence. Antos &
    Kontoyiannis (2001) use the weaker ``(2/M) log M``-type constant.
    Derived in :func:`rdgap.proofs.marginal.plugin_entropy_sensitivity`.

    Parameters
    ----------
    num_samples : int
        ``M >= 1``.

    Returns
    -------
    float
        ``c(M)`` in bits (``0`` for ``M = 1``).

    References
    ----------
    Antos & Kontoyiannis (2001), Sec. 3 (bounded differences of the plug-in).

    Examples
    --------
    >>> print(round(plugin_entropy_sensitivity(1000), 6))
    0.011408
    """
    m = check.count(num_samples, "num_samples", minimum=1)
    if m == 1:
        return 0.0
    p = 1.0 / m
    return float(-(p * math.log2(p) + (1.0 - p) * math.log1p(-p) / LN2))


@dataclass(frozen=True)
class MarginalEntropyFloor:
    """Estimates of ``sum_j H(S_j)`` (bits per token) and a proven lower confidence bound.

    Attributes
    ----------
    per_channel : ndarray, shape (n,)
        Plug-in entropies ``Hhat_j``.
    plugin_sum : float
        ``sum_j Hhat_j`` (biased low: ``E plugin_sum <= sum_j H(S_j)``).
    miller_madow_sum : float
        Sum of Miller–Madow corrected estimates (point estimate, no guarantee).
    lower_bound : float
        ``plugin_sum - deviation``: ``<= sum_j H(S_j)`` with probability ``>= 1 - delta``.
    deviation : float
        McDiarmid radius ``n m c(M) sqrt(N ln(1/delta) / 2)``.
    delta : float
    num_sequences : int
        ``N``.
    tokens_per_sequence : int
        ``m``.
    """

    per_channel: np.ndarray
    plugin_sum: float
    miller_madow_sum: float
    lower_bound: float
    deviation: float
    delta: float
    num_sequences: int
    tokens_per_sequence: int


def mcdiarmid_deviation(channels: int, tokens_per_sequence: int, num_sequences: int,
                        delta: float) -> float:
    r"""One-sided McDiarmid radius of ``sum_j Hhat_j`` over ``N`` i.i.d. sequences (bits).

    .. math:: \varepsilon = n\,m\,c(Nm)\sqrt{\tfrac{N\ln(1/\delta)}{2}}

    solves ``exp(-2 eps^2 / (N (n m c)^2)) = delta``; ``c`` is
    :func:`plugin_entropy_sensitivity`.

    Examples
    --------
    >>> print(round(mcdiarmid_deviation(1, 1, 1000, 0.05), 6))
    0.441506
    """
    n = check.count(channels, "channels")
    m = check.count(tokens_per_sequence, "tokens_per_sequence")
    big_n = check.count(num_sequences, "num_sequences")
    delta = check.probability(delta, "delta")
    return n * m * plugin_entropy_sensitivity(big_n * m) * math.sqrt(
        big_n * math.log(1.0 / delta) / 2.0)


@register(
    theory="T4",
    statement="N i.i.d. sequences of m tokens, n channels, M = N m: with probability >= 1 - "
              "delta, sum_j H(S_j) >= sum_j Hhat_j - n m h_b(1/M) sqrt(N ln(1/delta)/2); and any "
              "factorized codec pays >= sum_j H(S_j) per token",
    latex=r"\sum_j H(S_j) \ge \sum_j \hat H_j - n\,m\,h_b(1/M)\sqrt{\tfrac{N\ln(1/\delta)}{2}}"
          r"\ \text{w.p.}\ \ge 1-\delta",
    hypotheses=["sequences i.i.d. (tokens within a sequence may be dependent)",
                "every sequence has exactly m tokens; H(S_j) is the entropy of the "
                "position-averaged marginal of channel j",
                "0 < delta < 1"],
    references=["antos2001", "paninski2003", "miller1955"],
)
def marginal_entropy_floor(symbols, delta: float,
                           tokens_per_sequence: int = 1) -> MarginalEntropyFloor:
    r"""Plug-in, Miller–Madow and a proven lower confidence bound for ``sum_j H(S_j)``.

    .. math:: P\Big(\sum_j H(S_j) \ge \sum_j \hat H_j
              - n\,m\,h_b\big(\tfrac{1}{Nm}\big)\sqrt{\tfrac{N\ln(1/\delta)}{2}}\Big)
              \ge 1 - \delta

    Parameters
    ----------
    symbols : array_like of int, shape (N * m, n)
        Integer symbols, one row per token, sequences stored as consecutive
        blocks of ``m`` rows.
    delta : float
        Miscoverage, ``0 < delta < 1``.
    tokens_per_sequence : int, optional
        ``m``, the tokens of one i.i.d. sequence (default 1: i.i.d. tokens).
        Variable-length documents must be cut to a common length first
        (one window per document: windows of one document are dependent).

    Returns
    -------
    MarginalEntropyFloor

    Notes
    -----
    Hypotheses: see the module docstring for the proof (bias ``E Hhat <= H``
    by Jensen, valid under within-sequence dependence; McDiarmid over the
    ``N`` independent sequences with the sharp per-token constant
    ``h_b(1/M)`` chained over ``m`` tokens and summed over ``n`` channels).
    The radius grows with ``n``: it is a worst-case bound.

    References
    ----------
    Antos & Kontoyiannis (2001); Paninski (2003); Miller (1955).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> floor = marginal_entropy_floor(rng.integers(0, 4, size=(4000, 2)), delta=0.05)
    >>> print(round(floor.plugin_sum, 2), floor.lower_bound < floor.plugin_sum < 4.0)
    4.0 True
    """
    symbols = _inputs.integer_array(symbols, "symbols", ndim=2)
    delta = check.probability(delta, "delta")
    m = check.count(tokens_per_sequence, "tokens_per_sequence")
    tokens, channels = symbols.shape
    if tokens % m:
        raise ValueError(f"tokens_per_sequence: expected a divisor of the number of tokens "
                         f"({tokens}), got {m}")
    per_channel, corrected = np.empty(channels), np.empty(channels)
    for j in range(channels):
        counts = _column_counts(symbols[:, j])
        per_channel[j] = plugin_entropy(counts)
        corrected[j] = miller_madow_entropy(counts)
    deviation = mcdiarmid_deviation(channels, m, tokens // m, delta)
    total = float(per_channel.sum())
    return MarginalEntropyFloor(per_channel, total, float(corrected.sum()), total - deviation,
                                deviation, delta, tokens // m, m)


def total_correlation_estimate(symbols) -> float:
    r"""Plug-in estimate of the total correlation ``sum_j H(S_j) - H(S)`` (bits per token).

    A point estimate with no guarantee: the joint plug-in entropy is biased
    low far more than the marginals (its alphabet is the product), so the
    estimate is biased *high* unless ``M`` greatly exceeds the number of
    distinct rows.

    Parameters
    ----------
    symbols : array_like of int, shape (M, n)

    Returns
    -------
    float

    Examples
    --------
    >>> x = np.array([[0, 0], [1, 1], [0, 0], [1, 1]])
    >>> print(round(total_correlation_estimate(x), 6))
    1.0
    """
    symbols = _inputs.integer_array(symbols, "symbols", ndim=2)
    marginals = sum(plugin_entropy(_column_counts(column)) for column in symbols.T)
    joint = plugin_entropy(np.unique(symbols, axis=0, return_counts=True)[1])
    return float(marginals - joint)
