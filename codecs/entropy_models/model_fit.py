"""The one interface through which the fit pipeline fits every entropy model.

:func:`rdgap.codecs.fit.fit_codec` fits a recipe in three stages, and only the middle
one belongs to the entropy model:

1. the pipeline fits the recipe's transform (:mod:`rdgap.codecs.transforms`), the
   statistics and the step rule's base steps, and takes THEORY.md T7's predicted scale
   for the level: a :class:`FitStart`;
2. the entropy model fits itself from the cached hidden states at that start — its
   module's ``fit_model(start, context, input_ids=None, **options)``, named for each
   entropy model in :data:`rdgap.codecs.recipes.ENTROPY_MODEL_FITS` — and returns a
   :class:`ModelFit`: the codec at any step scale, and what to do once the scale is
   chosen;
3. the one calibration (:func:`rdgap.codecs.quantizers.calibrate.calibrate_scale`)
   chooses the scale on the probe windows through :attr:`ModelFit.at`, and
   :attr:`ModelFit.finish` gives the codec at that scale its final tables (side-latent
   densities, a trained hyperprior, learned tables; the reconstruction never changes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


def _unchanged(codec):
    return codec


@dataclass(frozen=True)
class FitStart:
    """What the fit pipeline hands an entropy model's ``fit_model``.

    Attributes
    ----------
    variant : str
        The recipe being fitted.
    stats : rdgap.codecs.entropy_models.factorized.ChannelStatistics
        Means and scales of the statistics windows (in the transform's domain).
    step, first_step : (C,) arrays
        The step rule's base steps of positions ≥ 1 and of position 0 (scale 1).
    transform : rdgap.codecs.transforms.klt.FisherKLT or None
        The fitted transform (None: the identity).
    family : {"gaussian", "laplace"}
        The parametric family of the statistics.
    scale : float
        THEORY.md T7's predicted step scale for the level (a prediction): the scale a
        model fitted once is fitted at, before the calibration rescales it.
    label : str
        The codec's label.
    """

    variant: str
    stats: Any
    step: np.ndarray
    first_step: np.ndarray
    transform: Any
    family: str
    scale: float
    label: str


@dataclass(frozen=True)
class ModelFit:
    """An entropy model fitted at a :class:`FitStart`.

    Attributes
    ----------
    at : callable
        ``at(alpha)``: the codec whose steps are ``alpha`` times the base steps (what
        the calibration measures).
    finish : callable
        ``finish(codec)``: the codec at the chosen scale with its final tables; only the
        rate may change, never the reconstruction (default: the codec as it is).
    with_ids : bool
        The codec's ``reconstruct`` takes each window's token ids (``input_ids=``), so
        the probe passes them.
    """

    at: Callable[[float], Any]
    finish: Callable[[Any], Any] = _unchanged
    with_ids: bool = False


def every_fit_window(context):
    """The statistics windows and, where the probe holds them, the probe's: what a model
    trained after the calibration learns from (its tables never change the reconstruction
    the probe calibrated)."""
    import torch

    probe = getattr(context.probe, "hidden", None)
    return context.hidden if probe is None else torch.cat([context.hidden, probe])
