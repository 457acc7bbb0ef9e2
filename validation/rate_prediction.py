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
    are Laplace with the codec's dead-zone rounding, model scale from the
    statistics windows; the per-token scale hyperprior is followed on the
    held-out residuals (each token's group energy gives its side latent and its
    table, :func:`_hyperprior_bits`, plus the side latents' empirical entropy).
    Not modelled: that the codec predicts from the *quantized* previous token,
    and for ``klt-context-tokens`` the token ids and their embeddings.
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

from rdgap.codecs.coders.ans import ESCAPE_BITS
from rdgap.codecs.entropy_models.tables import PROBABILITY_FLOOR as _FLOOR, half_width

#: Relative error within which a prediction is "within tolerance" (issue 14's ±10 %).
PREDICTION_TOLERANCE = 0.10
#: Step factors (relative to the codec's steps) at which the curve is sampled.
CURVE_FACTORS = tuple(float(f) for f in np.exp2(np.linspace(-2.0, 2.0, 17)))
#: Above this scale (in steps) the cross-entropy uses its high-resolution form.
_HIGH_RESOLUTION = 8.0
#: The relative ridge of the lag-1 predictor (of the mean diagonal of XᵀX).
LAG1_RIDGE = 1e-3
#: Held-out tokens the context codecs' hyperprior term is evaluated on (evenly spaced).
HYPERPRIOR_TOKENS = 2048
_LN2 = math.log(2.0)


def discretised_cross_entropy(family: str, data_scale, model_scale,
                              rounding: float = 0.5) -> np.ndarray:
    r"""Expected bits of one symbol: data of ``family`` at ``data_scale``, coded with the
    codec's discretised ``family`` table at ``model_scale`` (both zero-mean, in steps).

    The table is the codec's (:func:`rdgap.codecs.entropy_models.tables.discretised_table`):
    symbols ``|k| <= K`` with ``K`` = :func:`~rdgap.codecs.entropy_models.tables.half_width`
    of the model scale, each costing ``−log2 q(k)`` (``q`` floored at
    :data:`~rdgap.codecs.entropy_models.tables.PROBABILITY_FLOOR`), and an escape for
    ``|k| > K`` costing ``−log2 q(escape)`` plus
    :data:`~rdgap.codecs.coders.ans.ESCAPE_BITS` for the value.

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
        entropy (plus the escapes' cost). Laplace in closed form (truncated
        geometric sums; ``θ = e^{−1/b}``, ``q(0) = 1 − e^{−(1−ρ)/b}``,
        ``q(±k) = ½ e^{−(k−ρ)/b}(1 − θ)``). Gaussian: the sum over the cells, or
        where both scales exceed :data:`_HIGH_RESOLUTION` steps (and the data
        scale is at most twice the model's, so escapes are below 10⁻⁶)
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
    width = half_width(model).astype(float)
    if family == "laplace":
        return _laplace_cross_entropy(data, model, width, rounding)
    out = np.empty(data.shape)
    high = (np.minimum(data, model) > _HIGH_RESOLUTION) & (data <= 2.0 * model)
    out[high] = (0.5 * np.log2(2 * np.pi * model[high] ** 2)
                 + (data[high] ** 2 + 1.0 / 12.0) / (2.0 * model[high] ** 2 * _LN2))
    low = ~high
    if low.any():
        out[low] = _gaussian_cells(data[low], model[low], width[low])
    return out


def _laplace_cross_entropy(data, model, width, rounding) -> np.ndarray:
    nonzero_d, nonzero_m = np.exp(-(1.0 - rounding) / data), np.exp(-(1.0 - rounding) / model)
    theta_d = np.exp(-1.0 / data)
    cost_zero = -np.log2(np.maximum(1.0 - nonzero_m, _FLOOR))
    ceiling = -math.log2(_FLOOR)  # the floor caps every cost
    cost_one = np.minimum(1.0 + (1.0 - rounding) / (model * _LN2)
                          - np.log2(-np.expm1(-1.0 / model)), ceiling)
    # E[(|k| − 1) 1{1 <= |k| <= K}] / P(k != 0) for the geometric law of |k| on {1, 2, ...}
    last = theta_d ** width
    inside = theta_d * (1.0 - width * theta_d ** (width - 1.0) + (width - 1.0) * last) \
        / -np.expm1(-1.0 / data)
    escape = nonzero_d * last
    cost_escape = np.minimum((width + 1.0 - rounding) / (model * _LN2), ceiling) + ESCAPE_BITS
    return ((1.0 - nonzero_d) * cost_zero
            + nonzero_d * ((1.0 - last) * cost_one + inside / (model * _LN2))
            + escape * cost_escape)


def _gaussian_cells(data, model, width) -> np.ndarray:
    """The cell sum of the Gaussian cross-entropy over each table's alphabet, and escapes."""
    k = np.arange(0, int(width.max()) + 1, dtype=float)[:, None]
    def mass(scale):  # P(|S| = k), from the upper tail (no cancellation)
        cell = special.ndtr(-(k - 0.5) / scale) - special.ndtr(-(k + 0.5) / scale)
        return np.where(k == 0, 1.0 - 2.0 * special.ndtr(-0.5 / scale), 2.0 * cell)

    p, q = mass(data), mass(model)
    q = np.where(k == 0, q, 0.5 * q)  # one signed symbol of |k| >= 1
    inside = k <= width
    cost = -np.log2(np.maximum(q, _FLOOR))
    bits = np.where(inside, p * cost, 0.0).sum(0)
    escape_d = 2.0 * special.ndtr(-(width + 0.5) / data)
    escape_m = 2.0 * special.ndtr(-(width + 0.5) / model)
    return bits + escape_d * (-np.log2(np.maximum(escape_m, _FLOOR)) + ESCAPE_BITS)


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
        :class:`~rdgap.codecs.entropy_models.context.ContextCodec` (or subclass), or a
        :class:`~rdgap.codecs.quantizers.window_control.WindowControlledCodec` of one
        (predicted as its base at factor 1), or a
        :class:`~rdgap.codecs.quantizers.rate_cap.RateCappedCodec` of one (its base).
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
    from rdgap.codecs.quantizers.rate_cap import RateCappedCodec
    from rdgap.codecs.quantizers.window_control import WindowControlledCodec

    if isinstance(codec, RateCappedCodec):  # its base: factor 1 wherever the cap does not bind
        plan = prediction_plan(codec.base, fit_hidden, statistics_windows)
        if plan is not None:
            plan["model"] += "; rate-capped: the base codec (windows where the cap binds not modelled)"
        return plan
    if isinstance(codec, WindowControlledCodec):  # its base at factor 1
        plan = prediction_plan(codec.base, fit_hidden, statistics_windows)
        if plan is not None:
            plan["model"] += ("; window-controlled: the base codec at step factor 1 (the "
                              "per-window factors and the rate cap not modelled)")
        return plan
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
    context = None
    if isinstance(codec, ContextCodec):
        family, rounding = "laplace", codec.rounding
        z = (rest - codec.mean) @ codec.analysis.T
        residual = _lag1_residuals(z, codec.predicted, count)
        flat = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731
        rest_scales = (_scale(flat(residual[count:]), 0.0, family),
                       _scale(flat(residual[:count]), 0.0, family))
        context = {"held_out": _tokens(flat(residual[count:])),
                   "in_sample": _tokens(flat(residual[:count])),
                   "group_starts": np.asarray(codec.group_starts)}
        first_centre, first_model = codec.first_mean, codec.first_scale
        model = (f"context: Laplace dead zone (rho {rounding:g}) on the lag-1 linear "
                 f"prediction residual ({codec.predicted} predicting components), "
                 f"per-token scales of the hyperprior from the residuals' token energies "
                 f"(+ their empirical side entropy); the quantized previous token not "
                 f"modelled")
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
            "held_out": windows - count, "statistics_windows": count, "context": context}


def _tokens(rows: np.ndarray, limit: int = HYPERPRIOR_TOKENS) -> np.ndarray:
    """At most ``limit`` rows, evenly spaced (the hyperprior's per-token sums cost time)."""
    if rows.shape[0] <= limit:
        return rows
    return rows[np.linspace(0, rows.shape[0] - 1, limit).astype(int)]


def _hyperprior_bits(residual: np.ndarray, base: np.ndarray, starts: np.ndarray,
                     rounding: float) -> float:
    """Mean bits per token of residual rows ``(N, C)`` (in steps) under the context codec's
    per-token scale hyperprior: per token and group the gain ``g`` = mean of
    ``|x_j| / base_j`` over the group, the side latent ``k = round(log2 g · R / GAIN_STEP)``
    (clipped), each component coded with the Laplace table of scale ``base_j · 2^{k ·
    GAIN_STEP / R}`` while its data follow the Laplace law of scale ``base_j · g``; plus
    the empirical entropy of each group's side latents."""
    from rdgap.codecs.entropy_models.context import GAIN_LIMIT, GAIN_STEP, SCALE_RESOLUTION

    sizes = np.diff(np.append(starts, residual.shape[1]))
    group_of = np.repeat(np.arange(starts.size), sizes)
    gain = np.add.reduceat(np.abs(residual) / base, starts, axis=1) / sizes
    gain = np.maximum(gain, 1e-12)
    side = np.clip(np.rint(np.log2(gain) * SCALE_RESOLUTION / GAIN_STEP), -GAIN_LIMIT,
                   GAIN_LIMIT)
    model = base * np.exp2(side[:, group_of] * GAIN_STEP / SCALE_RESOLUTION)
    bits = discretised_cross_entropy("laplace", np.maximum(base * gain[:, group_of], 1e-12),
                                     model, rounding).sum(1).mean()
    for column in side.T:
        counts = np.unique(column, return_counts=True)[1] / column.size
        bits += float(-(counts * np.log2(counts)).sum())
    return float(bits)


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
    context = plan.get("context")
    if context is not None:
        step = factor * plan["rest"][2]
        residual = context["in_sample" if in_sample else "held_out"] / step
        bits[0] = _hyperprior_bits(residual, plan["rest"][1] / step, context["group_starts"],
                                   plan["rounding"])
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
