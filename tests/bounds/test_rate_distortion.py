"""T6: reverse water-filling and the Shannon lower bound, tested three ways.

(1) Both equal their lambdified sympy derivations (KKT solution for three
sorted eigenvalues; the SLB algebra). (2) Independent computations: the water
level by ``scipy.optimize.brentq`` on ``sum_i min(theta, lambda_i) = D``, and
the SLB's tightness for a Gaussian when ``D <= n lambda_min``. (3) Validity on
Gaussian vectors with exact ``h(Y)``: ``R(D) >= SLB`` on every drawn case (the
SLB is a lower bound), and the operational check ``H(round(Y/step)) >= R(D)``
at the exact MSE of the quantizer (a real code cannot beat ``R(D)``), with the
gap tending to Gish–Pierce's 0.2546 bits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import optimize, stats

from rdgap.bounds import quantized as q5
from rdgap.bounds import rate_distortion as r6
from rdgap.validation.synthetic import GaussianVector





# ---------------------------------------------------------------- (1) sympy
@settings(max_examples=80, deadline=None)
@given(lam=st.lists(st.floats(1e-3, 1e3), min_size=3, max_size=3),
       fraction=st.floats(1e-4, 1.5))
def test_water_filling_matches_derivation(lam, fraction, closed_form, close):
    lam = sorted(lam)
    d = fraction * sum(lam)
    assert close(r6.gaussian_rate_distortion(lam, d).rate,
                 closed_form("gaussian_rate_distortion")(*lam, d))


@settings(max_examples=80, deadline=None)
@given(h=st.floats(-100, 100), n=st.integers(1, 4096), d=st.floats(1e-6, 1e6))
def test_slb_matches_derivation(h, n, d, closed_form, close):
    assert close(r6.shannon_lower_bound(h, n, d), closed_form("shannon_lower_bound")(h, n, d))


# ---------------------------------------------------------------- (2) independent
def test_water_level_against_brentq(close):
    rng = np.random.default_rng(51)
    for _ in range(200):
        lam = rng.gamma(0.5, 2.0, int(rng.integers(1, 30)))
        d = rng.uniform(0.001, 0.999) * lam.sum()
        theta = optimize.brentq(lambda t: np.minimum(t, lam).sum() - d, 0.0, lam.max(),
                                xtol=1e-15, rtol=1e-14)
        result = r6.gaussian_rate_distortion(lam, d)
        assert close(result.theta, theta, 1e-10)
        assert close(result.component_distortions.sum(), d, 1e-12)
        rate = sum(0.5 * math.log2(x / theta) for x in lam if x > theta)
        assert close(result.rate, rate, 1e-9)


def test_slb_is_tight_for_gaussians_at_small_distortion(close):
    """For Y ~ N(0, cov) and D <= n lambda_min, every D_i = D/n and R(D) = SLB exactly."""
    rng = np.random.default_rng(52)
    for _ in range(100):
        n = int(rng.integers(1, 10))
        a = rng.standard_normal((n, n + 3))
        source = GaussianVector(np.zeros(n), a @ a.T / (n + 3) + 0.1 * np.eye(n))
        d = rng.uniform(0.01, 1.0) * n * source.eigenvalues.min()
        assert close(r6.gaussian_rate_distortion(source.eigenvalues, d).rate,
                     r6.shannon_lower_bound(source.differential_entropy_bits, n, d), 1e-9)


# ---------------------------------------------------------------- (3) validity
def test_rate_at_least_slb_on_gaussian_vectors():
    """R(D) >= SLB on every draw (the SLB lower-bounds R(D) for any source with a density),
    R(D) >= 0, and R is non-increasing in D. Non-vacuity: the SLB is exactly tight
    whenever D <= n lambda_min (previous test), so its slack is zero there.
    """
    rng = np.random.default_rng(53)
    for _ in range(300):
        n = int(rng.integers(1, 12))
        a = rng.standard_normal((n, n)) * rng.uniform(0.1, 10, n)
        source = GaussianVector(rng.normal(size=n), a @ a.T + 1e-3 * np.eye(n))
        d = rng.uniform(1e-3, 1.2) * np.trace(source.cov)
        result = r6.gaussian_rate_distortion(source.eigenvalues, d)
        slb = r6.shannon_lower_bound(source.differential_entropy_bits, n, d)
        assert result.rate >= slb - 1e-9 and result.rate >= 0.0
        assert result.rate <= r6.gaussian_rate_distortion(source.eigenvalues, 0.9 * d).rate


def _quantizer_mse(sigma: float, step: float) -> float:
    """Exact E(Y - step round(Y/step))^2 for Y ~ N(0, sigma^2), summed cell by cell."""
    k, _ = q5.quantized_pmf("gaussian", sigma, step)
    a, b = (k - 0.5) * step / sigma, (k + 0.5) * step / sigma
    c = k * step / sigma
    mass = stats.norm.cdf(b) - stats.norm.cdf(a)
    pa, pb = stats.norm.pdf(a), stats.norm.pdf(b)
    second = (1 + c ** 2) * mass - (b * pb - a * pa) - 2 * c * (pa - pb)
    return float(sigma ** 2 * second.sum())


def test_entropy_coded_quantizer_never_beats_rate_distortion():
    """Operational: H(S) >= I(Y; Yhat) >= R(D_exact); gap -> Gish-Pierce as step -> 0.

    Threshold for the gap at step = 0.01 sigma: within 1e-4 bits of 0.2546
    (the MSE is step^2/12 up to O(step^4) and H follows h - log2 step to O(step^2)).
    """
    gaps = []
    for sigma in (0.5, 1.0, 3.0):
        for ratio in (0.01, 0.1, 0.5, 1.0, 2.0, 4.0):
            step = ratio * sigma
            d = _quantizer_mse(sigma, step)
            rate = r6.gaussian_rate_distortion([sigma ** 2], d).rate
            h = q5.quantized_entropy("gaussian", sigma, step)
            assert h >= rate
            if ratio == 0.01:
                gaps.append(h - rate)
    assert max(abs(g - q5.GISH_PIERCE_GAP_BITS) for g in gaps) < 1e-4


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, match", [
    (lambda: r6.gaussian_rate_distortion([1.0, -1.0], 0.5), "eigenvalues: expected values >= 0"),
    (lambda: r6.gaussian_rate_distortion([[1.0]], 0.5), "eigenvalues: expected a 1-dim"),
    (lambda: r6.gaussian_rate_distortion([1.0], 0.0), "distortion: expected"),
    (lambda: r6.gaussian_rate_distortion([np.inf], 1.0), "eigenvalues: expected finite"),
    (lambda: r6.shannon_lower_bound(math.nan, 1, 1.0), "h: expected a finite"),
    (lambda: r6.shannon_lower_bound(1.0, 0, 1.0), "n: expected an integer >= 1"),
    (lambda: r6.shannon_lower_bound(1.0, 2, -1.0), "distortion: expected"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
