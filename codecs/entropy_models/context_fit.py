"""Fit the context / hyperprior codec of :mod:`rdgap.codecs.entropy_models.context` on cached hidden states.

Training is closed-form and takes seconds on a CPU: the predictor is a ridge
regression of each token's KLT components on the previous token's quantized
components (ridge chosen on held-out fit windows by the Laplace code length),
the per-component scales and the side-latent densities are maximum-likelihood
estimates from the encoder's own causal loop run on the fit windows.
"""

from __future__ import annotations

import numpy as np
import torch

from ..quantizers import deadzone
from .context import GAIN_LIMIT, GAIN_STEP, SCALE_RESOLUTION, ContextCodec, scale_index, table_scale
from .deep_density import fit_deep_density
from .model_fit import ModelFit

#: Ridge strengths tried, relative to the mean diagonal of ``XᵀX``; ``inf`` means no predictor.
RIDGES = (1e-3, 1e-2, 1e-1, 1.0, np.inf)
#: Alternations of side latents and per-component scales.
SCALE_ITERATIONS = 2
#: Leading KLT components the predictor uses (and predicts).
PREDICTED = 128
#: Side-latent density models of :func:`side_probabilities`.
SIDE_DENSITIES = ("histogram", "deep")


def laplace_bits(symbols: np.ndarray, scale: np.ndarray, rounding: float) -> float:
    """``Σ −log2 q(S)`` under dead-zone discretised Laplace laws of ``scale`` steps
    (the tables of :func:`rdgap.codecs.entropy_models.tables.discretised_table` without floor or escape)."""
    a = np.abs(symbols)
    zero = -np.expm1(-(1.0 - rounding) / scale)
    other = 0.5 * np.exp(-(np.maximum(a, 1) - rounding) / scale) * -np.expm1(-1.0 / scale)
    p = np.where(a == 0, zero, other)
    return float(-np.log2(np.maximum(p, 2.0 ** -40)).sum())


def _open_loop_context(z: np.ndarray, step: np.ndarray, rounding: float) -> np.ndarray:
    """Previous tokens' components as a decoder would see them without prediction
    (dead-zone quantized, centroid reconstruction): the regressors of the predictor."""
    x = z / step
    index = scale_index(np.abs(x).reshape(-1, x.shape[-1]).mean(0))
    symbols = deadzone.quantize(x, rounding)
    decoded = step * deadzone.dequantize(symbols, deadzone.centroid_offset(table_scale(index),
                                                                           rounding))
    return np.concatenate([np.zeros_like(decoded[:, :1]), decoded[:, :-1]], axis=1)


def _ridge_solutions(x: np.ndarray, y: np.ndarray, ridges):
    """``(W, b)`` of ridge regressions ``y ≈ b + W x`` for each relative strength."""
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ xc
    values, vectors = np.linalg.eigh(gram)
    cross = vectors.T @ (xc.T @ yc)
    level = max(float(np.trace(gram)) / gram.shape[0], 1e-300)
    for ridge in ridges:
        if not np.isfinite(ridge):
            yield ridge, np.zeros((y.shape[1], x.shape[1])), y_mean
            continue
        coefficients = vectors @ (cross / (values + ridge * level)[:, None])  # (C_in, C_out)
        yield ridge, coefficients.T, y_mean - coefficients.T @ x_mean


def fit_predictor(z: np.ndarray, step: np.ndarray, rounding: float,
                  ridges=RIDGES) -> tuple[np.ndarray, np.ndarray, float]:
    """Predictor ``(W, b)`` of ``Z_t`` from the quantized ``Z_{t−1}``, and its ridge.

    The ridge is the one whose held-out windows (the last quarter) cost the
    fewest Laplace bits; the returned predictor is refitted on every window.
    """
    if z.ndim != 3 or z.shape[0] < 2:
        raise ValueError(f"z: expected KLT components of ≥ 2 windows (windows, tokens, "
                         f"channels), got shape {z.shape}")
    return fit_ridge(_open_loop_context(z, step, rounding), z, step, rounding, ridges)


def fit_ridge(x: np.ndarray, z: np.ndarray, step: np.ndarray, rounding: float,
              ridges=RIDGES) -> tuple[np.ndarray, np.ndarray, float]:
    """Ridge regression ``z ≈ b + W x`` over windows ``(windows, tokens, ·)``, the ridge
    chosen by the Laplace bits of ``z``'s residual (dead-zone quantized with ``step``) on
    held-out windows (the last quarter); ``(W, b, ridge)`` refitted on every window."""
    features, channels = x.shape[-1], z.shape[-1]
    held = max(1, z.shape[0] // 4)
    train_x = x[:-held].reshape(-1, features)
    train_y = z[:-held].reshape(-1, channels)
    test_x = x[-held:].reshape(-1, features)
    test_y = z[-held:].reshape(-1, channels)
    best = (np.inf, RIDGES[-1])
    for ridge, weights, bias in _ridge_solutions(train_x, train_y, ridges):
        scale = np.abs(train_y - bias - train_x @ weights.T).mean(0) / step
        residual = (test_y - bias - test_x @ weights.T) / step
        bits = laplace_bits(deadzone.quantize(residual, rounding), table_scale(scale_index(scale)),
                            rounding)
        best = min(best, (bits, ridge))
    ridge = best[1]
    _, weights, bias = next(_ridge_solutions(x.reshape(-1, features),
                                             z.reshape(-1, channels), [ridge]))
    return weights, bias, ridge


def side_probabilities(side: np.ndarray, groups: int, density: str = "histogram") -> np.ndarray:
    """Each group's density of side latents ``(..., G)``: ``"histogram"`` (counts + ½,
    escape at 2^-20) or ``"deep"`` (the learned flexible density of
    :mod:`rdgap.codecs.entropy_models.deep_density`, as its integer table)."""
    if density not in SIDE_DENSITIES:
        raise ValueError(f"density: expected one of {SIDE_DENSITIES}, got {density!r}")
    if density == "deep":
        return fit_deep_density(side.reshape(-1, groups), GAIN_LIMIT)
    rows = []
    for g in range(groups):
        counts = np.bincount(side[..., g].ravel() + GAIN_LIMIT, minlength=2 * GAIN_LIMIT + 1)
        p = np.append(counts + 0.5, 0.0)
        p = p / p.sum() * (1 - 2.0 ** -20)
        p[-1] = 1.0 - p[:-1].sum()
        rows.append(p)
    return np.array(rows)


def _klt_components(codec: ContextCodec, hidden: torch.Tensor) -> np.ndarray:
    return (hidden.detach().double().numpy()[:, 1:] - codec.mean) @ codec.analysis.T


def refit_side_density(codec: ContextCodec, hidden: torch.Tensor,
                       density: str = "histogram", input_ids=None) -> ContextCodec:
    """``codec`` with side-latent densities (``density``, see :func:`side_probabilities`)
    re-estimated from its own side latents on ``hidden`` (fit windows; ``input_ids``
    ``(windows, tokens)`` for a codec that predicts from them). Only the rate
    changes: the reconstruction is identical."""
    if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3 or hidden.shape[1] < 2:
        raise ValueError("hidden: expected fit windows (windows, tokens ≥ 2, channels), got "
                         f"{tuple(getattr(hidden, 'shape', ()))}")
    offset = None
    if getattr(codec, "needs_input_ids", False):
        if input_ids is None or len(input_ids) != hidden.shape[0]:
            raise ValueError(f"input_ids: expected the token ids of the {hidden.shape[0]} "
                             f"windows of hidden (the codec predicts from them)")
        offset = np.stack([codec.offsets(codec._ids(ids, hidden.shape[1]))
                           for ids in input_ids])
    side = codec.analyse(_klt_components(codec, hidden), offset).side
    return codec.rescaled(1.0, side_probabilities(side, codec.group_starts.size, density))


def fit_context_codec(hidden: torch.Tensor, mean: np.ndarray, analysis: np.ndarray,
                      synthesis: np.ndarray, step: np.ndarray, first_mean: np.ndarray,
                      first_scale: np.ndarray, first_step: np.ndarray, groups: int = 1,
                      rounding: float = 0.4, predicted: int = PREDICTED,
                      label: str = "", side_density: str = "histogram") -> ContextCodec:
    """Fit predictor, per-component scales and side-latent densities on fit windows.

    Parameters
    ----------
    hidden : torch.Tensor
        ``(windows, tokens ≥ 2, channels)`` hidden states of fit windows.
    mean, analysis, synthesis : arrays
        Mean of positions ≥ 1 and the KLT (``A``, ``A^{-1}``).
    step : (C,) array
        Step of each KLT component.
    first_mean, first_scale, first_step : (C,) arrays
        Position 0's statistics and steps.
    groups : int
        Side latents per token (contiguous groups of components, KLT order).
    rounding : float
        Dead-zone offset ``ρ``.
    predicted : int
        Leading components the predictor uses (at most the number of channels).
    label : str
        Free text saved with the codec.
    side_density : {"histogram", "deep"}
        Model of the side-latent densities (:func:`side_probabilities`).
    """
    return fit_context_model(hidden, mean, analysis, synthesis, step, first_mean, first_scale,
                             first_step, groups=groups, rounding=rounding, predicted=predicted,
                             label=label, side_density=side_density)


def fit_context_model(hidden: torch.Tensor, mean: np.ndarray, analysis: np.ndarray,
                      synthesis: np.ndarray, step: np.ndarray, first_mean: np.ndarray,
                      first_scale: np.ndarray, first_step: np.ndarray, groups: int = 1,
                      rounding: float = 0.4, predicted: int = PREDICTED, label: str = "",
                      side_density: str = "histogram", features: np.ndarray | None = None,
                      make=ContextCodec, refine=None):
    """:func:`fit_context_codec` with optional extra regressors of the mean.

    ``features`` ``(windows, tokens − 1, F)`` are regressors the decoder knows
    without decoding (e.g. token embeddings): the mean of token ``t`` becomes
    ``m_t = b + W Ẑ_{t−1} + V f_t`` (``W`` on the ``P`` leading components as before,
    ``V`` on every component; ``[W V]`` of the leading components and ``V`` of the
    rest are two ridge regressions, each with its held-out ridge). The codec is
    built by ``make(**arguments)``, where the arguments of :class:`ContextCodec`
    get ``token_weights = V`` when ``features`` is given; its ``analyse`` is then
    called with the offsets ``V f_t``.

    ``refine`` (optional, with ``features``): ``refine(residual) -> (offset, arguments)``
    of the ridge's open-loop residual ``Z_t − b − W Z̃_{t−1} − V f_t`` on the fit windows
    (``Z̃`` the previous token dead-zone quantized without prediction, the ridge's own
    regressors), returning a further offset ``(windows, tokens − 1, C)`` the decoder
    also knows, and the extra arguments of ``make`` that carry it (e.g. the per-id table
    of :mod:`rdgap.codecs.entropy_models.token_table`). Scales and side densities are
    then fitted with both offsets.
    """
    if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3 or hidden.shape[1] < 2:
        raise ValueError("hidden: expected fit windows (windows, tokens ≥ 2, channels), got "
                         f"{tuple(getattr(hidden, 'shape', ()))}")
    channels = hidden.shape[2]
    if not 1 <= groups <= channels:
        raise ValueError(f"groups: expected 1..{channels} side latents per token, got {groups}")
    step = np.asarray(step, dtype=np.float64)
    data = hidden.detach().double().numpy()
    z = (data[:, 1:] - mean) @ np.asarray(analysis).T
    if features is not None and features.shape[:2] != z.shape[:2]:
        raise ValueError(f"features: expected shape {z.shape[:2]} + (F,), got {features.shape}")
    p = min(max(predicted, 0), channels)
    weights, bias, token_weights, ridge = _fit_means(z, step, rounding, p, features)
    offset = None if features is None else features @ token_weights.T
    extra = {} if features is None else {"token_weights": token_weights}
    if refine is not None:
        if features is None:
            raise ValueError("refine: expected features too (it refines V f_t's residual)")
        residual = z - bias - offset
        if p:
            residual[..., :p] -= _open_loop_context(z[..., :p], step[:p], rounding) @ weights.T
        added, arguments = refine(residual)
        offset = offset + added
        extra.update(arguments)
    starts = np.array([c[0] for c in np.array_split(np.arange(channels), groups)])
    centred = z - bias if offset is None else z - bias - offset
    base = scale_index(np.abs(centred).reshape(-1, channels).mean(0) / step)
    uniform = np.full((groups, 2 * GAIN_LIMIT + 2), 1.0 / (2 * GAIN_LIMIT + 2))

    def build(base_index, probabilities):
        return make(mean=mean, analysis=analysis, synthesis=synthesis, step=step,
                    base_index=base_index, predictor=weights, bias=bias, group_starts=starts,
                    side_probabilities=probabilities, first_mean=first_mean,
                    first_scale=first_scale, first_step=first_step, rounding=rounding,
                    label=f"{label} ridge={ridge}".strip(), **extra)

    codec = build(base, uniform)
    for _ in range(SCALE_ITERATIONS):
        result = codec.analyse(z, offset)
        gain = np.exp2(result.side[..., codec.group_of] * GAIN_STEP / SCALE_RESOLUTION)
        base = scale_index((np.abs(result.residual) / step / gain).reshape(-1, channels).mean(0))
        codec = build(base, uniform)
    result = codec.analyse(z, offset)
    return build(base, side_probabilities(result.side, groups, side_density))


def _fit_means(z: np.ndarray, step: np.ndarray, rounding: float, p: int,
               features: np.ndarray | None):
    """``(W, b, V, ridge)`` of ``m_t = b + W Ẑ_{t−1} + V f_t`` (``V`` None without
    features; ``ridge`` a label: the chosen ridges)."""
    channels = z.shape[-1]
    if features is None:
        if p:
            weights, bias_p, ridge = fit_predictor(z[..., :p], step[:p], rounding)
        else:  # no context: every component predicted by its mean
            weights, bias_p, ridge = np.zeros((0, 0)), np.zeros(0), np.inf
        return weights, np.concatenate([bias_p, z[..., p:].mean((0, 1))]), None, f"{ridge:g}"
    if z.shape[0] < 2:
        raise ValueError(f"hidden: expected ≥ 2 fit windows to choose a ridge, got {z.shape[0]}")
    token_weights = np.zeros((channels, features.shape[-1]))
    weights, bias, ridges = np.zeros((p, p)), np.zeros(channels), []
    if p:
        x = np.concatenate([_open_loop_context(z[..., :p], step[:p], rounding), features], -1)
        both, bias[:p], ridge = fit_ridge(x, z[..., :p], step[:p], rounding)
        weights, token_weights[:p] = both[:, :p], both[:, p:]
        ridges.append(ridge)
    if p < channels:
        token_weights[p:], bias[p:], ridge = fit_ridge(features, z[..., p:], step[p:], rounding)
        ridges.append(ridge)
    return weights, bias, token_weights, "/".join(f"{r:g}" for r in ridges)


def fit_model(start, context, input_ids=None, rdo: float = 0.0, **options) -> ModelFit:
    """The ``context`` entropy model at a fit start (the pipeline's interface,
    :mod:`rdgap.codecs.entropy_models.model_fit`): fitted once on ``context.hidden`` at
    T7's scale (:func:`fit_context_codec`, ``**options``); another scale only rescales
    its steps and table indices (:meth:`ContextCodec.rescaled`), so ΔCE is a
    deterministic, near-monotone function of the scale; at the chosen scale the
    side-latent densities are re-estimated (:func:`refit_side_density`: rate only).
    ``rdo`` (recipe ``klt-context-rdoq``): the encoder's greedy RDO weight in squared
    steps per bit (:func:`rdgap.codecs.quantizers.deadzone.rdo_symbols`, kept at every
    scale; the model is fitted without it). ``input_ids`` is unused."""
    stats, klt, initial = start.stats, start.transform, start.scale
    reference = fit_context_codec(context.hidden, stats.mean, klt.analysis, klt.synthesis,
                                  initial * start.step, stats.first_mean, stats.first_scale,
                                  initial * start.first_step, label=start.label, **options)
    if rdo:
        reference = ContextCodec(**{**reference._constructor_arguments(), "rdo": rdo})
    return ModelFit(lambda alpha: reference.rescaled(
                        alpha / initial, label=f"{reference.label} scale={alpha:.6g}"),
                    lambda codec: refit_side_density(codec, context.hidden))
