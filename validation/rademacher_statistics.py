"""T9's Rademacher statistics of a fitted entropy model (statistics, never a bound).

See :mod:`rdgap.validation.statistics` ("T9") for the class, the features and
why no generalisation bound is built from them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from rdgap.bounds import empirical_rademacher_linf, massart_linf_bound

LN2 = math.log(2.0)
RADEMACHER_DRAWS = 500


def _jensen_weights(quantizer) -> tuple[np.ndarray, np.ndarray, str]:
    """Per-channel ``w_j``, ``c_j`` of the Jensen code length in steps (rest positions)."""
    scale = np.asarray(quantizer.stats.scale, float) / np.asarray(quantizer.step, float)
    if getattr(quantizer, "family", "gaussian") == "laplace":
        return 1.0 / (scale * LN2), np.log2(2.0 * scale), "laplace"
    variance = scale ** 2 + 1.0 / 12.0
    return 1.0 / (2.0 * variance * LN2), 0.5 * np.log2(2.0 * math.pi * variance), "gaussian"


def _features(symbols: np.ndarray, family: str, documents: np.ndarray) -> np.ndarray:
    rest = symbols[:, 1:].astype(np.float64)
    phi = np.abs(rest) if family == "laplace" else rest ** 2 + 1.0 / 12.0
    per_window = phi.mean(axis=1)
    _, inverse = np.unique(documents, return_inverse=True)
    sums = np.zeros((inverse.max() + 1, per_window.shape[1]))
    np.add.at(sums, inverse, per_window)
    return sums / np.bincount(inverse)[:, None]


def _t9(codec, quantizer, fit_symbols: np.ndarray, fit_hidden: torch.Tensor,
        bound: float | None, delta: float, seed: int,
        fit_input_ids: torch.Tensor | None = None) -> dict:
    out = dict.fromkeys(("t9_fit_rate", "t9_rademacher_mc", "t9_rademacher_mc_upper",
                         "t9_rademacher_massart", "t9_complexity", "t9_weight_l1",
                         "t9_documents"))
    ids = [{}] * fit_hidden.shape[0]  # codecs that code the token ids get each window's
    if getattr(codec, "needs_input_ids", False):
        if fit_input_ids is not None and \
                tuple(fit_input_ids.shape) != tuple(fit_hidden.shape[:2]):
            raise ValueError(f"fit_input_ids: expected the ids of the fit windows, shape "
                             f"{tuple(fit_hidden.shape[:2])}, got {tuple(fit_input_ids.shape)}")
        ids = [] if fit_input_ids is None else [{"input_ids": i} for i in fit_input_ids]
    if quantizer is not None and ids and codec.estimate_bits(fit_hidden[0], **ids[0]) is not None:
        tokens = fit_hidden.shape[1]
        out["t9_fit_rate"] = float(np.mean([codec.estimate_bits(w, **i)
                                            for w, i in zip(fit_hidden, ids)])) / tokens
    if not hasattr(getattr(quantizer, "stats", None), "scale"):
        return out
    fit_docs = np.arange(fit_symbols.shape[0])  # one fit window per fit document
    weights, constants, family = _jensen_weights(quantizer)
    features = _features(fit_symbols, family, fit_docs)
    monte_carlo = empirical_rademacher_linf(features, n_draws=RADEMACHER_DRAWS, seed=seed,
                                            delta=delta)
    massart = massart_linf_bound(features)
    weight = float(weights.sum())
    constant = float(np.abs(constants).sum()) / math.sqrt(features.shape[0])
    complexity = weight * min(monte_carlo.upper, massart) + constant
    out.update(t9_rademacher_mc=monte_carlo.estimate, t9_rademacher_mc_upper=monte_carlo.upper,
               t9_rademacher_massart=massart, t9_weight_l1=weight, t9_complexity=complexity)
    out["t9_documents"] = int(features.shape[0])
    return out
