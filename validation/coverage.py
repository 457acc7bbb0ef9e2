"""Coverage trials: does a bound hold with probability at least 1 - delta?

A bound "at confidence 1 - delta" promises ``P(bound holds) >= 1 - delta``.
:func:`run_coverage` draws independent trials with a fixed seed, counts the
trials where the bound held, and tests ``H0: coverage >= 1 - delta`` with an
exact one-sided binomial test. The test's own false-alarm level is ``alpha``:
if the bound truly has coverage ``>= 1 - delta``, :attr:`CoverageResult.contradicted`
is ``True`` with probability at most ``alpha`` (exact, not asymptotic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.stats import binomtest

from rdgap.bounds import _arguments as check

MIN_TRIALS = 1000


@dataclass(frozen=True)
class CoverageResult:
    """The outcome of a coverage experiment.

    Attributes
    ----------
    trials : int
        Number of independent trials.
    hits : int
        Trials in which the bound held.
    coverage : float
        ``hits / trials``.
    target : float
        The promised coverage ``1 - delta``.
    p_value : float
        Exact one-sided binomial p-value of ``H0: coverage >= target``.
    alpha : float
        False-alarm level of the test.
    mean_slack : float
        Mean of ``bound - truth`` over trials (``nan`` when not reported):
        how far from vacuous the bound is.
    """

    trials: int
    hits: int
    coverage: float
    target: float
    p_value: float
    alpha: float
    mean_slack: float

    @property
    def contradicted(self) -> bool:
        """Whether the data reject ``coverage >= target`` at level ``alpha``."""
        return self.p_value < self.alpha


def coverage_test(held, delta: float, alpha: float = 0.01, slack=None) -> CoverageResult:
    r"""Exact binomial test of ``P(held) >= 1 - delta`` from trial outcomes.

    Under ``H0`` the number of hits is at least ``Binomial(T, 1 - delta)`` in
    the stochastic order, so the p-value
    :math:`P\{\mathrm{Bin}(T, 1-\delta) \le \mathrm{hits}\}` rejects a bound
    that keeps its promise with probability at most ``alpha``.

    Parameters
    ----------
    held : array_like of bool, shape (T,)
        One entry per independent trial: did the bound hold?
    delta : float
        The bound's failure probability, ``0 < delta < 1``.
    alpha : float
        The test's false-alarm level, ``0 < alpha < 1``.
    slack : array_like of float, shape (T,), optional
        ``bound - truth`` per trial (positive when the bound held).

    Returns
    -------
    CoverageResult

    Examples
    --------
    >>> r = coverage_test([True] * 990 + [False] * 10, delta=0.05)
    >>> r.coverage, r.contradicted
    (0.99, False)
    >>> coverage_test([True] * 900 + [False] * 100, delta=0.05).contradicted
    True
    """
    delta = check.probability(delta)
    alpha = check.probability(alpha, "alpha")
    outcomes = np.asarray(held)
    if outcomes.ndim != 1 or outcomes.size < 1 or outcomes.dtype != np.bool_:
        raise ValueError(f"held: expected a 1-dimensional boolean array with at least "
                         f"one trial, got dtype {outcomes.dtype} and shape {outcomes.shape}")
    trials, hits = int(outcomes.size), int(outcomes.sum())
    mean_slack = float("nan")
    if slack is not None:
        margins = check.finite_array(slack, "slack", ndim=1)
        if margins.size != trials:
            raise ValueError(f"slack: expected one value per trial ({trials}), "
                             f"got {margins.size}")
        mean_slack = float(margins.mean())
    p_value = float(binomtest(hits, trials, p=1.0 - delta, alternative="less").pvalue)
    return CoverageResult(trials=trials, hits=hits, coverage=hits / trials,
                          target=1.0 - delta, p_value=p_value, alpha=alpha,
                          mean_slack=mean_slack)


def run_coverage(draw: Callable, *, delta: float, trials: int = MIN_TRIALS, seed: int = 0,
                 alpha: float = 0.01, vectorized: bool = False) -> CoverageResult:
    """Run independent trials of a bound and test its coverage.

    Parameters
    ----------
    draw : callable
        ``vectorized=False``: ``draw(rng) -> held`` or ``(held, slack)`` for
        one trial. ``vectorized=True``: ``draw(rng, trials) -> held`` or
        ``(held, slack)`` with arrays of length ``trials`` (much faster).
        ``rng`` is a :class:`numpy.random.Generator`; ``slack`` is
        ``bound - truth``.
    delta : float
        The bound's failure probability, ``0 < delta < 1``.
    trials : int
        Number of trials, at least 1000 (fewer gives the test too little
        power to catch a bound that misses its coverage by a few percent).
    seed : int
        Seed of the generator, so a run is reproducible.
    alpha : float
        False-alarm level of the exact binomial test.
    vectorized : bool
        Whether ``draw`` produces all trials at once.

    Returns
    -------
    CoverageResult

    Examples
    --------
    >>> import numpy as np
    >>> def draw(rng, trials):   # a 95% one-sided normal quantile bound
    ...     x = rng.standard_normal(trials)
    ...     return x <= 1.6449, 1.6449 - x
    >>> r = run_coverage(draw, delta=0.05, trials=2000, seed=1, vectorized=True)
    >>> r.trials, r.contradicted, abs(r.mean_slack - 1.6449) < 0.1
    (2000, False, True)
    """
    trials = check.count(trials, "trials", minimum=MIN_TRIALS)
    check.count(seed, "seed", minimum=0)
    if not callable(draw):
        raise ValueError(f"draw: expected a callable, got {type(draw).__name__}")
    rng = np.random.default_rng(seed)
    if vectorized:
        outcome = draw(rng, trials)
        held, slack = outcome if isinstance(outcome, tuple) else (outcome, None)
    else:
        outcomes = [draw(rng) for _ in range(trials)]
        paired = [o if isinstance(o, tuple) else (o, None) for o in outcomes]
        held = [bool(h) for h, _ in paired]
        slack = None if paired[0][1] is None else [float(s) for _, s in paired]
    held = np.asarray(held)
    if held.shape != (trials,):
        raise ValueError(f"draw: expected {trials} outcomes, got shape {held.shape}")
    return coverage_test(held.astype(bool), delta, alpha=alpha, slack=slack)
