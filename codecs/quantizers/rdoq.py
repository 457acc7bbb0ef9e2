"""Rate–distortion optimised quantization (RDOQ) under the entropy model's own code lengths.

Encoder only. For every value ``x`` (in steps) the plain quantizer writes the nearest
level ``k₀ = round(x)``; RDOQ writes, among the candidates

    ``k₀``, ``k₀ − sign(k₀)`` (one level toward zero) and ``0``,

the level ``k`` that minimises

    ``J(k) = (x − k)² + c · bits(k)``,

``bits(k)`` the code length the entropy model gives ``k`` (``−log2 q(k)`` of the table
the coder writes it with; an escaped value also pays its :data:`~rdgap.codecs.coders.
ans.ESCAPE_BITS`), ``c ≥ 0`` the *weight* in squared steps per bit. The reconstruction
is the plain quantizer's (``Δ·k``): only the symbol written changes, so the stream
format and the decoder are the plain codec's, and its decoder decodes RDOQ streams
unchanged.

Why squared steps: after the Fisher-whitened KLT (one step ``Δ`` for every component,
and ``Δ0_j = Δ/√F0_j`` at position 0) THEORY.md T7 predicts ``ΔCE ≈ Σ e²/2`` per token
of the whitened error ``e = Δ·(x − k)``, so ``D + λ·R`` with ``D = Σ e²`` and
``λ = c·Δ²`` (the classic H.264 rule, a constant times the squared step) is
``Δ²·Σ J``: the same weight ``c`` fits every step scale, and the step-scale calibration
(:func:`rdgap.codecs.quantizers.calibrate.calibrate_scale`) then sets the level.

Guarantees (per symbol, by construction; tested):

- ``J(chosen) ≤ J(k₀)`` (``k₀`` is a candidate, and a candidate replaces it only when
  strictly cheaper);
- ``c = 0`` gives exactly ``k₀`` (the plain quantizer's symbols);
- the chosen level is never farther from zero than ``k₀``.

Used by :class:`rdgap.codecs.entropy_models.factorized.FactorizedCodec` (``rdoq=c``;
recipe ``klt-laplace-rdoq``), where every symbol has its own fixed table and the
decision is exact per symbol. The joint context model decides greedily inside its
causal loop with :func:`rdgap.codecs.quantizers.deadzone.rdo_symbols` (recipe
``klt-context-rdoq``).

Measured (SmolLM2 split 15, real streams, 32 evaluation windows; docs/codec.md "RDOQ"):
it does **not** pay. At equal steps ``klt-laplace`` with ``c = 0.12`` saves bits at equal
ΔCE (BD −4.7 %) but loses in KL (+4.5 %; ``klt-context`` +2.7 %): the error biased toward
zero moves ΔCE at first order without bringing the output closer. ``c = 0.04`` is
neutral in KL (−0.3 %). The recipes are measured options, not defaults.

>>> import numpy as np
>>> bits = lambda k: np.where(k == 0, 1.0, 4.0 + np.abs(k))  # a peaked table
>>> x, nearest = np.array([0.6, 1.4, 2.6, 3.0]), np.array([1, 1, 3, 3])
>>> choose_levels(x, nearest, bits, 0.5).tolist()
[0, 0, 2, 3]
>>> choose_levels(x, nearest, bits, 0.0).tolist()
[1, 1, 3, 3]
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..coders import ans


def check_weight(weight: float, name: str = "rdoq") -> float:
    """``weight`` as a float, or a ValueError naming ``name`` unless it is finite and ≥ 0."""
    value = float(weight)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: expected a rate–distortion weight c ≥ 0 (squared steps per "
                         f"bit; λ = c·Δ², 0: off), got {weight}")
    return value


def choose_levels(x: np.ndarray, nearest: np.ndarray, bits: Callable[[np.ndarray], np.ndarray],
                  weight: float) -> np.ndarray:
    """The level among ``k₀``, ``k₀ − sign(k₀)`` and ``0`` minimising
    ``(x − k)² + weight·bits(k)``.

    Parameters
    ----------
    x : numpy.ndarray
        Values in steps (any shape).
    nearest : numpy.ndarray
        Their round-to-nearest levels ``k₀`` (int64, ``x``'s shape).
    bits : callable
        ``bits(levels)``: the code length in bits of each level (``x``'s shape) under the
        table it is coded with.
    weight : float
        ``c ≥ 0``, squared steps per bit (:func:`check_weight`).

    Returns
    -------
    numpy.ndarray
        int64 levels; a candidate replaces ``k₀`` only where strictly cheaper, so
        ``weight = 0`` returns ``nearest`` itself.
    """
    weight = check_weight(weight, "weight")
    nearest = np.asarray(nearest, dtype=np.int64)
    x = np.asarray(x, dtype=np.float64)
    best = nearest
    cost = (x - nearest) ** 2 + weight * bits(nearest)
    for candidate in (nearest - np.sign(nearest), np.zeros_like(nearest)):
        candidate_cost = (x - candidate) ** 2 + weight * bits(candidate)
        better = candidate_cost < cost
        best = np.where(better, candidate, best)
        cost = np.where(better, candidate_cost, cost)
    return best


def table_bits(table: ans.ChannelTable) -> Callable[[np.ndarray], np.ndarray]:
    """``bits(levels)`` of one coder table: ``−log2 q`` of each level's entry, and for a
    level outside ``−width..width`` the escape's ``−log2 q`` plus
    :data:`~rdgap.codecs.coders.ans.ESCAPE_BITS` (what :func:`ans.estimate_bits` counts)."""
    def bits(levels: np.ndarray) -> np.ndarray:
        index = np.asarray(levels, dtype=np.int64) + table.width
        outside = (index < 0) | (index > 2 * table.width)
        index = np.where(outside, 2 * table.width + 1, index)
        return table.neg_log2[index] + np.where(outside, ans.ESCAPE_BITS, 0.0)
    return bits


def quantize_columns(x: np.ndarray, nearest: np.ndarray, tables: list[ans.ChannelTable],
                     weight: float) -> np.ndarray:
    """RDOQ levels of values ``x`` ``(tokens, channels)`` in steps whose column ``j`` is
    coded with ``tables[j]`` (a factorized model: every symbol's table is fixed, so the
    choice is exact per symbol).

    Parameters
    ----------
    x, nearest : numpy.ndarray
        ``(tokens, channels)`` values in steps and their round-to-nearest levels.
    tables : list of ChannelTable
        One per column.
    weight : float
        ``c ≥ 0``, squared steps per bit.
    """
    if x.shape != nearest.shape or x.ndim != 2 or len(tables) != x.shape[1]:
        raise ValueError(f"tables: expected one table per column of x {x.shape} (levels "
                         f"{nearest.shape}), got {len(tables)}")
    out = np.empty(nearest.shape, dtype=np.int64)
    for j, table in enumerate(tables):
        out[:, j] = choose_levels(x[:, j], nearest[:, j], table_bits(table), weight)
    return out
