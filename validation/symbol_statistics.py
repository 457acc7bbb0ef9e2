"""T3, T4, Gibbs on the sample and T6 of a codec's symbols (see :mod:`.statistics`).

Also the small helpers they share: per-token averaging of position 0 and
positions >= 1, subsampling, document blocks, the inversion of a radius into
a number of documents, and a cache of codec-independent figures per split.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from rdgap.bounds import (dependency_headroom, gaussian_logdet_bound, gaussian_rate_distortion,
                          marginal_entropy_floor, mcdiarmid_deviation)

from .codec_domain import LatticeQuantizer

T7_CURVE_POINTS = 12
#: The radius, relative to the estimate, that the ``*_documents_needed`` figures aim at.
TARGET_RELATIVE_RADIUS = 0.1
#: Tokens of the covariance behind the T6 reference curve (a reference, not a bound).
T6_COV_TOKENS = 4_096


def smallest_sample_size(radius, epsilon: float, limit: int = 10 ** 12) -> int | None:
    """The smallest ``N >= 2`` with ``radius(N) <= epsilon`` for a radius that decreases
    in ``N`` (doubling, then bisection); None when even ``limit`` does not reach it."""
    if not epsilon > 0:
        return None
    high = 2
    while radius(high) > epsilon:
        if high >= limit:
            return None
        high *= 2
    low = high // 2
    if low < 2 or radius(low) <= epsilon:
        return max(2, low)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if radius(middle) <= epsilon else (middle, high)
    return high


def _document_blocks(symbols: np.ndarray, documents: np.ndarray) -> tuple[np.ndarray, int]:
    """Windows grouped so that each document is one block of equal length."""
    ids, counts = np.unique(documents, return_counts=True)
    if np.all(counts == counts[0]):
        order = np.argsort(documents, kind="stable")
        return symbols[order], int(counts[0])
    first = np.array([int(np.flatnonzero(documents == i)[0]) for i in ids])
    return symbols[first], 1


def _per_token(first: float, rest: float, tokens: int) -> float:
    return (first + (tokens - 1) * rest) / tokens


def _subsample(rows: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    if rows.shape[0] <= limit:
        return rows
    return rows[np.sort(rng.choice(rows.shape[0], limit, replace=False))]


def _diagonal_bound(variances: np.ndarray, steps: np.ndarray) -> float:
    """T3's diagonal bound as the sum of its one-dimensional terms (no n×n algebra)."""
    return float(sum(gaussian_logdet_bound([[v]], d, diagonal=True)
                     for v, d in zip(variances, steps)))


def _t3(symbols: np.ndarray, step: np.ndarray, first_step: np.ndarray,
        rng: np.random.Generator, max_cov_tokens: int) -> dict:
    tokens = symbols.shape[1]
    rest = _subsample(symbols[:, 1:].reshape(-1, symbols.shape[2]), max_cov_tokens, rng) * step
    cov = np.cov(rest, rowvar=False)
    # The same rows with every channel permuted on its own: no dependence, same marginals,
    # so its Hadamard headroom is the estimation bias of the sample covariance's log-det.
    null = dependency_headroom(np.cov(rng.permuted(rest, axis=0), rowvar=False), step)
    first = _diagonal_bound(np.var(symbols[:, 0] * first_step, axis=0, ddof=1), first_step)
    diag_rest = _diagonal_bound(np.diag(cov), step)
    raw = diag_rest - gaussian_logdet_bound(cov, step)
    headroom = max(raw - null, 0.0)
    return {"t3_logdet_full": _per_token(first, diag_rest - headroom, tokens),
            "t3_logdet_full_raw": _per_token(first, diag_rest - raw, tokens),
            "t3_logdet_diag": _per_token(first, diag_rest, tokens),
            "t3_dependency_headroom": headroom * (tokens - 1) / tokens,
            "t3_dependency_headroom_null": null * (tokens - 1) / tokens,
            "_cov_rows": rest.shape[0]}


def _floor_radius(channels: int, tokens: int, per_document: int, documents: int,
                  delta: float) -> float:
    """Per-token McDiarmid radius of the T4 floor over ``documents`` i.i.d. documents of
    ``per_document`` windows (``delta / 2`` for position 0 and for the rest)."""
    rest = mcdiarmid_deviation(channels, per_document * (tokens - 1), documents, delta / 2)
    first = mcdiarmid_deviation(channels, per_document, documents, delta / 2)
    return _per_token(first, rest, tokens)


def _t4(symbols: np.ndarray, documents: np.ndarray, delta: float) -> dict:
    blocks, per_document = _document_blocks(symbols, documents)
    windows, tokens, channels = symbols.shape
    # delta / 2 for each position group (a union bound: both hold with prob >= 1 - delta)
    rest = marginal_entropy_floor(blocks[:, 1:].reshape(-1, channels), delta / 2,
                                  tokens_per_sequence=per_document * (tokens - 1))
    first = marginal_entropy_floor(blocks[:, 0], delta / 2, tokens_per_sequence=per_document)
    plugin = _per_token(first.plugin_sum, rest.plugin_sum, tokens)
    radius = _per_token(first.deviation, rest.deviation, tokens)
    needed = smallest_sample_size(
        lambda n: _floor_radius(channels, tokens, per_document, n, delta),
        TARGET_RELATIVE_RADIUS * plugin)
    informative = plugin - radius > 0
    return {"t4_miller_madow_estimate": _per_token(first.miller_madow_sum,
                                                   rest.miller_madow_sum, tokens),
            "t4_marginal_floor_plugin": plugin,
            "t4_marginal_floor_lower": plugin - radius if informative else None,
            "t4_marginal_floor_status": "proven lower bound" if informative else
            f"uninformative (radius {radius:,.1f} >= plug-in {plugin:,.1f} bits/token)",
            "t4_marginal_floor_deviation": radius,
            "t4_documents": int(blocks.shape[0]),
            "t4_documents_needed": needed,
            "_all_windows": blocks.shape[0] == windows}


def _gibbs_sample(quantizer, kind: str | None, symbols: np.ndarray, t4: dict,
                  bits: np.ndarray, estimated: np.ndarray | None) -> dict:
    """T4 on the sample itself: a factorized codec's estimate of the very symbols it coded
    is at least their plug-in marginal entropies (Gibbs on the empirical distribution)."""
    out = dict.fromkeys(("gibbs_sample_floor", "gibbs_sample_estimated",
                         "gibbs_sample_actual", "gibbs_sample_windows"))
    if kind != "factorized" or estimated is None or isinstance(quantizer, LatticeQuantizer):
        return out
    windows, tokens, channels = symbols.shape
    if t4["_all_windows"]:
        floor = t4["t4_marginal_floor_plugin"]
    else:
        floor = _per_token(
            marginal_entropy_floor(symbols[:, 0], 0.5).plugin_sum,
            marginal_entropy_floor(symbols[:, 1:].reshape(-1, channels), 0.5).plugin_sum,
            tokens)
    scale = 1.0 / (windows * tokens)
    return {"gibbs_sample_floor": floor, "gibbs_sample_estimated": float(estimated.sum()) * scale,
            "gibbs_sample_actual": float(bits.sum()) * scale, "gibbs_sample_windows": int(windows)}


_SHARED: dict = {}
_SHARED_ENTRIES = 8


def _shared(kind: str, tensor: torch.Tensor, compute):
    """``compute()`` once per (kind, tensor content): every codec at a split shares the
    codec-independent figures of its hidden states (T6 spectrum, T7 entropies)."""
    data = tensor.detach().contiguous().numpy()
    key = (kind, data.shape, hashlib.blake2b(data.tobytes(), digest_size=16).digest())
    if key not in _SHARED:
        while len(_SHARED) >= _SHARED_ENTRIES:
            _SHARED.pop(next(iter(_SHARED)))
        _SHARED[key] = compute()
    return _SHARED[key]


def _spectrum(eval_hidden: torch.Tensor, seed: int) -> np.ndarray:
    """Eigenvalues of the covariance of the states at positions >= 1 (T6)."""
    states = eval_hidden[:, 1:].reshape(-1, eval_hidden.shape[2]).double().numpy()
    rest = _subsample(states, T6_COV_TOKENS, np.random.default_rng(seed))
    return np.clip(np.linalg.eigvalsh(np.cov(rest, rowvar=False)), 0.0, None)


def _t6(eval_hidden: torch.Tensor, quantizer, symbols: np.ndarray, seed: int) -> dict:
    recon = np.stack([quantizer.dequantize(s).numpy() for s in symbols])
    mse = float(((recon - eval_hidden.numpy()).astype(np.float64) ** 2).sum(-1).mean())
    eigenvalues = _shared(f"spectrum {seed}", eval_hidden,
                          lambda: _spectrum(eval_hidden, seed))
    grid = mse * np.logspace(-1, 1, T7_CURVE_POINTS)
    rates = [gaussian_rate_distortion(eigenvalues, float(d)).rate for d in grid]
    return {"mse": mse, "t6_rate_at_mse": gaussian_rate_distortion(eigenvalues, mse).rate,
            "split_logdet_covariance": split_logdet(eigenvalues),
            "t6_curve": {"mse": grid.tolist(), "rate": [float(r) for r in rates]}}


def split_logdet(eigenvalues) -> float:
    """``½ Σ log2 λ`` over the covariance eigenvalues above ``1e-12 · max λ`` (bits).

    The log-det of the hidden states' covariance at a split (positions >= 1,
    the T6 spectrum): codec-independent, the paper's "log-det covariance".
    Directions of (numerically) zero variance are left out rather than sent
    to ``-inf``; a statistic, not a bound.
    """
    values = np.asarray(eigenvalues, float)
    keep = values > 1e-12 * max(float(values.max(initial=0.0)), 1e-300)
    return float(0.5 * np.log2(values[keep]).sum())
