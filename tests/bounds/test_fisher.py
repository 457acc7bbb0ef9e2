"""T7: Fisher-based step allocation and predicted rate (an APPROXIMATION).

(1) Numeric functions equal their lambdified sympy derivations at random
parameters (unclipped closed forms; the water-filling step expression with an
independently solved water level). (2) The allocation solves the same
constrained problem as scipy.optimize (SLSQP). (3) Since T7 is a prediction,
not a bound, there is no coverage to check; instead its accuracy is checked
where the truth is known exactly: the ΔCE of a softmax readout under uniform
errors (the prediction error must vanish as D -> 0), and the entropy of
quantized Gaussian channels computed exactly from CDF differences.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st
from scipy.optimize import brentq, minimize
from scipy.special import log_softmax
from scipy.stats import norm

from rdgap.bounds import fisher as t7
from rdgap.proofs import DERIVATIONS


@cache
def closed_form(name: str):
    return DERIVATIONS[name]().lambdify()


@cache
def clipped_step_form():
    """The last step of the allocation derivation: Δ(θ, F, h) with clipping."""
    built = DERIVATIONS["fisher_step_allocation"]()
    expression = built.steps[-1][1].rhs
    symbols = sorted(expression.free_symbols, key=str)   # F, h, theta
    return sp.lambdify(symbols, expression, "mpmath")


def rel_close(a, b, rtol=1e-9):
    return np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=0)


def ceilings(fisher, entropies):
    return fisher * 4.0 ** entropies / 24.0


def water_level(fisher, entropies, distortion):
    """Independent: brentq on sum_j min(theta, c_j) = D."""
    c = ceilings(fisher, entropies)
    return brentq(lambda t: np.minimum(t, c).sum() - distortion, 0.0, c.max(),
                  xtol=1e-300, rtol=1e-15)


channels = st.integers(1, 12)


@st.composite
def problems(draw):
    n = draw(channels)
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    fisher = np.exp(rng.uniform(-6, 6, n))
    entropies = rng.uniform(-3, 8, n)
    return fisher, entropies


# ---------------------------------------------------------------- (1) sympy
@settings(max_examples=60, deadline=None)
@given(problem=problems(), log_d=st.floats(-8, 3))
def test_unclipped_allocation_and_rate_match_derivation(problem, log_d):
    fisher, entropies = problem
    n, distortion = fisher.size, 10.0 ** log_d
    steps = t7.fisher_step_allocation(fisher, distortion)
    expected = [closed_form("fisher_step_allocation")(distortion, n, f) for f in fisher]
    assert rel_close(steps, expected)
    ce = sum(closed_form("predicted_delta_ce")(f, s) for f, s in zip(fisher, steps))
    assert rel_close(t7.predicted_delta_ce(fisher, steps), ce)
    assert rel_close(ce, distortion)                        # the budget is spent exactly
    # raise every entropy so that no channel is clipped: the rate is the closed form
    lifted = entropies + 0.5 * np.log2(24 * distortion / (n * fisher)).clip(min=0) + 20
    rate = sum(closed_form("predicted_rate_curve")(h, f, distortion, n)
               for h, f in zip(lifted, fisher))
    assert rel_close(t7.predicted_rate_curve(lifted, fisher, distortion), rate)
    assert rel_close(t7.fisher_step_allocation(fisher, distortion, lifted), steps)


@settings(max_examples=60, deadline=None)
@given(problem=problems(), frac=st.floats(1e-3, 0.999))
def test_clipped_allocation_matches_water_filling_derivation(problem, frac):
    """With D a fraction of sum_j c_j, steps equal the KKT expression at the water
    level found by root finding, and the rate is sum_j max(0, ½ log2(c_j/θ))."""
    fisher, entropies = problem
    c = ceilings(fisher, entropies)
    distortion = frac * c.sum()
    theta = water_level(fisher, entropies, distortion)
    steps = t7.fisher_step_allocation(fisher, distortion, entropies)
    expected = [clipped_step_form()(f, h, theta) for f, h in zip(fisher, entropies)]
    assert rel_close(steps, expected, 1e-7)
    rate = np.maximum(0.5 * np.log2(c / theta), 0).sum()
    got = t7.predicted_rate_curve(entropies, fisher, distortion)
    assert math.isclose(got, rate, rel_tol=1e-7, abs_tol=1e-9)
    assert rel_close(t7.predicted_delta_ce(fisher, steps), distortion, 1e-7)


# ------------------------------------------------------ (2) scipy.optimize
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_allocation_solves_the_constrained_problem(seed):
    """SLSQP on: minimise sum_j (h_j - log2 Δ_j) over log Δ, subject to
    sum_j F_j Δ_j²/24 = D and h_j - log2 Δ_j >= 0 (rate >= 0): same optimum."""
    rng = np.random.default_rng(seed)
    n = 6
    fisher, entropies = np.exp(rng.uniform(-2, 2, n)), rng.uniform(-1, 3, n)
    distortion = 0.3 * ceilings(fisher, entropies).sum()     # some channels clip
    ours = t7.fisher_step_allocation(fisher, distortion, entropies)

    def rate(log_steps):
        return float(np.sum(entropies - log_steps / math.log(2)))

    result = minimize(rate, np.log(ours) - 0.3, method="SLSQP",
                      constraints=[{"type": "eq", "fun": lambda z: (
                          np.sum(fisher * np.exp(2 * z)) / 24 - distortion) / distortion}],
                      bounds=[(None, h * math.log(2)) for h in entropies],
                      options={"ftol": 1e-14, "maxiter": 500})
    assert result.success
    assert math.isclose(result.fun, t7.predicted_rate_curve(entropies, fisher, distortion),
                        rel_tol=1e-6, abs_tol=1e-6)
    assert rel_close(np.exp(result.x), ours, 1e-4)
    clipped = ours >= 2.0 ** entropies * (1 - 1e-12)
    assert 0 < clipped.sum() < n                          # the test exercises clipping


def test_rate_curve_shape():
    """Clipped rates are >= 0, nonincreasing in D, 0 once D >= sum_j c_j, and never
    below the unclipped THEORY formula (clipping only removes negative terms and
    re-spends their distortion)."""
    fisher, entropies = np.array([0.5, 2.0, 8.0]), np.array([1.0, -0.5, 2.0])
    grid = np.logspace(-4, 2, 60)
    curve = t7.predicted_rate_curve(entropies, fisher, grid)
    assert np.all(curve >= 0) and np.all(np.diff(curve) <= 1e-12)
    assert np.all(curve[grid >= ceilings(fisher, entropies).sum()] == 0)
    unclipped = np.array([np.sum(entropies + 0.5 * np.log2(3 * fisher / (24 * d)))
                          for d in grid])
    assert np.all(curve >= unclipped - 1e-9)


# ----------------------------------- (3) accuracy where the truth is exact
def test_delta_ce_prediction_error_vanishes_at_high_resolution():
    """A softmax readout z = A y: ΔCE of the split model against the unsplit one is
    KL(π || softmax(A(y0 + e))), whose second-order term is ½ eᵀ F e with F the
    Fisher matrix Aᵀ(diag π - ππᵀ)A. With independent uniform errors at the Fisher
    allocation, the relative error of the prediction is O(D) (odd moments of e vanish),
    so it must fall with D and be below Monte Carlo noise + 0.2% at D = 1e-4."""
    rng = np.random.default_rng(0)
    vocab, n = 12, 6
    a, y0 = rng.standard_normal((vocab, n)), rng.standard_normal(n)
    log_pi = log_softmax(a @ y0)
    pi = np.exp(log_pi)
    fisher = np.diag(a.T @ (np.diag(pi) - np.outer(pi, pi)) @ a)
    u = rng.uniform(-0.5, 0.5, (20_000, n))
    errors = []
    for distortion in (1e-1, 1e-2, 1e-3, 1e-4):
        steps = t7.fisher_step_allocation(fisher, distortion)
        kl = (pi * (log_pi - log_softmax((y0 + u * steps) @ a.T, axis=1))).sum(axis=1)
        predicted = t7.predicted_delta_ce(fisher, steps)
        errors.append(abs(kl.mean() / predicted - 1))
        noise = 4 * kl.std() / math.sqrt(kl.size) / predicted
    assert errors[0] > errors[1] > errors[2]
    assert errors[3] < noise + 2e-3


def quantized_gaussian_entropy(sigma: float, step: float) -> float:
    """H(round(Y/Δ)) in bits for Y ~ N(0, σ²), exactly from CDF differences."""
    half_width = int(12 * sigma / step) + 2
    edges = (np.arange(-half_width, half_width + 1) + 0.5) * step / sigma
    mass = np.diff(np.concatenate([[0.0], norm.cdf(edges[edges <= 0]),
                                   1 - norm.sf(edges[edges > 0]), [1.0]]))
    mass = mass[mass > 0]
    return float(-(mass * np.log2(mass)).sum())


def test_rate_prediction_matches_exact_quantized_gaussian_entropy():
    """Gaussian channels: at the predicted allocation, the exact entropy of the
    quantized symbols exceeds R_pred by the o(1) of T5, which for a Gaussian is
    log2(e) Δ²/(24 σ²) per channel to leading order (Jensen on the cell average of
    the log-density, whose second derivative is -1/σ²). Check that the error lies
    between 0 and 1.05 times that term, which vanishes as D -> 0."""
    sigma = np.array([0.5, 1.0, 2.0, 3.0])
    fisher = np.array([2.0, 1.0, 0.3, 0.1])
    entropies = 0.5 * np.log2(2 * math.pi * math.e * sigma ** 2)
    for distortion in (1e-3, 1e-2, 1e-1):
        steps = t7.fisher_step_allocation(fisher, distortion, entropies)
        exact = sum(quantized_gaussian_entropy(s, d) for s, d in zip(sigma, steps))
        predicted = t7.predicted_rate_curve(entropies, fisher, distortion)
        leading = float(np.sum(math.log2(math.e) * steps ** 2 / (24 * sigma ** 2)))
        assert 0 <= exact - predicted <= 1.05 * leading


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("call,argument", [
    (lambda: t7.fisher_step_allocation([1.0, 0.0], 0.1), "fisher_diag"),
    (lambda: t7.fisher_step_allocation([[1.0]], 0.1), "fisher_diag"),
    (lambda: t7.fisher_step_allocation([1.0, 2.0], -0.1), "distortion"),
    (lambda: t7.fisher_step_allocation([1.0, 2.0], 0.1, [1.0]), "differential_entropies"),
    (lambda: t7.fisher_step_allocation([1.0, 2.0], 0.1, [1.0, np.nan]),
     "differential_entropies"),
    (lambda: t7.predicted_delta_ce([1.0, 2.0], [0.1]), "steps"),
    (lambda: t7.predicted_delta_ce([1.0, 2.0], [0.1, 0.0]), "steps"),
    (lambda: t7.predicted_rate_curve([1.0], [1.0], [0.1, 0.0]), "distortions"),
    (lambda: t7.predicted_rate_curve([1.0], [-1.0], 0.1), "fisher_diag"),
])
def test_bad_input_names_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()
