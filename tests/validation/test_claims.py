"""Claims: PASS and FAIL paths on synthetic results whose answers are known."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import stats

from rdgap.validation.claims import (bootstrap_correlation, correlations, coverage_claims,
                                     evaluate_claims)
from rdgap.validation.coverage import run_coverage
from rdgap.validation import claims as claims_module
from rdgap.validation.report import failed_gates

from .statistics_data import (fitted_codec, gaussian_windows, results_document, row,
                              run_statistics)


@pytest.fixture(scope="module")
def document():
    return results_document(np.random.default_rng(3))


def by_name(claims):
    return {c["name"]: c for c in claims}


def test_every_claim_has_the_documented_fields(document):
    claims = evaluate_claims(document, n_boot=300)
    assert claims
    for claim in claims:
        assert set(claim) == {"name", "status", "numbers", "reason", "gates", "kind"}
        assert claim["status"] in ("PASS", "FAIL") and claim["reason"]
        assert claim["kind"] in claims_module.KINDS


def test_well_specified_codecs_pass_the_gating_claims(document):
    claims = by_name(evaluate_claims(document, n_boot=300))
    for name, kind in (("gibbs_sample_floor[synthetic]", "theorem"),
                       ("t2_actual_vs_estimated[synthetic]", "theorem"),
                       ("rate_within_bounds[synthetic]", "prediction")):
        assert claims[name]["status"] == "PASS", claims[name]["reason"]
        assert claims[name]["gates"] is True and claims[name]["kind"] == kind
    assert claims["rate_within_bounds[synthetic]"]["numbers"]["rows"] == 5
    assert claims["gibbs_sample_floor[synthetic]"]["numbers"]["smallest_margin"] > 0
    t9 = claims["t9_generalisation[synthetic]"]
    assert t9["status"] == "PASS" and t9["kind"] == "bound"
    assert t9["gates"] is (t9["numbers"]["informative_rows"] > 0)
    assert claims["correlation[synthetic, t3_logdet_diag]"]["kind"] == "correlation"


def test_mis_specified_codec_fails_the_upper_side():
    """Tables 40× too wide cost ~4.6 bits per channel more than the diagonal T3 bound:
    the claim must FAIL on that row only."""
    rng = np.random.default_rng(4)
    fit = gaussian_windows(rng, 300, 64, [1.0, 3.0, 10.0, 0.5])
    evaluation = gaussian_windows(rng, 300, 64, [1.0, 3.0, 10.0, 0.5])
    good = run_statistics(fitted_codec(fit), fit, evaluation)
    bad = run_statistics(fitted_codec(fit, scale_error=40.0), fit, evaluation)
    claims = by_name(evaluate_claims({"runs": [row(good, 1), row(bad, 2)]}, n_boot=100))
    claim = claims["rate_within_bounds[synthetic]"]
    assert claim["status"] == "FAIL" and "split 2" in claim["reason"]
    checks = claim["numbers"]["checks"]
    assert [c["fails_upper"] for c in checks] == [False, True]
    assert not any(c["fails_lower"] for c in checks)
    assert failed_gates({"claims": list(claims.values())}) == [claim]   # exit status 1
    assert claims["gibbs_sample_floor[synthetic]"]["status"] == "PASS"  # a model, not a bug


def test_the_upper_side_fails_at_the_point_rate_even_when_t8_cannot_tell():
    """Few documents and a modest mis-fit (tables 3× too wide, ~1.2 bits per channel over
    the bound): the T8 interval still contains the upper limit — the old criterion,
    ``interval low > upper``, passed — but the measured rate is above it: FAIL."""
    rng = np.random.default_rng(5)
    fit = gaussian_windows(rng, 12, 32, [1.0, 3.0, 10.0, 0.5])
    evaluation = gaussian_windows(rng, 12, 32, [1.0, 3.0, 10.0, 0.5])
    bad = run_statistics(fitted_codec(fit, scale_error=3.0), fit, evaluation)
    claim = by_name(evaluate_claims({"runs": [row(bad, 1)]}, n_boot=100))[
        "rate_within_bounds[synthetic]"]
    check = claim["numbers"]["checks"][0]
    assert bad["rate_interval"][0] <= check["upper_limit"]          # T8 cannot tell
    assert not bad["rate_interval_informative"]
    assert claim["status"] == "FAIL" and check["fails_upper"] and claim["gates"]


def test_rate_below_the_sample_floor_fails_the_lower_side(document):
    broken = copy.deepcopy(document)
    s = broken["runs"][0]["statistics"]
    s["gibbs_sample_floor"] = s["rate_actual"] + 1.0
    claim = by_name(evaluate_claims(broken, n_boot=100))["rate_within_bounds[synthetic]"]
    assert claim["status"] == "FAIL" and claim["numbers"]["checks"][0]["fails_lower"]


def test_gibbs_claim_fails_on_an_estimate_below_the_plugin_entropy(document):
    """A real bug path: tables that sum to 4 (every code length 2 bits short)."""
    rng = np.random.default_rng(6)
    fit = gaussian_windows(rng, 40, 32, [1.0, 3.0, 10.0, 0.5])
    evaluation = gaussian_windows(rng, 40, 32, [1.0, 3.0, 10.0, 0.5])
    codec = fitted_codec(fit)
    for table in codec._tables + codec._first_tables:
        table.neg_log2 = table.neg_log2 - 2.0
    broken = dict(document, runs=document["runs"] + [row(run_statistics(codec, fit, evaluation),
                                                         9)])
    claims = by_name(evaluate_claims(broken, n_boot=100))
    claim = claims["gibbs_sample_floor[synthetic]"]
    assert claim["status"] == "FAIL" and "split 9" in claim["reason"]
    assert claim["numbers"]["failures"] == 1 and claim["kind"] == "theorem"
    assert claim in failed_gates({"claims": list(claims.values())})
    exact = copy.deepcopy(document)                      # equality is allowed (rounding slack)
    s = exact["runs"][0]["statistics"]
    s["gibbs_sample_estimated"] = s["gibbs_sample_floor"] * (1 - 1e-12)
    assert by_name(evaluate_claims(exact, n_boot=100))["gibbs_sample_floor[synthetic]"][
        "status"] == "PASS"


def test_joint_codec_is_held_to_the_upper_side_only(document):
    joint = copy.deepcopy(document)
    for r in joint["runs"]:
        r["statistics"]["entropy_model"] = "joint"
        r["statistics"]["gibbs_sample_floor"] = 1e9    # would fail a factorized codec
    claim = by_name(evaluate_claims(joint, n_boot=100))["rate_within_bounds[synthetic]"]
    assert claim["status"] == "PASS"
    assert all(c["floor"] is None for c in claim["numbers"]["checks"])
    above = copy.deepcopy(joint)
    s = above["runs"][0]["statistics"]
    s["rate_actual"] = s["t3_logdet_diag"] * 1.1 + 100
    claim = by_name(evaluate_claims(above, n_boot=100))["rate_within_bounds[synthetic]"]
    assert claim["status"] == "FAIL" and claim["numbers"]["checks"][0]["fails_upper"]


def test_t9_claim_gates_only_where_it_is_informative(document):
    vacuous = copy.deepcopy(document)
    for r in vacuous["runs"]:
        r["statistics"]["t9_informative"] = False
    claim = by_name(evaluate_claims(vacuous, n_boot=100))["t9_generalisation[synthetic]"]
    assert claim["gates"] is False and "does not gate" in claim["reason"]
    informative = copy.deepcopy(document)
    informative["runs"][0]["statistics"]["t9_informative"] = True
    claim = by_name(evaluate_claims(informative, n_boot=100))["t9_generalisation[synthetic]"]
    assert claim["gates"] is True


def test_t2_and_t9_fail_paths(document):
    broken = copy.deepcopy(document)
    broken["runs"][1]["t2_violations"] = 3
    s = broken["runs"][2]["statistics"]
    s["t9_generalization_bound"] = s["t9_eval_rate"] - 1.0
    claims = by_name(evaluate_claims(broken, n_boot=100))
    assert claims["t2_actual_vs_estimated[synthetic]"]["status"] == "FAIL"
    assert claims["t2_actual_vs_estimated[synthetic]"]["numbers"]["streams_violating"] == 3
    assert claims["t9_generalisation[synthetic]"]["status"] == "FAIL"
    assert "split 3" in claims["t9_generalisation[synthetic]"]["reason"]


def test_bootstrap_correlation_against_scipy():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(40)
    y = 0.6 * x + 0.8 * rng.standard_normal(40)
    ours = bootstrap_correlation(x, y, n_boot=3000, seed=1)
    assert ours["pearson"] == pytest.approx(stats.pearsonr(x, y)[0], rel=1e-10)
    assert ours["spearman"] == pytest.approx(stats.spearmanr(x, y)[0], rel=1e-10)
    for name, statistic, vectorized in (
            ("pearson", lambda a, b, axis=-1: stats.pearsonr(a, b, axis=axis)[0], True),
            ("spearman", lambda a, b: stats.spearmanr(a, b)[0], False)):
        reference = stats.bootstrap((x, y), statistic, paired=True, vectorized=vectorized,
                                    n_resamples=1500, method="percentile",
                                    random_state=np.random.default_rng(2)).confidence_interval
        assert ours[f"{name}_ci"] == pytest.approx([reference.low, reference.high], abs=0.05)


def test_correlation_claims_pass_for_a_driven_rate_and_fail_for_noise(document):
    claims = by_name(evaluate_claims(document, n_boot=500))
    driven = claims["correlation[synthetic, t3_logdet_diag]"]
    assert driven["status"] == "PASS" and driven["gates"] is False
    assert driven["numbers"]["spearman"] == pytest.approx(1.0)
    noisy = copy.deepcopy(document)
    for r, value in zip(noisy["runs"], [3.0, 1.0, 5.0, 2.0, 4.0]):
        r["statistics"]["t3_logdet_diag"] = value                  # rate order 1..5
    claim = by_name(evaluate_claims(noisy, n_boot=500))["correlation[synthetic, t3_logdet_diag]"]
    assert claim["status"] == "FAIL" and claim["numbers"]["spearman_ci"][0] <= 0


def test_correlations_skip_statistics_with_too_few_rows(document):
    names = {r["statistic"] for r in correlations(document, n_boot=100)}
    assert "t3_logdet_diag" in names and "t10_prefix_jacobian" not in names


def test_coverage_claims_quick_pass_and_stay_fast():
    import time

    start = time.perf_counter()
    claims = coverage_claims(quick=True)
    assert time.perf_counter() - start < 20
    assert len(claims) == 7 and all(c["status"] == "PASS" and c["gates"] for c in claims)
    assert all(c["kind"] == "coverage" for c in claims)
    assert all(c["numbers"].get("trials", 1000) >= 1000 for c in claims)


def test_a_bound_that_misses_its_coverage_is_a_failing_claim():
    def one_standard_error(rng, trials):
        return np.abs(rng.standard_normal(trials)) <= 1.0   # covers ~68 %, promises 95 %

    result = run_coverage(one_standard_error, delta=0.05, trials=1000, seed=0,
                          vectorized=True)
    claim = claims_module._coverage_claim("too tight", result)
    assert claim["status"] == "FAIL" and claim["numbers"]["coverage"] < 0.75


def test_coverage_results_are_passed_on_and_checked(document):
    with_coverage = dict(document, coverage=[{"name": "coverage[x]", "status": "PASS",
                                              "numbers": {}, "reason": "r", "gates": True}])
    assert by_name(evaluate_claims(with_coverage, n_boot=100))["coverage[x]"]["status"] == "PASS"
    with pytest.raises(ValueError, match="coverage"):
        evaluate_claims(dict(document, coverage="bad"), n_boot=100)
    with pytest.raises(ValueError, match="results"):
        evaluate_claims({"no": "runs"})


def test_report_says_what_kind_each_claim_is_and_why_the_pac_bounds_are_wide(document):
    from rdgap.validation.report import _claims_section

    results = dict(document, claims=evaluate_claims(document, n_boot=100))
    text = "\n".join(_claims_section(results))
    assert "| claim | kind | status | gates |" in text
    assert "| `gibbs_sample_floor[synthetic]` | theorem check (fails only on a bug) |" in text
    assert "| `rate_within_bounds[synthetic]` | prediction of a bound" in text
    assert "correlation (reported, does not gate)" in text
    assert "## How informative the PAC bounds are" in text
    assert "## Measured rates against their bounds" in text
    check = by_name(results["claims"])["rate_within_bounds[synthetic]"]["numbers"]["checks"][0]
    assert f"| {check['rate']:.1f} | {check['upper_limit']:.1f} |" in text
    s = document["runs"][0]["statistics"]
    needed = s["t8_documents_needed"]
    assert f"{needed['hoeffding']:,} / {needed['bernstein_projected']:,}" in text
