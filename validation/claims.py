r"""The named claims of ``rdgap validate``: PASS or FAIL, with the numbers behind them.

Every claim is a dict ``{"name", "status": "PASS" | "FAIL", "numbers": {...},
"reason": str, "gates": bool}``; ``gates`` says whether a FAIL should make the
run fail (the lead decides; correlation claims do not gate, see below). The
input is the ``results.json`` document: ``results["runs"]`` rows with
``row["statistics"]`` from :func:`rdgap.validation.statistics.codec_statistics`
(merged with :func:`~rdgap.validation.statistics.split_statistics`), and
optionally ``results["coverage"]``, a list of claims from :func:`coverage_claims`.
All rates are bits per token. Claims are made per architecture.

``rate_within_bounds[ARCH]`` (gates)
    For every row whose codec has symbols: ``[lo, hi]`` is the row's T8
    interval ``rate_interval`` (the measured rate itself when there is none).
    A *factorized* codec FAILs when ``hi < t4_marginal_floor_lower`` (even the
    most favourable reading of the rate is below the proven floor, T4) or when
    ``lo > t3_logdet_diag + T2`` (even the least favourable reading is above
    the diagonal log-det bound, T3). A *joint* codec is checked against the
    upper side only; a *generic* one (zstd of the symbols, no likelihood
    model) is held to neither. ``T2 = 0.005 · t3_logdet_diag + (64 + header) / m``:
    the working form of :mod:`rdgap.codecs.ans` (0.5 % plus 64 bits per stream)
    and the container header, per token. ``inside_point`` also records
    whether the measured rate itself lies between the Miller–Madow floor and
    the upper limit (information, not the criterion). Caveat: the T3
    diagonal bound caps the *best* factorized discretised Gaussian; a codec
    fitted on other documents, or of another family, can exceed it — which
    is exactly what the claim is there to catch.
``t2_actual_vs_estimated[ARCH]`` (gates)
    Every stream of every row with a likelihood model kept T2's working form
    (``t2_violations == 0``).
``t9_generalisation[ARCH]`` (gates)
    For every row with both: the held-out rate (likelihood estimate on eval
    documents, ``t9_eval_rate``) ``<= t9_generalization_bound`` (from the fit
    rate, T9). A point comparison: the bound is on the expected rate and the
    held-out mean estimates it without bias.
``correlation[ARCH, STATISTIC]`` (does not gate)
    Across the splits of the architecture, pooled over its codecs after
    standardising each codec's rates and statistics across its splits
    (:data:`POOLED`), Pearson and Spearman correlation of the rate with the
    statistic and percentile bootstrap CIs (:func:`correlations`, which also
    lists each codec on its own). PASS when the
    Spearman CI lies above 0 (the paper's direction: a higher statistic, a
    higher rate) and ``n >= 4``. It does not gate: with a handful of splits
    the CI is wide, and the paper's claim is empirical, not a theorem.
Coverage (``coverage[...]``, gates)
    :func:`coverage_claims` re-runs the synthetic coverage experiments of the
    bounds (T3, T4, T8, T9): each PASSes when an exact one-sided binomial test
    at level ``alpha = 0.01`` does not reject ``coverage >= 1 - delta``
    (:mod:`rdgap.validation.coverage`), and the T3 claim when the bound held
    in every case.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as scipy_stats

from rdgap.bounds import (empirical_bernstein_interval, empirical_rademacher_linf,
                          gaussian_logdet_bound, hoeffding_radius, marginal_entropy_floor,
                          massart_linf_bound, rademacher_generalization_bound)
from rdgap.codecs import ans

from .coverage import run_coverage
from .synthetic import UnimodularVector, QuantizedScalar, random_unimodular

#: Statistics correlated with the rate (all expected to rise with it).
STATISTICS = ("t3_logdet_full", "t3_logdet_diag", "t3_dependency_headroom",
              "t4_marginal_floor", "t9_rademacher_mc", "t9_rademacher_massart",
              "t10_entropy_model_lipschitz", "t10_prefix_jacobian", "t7_predicted_rate")
MIN_CORRELATION_ROWS = 4
CONFIDENCE = 0.95
ALPHA = 0.01


def _claim(name: str, failures: list, numbers: dict, gates: bool, passed: str,
           failed: str) -> dict:
    status = "FAIL" if failures else "PASS"
    return {"name": name, "status": status, "numbers": numbers, "gates": gates,
            "reason": failed if failures else passed}


def runs_by_architecture(results: dict) -> dict[str, list[dict]]:
    """The rows of ``results['runs']`` grouped by their ``architecture``."""
    runs = results.get("runs")
    if not isinstance(runs, list):
        raise ValueError("results: expected a dict with a list 'runs' (the results.json "
                         "document)")
    groups: dict[str, list[dict]] = {}
    for row in runs:
        groups.setdefault(str(row.get("architecture")), []).append(row)
    return groups


def _number(value, digits: int = 1) -> str:
    return "none" if value is None else f"{value:.{digits}f}"


def _where(row: dict) -> str:
    level = f" {row['level']}" if row.get("level") else ""
    return f"split {row.get('split')} {row.get('codec')}{level}"


# ----------------------------------------------------------------- bounds on rates
def _rate_check(row: dict) -> dict | None:
    s = row.get("statistics") or {}
    kind, diag = s.get("entropy_model"), s.get("t3_logdet_diag")
    if kind not in ("factorized", "joint") or diag is None:
        return None
    rate = float(s.get("rate_actual", row.get("bits_per_token_actual")))
    low, high = s.get("rate_interval") or (rate, rate)
    tokens = int(s.get("tokens_per_window") or 1)
    header = float(row.get("container_bits_per_token") or 0.0)
    upper = diag + ans.RELATIVE_OVERHEAD * diag + ans.STREAM_OVERHEAD_BITS / tokens + header
    floor = s.get("t4_marginal_floor_lower") if kind == "factorized" else None
    fails_upper = low > upper
    fails_lower = floor is not None and high < floor
    point_floor = s.get("t4_marginal_floor") if kind == "factorized" else None
    return {"where": _where(row), "entropy_model": kind, "rate": rate,
            "rate_interval": [low, high], "floor_lower": floor, "upper_limit": upper,
            "t3_logdet_diag": diag, "fails": bool(fails_upper or fails_lower),
            "fails_upper": bool(fails_upper), "fails_lower": bool(fails_lower),
            "inside_point": bool(rate <= upper and (point_floor is None or rate >= point_floor)),
            "informative": bool(s.get("rate_interval_informative"))}


def _rate_claim(architecture: str, rows: list[dict]) -> dict | None:
    checks = [c for c in map(_rate_check, rows) if c is not None]
    if not checks:
        return None
    failures = [c for c in checks if c["fails"]]
    detail = "; ".join(f"{c['where']}: rate {c['rate']:.1f} in [{c['rate_interval'][0]:.1f}, "
                       f"{c['rate_interval'][1]:.1f}] vs floor {_number(c['floor_lower'])} "
                       f"and upper {c['upper_limit']:.1f}" for c in failures[:5])
    informative = sum(c["informative"] for c in checks)
    inside = sum(c["inside_point"] for c in checks)
    note = (f"; T8 intervals narrower than the rate in {informative} of {len(checks)} rows, "
            f"measured rate itself inside [Miller-Madow floor, upper] in {inside}")
    return _claim(f"rate_within_bounds[{architecture}]", failures,
                  {"rows": len(checks), "failures": len(failures), "inside_point": inside,
                   "informative_intervals": informative, "checks": checks},
                  True, f"all {len(checks)} rates lie within their T4 floor / T3 diagonal "
                        f"bound, allowing T2 and T8 slack{note}",
                  f"{len(failures)} of {len(checks)} rates outside their interval: {detail}"
                  f"{note}")


def _t2_claim(architecture: str, rows: list[dict]) -> dict | None:
    checked = [r for r in rows if r.get("t2_violations") is not None]
    if not checked:
        return None
    failures = [r for r in checked if r["t2_violations"] > 0]
    return _claim(f"t2_actual_vs_estimated[{architecture}]", failures,
                  {"rows": len(checked), "streams_violating": int(sum(r["t2_violations"]
                                                                      for r in checked)),
                   "rows_violating": [_where(r) for r in failures]},
                  True, f"every stream of {len(checked)} rows within bytes <= 1.005 × "
                        f"estimate + 64 bits (T2)",
                  f"T2 broken by {sum(r['t2_violations'] for r in failures)} streams in "
                  f"{', '.join(_where(r) for r in failures[:5])}")


def _t9_claim(architecture: str, rows: list[dict]) -> dict | None:
    checks = []
    for row in rows:
        s = row.get("statistics") or {}
        if s.get("t9_generalization_bound") is None or s.get("t9_eval_rate") is None:
            continue
        checks.append({"where": _where(row), "fit_rate": s.get("t9_fit_rate"),
                       "eval_rate": s["t9_eval_rate"], "bound": s["t9_generalization_bound"],
                       "holds": bool(s["t9_eval_rate"] <= s["t9_generalization_bound"])})
    if not checks:
        return None
    failures = [c for c in checks if not c["holds"]]
    return _claim(f"t9_generalisation[{architecture}]", failures,
                  {"rows": len(checks), "failures": len(failures), "checks": checks},
                  True, f"held-out rate <= T9 bound from the fit rate in all {len(checks)} rows",
                  "held-out rate above the T9 bound in " + "; ".join(
                      f"{c['where']} ({c['eval_rate']:.1f} > {c['bound']:.1f})"
                      for c in failures[:5]))


# ----------------------------------------------------------------- correlations
def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair (nan where a row is constant)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((xc ** 2).sum(-1) * (yc ** 2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (xc * yc).sum(-1) / denominator, np.nan)


def bootstrap_correlation(x, y, n_boot: int = 2000, seed: int = 0,
                          confidence: float = CONFIDENCE) -> dict:
    """Pearson and Spearman correlation with percentile bootstrap CIs (pairs resampled).

    Resamples in which either variable is constant are dropped (their
    correlation is undefined); ``n_boot_valid`` counts the rest.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 3:
        raise ValueError(f"x, y: expected two 1-D arrays of equal length >= 3, got shapes "
                         f"{x.shape} and {y.shape}")
    if int(n_boot) < 10:
        raise ValueError(f"n_boot: expected at least 10 resamples, got {n_boot!r}")
    index = np.random.default_rng(seed).integers(0, x.size, size=(int(n_boot), x.size))
    xs, ys = x[index], y[index]
    pearson = _pearson_rows(xs, ys)
    spearman = _pearson_rows(scipy_stats.rankdata(xs, axis=1), scipy_stats.rankdata(ys, axis=1))
    tail = 100 * (1 - confidence) / 2

    def ci(values):
        values = values[np.isfinite(values)]
        return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))] \
            if values.size else [None, None]

    point_p = float(_pearson_rows(x, y))
    point_s = float(_pearson_rows(scipy_stats.rankdata(x), scipy_stats.rankdata(y)))
    return {"n": int(x.size), "pearson": None if math.isnan(point_p) else point_p,
            "pearson_ci": ci(pearson), "spearman": None if math.isnan(point_s) else point_s,
            "spearman_ci": ci(spearman), "confidence": confidence, "n_boot": int(n_boot),
            "n_boot_valid": int(np.isfinite(spearman).sum())}


POOLED = "pooled (within codec, standardised)"


def _standardised(values: np.ndarray) -> np.ndarray | None:
    spread = values.std()
    return None if spread == 0 else (values - values.mean()) / spread


def correlations(results: dict, n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """Per architecture, the rate against each statistic across splits.

    For each statistic, two kinds of record: one per codec (``group`` =
    ``"CODEC LEVEL"``), over that codec's rows at the different splits; and
    one ``group = POOLED`` over all codecs, where each codec's rates and
    statistics are first standardised across its splits (so the correlation
    measures how rate and statistic move together from split to split, not
    the offsets between codecs). The rate is ``bits_per_token_actual``;
    only codecs with symbols (``entropy_model`` not None) take part: the
    rates of fp16, absmax integers and zstd of fp16 are not set by these
    statistics (their split-level figures, such as the prefix Jacobian,
    would otherwise pair with a rate that is constant or lossless). Pearson and
    Spearman with percentile bootstrap CIs (rows resampled,
    :func:`bootstrap_correlation`). A record needs 3 rows and a statistic that
    is not constant.

    Returns
    -------
    list of dict
        ``{"architecture", "statistic", "group", "n", "pearson", "pearson_ci",
        "spearman", "spearman_ci", "confidence", "n_boot", "n_boot_valid",
        "direction": "positive"}``.
    """
    out = []
    for architecture, rows in runs_by_architecture(results).items():
        for name in STATISTICS:
            groups, pooled = statistic_pairs(rows, name)
            for key, (x, y) in groups.items():
                if x.size >= 3 and np.ptp(x) > 0:
                    out.append({"architecture": architecture, "statistic": name, "group": key,
                                "direction": "positive"}
                               | bootstrap_correlation(x, y, n_boot=n_boot, seed=seed))
            if pooled[0].size >= 3:
                out.append({"architecture": architecture, "statistic": name, "group": POOLED,
                            "direction": "positive"}
                           | bootstrap_correlation(*pooled, n_boot=n_boot, seed=seed))
    return out


def statistic_pairs(rows: list[dict], name: str):
    """``(statistic, rate)`` arrays per codec group, and pooled within-codec z-scores.

    Only rows of codecs with symbols (``entropy_model`` not None) take part.
    Returns ``({"CODEC LEVEL": (x, y)}, (x_pooled, y_pooled))``.
    """
    groups: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        s = r.get("statistics") or {}
        if s.get(name) is not None and r.get("bits_per_token_actual") is not None \
                and s.get("entropy_model") is not None:
            key = f"{r.get('codec')} {r.get('level') or ''}".strip()
            groups.setdefault(key, []).append((float(s[name]), float(r["bits_per_token_actual"])))
    arrays = {key: tuple(np.array(pairs).T) for key, pairs in groups.items()}
    pooled = [(_standardised(x), _standardised(y)) for x, y in arrays.values() if x.size >= 2]
    pooled = [(x, y) for x, y in pooled if x is not None and y is not None]
    if not pooled:
        return arrays, (np.empty(0), np.empty(0))
    return arrays, (np.concatenate([x for x, _ in pooled]), np.concatenate([y for _, y in pooled]))


def _correlation_claim(record: dict) -> dict:
    low = record["spearman_ci"][0]
    enough = record["n"] >= MIN_CORRELATION_ROWS
    passed = enough and low is not None and low > 0
    name = f"correlation[{record['architecture']}, {record['statistic']}]"
    numbers = {k: record[k] for k in ("group", "n", "pearson", "pearson_ci", "spearman",
                                       "spearman_ci", "confidence", "n_boot")}
    if passed:
        reason = (f"Spearman {record['spearman']:.2f}, {record['confidence']:.0%} CI "
                  f"[{low:.2f}, {record['spearman_ci'][1]:.2f}] above 0 over {record['n']} rows")
    elif not enough:
        reason = f"only {record['n']} rows (need {MIN_CORRELATION_ROWS})"
    else:
        reason = (f"Spearman {_number(record['spearman'], 2)}, CI {record['spearman_ci']} "
                  f"does not lie above 0 over {record['n']} rows")
    return _claim(name, [] if passed else [record], numbers, False, reason, reason)


def evaluate_claims(results: dict, n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """Every claim of the module docstring, for a ``results.json`` document.

    Parameters
    ----------
    results : dict
        With ``runs`` (rows carrying ``statistics``) and optionally
        ``coverage`` (a list of claims from :func:`coverage_claims`, passed on).
    n_boot, seed : int
        Bootstrap resamples and seed of the correlation claims.

    Returns
    -------
    list of dict
        ``{"name", "status", "numbers", "reason", "gates"}`` each.
    """
    claims = []
    for architecture, rows in runs_by_architecture(results).items():
        for make in (_rate_claim, _t2_claim, _t9_claim):
            claim = make(architecture, rows)
            if claim is not None:
                claims.append(claim)
    claims += [_correlation_claim(r) for r in correlations(results, n_boot=n_boot, seed=seed)
               if r["group"] == POOLED]
    coverage = results.get("coverage") or []
    if not isinstance(coverage, list) or not all(isinstance(c, dict) and "status" in c
                                                 for c in coverage):
        raise ValueError("results: 'coverage' must be a list of claims (from coverage_claims)")
    return claims + coverage


# ----------------------------------------------------------------- synthetic coverage
def _coverage_claim(name: str, result, numbers: dict | None = None) -> dict:
    numbers = {"trials": result.trials, "hits": result.hits, "coverage": result.coverage,
               "target": result.target, "p_value": result.p_value, "alpha": result.alpha,
               "mean_slack": None if math.isnan(result.mean_slack) else result.mean_slack} \
        | (numbers or {})
    text = (f"coverage {result.hits}/{result.trials} = {result.coverage:.4f} vs target "
            f"{result.target:.2f} (exact binomial p = {result.p_value:.3g}, alpha {result.alpha})")
    return _claim(f"coverage[{name}]", [1] if result.contradicted else [], numbers, True,
                  text + ": not contradicted", text + ": coverage significantly below target")


_P = np.array([0.4, 0.3, 0.2, 0.1])
_MODELS = np.array([[0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4],
                    [0.5, 0.2, 0.2, 0.1]])
_SYMBOLS_PER_SEQUENCE = 8


def _sequences(rng, shape, models=_MODELS):
    """Code lengths under each model of i.i.d. sequences of 8 symbols from ``_P``."""
    lengths = -np.log2(models)
    counts = rng.multinomial(_SYMBOLS_PER_SEQUENCE, _P, size=shape)
    return counts @ lengths.T, _SYMBOLS_PER_SEQUENCE * lengths @ _P, \
        _SYMBOLS_PER_SEQUENCE * float(lengths.max())


def _t8_claims(trials: int, delta: float) -> list[dict]:
    n = 200

    def hoeffding(rng, count):
        values, truth, bound = _sequences(rng, (count, n), _MODELS[1:2])
        gap = np.abs(values[..., 0].mean(axis=1) - truth[0])
        radius = hoeffding_radius(n, delta, bound)
        return gap <= radius, radius - gap

    def bernstein(rng, count):
        values, truth, bound = _sequences(rng, (count, n), _MODELS[0:1])
        low, high = empirical_bernstein_interval(values[..., 0], delta, bound)
        return (low <= truth[0]) & (truth[0] <= high), np.minimum(high - truth[0],
                                                                  truth[0] - low)

    return [_coverage_claim(name, run_coverage(draw, delta=delta, trials=trials, seed=seed,
                                               alpha=ALPHA, vectorized=True), {"n": n})
            for seed, (name, draw) in enumerate((("T8 hoeffding_radius", hoeffding),
                                                  ("T8 empirical_bernstein_interval",
                                                   bernstein)), start=1)]


def _t9_claims(trials: int, delta: float) -> list[dict]:
    n = 300

    def uniform(rng, monte_carlo: bool):
        values, truth, bound = _sequences(rng, n)
        if monte_carlo:
            complexity = empirical_rademacher_linf(values, n_draws=100, delta=delta,
                                                   seed=int(rng.integers(2 ** 31))).upper
        else:
            complexity = massart_linf_bound(values)
        level = delta / 2 if monte_carlo else delta
        margin = rademacher_generalization_bound(values.mean(axis=0), complexity, n, level,
                                                 bound) - truth
        return bool(np.all(margin >= 0)), float(margin.min())

    return [_coverage_claim(f"T9 rademacher_generalization_bound ({label})",
                            run_coverage(lambda rng, mc=mc: uniform(rng, mc), delta=delta,
                                         trials=trials, seed=seed, alpha=ALPHA), {"n": n})
            for seed, (label, mc) in enumerate((("Massart", False), ("Monte Carlo", True)),
                                               start=3)]


def _t4_claim(trials: int, delta: float) -> dict:
    """Sequences of 4 tokens, channels = (state, state mod 2) of a 4-state Markov chain."""
    rng = np.random.default_rng(7)
    transition = 0.5 * np.eye(4) + 0.5 * rng.dirichlet(np.ones(4), size=4)
    stationary = np.linalg.matrix_power(transition, 200)[0]
    truth = float(scipy_stats.entropy(stationary, base=2)
                  + scipy_stats.entropy([stationary[0] + stationary[2],
                                         stationary[1] + stationary[3]], base=2))
    sequences, length = 300, 4

    def draw(rng):
        states = np.empty((sequences, length), dtype=np.int64)
        states[:, 0] = rng.choice(4, size=sequences, p=stationary)
        for t in range(1, length):
            cumulative = transition[states[:, t - 1]].cumsum(axis=1)
            states[:, t] = (rng.random((sequences, 1)) > cumulative).sum(axis=1)
        flat = states.reshape(-1)
        floor = marginal_entropy_floor(np.stack([flat, flat % 2], axis=1), delta,
                                       tokens_per_sequence=length)
        return floor.lower_bound <= truth, truth - floor.lower_bound

    return _coverage_claim("T4 marginal_entropy_floor (Markov sequences)",
                           run_coverage(draw, delta=delta, trials=trials, seed=5, alpha=ALPHA),
                           {"sequences": sequences, "tokens_per_sequence": length})


def _t3_claim(cases: int) -> dict:
    """H(S) and Σ_j H(S_j) below the joint and diagonal T3 bounds on exact integer vectors."""
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
        slack.append(joint - vector.entropy_bits)
    failures = cases - sum(held)
    numbers = {"cases": cases, "violations": failures, "mean_slack": float(np.mean(slack))}
    text = f"bound held in {sum(held)} of {cases} exact cases (mean slack " \
           f"{numbers['mean_slack']:.3f} bits)"
    return _claim("coverage[T3 gaussian_logdet_bound (exact integer vectors)]",
                  [1] * failures, numbers, True, text, text)


def coverage_claims(quick: bool = True, delta: float = 0.05) -> list[dict]:
    """Re-run the synthetic coverage experiments of the bounds as claims.

    Parameters
    ----------
    quick : bool
        1,000 trials per experiment (the minimum of
        :func:`~rdgap.validation.coverage.run_coverage`) and 40 T3 cases,
        a few seconds; otherwise 3,000 trials and 150 cases.
    delta : float
        Miscoverage the bounds are run at.

    Returns
    -------
    list of dict
        One claim per experiment: T8 Hoeffding and empirical Bernstein
        intervals, the T9 uniform bound with Massart's and the Monte Carlo
        complexity, the T4 floor on dependent (Markov) sequences, and the T3
        log-det bounds on integer vectors with exactly known entropy.
    """
    if not isinstance(quick, bool):
        raise ValueError(f"quick: expected True or False, got {quick!r}")
    trials = 1000 if quick else 3000
    return (_t8_claims(trials, delta) + _t9_claims(trials, delta)
            + [_t4_claim(trials, delta), _t3_claim(40 if quick else 150)])
