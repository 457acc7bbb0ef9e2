"""Fitting a :class:`~rdgap.codecs.quantizers.shift_guard.ShiftGuardedCodec`.

:func:`fit_detector` fits the detector on the fit windows only: the Fisher-whitened KLT
of the statistics windows (the ``fisher-klt`` transform's fit, :func:`rdgap.codecs.
transforms.klt.fisher_klt` with its ridge), its ``quiet`` components of smallest
variance, and the threshold ``slack`` × the largest score of the probe windows (the
module of the codec says why). :func:`guard_fitted` wraps two fitted codecs with it;
:func:`fit_guarded` (the signature of :meth:`rdgap.codecs.recipes.Recipe.fit`) fits the
primary and the fallback recipes at the same level on the same context first, each
under the rate cap ``cap`` when given (both capped: the guarded stream is bounded, see
the theorem of :mod:`rdgap.codecs.quantizers.shift_guard`).

Defaults (chosen on SmolLM2-135M at split 15, docs/domain-shift.md "A shift guard"):
the quietest 1/16 of the components, the lower quartile over tokens, slack 1.1.
"""

from __future__ import annotations

import math

import numpy as np

from .shift_guard import ShiftDetector, ShiftGuardedCodec

#: Fraction of the KLT components (smallest fit variance) the detector watches.
QUIET_FRACTION = 1 / 16
#: The quantile over tokens of the per-token quiet energy taken as a window's score.
QUANTILE = 0.25
#: The threshold is this multiple of the largest probe-window score.
SLACK = 1.1


def _fraction(name: str, value, low_open: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not (0 < value <= 1 if low_open else 0 <= value <= 1):
        raise ValueError(f"{name}: expected a number in {'(0' if low_open else '[0'}, 1], "
                         f"got {value!r}")
    return float(value)


def fit_detector(context, quiet_fraction: float = QUIET_FRACTION, quantile: float = QUANTILE,
                 slack: float = SLACK) -> tuple[ShiftDetector, dict]:
    """The detector of ``context`` (statistics windows, Fisher, probe) and what it measured.

    Parameters
    ----------
    context : rdgap.codecs.fit.FitContext
        ``hidden`` (statistics windows), ``fisher`` (its matrix, or its diagonal) and
        ``probe.hidden`` (the probe windows, which set the threshold).
    quiet_fraction : float
        Fraction of components watched, in (0, 1] (at least one).
    quantile : float
        Quantile over tokens, in [0, 1].
    slack : float
        Threshold over the largest probe score, ≥ 1 (so every probe window is coded by
        the primary and its calibration holds).

    Returns
    -------
    (ShiftDetector, dict)
        The detector and ``{"detector_quiet_components", "detector_probe_scores",
        "detector_probe_max", "detector_threshold", ...}``.
    """
    from ..transforms.klt import KLT_RIDGE, fisher_klt

    quiet_fraction = _fraction("quiet_fraction", quiet_fraction)
    quantile = _fraction("quantile", quantile, low_open=False)
    if isinstance(slack, bool) or not isinstance(slack, (int, float)) \
            or not (math.isfinite(slack) and slack >= 1):
        raise ValueError(f"slack: expected a multiple ≥ 1 of the largest probe score (below "
                         f"1 the guard would re-route probe windows the primary was "
                         f"calibrated on), got {slack!r}")
    hidden = context.hidden
    channels = hidden.shape[-1]
    rest = hidden[:, 1:].reshape(-1, channels).double().numpy()
    if rest.shape[0] < 4 * channels:
        raise ValueError(f"context: the detector estimates a {channels}×{channels} covariance "
                         f"and needs ≥ {4 * channels} statistics tokens at positions ≥ 1, got "
                         f"{rest.shape[0]}; use more or longer fit windows")
    fisher = context.fisher
    matrix = fisher.matrix if fisher.matrix is not None else np.diag(fisher.rest)
    klt = fisher_klt(np.cov(rest, rowvar=False), matrix, ridge=KLT_RIDGE)
    mean = rest.mean(0)
    quiet = max(1, round(quiet_fraction * channels))
    order = np.argsort(klt.variances)[:quiet]  # smallest variance first
    analysis = klt.analysis[order]
    z = (rest - mean) @ analysis.T
    variances = z.var(0)
    probe = context.probe.hidden
    if probe.shape[0] < 1:
        raise ValueError("context: the probe holds no window; the threshold is set from the "
                         "probe windows' scores")
    scout = ShiftDetector(mean, analysis, variances, quantile, threshold=1.0)
    scores = np.array([scout.score(window) for window in probe])
    top = float(scores.max())
    if not top > 0:
        raise ValueError("context: every probe window scores 0 (windows of one token?); the "
                         "threshold needs probe windows of ≥ 2 tokens")
    detector = ShiftDetector(mean, analysis, variances, quantile, slack * top)
    report = {"detector_quiet_components": int(quiet), "detector_quantile": quantile,
              "detector_slack": float(slack), "detector_probe_windows": int(len(scores)),
              "detector_probe_scores": scores.round(5).tolist(), "detector_probe_max": top,
              "detector_threshold": detector.threshold,
              "detector_false_alarm_prediction": 1.0 / (len(scores) + 1)}
    return detector, report


def guard_fitted(primary, fallback, context, variant: str | None = None, **detector_options):
    """A :class:`rdgap.codecs.fit.FittedCodec` of ``primary``'s codec guarded by
    ``fallback``'s (two FittedCodecs fitted on ``context``) with the detector of
    :func:`fit_detector`. The calibration and T7 prediction are the primary's: with
    ``slack ≥ 1`` the guarded codec codes every probe window as the primary does."""
    from ..fit import FittedCodec

    detector, report = fit_detector(context, **detector_options)
    name = variant or f"{primary.variant}-sg"
    codec = ShiftGuardedCodec(primary.codec, fallback.codec, detector,
                              label=f"{name} (fallback {fallback.variant})",
                              fit_report=report | {"primary": primary.variant,
                                                   "fallback": fallback.variant})
    fitted = FittedCodec(name, codec, primary.calibration, primary.predicted_delta_ce)
    fitted.rate_cap = f"primary: {primary.rate_cap}; fallback: {fallback.rate_cap}"
    return fitted


def fit_guarded(context, input_ids, level: float, method: str = "fit", margin: float = 0.0,
                *, primary: str = "klt-context", fallback: str = "gaussian-fisher",
                variant: str | None = None, cap: float | None = None,
                quiet_fraction: float = QUIET_FRACTION, quantile: float = QUANTILE,
                slack: float = SLACK, **options):
    """Fit the recipes ``primary`` and ``fallback`` at ``level`` on ``context`` (each
    under the rate cap ``cap``, a multiple of its own fitted rate; None: uncapped), then
    the detector, and guard the one by the other.

    ``options`` go to the primary's fitter. The primary may code token ids
    (``klt-context-tokens``: fitted with ``input_ids``, the statistics windows' ids; the
    guarded codec then takes each window's ids) or be window-controlled (``-wc``: its
    own per-window control and cap stay inside it; ``cap`` applies to the fallback);
    the fallback may not code ids. Returns a :class:`rdgap.codecs.fit.FittedCodec`
    named ``variant`` (default ``primary + "-sg"``).
    """
    from ..recipes import recipe

    if recipe(fallback).needs_token_ids:
        raise ValueError(f"shift_guard: {fallback!r} codes token ids, which the shift guard "
                         f"passes to the primary only; fall back to a recipe without them "
                         f"(e.g. gaussian-fisher)")
    if recipe(primary).needs_token_ids and input_ids is None:
        raise ValueError(f"input_ids: the primary {primary!r} codes token ids and is fitted "
                         f"with the statistics windows' ids, got None")
    first = recipe(primary).fit(context, input_ids, level, method=method, margin=margin,
                                cap=cap, **options)
    second = recipe(fallback).fit(context, input_ids, level, method=method, margin=margin,
                                  cap=cap)
    return guard_fitted(first, second, context, variant, quiet_fraction=quiet_fraction,
                        quantile=quantile, slack=slack)


__all__ = ["fit_detector", "guard_fitted", "fit_guarded", "QUIET_FRACTION", "QUANTILE",
           "SLACK"]
