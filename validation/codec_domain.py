"""The domain a codec codes: its quantizer, lattice and kind of entropy model.

See :mod:`rdgap.validation.statistics` ("The domain a codec codes", "Factorized,
joint or generic") for how a codec's symbols and entropy model are found.
"""

from __future__ import annotations

import numpy as np
import torch


class LatticeQuantizer:
    """The uniform quantizer at a codec's steps, in its (transform) domain.

    For codecs that expose ``step``, ``first_step``, ``first_mean``, ``mean`` and
    optionally ``analysis`` / ``synthesis`` but quantize in their own way (e.g.
    a predictive or dead-zone quantizer): symbols ``round(A (Y - mean) / step)``
    for positions >= 1 and ``round((Y_0 - first_mean) / first_step)`` for
    position 0 — the lattice that T3's diagonal bound refers to.
    """

    def __init__(self, codec):
        self.step = np.asarray(codec.step, float)
        self.first_step = np.asarray(codec.first_step, float)
        self.first_mean = np.asarray(codec.first_mean, float)
        self.mean = np.asarray(codec.mean, float)
        self.analysis = getattr(codec, "analysis", None)
        self.synthesis = getattr(codec, "synthesis", None)

    def quantize(self, hidden: torch.Tensor) -> np.ndarray:
        x = hidden.detach().double().numpy()
        rest = x[1:] - self.mean
        if self.analysis is not None:
            rest = rest @ np.asarray(self.analysis).T
        first = (x[:1] - self.first_mean) / self.first_step
        return np.rint(np.concatenate([first, rest / self.step])).astype(np.int64)

    def dequantize(self, symbols: np.ndarray) -> torch.Tensor:
        rest = symbols[1:] * self.step
        if self.synthesis is not None:
            rest = rest @ np.asarray(self.synthesis).T
        out = np.concatenate([self.first_mean + self.first_step * symbols[:1],
                              self.mean + rest])
        return torch.from_numpy(out)


def quantizer_of(codec):
    """The object that maps hidden states to symbols for ``codec``, or None.

    Looks at ``codec``, ``codec.model`` and ``codec.quantizer``, in that order,
    for ``quantize``, ``dequantize``, ``step`` and ``first_step``; failing
    that, a codec with ``step``, ``first_step``, ``first_mean`` and ``mean``
    gets its :class:`LatticeQuantizer`.
    """
    for candidate in (codec, getattr(codec, "model", None), getattr(codec, "quantizer", None)):
        if candidate is not None and all(hasattr(candidate, name) for name in
                                         ("quantize", "dequantize", "step", "first_step")):
            return candidate
    if all(hasattr(codec, name) for name in ("step", "first_step", "first_mean", "mean")):
        return LatticeQuantizer(codec)
    return None


def entropy_model_kind(codec, quantizer, has_likelihood: bool = True) -> str | None:
    """``"factorized"``, ``"joint"``, ``"generic"`` or None (see the module docstring)."""
    declared = getattr(codec, "entropy_model", None)
    if declared in ("factorized", "joint", "generic"):
        return declared
    if quantizer is None:
        return None
    from rdgap.codecs.entropy_models.factorized import FactorizedCodec

    if isinstance(quantizer, FactorizedCodec) and (
            codec is quantizer or getattr(codec, "model", None) is quantizer):
        return "factorized"
    return "joint" if has_likelihood else "generic"
