r"""The named claims of ``rdgap validate``: PASS or FAIL, with the numbers behind them.

Every claim is a dict ``{"name", "status": "PASS" | "FAIL", "numbers": {...},
"reason": str, "gates": bool, "kind": str}``; ``gates`` says whether a FAIL
makes the run fail, ``kind`` what sort of statement it is (:data:`KINDS`):
a *theorem* check can fail only on a bug or a miscounted byte; a
*prediction* of a bound can fail on real data without a bug, and that is
what makes it informative; a PAC *bound* gates only where it is informative;
a *correlation* is reported and never gates. The input is the
``results.json`` document: ``results["runs"]`` rows with
``row["statistics"]`` from :func:`rdgap.validation.statistics.codec_statistics`
(merged with :func:`~rdgap.validation.statistics.split_statistics`), and
optionally ``results["coverage"]``, a list of claims from :func:`coverage_claims`.
All rates are bits per token. Claims are made per architecture.

``gibbs_sample_floor[ARCH]`` (theorem, gates)
    For every factorized row whose symbols are the codec's own:
    ``gibbs_sample_estimated >= gibbs_sample_floor`` — the codec's
    likelihood estimate of the symbols it coded is at least their plug-in
    marginal entropies (Gibbs on the sample's empirical distribution, per
    channel and per table: one table for position 0 and one for positions
    >= 1, shared by all windows; see the statistics module). Slack: only
    :data:`GIBBS_RELATIVE_TOLERANCE` for floating-point rounding.
``t2_actual_vs_estimated[ARCH]`` (theorem, gates)
    Every stream of every row with a likelihood model kept T2's working form
    (``t2_violations == 0``).
``rate_within_bounds[ARCH]`` (prediction, gates)
    At the *measured* rate of every row whose codec has symbols (not at an
    end of its T8 interval): a *factorized* or *joint* codec FAILs when
    ``rate > t3_logdet_diag + T2`` with ``T2 = 0.005 · t3_logdet_diag +
    (64 + header) / m`` (the working form of :mod:`rdgap.codecs.ans` and the
    container header, per token): the T3 diagonal bound caps the *best*
    factorized discretised Gaussian at the codec's steps on these very
    documents, so a codec fitted on other documents, or of another family,
    can exceed it — that is a real prediction, which the claim checks. A
    factorized codec also FAILs when its rate is below ``gibbs_sample_floor``
    (for the estimate that is the theorem above; the stream's bytes add
    header and flush, and constriction's start-up saving has no proven
    constant, :mod:`rdgap.codecs.ans`). A *generic* codec (zstd of the
    symbols) is held to neither. The T8 interval, whether it is informative
    and the documents it would need (``t8_documents_needed``) are reported
    in the numbers, not used as the criterion: with N = 32 documents and the
    format's worst case as range it is thousands of bits wide.
``t9_generalisation[ARCH]`` (PAC bound; gates only where informative)
    For every row with both: the held-out rate (likelihood estimate on eval
    documents, ``t9_eval_rate``) ``<= t9_generalization_bound`` (from the fit
    rate, T9). A point comparison: the bound is on the expected rate and the
    held-out mean estimates it without bias. A bound far above any rate
    cannot fail, so the claim gates only when at least one row's bound lies
    within 10 % of its fit rate (``t9_informative``); the numbers say the
    range term and the fit documents that would make it informative.
``correlation[ARCH, STATISTIC]`` (correlation, does not gate)
    Across the splits of the architecture, pooled over its codecs after
    standardising each codec's rates and statistics across its splits
    (:data:`POOLED`), Pearson and Spearman correlation of the rate with the
    statistic and percentile bootstrap CIs (:func:`correlations`, which also
    lists each codec on its own). PASS when the
    Spearman CI lies above 0 (the paper's direction: a higher statistic, a
    higher rate) and ``n >= 4``. It does not gate: with a handful of splits
    the CI is wide, and the paper's claim is empirical, not a theorem.
Coverage (``coverage[...]``, theorem checks on synthetic sources, gate)
    :func:`coverage_claims` re-runs the synthetic coverage experiments of the
    bounds (T3, T4 with documents and with i.i.d. tokens as the unit, T8,
    T9): each PASSes when an exact one-sided binomial test
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


#: What a claim is (``claim["kind"]``), as the report's claims table says it.
KINDS = {"theorem": "theorem check (fails only on a bug)",
         "coverage": "theorem check on synthetic sources (coverage)",
         "prediction": "prediction of a bound (can fail on real data)",
         "bound": "PAC bound (gates only where informative)",
         "correlation": "correlation (reported, does not gate)"}


def _claim(name: str, failures: list, numbers: dict, gates: bool, passed: str,
           failed: str, kind: str) -> dict:
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {tuple(KINDS)}, got {kind!r}")
    status = "FAIL" if failures else "PASS"
    return {"name": name, "status": status, "numbers": numbers, "gates": gates,
            "reason": failed if failures else passed, "kind": kind}


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
#: Slack of the sample-level Gibbs check: floating-point rounding of sums of ~10^7 terms.
GIBBS_RELATIVE_TOLERANCE = 1e-9


def _checked(checks: list[dict], failures: list[dict], **extra) -> dict:
    """The numbers of a per-row claim: counts, ``extra`` figures, then every check."""
    return {"rows": len(checks), "failures": len(failures)} | extra | {"checks": checks}


def _gibbs_claim(architecture: str, rows: list[dict]) -> dict | None:
    checks = []
    for row in rows:
        s = row.get("statistics") or {}
        floor, estimated = s.get("gibbs_sample_floor"), s.get("gibbs_sample_estimated")
        if floor is None or estimated is None:
            continue
        slack = GIBBS_RELATIVE_TOLERANCE * max(1.0, abs(floor))
        checks.append({"where": _where(row), "plugin_floor": floor, "estimated": estimated,
                       "actual": s.get("gibbs_sample_actual"), "margin": estimated - floor,
                       "windows": s.get("gibbs_sample_windows"),
                       "holds": bool(estimated >= floor - slack)})
    if not checks:
        return None
    failures = [c for c in checks if not c["holds"]]
    smallest = min(c["margin"] for c in checks)
    return _claim(f"gibbs_sample_floor[{architecture}]", failures,
                  _checked(checks, failures, smallest_margin=smallest,
                           relative_tolerance=GIBBS_RELATIVE_TOLERANCE),
                  True, f"in all {len(checks)} factorized rows the likelihood estimate of the "
                        f"coded symbols >= their plug-in marginal entropies (Gibbs on the "
                        f"sample; smallest margin {smallest:.3f} bits/token)",
                  "estimate below the plug-in marginal entropies of its own symbols (a bug: "
                  "Gibbs forbids it) in " + "; ".join(
                      f"{c['where']} ({c['estimated']:.3f} < {c['plugin_floor']:.3f})"
                      for c in failures[:5]), kind="theorem")


def _rate_check(row: dict) -> dict | None:
    s = row.get("statistics") or {}
    kind, diag = s.get("entropy_model"), s.get("t3_logdet_diag")
    if kind not in ("factorized", "joint") or diag is None:
        return None
    rate = float(s.get("rate_actual", row.get("bits_per_token_actual")))
    tokens = int(s.get("tokens_per_window") or 1)
    header = float(row.get("container_bits_per_token") or 0.0)
    upper = diag + ans.RELATIVE_OVERHEAD * diag + ans.STREAM_OVERHEAD_BITS / tokens + header
    floor = s.get("gibbs_sample_floor") if kind == "factorized" else None
    fails_upper = rate > upper
    # the floor's own windows (all of them unless the statistics subsampled)
    fails_lower = floor is not None and float(s.get("gibbs_sample_actual") or rate) < floor
    needed = s.get("t8_documents_needed") or {}
    return {"where": _where(row), "entropy_model": kind, "rate": rate, "floor": floor,
            "estimated": s.get("rate_estimated"),
            "upper_limit": upper, "t3_logdet_diag": diag, "fails": bool(fails_upper or fails_lower),
            "fails_upper": bool(fails_upper), "fails_lower": bool(fails_lower),
            "rate_interval": s.get("rate_interval"),
            "rate_interval_bound": s.get("rate_interval_bound"),
            "informative": bool(s.get("rate_interval_informative")),
            "documents": s.get("documents"),
            "documents_needed_hoeffding": needed.get("hoeffding"),
            "documents_needed_bernstein_projected": needed.get("bernstein_projected")}


def _rate_claim(architecture: str, rows: list[dict]) -> dict | None:
    checks = [c for c in map(_rate_check, rows) if c is not None]
    if not checks:
        return None
    failures = [c for c in checks if c["fails"]]
    detail = "; ".join(f"{c['where']}: rate {c['rate']:.1f} vs floor {_number(c['floor'])} "
                       f"and upper {c['upper_limit']:.1f}" for c in failures[:5])
    informative = sum(c["informative"] for c in checks)
    headroom = min(c["upper_limit"] - c["rate"] for c in checks)
    needed = [c["documents_needed_bernstein_projected"] for c in checks
              if c["documents_needed_bernstein_projected"] is not None]
    note = (f"; smallest headroom below the upper limit {headroom:.1f} bits/token. T8 "
            f"intervals (reported, not the criterion) narrower than the rate in {informative} "
            f"of {len(checks)} rows" + (f"; empirical Bernstein would need about "
                                         f"{min(needed):,}–{max(needed):,} documents for ±10 %"
                                         if needed else ""))
    return _claim(f"rate_within_bounds[{architecture}]", failures,
                  _checked(checks, failures, smallest_headroom=headroom,
                           informative_intervals=informative),
                  True, f"all {len(checks)} measured rates lie below their T3 diagonal bound + "
                        f"T2 allowance (factorized: and above the plug-in marginal entropies "
                        f"of their own symbols){note}",
                  f"{len(failures)} of {len(checks)} measured rates outside [plug-in floor, "
                  f"T3 diagonal + T2]: {detail}{note}", kind="prediction")


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
                  f"{', '.join(_where(r) for r in failures[:5])}", kind="theorem")


def _t9_claim(architecture: str, rows: list[dict]) -> dict | None:
    checks = []
    for row in rows:
        s = row.get("statistics") or {}
        if s.get("t9_generalization_bound") is None or s.get("t9_eval_rate") is None:
            continue
        checks.append({"where": _where(row), "fit_rate": s.get("t9_fit_rate"),
                       "eval_rate": s["t9_eval_rate"], "bound": s["t9_generalization_bound"],
                       "holds": bool(s["t9_eval_rate"] <= s["t9_generalization_bound"]),
                       "informative": bool(s.get("t9_informative")),
                       "documents": s.get("t9_documents"),
                       "range_term": s.get("t9_range_term"),
                       "documents_needed": s.get("t9_documents_needed")})
    if not checks:
        return None
    failures = [c for c in checks if not c["holds"]]
    informative = sum(c["informative"] for c in checks)
    needed = [c["documents_needed"] for c in checks if c["documents_needed"] is not None]
    terms = [c["range_term"] for c in checks if c["range_term"] is not None]
    note = (f"; informative (within 10 % of the fit rate) in {informative} of {len(checks)} "
            f"rows" + ("" if informative else ", so the claim does not gate") +
            (f"; range term 3B·sqrt(ln(2/δ)/2N) = {min(terms):,.0f}–{max(terms):,.0f} "
             f"bits/token with N = {checks[0]['documents']} fit documents; "
             f"{min(needed):,}–{max(needed):,} documents would bring it to 10 % of the "
             f"rate" if terms and needed else ""))
    return _claim(f"t9_generalisation[{architecture}]", failures,
                  _checked(checks, failures, informative_rows=informative),
                  informative > 0,
                  f"held-out rate <= T9 bound from the fit rate in all {len(checks)} rows{note}",
                  "held-out rate above the T9 bound in " + "; ".join(
                      f"{c['where']} ({c['eval_rate']:.1f} > {c['bound']:.1f})"
                      for c in failures[:5]) + note, kind="bound")


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
    return _claim(name, [] if passed else [record], numbers, False, reason, reason,
                  kind="correlation")


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
        for make in (_gibbs_claim, _t2_claim, _rate_claim, _t9_claim):
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
                  text + ": not contradicted", text + ": coverage significantly below target",
                  kind="coverage")


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


def _t4_iid_claim(trials: int, delta: float) -> dict:
    """I.i.d. tokens (the hypothesis of ``t4_marginal_floor_lower_iid``), two channels."""
    pmfs = (np.array([0.5, 0.25, 0.125, 0.125]), np.array([0.7, 0.2, 0.1]))
    truth = float(sum(scipy_stats.entropy(p, base=2) for p in pmfs))
    tokens = 400

    def draw(rng):
        symbols = np.stack([rng.choice(p.size, size=tokens, p=p) for p in pmfs], axis=1)
        floor = marginal_entropy_floor(symbols, delta, tokens_per_sequence=1)
        return floor.lower_bound <= truth, truth - floor.lower_bound

    return _coverage_claim("T4 marginal_entropy_floor (i.i.d. tokens, m = 1)",
                           run_coverage(draw, delta=delta, trials=trials, seed=6, alpha=ALPHA),
                           {"tokens": tokens, "channels": len(pmfs)})


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
                  [1] * failures, numbers, True, text, text, kind="coverage")


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
        complexity, the T4 floor on dependent (Markov) sequences and on i.i.d.
        tokens (``m = 1``, the token-level figure's hypothesis), and the T3
        log-det bounds on integer vectors with exactly known entropy.
    """
    if not isinstance(quick, bool):
        raise ValueError(f"quick: expected True or False, got {quick!r}")
    trials = 1000 if quick else 3000
    return (_t8_claims(trials, delta) + _t9_claims(trials, delta)
            + [_t4_claim(trials, delta), _t4_iid_claim(trials, delta),
               _t3_claim(40 if quick else 150)])
