"""validation/coverage.py: the exact binomial coverage test and the trial runner.

The test must (a) compute the exact binomial p-value (checked against
scipy.stats.binom.cdf), (b) keep its promise: false alarms at rate <= alpha
when the coverage is exactly 1 - delta, and (c) have power against a bound that
misses its coverage by a few percent at 1000 trials.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from rdgap.validation.coverage import coverage_test, run_coverage

ALPHA = 0.01


@pytest.mark.parametrize("hits,trials,delta", [(950, 1000, 0.05), (935, 1000, 0.05),
                                               (1999, 2000, 0.001), (10, 10, 0.5)])
def test_p_value_is_the_exact_binomial_lower_tail(hits, trials, delta):
    held = np.arange(trials) < hits
    result = coverage_test(held, delta, alpha=ALPHA)
    assert (result.trials, result.hits) == (trials, hits)
    assert math.isclose(result.p_value, binom.cdf(hits, trials, 1 - delta), rel_tol=1e-9)
    assert result.contradicted == (result.p_value < ALPHA)


def test_false_alarm_rate_is_at_most_alpha():
    """Under H0 with coverage exactly 1 - delta, the rejection probability is
    P(Bin(T, 1-delta) <= k*) <= alpha with k* the largest rejected count; compute it
    exactly and also simulate 20,000 experiments (within 4 standard errors)."""
    trials, delta = 1000, 0.05
    counts = np.arange(trials + 1)
    p_values = binom.cdf(counts, trials, 1 - delta)
    k_star = counts[p_values < ALPHA].max()
    assert coverage_test(np.arange(trials) < k_star, delta, ALPHA).contradicted
    assert not coverage_test(np.arange(trials) < k_star + 1, delta, ALPHA).contradicted
    exact_rate = binom.cdf(k_star, trials, 1 - delta)
    assert exact_rate <= ALPHA
    simulated = np.random.default_rng(0).binomial(trials, 1 - delta, 20_000)
    rate = np.mean(simulated <= k_star)
    assert rate <= ALPHA + 4 * math.sqrt(ALPHA * (1 - ALPHA) / 20_000)


def test_power_against_a_bound_that_misses_by_four_percent():
    """Coverage 0.91 instead of 0.95 over 1000 trials: rejected with probability
    > 0.95 (exact), and the runner rejects such a bound in a seeded run."""
    trials, delta = 1000, 0.05
    counts = np.arange(trials + 1)
    k_star = counts[binom.cdf(counts, trials, 1 - delta) < ALPHA].max()
    assert binom.cdf(k_star, trials, 0.91) > 0.95
    result = run_coverage(lambda rng, t: rng.uniform(size=t) < 0.91, delta=delta,
                          trials=trials, seed=3, alpha=ALPHA, vectorized=True)
    assert result.contradicted


def test_loop_and_vectorized_runners_report_slack():
    def one(rng):
        x = rng.standard_normal()
        return bool(x <= 2.0), 2.0 - x

    looped = run_coverage(one, delta=0.05, trials=1000, seed=1)
    assert looped.trials == 1000 and not looped.contradicted
    assert abs(looped.mean_slack - 2.0) < 4 / math.sqrt(1000)   # E(2 - X) = 2
    plain = run_coverage(lambda rng, t: rng.standard_normal(t) <= 2.0, delta=0.05,
                         trials=1000, seed=1, vectorized=True)
    assert math.isnan(plain.mean_slack) and not plain.contradicted


@pytest.mark.parametrize("call,argument", [
    (lambda: coverage_test([True, False], 0.0), "delta"),
    (lambda: coverage_test([True, False], 0.05, alpha=1.0), "alpha"),
    (lambda: coverage_test([1, 0], 0.05), "held"),
    (lambda: coverage_test([True, False], 0.05, slack=[1.0]), "slack"),
    (lambda: run_coverage(lambda rng: True, delta=0.05, trials=999), "trials"),
    (lambda: run_coverage("draw", delta=0.05), "draw"),
    (lambda: run_coverage(lambda rng, t: np.ones(3, bool), delta=0.05, vectorized=True), "draw"),
    (lambda: run_coverage(lambda rng: True, delta=0.05, seed=-1), "seed"),
])
def test_bad_input_names_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()
