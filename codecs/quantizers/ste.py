"""Differentiable pieces for learning a codec end to end: straight-through rounding and
the rate of rounded symbols under discretised densities.

Straight-through rounding
    ``round_ste(x)`` is ``round(x)`` in the forward pass and the identity in the
    backward pass, so a loss of the reconstruction ``Δ·round_ste(z/Δ)`` has a
    gradient with respect to the step: ``∂/∂Δ [Δ·round(z/Δ)] = round(z/Δ) − z/Δ``,
    i.e. the quantization error over ``Δ``.
Rate
    ``discretised_bits(s, b)`` is ``−log2 q(s)`` with ``q(s) = CDF(s+½) − CDF(s−½)``
    for a zero-mean Laplace (``b`` its scale) or Gaussian (``b`` its standard
    deviation) density in units of the step, floored at ``floor`` — the ideal code
    length of THEORY.md T1 (``E[−log q(S)] = H(S) + D(p‖q)``) of the tables of
    :func:`rdgap.codecs.entropy_models.tables.discretised_table` (``ρ = ½``), without their
    escape symbol and renormalisation. It is differentiable in ``s`` (through the
    straight-through rounding) and in ``b`` (so in the step: ``b = σ/Δ``).

Both sides of a cell are evaluated on the tail away from the mean
(``|s|``; survival functions), so nothing cancels far from the mean.
"""

from __future__ import annotations

import math

import torch

FAMILIES = ("laplace", "gaussian")
#: Likelihood floor of :func:`discretised_bits` (the tables' :data:`rdgap.codecs.entropy_models.tables.PROBABILITY_FLOOR`).
LIKELIHOOD_FLOOR = 2.0 ** -20


class _RoundSTE(torch.autograd.Function):
    """``round`` forward, identity backward."""

    @staticmethod
    def forward(ctx, x):  # noqa: D102
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        return grad


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Straight-through rounding: ``torch.round(x)`` forward, gradient passed unchanged.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([0.4, 1.6, -2.5], requires_grad=True)
    >>> y = round_ste(x)
    >>> y.sum().backward()
    >>> y.tolist(), x.grad.tolist()
    ([0.0, 2.0, -2.0], [1.0, 1.0, 1.0])
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x: expected a floating-point tensor, got "
                         f"{getattr(x, 'dtype', type(x).__name__)}")
    return _RoundSTE.apply(x)


def _cell_probability(symbols: torch.Tensor, scale: torch.Tensor, family: str) -> torch.Tensor:
    """``P(|s| − ½ ≤ |Y| < |s| + ½)`` on one side, by survival differences."""
    a = symbols.abs()
    if family == "laplace":
        # s = 0: 1 − e^{−1/(2b)}; |s| ≥ 1: ½ e^{−(|s|−½)/b} (1 − e^{−1/b})
        zero = -torch.expm1(-0.5 / scale)
        other = 0.5 * torch.exp(-(a - 0.5).clamp_min(0.5) / scale) * -torch.expm1(-1.0 / scale)
        return torch.where(a < 0.5, zero, other)
    root2 = math.sqrt(2.0)
    upper = torch.special.erfc((a + 0.5) / (scale * root2))
    lower = torch.special.erfc((a - 0.5).clamp_min(0.0) / (scale * root2))
    # s = 0: erf(1/(2√2 b)) = 1 − erfc(...); |s| ≥ 1: ½ (erfc(lower) − erfc(upper))
    return torch.where(a < 0.5, 1.0 - upper, 0.5 * (lower - upper))


def discretised_bits(symbols: torch.Tensor, scale: torch.Tensor, family: str = "laplace",
                     floor: float = LIKELIHOOD_FLOOR) -> torch.Tensor:
    """``−log2 max(CDF(s+½) − CDF(s−½), floor)`` of each symbol, differentiably.

    Parameters
    ----------
    symbols : torch.Tensor
        Rounded symbols (float; e.g. from :func:`round_ste`, for a gradient).
    scale : torch.Tensor
        Density scale in steps (> 0), broadcast against ``symbols``: the Laplace
        ``b`` (mean absolute deviation) or the Gaussian standard deviation.
    family : {"laplace", "gaussian"}
    floor : float
        Likelihood floor in ``(0, 1)``.

    Returns
    -------
    torch.Tensor
        Bits of each symbol (THEORY.md T1's ideal code length ``−log2 q(s)``).

    Examples
    --------
    >>> import torch
    >>> bits = discretised_bits(torch.tensor([0.0, 1.0, -3.0]), torch.tensor(1.0))
    >>> [round(v, 4) for v in bits.tolist()]
    [1.3457, 2.3831, 5.2685]
    """
    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
    if not 0 < floor < 1:
        raise ValueError(f"floor: expected a likelihood floor in (0, 1), got {floor}")
    for name, value in (("symbols", symbols), ("scale", scale)):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point tensor, got "
                             f"{getattr(value, 'dtype', type(value).__name__)}")
        if not torch.isfinite(value).all():
            raise ValueError(f"{name}: expected finite values, got NaN or Inf")
    if not (scale > 0).all():
        raise ValueError("scale: expected density scales > 0 (in steps)")
    p = _cell_probability(symbols, scale, family)
    return -torch.log2(p.clamp_min(floor))
