"""Fit reference codecs on fit windows and set their steps for a target ΔCE.

The one fit pipeline (:func:`fit_codec`): the recipe's transform fits itself
(:data:`rdgap.codecs.recipes.TRANSFORM_FITS`), its step rule gives the base steps and
THEORY.md T7 the starting scale; its entropy model fits itself at that start (its
module's ``fit_model``, :data:`rdgap.codecs.recipes.ENTROPY_MODEL_FITS`,
:mod:`rdgap.codecs.entropy_models.model_fit`); one calibration chooses the scale.

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

from rdgap.split import SplitModel

from . import recipes
from .base import HiddenStateCodec
from .entropy_models.factorized import ChannelStatistics
from .entropy_models.model_fit import FitStart
from .quantizers.calibrate import Calibration, DistortionProbe, calibrate_scale
from .transforms.fisher import FisherDiagonal, fisher_diagonal, shrink_toward_diagonal
from .transforms.klt import KLT_RIDGE  # noqa: F401 (its old home)

#: Every recipe :func:`fit_codec` fits (the one pipeline; :meth:`Recipe.fit
#: <rdgap.codecs.recipes.Recipe.fit>` calls it for them).
PIPELINE_VARIANTS = recipes.names(fitter=recipes.GENERIC_FITTER)
#: Those that refine no other recipe: the parametric and closed-form ones, fitted from
#: hidden states alone (``rdgap validate --zstd-symbols-of`` accepts them).
VARIANTS = recipes.names(fitter=recipes.GENERIC_FITTER, parent=None)
KLT_VARIANTS = recipes.names(fitter=recipes.GENERIC_FITTER, parent=None,
                             transform="fisher-klt")


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
    """Statistics, per-channel base steps (rest, first), and the fitted transform.

    The recipe's transform fits itself (``fisher-klt``:
    :func:`rdgap.codecs.transforms.klt.fit`; ``identity``: none), the statistics are
    taken in its domain, and the recipe's step rule gives the base steps (``std``:
    ``σ_j``; ``fisher``: T7's ``1/√F_jj``, one step in the whitened KLT domain).
    ``name`` is the variant named in errors (default ``variant``), for variants built on
    another one's steps (e.g. ``klt-context-tokens`` on ``klt-context``'s).

    Returns ``(stats, step, first_step, transform or None, family)``."""
    r = recipes.recipe(variant)
    family = "gaussian" if r.entropy_model == "gaussian" else "laplace"
    fisher = context.fisher
    transform = recipes.transform_fit(r.transform)
    if transform is not None:
        klt = transform(context, name or variant)
        stats = ChannelStatistics.fit(context.hidden, family, analysis=klt.analysis)
        return stats, np.ones(context.hidden.shape[-1]), 1 / np.sqrt(fisher.first), klt, family
    stats = ChannelStatistics.fit(context.hidden, family)
    if r.steps == "std":
        return stats, stats.scale, stats.first_scale, None, family
    return stats, 1 / np.sqrt(fisher.rest), 1 / np.sqrt(fisher.first), None, family


def unit_delta_ce(variant: str, fisher: FisherDiagonal, step, first_step) -> float:
    """THEORY.md T7's predicted ΔCE (nats/token) of ``variant`` at steps ``step`` (rest)
    and ``first_step`` (position 0): ``Σ F_jj Δ_j² / 24`` per token, with ``F = I`` in
    the Fisher-whitened KLT domain. A prediction (second order, uniform independent
    errors), not a bound; ΔCE at scale ``α`` is predicted as ``α²`` times this."""
    if recipes.recipe(variant).transform == "fisher-klt":  # isotropic in the whitened domain
        rest = float(np.sum(step ** 2) / 24.0) * (fisher.tokens - 1) / fisher.tokens
        return rest + float(np.sum(fisher.first * first_step ** 2) / 24.0) / fisher.tokens
    return fisher.predicted_delta_ce(step, first_step)


def fit_codec(variant: str, context: FitContext, target_delta_ce: float,
              evaluations: int = 6, method: str = "fit", margin: float = 0.0,
              steps: np.ndarray | None = None, label: str | None = None, *,
              input_ids: torch.Tensor | None = None, ratio: float | None = None,
              model_options: dict | None = None) -> FittedCodec:
    """The cheapest codec of ``variant`` whose ΔCE on the fit windows meets the target.

    The one fit pipeline of every recipe in :data:`PIPELINE_VARIANTS`: the recipe's
    transform and step rule (:func:`base_steps`) and T7's predicted scale give a
    :class:`~rdgap.codecs.entropy_models.model_fit.FitStart`; the recipe's entropy model
    fits itself from it (its ``fit_model``,
    :data:`rdgap.codecs.recipes.ENTROPY_MODEL_FITS`); the one calibration
    (:func:`rdgap.codecs.quantizers.calibrate.calibrate_scale`) chooses the step scale on
    the probe windows; the entropy model finishes the codec at that scale.

    Parameters
    ----------
    variant : str
        One of :data:`PIPELINE_VARIANTS` (or a recipe registered since with
        :data:`~rdgap.codecs.recipes.GENERIC_FITTER`).
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
    input_ids : torch.Tensor, optional
        Token ids of the statistics windows, for an entropy model that predicts from
        them (``klt-context-tokens``).
    ratio : float, optional
        The calibration's resolution in scale (default 1.02 for ``"fit"``, 1.08 for
        ``"bracket"``).
    model_options : dict, optional
        Keyword options of the entropy model's ``fit_model`` (e.g. a hyperprior's
        training budget).
    """
    fitted_here = recipes.names(fitter=recipes.GENERIC_FITTER)  # registered ones included
    if variant not in fitted_here:
        raise ValueError(f"variant: expected one of {fitted_here}, got {variant!r}")
    stats, base, first_base, transform, family = base_steps(variant, context)
    if steps is not None:
        base = np.asarray(steps, dtype=np.float64)
        if base.shape != first_base.shape or not np.all(np.isfinite(base) & (base > 0)):
            raise ValueError(f"steps: expected {first_base.shape[0]} finite steps > 0, got "
                             f"shape {base.shape}")
    unit = unit_delta_ce(variant, context.fisher, base, first_base)
    initial = float(np.sqrt(target_delta_ce / unit))  # T7: ΔCE ∝ α²
    start = FitStart(variant, stats, base, first_base, transform, family, initial,
                     variant if label is None else label)
    model = recipes.entropy_model_fit(recipes.recipe(variant).entropy_model)(
        start, context, input_ids, **(model_options or {}))

    def measure(alpha: float) -> float | tuple[float, float | None]:
        codec = model.at(alpha)
        if model.with_ids:  # each probe window reconstructed with its own token ids
            reconstruct = lambda window, ids: codec.reconstruct(window, input_ids=ids)  # noqa: E731
            if not hasattr(context.probe, "estimate"):
                return context.probe.delta_ce(reconstruct, with_ids=True)
            return context.probe.estimate(reconstruct, with_ids=True)
        if not hasattr(context.probe, "estimate"):  # e.g. validate's task probes
            return context.probe.delta_ce(codec.reconstruct)
        return context.probe.estimate(codec.reconstruct)

    if ratio is None:
        ratio = 1.02 if method == "fit" else 1.08
    calibration = calibrate_scale(measure, target_delta_ce, initial, evaluations=evaluations,
                                  ratio=ratio, method=method, margin=margin)
    codec = model.finish(model.at(calibration.scale))
    return FittedCodec(variant, codec, calibration, unit * calibration.scale ** 2)


#: Options of :func:`fit_codec` itself; every other option of :func:`fit_recipe` is the
#: entropy model's (``steps`` included: a training budget, e.g. ``klt-deep``'s).
_PIPELINE_OPTIONS = ("evaluations", "label", "ratio")


def fit_recipe(context: FitContext, input_ids, target_delta_ce: float, method: str = "fit",
               margin: float = 0.0, *, variant: str, **options) -> FittedCodec:
    """:func:`fit_codec` with the signature of :meth:`rdgap.codecs.recipes.Recipe.fit`:
    the fitter of the recipes in :data:`PIPELINE_VARIANTS` (``input_ids`` reach the
    entropy models that predict from them)."""
    own = {key: options.pop(key) for key in _PIPELINE_OPTIONS if key in options}
    return fit_codec(variant, context, target_delta_ce, method=method, margin=margin,
                     input_ids=input_ids, model_options=options, **own)
