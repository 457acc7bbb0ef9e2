"""T7 of one codec (see :mod:`.statistics`, "T7"): the high-resolution rate predicted at
the ΔCE T7 predicts for the codec's steps, from the Vasicek differential entropies of the
fit states and the Fisher diagonal. An APPROXIMATION with its measured error, never a
bound."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats as scipy_stats

from rdgap.bounds import predicted_rate_curve

from .symbol_statistics import T7_CURVE_POINTS, _per_token, _shared


def _differential_entropies(samples: np.ndarray) -> np.ndarray:
    """Vasicek estimates of h(Y_j) in bits; a channel whose spacings vanish (many tied
    values) gets its Gaussian value ½ log2(2πe var) instead."""
    with np.errstate(divide="ignore", invalid="ignore"):
        h = scipy_stats.differential_entropy(samples, axis=0, base=2)
    bad = ~np.isfinite(h)
    if bad.any():
        spread = np.maximum(samples[:, bad].std(axis=0), 1e-12)
        h[bad] = np.log2(spread) + 0.5 * math.log2(2 * math.pi * math.e)
    return h


def _t7(quantizer, fisher, fit_hidden: torch.Tensor, measured: float | None) -> dict:
    out = dict.fromkeys(("t7_predicted_rate", "t7_error", "t7_relative_error",
                         "t7_predicted_delta_ce", "t7_curve"))
    if fisher is None or getattr(quantizer, "analysis", None) is not None:
        return out
    tokens = fit_hidden.shape[1]
    h_rest, h_first = _shared("entropies", fit_hidden, lambda: (
        _differential_entropies(fit_hidden[:, 1:].reshape(-1, fit_hidden.shape[2])
                                .double().numpy()),
        _differential_entropies(fit_hidden[:, 0].double().numpy())))
    fisher_rest = np.maximum(np.asarray(fisher.rest, float), 1e-30)
    step = np.asarray(quantizer.step, float)
    distortion = float(np.sum(fisher_rest * step ** 2) / 24.0)
    first = float(np.maximum(h_first - np.log2(np.asarray(quantizer.first_step, float)),
                             0.0).sum())
    grid = distortion * np.logspace(-1, 1, T7_CURVE_POINTS)
    curve = predicted_rate_curve(h_rest, fisher_rest, np.append(grid, distortion))
    predicted = _per_token(first, float(curve[-1]), tokens)
    out.update(t7_predicted_rate=predicted, t7_predicted_delta_ce=distortion,
               t7_curve={"delta_ce": grid.tolist(),
                         "rate": [_per_token(first, float(r), tokens) for r in curve[:-1]]})
    if measured is not None:
        out["t7_error"] = measured - predicted
        out["t7_relative_error"] = (measured - predicted) / predicted if predicted > 0 else None
    return out

