"""The Fisher-whitened Karhunen–Loève transform (theory-driven decorrelation).

THEORY.md T7 measures distortion as ``½ eᵀ F e`` and T3 bounds the rate of a
Gaussian source through ``log det`` of its covariance ``C``. A linear analysis
transform ``Z = A (Y − μ)`` that diagonalises both at once,

``A = Uᵀ Lᵀ``  with ``F = L Lᵀ`` (Cholesky) and ``Lᵀ C L = U Λ Uᵀ``,

makes the distortion isotropic in ``Z`` (``A^{-T} F A^{-1} = I``: every
component gets the same step) and the components uncorrelated with variances
``Λ``. At high resolution the factorized rate in the original channels exceeds
the rate in ``Z`` by the two Hadamard gaps ``½ log2(det diag C / det C)`` and
``½ log2(det diag F / det F)``; and reverse water-filling (T6) spends no bits on
components with ``Λ_i`` below the water level, which the uniform step in ``Z``
does automatically (their symbols are almost always 0 and cost almost nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FisherKLT:
    """Analysis matrix ``A``, its inverse, and the component variances ``Λ``."""

    analysis: np.ndarray
    synthesis: np.ndarray
    variances: np.ndarray


def fisher_klt(covariance: np.ndarray, fisher: np.ndarray,
               ridge: float = 1e-6) -> FisherKLT:
    """The transform that whitens ``fisher`` and decorrelates ``covariance``.

    Parameters
    ----------
    covariance : (n, n) array
        Covariance of the hidden states (positions ≥ 1).
    fisher : (n, n) array
        Fisher matrix of the downstream loss with respect to the hidden state.
    ridge : float
        Added to the Fisher diagonal, relative to its mean diagonal, so that the
        Cholesky factor exists when the estimate is rank-deficient.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> c = np.cov(rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4)), rowvar=False)
    >>> f = np.diag([4.0, 1.0, 0.5, 2.0])
    >>> t = fisher_klt(c, f, ridge=0.0)
    >>> bool(np.allclose(t.analysis @ c @ t.analysis.T, np.diag(t.variances)))
    True
    >>> bool(np.allclose(t.synthesis.T @ f @ t.synthesis, np.eye(4)))
    True
    """
    covariance = np.asarray(covariance, dtype=np.float64)
    fisher = np.asarray(fisher, dtype=np.float64)
    n = covariance.shape[0]
    if covariance.shape != (n, n) or fisher.shape != (n, n):
        raise ValueError(f"covariance, fisher: expected two square matrices of one size, got "
                         f"{covariance.shape} and {fisher.shape}")
    if not (np.isfinite(covariance).all() and np.isfinite(fisher).all()):
        raise ValueError("covariance, fisher: expected finite values")
    if ridge < 0:
        raise ValueError(f"ridge: expected ≥ 0, got {ridge}")
    fisher = 0.5 * (fisher + fisher.T)
    fisher = fisher + ridge * np.trace(fisher) / n * np.eye(n)
    try:
        lower = np.linalg.cholesky(fisher)
    except np.linalg.LinAlgError:
        raise ValueError("fisher: expected a positive-definite matrix; raise ridge") from None
    whitened = lower.T @ (0.5 * (covariance + covariance.T)) @ lower
    variances, basis = np.linalg.eigh(whitened)
    order = np.argsort(variances)[::-1]
    variances, basis = np.maximum(variances[order], 0.0), basis[:, order]
    analysis = basis.T @ lower.T
    synthesis = np.linalg.solve(lower.T, basis)  # A^{-1} = L^{-T} U
    return FisherKLT(analysis=analysis, synthesis=synthesis, variances=variances)


#: Ridge of the Fisher the fit pipeline whitens (relative to its mean diagonal).
KLT_RIDGE = 1e-4


def fit(context, name: str = "fisher-klt") -> FisherKLT:
    """The ``fisher-klt`` transform fitted from cached hidden states: :func:`fisher_klt`
    of the covariance of positions ≥ 1 of the statistics windows and the full Fisher
    (ridge :data:`KLT_RIDGE`).

    Parameters
    ----------
    context : rdgap.codecs.fit.FitContext
        Its ``hidden`` ``(windows, tokens, C)`` and ``fisher.matrix`` ``(C, C)``.
    name : str
        The recipe named in errors.

    Raises
    ------
    ValueError
        With fewer than ``4 C`` tokens at positions ≥ 1 (too few to estimate a
        ``C × C`` matrix), naming ``name`` and the fix.
    """
    rest = context.hidden[:, 1:].reshape(-1, context.hidden.shape[-1]).double().numpy()
    if rest.shape[0] < 4 * rest.shape[1]:
        raise ValueError(f"variant: {name} estimates a {rest.shape[1]}×{rest.shape[1]} "
                         f"Fisher matrix and needs ≥ {4 * rest.shape[1]} fit tokens in the "
                         f"first half of the fit windows, got {rest.shape[0]}; use more or "
                         f"longer fit windows")
    return fisher_klt(np.cov(rest, rowvar=False), context.fisher.matrix, ridge=KLT_RIDGE)
