"""The rate–distortion knob: the cheapest step scale that meets a target ΔCE.

Steps are ``α·Δ_base`` for a base allocation (``c·std`` or T7's Fisher
allocation). ΔCE grows with ``α`` (≈ ``α²`` at high resolution, THEORY.md T7),
so the largest ``α`` whose measured ΔCE on the fit windows stays at or below
the target is found by bracketing and geometric bisection, starting from the
T7 prediction. The chosen codec is then verified on evaluation windows by the
caller; the fit-set ΔCE is only a calibration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from rdgap.split import SplitModel


class DistortionProbe:
    """ΔCE (nats/token) of reconstructions on fixed windows, exact CE cached.

    Parameters
    ----------
    split : SplitModel
    input_ids : torch.Tensor
        ``(windows, tokens)`` token ids of the windows.
    hidden : torch.Tensor
        ``(windows, tokens, channels)`` exact hidden states at the split.
    batch_size : int
        Windows per suffix pass.
    documents : torch.Tensor, optional
        ``(windows,)`` document of each window, for the standard error over
        documents (:meth:`estimate`); without it every window is its own document.
    """

    def __init__(self, split: SplitModel, input_ids: torch.Tensor, hidden: torch.Tensor,
                 batch_size: int = 4, documents: torch.Tensor | None = None):
        if documents is not None and len(documents) != hidden.shape[0]:
            raise ValueError(f"documents: expected one document per window "
                             f"({hidden.shape[0]}), got {len(documents)}")
        self.split, self.input_ids, self.hidden = split, input_ids, hidden
        self.batch_size = batch_size
        self.documents = (np.arange(hidden.shape[0]) if documents is None
                          else np.asarray(documents))
        self.exact_ce = self._ce(hidden)

    def _ce(self, hidden: torch.Tensor) -> torch.Tensor:
        values = []
        for start in range(0, hidden.shape[0], self.batch_size):
            logits = self.split.suffix(hidden[start:start + self.batch_size])
            ids = self.input_ids[start:start + self.batch_size]
            log_probs = torch.log_softmax(logits.double(), dim=-1)[:, :-1]
            values.append(-log_probs.gather(-1, ids[:, 1:, None]).squeeze(-1))
        return torch.cat(values)

    def per_window(self, reconstruct: Callable[..., torch.Tensor],
                   with_ids: bool = False) -> torch.Tensor:
        """``(windows, tokens − 1)`` ΔCE of every predicted token when every window's
        hidden state is replaced by ``reconstruct(window)`` — or by
        ``reconstruct(window, ids)`` with the window's token ids if ``with_ids`` (for
        codecs that code the ids too, e.g. :mod:`rdgap.codecs.entropy_models.token_context`)."""
        recon = torch.stack([reconstruct(window, ids) if with_ids else reconstruct(window)
                             for window, ids in zip(self.hidden, self.input_ids)])
        return self._ce(recon) - self.exact_ce

    def delta_ce(self, reconstruct: Callable[..., torch.Tensor],
                 with_ids: bool = False) -> float:
        """Mean ΔCE of :meth:`per_window`."""
        return float(self.per_window(reconstruct, with_ids).mean())

    def estimate(self, reconstruct: Callable[..., torch.Tensor], with_ids: bool = False):
        """Mean ΔCE of :meth:`per_window` and its standard error over documents
        (:func:`rdgap.validation.distortion.document_estimate`); the mean is exactly
        :meth:`delta_ce`'s."""
        from rdgap.validation.distortion import document_estimate

        values = self.per_window(reconstruct, with_ids)
        spread = document_estimate(values.mean(1).numpy(), self.documents)
        return float(values.mean()), spread.stderr


@dataclass
class Calibration:
    """The chosen scale and every (scale, ΔCE) evaluated on the way.

    Attributes
    ----------
    scale, delta_ce : float
        The chosen scale and the ΔCE measured there (nats/token).
    target : float
        The ΔCE target.
    met : bool
        Whether ``delta_ce ≤ target`` (measured, not fitted).
    trace : list of (float, float)
        Every ``(α, ΔCE)`` measured, in order.
    fitted_scale : float or None
        The scale at which the least-squares power law through the trace
        reaches the target (``method="fit"``), else None.
    exponent : float or None
        The fitted exponent ``p`` of ``ΔCE ∝ α^p`` (THEORY.md T7: ``p ≈ 2``).
    stderr : float or None
        Standard error over documents of ``delta_ce``, where the measure gives one.
    margin : float
        The ``z`` of the criterion ``ΔCE + z·s.e. ≤ target`` (0: the mean alone).
    upper : float or None
        ``delta_ce + margin·stderr``, the upper confidence bound the choice met
        (equal to ``delta_ce`` for ``margin = 0``).
    """

    scale: float
    delta_ce: float
    target: float
    met: bool
    trace: list[tuple[float, float]] = field(default_factory=list)
    fitted_scale: float | None = None
    exponent: float | None = None
    stderr: float | None = None
    margin: float = 0.0
    upper: float | None = None


def power_law(trace: list[tuple[float, float]], target: float,
              prior_exponent: float = 2.0, prior_weight: float = 0.01) -> tuple[float, float]:
    """Scale where the fitted ``log ΔCE = a + p·log α`` reaches ``target``, and ``p``.

    Weighted least squares over every positive ``(α, ΔCE)`` in ``trace``, the
    weights ``exp(−(log(ΔCE/target))²/2)`` favouring points near the target, with
    a ridge ``prior_weight·(p − prior_exponent)²`` towards THEORY.md T7's
    high-resolution exponent (``ΔCE ≈ Σ F Δ²/24 ∝ α²``, eq. T7), so that one point,
    or points spanning a tiny range of scales, still give a finite answer.

    Parameters
    ----------
    trace : list of (float, float)
        Measured ``(α, ΔCE)`` pairs (``α > 0``); pairs with ``ΔCE ≤ 0`` are ignored.
    target : float
        ΔCE target (> 0).
    prior_exponent, prior_weight : float
        The ridge's centre and weight (weight ≥ 0; in squared log units).

    Returns
    -------
    (float, float)
        The scale that meets the target on the fitted curve, and the exponent
        ``p``, clamped to ``[1, 4]``.
    """
    if not target > 0:
        raise ValueError(f"target: expected a ΔCE target > 0 nats/token, got {target}")
    points = [(math.log(a), math.log(v)) for a, v in trace if a > 0 and v > 0]
    if not points:
        raise ValueError(f"trace: expected at least one (α > 0, ΔCE > 0) pair, got {trace}")
    x, y = (np.array(v) for v in zip(*points))
    w = np.exp(-0.5 * (y - math.log(target)) ** 2)
    # minimise Σ w (y − a − p x)² + λ (p − p0)²: normal equations in (a, p)
    lam = prior_weight
    sw, sx, sy = w.sum(), (w * x).sum(), (w * y).sum()
    sxx, sxy = (w * x * x).sum() + lam, (w * x * y).sum() + lam * prior_exponent
    det = sw * sxx - sx * sx
    p = (sw * sxy - sx * sy) / det
    p = float(min(max(p, 1.0), 4.0))
    a = (sy - p * sx) / sw
    return math.exp((math.log(target) - a) / p), p


def calibrate_scale(measure: Callable[[float], float | tuple[float, float | None]],
                    target: float, initial: float, evaluations: int = 7, ratio: float = 1.15,
                    method: str = "fit", margin: float = 0.0) -> Calibration:
    """A scale ``α`` with ``measure(α) ≤ target``, as large as the measurements allow.

    With a ``margin`` ``z > 0`` the criterion is the upper confidence bound
    ``ΔCE(α) + z·s.e.(α) ≤ target``, with the standard error over documents
    measured at each scale: the search and the power law below then run on the
    bounds. Both the mean and its standard error scale as ``α²`` at high
    resolution (THEORY.md T7: every window's ΔCE ≈ ``α²·Σ F Δ²/24``, so their
    spread across documents does too), hence the bound follows the same power
    law and the least-squares fit applies to it unchanged.

    Parameters
    ----------
    measure : callable
        ΔCE at scale ``α`` (increasing in ``α`` up to noise), or a pair
        ``(ΔCE, standard error)`` (the error may be None where unknown; a margin
        then needs it).
    target : float
        ΔCE target in nats per token (> 0).
    initial : float
        First scale to try (e.g. from the T7 prediction).
    evaluations : int
        At most this many calls of ``measure``.
    ratio : float
        Resolution in scale (> 1).
    method : {"fit", "bracket"}
        ``"fit"`` (default): each next scale is where the least-squares power law
        through *all* points so far (:func:`power_law`, T7's ``p ≈ 2`` as prior)
        reaches the target; it stops once a measured point within ``ratio`` of
        that scale meets the target, and returns the largest point that meets the
        target *and* is no larger than the fitted scale times ``√ratio``. A single
        lucky draw above the fitted curve is thus never chosen, which removes the
        upward bias of picking the largest point that happens to measure below
        the target. ``"bracket"``: the largest scale that measured ≤ target, by
        bracketing and geometric bisection, to within ``ratio``.
    margin : float
        ``z ≥ 0`` of the criterion ``ΔCE + z·s.e. ≤ target`` (default 0: the mean
        alone, the behaviour without a margin). ``z = 1`` asks the fit windows'
        one-standard-error upper bound to meet the target, so that a level near
        the noise of the probe (e.g. ΔCE 0.01 on 32 windows) is met by the
        evaluation windows' mean more often than half the time.

    Returns
    -------
    Calibration
        ``met`` only when the returned scale *measured* ≤ target (its bound, with
        a margin); ``trace`` holds the measured means, ``upper`` the bound.
    """
    if not target > 0:
        raise ValueError(f"target: expected a ΔCE target > 0 nats/token, got {target}")
    if not initial > 0:
        raise ValueError(f"initial: expected a scale > 0, got {initial}")
    if not ratio > 1:
        raise ValueError(f"ratio: expected a scale resolution > 1, got {ratio}")
    if evaluations < 1:
        raise ValueError(f"evaluations: expected ≥ 1, got {evaluations}")
    if not margin >= 0:
        raise ValueError(f"margin: expected z ≥ 0 standard errors, got {margin}")
    if method not in ("fit", "bracket"):
        raise ValueError(f"method: expected 'fit' or 'bracket', got {method!r}")
    measured: list[tuple[float, float | None]] = []  # (mean, s.e.) of every call, in order

    def bound(alpha: float) -> float:
        """The criterion at ``alpha``: the measured mean, plus ``margin`` s.e. if > 0."""
        result = measure(alpha)
        value, stderr = result if isinstance(result, tuple) else (result, None)
        if margin and (stderr is None or not math.isfinite(stderr)):
            raise ValueError(f"margin: z = {margin} needs a measure that returns "
                             f"(ΔCE, finite standard error); it returned {result!r} (a "
                             f"probe over a single document has no standard error)")
        measured.append((float(value), stderr))
        # z = 0: the mean itself, whatever the error (bit for bit the search without a margin)
        return float(value) + margin * stderr if margin else float(value)

    search = _bracket if method == "bracket" else _fitted
    chosen = search(bound, target, initial, evaluations, ratio)  # its trace: the bounds
    chosen.upper = chosen.delta_ce
    chosen.delta_ce, chosen.stderr = measured[chosen.trace.index((chosen.scale, chosen.upper))]
    chosen.trace = [(a, mean) for (a, _), (mean, _) in zip(chosen.trace, measured)]
    chosen.margin = float(margin)
    return chosen


def _fitted(measure, target, initial, evaluations, ratio) -> Calibration:
    """``calibrate_scale(method="fit")`` on the criterion values ``measure(α)``."""
    trace: list[tuple[float, float]] = []
    alpha = initial
    fitted = exponent = None
    for _ in range(evaluations):
        trace.append((alpha, measure(alpha)))
        if all(v <= 0 for _, v in trace):  # no signal yet: grow
            alpha *= 4.0
            continue
        fitted, exponent = power_law(trace, target)
        near = [(a, v) for a, v in trace if fitted / ratio <= a <= fitted * math.sqrt(ratio)]
        if any(v <= target for _, v in near):
            break  # a point near the fitted scale meets the target: verified
        over = [a for a, v in near if v > target]
        nearest = min((a for a, _ in trace), key=lambda a: abs(math.log(a / fitted)))
        alpha = min(fitted, min(over) / ratio) if over else fitted
        alpha = min(max(alpha, nearest / 4.0), nearest * 4.0)
    meeting = [(a, v) for a, v in trace if v <= target]
    if not meeting:
        best = min(trace, key=lambda t: t[1])
        return Calibration(best[0], best[1], target, False, trace, fitted, exponent)
    cap = fitted * math.sqrt(ratio) if fitted is not None else math.inf
    capped = [(a, v) for a, v in meeting if a <= cap] or [min(meeting)]
    scale, value = max(capped)
    return Calibration(scale, value, target, True, trace, fitted, exponent)


def _bracket(measure, target, initial, evaluations, ratio) -> Calibration:
    """``calibrate_scale(method="bracket")``."""
    trace: list[tuple[float, float]] = []
    low = high = None  # low meets the target, high does not
    alpha = initial
    for _ in range(evaluations):
        value = measure(alpha)
        trace.append((alpha, value))
        if value <= target:
            low = alpha if low is None else max(low, alpha)
        else:
            high = alpha if high is None else min(high, alpha)
        if low is not None and high is not None:
            if high / low <= ratio:
                break
            alpha = math.sqrt(low * high)
        elif low is None:  # still too coarse: shrink, using ΔCE ∝ α²
            alpha = alpha * max(min(math.sqrt(target / max(value, 1e-12)), 0.8), 0.25)
        else:  # still fine enough: grow
            alpha = alpha * min(max(math.sqrt(target / max(value, 1e-12)), 1.25), 4.0)
    if low is None:
        best = min(trace, key=lambda t: t[1])
        return Calibration(best[0], best[1], target, False, trace)
    value = next(v for a, v in trace if a == low)
    return Calibration(low, value, target, True, trace)
