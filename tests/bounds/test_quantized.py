"""T5: exact quantized entropies and the high-resolution limit, tested three ways.

(1) The Laplace closed form and the general summation both equal the sympy
derivation (geometric series) at random ``step/scale`` in ``[1e-4, 100]``; the
high-resolution approximation and the Gish–Pierce constant equal theirs.
(2) Every law is checked against 80-digit mpmath sums of CDF differences, and
at ``step = 1e-4 scale`` (where an mpmath sum is too slow) against the
second-order expansion ``H = h - log2 D + D^2 J / (24 ln 2) + O(D^3)`` (``J`` the
Fisher information for location), an independent asymptotic formula.
(3) Validity: the high-resolution error tends to 0 as the step shrinks, and
the Gish–Pierce gap ``H - R(D^2/12) -> 1/2 log2(pi e / 6)`` on Gaussians.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rdgap.bounds import quantized as q5
from rdgap.proofs import DERIVATIONS

LAWS = ("gaussian", "laplace", "logistic")
FISHER = {"gaussian": 1.0, "laplace": 1.0, "logistic": 1.0 / 3.0}   # J for scale 1




log_ratio = st.floats(-4.0, 2.0)           # step / scale = 10 ** log_ratio
scales = st.floats(1e-3, 1e3)


# ---------------------------------------------------------------- (1) sympy
@settings(max_examples=60, deadline=None)
@given(x=log_ratio, scale=scales)
def test_laplace_matches_derivation(x, scale, closed_form, close):
    step = scale * 10.0 ** x
    with mpmath.workdps(40):                 # the symbolic form cancels at small steps
        expected = closed_form("laplace_quantized_entropy")(mpmath.mpf(scale), mpmath.mpf(step))
    assert close(q5.laplace_quantized_entropy(scale, step), expected, 1e-12, abs_tol=0.0)
    with mpmath.workdps(40):
        general = closed_form("quantized_entropy")(mpmath.mpf(scale), mpmath.mpf(step))
    assert close(q5.quantized_entropy("laplace", scale, step), general, abs_tol=0.0)


@settings(max_examples=40, deadline=None)
@given(scale=scales)
def test_differential_entropy_matches_derivation(scale, closed_form, close):
    assert close(q5.differential_entropy("gaussian", scale),
                 closed_form("differential_entropy")(scale), 1e-12)
    laplace_nats = DERIVATIONS["differential_entropy"]().steps[1][1].rhs      # 1 + ln(2b)
    b = next(iter(laplace_nats.free_symbols))
    assert close(q5.differential_entropy("laplace", scale),
                 float(laplace_nats.subs(b, scale)) / math.log(2), 1e-12)


@settings(max_examples=60, deadline=None)
@given(x=log_ratio, scale=scales)
def test_high_resolution_matches_derivation(x, scale, closed_form, close):
    step = scale * 10.0 ** x
    result = q5.high_resolution_entropy("gaussian", scale, step)
    assert close(result.approximation, closed_form("high_resolution_entropy")(scale, step), 1e-12)
    assert result.error == result.approximation - result.exact


def test_gish_pierce_constant_matches_derivation(close):
    gap = DERIVATIONS["high_resolution_entropy"]().steps[-1][1].rhs
    assert close(q5.GISH_PIERCE_GAP_BITS, float(gap), 1e-14)
    assert abs(q5.GISH_PIERCE_GAP_BITS - 0.2546) < 1e-4            # THEORY.md's value


# ---------------------------------------------------------------- (2) independent
def _mpmath_entropy(dist: str, step: float, loc: float, tail: float) -> float:
    """80-digit -sum P log2 P over every cell meeting |y| <= tail (scale 1)."""
    cdf = {"gaussian": mpmath.ncdf,
           "laplace": lambda y: mpmath.mpf(1) / 2 * mpmath.exp(y) if y < 0
           else 1 - mpmath.exp(-y) / 2,
           "logistic": lambda y: 1 / (1 + mpmath.exp(-y))}[dist]
    with mpmath.workdps(80):              # P_0 = 1 - 1e-39 needs more than 40 digits
        step, loc = mpmath.mpf(step), mpmath.mpf(loc)
        first = int(mpmath.floor((loc - tail) / step)) - 1
        last = int(mpmath.ceil((loc + tail) / step)) + 1
        edges = [cdf((k - mpmath.mpf(1) / 2) * step - loc) for k in range(first, last + 2)]
        total = mpmath.mpf(0)
        for lo, hi in zip(edges, edges[1:]):
            p = hi - lo
            if p > 0:
                total -= p * mpmath.log(p)
        return float(total / mpmath.log(2))


@pytest.mark.parametrize("dist, tail", [("gaussian", 12.0), ("laplace", 60.0),
                                        ("logistic", 60.0)])
@pytest.mark.parametrize("step, loc", [(1e-2, 0.0), (0.37, 0.11), (1.0, -0.5), (3.0, 1.3),
                                       (10.0, 0.0), (30.0, 2.0), (100.0, 0.0)])
def test_against_mpmath_sums(dist, tail, step, loc, close):
    """Relative 1e-9 of an 80-digit sum, including steps where H is 1e-20 or smaller."""
    exact = _mpmath_entropy(dist, step, loc, tail)
    got = q5.quantized_entropy(dist, 1.0, step, loc)
    if exact == 0.0:                       # Gaussian at step 100: H ~ 1e-540 underflows
        assert got == 0.0
    else:
        assert close(got, exact, abs_tol=0.0)


@pytest.mark.parametrize("dist", LAWS)
def test_tiny_step_against_second_order_expansion(dist, close):
    """At step 1e-4, H = h - log2 D + D^2 J/(24 ln 2) + O(D^3): error terms ~1e-12 bits."""
    for scale in (0.01, 1.0, 250.0):
        step = 1e-4 * scale
        expected = (q5.differential_entropy(dist, scale) - math.log2(step)
                    + step ** 2 * FISHER[dist] / scale ** 2 / (24 * math.log(2)))
        assert close(q5.quantized_entropy(dist, scale, step), expected, 1e-12)


def test_pmf_sums_to_one_and_shift_invariance(close):
    """Cells hold all the mass; H depends on loc only modulo step (loc up to 1e8)."""
    for dist in LAWS:
        for step in (1e-3, 0.3, 7.0):
            k, p = q5.quantized_pmf(dist, 1.0, step, loc=0.2)
            assert abs(p.sum() - 1.0) < 1e-13 and np.all(np.diff(k) == 1)
            base = q5.quantized_entropy(dist, 1.0, step, loc=0.2)
            assert close(q5.quantized_entropy(dist, 1.0, step, loc=0.2 + 12345 * step), base)
            assert close(q5.quantized_entropy(dist, 2.0, 2 * step, loc=0.4), base, 1e-12)


def test_differential_entropy_against_scipy(close):
    from scipy import stats
    for dist, law in (("gaussian", stats.norm), ("laplace", stats.laplace),
                      ("logistic", stats.logistic)):
        assert close(q5.differential_entropy(dist, 3.0), law(scale=3.0).entropy() / math.log(2),
                     1e-12)


# ---------------------------------------------------------------- (3) validity
@pytest.mark.parametrize("dist", LAWS)
def test_high_resolution_error_tends_to_zero(dist):
    """Cover & Thomas 8.3.1: the error is o(1); here it shrinks ~100x per 10x step."""
    errors = [abs(q5.high_resolution_entropy(dist, 1.0, 10.0 ** -e).error) for e in range(1, 5)]
    assert all(b < a / 50 for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-9


def test_gish_pierce_gap_on_gaussians():
    """H(round(Y/D)) - R(D^2/12) -> 1/2 log2(pi e/6) as D -> 0, from below (the D^2 term)."""
    for sigma in (0.1, 1.0, 40.0):
        gaps = []
        for e in (1, 2, 3, 4):
            step = sigma * 10.0 ** -e
            rate = 0.5 * math.log2(sigma ** 2 / (step ** 2 / 12))
            gaps.append(q5.quantized_entropy("gaussian", sigma, step) - rate)
        distances = [abs(g - q5.GISH_PIERCE_GAP_BITS) for g in gaps]
        assert all(b < a for a, b in zip(distances, distances[1:])) and distances[-1] < 1e-9


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, match", [
    (lambda: q5.quantized_entropy("cauchy", 1.0, 1.0), "dist: expected one of"),
    (lambda: q5.quantized_entropy("gaussian", -1.0, 1.0), "scale: expected"),
    (lambda: q5.quantized_entropy("gaussian", 1.0, 0.0), "step: expected"),
    (lambda: q5.quantized_entropy("gaussian", 1.0, 1e-9), "step: expected step >="),
    (lambda: q5.quantized_entropy("gaussian", 1.0, 1.0, loc=math.inf), "loc: expected"),
    (lambda: q5.laplace_quantized_entropy(1.0, math.nan), "step: expected"),
    (lambda: q5.differential_entropy("laplace", 0.0), "scale: expected"),
    (lambda: q5.high_resolution_entropy("gaussian", 1.0, -2.0), "step: expected"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
