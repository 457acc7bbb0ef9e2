"""Fit the ``context-tokens`` entropy model (:mod:`rdgap.codecs.entropy_models.token_context`).

:func:`fit_model` is this entropy model's part of the one fit pipeline
(:func:`rdgap.codecs.fit.fit_codec`), as ``klt-context``'s is
:func:`rdgap.codecs.entropy_models.context_fit.fit_model`: the Fisher-whitened KLT and
T7's steps from the first fit windows, the codec fitted once at T7's predicted scale
(THEORY.md T7: ``ΔCE ≈ Σ Δ²/24`` in the whitened domain), the step scale calibrated on
the probe windows by rescaling only, the side-latent densities refitted at the chosen
scale. The only difference: the windows' token ids are needed (to fit, to calibrate,
and by every ``encode``). :func:`t7_start` and :func:`fit_at_t7_scale` give T7's
uncalibrated start (the split screen's).
"""

from __future__ import annotations

import numpy as np
import torch

from .context import ContextCodec
from .context_fit import fit_context_codec, refit_side_density
from ..fit import FitContext, FittedCodec, base_steps, fit_codec, unit_delta_ce
from .model_fit import ModelFit
from .token_context import fit_token_context_codec

VARIANT = "klt-context-tokens"


def embedding_table(context: FitContext) -> np.ndarray:
    """The LM's token-embedding table (``(V, D)`` float32) of the split's model."""
    return context.split.model.get_input_embeddings().weight.detach().float().numpy()


def t7_start(context: FitContext, target_delta_ce: float):
    """The KLT statistics and T7 steps of the context codecs, and T7's scale for a level.

    Returns ``(stats, base, first_base, klt, unit, alpha)``: the Fisher-whitened KLT
    statistics, base steps (positions ≥ 1, position 0) and transform of
    :func:`rdgap.codecs.fit.base_steps`, THEORY.md T7's predicted ΔCE ``unit`` at scale 1
    (``Σ Δ²/24`` per token in the whitened domain) and ``alpha = √(target / unit)``, the
    scale T7 predicts for ``target_delta_ce`` (ΔCE ∝ α²; a prediction, not a bound).

    Parameters
    ----------
    context : FitContext
        Statistics windows and Fisher (the probe is not used).
    target_delta_ce : float
        The level (nats/token, > 0).

    Raises
    ------
    ValueError
        Naming ``target_delta_ce``, or naming this variant when the statistics windows are
        too few for the KLT.
    """
    if not target_delta_ce > 0:
        raise ValueError(f"target_delta_ce: expected a ΔCE level > 0 nats/token, got "
                         f"{target_delta_ce}")
    # the same KLT and steps as klt-context; an error names this variant
    stats, base, first_base, klt, _ = base_steps("klt-context", context, name=VARIANT)
    unit = unit_delta_ce("klt-context", context.fisher, base, first_base)
    return stats, base, first_base, klt, unit, float(np.sqrt(target_delta_ce / unit))


def fit_at_t7_scale(context: FitContext, input_ids: torch.Tensor, target_delta_ce: float,
                    embedding=None) -> tuple[float, dict[str, ContextCodec]]:
    """``klt-context`` and ``klt-context-tokens`` fitted once on ``context.hidden`` at T7's
    scale for ``target_delta_ce`` (:func:`t7_start`), with no calibration (no probe pass):
    ``(alpha, {variant: codec})``. The ΔCE they reach is what T7 predicts only
    approximately; measure it (e.g. ``benchmarks/split_screen.py``).

    Parameters
    ----------
    context : FitContext
        Statistics windows and Fisher.
    input_ids : torch.Tensor
        ``(windows, tokens)`` ids of ``context.hidden``.
    target_delta_ce : float
        The level (nats/token, > 0) that sets T7's scale.
    embedding : array, optional
        The token-embedding table (default: the split model's input embeddings).
    """
    stats, base, first_base, klt, _, alpha = t7_start(context, target_delta_ce)
    common = (stats.mean, klt.analysis, klt.synthesis, alpha * base, stats.first_mean,
              stats.first_scale, alpha * first_base)
    table = embedding_table(context) if embedding is None else embedding
    return alpha, {
        "klt-context": fit_context_codec(context.hidden, *common,
                                         label=f"klt-context T7 scale={alpha:.4g}"),
        VARIANT: fit_token_context_codec(context.hidden, input_ids, table, *common,
                                         label=f"{VARIANT} T7 scale={alpha:.4g}")}


def fit_model(start, context: FitContext, input_ids: torch.Tensor, embedding=None,
              lags=(0,), rdo: float = 0.0, fitter=fit_token_context_codec) -> ModelFit:
    """The ``context-tokens`` entropy model at a fit start (the pipeline's interface,
    :mod:`rdgap.codecs.entropy_models.model_fit`): fitted once on ``context.hidden`` and
    its token ids at T7's scale, rescaled by the calibration, which reconstructs each
    probe window with its own ids; at the chosen scale the side-latent densities are
    re-estimated (rate only).

    Parameters
    ----------
    start : rdgap.codecs.entropy_models.model_fit.FitStart
    context : FitContext
        Statistics windows (``hidden``) and the split's model (its embeddings).
    input_ids : torch.Tensor
        ``(windows, tokens)`` token ids of ``context.hidden`` (the statistics windows,
        e.g. ``fit_ids[:count]`` for ``FitContext.build(..., statistics_windows=count)``).
    embedding : (V, D) array, optional
        The token-embedding table (default: the split model's input embeddings).
    lags : tuple of int
        Token offsets whose embeddings predict the mean.
    rdo : float
        Encoder-only rate–distortion optimised quantization
        (:class:`rdgap.codecs.entropy_models.context.ContextCodec`; 0: off).
    fitter : callable
        The codec's closed-form fit, with the arguments of
        :func:`~rdgap.codecs.entropy_models.token_context.fit_token_context_codec`
        (``klt-context-tokens-table`` passes
        :func:`~rdgap.codecs.entropy_models.token_table.fit_token_table_codec`).
    """
    if input_ids is None or tuple(input_ids.shape) != tuple(context.hidden.shape[:2]):
        raise ValueError(f"input_ids: expected the ids of the statistics windows, shape "
                         f"{tuple(context.hidden.shape[:2])}, got "
                         f"{None if input_ids is None else tuple(input_ids.shape)}")
    table = embedding_table(context) if embedding is None else embedding
    stats, klt, initial = start.stats, start.transform, start.scale
    reference = fitter(context.hidden, input_ids, table, stats.mean,
                                        klt.analysis, klt.synthesis, initial * start.step,
                                        stats.first_mean, stats.first_scale,
                                        initial * start.first_step, lags=lags,
                                        label=start.label)
    if rdo:
        reference = type(reference)(**{**reference._constructor_arguments(), "rdo": rdo})
    return ModelFit(lambda alpha: reference.rescaled(
                        alpha / initial, label=f"{reference.label} scale={alpha:.6g}"),
                    lambda codec: refit_side_density(codec, context.hidden,
                                                     input_ids=input_ids),
                    with_ids=True)


def fit_token_codec(context: FitContext, input_ids: torch.Tensor, target_delta_ce: float,
                    evaluations: int = 6, embedding=None, lags=(0,), rdo: float = 0.0,
                    method: str = "fit", margin: float = 0.0,
                    ratio: float | None = None) -> FittedCodec:
    """The cheapest ``klt-context-tokens`` codec whose ΔCE on the probe windows meets
    the target: :func:`rdgap.codecs.fit.fit_codec` of the recipe (the one pipeline and
    calibration; :func:`fit_model` is this entropy model's part of it).

    Parameters
    ----------
    context : FitContext
        Statistics, Fisher and the calibration probe at the split.
    input_ids : torch.Tensor
        ``(windows, tokens)`` token ids of ``context.hidden``.
    target_delta_ce : float
        ΔCE level in nats/token (> 0).
    evaluations : int
        At most this many probe passes for the calibration.
    embedding, lags, rdo
        As :func:`fit_model`.
    method : {"fit", "bracket"}
        How :func:`rdgap.codecs.quantizers.calibrate.calibrate_scale` chooses the step
        scale, as in :func:`rdgap.codecs.fit.fit_codec`.
    margin : float
        ``z ≥ 0``: the probe ΔCE plus ``z`` standard errors over documents must meet
        the target (default 0).
    ratio : float, optional
        The calibration's resolution in scale; default as every other recipe's
        (:func:`rdgap.codecs.fit.fit_codec`): 1.02 for ``"fit"``, 1.08 for ``"bracket"``.
        (Until issue 16 ``rdgap validate`` fitted this variant with 1.08 and ``"fit"``,
        the benchmark with 1.02: a coarser stop, so a smaller scale than the other
        variants' at the same level.)
    """
    return fit_codec(VARIANT, context, target_delta_ce, evaluations=evaluations,
                     method=method, margin=margin, ratio=ratio, input_ids=input_ids,
                     model_options={"embedding": embedding, "lags": lags, "rdo": rdo})
