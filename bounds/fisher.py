"""T7: task distortion to second order, and the rate it predicts.

Everything here is an APPROXIMATION, not a bound: a second-order Taylor
expansion of the downstream loss around the unquantized hidden state,
combined with the high-resolution approximation of quantized entropy (T5).
Validation reports the error of these predictions; they are never presented
as guarantees.

Units: ``distortion`` is ΔCE in nats per token; ``fisher_diag`` is the
diagonal of the Fisher / Gauss-Newton matrix of the loss (nats) with respect
to the hidden state Y; ``differential_entropies`` are h(Y_j) in bits; steps
are in the units of Y; rates are bits per token.

The allocation: with independent uniform errors ``e_j`` on the cells,
``ΔCE ≈ ½ E[eᵀFe] = Σ_j F_jj Δ_j²/24``. Write ``d_j = F_jj Δ_j²/24`` for the
distortion of channel j; its high-resolution rate is
``h(Y_j) - log2 Δ_j = ½ log2(c_j / d_j)`` with ``c_j = F_jj 4^{h(Y_j)}/24``,
the distortion at which the rate reaches 0. Minimising ``Σ_j ½ log2(c_j/d_j)``
subject to ``Σ_j d_j = D`` and ``d_j <= c_j`` (a channel never needs more
distortion than at zero rate) is convex; its KKT conditions give the
water-filling solution ``d_j = min(θ, c_j)``, ``Σ_j min(θ, c_j) = D``
(derivation: ``rdgap.proofs.DERIVATIONS["fisher_step_allocation"]``). Without
the entropies no channel can be clipped and ``θ = D/n``: equal distortion
per channel, ``Δ_j² = 24 D / (n F_jj)``.
"""

from __future__ import annotations

import math

import numpy as np

from . import _arguments as check
from .catalogue import register

_LOG2_24 = math.log2(24.0)

_HYPOTHESES = [
    "APPROXIMATION, not a bound",
    "loss locally quadratic in Y: ΔCE ≈ ½ E[eᵀ F e] (second-order Taylor; the "
    "first-order term vanishes for zero-mean errors independent of the gradient)",
    "quantization errors uniform on their cells and independent across channels "
    "(high resolution, or subtractive dither)",
    "high-resolution rate h(Y_j) - log2 Δ_j per channel (T5)",
]


def _fisher(fisher_diag) -> np.ndarray:
    return check.positive_array(fisher_diag, "fisher_diag", ndim=1)


def _entropies(differential_entropies, size: int) -> np.ndarray:
    entropies = check.finite_array(differential_entropies, "differential_entropies", ndim=1)
    if entropies.size != size:
        raise ValueError(f"differential_entropies: expected one value per channel "
                         f"({size}, the length of fisher_diag), got {entropies.size}")
    return entropies


def _zero_rate_distortion(fisher: np.ndarray, entropies: np.ndarray) -> np.ndarray:
    """c_j = F_jj 4^{h_j} / 24: the distortion at which channel j's rate reaches 0."""
    return np.exp2(np.log2(fisher) + 2.0 * entropies - _LOG2_24)


def _water_level(ceilings: np.ndarray, distortions: np.ndarray) -> np.ndarray:
    """θ with Σ_j min(θ, c_j) = D for each D (inf when D >= Σ_j c_j)."""
    c = np.sort(ceilings)
    n = c.size
    below = np.concatenate([[0.0], np.cumsum(c)[:-1]])      # Σ_{i<k} c_i
    spent = below + (n - np.arange(n)) * c                   # g(c_k), increasing in k
    k = np.searchsorted(spent, distortions, side="left")     # first k with g(c_k) >= D
    level = np.full(distortions.shape, np.inf)
    inside = k < n
    kk = k[inside]
    level[inside] = (distortions[inside] - below[kk]) / (n - kk)
    return level


@register(
    theory="T7",
    statement="APPROXIMATION (not a bound): minimising Σ_j (h(Y_j) - log2 Δ_j) subject to "
              "Σ_j F_jj Δ_j²/24 = D gives equal distortion per channel, Δ_j² = 24 D/(n F_jj); "
              "with clipping of zero-rate channels, F_jj Δ_j²/24 = min(θ, F_jj 4^h(Y_j)/24), "
              "Σ_j min(θ, F_jj 4^h(Y_j)/24) = D.",
    latex=r"\Delta_j^2 = \frac{24\,\min(\theta, c_j)}{F_{jj}},\ "
          r"c_j = \frac{F_{jj}\,4^{h(Y_j)}}{24},\ \sum_j \min(\theta, c_j) = D"
          r"\quad(\theta = D/n:\ \Delta_j^2 = \tfrac{24D}{nF_{jj}})",
    hypotheses=_HYPOTHESES,
    references=["cover2006", "deandrade2026"],
)
def fisher_step_allocation(fisher_diag, distortion: float,
                           differential_entropies=None) -> np.ndarray:
    r"""Per-channel quantization steps that minimise the predicted rate at ΔCE = D.

    APPROXIMATION, not a bound. Without entropies:

    .. math:: \Delta_j^2 = \frac{24\,D}{n\,F_{jj}}

    (equal distortion ``D/n`` per channel). With ``differential_entropies``,
    the KKT solution with clipping:

    .. math:: \frac{F_{jj}\Delta_j^2}{24} = \min(\theta, c_j),\qquad
              c_j = \frac{F_{jj}\,4^{h(Y_j)}}{24},\qquad
              \sum_j \min(\theta, c_j) = D.

    A clipped channel (``c_j <= θ``) gets zero bits; its step is returned as
    ``2^{h(Y_j)}``, the step at which its high-resolution rate
    ``h(Y_j) - log2 Δ_j`` reaches 0 (for a uniform source: a single cell),
    so that :func:`predicted_delta_ce` of the result is still ``D``. When
    ``D >= Σ_j c_j`` every channel is clipped and the predicted ΔCE is
    ``Σ_j c_j < D``.

    Parameters
    ----------
    fisher_diag : array_like, shape (n,)
        Diagonal F_jj of the Fisher / Gauss-Newton matrix of the downstream
        loss (nats) w.r.t. the hidden state, each ``> 0`` (drop channels with
        zero Fisher information: they need no bits).
    distortion : float
        Target ΔCE D in nats per token, ``> 0``.
    differential_entropies : array_like, shape (n,), optional
        h(Y_j) in bits, to clip channels whose rate would be negative.

    Returns
    -------
    ndarray, shape (n,)
        The steps Δ_j, in the units of Y.

    Notes
    -----
    THEORY.md T7. Derivation (Lagrangian and KKT):
    ``rdgap.proofs.DERIVATIONS["fisher_step_allocation"]``.

    References
    ----------
    .. [1] Cover & Thomas (2006), Elements of Information Theory, Thm 8.3.1
       (high-resolution entropy) and Sec. 10.3.3 (reverse water-filling,
       whose KKT argument this mirrors).
    .. [2] de Andrade, Harell & Bajic (2026), arXiv 2601.22002.

    Examples
    --------
    >>> import numpy as np
    >>> np.round(fisher_step_allocation([1.0, 4.0], 0.01), 4)
    array([0.3464, 0.1732])
    >>> np.round(fisher_step_allocation([1.0, 4.0], 0.1, [0.0, 4.0]), 4)  # channel 0 clipped
    array([1.    , 0.5916])
    """
    fisher = _fisher(fisher_diag)
    target = check.positive(distortion, "distortion")
    if differential_entropies is None:
        return np.sqrt(24.0 * target / (fisher.size * fisher))
    ceilings = _zero_rate_distortion(fisher, _entropies(differential_entropies, fisher.size))
    level = _water_level(ceilings, np.array([target]))[0]
    return np.sqrt(24.0 * np.minimum(level, ceilings) / fisher)


@register(
    theory="T7",
    statement="APPROXIMATION (not a bound): ΔCE ≈ ½ E[eᵀ F e] = Σ_j F_jj Δ_j² / 24 nats "
              "for independent errors uniform on cells of width Δ_j.",
    latex=r"\Delta\mathrm{CE} \approx \tfrac12\mathbb{E}[e^\top F e]"
          r" = \sum_j \frac{F_{jj}\Delta_j^2}{24}",
    hypotheses=_HYPOTHESES[:3],
    references=["deandrade2026"],
)
def predicted_delta_ce(fisher_diag, steps) -> float:
    r"""Second-order prediction of the downstream cross-entropy increase.

    APPROXIMATION, not a bound:

    .. math:: \Delta\mathrm{CE} \approx \tfrac12\,\mathbb E[e^\top F e]
              = \sum_j \frac{F_{jj}\,\Delta_j^2}{24}\ \text{nats},

    because independent zero-mean errors have ``E e_i e_j = 0`` for
    ``i != j`` and ``E e_j² = Δ_j²/12`` when uniform on a cell of width Δ_j.

    Parameters
    ----------
    fisher_diag : array_like, shape (n,)
        F_jj, each ``> 0``.
    steps : array_like, shape (n,)
        Quantization steps Δ_j, each ``> 0``.

    Returns
    -------
    float
        Predicted ΔCE in nats per token.

    Notes
    -----
    THEORY.md T7. Derivation: ``rdgap.proofs.DERIVATIONS["predicted_delta_ce"]``
    (per channel).

    References
    ----------
    .. [1] de Andrade, Harell & Bajic (2026), arXiv 2601.22002.

    Examples
    --------
    >>> round(predicted_delta_ce([1.0, 4.0], [0.3464, 0.1732]), 5)
    0.01
    """
    fisher = _fisher(fisher_diag)
    widths = check.positive_array(steps, "steps", ndim=1)
    if widths.size != fisher.size:
        raise ValueError(f"steps: expected one step per channel ({fisher.size}, the "
                         f"length of fisher_diag), got {widths.size}")
    return float(np.sum(fisher * widths ** 2) / 24.0)


@register(
    theory="T7",
    statement="APPROXIMATION (not a bound): R_pred(D) = Σ_j max(0, h(Y_j) + ½ log2(F_jj / "
              "(24 θ))) bits, Σ_j min(θ, F_jj 4^h(Y_j)/24) = D; without clipping θ = D/n and "
              "R_pred(D) = Σ_j [h(Y_j) + ½ log2(n F_jj / (24 D))].",
    latex=r"R_{\mathrm{pred}}(D) = \sum_j \Big[h(Y_j) + \tfrac12\log_2\frac{F_{jj}}{24\theta}"
          r"\Big]_+,\quad \sum_j\min(\theta, c_j) = D",
    hypotheses=_HYPOTHESES,
    references=["cover2006", "deandrade2026"],
)
def predicted_rate_curve(differential_entropies, fisher_diag, distortions):
    r"""Predicted rate (bits/token) of Fisher-allocated scalar quantization versus ΔCE.

    APPROXIMATION, not a bound:

    .. math:: R_{\mathrm{pred}}(D) = \sum_j \max\Big(0,\ h(Y_j)
              + \tfrac12\log_2\frac{F_{jj}}{24\,\theta(D)}\Big),
              \qquad \sum_j \min(\theta, c_j) = D,

    which equals THEORY.md's
    :math:`\sum_j [h(Y_j) + \tfrac12\log_2(nF_{jj}/(24D))]` as long as no
    channel is clipped (``θ = D/n <= min_j c_j``), and is 0 once
    ``D >= Σ_j c_j``. It is the rate of the allocation of
    :func:`fisher_step_allocation`.

    Parameters
    ----------
    differential_entropies : array_like, shape (n,)
        h(Y_j) in bits.
    fisher_diag : array_like, shape (n,)
        F_jj, each ``> 0``.
    distortions : float or array_like
        ΔCE targets D in nats per token, each ``> 0``.

    Returns
    -------
    float or ndarray
        Predicted rate in bits per token, shaped like ``distortions``.

    Notes
    -----
    THEORY.md T7. Derivation: ``rdgap.proofs.DERIVATIONS["predicted_rate_curve"]``.

    References
    ----------
    .. [1] Cover & Thomas (2006), Thm 8.3.1 and Sec. 10.3.3.
    .. [2] de Andrade, Harell & Bajic (2026), arXiv 2601.22002.

    Examples
    --------
    >>> import numpy as np
    >>> np.round(predicted_rate_curve([2.0, 2.0], [1.0, 4.0], [0.01, 1.0, 1e3]), 3)
    array([8.059, 1.415, 0.   ])
    """
    fisher = _fisher(fisher_diag)
    entropies = _entropies(differential_entropies, fisher.size)
    targets = check.positive_array(np.atleast_1d(distortions), "distortions", ndim=1)
    ceilings = _zero_rate_distortion(fisher, entropies)
    level = _water_level(ceilings, targets)
    with np.errstate(divide="ignore"):
        per_channel = 0.5 * np.log2(ceilings[None, :] / level[:, None])
    rates = np.maximum(per_channel, 0.0).sum(axis=1)
    return float(rates[0]) if np.ndim(distortions) == 0 else rates
