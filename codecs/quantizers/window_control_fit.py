"""Fitting a :class:`~rdgap.codecs.quantizers.window_control.WindowControlledCodec`.

:func:`fit_controlled` fits the base recipe as it is fitted on its own (its step
scale calibrated on the fit probe windows), then sets, on the same probe windows:

the margin ``m`` (THEORY.md T11)
    T7's per-window prediction ``P_w`` is a second-order approximation; the ratio
    of measured to predicted ΔCE, pooled over the probe windows,
    ``r = Σ_w ΔCE_w / Σ_w P_w``, corrects it on fit data. ``r`` is measured first at
    the base's factor (``m₀ = r₀``), then at the factors the controlled encoder
    chooses with ``m₀`` (the operating point), and the **safety rule** is
    ``m = max(r + z·s.e.(r), MIN_MARGIN)`` with ``z = safety`` (default 1) and the
    s.e. of the ratio estimator over documents (delta method); a probe without
    per-window values (e.g. ``rdgap validate``'s task probes) gives the pooled
    ratio only (no s.e.: ``m = max(r, MIN_MARGIN)``).
the rate cap ``B_cap``
    ``cap_multiple`` (default 2) × the controlled codec's mean real bits per token on
    the probe windows (container included). The fit records how many probe windows
    the cap binds on, and on how many the coarsest ladder factor fits under it
    (``fit_report`` of the codec; a window where it does not is coded as a
    fallback, see the module of the codec).

The window control then sets each window's factor *relative to the calibrated
base*: on fit text it mostly stays near factor 1; on other text it moves.
"""

from __future__ import annotations

import numpy as np
import torch

from .calibrate import Calibration
from ..coders.container import header_size
from .window_control import (FLAG_LEVEL_UNREACHED, LADDER, WINDOW_HEADER_BYTES,
                             WindowControlledCodec)

#: The margin is never set below this: a probe at its noise floor cannot certify that
#: T7 overstates the distortion more than tenfold.
MIN_MARGIN = 0.1
#: A cap so large that it never binds, used while the margin is calibrated (finite: the
#: codec refuses an infinite cap).
_UNCAPPED = 1e12


def _measured(probe, reconstructions: list[torch.Tensor]) -> tuple[np.ndarray | None, float]:
    """Per-window measured ΔCE (None for a probe that only gives the mean) and the mean."""
    queue = iter(reconstructions)
    if hasattr(probe, "per_window"):
        values = probe.per_window(lambda window: next(queue)).double().mean(1).numpy()
        return values, float(values.mean())
    return None, float(probe.delta_ce(lambda window: next(queue)))


def pooled_ratio(measured: np.ndarray | None, mean_measured: float, predicted: np.ndarray,
                 documents: np.ndarray | None) -> tuple[float, float | None]:
    """``r = Σ ΔCE_w / Σ P_w`` and its standard error over documents (delta method for a
    ratio estimator: ``s.e. = √(n/(n−1) Σ_d (Σ_{w∈d} ΔCE_w − r P_w)²) / Σ_w P_w``), None
    without per-window values or with fewer than two documents.

    >>> pooled_ratio(np.array([1.0, 3.0]), 2.0, np.array([1.0, 1.0]), np.array([0, 1]))
    (2.0, 1.0)
    """
    total = float(np.sum(predicted))
    if total <= 0:
        raise ValueError("predicted: T7 predicts no distortion on any probe window (every "
                         "window reconstructed exactly); the margin cannot be calibrated")
    if measured is None:
        return mean_measured * len(predicted) / total, None
    ratio = float(np.sum(measured)) / total
    documents = np.arange(len(measured)) if documents is None else np.asarray(documents)
    labels = np.unique(documents)
    if labels.size < 2:
        return ratio, None
    residual = np.array([np.sum(measured[documents == d] - ratio * predicted[documents == d])
                         for d in labels])
    n = labels.size
    return ratio, float(np.sqrt(n / (n - 1) * np.sum(residual ** 2)) / total)


def calibrate_margin(codec: WindowControlledCodec, probe, safety: float = 1.0):
    """The margin of :mod:`this module <rdgap.codecs.quantizers.window_control_fit>`'s
    safety rule for ``codec`` (whose own margin and cap are ignored), and what was
    measured: ``(margin, facts)``.
    """
    hidden = probe.hidden
    documents = getattr(probe, "documents", None)
    base = [codec.base.reconstruct(window) for window in hidden]
    predicted = np.array([codec.predicted_delta_ce(w, r) for w, r in zip(hidden, base)])
    values, mean = _measured(probe, base)
    r0, se0 = pooled_ratio(values, mean, predicted, documents)
    first = max(r0, MIN_MARGIN)
    decisions = [_with(codec, first, _UNCAPPED).decide(window) for window in hidden]
    predicted = np.array([d.predicted for d in decisions])
    values, mean = _measured(probe, [d.reconstruction for d in decisions])
    r1, se1 = pooled_ratio(values, mean, predicted, documents)
    margin = max(r1 + safety * (se1 or 0.0), MIN_MARGIN)
    facts = {"ratio_at_base": r0, "ratio_at_base_stderr": se0, "ratio": r1,
             "ratio_stderr": se1, "safety": safety, "margin": margin,
             "min_margin": MIN_MARGIN}
    return margin, facts


def _with(codec: WindowControlledCodec, margin: float, cap: float) -> WindowControlledCodec:
    return WindowControlledCodec(codec.base, codec.fisher_matrix, codec.fisher_first,
                                 codec.level, margin, cap, label=codec.label,
                                 fit_report=codec.fit_report)


def fit_controlled(context, input_ids, level: float, method: str = "fit", margin: float = 0.0,
                   *, base: str = "klt-context", variant: str | None = None,
                   safety: float = 1.0, cap_multiple: float = 2.0, **options):
    """Fit the recipe ``base``, then its window control (margin and rate cap).

    The signature of :meth:`rdgap.codecs.recipes.Recipe.fit`.

    Parameters
    ----------
    context : rdgap.codecs.fit.FitContext
        Statistics, Fisher (with its full matrix) and the calibration probe.
    input_ids : torch.Tensor
        Ids of the statistics windows (passed to the base's fitter).
    level : float
        ΔCE level (nats/token, > 0): the base is calibrated to it and every window's
        ``m·P_k`` is held below it.
    method, margin
        Passed to the base's fitter (its step-scale calibration).
    base : str
        The recipe wrapped (its codec must be rescalable).
    variant : str, optional
        The name the fitted codec reports (default ``base + "-wc"``).
    safety : float
        ``z ≥ 0`` of the margin's safety rule.
    cap_multiple : float
        ``B_cap`` = this × the fitted rate (> 1).
    **options
        Passed to the base's fitter.

    Returns
    -------
    rdgap.codecs.fit.FittedCodec
        Its calibration holds the controlled codec's ΔCE on the probe windows (mean,
        s.e. over documents where the probe gives them) and the base's scale and trace.
    """
    from ..fit import FittedCodec
    from ..recipes import recipe

    if not (np.isfinite(safety) and safety >= 0):
        raise ValueError(f"safety: expected z ≥ 0 (standard errors added to the margin), "
                         f"got {safety}")
    if not (np.isfinite(cap_multiple) and cap_multiple > 1):
        raise ValueError(f"cap_multiple: expected a multiple > 1 of the fitted rate, got "
                         f"{cap_multiple}")
    fitted = recipe(base).fit(context, input_ids, level, method=method, margin=margin,
                              cap=None, **options)
    fisher = context.fisher
    matrix = fisher.matrix if fisher.matrix is not None else np.diag(fisher.rest)
    label = f"{variant or base + '-wc'} level={level:g}"
    start = WindowControlledCodec(fitted.codec, matrix, fisher.first, level, 1.0, _UNCAPPED,
                                  label=label)
    chosen, facts = calibrate_margin(start, context.probe, safety)
    probe = context.probe
    uncapped = _with(start, chosen, _UNCAPPED)
    decisions = [uncapped.decide(window) for window in probe.hidden]
    tokens = probe.hidden.shape[1]
    header = 8.0 * header_size(uncapped.codec_id, 2)
    bits = np.array([header + 8.0 * len(d.payload) for d in decisions]) / tokens
    cap = cap_multiple * float(bits.mean())
    coarsest = [len(uncapped.at(len(LADDER) - 1)._encode_payload(w)) for w in probe.hidden]
    coarsest_bits = (header + 8.0 * (np.array(coarsest) + WINDOW_HEADER_BYTES)) / tokens
    values, mean = _measured(probe, [d.reconstruction for d in decisions])
    stderr = None
    if values is not None:
        from rdgap.validation.distortion import document_estimate
        stderr = document_estimate(values, np.asarray(probe.documents)).stderr
    factors = np.array([d.factor for d in decisions])
    report = facts | {
        "level": level, "fit_bits_per_token": float(bits.mean()), "cap_multiple": cap_multiple,
        "cap_bits_per_token": cap, "fit_windows": int(len(decisions)),
        "fit_windows_cap_binds": int(np.sum(bits > cap)),
        "fit_windows_coarsest_fits": int(np.sum(coarsest_bits <= cap)),
        "fit_windows_level_unreached": int(sum(bool(d.flags & FLAG_LEVEL_UNREACHED)
                                               for d in decisions)),
        "fit_factor_median": float(np.median(factors)), "fit_factor_min": float(factors.min()),
        "fit_factor_max": float(factors.max()), "fit_delta_ce": mean,
        "fit_delta_ce_stderr": stderr, "base_scale": fitted.calibration.scale}
    codec = WindowControlledCodec(fitted.codec, matrix, fisher.first, level, chosen, cap,
                                  label=label, fit_report=report)
    base_calibration = fitted.calibration
    calibration = Calibration(
        scale=base_calibration.scale, delta_ce=mean, target=level, met=mean <= level,
        trace=base_calibration.trace, fitted_scale=base_calibration.fitted_scale,
        exponent=base_calibration.exponent, stderr=stderr, margin=margin,
        upper=None if stderr is None else mean + margin * stderr)
    predicted = chosen * float(np.mean([d.predicted for d in decisions]))
    return FittedCodec(variant or f"{base}-wc", codec, calibration, predicted)


__all__ = ["fit_controlled", "calibrate_margin", "pooled_ratio", "MIN_MARGIN"]
