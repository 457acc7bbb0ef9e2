r"""The named claims of ``rdgap validate``: PASS or FAIL, with the numbers behind them.

Length (≈430 lines): the gating claims that read the result rows, one short function
each, beside the claim registry they share; the coverage, rate-prediction and other-text
claims live in their own modules.

Every claim is a dict ``{"name", "status": "PASS" | "FAIL", "numbers": {...},
"reason": str, "gates": bool, "kind": str, "hypotheses": [{"text", "met"}]}``
(``level_holds_on_other_text`` and the ``correlation`` statistics may say
``"UNDECIDED"``, for want of data, and then do not gate);
``gates`` says whether a FAIL makes the run fail, ``kind`` what sort of
statement it is (:data:`KINDS`), ``hypotheses`` what the statement assumes and
whether this run meets each assumption (``met``: True, False, or None where
the run cannot tell). A claim whose kind is *bound* gates only when every
hypothesis is met, and FAILs when one is known not to be. The input is the
``results.json`` document: ``results["runs"]`` rows with
``row["statistics"]`` from :func:`rdgap.validation.statistics.codec_statistics`
(merged with :func:`~rdgap.validation.statistics.split_statistics`), and
optionally ``results["coverage"]``, a list of claims from :func:`coverage_claims`.
All rates are bits per token. Claims are made per architecture.

Gating claims
-------------
``gibbs_sample_floor[ARCH]`` (theorem)
    For every factorized row whose symbols are the codec's own:
    ``gibbs_sample_estimated >= gibbs_sample_floor`` — the codec's
    likelihood estimate of the symbols it coded is at least their plug-in
    marginal entropies (Gibbs on the sample's empirical distribution, per
    channel and per table). Slack: :data:`GIBBS_RELATIVE_TOLERANCE` only.
``t2_proven_length[ARCH]`` (theorem)
    Every stream of every row whose codec T2 can bound
    (:mod:`rdgap.validation.stream_length`) is no longer than the proven
    ``rans_length_bounds`` upper bound, table-quantization cost included
    (``row["t2_proven_violations"] == 0``). Rows whose codec is not bounded
    are counted in ``unchecked_rows``; a run with none checked has no claim.
``container_bytes[ARCH]`` (theorem)
    Every stream's bytes are counted once: the container overhead the runner
    books plus the payload the stream's header declares equals the stream's
    length (``row["container_mismatches"] == 0``,
    :func:`rdgap.validation.stream_length.container_mismatch`), and the
    row's rate is ``8 × Σ len(stream) / tokens`` (``row["stream_bits"]``).
``rate_within_bounds[ARCH]`` (prediction)
    At the *measured* rate of every row whose codec has symbols: a
    *factorized* or *joint* codec FAILs when ``rate > t3_logdet_diag + T2``
    with ``T2 = 0.005 · t3_logdet_diag + (64 + header) / m`` (the T3
    diagonal bound caps the *best* factorized discretised Gaussian at the
    codec's steps on these very documents, so a codec fitted on other
    documents, or of another family, can exceed it: a real prediction);
    a factorized codec also FAILs when its rate is below
    ``gibbs_sample_floor``. A *generic* codec (zstd of the symbols) is held
    to neither.
``heldout_rate_bound[ARCH]`` (bound)
    The test-set bound of :mod:`~rdgap.validation.statistics`
    (``heldout_rate_upper``, the one-sided betting bound of Waudby-Smith & Ramdas):
    with probability ``>= 1 - delta`` the expected
    per-document rate on a new document is at most it. It FAILs when a
    hypothesis is known to be broken: the codec is not independent of the
    evaluation documents (more than :data:`MAX_SHARED_SHARE` of the fit
    windows reappear bit for bit among the eval windows: "fitted on the
    evaluation documents"), or a document's rate exceeds ``B``.
``level_holds_on_other_text[ARCH]`` (prediction)
    :mod:`~rdgap.validation.other_text_claim`: every fitted row meets its level +
    2 s.e. on the evaluation documents and on every other corpus of the run
    (:mod:`~rdgap.validation.other_text`); *UNDECIDED* (not gating, never PASS)
    when no other corpus was evaluated.
``coverage[...]`` (coverage / theorem)
    :func:`coverage_claims` (module :mod:`~rdgap.validation.coverage_claims`):
    each bound re-run on a source where it is nearly tight, with the
    critical factor and minimum slack shown.

Reported, never gating
----------------------
``t2_working_form[ARCH]`` (prediction)
    The working tolerance ``bytes <= 1.005 × estimate + 64`` per stream
    (``row["t2_violations"]``). It does NOT follow from T2 when the
    information is below about 1.125 bits per symbol (then ``m·log2(1+2^-8)``
    exceeds 0.5 % of the estimate), so it is a tolerance, not a theorem.
``correlation[ARCH, STATISTIC]`` (statistic)
    :func:`rdgap.validation.correlation.correlations`: pooled within-codec
    Spearman with a split-clustered bootstrap CI; PASS when the CI lies
    above 0 with at least :data:`MIN_CORRELATION_ROWS` independent splits,
    FAIL when it does not, *UNDECIDED* with fewer splits (nothing can be said).
    Statistics computed from the codec's own symbols are labelled
    near-tautological.
``rate_prediction[ARCH]`` (prediction)
    :func:`~rdgap.validation.rate_prediction_claim.rate_prediction_claim`: the rate
    predicted from fit statistics before any entropy model is fitted
    (``rate_predicted``) within ±10 % of the measured rate in every row; the
    worst error, where, and what the prediction there does not model.
"""

from __future__ import annotations

from rdgap.codecs.coders import ans

from .correlation import (CONFIDENCE, MIN_CORRELATION_ROWS, POOLED,  # noqa: F401
                          STATISTICS, TAUTOLOGICAL, bootstrap_correlation, correlations,
                          runs_by_architecture, statistic_pairs)
from .coverage_claims import coverage_claims  # noqa: F401
from .rate_prediction_claim import rate_prediction_claim
from .other_text_claim import UNDECIDED, level_on_other_text_claim

#: What a claim is (``claim["kind"]``), as the report's claims table says it.
KINDS = {"theorem": "theorem (holds for every sample; fails only on a bug)",
         "bound": "bound (holds with probability >= 1 - delta under its hypotheses)",
         "prediction": "prediction (an approximation; can fail on real data)",
         "coverage": "coverage test of a bound (exact binomial, false alarm <= 0.01)",
         "statistic": "statistic (reported, never gates)"}
#: Above this share of fit windows found among the eval windows, the codec was not
#: fitted on held-out documents.
MAX_SHARED_SHARE = 0.5
#: Slack of the sample-level Gibbs check: floating-point rounding of sums of ~10^7 terms.
GIBBS_RELATIVE_TOLERANCE = 1e-9


def make_claim(name: str, failures: list, numbers: dict, gates: bool, passed: str,
               failed: str, kind: str, hypotheses: list | None = None) -> dict:
    """A claim dict (module docstring); ``failures`` non-empty means FAIL."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {tuple(KINDS)}, got {kind!r}")
    for hypothesis in hypotheses or []:
        if set(hypothesis) != {"text", "met"} or hypothesis["met"] not in (True, False, None):
            raise ValueError(f"hypotheses: expected {{'text', 'met': True/False/None}} each, "
                             f"got {hypothesis!r}")
    status = "FAIL" if failures else "PASS"
    return {"name": name, "status": status, "numbers": numbers, "gates": bool(gates),
            "reason": failed if failures else passed, "kind": kind,
            "hypotheses": list(hypotheses or [])}


def _hypothesis(text: str, met: bool | None) -> dict:
    return {"text": text, "met": None if met is None else bool(met)}


def _number(value, digits: int = 1) -> str:
    return "none" if value is None else f"{value:.{digits}f}"


def _where(row: dict) -> str:
    level = f" {row['level']}" if row.get("level") else ""
    return f"split {row.get('split')} {row.get('codec')}{level}"


def _checked(checks: list[dict], failures: list[dict], **extra) -> dict:
    """The numbers of a per-row claim: counts, ``extra`` figures, then every check."""
    return {"rows": len(checks), "failures": len(failures)} | extra | {"checks": checks}


# ----------------------------------------------------------------- theorems
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
    return make_claim(
        f"gibbs_sample_floor[{architecture}]", failures,
        _checked(checks, failures, smallest_margin=smallest,
                 relative_tolerance=GIBBS_RELATIVE_TOLERANCE),
        True, f"in all {len(checks)} factorized rows the likelihood estimate of the coded "
              f"symbols >= their plug-in marginal entropies (Gibbs on the sample; smallest "
              f"margin {smallest:.3f} bits/token)",
        "estimate below the plug-in marginal entropies of its own symbols (a bug: Gibbs "
        "forbids it) in " + "; ".join(f"{c['where']} ({c['estimated']:.3f} < "
                                      f"{c['plugin_floor']:.3f})" for c in failures[:5]),
        kind="theorem",
        hypotheses=[_hypothesis("one table per channel for position 0 and one for positions "
                                ">= 1 (a product pmf), summing to 1", True)])


def _t2_proven_claim(architecture: str, rows: list[dict]) -> dict | None:
    with_estimate = [r for r in rows if r.get("t2_violations") is not None]
    checked = [r for r in with_estimate if r.get("t2_proven_violations") is not None]
    if not checked:
        return None
    failures = [r for r in checked if r["t2_proven_violations"] > 0]
    margins = [r["t2_proven_smallest_margin_bits"] for r in checked
               if r.get("t2_proven_smallest_margin_bits") is not None]
    smallest = min(margins) if margins else None
    unchecked = [_where(r) for r in with_estimate if r.get("t2_proven_violations") is None]
    note = (f"; smallest margin {smallest:,.1f} bits per stream" if smallest is not None
            else "") + (f"; {len(unchecked)} rows with a likelihood model not bounded (their "
                        f"coder has no proven constants here)" if unchecked else "")
    return make_claim(
        f"t2_proven_length[{architecture}]", failures,
        {"rows": len(checked), "streams_violating": int(sum(r["t2_proven_violations"]
                                                            for r in checked)),
         "smallest_margin_bits": smallest, "rows_violating": [_where(r) for r in failures],
         "unchecked_rows": unchecked},
        True, f"every stream of {len(checked)} rows within T2's proven length "
              f"(rans_length_bounds, table quantization included){note}",
        f"T2's proven length exceeded by {sum(r['t2_proven_violations'] for r in failures)} "
        f"streams in {', '.join(_where(r) for r in failures[:5])}{note}", kind="theorem",
        hypotheses=[_hypothesis("constriction AnsCoder (S = 64, W = 32, P = 24, start "
                                "'empty') with the codec's tables", True)])


def _container_claim(architecture: str, rows: list[dict]) -> dict | None:
    checks = []
    for r in rows:
        if r.get("container_mismatches") is None or r.get("stream_bits") is None:
            continue
        counted = float(r["bits_per_token_actual"]) * int(r["tokens"])
        rate_ok = abs(counted - float(r["stream_bits"])) <= 1e-9 * max(1.0, counted)
        checks.append({"where": _where(r), "mismatched_streams": int(r["container_mismatches"]),
                       "rate_bits": counted, "stream_bits": float(r["stream_bits"]),
                       "holds": bool(rate_ok and r["container_mismatches"] == 0)})
    if not checks:
        return None
    failures = [c for c in checks if not c["holds"]]
    return make_claim(
        f"container_bytes[{architecture}]", failures, _checked(checks, failures), True,
        f"in all {len(checks)} rows every stream's header + declared payload = its length, "
        f"and the rate counts every byte of every stream",
        "bytes miscounted in " + "; ".join(
            f"{c['where']} ({c['mismatched_streams']} streams whose header + payload != "
            f"length; rate {c['rate_bits']:,.0f} vs streams {c['stream_bits']:,.0f} bits)"
            for c in failures[:5]), kind="theorem",
        hypotheses=[_hypothesis("rdgap container format version 1", True)])


def _t2_working_claim(architecture: str, rows: list[dict]) -> dict | None:
    checked = [r for r in rows if r.get("t2_violations") is not None]
    if not checked:
        return None
    failures = [r for r in checked if r["t2_violations"] > 0]
    return make_claim(
        f"t2_working_form[{architecture}]", failures,
        {"rows": len(checked), "streams_violating": int(sum(r["t2_violations"]
                                                            for r in checked)),
         "rows_violating": [_where(r) for r in failures]},
        False, f"every stream of {len(checked)} rows within the working tolerance bytes <= "
               f"1.005 × estimate + 64 bits (a tolerance: not implied by T2 below ~1.125 "
               f"bits/symbol)",
        f"working tolerance exceeded by {sum(r['t2_violations'] for r in failures)} streams "
        f"in {', '.join(_where(r) for r in failures[:5])} (a tolerance, not T2: see "
        f"t2_proven_length)", kind="prediction",
        hypotheses=[_hypothesis("information >= ~1.125 bits per symbol (where the tolerance "
                                "follows from T2)", None)])


# ----------------------------------------------------------------- the rate prediction
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
            "rate_interval_status": s.get("rate_interval_status"),
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
            f"intervals (reported, not the criterion) informative in {informative} of "
            f"{len(checks)} rows" + (f"; empirical Bernstein would need about "
                                     f"{min(needed):,}–{max(needed):,} documents for ±10 %"
                                     if needed else ""))
    return make_claim(
        f"rate_within_bounds[{architecture}]", failures,
        _checked(checks, failures, smallest_headroom=headroom,
                 informative_intervals=informative),
        True, f"all {len(checks)} measured rates lie below their T3 diagonal bound + T2 "
              f"allowance (factorized: and above the plug-in marginal entropies of their own "
              f"symbols){note}",
        f"{len(failures)} of {len(checks)} measured rates outside [plug-in floor, T3 "
        f"diagonal + T2]: {detail}{note}", kind="prediction",
        hypotheses=[_hypothesis("T3 diagonal bound on the same documents at the codec's "
                                "steps (a prediction for codecs fitted elsewhere)", True)])


# ----------------------------------------------------------------- the held-out bound
def _outside_range(s: dict) -> float | None:
    """The largest per-document rate of a row when it exceeds the range ``B`` (the cap or
    the format's worst case: a broken theorem), else None."""
    bound, largest = s.get("rate_interval_bound"), s.get("rate_document_max")
    if bound is not None and largest is not None:
        return float(largest) if float(largest) > float(bound) else None
    method = s.get("rate_interval_method") or ""
    if method.startswith("none: a document's rate "):  # rate_statistics' message
        return float(method.split()[4])
    return None


def _heldout_claim(architecture: str, rows: list[dict]) -> dict | None:
    checks, outside = [], []
    for row in rows:
        s = row.get("statistics") or {}
        largest = _outside_range(s)
        if largest is not None and s.get("entropy_model") is not None:
            outside.append({"where": _where(row), "document_rate": largest,
                            "range": s.get("rate_interval_bound")})
            continue
        if s.get("heldout_rate_upper") is None or s.get("entropy_model") is None:
            continue  # fixed-size formats: their rate is known, nothing is fitted
        disjoint = s.get("heldout_disjoint") or {}
        fit, shared = disjoint.get("fit_windows"), disjoint.get("shared_windows")
        independent = None if not fit else shared <= MAX_SHARED_SHARE * fit
        checks.append({"where": _where(row), "upper": s["heldout_rate_upper"],
                       "mean": s.get("heldout_rate_mean"),
                       "documents": s.get("heldout_documents"),
                       "informative": bool(s.get("heldout_informative")),
                       "fit_windows": fit, "shared_windows": shared,
                       "independent": independent})
    if not checks and not outside:
        return None
    dependent = [c for c in checks if c["independent"] is False]
    failures = dependent + outside
    independent = None if any(c["independent"] is None for c in checks) else not dependent
    informative = sum(c["informative"] for c in checks)
    delta = 1.0 - float((rows[0].get("statistics") or {}).get("confidence") or 0.95)
    shown = "; ".join(f"{c['where']}: E rate <= {c['upper']:,.1f} (mean {c['mean']:,.1f})"
                      for c in checks[:3])
    hypotheses = [_hypothesis("evaluation documents i.i.d. (one value per document)", True),
                  _hypothesis("codec independent of the evaluation documents (fit windows "
                              "not among them)", independent),
                  _hypothesis("per-document rates in [0, B] (B the rate cap, or the format's "
                              "worst case)", not outside)]
    return make_claim(
        f"heldout_rate_bound[{architecture}]", failures,
        _checked(checks, failures, delta=delta, informative_rows=informative),
        True, f"test-set bound on the EXPECTED per-document rate, w.p. >= 1 - {delta:.2g} "
              f"each (betting, one-sided, eval documents, no complexity term): "
              f"{shown}; within 10 % of the mean in {informative} of {len(checks)} rows",
        "hypothesis broken, the bound is not valid: " + "; ".join(
            [f"the codec saw the evaluation windows in {c['where']} ({c['shared_windows']} of "
             f"{c['fit_windows']} fit windows among the eval windows)" for c in dependent[:5]]
            + [f"a document's rate {c['document_rate']:,.1f} bits/token exceeds B = "
               f"{_number(c['range'])} in {c['where']} (the rate cap or the worst case is "
               f"not a bound)" for c in outside[:5]]),
        kind="bound", hypotheses=hypotheses)


# ----------------------------------------------------------------- correlations
def _correlation_claim(record: dict) -> dict:
    low = record["spearman_ci"][0]
    units = record.get("units", record["n"])
    enough = units >= MIN_CORRELATION_ROWS
    passed = enough and low is not None and low > 0
    name = f"correlation[{record['architecture']}, {record['statistic']}]"
    numbers = {k: record.get(k) for k in ("group", "n", "units", "pearson", "pearson_ci",
                                          "spearman", "spearman_ci", "confidence", "n_boot",
                                          "tautological")}
    label = " (near-tautological: computed from the codec's own symbols)" \
        if record.get("tautological") else ""
    if passed:
        reason = (f"Spearman {record['spearman']:.2f}, {record['confidence']:.0%} CI "
                  f"[{low:.2f}, {record['spearman_ci'][1]:.2f}] above 0 over {record['n']} "
                  f"rows from {units} splits (splits resampled){label}")
    elif not enough:
        reason = (f"only {units} independent splits (need {MIN_CORRELATION_ROWS}) over "
                  f"{record['n']} rows{label}")
    else:
        reason = (f"Spearman {_number(record['spearman'], 2)}, CI "
                  f"[{_number(low, 2)}, {_number(record['spearman_ci'][1], 2)}] does not "
                  f"lie above 0 over {record['n']} rows from {units} splits{label}")
    claim = make_claim(name, [] if passed else [record], numbers, False, reason, reason,
                       kind="statistic",
                       hypotheses=[_hypothesis(f"at least {MIN_CORRELATION_ROWS} independent "
                                               f"splits", enough)])
    if not enough:  # too few splits to say anything: not a FAIL of the statistic
        claim.update(status=UNDECIDED, reason="undecided: " + reason)
    return claim


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
        ``{"name", "status", "numbers", "reason", "gates", "kind", "hypotheses"}`` each.
    """
    claims = []
    for architecture, rows in runs_by_architecture(results).items():
        for make in (_gibbs_claim, _container_claim, _t2_proven_claim, _t2_working_claim,
                     _rate_claim, _heldout_claim, rate_prediction_claim):
            claim = make(architecture, rows)
            if claim is not None:
                claims.append(claim)
        claim = level_on_other_text_claim(architecture, rows, results.get("other_corpora"))
        if claim is not None:
            claims.append(claim)
    claims += [_correlation_claim(r) for r in correlations(results, n_boot=n_boot, seed=seed)
               if r["group"] == POOLED]
    coverage = results.get("coverage") or []
    if not isinstance(coverage, list) or not all(isinstance(c, dict) and "status" in c
                                                 for c in coverage):
        raise ValueError("results: 'coverage' must be a list of claims (from coverage_claims)")
    return claims + coverage
