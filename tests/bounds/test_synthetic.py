"""The synthetic sources: their stated entropies are exact and their samplers draw from them.

Exactness is checked against independent computations (brute-force
enumeration of Markov blocks, scipy CDF differences for mixtures, direct
sampling for the marginals of ``S = A X``). Samplers are checked with a
chi-square goodness-of-fit test at a fixed seed; each such test has its own
false-alarm level ALPHA = 1e-3 (it fails with probability <= 1e-3 when the
sampler is correct).
"""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest
from scipy import stats

from rdgap.bounds import gibbs
from rdgap.validation.synthetic import (DiscreteSource, GaussianVector, MarkovSource,
                                        QuantizedMixture, QuantizedScalar, UnimodularVector,
                                        random_unimodular)

ALPHA = 1e-3


def _goodness_of_fit(samples, support, pmf):
    """Chi-square test on cells of expected count >= 5 (the rest pooled)."""
    counts = np.array([(samples == s).sum() for s in support], dtype=float)
    expected = pmf * samples.size
    big = expected >= 5
    observed = np.append(counts[big], counts[~big].sum())
    expect = np.append(expected[big], expected[~big].sum())
    keep = expect > 0
    expect = expect[keep] * observed[keep].sum() / expect[keep].sum()
    assert stats.chisquare(observed[keep], expect).pvalue > ALPHA


@pytest.mark.parametrize("source", [
    DiscreteSource([0.1, 0.2, 0.3, 0.4]),
    DiscreteSource([0.5, 0.5], support=[-3, 7]),
    QuantizedScalar("gaussian", 2.0, 0.7, loc=0.3),
    QuantizedScalar("laplace", 1.0, 0.5),
    QuantizedScalar("logistic", 0.5, 0.25, loc=-1.0),
    QuantizedMixture([0.3, 0.7], [("gaussian", 1.0, -2.0), ("logistic", 0.5, 1.0)], 0.5),
], ids=["discrete", "discrete-support", "gaussian", "laplace", "logistic", "mixture"])
def test_samplers_match_their_pmf(source):
    rng = np.random.default_rng(61)
    samples = source.sample(20_000, rng)
    keep = source.probabilities > 1e-12
    _goodness_of_fit(samples, source.support[keep], source.probabilities[keep])
    assert math.isclose(source.entropy_bits, gibbs.entropy(source.probabilities /
                                                           source.probabilities.sum()),
                        rel_tol=1e-9)


def test_mixture_entropy_against_scipy_cdf_differences():
    components = [("gaussian", 1.0, -1.0), ("laplace", 0.7, 0.5), ("logistic", 0.3, 2.0)]
    weights, step = np.array([0.2, 0.5, 0.3]), 0.4
    mix = QuantizedMixture(weights, components, step)
    laws = {"gaussian": stats.norm, "laplace": stats.laplace, "logistic": stats.logistic}
    k = np.arange(-200, 201)
    p = sum(w * (laws[d].cdf((k + 0.5) * step, loc, s) - laws[d].cdf((k - 0.5) * step, loc, s))
            for w, (d, s, loc) in zip(weights, components))
    assert math.isclose(mix.entropy_bits, gibbs.entropy(p / p.sum()), rel_tol=1e-9)


def test_markov_block_entropy_and_kl_by_enumeration():
    """H(X1..Xm) = H(pi) + (m-1) H(X2|X1) and the block KL, against all K^m sequences."""
    rng = np.random.default_rng(62)
    for _ in range(5):
        k, m = int(rng.integers(2, 4)), int(rng.integers(1, 5))
        chain = MarkovSource(rng.dirichlet(np.ones(k), size=k), length=m)
        model = MarkovSource(rng.dirichlet(np.ones(k), size=k), length=m)

        def block(c):
            probs = []
            for seq in product(range(k), repeat=m):
                p = c.stationary[seq[0]]
                for a, b in zip(seq, seq[1:]):
                    p *= c.transition[a, b]
                probs.append(p)
            return np.array(probs)

        p, q = block(chain), block(model)
        assert math.isclose(chain.entropy_bits, gibbs.entropy(p), rel_tol=1e-10)
        assert math.isclose(chain.kl_to(model), gibbs.kl_divergence(p, q), rel_tol=1e-9,
                            abs_tol=1e-12)
        assert math.isclose(chain.cross_entropy_to(model), gibbs.cross_entropy(p, q),
                            rel_tol=1e-10)


def test_markov_sampler_is_stationary_with_the_right_transitions():
    rng = np.random.default_rng(63)
    chain = MarkovSource([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8]], length=6)
    x = chain.sample(20_000, rng)
    assert x.shape == (20_000, 6)
    _goodness_of_fit(x[:, -1], np.arange(3), chain.stationary)
    pairs = 3 * x[:, 2] + x[:, 3]
    _goodness_of_fit(pairs, np.arange(9), (chain.stationary[:, None] * chain.transition).ravel())


def test_unimodular_vector_entropy_marginals_and_moments():
    rng = np.random.default_rng(64)
    sources = (QuantizedScalar("gaussian", 1.5, 1.0), QuantizedScalar("laplace", 1.0, 1.0),
               QuantizedScalar("logistic", 0.8, 1.0, loc=0.4))
    a = random_unimodular(3, rng, mixes=5, magnitude=1)
    assert round(abs(np.linalg.det(a))) == 1
    vector = UnimodularVector(sources, a)
    assert math.isclose(vector.entropy_bits, sum(s.entropy_bits for s in sources))
    assert vector.total_correlation_bits >= 0.0
    x = vector.sample(20_000, rng)
    for j in range(3):
        marginal = vector.marginal(j)
        keep = marginal.probabilities > 1e-12
        _goodness_of_fit(x[:, j], marginal.support[keep], marginal.probabilities[keep])
        assert math.isclose(marginal.mean, vector.mean[j], abs_tol=1e-9)
        assert math.isclose(marginal.variance, vector.covariance[j, j], rel_tol=1e-9)


def test_gaussian_vector_entropy_and_moments():
    rng = np.random.default_rng(65)
    cov = np.array([[2.0, 0.6], [0.6, 0.5]])
    source = GaussianVector([1.0, -1.0], cov)
    h = stats.multivariate_normal(cov=cov).entropy() / math.log(2)
    assert math.isclose(source.differential_entropy_bits, h, rel_tol=1e-12)
    y = source.sample(50_000, rng)
    assert np.allclose(np.cov(y.T), cov, atol=0.05) and np.allclose(y.mean(0), [1, -1], atol=0.03)


@pytest.mark.parametrize("call, match", [
    (lambda: DiscreteSource([0.5, 0.6]), "pmf: expected a pmf"),
    (lambda: DiscreteSource([0.5, 0.5], support=[1, 1]), "support: expected 2 increasing"),
    (lambda: QuantizedScalar("uniform", 1.0, 1.0), "dist: expected one of"),
    (lambda: QuantizedMixture([0.5, 0.5], [("gaussian", 1.0, 0.0)], 1.0),
     "components: expected 2 triples"),
    (lambda: MarkovSource([[0.5, 0.5]], length=3), "transition: expected a square"),
    (lambda: MarkovSource([[1.0]], length=0), "length: expected an integer >= 1"),
    (lambda: UnimodularVector((DiscreteSource([1.0]),) * 2, [[2, 0], [0, 1]]),
     "matrix: expected an integer matrix with determinant"),
    (lambda: GaussianVector([0.0], [[1.0, 0.0], [0.0, 1.0]]), "mean: expected 2 values"),
    (lambda: DiscreteSource([1.0]).sample(3, rng=42), "rng: expected a numpy.random.Generator"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
