"""T3: the Gaussian log-det bound, its Hadamard headroom and its per-sample Jensen form.

(1) Each function equals its lambdified sympy derivation (2 x 2 closed forms)
at random covariances and steps. (2) Independent computations: scipy's
multivariate-normal entropy and ``slogdet`` for the bound; the exact
discretized-Gaussian code length (products of ``log_ndtr`` cell masses, and a
``dblquad`` cell integral for a full ``K``) for the Jensen inequality, which
must hold sample by sample; and the identity "mean of the Jensen values at the
moment-matched ``(mu, K)`` = the bound", exact for any empirical distribution.
(3) Validity on correlated integer vectors ``S = A X`` with exact ``H(S)`` and
exact ``Cov(S)`` (``A`` unimodular): ``H(S) <=`` bound and ``sum_j H(S_j) <=``
diagonal bound on every drawn case, and the mean slack is below a reasoned
threshold (the bound is not vacuous).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import integrate, stats

from rdgap.bounds import gaussian as g3
from rdgap.validation.synthetic import QuantizedScalar, UnimodularVector, random_unimodular





def random_cov(rng, n, scale=1.0):
    a = rng.standard_normal((n, n + 2)) * scale
    return a @ a.T / (n + 2)


covariances = st.tuples(st.floats(1e-3, 1e3), st.floats(1e-3, 1e3), st.floats(-0.999, 0.999))
steps_2 = st.tuples(st.floats(1e-3, 10.0), st.floats(1e-3, 10.0))


def _cov(c):
    c11, c22, rho = c
    return c11, rho * math.sqrt(c11 * c22), c22


# ---------------------------------------------------------------- (1) sympy
@settings(max_examples=60, deadline=None)
@given(c=covariances, d=steps_2)
def test_logdet_and_headroom_match_derivations(c, d, closed_form, close):
    c11, c12, c22 = _cov(c)
    cov = [[c11, c12], [c12, c22]]
    assert close(g3.gaussian_logdet_bound(cov, d), closed_form("gaussian_logdet_bound")(
        c11, c12, c22, *d))
    assert close(g3.dependency_headroom(cov, d),
                 closed_form("dependency_headroom")(c11, c12, c22, *d), 1e-7)


@settings(max_examples=60, deadline=None)
@given(c=covariances, d=steps_2, e=st.tuples(st.floats(-50, 50), st.floats(-50, 50)))
def test_jensen_matches_derivation(c, d, e, closed_form, close):
    k11, k12, k22 = _cov(c)
    value = g3.gaussian_jensen_codelength([e], d, [0.0, 0.0], [[k11, k12], [k12, k22]])[0]
    assert close(value, closed_form("gaussian_jensen_codelength")(*e, k11, k12, k22, *d), 1e-8)


# ---------------------------------------------------------------- (2) independent
def test_against_scipy_entropy_and_slogdet(close):
    rng = np.random.default_rng(21)
    for _ in range(100):
        n = int(rng.integers(1, 12))
        cov, steps = random_cov(rng, n), rng.uniform(0.01, 2.0, n)
        k = cov + np.diag(steps ** 2) / 12
        h = stats.multivariate_normal(cov=k).entropy() / math.log(2)
        assert close(g3.gaussian_logdet_bound(cov, steps), h - np.log2(steps).sum(), 1e-10)
        diag = sum(stats.norm(scale=math.sqrt(v)).entropy() for v in np.diag(k)) / math.log(2)
        assert close(g3.gaussian_logdet_bound(cov, steps, diagonal=True),
                     diag - np.log2(steps).sum(), 1e-10)
        logdet = np.linalg.slogdet(k)[1]
        assert math.isclose(g3.dependency_headroom(cov, steps),
                            0.5 * (np.log(np.diag(k)).sum() - logdet) / math.log(2),
                            rel_tol=1e-8, abs_tol=1e-12)


def test_jensen_mean_equals_bound_for_any_empirical_law(close):
    """With mu, K moment-matched to a sample (ddof=0), E[quadratic] + trace = tr(K^-1 K) = n."""
    rng = np.random.default_rng(22)
    for _ in range(30):
        n, size = int(rng.integers(1, 8)), int(rng.integers(20, 400))
        steps = rng.uniform(0.05, 1.5, n)
        y_hat = steps * np.round(rng.standard_t(3, (size, n)) @ rng.standard_normal((n, n)))
        mean, cov = y_hat.mean(axis=0), np.cov(y_hat.T, ddof=0).reshape(n, n)
        values = g3.gaussian_jensen_codelength(y_hat, steps, mean, cov + np.diag(steps ** 2) / 12)
        assert close(values.mean(), g3.gaussian_logdet_bound(cov, steps), 1e-10)


def test_jensen_upper_bounds_exact_codelength_per_sample_diagonal():
    """Jensen per sample: -log2 q(s) <= value, with q a product of exact 1-D cell masses."""
    rng = np.random.default_rng(23)
    for _ in range(40):
        n = int(rng.integers(1, 6))
        sd, steps, mean = rng.uniform(0.2, 3, n), rng.uniform(0.05, 4, n), rng.normal(0, 1, n)
        s = np.round(rng.normal(mean, sd * 2, (200, n)) / steps)
        lo, hi = ((s - 0.5) * steps - mean) / sd, ((s + 0.5) * steps - mean) / sd
        mass = np.where(lo > 0, stats.norm.sf(lo) - stats.norm.sf(hi),
                        stats.norm.cdf(hi) - stats.norm.cdf(lo))        # no tail cancellation
        exact = -np.log2(mass).sum(axis=1)
        values = g3.gaussian_jensen_codelength(s * steps, steps, mean, np.diag(sd ** 2))
        assert np.all(values >= exact - 1e-9)
        assert np.max(values - exact) > 0                          # the inequality can be strict


def test_jensen_upper_bounds_exact_codelength_full_covariance():
    """The same with a correlated K, q(s) by numerical integration over the cell (dblquad)."""
    rng = np.random.default_rng(24)
    k = np.array([[1.0, 0.7], [0.7, 0.8]])
    law = stats.multivariate_normal(mean=[0.0, 0.0], cov=k)
    steps = np.array([0.9, 1.3])
    for s in rng.integers(-2, 3, size=(6, 2)):
        lo, hi = (s - 0.5) * steps, (s + 0.5) * steps
        mass = integrate.dblquad(lambda y, x: law.pdf([x, y]), lo[0], hi[0], lo[1], hi[1],
                                 epsabs=1e-13, epsrel=1e-10)[0]
        value = g3.gaussian_jensen_codelength([s * steps], steps, [0.0, 0.0], k)[0]
        assert value >= -math.log2(mass) - 1e-7


# ---------------------------------------------------------------- (3) validity
def _correlated_vectors(rng):
    n = int(rng.integers(2, 5))
    sources = tuple(QuantizedScalar(str(rng.choice(["gaussian", "laplace", "logistic"])),
                                    float(rng.uniform(0.5, 4.0)), 1.0, float(rng.uniform(-1, 1)))
                    for _ in range(n))
    return UnimodularVector(sources, random_unimodular(n, rng, mixes=4, magnitude=1))


def test_bound_holds_on_correlated_integer_vectors():
    """H(S) <= joint bound and sum_j H(S_j) <= diagonal bound, on every drawn case.

    Reason: Yhat + U has entropy H(S) + sum log Delta and covariance K, and the
    Gaussian maximises entropy (T3); per channel the same argument in 1-D.
    Mean slack threshold: the slack is the non-Gaussianity D(Yhat+U || N(mu,K)).
    For one coordinate of unit step and variance >= 1/4 it is at most that of
    a Laplace law, 1/2 log2(pi/e) ~ 0.104 bits (Laplace vs Gaussian entropy at
    equal variance) plus the cost of the cell dither (< 0.05 bits at sd >= 0.5);
    the joint slack is at most the sum of the per-coordinate slacks of X because
    A is volume-preserving, so a mean below 0.16 bits per dimension is required.
    """
    rng = np.random.default_rng(31)
    slack_per_dim = []
    for _ in range(150):
        vector = _correlated_vectors(rng)
        steps = rng.uniform(0.01, 3.0, vector.matrix.shape[0])
        cov_hat = vector.covariance * np.outer(steps, steps)      # Cov(Delta S)
        bound = g3.gaussian_logdet_bound(cov_hat, steps)
        assert vector.entropy_bits <= bound
        assert vector.marginal_entropy_bits <= g3.gaussian_logdet_bound(cov_hat, steps,
                                                                         diagonal=True)
        assert g3.dependency_headroom(cov_hat, steps) >= 0.0
        slack_per_dim.append((bound - vector.entropy_bits) / steps.size)
    print(f"mean slack {np.mean(slack_per_dim):.4f} bits per dimension")
    assert np.mean(slack_per_dim) < 0.16


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, match", [
    (lambda: g3.gaussian_logdet_bound([[1, 2], [0, 1]], 1.0), "cov: expected a symmetric"),
    (lambda: g3.gaussian_logdet_bound([[1, 2], [2, 1]], 1.0), "cov: expected a positive semi"),
    (lambda: g3.gaussian_logdet_bound([1, 2], 1.0), "cov: expected a 2-dimensional"),
    (lambda: g3.gaussian_logdet_bound([[1, 0], [0, 1]], [1.0, 2.0, 3.0]), "steps: expected 1 or 2"),
    (lambda: g3.gaussian_logdet_bound([[1, 0], [0, 1]], 0.0), "steps: expected entries > 0"),
    (lambda: g3.gaussian_logdet_bound([[1.0]], 1.0, diagonal="yes"), "diagonal: expected"),
    (lambda: g3.dependency_headroom([[np.nan]], 1.0), "cov: expected finite"),
    (lambda: g3.gaussian_jensen_codelength([[0, 0]], 1.0, [0.0], np.eye(2)), "mean: expected 2"),
    (lambda: g3.gaussian_jensen_codelength([[0, 0, 0]], 1.0, [0, 0], np.eye(2)),
     "samples_hat: expected last axis"),
    (lambda: g3.gaussian_jensen_codelength([[0, 0]], 1.0, [0, 0], np.zeros((2, 2))),
     "cov_K: expected a positive definite"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
