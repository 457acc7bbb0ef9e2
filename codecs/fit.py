"""Fit reference codecs on fit windows and set their steps for a target ΔCE.

A *variant* names an entropy-model family and a step rule:

``gaussian-std``
    steps ``c·σ_j`` per channel, discretised Gaussian (the anchor of BD-rates);
``gaussian-fisher`` / ``laplace-fisher``
    THEORY.md T7's allocation ``Δ_j ∝ 1/√F_jj`` from the Fisher diagonal;
``klt-laplace``
    the Fisher-whitened KLT of :mod:`rdgap.codecs.transforms.klt` with one step for
    every component, discretised Laplace per component;
``klt-context``
    the same transform and steps with the joint entropy model of
    :mod:`rdgap.codecs.entropy_models.context` (causal prediction from the previous decoded
    token, a per-token scale hyperprior, dead-zone quantization with centroid
    reconstruction), trained by :func:`rdgap.codecs.entropy_models.context_fit.fit_context_codec`
    on the first half of the fit windows. It is fitted once, at T7's predicted
    scale; the calibration then only rescales its steps and table indices
    (:meth:`rdgap.codecs.entropy_models.context.ContextCodec.rescaled`), so ΔCE is a deterministic,
    near-monotone function of the scale, and the side-latent densities are
    re-estimated at the chosen scale (rate only).

Every variant codes position 0 with its own statistics and steps
``Δ0_j ∝ 1/√F0_j`` (``c·σ0_j`` for ``gaussian-std``). The common scale of the
steps is then chosen by :func:`rdgap.codecs.quantizers.calibrate.calibrate_scale` so that
ΔCE on the fit windows meets the target, starting from T7's prediction: each
next scale is where a least-squares power law through every scale tried reaches
the target, and the chosen scale measured ≤ target but is never above that fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import recipes
from .base import HiddenStateCodec
from .quantizers.calibrate import Calibration, DistortionProbe, calibrate_scale
from .entropy_models.context_fit import fit_context_codec, refit_side_density
from .entropy_models.factorized import ChannelStatistics, FactorizedCodec
from .transforms.fisher import FisherDiagonal, fisher_diagonal, shrink_toward_diagonal
from rdgap.split import SplitModel
from .transforms.klt import fisher_klt

#: The recipes of :mod:`rdgap.codecs.recipes` that :func:`fit_codec` fits by name.
VARIANTS = recipes.names(fitter=recipes.GENERIC_FITTER)
KLT_VARIANTS = recipes.names(fitter=recipes.GENERIC_FITTER, transform="fisher-klt")
KLT_RIDGE = 1e-4


@dataclass
class FitContext:
    """What every variant at one split is fitted from: hidden states, Fisher, probe."""

    split: SplitModel
    hidden: torch.Tensor
    fisher: FisherDiagonal
    probe: DistortionProbe

    @classmethod
    def build(cls, split: SplitModel, input_ids: torch.Tensor, hidden: torch.Tensor,
              fisher_samples: int = 1, statistics_windows: int | None = None,
              documents: torch.Tensor | None = None,
              fisher: FisherDiagonal | None = None,
              fisher_shrinkage: float = 0.0) -> "FitContext":
        """Statistics and Fisher from the first ``statistics_windows`` fit windows (default:
        the first half); the ΔCE probe that calibrates the steps from the rest, so that the
        calibration is not flattered by a transform fitted to the very gradients it is
        measured on. ``documents`` (one per window) gives the probe's standard error over
        documents. A ``fisher`` given (e.g. saved from an earlier build on the same
        windows) is used as it is instead of being estimated. ``fisher_shrinkage`` ``λ``
        shrinks its matrix toward its diagonal
        (:func:`rdgap.codecs.transforms.fisher.shrink_toward_diagonal`: the KLT variants
        whiten the shrunk matrix, for text the fit windows lack; ``docs/domain-shift.md``
        has what it holds and costs; 0, the default: the estimate as it is)."""
        count = hidden.shape[0] // 2 if statistics_windows is None else statistics_windows
        if not 1 <= count < hidden.shape[0]:
            raise ValueError(f"statistics_windows: expected 1 ≤ windows < {hidden.shape[0]} "
                             f"(the rest calibrate; ≥ 2 fit windows in all), got {count}")
        if fisher is None:
            fisher = fisher_diagonal(split, hidden[:count], samples=fisher_samples, full=True)
        if fisher_shrinkage:
            fisher = shrink_toward_diagonal(fisher, fisher_shrinkage)
        probe = DistortionProbe(split, input_ids[count:], hidden[count:],
                                documents=None if documents is None else documents[count:])
        return cls(split, hidden[:count], fisher, probe)


@dataclass
class FittedCodec:
    """A fitted codec, its calibration and T7's predicted ΔCE.

    Attributes
    ----------
    variant : str
        The recipe's name.
    codec : HiddenStateCodec
        What to code with (a :class:`~rdgap.codecs.quantizers.rate_cap.RateCappedCodec`
        under :meth:`rdgap.codecs.recipes.Recipe.fit`'s default cap).
    calibration : Calibration
        The step-scale calibration (of the uncapped codec).
    predicted_delta_ce : float
        T7's prediction at the calibrated scale (nats/token).
    rate_cap : str
        The rate cap in words (``"not applied"`` when the fitter was called directly).
    uncapped : HiddenStateCodec or None
        The recipe's codec before the cap (None when not capped).
    """

    variant: str
    codec: HiddenStateCodec
    calibration: Calibration
    predicted_delta_ce: float
    rate_cap: str = "not applied (the fitter was called directly, not Recipe.fit)"
    uncapped: HiddenStateCodec | None = None


def base_steps(variant: str, context: FitContext, name: str | None = None):
    """Statistics, per-channel base steps (rest, first), and optional transform.

    ``name`` is the variant named in errors (default ``variant``), for variants built on
    another one's steps (e.g. ``klt-context-tokens`` on ``klt-context``'s)."""
    family = "gaussian" if variant.startswith("gaussian") else "laplace"
    fisher = context.fisher
    if variant in KLT_VARIANTS:
        rest = context.hidden[:, 1:].reshape(-1, context.hidden.shape[-1]).double().numpy()
        if rest.shape[0] < 4 * rest.shape[1]:
            raise ValueError(f"variant: {name or variant} estimates a {rest.shape[1]}×{rest.shape[1]} "
                             f"Fisher matrix and needs ≥ {4 * rest.shape[1]} fit tokens in the "
                             f"first half of the fit windows, got {rest.shape[0]}; use more or "
                             f"longer fit windows")
        klt = fisher_klt(np.cov(rest, rowvar=False), fisher.matrix, ridge=KLT_RIDGE)
        stats = ChannelStatistics.fit(context.hidden, family, analysis=klt.analysis)
        channels = rest.shape[1]
        return stats, np.ones(channels), 1 / np.sqrt(fisher.first), klt, family
    stats = ChannelStatistics.fit(context.hidden, family)
    if variant == "gaussian-std":
        return stats, stats.scale, stats.first_scale, None, family
    return stats, 1 / np.sqrt(fisher.rest), 1 / np.sqrt(fisher.first), None, family


def unit_delta_ce(variant: str, fisher: FisherDiagonal, step, first_step) -> float:
    """THEORY.md T7's predicted ΔCE (nats/token) of ``variant`` at steps ``step`` (rest)
    and ``first_step`` (position 0): ``Σ F_jj Δ_j² / 24`` per token, with ``F = I`` in
    the Fisher-whitened KLT domain. A prediction (second order, uniform independent
    errors), not a bound; ΔCE at scale ``α`` is predicted as ``α²`` times this."""
    if variant in KLT_VARIANTS:  # isotropic distortion in the whitened domain (F_Z = I)
        rest = float(np.sum(step ** 2) / 24.0) * (fisher.tokens - 1) / fisher.tokens
        return rest + float(np.sum(fisher.first * first_step ** 2) / 24.0) / fisher.tokens
    return fisher.predicted_delta_ce(step, first_step)


def fit_codec(variant: str, context: FitContext, target_delta_ce: float,
              evaluations: int = 6, method: str = "fit", margin: float = 0.0,
              steps: np.ndarray | None = None, label: str | None = None) -> FittedCodec:
    """The cheapest codec of ``variant`` whose ΔCE on the fit windows meets the target.

    Parameters
    ----------
    variant : str
        One of :data:`VARIANTS`.
    context : FitContext
        Statistics, Fisher and the calibration probe at the split.
    target_delta_ce : float
        ΔCE level in nats/token (> 0).
    evaluations : int
        At most this many probe passes for the calibration.
    method : {"fit", "bracket"}
        How :func:`rdgap.codecs.quantizers.calibrate.calibrate_scale` chooses the step scale:
        from a least-squares power law through every scale tried (resolution 2 %),
        or by bracketing (resolution 8 %, the previous default).
    margin : float
        ``z ≥ 0``: the chosen scale's probe ΔCE plus ``z`` standard errors over
        documents must meet the target (:func:`rdgap.codecs.quantizers.calibrate.calibrate_scale`;
        0, the default: the probe mean alone). Needs a probe with ``estimate``.
    steps : (C,) array, optional
        Base steps of positions ≥ 1 in place of the variant's own (e.g. learned ones,
        :mod:`rdgap.codecs.quantizers.learned_steps`); only their shape matters, the common
        scale is calibrated as for the variant's own steps.
    label : str, optional
        The codec's label (default: ``variant``).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    stats, base, first_base, klt, family = base_steps(variant, context)
    if steps is not None:
        base = np.asarray(steps, dtype=np.float64)
        if base.shape != first_base.shape or not np.all(np.isfinite(base) & (base > 0)):
            raise ValueError(f"steps: expected {first_base.shape[0]} finite steps > 0, got "
                             f"shape {base.shape}")
    label = variant if label is None else label
    analysis = synthesis = None
    if klt is not None:
        analysis, synthesis = klt.analysis, klt.synthesis

    unit = unit_delta_ce(variant, context.fisher, base, first_base)
    initial = float(np.sqrt(target_delta_ce / unit))  # T7: ΔCE ∝ α²
    reference = None
    if variant == "klt-context":  # fitted once, at T7's scale; other scales only rescale it
        reference = fit_context_codec(context.hidden, stats.mean, analysis, synthesis,
                                      initial * base, stats.first_mean, stats.first_scale,
                                      initial * first_base, label=label)

    def make(alpha: float) -> HiddenStateCodec:
        if reference is not None:
            return reference.rescaled(alpha / initial,
                                      label=f"{reference.label} scale={alpha:.6g}")
        return FactorizedCodec(stats, alpha * base, alpha * first_base, family,
                               label=f"{label} scale={alpha:.6g}",
                               analysis=analysis, synthesis=synthesis)

    def measure(alpha: float) -> float | tuple[float, float | None]:
        reconstruct = make(alpha).reconstruct
        if not hasattr(context.probe, "estimate"):  # e.g. validate's task probes
            return context.probe.delta_ce(reconstruct)
        return context.probe.estimate(reconstruct)

    calibration = calibrate_scale(measure, target_delta_ce, initial, evaluations=evaluations,
                                  ratio=1.02 if method == "fit" else 1.08, method=method,
                                  margin=margin)
    codec = make(calibration.scale)
    if reference is not None:  # densities of the chosen scale's side latents: rate only
        codec = refit_side_density(codec, context.hidden)
    return FittedCodec(variant, codec, calibration, unit * calibration.scale ** 2)


def fit_recipe(context: FitContext, input_ids, target_delta_ce: float, method: str = "fit",
               margin: float = 0.0, *, variant: str, **options) -> FittedCodec:
    """:func:`fit_codec` with the signature of :meth:`rdgap.codecs.recipes.Recipe.fit`
    (``input_ids`` unused): the fitter of the recipes in :data:`VARIANTS`."""
    return fit_codec(variant, context, target_delta_ce, method=method, margin=margin,
                     **options)
