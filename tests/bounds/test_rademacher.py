"""T9: Rademacher generalisation, contraction, Massart and the Monte Carlo
complexity, tested three ways.

(1) Numeric functions equal their lambdified sympy derivations at random
parameters. (2) Independent computations: exact enumeration of all 2^N sign
vectors for small N, the dual-norm identity by linear programming. (3) Coverage
of the uniform bound over a finite class of code-length functions on an i.i.d.
source whose expected code lengths M (H + D_k) are known exactly: >= 1 - delta
over 2000 trials, exact binomial test at false-alarm level ALPHA = 0.01, fixed
seeds; and the mean slack is below a reasoned envelope (not vacuous).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.optimize import linprog

from rdgap.bounds import rademacher as r9
from rdgap.proofs import DERIVATIONS
from rdgap.validation.coverage import run_coverage

ALPHA = 0.01     # false-alarm level of every coverage test in this file
DELTA = 0.05
TRIALS = 2000


@cache
def closed_form(name: str, step: int | None = None):
    built = DERIVATIONS[name]()
    if step is None:
        return built.lambdify()
    import sympy as sp
    expression = built.steps[step][1]
    return sp.lambdify(sorted(expression.free_symbols, key=str), expression, "mpmath")


def close(a, b, rtol=1e-9) -> bool:
    return math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=1e-12)


def all_signs(n: int) -> np.ndarray:
    """Every sign vector in {-1, +1}^n, one per row (2^n rows)."""
    bits = (np.arange(2 ** n)[:, None] >> np.arange(n)) & 1
    return 1.0 - 2.0 * bits


def exact_linf_complexity(x: np.ndarray, weight: float = 1.0) -> float:
    """W E_sigma ||(1/N) sum sigma_i x_i||_inf by enumeration."""
    return weight * float(np.abs(all_signs(x.shape[0]) @ x).max(axis=1).mean()) / x.shape[0]


def exact_class_complexity(values: np.ndarray) -> float:
    """E_sigma max_k (1/N) sum_i sigma_i f_k(z_i), values[i, k] = f_k(z_i) (no abs)."""
    return float((all_signs(values.shape[0]) @ values).max(axis=1).mean()) / values.shape[0]


# ---------------------------------------------------------------- (1) sympy
deltas = st.floats(1e-6, 0.999)


@settings(max_examples=80, deadline=None)
@given(frac=st.floats(0, 1), complexity=st.floats(0, 100), n=st.integers(1, 10 ** 7),
       delta=deltas, bound=st.floats(1e-3, 1e5))
def test_generalization_bounds_match_derivations(frac, complexity, n, delta, bound):
    mean = frac * bound
    for name in ("rademacher_generalization_bound", "rademacher_generalization_bound_expected"):
        numeric = getattr(r9, name)(mean, complexity, n, delta, bound)
        assert close(numeric, closed_form(name)(mean, complexity, n, delta, bound))


@settings(max_examples=60, deadline=None)
@given(lip=st.floats(0, 50), complexity=st.floats(0, 10), frac=st.floats(0, 1),
       n=st.integers(1, 10 ** 6), delta=deltas, bound=st.floats(1e-2, 1e4))
def test_contraction_and_its_composition_match_derivation(lip, complexity, frac, n, delta,
                                                          bound):
    assert close(r9.contraction(lip, complexity), closed_form("contraction")(lip, complexity))
    composed = r9.rademacher_generalization_bound(frac * bound, r9.contraction(lip, complexity),
                                                  n, delta, bound)
    # last step of the derivation: symbols sorted by name are B, Ehat, L, N, R_G, delta
    expected = closed_form("contraction", step=2)(bound, frac * bound, lip, n, complexity, delta)
    assert close(composed, expected)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), rows=st.integers(1, 60), cols=st.integers(1, 12),
       weight=st.floats(1e-3, 1e3), scale=st.floats(1e-3, 1e3))
def test_massart_matches_derivation(seed, rows, cols, weight, scale):
    x = np.random.default_rng(seed).standard_normal((rows, cols)) * scale
    radius = float(np.linalg.norm(x, axis=0).max())
    assert close(r9.massart_linf_bound(x, weight),
                 closed_form("massart_linf_bound")(weight, radius, cols, rows))


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), rows=st.integers(1, 30), cols=st.integers(1, 6),
       draws=st.integers(1, 300), delta=deltas, weight=st.floats(1e-2, 1e2))
def test_monte_carlo_radius_matches_derivation(seed, rows, cols, draws, delta, weight):
    x = np.random.default_rng(seed).uniform(-1, 1, (rows, cols))
    result = r9.empirical_rademacher_linf(x, n_draws=draws, seed=seed, weight_l1=weight,
                                          delta=delta)
    c = weight * float(np.abs(x).mean(axis=0).max())
    assert close(result.value_range, c)
    assert close(result.radius, closed_form("empirical_rademacher_linf")(c, draws, delta))


# ------------------------------------------------------ (2) independent forms
def test_dual_norm_identity_by_linear_programming():
    """sup_{||w||_1 <= W} w.v = W ||v||_inf: solve the LP in (w+, w-) with scipy."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        v, weight = rng.standard_normal(7), rng.uniform(0.1, 3)
        lp = linprog(np.concatenate([-v, v]), A_ub=np.ones((1, 14)), b_ub=[weight],
                     bounds=[(0, None)] * 14)
        assert close(-lp.fun, weight * np.abs(v).max(), 1e-7)


@pytest.mark.parametrize("rows,cols", [(6, 1), (10, 4), (12, 30)])
def test_monte_carlo_agrees_with_exact_enumeration(rows, cols):
    """With 20,000 draws the estimate is within its Hoeffding radius (delta = 1e-3)
    of the exact complexity, and Massart's bound lies above the exact value."""
    x = np.random.default_rng(rows + cols).standard_normal((rows, cols))
    exact = exact_linf_complexity(x, 2.0)
    result = r9.empirical_rademacher_linf(x, n_draws=20_000, seed=1, weight_l1=2.0, delta=1e-3)
    assert abs(result.estimate - exact) <= result.radius
    assert result.lower <= exact <= result.upper
    assert exact <= r9.massart_linf_bound(x, 2.0)


def test_massart_bound_is_tight_for_one_coordinate_with_many_columns():
    """Not vacuous: for i.i.d. Gaussian columns the exact complexity is within a
    factor 2 of Massart (the sqrt(2 ln 2n) is the right growth of a Gaussian max)."""
    x = np.random.default_rng(7).standard_normal((14, 200))
    ratio = r9.massart_linf_bound(x) / exact_linf_complexity(x)
    assert 1.0 <= ratio < 2.0


def test_monte_carlo_radius_coverage():
    """The exact complexity lies within estimate +- radius in >= 1 - delta of the
    seeds (each trial: a fresh seed and 50 sign draws on a fixed 10 x 3 matrix)."""
    x = np.random.default_rng(3).standard_normal((10, 3))
    exact = exact_linf_complexity(x)
    seeds = iter(range(10 ** 6))

    def trial(rng):
        est = r9.empirical_rademacher_linf(x, n_draws=50, seed=next(seeds), delta=DELTA)
        return abs(est.estimate - exact) <= est.radius, est.radius - abs(est.estimate - exact)

    result = run_coverage(trial, delta=DELTA, trials=1000, seed=0, alpha=ALPHA)
    assert not result.contradicted


def test_contraction_holds_by_exact_enumeration():
    """Talagrand: Rhat(phi o G) <= L Rhat(G) for a finite class G, phi = L-Lipschitz
    maps (|.|-like, tanh, a clipped ramp), computed exactly over all 2^12 signs."""
    rng = np.random.default_rng(4)
    values = rng.standard_normal((12, 6))
    for lip, phi in [(1.0, np.abs), (2.0, lambda v: 2 * np.tanh(v)),
                     (0.5, lambda v: 0.5 * np.clip(v, -0.3, 0.7))]:
        assert exact_class_complexity(phi(values)) <= r9.contraction(
            lip, exact_class_complexity(values)) + 1e-12


def test_chunked_monte_carlo_equals_one_chunk(monkeypatch):
    """Chunking changes memory, not the result: a tiny chunk gives the same estimate."""
    x = np.random.default_rng(5).standard_normal((40, 9))
    whole = r9.empirical_rademacher_linf(x, n_draws=300, seed=2)
    monkeypatch.setattr(r9, "_CHUNK_ENTRIES", 7 * 40)
    assert close(r9.empirical_rademacher_linf(x, n_draws=300, seed=2).estimate, whole.estimate)


# ------------------------------------------- (3) coverage on an exact source
# Source p over 4 symbols; a sequence is M i.i.d. symbols; the class F holds the code
# lengths f_k(z) = sum_t -log2 q_k(z_t) of K fixed models, so E f_k = M (H(p) + D(p||q_k))
# exactly, and every f_k lies in [0, B], B = M max_{k,s} -log2 q_k(s).
P = np.array([0.4, 0.3, 0.2, 0.1])
MODELS = np.array([[0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4],
                   [0.5, 0.2, 0.2, 0.1], [0.3, 0.3, 0.3, 0.1]])
M = 8
LENGTHS = -np.log2(MODELS)                       # (K, 4)
TRUTH = M * LENGTHS @ P                          # (K,)  = M (H + D_k)
BOUND = M * float(LENGTHS.max())


def test_truth_is_entropy_plus_divergence():
    entropy = -float(P @ np.log2(P))
    divergences = (P * np.log2(P / MODELS)).sum(axis=1)
    assert np.allclose(TRUTH, M * (entropy + divergences), rtol=1e-12)


def sample_class(rng, n):
    """values[i, k] = f_k(z_i) for n i.i.d. sequences."""
    return rng.multinomial(M, P, size=n) @ LENGTHS.T


@pytest.mark.parametrize("complexity", ["massart", "monte_carlo"])
def test_uniform_bound_coverage_over_a_finite_class(complexity):
    """With probability >= 1 - delta, E f_k <= bound_k for every k simultaneously.

    Rhat(F) <= W E||(1/N) sum sigma_i x_i||_inf with W = 1 and x_i = (f_k(z_i))_k
    (the sup over F is at most the sup over F and -F), which Massart bounds, and the
    Monte Carlo estimate bounds from above except with probability delta/2; the
    Monte Carlo variant therefore runs the bound at delta/2 (total delta).

    Not vacuous: the mean slack (min over k of bound_k - truth_k) must be below the
    envelope 3B sqrt(ln(2/level)/(2N)) + 2B sqrt(2 ln(2K)/N) (+ 2B sqrt(ln(2/delta)/(2S))
    for Monte Carlo): the deviation term, Massart's term with ||x_.k||_2 <= B sqrt(N),
    and twice the Monte Carlo radius with its range c <= B. At N = 500, S = 400 that
    is 0.46 B (Massart) and 0.53 B (Monte Carlo).
    """
    n, draws = 500, 400
    level = DELTA if complexity == "massart" else DELTA / 2

    def trial(rng):
        values = sample_class(rng, n)
        if complexity == "massart":
            rhat = r9.massart_linf_bound(values)
        else:
            seed = int(rng.integers(2 ** 31))
            rhat = r9.empirical_rademacher_linf(values, n_draws=draws, seed=seed,
                                                delta=DELTA).upper
        bound = r9.rademacher_generalization_bound(values.mean(axis=0), rhat, n, level, BOUND)
        margins = bound - TRUTH
        return bool(np.all(margins >= 0)), float(margins.min())

    result = run_coverage(trial, delta=DELTA, trials=TRIALS if complexity == "massart" else 1000,
                          seed=31, alpha=ALPHA)
    assert not result.contradicted
    k = MODELS.shape[0]
    envelope = (3 * BOUND * math.sqrt(math.log(2 / level) / (2 * n))
                + 2 * BOUND * math.sqrt(2 * math.log(2 * k) / n))
    if complexity == "monte_carlo":
        envelope += 2 * BOUND * math.sqrt(math.log(2 / DELTA) / (2 * draws))
    assert 0 < result.mean_slack < envelope


# ---------------------------------------------------------------- bad input
X = np.ones((3, 2))


@pytest.mark.parametrize("call,argument", [
    (lambda: r9.rademacher_generalization_bound(5.0, 0.1, 10, 0.05, 4.0), "empirical_mean"),
    (lambda: r9.rademacher_generalization_bound(1.0, -0.1, 10, 0.05, 4.0), "rademacher"),
    (lambda: r9.rademacher_generalization_bound(1.0, 0.1, 0, 0.05, 4.0), "n"),
    (lambda: r9.rademacher_generalization_bound(1.0, 0.1, 10, 0.0, 4.0), "delta"),
    (lambda: r9.rademacher_generalization_bound_expected(1.0, 0.1, 10, 0.05, 0.0), "bound"),
    (lambda: r9.contraction(-1.0, 0.1), "lipschitz"),
    (lambda: r9.contraction(1.0, float("nan")), "rademacher"),
    (lambda: r9.empirical_rademacher_linf(np.ones(3)), "x"),
    (lambda: r9.empirical_rademacher_linf(X, n_draws=0), "n_draws"),
    (lambda: r9.empirical_rademacher_linf(X, seed=-1), "seed"),
    (lambda: r9.empirical_rademacher_linf(X, weight_l1=0.0), "weight_l1"),
    (lambda: r9.empirical_rademacher_linf(X, delta=2.0), "delta"),
    (lambda: r9.massart_linf_bound([[1.0, np.inf]]), "x"),
    (lambda: r9.massart_linf_bound(X, weight_l1=-2.0), "weight_l1"),
])
def test_bad_input_names_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()
