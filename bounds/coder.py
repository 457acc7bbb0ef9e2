r"""T2: what a real rANS coder adds to the information content of its symbols.

For integer frequencies ``f`` with ``Σ f = M = 2^P``, the information of
symbols ``s_1..s_m`` is ``I = Σ log2(M / f(s_i))``. An rANS coder whose state
lies in ``[2^(S-W), 2^S)`` and renormalises in ``W``-bit words emits a length
within ``m·ε`` plus constants of ``I``, where

``ε = log2(1 + 2^(P - (S - W)))``

bounds the error of one step (Duda 2013). The constants depend on how the
coder starts and ends; :func:`rans_length_bounds` gives them for the two
coders rdgap ships:

- ``start="lower"``: :mod:`rdgap.codecs.rans_torch` (each lane starts at
  ``2^(S-W)`` and flushes ``ceil(S/W)`` whole words of state).
- ``start="empty"``: constriction's ``AnsCoder`` (one lane, state starting at
  0, flushing only the state's significant words), used by
  :mod:`rdgap.codecs.ans`.

Replacing a float model ``q`` by its integer table ``f`` costs
``Σ log2(q(s)·M / f(s))`` (:func:`table_quantization_cost`), so with
``I_q = Σ -log2 q(s_i)`` the bounds read ``I = I_q + Σ log2(q·M/f)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _arguments as check
from .catalogue import register

_STARTS = ("lower", "empty")


@dataclass(frozen=True)
class RansLengthBounds:
    """Bounds on one stream's length in bits: ``lower <= L <= upper``.

    Attributes
    ----------
    lower, upper : float
        ``max(0, I - m·ε - c0)`` and ``I + m·ε + c1``.
    epsilon_per_symbol : float
        ``ε = log2(1 + 2^(P - (S - W)))``.
    c0, c1 : float
        The start/flush constants, summed over lanes (``c0 = inf`` where no
        lower constant exists).
    """

    lower: float
    upper: float
    epsilon_per_symbol: float
    c0: float
    c1: float


def _bits(value, name: str, maximum: int = 64) -> int:
    value = check.count(value, name)
    if value > maximum:
        raise ValueError(f"{name}: expected an integer <= {maximum}, got {value!r}")
    return value


@register(
    theory="T2",
    statement="rANS with integer frequencies f (sum 2^P), state in [2^(S-W), 2^S), W-bit "
              "words: eps = log2(1 + 2^(P-(S-W))); start 'lower' (K lanes, each from "
              "2^(S-W), flushing F = W ceil(S/W) bits): I - m eps + K(F - W) < L <= "
              "I + m eps + K F; start 'empty' (state from 0, truncated flush): "
              "L <= I + m eps + P + W; I = sum log2(2^P / f(s_i)).",
    latex=r"I - m\varepsilon + K(F-W) < L \le I + m\varepsilon + KF,\quad "
          r"\varepsilon = \log_2\!\left(1 + 2^{P-(S-W)}\right),\ "
          r"I = \sum_i \log_2 \frac{2^P}{f(s_i)}",
    hypotheses=["integer frequencies f(s) >= 1 with sum 2^P", "P <= W and P <= S - W",
                "renormalise before each push when x >= f 2^(S-P), emitting the low W bits",
                "push x -> floor(x/f) 2^P + (x mod f) + c(s)",
                "'lower': lanes start at 2^(S-W) and flush ceil(S/W) words each",
                "'empty': one lane from state 0 (constriction), flush the significant words"],
    references=["duda2013"],
)
def rans_length_bounds(information_bits: float, num_symbols: int, precision: int,
                       state_bits: int, word_bits: int, lanes: int = 1,
                       start: str = "lower") -> RansLengthBounds:
    r"""Deterministic bounds on the length of one rANS stream (THEORY.md T2).

    .. math:: I - m\varepsilon - c_0 \le L \le I + m\varepsilon + c_1,\qquad
              \varepsilon = \log_2\bigl(1 + 2^{P-(S-W)}\bigr)

    *One step.* Let ``x`` be the state before pushing ``s`` (after any
    renormalisation ``x = 2^W x_r + r``) and ``k = floor(x_r / f)``. The push
    gives ``x' = k·M + (x_r mod f) + c`` with ``(x_r mod f) + c < M``, so
    ``x'/M`` and ``x/(2^{W e} f)`` (``e = 1`` if a word was emitted) both lie
    in ``[k, k + 1)``; their ratio lies in ``(k/(k+1), (k+1)/k)``. Hence
    ``Φ = log2 x + W·(words emitted)`` grows by ``log2(M/f) + δ`` with
    ``|δ| <= log2(1 + 1/k)``. Renormalisation keeps ``x_r >= 2^(S-W)`` or
    ``x_r >= f·2^(S-W-P)``, so ``k >= 2^(S-W-P)`` and ``|δ| <= ε``.

    *Start "lower"* (:mod:`rdgap.codecs.rans_torch`): each of the ``K`` lanes
    starts at ``Φ_0 = S - W`` and writes ``L_k = W·E + F`` bits with
    ``F = W·ceil(S/W)``. Since ``S - W <= log2 x_final < S``,
    ``I_k - m_k ε + F - W < L_k <= I_k + m_k ε + F``; summing the lanes,
    ``c1 = K·F`` and ``c0 = K·(W - F)`` (negative: the lower bound lies above
    ``I``). ``K`` is ``min(lanes, num_symbols)``, as the coder uses it.

    *Start "empty"* (constriction's ``AnsCoder``): the state starts at 0 and
    grows without renormalisation until it reaches ``2^(S-W)``; there
    ``x' <= x·M/f + M - f``, so ``x' + M <= (x + M)·M/f`` and
    ``log2(x + M)`` (``= P`` at the start) grows by at most ``log2(M/f)``. The
    flush writes ``ceil(bitlength(x)/W)`` words, at most ``log2 x + W`` bits:
    ``c1 = P + W``. No lower constant exists: from state 0 a symbol with
    ``c(s) = 0`` leaves the state at 0 and costs nothing, for any ``f(s)``;
    ``c0 = inf`` and ``lower = 0``.

    Parameters
    ----------
    information_bits : float
        ``I = Σ log2(2^P / f(s_i))``, ``>= 0``.
    num_symbols : int
        ``m >= 0``.
    precision, state_bits, word_bits : int
        ``P``, ``S``, ``W`` with ``P <= W`` and ``P <= S - W``.
    lanes : int
        Interleaved states per stream (start ``"lower"`` only; ``"empty"`` needs 1).
    start : {"lower", "empty"}
        How the coder starts and flushes (above).

    Returns
    -------
    RansLengthBounds

    References
    ----------
    .. [1] Duda (2013), Asymmetric numeral systems, arXiv:1311.2540, Sec. 3.

    Examples
    --------
    The torch coder (S = 63, W = 32, P = 16, 16 lanes), 1000 symbols carrying
    2000 bits:

    >>> b = rans_length_bounds(2000.0, 1000, 16, 63, 32, lanes=16)
    >>> round(b.lower, 3), round(b.upper, 3), b.c1
    (2511.956, 3024.044, 1024.0)

    constriction's AnsCoder (S = 64, W = 32, P = 24):

    >>> b = rans_length_bounds(2000.0, 1000, 24, 64, 32, start="empty")
    >>> round(b.epsilon_per_symbol, 6), round(b.upper, 3), b.lower
    (0.005625, 2061.625, 0.0)
    """
    information = check.finite(information_bits, "information_bits")
    if information < 0:
        raise ValueError(f"information_bits: expected >= 0, got {information_bits!r}")
    m = check.count(num_symbols, "num_symbols", minimum=0)
    p = _bits(precision, "precision")
    s = _bits(state_bits, "state_bits", maximum=128)
    w = _bits(word_bits, "word_bits")
    lanes = check.count(lanes, "lanes")
    if start not in _STARTS:
        raise ValueError(f"start: expected one of {_STARTS}, got {start!r}")
    if w >= s or p > w or p > s - w:
        raise ValueError(f"precision/state_bits/word_bits: expected W < S, P <= W and "
                         f"P <= S - W, got P={p}, S={s}, W={w}")
    epsilon = math.log2(1.0 + 2.0 ** (p - (s - w)))
    if start == "lower":
        k = min(lanes, m)
        flush = w * -(-s // w)
        c0, c1 = float(k * (w - flush)), float(k * flush)
    else:
        if lanes != 1:
            raise ValueError(f"lanes: start='empty' describes one stack, got {lanes!r}")
        c0, c1 = math.inf, float(p + w)
    lower = max(0.0, information - m * epsilon - c0)
    return RansLengthBounds(lower=lower, upper=information + m * epsilon + c1,
                            epsilon_per_symbol=epsilon, c0=c0, c1=c1)


def _table_pair(probabilities, freq, precision):
    q = check.finite_array(probabilities, "probabilities")
    f = check.finite_array(freq, "freq")
    if q.ndim not in (1, 2) or f.shape != q.shape:
        raise ValueError(f"freq: expected the shape of probabilities {q.shape} (1-D or 2-D), "
                         f"got {f.shape}")
    if np.any(q < 0):
        raise ValueError("probabilities: expected entries >= 0")
    total = 2.0 ** _bits(precision, "precision")
    if np.any(f < 1) or np.any(f != np.floor(f)) or np.any(f.sum(-1) != total):
        raise ValueError(f"freq: expected integers >= 1 whose rows sum to 2^{precision}")
    q2, f2 = np.atleast_2d(q), np.atleast_2d(f)
    sums = q2.sum(1, keepdims=True)
    if np.any(sums <= 0):
        raise ValueError("probabilities: every row needs a positive sum")
    return q2 / sums, f2 / total


@register(
    theory="T2",
    statement="Coding with integer frequencies f (sum 2^b) instead of the model q costs "
              "log2(q(s) 2^b / f(s)) bits per symbol; in expectation under q this is "
              "D(q || f/2^b) >= 0.",
    latex=r"\mathbb{E}_q\!\left[\log_2 \frac{q(s)\,2^b}{f(s)}\right] = "
          r"D\!\left(q \,\middle\|\, f/2^b\right) \ge 0",
    hypotheses=["f(s) >= 1 integers with sum 2^b", "q a pmf (rows normalised)"],
    references=["duda2013", "cover2006"],
)
def table_quantization_cost(probabilities, freq, precision: int, symbols=None,
                            tables=None) -> np.ndarray | float:
    r"""Extra bits from coding with the integer table ``f`` instead of the model ``q``.

    .. math:: \Delta = \sum_i \log_2 \frac{q(s_i)\,2^b}{f(s_i)},\qquad
              \mathbb{E}_{s\sim q}\,\Delta_1 = D(q \,\|\, f/2^b) \ge 0

    Parameters
    ----------
    probabilities : array_like, shape (A,) or (T, A)
        The model ``q`` (rows are normalised).
    freq : array_like, same shape
        Integer frequencies, ``>= 1``, rows summing to ``2^precision``.
    precision : int
        ``b``.
    symbols : array_like of int, optional
        If given, the total cost over these symbols (can be negative when a
        symbol's ``f/2^b`` exceeds ``q``).
    tables : array_like of int, optional
        Row of each symbol (required with ``symbols`` when there are T > 1 rows).

    Returns
    -------
    numpy.ndarray or float
        Without ``symbols``: the expected cost per symbol of each row, shape
        (T,) (a float for 1-D input). With ``symbols``: the total in bits.

    Notes
    -----
    Hypotheses: ``f`` integer, ``>= 1``, summing to ``2^b``. The expectation
    is Gibbs' inequality for ``D(q || f/2^b)`` (Cover & Thomas Thm 2.6.3).

    Examples
    --------
    >>> round(table_quantization_cost([0.7, 0.2, 0.1], [11, 3, 2], 4), 6)
    0.004626
    >>> round(table_quantization_cost([0.7, 0.2, 0.1], [11, 3, 2], 4, symbols=[0, 2]), 6)
    -0.295933
    """
    q, f = _table_pair(probabilities, freq, precision)
    one_d = np.ndim(probabilities) == 1
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * np.log2(q / f), 0.0)
    if symbols is None:
        expected = terms.sum(1)
        return float(expected[0]) if one_d else expected
    s = np.asarray(symbols)
    if s.dtype.kind not in "iu" or s.ndim != 1 or np.any(s < 0) or np.any(s >= q.shape[1]):
        raise ValueError(f"symbols: expected a 1-D integer array in [0, {q.shape[1]})")
    if tables is None:
        if q.shape[0] != 1:
            raise ValueError("tables: required with symbols when there are several rows")
        t = np.zeros_like(s)
    else:
        t = np.asarray(tables)
        if t.dtype.kind not in "iu" or t.shape != s.shape or np.any(t < 0) \
                or np.any(t >= q.shape[0]):
            raise ValueError(f"tables: expected integers in [0, {q.shape[0]}) shaped like symbols")
    with np.errstate(divide="ignore"):
        return float(np.sum(np.log2(q[t, s] / f[t, s])))
