"""T1: Gibbs' identity, V-entropy and the two-part (hyperprior) rate, tested three ways.

(1) Each function equals its lambdified sympy derivation at random pmfs drawn
by hypothesis. (2) Each agrees with an independent computation
(``scipy.stats.entropy``, which computes natural-log entropies and relative
entropies by its own code path). (3) On synthetic sources with exactly known
entropy the deterministic inequalities hold on every drawn case: the gap
``D(p||q) >= 0`` (Gibbs), ``H_V >= H``, and the two-part rate is never below
``H(S)``. No probabilistic claim is made in T1, so no binomial test is needed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from rdgap.bounds import gibbs
from rdgap.validation.synthetic import DiscreteSource, MarkovSource





def pmfs(size: int, count: int = 1):
    """Strictly positive pmfs of ``size`` symbols (weights bounded away from 0)."""
    weights = st.lists(st.floats(1e-3, 1.0), min_size=size * count, max_size=size * count)
    return weights.map(lambda w: [np.array(w[i * size:(i + 1) * size]) /
                                  sum(w[i * size:(i + 1) * size]) for i in range(count)])


# ---------------------------------------------------------------- (1) sympy
@settings(max_examples=60, deadline=None)
@given(pq=pmfs(3, 2))
def test_kl_and_rate_gap_match_derivations(pq, closed_form, close):
    p, q = pq
    result = gibbs.rate_entropy_gap(p, q)
    assert close(gibbs.kl_divergence(p, q), closed_form("kl_divergence")(*p, *q))
    assert close(result.rate, closed_form("rate_entropy_gap")(*p, *q))
    assert close(result.rate, result.entropy + result.gap)     # the identity itself


@settings(max_examples=60, deadline=None)
@given(pab=pmfs(3, 3))
def test_v_entropy_matches_derivation(pab, closed_form, close):
    p, a, b = pab
    result = gibbs.v_entropy(p, np.stack([a, b]))
    assert close(result.v_entropy, closed_form("v_entropy")(*p, *a, *b))


@settings(max_examples=60, deadline=None)
@given(p=pmfs(4), q=st.tuples(st.floats(0.01, 0.99), st.floats(0.01, 0.99),
                              st.floats(0.01, 0.99)))
def test_two_part_rate_matches_derivation(p, q, closed_form, close):
    (p,), (qz, qa, qb) = p, q
    parts = gibbs.two_part_rate(p, [0, 0, 1, 1], [qz, 1 - qz],
                                [[qa, 1 - qa, 0, 0], [0, 0, qb, 1 - qb]])
    assert close(parts.total, closed_form("two_part_rate")(*p, qz, qa, qb))


# ---------------------------------------------------------------- (2) independent
@settings(max_examples=60, deadline=None)
@given(size=st.integers(2, 40), seed=st.integers(0, 2 ** 32 - 1))
def test_against_scipy_stats(size, seed, close):
    """scipy.stats.entropy computes H and D in nats by a separate implementation."""
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.ones(size)), rng.dirichlet(np.ones(size))
    p[rng.random(size) < 0.3] = 0.0                      # zeros in p are allowed
    if p.sum() == 0:
        p[0] = 1.0
    p /= p.sum()
    assert close(gibbs.entropy(p), stats.entropy(p, base=2), 1e-12)
    assert close(gibbs.kl_divergence(p, q), stats.entropy(p, q, base=2), 1e-10)
    assert close(gibbs.cross_entropy(p, q), stats.entropy(p, base=2) + stats.entropy(p, q, base=2),
                 1e-12)


# ---------------------------------------------------------------- (3) validity
def test_gap_nonnegative_and_zero_iff_equal_on_synthetic_sources(close):
    """Gibbs: D(p||q) >= 0 on every drawn pair, and D(p||p) = 0 (equality case)."""
    rng = np.random.default_rng(11)
    for _ in range(300):
        size = int(rng.integers(2, 30))
        source = DiscreteSource(rng.dirichlet(np.full(size, 0.3)))
        model = rng.dirichlet(np.ones(size))
        result = gibbs.rate_entropy_gap(source.pmf, model)
        assert result.gap >= 0.0
        assert close(result.entropy, source.entropy_bits, 1e-12)
        assert close(result.rate, source.cross_entropy_to(model), 1e-12)
        assert gibbs.kl_divergence(source.pmf, source.pmf) == 0.0


def test_v_entropy_at_least_entropy_and_exact_when_p_in_family():
    """H_V >= H for every family (Gibbs); equality when the family contains p."""
    rng = np.random.default_rng(12)
    for _ in range(200):
        size = int(rng.integers(2, 12))
        p = rng.dirichlet(np.ones(size))
        family = rng.dirichlet(np.ones(size), size=5)
        result = gibbs.v_entropy(p, family)
        assert result.v_entropy >= result.entropy and result.gap >= 0.0
        with_p = gibbs.v_entropy(p, np.vstack([family, p]))
        assert with_p.best == 5 and abs(with_p.gap) < 1e-12


def test_two_part_rate_on_markov_blocks(close):
    """The hyperprior identity on a block source: S = (X1, X2) of a Markov chain, Z = X1.

    With q_Z the stationary law and q(S|Z) the true transition, both gaps are 0
    and the total equals the exact block entropy H(pi) + H(X2|X1); with
    perturbed models the total exceeds it by exactly the two divergences.
    """
    rng = np.random.default_rng(13)
    for _ in range(50):
        k = int(rng.integers(2, 6))
        chain = MarkovSource(rng.dirichlet(np.ones(k), size=k), length=2)
        pi, t = chain.stationary, chain.transition
        p = (pi[:, None] * t).ravel()                    # S = k * x1 + x2
        phi = np.repeat(np.arange(k), k)
        exact_cond = np.zeros((k, k * k))
        for z in range(k):
            exact_cond[z, z * k:(z + 1) * k] = t[z]
        parts = gibbs.two_part_rate(p, phi, pi, exact_cond)
        assert close(parts.total, chain.entropy_bits, 1e-10)
        assert abs(parts.gap_z) < 1e-12 and abs(parts.gap_s_given_z) < 1e-10
        q_z = rng.dirichlet(np.ones(k))
        q_cond = np.zeros((k, k * k))
        for z in range(k):
            q_cond[z, z * k:(z + 1) * k] = rng.dirichlet(np.ones(k))
        parts = gibbs.two_part_rate(p, phi, q_z, q_cond)
        assert parts.total >= chain.entropy_bits
        assert close(parts.total, parts.entropy + parts.gap_z + parts.gap_s_given_z, 1e-10)
        model = MarkovSource(q_cond.reshape(k, k, k)[np.arange(k), np.arange(k)], length=2)
        assert close(parts.gap_s_given_z,
                     chain.kl_to(model) - gibbs.kl_divergence(pi, model.stationary), 1e-9)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, match", [
    (lambda: gibbs.entropy([0.5, 0.6]), "p: expected a pmf"),
    (lambda: gibbs.entropy([-0.1, 1.1]), "p: expected probabilities >= 0"),
    (lambda: gibbs.entropy([np.nan, 1.0]), "p: expected finite"),
    (lambda: gibbs.entropy([[0.5, 0.5], [0.5, 0.5]]), "p: expected a 1-dimensional"),
    (lambda: gibbs.kl_divergence([0.5, 0.5], [1.0, 0.0]), "q: expected q > 0 wherever p > 0"),
    (lambda: gibbs.kl_divergence([0.5, 0.5], [1.0]), "q: expected the shape of p"),
    (lambda: gibbs.v_entropy([0.5, 0.5], [[1.0, 0.0]]), "family: expected at least one"),
    (lambda: gibbs.v_entropy([0.5, 0.5], [0.5, 0.5]), "family: expected a 2-dimensional"),
    (lambda: gibbs.two_part_rate([0.5, 0.5], [0, 2], [0.5, 0.5], [[1, 0], [0, 1]]),
     "phi: expected values in 0..1"),
    (lambda: gibbs.two_part_rate([0.5, 0.5], [0], [0.5, 0.5], [[1, 0], [0, 1]]),
     "phi: expected one side-information symbol"),
    (lambda: gibbs.two_part_rate([0.5, 0.5], [0, 1], [0.5, 0.5], [[1, 0]]),
     "q_s_given_z: expected shape"),
    (lambda: gibbs.two_part_rate([0.5, 0.5], [0, 1], [0.5, 0.5], [[0, 1], [1, 0]]),
     "q_s_given_z: expected q"),
    (lambda: gibbs.two_part_rate([0.5, 0.5], [0, 1], [1.0, 0.0], [[1, 0], [0, 1]]),
     "q_z: expected q_z > 0"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
