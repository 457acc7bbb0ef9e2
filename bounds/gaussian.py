r"""T3: the Gaussian log-det bound on the entropy of quantized vectors.

Notation (THEORY.md): ``S = round(Y / Delta)`` per channel, ``Yhat = Delta * S``,
``U`` uniform on the cell ``prod_j [-Delta_j/2, Delta_j/2)`` and independent of
``S``, and

.. math:: K = \mathrm{Cov}(\hat Y) + \mathrm{diag}(\Delta^2)/12 = \mathrm{Cov}(\hat Y + U).

Proof of the bound (all logs base 2). ``Yhat + U`` has density ``P(s) / prod_j Delta_j``
on the cell of ``s``, so ``h(Yhat + U) = H(S) + sum_j log Delta_j`` exactly; a
Gaussian maximises differential entropy at fixed covariance, so
``H(S) <= 1/2 log det(2 pi e K) - sum_j log Delta_j``. The achievability half
(``H_{V_G}``) is the per-sample Jensen inequality of
:func:`gaussian_jensen_codelength`. THEORY.md's statement is correct as written;
two readings are sharpened here: (i) the *diagonal* bound is an upper bound on
the rate of the best factorized discretized Gaussian (and hence on
``sum_j H(S_j)``), not a bound that every factorized codec obeys; (ii) the
Hadamard headroom is a difference of two upper bounds, so it is what
dependency modelling saves *under the Gaussian model*, not a proven cap on what
any joint codec can save (that cap is the total correlation, T4).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import linalg

from . import _arguments as check
from . import _inputs
from .catalogue import register

LN2 = math.log(2.0)
_TWO_PI_E = 2.0 * math.pi * math.e

_HYPOTHESES = [
    "S = round(Y / steps) per channel; Yhat = steps * S with finite second moments",
    "cov = Cov(Yhat), symmetric positive semi-definite (n x n)",
    "steps > 0 (then K = cov + diag(steps^2)/12 is positive definite)",
]


def _model(cov, steps) -> tuple[np.ndarray, np.ndarray]:
    cov = _inputs.psd_matrix(cov, "cov")
    steps = _inputs.steps_for(steps, "steps", cov.shape[0])
    return cov + np.diag(steps ** 2) / 12.0, steps


def _logdet2(matrix: np.ndarray, name: str) -> float:
    """``log2 det`` of a positive-definite matrix via Cholesky."""
    try:
        factor = linalg.cholesky(matrix, lower=True)
    except linalg.LinAlgError:
        raise ValueError(f"{name}: expected a positive definite matrix") from None
    return 2.0 * float(np.sum(np.log2(np.diag(factor))))


@register(
    theory="T3",
    statement="K = Cov(Yhat) + diag(Delta^2)/12: H(S) <= H_{V_G}(S) <= 1/2 log2 det(2 pi e K) "
              "- sum_j log2 Delta_j; with diag(K) in place of K it bounds the best factorized "
              "discretized Gaussian and sum_j H(S_j)",
    latex=r"H(S) \le H_{V_G}(S) \le \tfrac12\log_2\det(2\pi e K) - \sum_j \log_2\Delta_j,"
          r"\ K = \mathrm{Cov}(\hat Y) + \mathrm{diag}(\Delta^2)/12",
    hypotheses=_HYPOTHESES,
    references=["cover2006", "xu2020"],
)
def gaussian_logdet_bound(cov, steps, diagonal: bool = False) -> float:
    r"""Upper bound (bits per vector) on ``H(S)`` and on the best discretized-Gaussian rate.

    .. math:: H(S) \le H_{V_G}(S) \le \tfrac12\log_2\det(2\pi e K) - \sum_j\log_2\Delta_j,
              \qquad K = \mathrm{Cov}(\hat Y) + \mathrm{diag}(\Delta^2)/12

    Parameters
    ----------
    cov : array_like, shape (n, n)
        ``Cov(Yhat)`` of the *reconstructions* ``Yhat = Delta * S`` (symmetric
        PSD; may be singular).
    steps : float or array_like, shape (n,)
        Quantization steps ``Delta_j > 0``.
    diagonal : bool, optional
        Use ``diag(K)``: then the right-hand side bounds ``sum_j H(S_j)`` and
        the rate of the best *factorized* discretized Gaussian.

    Returns
    -------
    float
        The bound in bits per vector (token).

    Notes
    -----
    Hypotheses: see the module docstring for the proof. Exact for no source
    but a Gaussian in the limit ``Delta -> 0``; its slack is the
    non-Gaussianity ``D(Yhat + U || N(mu, K))``.

    References
    ----------
    Cover & Thomas (2006), Thm 8.6.5 (Gaussian maximises entropy) and Sec. 8.3;
    Xu et al. (2020) for the V-entropy.

    Examples
    --------
    >>> print(round(gaussian_logdet_bound([[1.0, 0.5], [0.5, 1.0]], 0.1), 6))
    10.53213
    >>> print(round(gaussian_logdet_bound([[1.0, 0.5], [0.5, 1.0]], 0.1, diagonal=True), 6))
    10.739249
    """
    if not isinstance(diagonal, bool):
        raise ValueError(f"diagonal: expected True or False, got {diagonal!r}")
    k, steps = _model(cov, steps)
    n = k.shape[0]
    logdet = float(np.sum(np.log2(np.diag(k)))) if diagonal else _logdet2(k, "cov")
    return 0.5 * (n * math.log2(_TWO_PI_E) + logdet) - float(np.sum(np.log2(steps)))


@register(
    theory="T3",
    statement="1/2 log2(det diag K / det K) >= 0 (Hadamard): the saving of the joint over the "
              "diagonal Gaussian log-det bound",
    latex=r"\tfrac12\log_2\frac{\det\mathrm{diag}K}{\det K} \ge 0",
    hypotheses=_HYPOTHESES,
    references=["cover2006"],
)
def dependency_headroom(cov, steps) -> float:
    r"""Hadamard gap between the diagonal and the joint log-det bounds, in bits (``>= 0``).

    .. math:: \tfrac12\log_2\frac{\det\mathrm{diag}\,K}{\det K}
              = -\tfrac12\log_2\det R \ge 0,\qquad R = D^{-1/2} K D^{-1/2}

    (``R`` the correlation matrix of ``K``; Hadamard's inequality
    ``det K <= prod_j K_jj``.) It is what modelling dependencies saves under
    the Gaussian model; the proven cap for any joint codec is the total
    correlation (T4).

    Parameters
    ----------
    cov : array_like, shape (n, n)
        ``Cov(Yhat)``.
    steps : float or array_like, shape (n,)
        Steps ``> 0``.

    Returns
    -------
    float
        Bits per vector, ``>= 0``.

    References
    ----------
    Cover & Thomas (2006), Thm 17.9.2 (Hadamard).

    Examples
    --------
    >>> print(round(dependency_headroom([[1.0, 0.5], [0.5, 1.0]], 0.1), 6))
    0.207119
    """
    k, _ = _model(cov, steps)
    scale = 1.0 / np.sqrt(np.diag(k))
    return max(-0.5 * _logdet2(k * np.outer(scale, scale), "cov"), 0.0)


@register(
    theory="T3",
    statement="-log2 q(s) <= -sum_j log2 Delta_j - E_U log2 N(yhat + U; mu, K) = "
              "-sum_j log2 Delta_j + 1/2 log2 det(2 pi K) + [(yhat-mu)' K^-1 (yhat-mu) "
              "+ tr(K^-1 diag(Delta^2))/12] / (2 ln 2); mean = the log-det bound at mu = E Yhat",
    latex=r"-\log_2 q(s) \le -\sum_j\log_2\Delta_j + \tfrac12\log_2\det(2\pi K)"
          r" + \frac{(\hat y-\mu)^\top K^{-1}(\hat y-\mu) + \mathrm{tr}(K^{-1}"
          r"\mathrm{diag}(\Delta^2))/12}{2\ln 2}",
    hypotheses=["q(s) = integral of N(y; mean, cov_K) over the cell of s (discretized Gaussian)",
                "cov_K symmetric positive definite", "steps > 0"],
    references=["cover2006", "xu2020"],
)
def gaussian_jensen_codelength(samples_hat, steps, mean, cov_K) -> np.ndarray:
    r"""Per-sample Jensen upper bound on the discretized-Gaussian code length (bits).

    For the discretized Gaussian ``q(s) = int_cell(s) N(y; mu, K) dy``, Jensen's
    inequality on the cell average gives, for every ``s``,

    .. math:: -\log_2 q(s) \le -\sum_j\log_2\Delta_j - \mathbb{E}_U\log_2 N(\hat y+U;\mu,K)
              = -\sum_j\log_2\Delta_j + \tfrac12\log_2\det(2\pi K)
              + \frac{(\hat y-\mu)^\top K^{-1}(\hat y-\mu)
              + \mathrm{tr}(K^{-1}\mathrm{diag}(\Delta^2))/12}{2\ln 2}.

    With ``mu = E Yhat`` and ``K = Cov(Yhat) + diag(Delta^2)/12`` its mean is
    exactly :func:`gaussian_logdet_bound`, so that bound can be estimated on
    held-out data as a mean of per-sequence sums of these values (T8).

    Parameters
    ----------
    samples_hat : array_like, shape (..., n)
        Reconstructions ``yhat = Delta * s``.
    steps : float or array_like, shape (n,)
        Steps ``> 0``.
    mean : array_like, shape (n,)
        Model mean ``mu``.
    cov_K : array_like, shape (n, n)
        Model covariance ``K`` (positive definite), e.g.
        ``Cov(Yhat) + diag(steps**2)/12`` from training data.

    Returns
    -------
    ndarray, shape (...)
        One upper bound on ``-log2 q(s)`` per sample.

    References
    ----------
    Cover & Thomas (2006), Thm 2.6.2 (Jensen); THEORY.md T3.

    Examples
    --------
    >>> values = gaussian_jensen_codelength([[0.0, 0.0]], 1.0, [0.0, 0.0], np.eye(2))
    >>> print(round(float(values[0]), 6))
    2.771721
    """
    k = _inputs.psd_matrix(cov_K, "cov_K")
    n = k.shape[0]
    steps = _inputs.steps_for(steps, "steps", n)
    mean = check.finite_array(mean, "mean", ndim=1)
    if mean.size != n:
        raise ValueError(f"mean: expected {n} values (the size of cov_K), got {mean.size}")
    samples = check.finite_array(samples_hat, "samples_hat")
    if samples.shape[-1] != n:
        raise ValueError(f"samples_hat: expected last axis of size {n}, got shape "
                         f"{samples.shape}")
    try:
        factor = linalg.cholesky(k, lower=True)
    except linalg.LinAlgError:
        raise ValueError("cov_K: expected a positive definite matrix") from None
    centred = (samples - mean).reshape(-1, n)
    whitened = linalg.solve_triangular(factor, centred.T, lower=True)
    quadratic = np.sum(whitened ** 2, axis=0).reshape(samples.shape[:-1])
    inverse_diag = np.sum(linalg.solve_triangular(factor, np.eye(n), lower=True) ** 2, axis=0)
    trace = float(np.sum(inverse_diag * steps ** 2)) / 12.0
    constant = (0.5 * (n * math.log2(2.0 * math.pi) + 2.0 * np.sum(np.log2(np.diag(factor))))
                - float(np.sum(np.log2(steps))))
    return constant + (quadratic + trace) / (2.0 * LN2)
