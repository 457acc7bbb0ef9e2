"""T8: Hoeffding and empirical Bernstein bounds, tested three ways.

(1) Each numeric bound equals its lambdified sympy derivation at random
parameters. (2) Each agrees with an independent computation (mpmath root
finding of the tail equation, the pairwise form of the sample variance used in
Maurer & Pontil's paper). (3) Each reaches coverage >= 1 - delta on an i.i.d.
source of sequences whose expected code length is known exactly, checked by an
exact binomial test at false-alarm level ALPHA = 0.01 over 2000 trials with a
fixed seed, and its mean slack is below a reasoned threshold (not vacuous).
"""

from __future__ import annotations

import math
from functools import cache

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rdgap.bounds import concentration as c8
from rdgap.proofs import DERIVATIONS
from rdgap.validation.coverage import run_coverage

ALPHA = 0.01          # false-alarm level of every coverage test in this file
DELTA = 0.05
TRIALS = 2000
RTOL = 1e-9


@cache
def closed_form(name: str):
    return DERIVATIONS[name]().lambdify()


def close(a, b, rtol=RTOL) -> bool:
    return math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=1e-12)


# ---------------------------------------------------------------- (1) sympy
deltas = st.floats(1e-6, 0.999)
bounds_ = st.floats(1e-3, 1e6)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 10 ** 7), delta=deltas, bound=bounds_, two=st.booleans())
def test_hoeffding_radius_matches_derivation(n, delta, bound, two):
    k = 2 if two else 1
    assert close(c8.hoeffding_radius(n, delta, bound, two_sided=two),
                 closed_form("hoeffding_radius")(n, delta, bound, k))


@settings(max_examples=80, deadline=None)
@given(eps_frac=st.floats(1e-3, 2.0), delta=deltas, bound=bounds_, two=st.booleans())
def test_sample_size_matches_derivation(eps_frac, delta, bound, two):
    epsilon, k = eps_frac * bound, (2 if two else 1)
    expected = max(1, int(closed_form("sample_size")(epsilon, delta, bound, k)))
    assert c8.sample_size(epsilon, delta, bound, two_sided=two) == expected


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 10 ** 6), eps_frac=st.floats(1e-3, 1.0), bound=bounds_,
       two=st.booleans())
def test_hoeffding_confidence_matches_derivation(n, eps_frac, bound, two):
    epsilon, k = eps_frac * bound, (2 if two else 1)
    assert close(c8.hoeffding_confidence(n, epsilon, bound, two_sided=two),
                 closed_form("hoeffding_confidence")(n, epsilon, bound, k))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(2, 400), delta=deltas,
       bound=bounds_, a=st.floats(0.1, 10.0), b=st.floats(0.1, 10.0))
def test_empirical_bernstein_matches_derivation(seed, n, delta, bound, a, b):
    x = np.random.default_rng(seed).beta(a, b, n) * bound
    stats = (x.mean(), x.var(ddof=1), n, delta, bound)
    assert close(c8.empirical_bernstein_upper(x, delta, bound),
                 closed_form("empirical_bernstein_upper")(*stats))
    assert close(c8.empirical_bernstein_lower(x, delta, bound),
                 closed_form("empirical_bernstein_lower")(*stats))
    lower, upper = c8.empirical_bernstein_interval(x, delta, bound)
    half = closed_form("empirical_bernstein_interval")(*stats)
    assert close(upper, x.mean() + half) and close(lower, x.mean() - half)


# ------------------------------------------------------ (2) independent forms
@pytest.mark.parametrize("n,delta,bound,two", [(1, 0.5, 1.0, True), (50, 0.01, 30.0, False),
                                               (12345, 1e-4, 512.0, True)])
def test_hoeffding_radius_solves_the_tail_equation(n, delta, bound, two):
    """The radius is the root of k exp(-2 N eps^2 / B^2) = delta (mpmath, 30 digits)."""
    mpmath.mp.dps = 30
    k = 2 if two else 1
    root = mpmath.findroot(lambda e: mpmath.log(k) - 2 * n * e ** 2 / bound ** 2
                           - mpmath.log(delta), (1e-9 * bound, 10 * bound), solver="anderson")
    assert close(c8.hoeffding_radius(n, delta, bound, two_sided=two), root)
    # and the confidence at that radius is delta again (the two inversions agree)
    assert close(c8.hoeffding_confidence(n, float(root), bound, two_sided=two), delta, 1e-8)


@pytest.mark.parametrize("epsilon,delta,bound", [(0.5, 0.05, 64.0), (1e-3, 0.2, 1.0),
                                                 (10.0, 0.01, 3.0)])
def test_sample_size_is_the_smallest_sufficient_n(epsilon, delta, bound):
    """N reaches the radius and N - 1 does not (unless N = 1)."""
    n = c8.sample_size(epsilon, delta, bound)
    assert c8.hoeffding_radius(n, delta, bound) <= epsilon
    assert n == 1 or c8.hoeffding_radius(n - 1, delta, bound) > epsilon


def test_empirical_bernstein_uses_maurer_pontil_pairwise_variance():
    """Thm 4's V_n(Z) = (1/(n(n-1))) sum_{i<j} (Z_i - Z_j)^2 on Z = X/B, rescaled by B."""
    rng = np.random.default_rng(3)
    bound, delta = 40.0, 0.1
    x = rng.uniform(0, bound, 37)
    z, n = x / bound, x.size
    pairwise = sum((z[i] - z[j]) ** 2 for i in range(n) for j in range(i + 1, n)) / (n * (n - 1))
    log_term = math.log(2 / delta)
    upper_z = z.mean() + math.sqrt(2 * pairwise * log_term / n) + 7 * log_term / (3 * (n - 1))
    assert close(c8.empirical_bernstein_upper(x, delta, bound), bound * upper_z)
    lower_z = 1 - ((1 - z).mean() + math.sqrt(2 * pairwise * log_term / n)
                   + 7 * log_term / (3 * (n - 1)))
    assert close(c8.empirical_bernstein_lower(x, delta, bound), bound * lower_z)


def test_batched_samples_give_one_bound_per_row():
    """Leading axes are independent batches: the same as calling row by row."""
    x = np.random.default_rng(0).uniform(0, 5, (3, 4, 20))
    batched = c8.empirical_bernstein_upper(x, 0.05, 5.0)
    assert batched.shape == (3, 4)
    assert close(batched[2, 1], c8.empirical_bernstein_upper(x[2, 1], 0.05, 5.0))


def test_rate_interval_clips_to_the_range_and_contains_the_estimate():
    x = np.random.default_rng(1).uniform(0, 10, 8)
    for method in ("hoeffding", "bernstein"):
        r = c8.rate_interval(x, 0.05, 10.0, method=method)
        assert r.method == method and r.n == 8
        assert 0.0 <= r.lower <= r.estimate <= r.upper <= 10.0
    wide = c8.rate_interval([4.0, 5.0, 6.0, 5.0], 0.05, 10.0, method="hoeffding")
    assert (wide.lower, wide.upper) == (0.0, 10.0)  # N = 4: radius 6.8 > 5 = |mean - ends|
    many = np.random.default_rng(2).uniform(4, 6, 5000)
    tight = c8.rate_interval(many, 0.05, 10.0, method="bernstein")
    assert close(tight.upper, c8.empirical_bernstein_interval(many, 0.05, 10.0)[1])


# ------------------------------------------- (3) coverage on an exact source
# A categorical source p over 4 symbols; a sequence is M i.i.d. symbols; its code
# length under the fixed model q is l = sum_t -log2 q(s_t), so E l = M (H(p) + D(p||q))
# exactly, and 0 <= l <= B = M max_s -log2 q(s).
P = np.array([0.3, 0.3, 0.2, 0.2])
M = 8


def exact_source(q):
    lengths = -np.log2(np.asarray(q))
    truth = M * float(P @ lengths)             # = M (H(p) + D(p||q))
    return lengths, truth, M * float(lengths.max())


def draw_code_lengths(rng, trials, n, lengths):
    counts = rng.multinomial(M, P, size=(trials, n))
    return counts @ lengths                    # shape (trials, n)


def test_exact_source_truth_is_entropy_plus_divergence():
    """E l = M (H + D): the identity the coverage tests rely on (T1, Gibbs)."""
    q = np.array([0.4, 0.1, 0.25, 0.25])
    lengths, truth, _ = exact_source(q)
    entropy = -float(P @ np.log2(P))
    divergence = float(P @ np.log2(P / q))
    assert close(truth, M * (entropy + divergence))


Q_WIDE = [0.4, 0.1, 0.25, 0.25]   # a mismatched model: larger variance of l
Q_MATCHED = P.tolist()            # the true model: small variance of l, B >> sd


@pytest.mark.parametrize("q", [Q_WIDE, Q_MATCHED], ids=["mismatched", "matched"])
def test_hoeffding_coverage(q):
    """Two-sided |Rhat - R| <= r and one-sided R <= Rhat + r1 each hold w.p. >= 1 - delta.

    Not vacuous: the mean slack of the one-sided bound is E(Rhat + r1 - R) = r1
    = B sqrt(ln(1/delta)/(2N)), which at N = 400 is 0.061 B: below B/10, i.e. the
    bound pins the rate to a tenth of the code-length range.
    """
    lengths, truth, bound = exact_source(q)
    n = 400
    two = c8.hoeffding_radius(n, DELTA, bound)
    one = c8.hoeffding_radius(n, DELTA, bound, two_sided=False)

    def both(rng, trials):
        means = draw_code_lengths(rng, trials, n, lengths).mean(axis=1)
        return means, means + one - truth

    means, _ = both(np.random.default_rng(99), 10)
    assert np.all(means > 0)
    two_sided = run_coverage(lambda rng, t: np.abs(both(rng, t)[0] - truth) <= two,
                             delta=DELTA, trials=TRIALS, seed=11, alpha=ALPHA, vectorized=True)
    one_sided = run_coverage(lambda rng, t: (lambda m, s: (s >= 0, s))(*both(rng, t)),
                             delta=DELTA, trials=TRIALS, seed=12, alpha=ALPHA, vectorized=True)
    assert not two_sided.contradicted and not one_sided.contradicted
    assert one_sided.mean_slack < bound / 10


@pytest.mark.parametrize("q", [Q_WIDE, Q_MATCHED], ids=["mismatched", "matched"])
def test_empirical_bernstein_coverage(q):
    """Upper, lower and two-sided empirical Bernstein bounds hold w.p. >= 1 - delta.

    Not vacuous: for the matched model the per-sequence sd (about 0.8 bits) is far
    below the range B (18.6 bits), so the variance term makes the bound tighter
    than Hoeffding's: its mean slack must be below the one-sided Hoeffding radius.
    """
    lengths, truth, bound = exact_source(q)
    n = 400

    def upper(rng, trials):
        ub = c8.empirical_bernstein_upper(draw_code_lengths(rng, trials, n, lengths),
                                          DELTA, bound)
        return ub >= truth, ub - truth

    def lower(rng, trials):
        lb = c8.empirical_bernstein_lower(draw_code_lengths(rng, trials, n, lengths),
                                          DELTA, bound)
        return lb <= truth, truth - lb

    def interval(rng, trials):
        lb, ub = c8.empirical_bernstein_interval(draw_code_lengths(rng, trials, n, lengths),
                                                 DELTA, bound)
        return (lb <= truth) & (truth <= ub), np.minimum(ub - truth, truth - lb)

    results = [run_coverage(draw, delta=DELTA, trials=TRIALS, seed=seed, alpha=ALPHA,
                            vectorized=True)
               for seed, draw in enumerate((upper, lower, interval), start=21)]
    assert not any(r.contradicted for r in results)
    if q is Q_MATCHED:
        hoeffding = c8.hoeffding_radius(n, DELTA, bound, two_sided=False)
        assert results[0].mean_slack < hoeffding
        assert results[1].mean_slack < hoeffding


def test_coverage_detects_a_bound_that_is_too_tight():
    """The test has power: half the Hoeffding radius with a small sd/B ratio still
    covers (Hoeffding is conservative), but a radius of one standard error cannot
    reach 95% (its coverage is about 68%), and the binomial test must say so."""
    lengths, truth, bound = exact_source(Q_WIDE)
    n = 400
    sd = math.sqrt(M * float(P @ lengths ** 2 - (P @ lengths) ** 2) / n)

    def too_tight(rng, trials):
        return np.abs(draw_code_lengths(rng, trials, n, lengths).mean(axis=1) - truth) <= sd

    result = run_coverage(too_tight, delta=DELTA, trials=TRIALS, seed=5, alpha=ALPHA,
                          vectorized=True)
    assert result.contradicted and 0.6 < result.coverage < 0.76


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("call,argument", [
    (lambda: c8.hoeffding_radius(0, 0.05, 1.0), "n"),
    (lambda: c8.hoeffding_radius(10, 1.0, 1.0), "delta"),
    (lambda: c8.hoeffding_radius(10, 0.05, -1.0), "bound"),
    (lambda: c8.hoeffding_radius(10, 0.05, 1.0, two_sided="yes"), "two_sided"),
    (lambda: c8.sample_size(0.0, 0.05, 1.0), "epsilon"),
    (lambda: c8.sample_size(0.1, 0.0, 1.0), "delta"),
    (lambda: c8.hoeffding_confidence(2.5, 0.1, 1.0), "n"),
    (lambda: c8.hoeffding_confidence(10, 0.1, float("inf")), "bound"),
    (lambda: c8.empirical_bernstein_upper([0.5], 0.05, 1.0), "samples"),
    (lambda: c8.empirical_bernstein_upper([0.5, 1.5], 0.05, 1.0), "bound"),
    (lambda: c8.empirical_bernstein_lower([0.5, -0.1], 0.05, 1.0), "samples"),
    (lambda: c8.empirical_bernstein_interval([0.5, float("nan")], 0.05, 1.0), "samples"),
    (lambda: c8.empirical_bernstein_interval([0.5, 0.2], 1.5, 1.0), "delta"),
    (lambda: c8.rate_interval([1.0, 2.0], 0.05, 3.0, method="clt"), "method"),
    (lambda: c8.rate_interval([1.0, 4.0], 0.05, 3.0), "per_sequence_bits"),
])
def test_bad_input_names_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()
