"""Stand-ins for a split model and a ΔCE probe on a linear read-out, shared by the
codec tests that fit and calibrate on tiny synthetic states (the rate cap, the
window control).

``LinearReadout`` offers what :class:`rdgap.codecs.fit.FitContext` and the Fisher
need (``suffix`` and ``suffix_differentiable``); ``KLProbe`` measures ΔCE's
expectation over labels drawn from the model, KL(p_exact ‖ p_reconstruction) per
token, so calibration is free of label noise.
"""

from __future__ import annotations

import numpy as np
import torch


class LinearReadout:
    """A stand-in split model: ``logits = hidden @ W``, ``W`` of shape (channels, vocabulary)."""

    def __init__(self, channels: int, vocabulary: int, seed: int = 0, gain: float = 0.1):
        generator = torch.Generator().manual_seed(seed)
        self.weight = gain * torch.randn(channels, vocabulary, generator=generator,
                                         dtype=torch.float64)

    def suffix_differentiable(self, hidden):
        return hidden.double() @ self.weight

    def suffix(self, hidden):
        with torch.no_grad():
            return self.suffix_differentiable(hidden)


class KLProbe:
    """Per token KL(p_exact ‖ p_reconstruction) on fixed windows: ΔCE's expectation."""

    def __init__(self, split, hidden):
        self.split, self.hidden = split, hidden
        self.documents = np.arange(hidden.shape[0])
        self.exact = torch.log_softmax(split.suffix(hidden), -1)

    def per_window(self, reconstruct, with_ids=False):
        recon = torch.stack([reconstruct(window) for window in self.hidden])
        log_q = torch.log_softmax(self.split.suffix(recon), -1)
        return (self.exact.exp() * (self.exact - log_q)).sum(-1)[:, 1:]

    def delta_ce(self, reconstruct):
        return float(self.per_window(reconstruct).mean())

    def estimate(self, reconstruct):
        values = self.per_window(reconstruct).mean(1).numpy()
        return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))
