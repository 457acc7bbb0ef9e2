r"""Coverage claims: each bound re-run on a synthetic source where it is nearly tight.

A coverage experiment that cannot fail proves nothing: a Hoeffding radius
checked on a source whose every draw has the same value passes with its
radius ×1e-12. Every experiment here runs on a source chosen so that the
bound is close to its worst case, and reports two numbers that show how
close:

``critical_factor``
    The ``(1 - delta)`` quantile, over the trials, of ``|estimate - truth| /
    radius`` (one-sided: ``(estimate - truth) / radius``): the factor by
    which the radius could be shrunk before the observed coverage fell below
    ``1 - delta``. A run near 1 is tight; a vacuous run shows a factor near 0.
``min_slack``
    The smallest ``radius - |estimate - truth|`` over the trials.

Each claim PASSes when the exact one-sided binomial test at ``alpha = 0.01``
does not reject ``coverage >= 1 - delta`` (:mod:`rdgap.validation.coverage`)
AND the experiment is sensitive: ``critical_factor >=``
:data:`MIN_CRITICAL_FACTOR` (an experiment that would not notice the radius
halved FAILs as insensitive).

The sources and what they show (δ = 0.05 unless said):

``T8 hoeffding_radius (Bernoulli(1/2), n = 50)``
    Two-sided radius ``sqrt(ln(2/δ)/(2n))`` on the mean of 50 fair coins:
    exact coverage 0.9934; with the radius ×0.7 it is 0.9351 < 0.95, which
    20,000 trials reject (z ≈ −9). Hoeffding is tightest on two-point laws
    at the ends of the range with p = 1/2.
``T8 empirical_bernstein_interval (two-point law {0, 1}, p = 1/2, n = 1000)``
    Maurer–Pontil's interval. Its variance term is ``sqrt(2 V ln(4/δ)/n)``
    where the exact two-sided half-width is ``z_{1-δ/2} sqrt(V/n)``: for
    any law, as n grows their ratio tends to ``z_{0.975} / sqrt(2 ln 80) =
    0.66``,
    and the range term ``7 ln(4/δ)/(3(n-1))`` only widens it. So no source
    makes the interval fail at ×0.7: over two-point laws p ∈ [0.001, 0.5],
    n ∈ [5, 1000] the largest critical factor is 0.54 (p = 1/2, n = 1000),
    the source used here; the radius ×0.5 fails (coverage ≈ 0.93).
``T8 betting_interval (two-point law {0, 1}, p = 1/2, n = 50)``
    Waudby-Smith & Ramdas' hedged betting interval (:mod:`rdgap.bounds.betting`)
    over 10,000 drawn sequences (its bets are predictable, so each sequence
    is computed in its drawing order; about 1.5 s). Two-point laws at the
    ends of the range are where it is tightest: coverage 0.9695, critical
    factor 0.87, so the interval ×0.7 about its centre covers 0.896 and
    FAILs (exact binomial p ≈ 1e-105).
``T4 marginal_entropy_floor (half-singleton law, M = 2000 tokens)``
    One channel whose symbol is 0 with probability 1/2 and otherwise a fresh
    symbol never seen before (a 62-bit random integer): one token moves the
    plug-in entropy by ``≈ log2(e M / 2) / M``, close to McDiarmid's
    bounded difference ``h_b(1/M) ≈ log2(e M) / M``, and the plug-in's
    spread is that of a Binomial(M, 1/2) count — McDiarmid's own worst case.
    The truth checked is ``E[Ĥ]`` (exact, summed over the Binomial count),
    the quantity the proof bounds (``E Ĥ <= H`` by Jensen, so the promise on
    ``H`` follows): checking against ``H`` itself (32 bits here) would be
    vacuous. McDiarmid's one-sided radius is ``sqrt(2 ln(1/δ))`` standard
    deviations of a fair-coin sum, against the exact ``z_{1-δ}``: at δ =
    0.05 that is 0.67 at best, so the experiment runs at δ = 0.001
    (``3.09 / sqrt(2 ln 1000) = 0.83``, times ``log2(eM/2) / log2(eM)``):
    with the radius ×0.7 it fails.
``T4 marginal_entropy_floor (sequences of 2 equal tokens, N = 2000)``
    The floor with sequences (documents) as the unit and dependent tokens
    inside them, at its worst: every sequence repeats one half-singleton
    symbol, so the plug-in over ``N m`` tokens is that of the ``N``
    sequences while McDiarmid charges a sequence ``m h_b(1/(Nm))``
    (δ = 0.001). Critical factor about 0.67: the radius ×0.5 fails, ×0.7
    does not (``log2(eN/2) / log2(eNm)`` of the slack is structural).
``T3 gaussian_logdet_bound (exact integer vectors)``
    Deterministic: the bound must hold in every case; ``min_slack`` shown.
``prediction[T7 predicted_rate_curve (quadratic ΔCE, Gaussian channels)]``
    Not a coverage test: T7 is an approximation. On sources where its
    hypotheses hold exactly (:func:`_t7`) its error must stay within its
    stated 0.02 bit per channel; a Fisher diagonal 4× too large moves the
    prediction by ``½ log2 4 = 1`` bit per channel and FAILs.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as scipy_stats

from rdgap.bounds import (betting_interval, empirical_bernstein_interval, gaussian_logdet_bound,
                          hoeffding_radius, marginal_entropy_floor, predicted_rate_curve,
                          quantized_entropy)

from .coverage import run_coverage
from .synthetic import QuantizedScalar, UnimodularVector, random_unimodular

ALPHA = 0.01
#: An experiment whose critical factor is below this would not notice the radius halved.
MIN_CRITICAL_FACTOR = 0.5


def _critical_factor(ratio: np.ndarray, delta: float) -> float:
    """The ``(1 - delta)`` quantile of ``deviation / radius`` over the trials."""
    return float(np.quantile(np.asarray(ratio, float), 1.0 - delta))


def coverage_claim(name: str, result, critical_factor: float | None, min_slack: float,
                   numbers: dict | None = None, hypotheses: list | None = None) -> dict:
    """A gating ``coverage[NAME]`` claim from a :class:`~.coverage.CoverageResult`."""
    from .claims import make_claim

    sensitive = critical_factor is None or critical_factor >= MIN_CRITICAL_FACTOR
    numbers = {"trials": result.trials, "hits": result.hits, "coverage": result.coverage,
               "target": result.target, "p_value": result.p_value, "alpha": result.alpha,
               "critical_factor": critical_factor, "min_slack": min_slack,
               "mean_slack": None if math.isnan(result.mean_slack) else result.mean_slack} \
        | (numbers or {})
    text = (f"coverage {result.hits}/{result.trials} = {result.coverage:.4f} vs target "
            f"{result.target:.3f} (exact binomial p = {result.p_value:.3g}, alpha "
            f"{result.alpha}); critical factor "
            f"{'—' if critical_factor is None else f'{critical_factor:.3f}'}, min slack "
            f"{min_slack:.4g}")
    failures = []
    if result.contradicted:
        failures.append("coverage significantly below target")
    if not sensitive:
        failures.append(f"experiment insensitive (critical factor < {MIN_CRITICAL_FACTOR}: "
                        f"the radius halved would still pass)")
    return make_claim(f"coverage[{name}]", failures, numbers, True,
                      text + ": not contradicted", text + ": " + "; ".join(failures),
                      kind="coverage", hypotheses=hypotheses or [])


def _hoeffding(trials: int, delta: float = 0.05, n: int = 50, scale: float = 1.0) -> dict:
    def draw(rng, count):
        means = rng.binomial(n, 0.5, size=count) / n
        radius = scale * hoeffding_radius(n, delta, 1.0)
        gap = np.abs(means - 0.5)
        return gap <= radius, radius - gap

    result = run_coverage(draw, delta=delta, trials=trials, seed=1, alpha=ALPHA,
                          vectorized=True)
    rng = np.random.default_rng(1)
    gap = np.abs(rng.binomial(n, 0.5, size=trials) / n - 0.5)
    radius = scale * hoeffding_radius(n, delta, 1.0)
    return coverage_claim("T8 hoeffding_radius (Bernoulli(1/2), n = 50)", result,
                          _critical_factor(gap / radius, delta), float((radius - gap).min()),
                          {"n": n, "delta": delta, "radius": radius},
                          [_met("values i.i.d. in [0, 1]", True)])


def _bernstein(trials: int, delta: float = 0.05, n: int = 1000, scale: float = 1.0) -> dict:
    # A two-point sample is fixed, up to order, by its count k of ones: the interval is
    # computed once per k by the real function on such a sample, then looked up per trial.
    rows = (np.arange(n)[None, :] < np.arange(n + 1)[:, None]).astype(np.float64)
    low, high = empirical_bernstein_interval(rows, delta, 1.0)
    centre, half = (low + high) / 2, scale * (high - low) / 2
    k = np.random.default_rng(2).binomial(n, 0.5, size=trials)
    gap = np.abs(centre[k] - 0.5)
    held, slack = gap <= half[k], half[k] - gap
    result = run_coverage(lambda _rng, _count: (held, slack), delta=delta, trials=trials,
                          seed=2, alpha=ALPHA, vectorized=True)
    return coverage_claim("T8 empirical_bernstein_interval (two-point law, p = 1/2, n = 1000)",
                          result, _critical_factor(gap / half[k], delta), float(slack.min()),
                          {"n": n, "delta": delta},
                          [_met("values i.i.d. in [0, 1]", True)])


def _betting(trials: int, delta: float = 0.05, n: int = 50, scale: float = 1.0) -> dict:
    # Order matters to the betting interval (its bets are predictable): every trial is
    # computed from its own drawn sequence, all trials at once (vectorised bisection).
    values = (np.random.default_rng(3).random((trials, n)) < 0.5).astype(np.float64)
    low, high = betting_interval(values, delta, 1.0)
    centre, half = (low + high) / 2, scale * (high - low) / 2
    gap = np.abs(centre - 0.5)
    held, slack = gap <= half, half - gap
    result = run_coverage(lambda _rng, _count: (held, slack), delta=delta, trials=trials,
                          seed=3, alpha=ALPHA, vectorized=True)
    return coverage_claim("T8 betting_interval (two-point law, p = 1/2, n = 50)", result,
                          _critical_factor(gap / half, delta), float(slack.min()),
                          {"n": n, "delta": delta, "mean_width": float((high - low).mean())},
                          [_met("values i.i.d. in [0, 1], drawn in order", True)])


def _plugin_half_singleton(zeros: np.ndarray, tokens: int) -> np.ndarray:
    """Plug-in entropy (bits) of ``tokens`` draws holding ``zeros`` zeros and distinct others."""
    share = np.asarray(zeros, float) / tokens
    with np.errstate(divide="ignore", invalid="ignore"):
        zero = np.where(share > 0, -share * np.log2(share), 0.0)
    return zero + (1 - share) * math.log2(tokens)


def _expected_plugin_half_singleton(tokens: int) -> float:
    """``E Ĥ`` (bits) of ``tokens`` i.i.d. draws: 0 w.p. 1/2, else a never-repeated symbol."""
    k = np.arange(tokens + 1)
    return float(np.sum(scipy_stats.binom.pmf(k, tokens, 0.5)
                        * _plugin_half_singleton(k, tokens)))


def _t4(trials: int, length: int, scale: float = 1.0, delta: float = 0.001,
        sequences: int = 2000) -> dict:
    """``sequences`` i.i.d. sequences of ``length`` equal tokens (``length = 1``: i.i.d.
    tokens; ``> 1``: the strongest within-sequence dependence), each sequence's symbol
    from the half-singleton law; the plug-in over the ``N m`` tokens equals the plug-in
    over the ``N`` sequences, while McDiarmid charges one sequence ``m h_b(1/(N m))``."""
    truth = _expected_plugin_half_singleton(sequences)
    rng = np.random.default_rng(6 + length)
    radius = None
    # The real function on a few full samples: its radius, and its plug-in agreeing with
    # the closed form in the count of zeros (fresh 62-bit symbols never repeat).
    for _ in range(20):
        zeros = rng.random(sequences) < 0.5
        first = np.where(zeros, 0, rng.integers(1, 2 ** 62, size=sequences))
        floor = marginal_entropy_floor(np.repeat(first, length)[:, None], delta,
                                       tokens_per_sequence=length)
        if not math.isclose(floor.plugin_sum,
                            float(_plugin_half_singleton(zeros.sum(), sequences)),
                            rel_tol=1e-9, abs_tol=1e-9):
            raise RuntimeError("marginal_entropy_floor: plug-in entropy disagrees with the "
                               "closed form on half-singleton sequences")
        radius = scale * floor.deviation
    plugin = _plugin_half_singleton(rng.binomial(sequences, 0.5, size=trials), sequences)
    held, slack = plugin - radius <= truth, truth - (plugin - radius)
    result = run_coverage(lambda _rng, _count: (held, slack), delta=delta, trials=trials,
                          seed=6 + length, alpha=ALPHA, vectorized=True)
    name = ("half-singleton law, M = 2000" if length == 1 else
            f"sequences of {length} equal tokens, N = {sequences}")
    hypothesis = ("tokens i.i.d. (m = 1)" if length == 1 else
                  "sequences i.i.d.; tokens inside a sequence dependent (here: equal)")
    return coverage_claim(f"T4 marginal_entropy_floor ({name})", result,
                          _critical_factor((plugin - truth) / radius, delta),
                          float(slack.min()),
                          {"sequences": sequences, "tokens_per_sequence": length,
                           "delta": delta, "truth": "E[plug-in]", "expected_plugin": truth,
                           "radius": radius}, [_met(hypothesis, True)])


def _t4_half_singleton(trials: int, scale: float = 1.0) -> dict:
    """T4 on i.i.d. half-singleton tokens (module docstring)."""
    return _t4(trials, 1, scale)


def _t4_copies(trials: int, scale: float = 1.0) -> dict:
    """T4 on sequences of 2 equal half-singleton tokens (module docstring)."""
    return _t4(trials, 2, scale)


def _t3(cases: int) -> dict:
    """H(S) and Σ_j H(S_j) below the joint and diagonal T3 bounds on exact integer vectors."""
    from .claims import make_claim

    rng = np.random.default_rng(11)
    held, slack = [], []
    for _ in range(cases):
        sources = tuple(QuantizedScalar(str(rng.choice(["gaussian", "laplace"])),
                                        scale=float(rng.uniform(0.5, 3.0)), step=1.0)
                        for _ in range(3))
        vector = UnimodularVector(sources, random_unimodular(3, rng, mixes=3, magnitude=1))
        steps = rng.uniform(0.05, 2.0, 3)
        cov = vector.covariance * np.outer(steps, steps)
        joint = gaussian_logdet_bound(cov, steps)
        diagonal = gaussian_logdet_bound(cov, steps, diagonal=True)
        held.append(vector.entropy_bits <= joint and vector.marginal_entropy_bits <= diagonal)
        slack.append(min(joint - vector.entropy_bits, diagonal - vector.marginal_entropy_bits))
    failures = cases - sum(held)
    numbers = {"cases": cases, "violations": failures, "min_slack": float(np.min(slack)),
               "mean_slack": float(np.mean(slack))}
    text = (f"bound held in {sum(held)} of {cases} exact cases (min slack "
            f"{numbers['min_slack']:.3f} bits, mean {numbers['mean_slack']:.3f})")
    return make_claim("coverage[T3 gaussian_logdet_bound (exact integer vectors)]",
                      [1] * failures, numbers, True, text, text, kind="theorem",
                      hypotheses=[_met("exact entropies (unimodular integer vectors)", True)])


#: T7's stated error where its hypotheses hold (quadratic loss, steps <= σ/2): bits/channel.
T7_TOLERANCE_BITS = 0.02


def _gaussian_cell_error(sigma: float, step: float) -> float:
    """Exact ``E[(Y - step·round(Y/step))²]`` for ``Y ~ N(0, sigma²)`` (sum over cells)."""
    cells = np.arange(-int(12 * sigma / step) - 2, int(12 * sigma / step) + 3)
    a, b, c = (cells - 0.5) * step / sigma, (cells + 0.5) * step / sigma, cells * step
    norm = scipy_stats.norm
    mass = norm.cdf(b) - norm.cdf(a)
    first = sigma * (norm.pdf(a) - norm.pdf(b))
    second = sigma ** 2 * (mass - (b * norm.pdf(b) - a * norm.pdf(a)))
    return float(np.sum(second - 2 * c * first + c ** 2 * mass))


def _t7(cases: int, fisher_scale: float = 1.0) -> dict:
    """T7's predicted rate against the exact rate where its hypotheses hold exactly.

    Each case: 4 Gaussian channels ``Y_j ~ N(0, σ_j²)``, a quadratic distortion
    ``ΔCE = ½ Σ_j F_j e_j²`` (so the Fisher diagonal is exact), steps allocated
    by T7 (``F_j Δ_j²`` equal, every ``Δ_j <= σ_j / 2``). The exact rate is
    ``Σ_j H(round(Y_j / Δ_j))`` (:func:`rdgap.bounds.quantized_entropy`), the
    exact ΔCE is summed over the quantizer's cells; the prediction is
    :func:`rdgap.bounds.predicted_rate_curve` at that ΔCE with the Fisher
    diagonal times ``fisher_scale`` (1: the real one; 4 is the defect a
    Fisher estimated 4× too large would be). PASS when every case's error is
    within :data:`T7_TOLERANCE_BITS` per channel.
    """
    from .claims import make_claim

    rng = np.random.default_rng(12)
    errors = []
    for _ in range(cases):
        sigma = rng.uniform(0.5, 4.0, 4)
        fisher = rng.uniform(0.2, 5.0, 4)
        ratio = rng.uniform(0.05, 0.5)                  # the largest Δ_j / σ_j
        theta = float(np.min((ratio * sigma) ** 2 * fisher))  # F_j Δ_j² for all j
        steps = np.sqrt(theta / fisher)
        exact_rate = sum(quantized_entropy("gaussian", s, d) for s, d in zip(sigma, steps))
        delta_ce = 0.5 * sum(f * _gaussian_cell_error(s, d)
                             for f, s, d in zip(fisher, sigma, steps))
        entropies = 0.5 * np.log2(2 * math.pi * math.e * sigma ** 2)
        predicted = float(predicted_rate_curve(entropies, fisher_scale * fisher, delta_ce))
        errors.append((predicted - exact_rate) / 4)
    errors = np.abs(np.array(errors))
    worst = float(errors.max())
    failures = [1] if worst > T7_TOLERANCE_BITS else []
    text = (f"T7 predicted rate within {worst:.2g} bits/channel of the exact rate in "
            f"{cases} cases (stated error {T7_TOLERANCE_BITS})")
    return make_claim("prediction[T7 predicted_rate_curve (quadratic ΔCE, Gaussian channels)]",
                      failures, {"cases": cases, "max_error_bits_per_channel": worst,
                                 "mean_error_bits_per_channel": float(errors.mean()),
                                 "tolerance": T7_TOLERANCE_BITS, "fisher_scale": fisher_scale},
                      True, text, text + ": prediction off", kind="prediction",
                      hypotheses=[_met("quadratic distortion with the Fisher diagonal as its "
                                       "weights; high resolution (steps <= σ/2)", True)])


def _met(text: str, met: bool | None) -> dict:
    return {"text": text, "met": met}


def coverage_claims(quick: bool = True, delta: float = 0.05) -> list[dict]:
    """Re-run the synthetic coverage experiments of the bounds as claims.

    Parameters
    ----------
    quick : bool
        40 exact T3 cases (otherwise 150). The other experiments always run
        20,000 trials (draws of a count: under a second in all), the betting
        interval 10,000 drawn sequences (about 1.5 s).
    delta : float
        Miscoverage of the T8 Hoeffding and Bernstein runs (the T4 runs use
        0.001, see the module docstring).

    Returns
    -------
    list of dict
        One gating claim per experiment (module docstring).
    """
    if not isinstance(quick, bool):
        raise ValueError(f"quick: expected True or False, got {quick!r}")
    return [_hoeffding(20_000, delta), _bernstein(20_000, delta),
            _t4_half_singleton(20_000),
            _t4_copies(20_000), _t3(40 if quick else 150), _t7(20 if quick else 60),
            _betting(10_000, delta)]
