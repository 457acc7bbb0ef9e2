"""T4: the marginal-entropy floor and its proven lower confidence bound.

(1) The bounded-difference constant and McDiarmid's radius equal their
lambdified sympy derivations. (2) Independent checks: plug-in and Miller–Madow
against ``scipy.stats.entropy``; the constant ``c(M) = h_b(1/M)`` against a
brute-force maximum over every count vector and every one-sample move for
small ``M`` (so it is neither too small nor loose). (3) Coverage: over >= 1000
independent trials with a fixed seed, on i.i.d. tokens and on sequences of
dependent (Markov) tokens whose ``sum_j H(S_j)`` is known exactly, the lower
bound holds with frequency >= 1 - delta, checked by an exact one-sided
binomial test whose own false-alarm level is ALPHA = 0.01 (if the true
coverage is >= 1 - delta the test fails with probability <= 0.01). The mean
slack is below a reasoned threshold, so the bound is not vacuous.
"""

from __future__ import annotations

import math
from itertools import product

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from rdgap.bounds import gibbs
from rdgap.bounds import marginal as m4
from rdgap.validation.synthetic import DiscreteSource, MarkovSource

ALPHA = 0.01        # false-alarm level of each binomial coverage test
DELTA = 0.05




# ---------------------------------------------------------------- (1) sympy
@settings(max_examples=80, deadline=None)
@given(samples=st.integers(2, 10 ** 9))
def test_sensitivity_matches_derivation(samples, closed_form, close):
    with mpmath.workdps(40):                     # (1 - 1/M) log(1 - 1/M) cancels at large M
        expected = closed_form("plugin_entropy_sensitivity")(mpmath.mpf(samples))
    assert close(m4.plugin_entropy_sensitivity(samples), expected, abs_tol=0.0)
    assert m4.plugin_entropy_sensitivity(samples) <= math.log2(math.e * samples) / samples


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 1000), m=st.integers(1, 512), big_n=st.integers(2, 10 ** 5),
       delta=st.floats(1e-6, 0.999))
def test_deviation_matches_derivation(n, m, big_n, delta, closed_form, close):
    """N m >= 2: at M = 1 the symbolic h_b(1) is 0 log 0 (the numeric constant is 0)."""
    with mpmath.workdps(40):
        expected = closed_form("marginal_entropy_floor")(n, m, mpmath.mpf(big_n), delta)
    assert close(m4.mcdiarmid_deviation(n, m, big_n, delta), expected, abs_tol=0.0)


# ---------------------------------------------------------------- (2) independent
@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(0, 50), min_size=1, max_size=30).filter(lambda c: sum(c) > 0))
def test_plugin_and_miller_madow_against_scipy(counts, close):
    h = stats.entropy(counts, base=2)
    assert close(m4.plugin_entropy(counts), h, 1e-12)
    nonzero, total = sum(c > 0 for c in counts), sum(counts)
    assert close(m4.miller_madow_entropy(counts), h + (nonzero - 1) / (2 * total * math.log(2)),
                 1e-12)


@pytest.mark.parametrize("samples", [2, 3, 5, 8, 13])
def test_sensitivity_is_the_exact_maximum(samples, close):
    """Brute force over all count vectors on 3 symbols and all one-sample moves."""
    worst = 0.0
    for a, b in product(range(samples + 1), repeat=2):
        if a + b > samples:
            continue
        counts = np.array([a, b, samples - a - b])
        for source, target in product(range(3), repeat=2):
            if source != target and counts[source] > 0:
                moved = counts.copy()
                moved[source] -= 1
                moved[target] += 1
                worst = max(worst, abs(m4.plugin_entropy(moved) - m4.plugin_entropy(counts)))
    assert close(worst, m4.plugin_entropy_sensitivity(samples), 1e-12)


def test_floor_invariant_to_relabelling_symbols():
    """Entropies depend only on counts: a huge spread of labels (np.unique path) and a
    shift (bincount path) give the same floor."""
    rng = np.random.default_rng(40)
    symbols = rng.integers(0, 7, size=(600, 3))
    base = m4.marginal_entropy_floor(symbols, 0.1, tokens_per_sequence=3)
    for relabel in (symbols * 10 ** 12 - 5, symbols - 1000):
        other = m4.marginal_entropy_floor(relabel, 0.1, tokens_per_sequence=3)
        assert np.allclose(other.per_channel, base.per_channel, rtol=1e-14)
        assert other.lower_bound == pytest.approx(base.lower_bound, rel=1e-14)


def test_total_correlation_estimate_consistent():
    """For a large sample, the plug-in TC is close to the exact TC of the joint pmf."""
    rng = np.random.default_rng(41)
    joint = rng.dirichlet(np.ones(27)).reshape(3, 3, 3)
    exact = sum(gibbs.entropy(joint.sum(axis=tuple(i for i in range(3) if i != j)))
                for j in range(3)) - gibbs.entropy(joint.ravel())
    index = DiscreteSource(joint.ravel()).sample(200_000, rng)
    symbols = np.stack(np.unravel_index(index, joint.shape), axis=1)
    assert abs(m4.total_correlation_estimate(symbols) - exact) < 0.01


# ---------------------------------------------------------------- (3) coverage
def _coverage(draw, truth, trials, m):
    """Run ``trials`` independent estimates; returns (hits, mean slack, mean radius)."""
    hits, slack, radius = 0, 0.0, 0.0
    for symbols in draw(trials):
        floor = m4.marginal_entropy_floor(symbols, DELTA, tokens_per_sequence=m)
        hits += floor.lower_bound <= truth
        slack += truth - floor.lower_bound
        radius += floor.deviation
    return hits, slack / trials, radius / trials


def _assert_coverage(hits, trials):
    test = stats.binomtest(hits, trials, 1 - DELTA, alternative="less")
    assert test.pvalue > ALPHA, f"coverage {hits}/{trials} significantly below {1 - DELTA}"


def test_coverage_iid_tokens_and_not_vacuous():
    """I.i.d. tokens of 3 correlated channels (4 symbols each), N = 500, 1500 trials.

    Slack threshold: E[truth - lower] = radius + sum_j (H_j - E Hhat_j), and
    Paninski (2003, Prop. 1) bounds each bias by log2(1 + (K - 1)/M); the mean
    over trials must stay below radius + that bias bound (and the bound must
    be positive on average, i.e. informative).
    """
    rng = np.random.default_rng(42)
    joint = rng.dirichlet(np.full(64, 0.7)).reshape(4, 4, 4)
    truth = sum(gibbs.entropy(joint.sum(axis=tuple(i for i in range(3) if i != j)))
                for j in range(3))
    trials, n_seq = 1500, 500
    source = DiscreteSource(joint.ravel())

    def draw(count):
        index = source.sample((count, n_seq), rng)
        for row in index:
            yield np.stack(np.unravel_index(row, joint.shape), axis=1)

    hits, slack, radius = _coverage(draw, truth, trials, 1)
    _assert_coverage(hits, trials)
    bias_bound = 3 * math.log2(1 + 3 / n_seq)
    assert slack <= radius + bias_bound
    assert truth - slack > 0.5 * truth                       # lower bound keeps > half


def test_coverage_dependent_tokens_markov_sequences():
    """Sequences of m = 4 Markov tokens (dependent), N = 500 sequences, 1000 trials.

    Channels are functions of the chain's state (state, state mod 2, state // 2);
    started stationary, every position has the law pi, so the truth is
    sum_j H(f_j(pi)). Only the sequences are independent, which is all the
    bound assumes. Slack threshold: the radius plus the bias bound of the
    i.i.d. case computed with the N independent sequences (conservative for
    this fast-mixing chain), and the bound must stay positive.
    """
    rng = np.random.default_rng(43)
    chain = MarkovSource(0.55 * np.eye(6) + 0.45 * rng.dirichlet(np.ones(6), size=6), length=4)
    states = np.arange(6)
    functions = (states, states % 2, states // 2)
    truth = sum(gibbs.entropy(np.bincount(f, weights=chain.stationary)) for f in functions)
    trials, n_seq = 1000, 500

    def draw(count):
        sequences = chain.sample(count * n_seq, rng).reshape(count, n_seq * chain.length)
        for row in sequences:
            yield np.stack([f[row] for f in functions], axis=1)

    hits, slack, radius = _coverage(draw, truth, trials, chain.length)
    _assert_coverage(hits, trials)
    assert slack <= radius + sum(math.log2(1 + (np.unique(f).size - 1) / n_seq)
                                 for f in functions)
    assert truth - slack > 0.0


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, match", [
    (lambda: m4.marginal_entropy_floor([[0, 1]], 0.0), "delta: expected 0 < delta < 1"),
    (lambda: m4.marginal_entropy_floor([[0, 1]], 1.5), "delta: expected"),
    (lambda: m4.marginal_entropy_floor([0, 1], 0.1), "symbols: expected a non-empty 2-dim"),
    (lambda: m4.marginal_entropy_floor([[0.5, 1]], 0.1), "symbols: expected integer"),
    (lambda: m4.marginal_entropy_floor(np.zeros((5, 2), int), 0.1, tokens_per_sequence=2),
     "tokens_per_sequence: expected a divisor"),
    (lambda: m4.marginal_entropy_floor(np.zeros((4, 2), int), 0.1, tokens_per_sequence=0),
     "tokens_per_sequence: expected an integer >= 1"),
    (lambda: m4.plugin_entropy([0, 0]), "counts: expected at least one sample"),
    (lambda: m4.plugin_entropy([1.5, 2]), "counts: expected non-negative integer"),
    (lambda: m4.miller_madow_entropy([-1, 2]), "counts: expected non-negative integer"),
    (lambda: m4.plugin_entropy_sensitivity(0), "num_samples: expected an integer >= 1"),
    (lambda: m4.mcdiarmid_deviation(1, 1, 10, 2.0), "delta: expected"),
    (lambda: m4.total_correlation_estimate([[1.5]]), "symbols: expected integer"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
