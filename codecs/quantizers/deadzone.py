"""The dead-zone quantizer with reconstruction at the cell centroid of a Laplace law.

Quantizer
    values ``x`` in steps (the residual after the transform and the prediction,
    divided by the step) map to ``S = sign(x)·⌊|x| + ρ⌋`` with a rounding offset
    ``ρ ∈ (0, ½]``: the zero cell ``(−(1 − ρ), 1 − ρ)`` is wider than the others
    (``ρ = ½`` is plain rounding), cell ``k ≥ 1`` is ``[k − ρ, k + 1 − ρ)``.
Reconstruction
    at the centroid of the cell under a Laplace law of scale ``s`` steps. The law is
    memoryless, so every cell ``|S| = k ≥ 1`` has the same offset,
    ``|x̂| = k − (ρ − c(s))``, ``c(s) = s − 1/(e^{1/s} − 1)`` (:func:`centroid_offset`);
    the zero cell reconstructs to 0.
Rate–distortion optimised quantization (encoder only)
    :func:`rdo_symbols` moves a nonzero symbol one step toward zero where that lowers
    ``ΔD + λ·Δbits`` under the same Laplace law; the decoder does not depend on it.

Used by :class:`rdgap.codecs.entropy_models.context.ContextCodec` and its subclasses
(token context, hyperprior), their fit (:mod:`rdgap.codecs.entropy_models.context_fit`)
and their torch coder (:mod:`rdgap.codecs.coders.torch_context`). :func:`quantize` and
:func:`dequantize` take numpy arrays or torch tensors and return the same kind.

>>> import numpy as np
>>> quantize(np.array([0.55, 0.65, -1.7, 2.59]), 0.4).tolist()
[0.0, 1.0, -2.0, 2.0]
>>> offset = centroid_offset(np.array([1.0]), 0.4)
>>> round(float(offset[0]), 4)
-0.018
>>> dequantize(np.array([0, 1, -2]), np.repeat(offset, 3)).round(4).tolist()  # k − offset
[0.0, 1.018, -2.018]
"""

from __future__ import annotations

import numpy as np
import torch


def quantize(x, rounding: float):
    """Dead-zone symbols ``sign(x)·⌊|x| + ρ⌋`` of values ``x`` in steps.

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor
        Values in steps (residual / step), any shape.
    rounding : float
        The offset ``ρ`` in ``(0, ½]`` (the codec checks it once).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Integer-valued floats of ``x``'s dtype (the causal loops keep them as floats
        until they are coded; check their range with
        :func:`rdgap.codecs.quantizers.uniform.check_range`).
    """
    if isinstance(x, torch.Tensor):
        return torch.sign(x) * torch.floor(x.abs() + rounding)
    return np.sign(x) * np.floor(np.abs(x) + rounding)


def dequantize(symbols, offset):
    """``x̂`` in steps: 0 for ``S = 0``, else ``sign(S)·(|S| − offset)`` at the cell centroid.

    Parameters
    ----------
    symbols : numpy.ndarray or torch.Tensor
        Symbols (integers, or integer-valued floats).
    offset : array or tensor broadcasting against ``symbols``
        :func:`centroid_offset` of each symbol's Laplace scale.
    """
    if isinstance(symbols, torch.Tensor):
        return torch.where(symbols == 0, torch.zeros_like(offset),
                           torch.sign(symbols) * (symbols.abs() - offset))
    return np.where(symbols == 0, 0.0, np.sign(symbols) * (np.abs(symbols) - offset))


def centroid_offset(scale: np.ndarray, rounding: float) -> np.ndarray:
    """``k − |x̂|`` for a cell ``|S| = k ≥ 1`` of a Laplace law of ``scale`` steps
    quantized with offset ``rounding``: ``ρ − c(s)``, ``c(s) = s − 1/(e^{1/s} − 1)``.

    >>> round(float(centroid_offset(np.array([1e-3]), 0.4)[0]), 4)  # a narrow law: the cell's edge
    0.399
    """
    s = np.asarray(scale, dtype=np.float64)
    decay = np.exp(-1.0 / s)
    return rounding - (s - decay / (1.0 - decay))


def rdo_symbols(x: np.ndarray, symbols: np.ndarray, scale: np.ndarray, offset: np.ndarray,
                rounding: float, weight: float) -> np.ndarray:
    """Dead-zone ``symbols`` of values ``x`` (in steps), each nonzero one moved one step
    toward zero where ``ΔD + weight·Δbits < 0``.

    ``D`` is the squared error of the centroid reconstruction (``offset`` per value),
    the bits those of the dead-zone Laplace law of ``scale`` steps
    (``−log2 q(k) = (k − ρ)/s·log2 e + const`` for ``k ≥ 1``).

    Parameters
    ----------
    x : numpy.ndarray
        Values in steps.
    symbols : numpy.ndarray
        Their :func:`quantize` symbols (integer-valued floats).
    scale, offset : numpy.ndarray
        Each value's Laplace scale in steps and its :func:`centroid_offset`.
    rounding : float
        The offset ``ρ``.
    weight : float
        ``λ``, squared steps per bit (> 0).

    >>> rdo_symbols(np.array([1.0, 0.62]), np.array([1.0, 1.0]), np.array([0.5, 0.5]),
    ...             centroid_offset(np.array([0.5, 0.5]), 0.4), 0.4, 0.2).tolist()
    [1.0, 0.0]
    """
    a = np.abs(symbols)
    ax = np.abs(x)
    error_now = (ax - np.where(a > 0, a - offset, 0.0)) ** 2
    lower = np.maximum(a - 1, 0)
    error_lower = (ax - np.where(lower > 0, lower - offset, 0.0)) ** 2
    log2e = 1.0 / np.log(2.0)
    one = (1.0 - rounding) / scale * log2e - np.log2(0.5 * -np.expm1(-1.0 / scale))
    zero = -np.log2(-np.expm1(-(1.0 - rounding) / scale))
    saved = np.where(a >= 2, log2e / scale, one - zero)
    move = (a >= 1) & (error_lower - error_now < weight * saved)
    return symbols - np.sign(symbols) * move
