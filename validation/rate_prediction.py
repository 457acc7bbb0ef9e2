r"""The rate a codec will need, predicted from fit statistics before any entropy model is fit.

A PREDICTION (THEORY.md vocabulary: an approximation with a measured error), not a
bound. For a codec with per-channel (or per-component) steps ``Δ_j``, the bits per
token are predicted from the steps and from second-order statistics of the fit
windows alone — no entropy model fitted, no evaluation data:

Factorized codecs (identity or KLT transform)
    each channel ``j`` is coded with a discretised density of the codec's family
    (Gaussian or Laplace) whose scale is a fit statistic (standard deviation, or
    mean absolute deviation from the median: the family's maximum-likelihood
    scale). The expected code length of symbols whose law is that family at the
    *data* scale ``s_j`` under the table at the *model* scale ``m_j`` (both in
    steps) is the discretised cross-entropy :func:`discretised_cross_entropy`,
    exact at every resolution (the high-resolution limit ``h − log2 Δ`` of
    THEORY.md T5, used by T7's old prediction, fails where ``s_j ≲ 1`` — most
    KLT components at the reference levels). Why the family's own law: the ML
    scale of an exponential family matches its sufficient statistic, so the
    cross-entropy of ANY data with that second moment (Gaussian) or mean
    absolute deviation (Laplace) under the fitted density equals the density's
    own entropy at high resolution; the codec pays the family's entropy, not the
    data's (the Vasicek ``h(Y_j)`` T7 used is lower: its 6–47 % error on the
    language models).
The statistics windows and the held-out fit windows
    The codec's statistics (means, scales, the KLT) come from the first
    ``statistics_windows`` fit windows (the first half: :class:`rdgap.codecs.fit.
    FitContext`); the other fit windows (the calibration half) were not used for
    them. ``m_j`` is the codec's stored scale, ``s_j`` the same statistic on the
    held-out fit windows about the codec's centre. This is what corrects the
    KLT: a sample covariance of 16 × 255 tokens in 576 dimensions under-states
    the variance along its smallest eigenvectors, so in-sample KLT component
    scales under-predict the rate by 6–8 % (SmolLM2, measured) where the
    held-out ones are within 1 %.
Context codecs (:class:`rdgap.codecs.entropy_models.context.ContextCodec`)
    the components' residuals after the best linear prediction from the previous
    token (ridge on the lag-1 pairs of the statistics windows, the ``P``
    leading components the codec predicts from: the lag-1 conditional variance)
    are Laplace with the codec's dead-zone rounding; model scale from the
    statistics windows, data scale from the held-out ones. Not modelled: the
    per-token scale hyperprior (its gain and its side bits), the quantized
    (not exact) previous token the codec predicts from, and for
    ``klt-context-tokens`` the token ids and their embeddings.
Position 0
    coded with its own steps and scales: the same cross-entropy per channel,
    ``1/m`` of the tokens of a window of ``m``.

``rate_predicted`` is the prediction at the codec's (calibrated) steps plus the
stream header (exactly known from the format);
:func:`rdgap.validation.rate_prediction_claim.prediction_at_level` gives
it at T7's predicted step for the row's level (before calibration) from the
sampled curve ``rate_prediction_curve`` (the steps times each factor). The gap
between the two is the rate cost of T7's distortion-prediction error.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special

#: Relative error within which a prediction is "within tolerance" (issue 14's ±10 %).
PREDICTION_TOLERANCE = 0.10
#: Step factors (relative to the codec's steps) at which the curve is sampled.
CURVE_FACTORS = tuple(float(f) for f in np.exp2(np.linspace(-1.5, 1.5, 13)))
#: Above this scale (in steps) the cross-entropy uses its high-resolution form.
_HIGH_RESOLUTION = 8.0
#: The relative ridge of the lag-1 predictor (of the mean diagonal of XᵀX).
LAG1_RIDGE = 1e-3
_FLOOR = 2.0 ** -20  # the tables' probability floor (rdgap.codecs.entropy_models.tables)
_LN2 = math.log(2.0)


def discretised_cross_entropy(family: str, data_scale, model_scale,
                              rounding: float = 0.5) -> np.ndarray:
    r"""Expected bits of one symbol: data of ``family`` at ``data_scale``, coded with the
    discretised ``family`` table at ``model_scale`` (both zero-mean, in steps).

    Parameters
    ----------
    family : {"gaussian", "laplace"}
        Gaussian: scales are standard deviations. Laplace: scales are ``b`` (the
        mean absolute deviation).
    data_scale, model_scale : array_like
        Positive scales in quantization steps (broadcast together).
    rounding : float
        Dead-zone offset ``ρ`` in ``(0, ½]`` (``½``: plain rounding); Laplace only.

    Returns
    -------
    numpy.ndarray
        ``−Σ_k p_s(k) log2 q_m(k)`` in bits; equal scales give the discretised
        entropy. Laplace (closed form): with ``θ = e^{−1/b}``,
        ``q(0) = 1 − e^{−(1−ρ)/b}`` and ``q(±k) = ½ e^{−(k−ρ)/b}(1 − θ)``.
        Gaussian: the sum over cells, or above :data:`_HIGH_RESOLUTION` steps
        ``½ log2(2π m²) + (s² + 1/12) / (2 m² ln 2)`` (error < 10⁻³ bit).

    Examples
    --------
    >>> import numpy as np
    >>> h = discretised_cross_entropy("gaussian", 20.0, 20.0)
    >>> round(float(h - 0.5 * np.log2(2 * np.pi * np.e * 400)), 3)  # T5's limit
    0.0
    >>> round(float(discretised_cross_entropy("laplace", 1e-3, 1e-3)), 6)  # all zeros
    0.0
    """
    if family not in ("gaussian", "laplace"):
        raise ValueError(f"family: expected 'gaussian' or 'laplace', got {family!r}")
    if not 0.0 < rounding <= 0.5:
        raise ValueError(f"rounding: expected an offset in (0, 0.5], got {rounding}")
    data, model = np.broadcast_arrays(np.asarray(data_scale, float),
                                      np.asarray(model_scale, float))
    if not (np.all(np.isfinite(data)) and np.all(np.isfinite(model))
            and np.all(data > 0) and np.all(model > 0)):
        raise ValueError("data_scale, model_scale: expected finite scales > 0 (in steps)")
    if family == "laplace":
        p_zero = -np.expm1(-(1.0 - rounding) / data)
        mean_k = 1.0 / -np.expm1(-1.0 / data)  # E[|k| | k != 0]
        cost_zero = -np.log2(np.maximum(-np.expm1(-(1.0 - rounding) / model), _FLOOR))
        cost_one = -np.log2(np.maximum(0.5 * -np.expm1(-1.0 / model), _FLOOR))
        return p_zero * cost_zero + (1.0 - p_zero) * (
            cost_one + (mean_k - rounding) / (model * _LN2))
    out = np.empty(data.shape)
    high = np.minimum(data, model) > _HIGH_RESOLUTION
    out[high] = (0.5 * np.log2(2 * np.pi * model[high] ** 2)
                 + (data[high] ** 2 + 1.0 / 12.0) / (2.0 * model[high] ** 2 * _LN2))
    low = ~high
    if low.any():
        d, m = data[low], model[low]
        half = int(math.ceil(12.0 * max(float(d.max()), 1.0)))
        k = np.arange(-half, half + 1, dtype=float)[:, None]
        p = special.ndtr((k + 0.5) / d) - special.ndtr((k - 0.5) / d)
        q = np.maximum(special.ndtr((k + 0.5) / m) - special.ndtr((k - 0.5) / m), _FLOOR)
        out[low] = -(p * np.log2(q)).sum(0)
    return out


# ----------------------------------------------------------------- the plan of a codec
def _scale(x: np.ndarray, centre, family: str) -> np.ndarray:
    """RMS (Gaussian) or mean absolute deviation (Laplace) of the columns about ``centre``."""
    d = x - centre
    value = np.sqrt((d * d).mean(0)) if family == "gaussian" else np.abs(d).mean(0)
    return np.maximum(value, 1e-300)


def _lag1_residuals(z: np.ndarray, predicted: int, count: int) -> np.ndarray:
    """Residuals ``Z_t − b − W Z_{t−1}[:P]`` of every window (ridge fitted on the first
    ``count`` windows; token 1 is predicted from zeros, as the codec does)."""
    previous = np.concatenate([np.zeros_like(z[:, :1, :predicted]),
                               z[:, :-1, :predicted]], axis=1)
    if predicted == 0:
        return z - z[:count].reshape(-1, z.shape[2]).mean(0)
    x, y = previous[:count].reshape(-1, predicted), z[:count].reshape(-1, z.shape[2])
    x_mean, y_mean = x.mean(0), y.mean(0)
    gram = (x - x_mean).T @ (x - x_mean)
    ridge = LAG1_RIDGE * max(float(np.trace(gram)) / predicted, 1e-300)
    weights = np.linalg.solve(gram + ridge * np.eye(predicted), (x - x_mean).T @ (y - y_mean))
    return z - y_mean - (previous - x_mean) @ weights


def prediction_plan(codec, fit_hidden: torch.Tensor, statistics_windows: int | None = None):
    """What the prediction needs: per channel the data and model scales and the steps.

    Parameters
    ----------
    codec : HiddenStateCodec
        A fitted :class:`~rdgap.codecs.entropy_models.factorized.FactorizedCodec` or
        :class:`~rdgap.codecs.entropy_models.context.ContextCodec` (or subclass).
    fit_hidden : torch.Tensor, shape (windows, positions, width)
        Every fit window, the statistics windows first.
    statistics_windows : int, optional
        How many leading fit windows the codec's statistics came from (default:
        half, the rule of :class:`rdgap.codecs.fit.FitContext`); the rest are the
        held-out fit windows that give the data scales.

    Returns
    -------
    dict or None
        ``family``, ``rounding``, ``rest`` and ``first`` (each ``(data scale,
        model scale, step)`` arrays, scales in the codec's units), ``model``
        (what was predicted, in words), ``held_out`` (windows); ``None`` for a
        codec without per-channel steps of these kinds.

    Raises
    ------
    ValueError
        If ``fit_hidden`` is not (windows >= 2, positions >= 2, width) or
        ``statistics_windows`` is not in ``[1, windows)``.
    """
    from rdgap.codecs.entropy_models.context import ContextCodec
    from rdgap.codecs.entropy_models.factorized import FactorizedCodec

    if not isinstance(codec, (FactorizedCodec, ContextCodec)):
        return None
    if not isinstance(fit_hidden, torch.Tensor) or fit_hidden.dim() != 3 \
            or fit_hidden.shape[0] < 2 or fit_hidden.shape[1] < 2:
        raise ValueError(f"fit_hidden: expected (windows >= 2, positions >= 2, width), got "
                         f"{tuple(getattr(fit_hidden, 'shape', ()))}")
    windows = fit_hidden.shape[0]
    count = windows // 2 if statistics_windows is None else int(statistics_windows)
    if not 1 <= count < windows:
        raise ValueError(f"statistics_windows: expected 1 <= count < {windows} (the rest are "
                         f"held out), got {statistics_windows}")
    data = fit_hidden.detach().to("cpu", torch.float64).numpy()
    rest, first = data[:, 1:], data[:, 0]
    held_first = first[count:]
    if isinstance(codec, ContextCodec):
        family, rounding = "laplace", codec.rounding
        z = (rest - codec.mean) @ codec.analysis.T
        residual = _lag1_residuals(z, codec.predicted, count)
        flat = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731
        rest_scales = (_scale(flat(residual[count:]), 0.0, family),
                       _scale(flat(residual[:count]), 0.0, family))
        first_centre, first_model = codec.first_mean, codec.first_scale
        model = (f"context: Laplace dead zone (rho {rounding:g}) on the lag-1 linear "
                 f"prediction residual ({codec.predicted} predicting components); "
                 f"hyperprior and side bits not modelled")
        if type(codec) is not ContextCodec:
            model += f"; {type(codec).__name__}'s extra context (e.g. token ids) not modelled"
    else:
        family, rounding = codec.family, 0.5
        flat_rest = rest[count:].reshape(-1, rest.shape[-1])
        if codec.analysis is not None:
            flat_rest = (flat_rest - codec.stats.mean) @ codec.analysis.T
            centre = 0.0
        else:
            centre = codec.stats.mean
        rest_scales = (_scale(flat_rest, centre, family), codec.stats.scale)
        first_centre, first_model = codec.stats.first_mean, codec.stats.first_scale
        model = (f"factorized {family}" + (" after the KLT" if codec.analysis is not None
                                           else "") + ": discretised cross-entropy")
    first_data = _scale(held_first, first_centre, family)
    return {"family": family, "rounding": rounding,
            "rest": (rest_scales[0], np.asarray(rest_scales[1], float),
                     np.asarray(codec.step, float)),
            "first": (first_data, np.asarray(first_model, float),
                      np.asarray(codec.first_step, float)),
            "model": model + "; data scales from the held-out fit windows",
            "held_out": windows - count, "statistics_windows": count}


def plan_rate(plan: dict, tokens: int, factor: float = 1.0, in_sample: bool = False) -> float:
    """Predicted payload bits per token of windows of ``tokens`` at the steps × ``factor``;
    ``in_sample`` uses the model scales as the data scales too (no held-out correction)."""
    if tokens < 1 or not factor > 0:
        raise ValueError(f"tokens, factor: expected tokens >= 1 and factor > 0, got "
                         f"{tokens}, {factor}")
    bits = []
    for data, model, step in (plan["rest"], plan["first"]):
        data = model if in_sample else data
        bits.append(float(discretised_cross_entropy(
            plan["family"], data / (factor * step), model / (factor * step),
            plan["rounding"]).sum()))
    return (bits[1] + (tokens - 1) * bits[0]) / tokens


def rate_prediction(codec, fit_hidden: torch.Tensor, tokens: int, measured: float | None,
                    header_bits: float = 0.0, statistics_windows: int | None = None) -> dict:
    """The ``rate_predicted*`` statistics of one row (None where the codec has no plan).

    ``rate_predicted`` = :func:`plan_rate` at the codec's steps + ``header_bits`` (bits per
    token of the stream header); ``rate_prediction_relative_error`` = (predicted −
    measured) / measured; ``rate_predicted_in_sample`` the same without the held-out
    correction; ``rate_prediction_curve`` = ``{"factor", "rate"}`` at
    :data:`CURVE_FACTORS` (header included).
    """
    out = dict.fromkeys(("rate_predicted", "rate_prediction_relative_error",
                         "rate_predicted_in_sample", "rate_prediction_curve",
                         "rate_prediction_model"))
    plan = prediction_plan(codec, fit_hidden, statistics_windows)
    if plan is None:
        return out
    predicted = plan_rate(plan, tokens) + header_bits
    out.update(rate_predicted=predicted,
               rate_predicted_in_sample=plan_rate(plan, tokens, in_sample=True) + header_bits,
               rate_prediction_model=plan["model"],
               rate_prediction_curve={"factor": list(CURVE_FACTORS), "rate": [
                   plan_rate(plan, tokens, f) + header_bits for f in CURVE_FACTORS]})
    if measured is not None and measured > 0:
        out["rate_prediction_relative_error"] = (predicted - measured) / measured
    return out
