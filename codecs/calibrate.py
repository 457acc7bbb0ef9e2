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

import torch

from .split import SplitModel


class DistortionProbe:
    """ΔCE (nats/token) of reconstructions on fixed windows, exact CE cached.

    Parameters
    ----------
    split : SplitModel
    input_ids : torch.Tensor
        ``(windows, tokens)`` token ids of the windows.
    hidden : torch.Tensor
        ``(windows, tokens, channels)`` exact hidden states at the split.
    """

    def __init__(self, split: SplitModel, input_ids: torch.Tensor, hidden: torch.Tensor,
                 batch_size: int = 4):
        self.split, self.input_ids, self.hidden = split, input_ids, hidden
        self.batch_size = batch_size
        self.exact_ce = self._ce(hidden)

    def _ce(self, hidden: torch.Tensor) -> torch.Tensor:
        values = []
        for start in range(0, hidden.shape[0], self.batch_size):
            logits = self.split.suffix(hidden[start:start + self.batch_size])
            ids = self.input_ids[start:start + self.batch_size]
            log_probs = torch.log_softmax(logits.double(), dim=-1)[:, :-1]
            values.append(-log_probs.gather(-1, ids[:, 1:, None]).squeeze(-1))
        return torch.cat(values)

    def delta_ce(self, reconstruct: Callable[[torch.Tensor], torch.Tensor]) -> float:
        """Mean ΔCE when every window's hidden state is replaced by ``reconstruct(window)``."""
        recon = torch.stack([reconstruct(window) for window in self.hidden])
        return float((self._ce(recon) - self.exact_ce).mean())


@dataclass
class Calibration:
    """The chosen scale and every (scale, ΔCE) evaluated on the way."""

    scale: float
    delta_ce: float
    target: float
    met: bool
    trace: list[tuple[float, float]] = field(default_factory=list)


def calibrate_scale(measure: Callable[[float], float], target: float, initial: float,
                    evaluations: int = 7, ratio: float = 1.15) -> Calibration:
    """Largest scale ``α`` with ``measure(α) ≤ target``, to within a factor ``ratio``.

    Parameters
    ----------
    measure : callable
        ΔCE at scale ``α`` (increasing in ``α`` up to noise).
    target : float
        ΔCE target in nats per token (> 0).
    initial : float
        First scale to try (e.g. from the T7 prediction).
    evaluations : int
        At most this many calls of ``measure``.
    """
    if not target > 0:
        raise ValueError(f"target: expected a ΔCE target > 0 nats/token, got {target}")
    if not initial > 0:
        raise ValueError(f"initial: expected a scale > 0, got {initial}")
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
