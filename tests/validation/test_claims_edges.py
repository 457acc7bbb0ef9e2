"""Edges of the claims layer that ``tools/mutate.py`` found untested.

Each test pins one decision of :mod:`rdgap.validation.claims` to a number: a
boundary (``>=`` against ``>``), a tolerance, a constant, an input check, a
count in the numbers. They run on minimal hand-made ``results.json`` rows
(only the fields the claim reads), so each claim is seen alone; the real
runs are in ``test_claim_defects.py``. Mutation score and the surviving
mutants: ``docs/testing-the-claims.md``.

Over 400 lines on purpose: one file of small edge tests is the per-mutant test
command of the mutation runs (``tools/mutate.py ... -- tests/validation/
test_claims_edges.py ...``); its sections follow the claims modules (claims,
correlation, coverage_claims).
"""

from __future__ import annotations

import numpy as np
import pytest

from rdgap.codecs.coders import ans
from rdgap.validation import claims as claims_module
from rdgap.validation.claims import bootstrap_correlation, evaluate_claims, make_claim


def _row(split: int = 1, codec: str = "factorized-gaussian", level: str | None = "dce<=0.01",
         statistics: dict | None = None, **fields) -> dict:
    return {"architecture": "a", "split": split, "codec": codec, "level": level,
            "statistics": statistics or {}} | fields


def _claim(rows: list[dict], family: str) -> dict | None:
    found = [c for c in evaluate_claims({"runs": rows}, n_boot=50)
             if c["name"].split("[")[0] == family]
    return found[0] if found else None


# ----------------------------------------------------------------- make_claim
def test_make_claim_refuses_a_bad_kind_and_bad_hypotheses():
    with pytest.raises(ValueError, match="kind: expected one of"):
        make_claim("x", [], {}, True, "p", "f", kind="guess")
    for bad in ({"text": "t"}, {"text": "t", "met": "yes"},
                {"text": "t", "met": True, "extra": 1}, {"met": None}):
        with pytest.raises(ValueError, match="hypotheses: expected"):
            make_claim("x", [], {}, True, "p", "f", kind="theorem", hypotheses=[bad])


def test_make_claim_fields():
    hypotheses = [{"text": "t", "met": None}, {"text": "u", "met": False}]
    passed = make_claim("x", [], {"n": 1}, 1, "ok", "bad", kind="bound",
                        hypotheses=hypotheses)
    assert passed == {"name": "x", "status": "PASS", "numbers": {"n": 1}, "gates": True,
                      "reason": "ok", "kind": "bound", "hypotheses": hypotheses}
    hypotheses.append({"text": "v", "met": True})          # the claim keeps its own list
    assert len(passed["hypotheses"]) == 2
    failed = make_claim("x", [1], {}, 0, "ok", "bad", kind="statistic")
    assert (failed["status"], failed["reason"], failed["gates"], failed["hypotheses"]) == \
        ("FAIL", "bad", False, [])


# ----------------------------------------------------------------- Gibbs
@pytest.mark.parametrize("floor, below, holds", [
    (1e6, 0.5e-3, True), (1e6, 2e-3, False),      # slack 1e-9 × |floor| = 1e-3
    (0.5, 0.5e-9, True), (0.5, 2e-9, False),      # slack 1e-9 × max(1, 0.5) = 1e-9
    (-3.0, 2e-9, True), (-3.0, 4e-9, False),      # slack 1e-9 × |−3| = 3e-9
])
def test_gibbs_tolerance_is_relative_to_the_floor_and_at_least_absolute(floor, below, holds):
    statistics = {"gibbs_sample_floor": floor, "gibbs_sample_estimated": floor - below}
    claim = _claim([_row(statistics=statistics)], "gibbs_sample_floor")
    assert claim["status"] == ("PASS" if holds else "FAIL")
    assert claim["numbers"]["failures"] == (0 if holds else 1)
    assert claim["numbers"]["checks"][0]["margin"] == pytest.approx(-below, rel=1e-6)


def test_gibbs_numbers_and_rows_without_figures():
    rows = [_row(1, statistics={"gibbs_sample_floor": 5.0, "gibbs_sample_estimated": 7.0,
                                "gibbs_sample_actual": 7.5, "gibbs_sample_windows": 3}),
            _row(2, statistics={"gibbs_sample_floor": 5.0, "gibbs_sample_estimated": 5.25}),
            _row(3, statistics={"gibbs_sample_floor": 5.0}),
            _row(4, statistics={"gibbs_sample_estimated": 5.0})]
    claim = _claim(rows, "gibbs_sample_floor")
    numbers = claim["numbers"]
    assert (numbers["rows"], numbers["failures"], numbers["smallest_margin"]) == (2, 0, 0.25)
    assert numbers["relative_tolerance"] == claims_module.GIBBS_RELATIVE_TOLERANCE == 1e-9
    assert [c["where"] for c in numbers["checks"]] == ["split 1 factorized-gaussian dce<=0.01",
                                                       "split 2 factorized-gaussian dce<=0.01"]
    assert (numbers["checks"][0]["actual"], numbers["checks"][0]["windows"]) == (7.5, 3)
    assert claim["gates"] and claim["kind"] == "theorem" and "0.250" in claim["reason"]
    assert _claim(rows[2:], "gibbs_sample_floor") is None


# ----------------------------------------------------------------- T2 and the container
def test_t2_proven_claim_counts_streams_margins_and_unbounded_rows():
    rows = [_row(1, t2_violations=0, t2_proven_violations=0, t2_proven_smallest_margin_bits=9.5),
            _row(2, t2_violations=1, t2_proven_violations=2, t2_proven_smallest_margin_bits=-3.0),
            _row(3, t2_violations=0, t2_proven_violations=None),       # not bounded
            _row(4, t2_proven_violations=5)]                           # no estimate: ignored
    claim = _claim(rows, "t2_proven_length")
    numbers = claim["numbers"]
    assert claim["status"] == "FAIL" and claim["gates"] and claim["kind"] == "theorem"
    assert (numbers["rows"], numbers["streams_violating"], numbers["smallest_margin_bits"]) == \
        (2, 2, -3.0)
    assert numbers["rows_violating"] == ["split 2 factorized-gaussian dce<=0.01"]
    assert numbers["unchecked_rows"] == ["split 3 factorized-gaussian dce<=0.01"]
    assert "1 rows with a likelihood model not bounded" in claim["reason"]
    clean = _claim(rows[:1], "t2_proven_length")
    assert clean["status"] == "PASS" and clean["numbers"]["unchecked_rows"] == []
    assert "smallest margin 9.5 bits" in clean["reason"]
    no_margin = _claim([_row(1, t2_violations=0, t2_proven_violations=0)], "t2_proven_length")
    assert no_margin["numbers"]["smallest_margin_bits"] is None
    assert _claim(rows[2:3], "t2_proven_length") is None


def test_t2_working_form_is_reported_not_gating():
    rows = [_row(1, t2_violations=0), _row(2, t2_violations=3), _row(3)]
    claim = _claim(rows, "t2_working_form")
    assert claim["status"] == "FAIL" and claim["gates"] is False
    assert claim["kind"] == "prediction"
    assert (claim["numbers"]["rows"], claim["numbers"]["streams_violating"]) == (2, 3)
    assert claim["numbers"]["rows_violating"] == ["split 2 factorized-gaussian dce<=0.01"]
    assert _claim(rows[:1], "t2_working_form")["status"] == "PASS"
    assert _claim(rows[2:], "t2_working_form") is None
    one = _claim([_row(1, t2_violations=1)], "t2_working_form")
    assert one["status"] == "FAIL" and "exceeded by 1 streams" in one["reason"]
    assert [h["met"] for h in one["hypotheses"]] == [None]     # the run cannot tell


@pytest.mark.parametrize("stream_bits, mismatches, holds", [
    (80_000.0, 0, True),
    (80_000.0 + 0.5e-4, 0, True),      # rounding: 1e-9 relative
    (80_000.0 + 2e-4, 0, False),
    (80_008.0, 0, False),              # one byte not in the rate
    (80_000.0, 1, False),              # one stream whose header + payload != its length
])
def test_container_claim_counts_every_byte(stream_bits, mismatches, holds):
    row = _row(bits_per_token_actual=40.0, tokens=2000, stream_bits=stream_bits,
               container_mismatches=mismatches)
    claim = _claim([row], "container_bytes")
    assert claim["status"] == ("PASS" if holds else "FAIL") and claim["gates"]
    check = claim["numbers"]["checks"][0]
    assert (check["rate_bits"], check["stream_bits"], check["mismatched_streams"]) == \
        (80_000.0, stream_bits, mismatches)
    assert _claim([_row(bits_per_token_actual=40.0, tokens=2000, stream_bits=1.0)],
                  "container_bytes") is None


def test_container_tolerance_is_at_least_absolute():
    """A rate of a tiny count of bits: the tolerance is 1e-9 bits, not 1e-9 × the count."""
    row = _row(bits_per_token_actual=0.25, tokens=2, stream_bits=0.5 + 1.5e-9,
               container_mismatches=0)
    assert _claim([row], "container_bytes")["status"] == "FAIL"
    row["stream_bits"] = 0.5 + 0.5e-9
    assert _claim([row], "container_bytes")["status"] == "PASS"
    empty = _row(bits_per_token_actual=0.0, tokens=1, stream_bits=1e-9, container_mismatches=0)
    assert _claim([empty], "container_bytes")["status"] == "PASS"       # exactly at 1e-9


def test_container_reason_names_at_most_five_rows():
    rows = [_row(k, bits_per_token_actual=1.0, tokens=8, stream_bits=16.0,
                 container_mismatches=k) for k in range(1, 8)]
    claim = _claim(rows, "container_bytes")
    assert claim["numbers"]["failures"] == 7 and claim["kind"] == "theorem"
    assert "split 5 " in claim["reason"] and "split 6 " not in claim["reason"]
    assert "(5 streams whose header + payload != length; rate 8 vs streams 16 bits)" in \
        claim["reason"]
    assert [h["met"] for h in claim["hypotheses"]] == [True]


# ----------------------------------------------------------------- the rate prediction
def _rate_row(rate, diag=100.0, tokens=50, header=2.0, **statistics):
    return _row(bits_per_token_actual=rate, container_bits_per_token=header,
                statistics={"entropy_model": "factorized", "t3_logdet_diag": diag,
                            "rate_actual": rate, "tokens_per_window": tokens} | statistics)


def test_rate_upper_limit_is_t3_diagonal_plus_the_t2_allowance():
    upper = 100.0 + 0.005 * 100.0 + 64.0 / 50 + 2.0                    # = 103.78
    assert ans.RELATIVE_OVERHEAD == 0.005 and ans.STREAM_OVERHEAD_BITS == 64
    at = _claim([_rate_row(upper)], "rate_within_bounds")
    check = at["numbers"]["checks"][0]
    assert check["upper_limit"] == pytest.approx(upper, rel=1e-12)
    assert at["status"] == "PASS" and at["numbers"]["smallest_headroom"] == pytest.approx(0)
    assert [h["met"] for h in at["hypotheses"]] == [True]
    assert (at["gates"], at["kind"]) == (True, "prediction")
    above = _claim([_rate_row(upper + 1e-6)], "rate_within_bounds")
    assert above["status"] == "FAIL" and above["numbers"]["checks"][0]["fails_upper"]
    below = _claim([_rate_row(upper - 0.6)], "rate_within_bounds")    # the allowance counts
    assert below["status"] == "PASS"
    assert below["numbers"]["smallest_headroom"] == pytest.approx(0.6)


def test_rate_check_defaults_and_sources():
    """No tokens_per_window: one token (64 bits of allowance); no header: 0; the rate is
    the statistics' ``rate_actual``, else the row's ``bits_per_token_actual``."""
    row = _row(bits_per_token_actual=164.0,
               statistics={"entropy_model": "joint", "t3_logdet_diag": 100.0})
    check = _claim([row], "rate_within_bounds")["numbers"]["checks"][0]
    assert check["upper_limit"] == pytest.approx(100.5 + 64.0)
    assert check["rate"] == 164.0 and check["floor"] is None
    row["statistics"]["rate_actual"] = 170.0
    claim = _claim([row], "rate_within_bounds")
    assert claim["numbers"]["checks"][0]["rate"] == 170.0 and claim["status"] == "FAIL"
    generic = _row(bits_per_token_actual=1e9,
                   statistics={"entropy_model": "generic", "t3_logdet_diag": 1.0})
    assert _claim([generic], "rate_within_bounds") is None
    no_diag = _row(bits_per_token_actual=1e9, statistics={"entropy_model": "factorized"})
    assert _claim([no_diag], "rate_within_bounds") is None


def test_rate_lower_side_uses_the_floors_own_windows():
    fine = _rate_row(90.0, gibbs_sample_floor=80.0, gibbs_sample_actual=81.0)
    assert _claim([fine], "rate_within_bounds")["status"] == "PASS"
    low = _rate_row(90.0, gibbs_sample_floor=80.0, gibbs_sample_actual=79.0)
    claim = _claim([low], "rate_within_bounds")
    check = claim["numbers"]["checks"][0]
    assert claim["status"] == "FAIL" and check["fails_lower"] and not check["fails_upper"]
    assert check["floor"] == 80.0
    at_floor = _rate_row(80.0, gibbs_sample_floor=80.0)          # no actual: the rate itself
    assert _claim([at_floor], "rate_within_bounds")["status"] == "PASS"
    under = _rate_row(79.5, gibbs_sample_floor=80.0)
    assert _claim([under], "rate_within_bounds")["numbers"]["checks"][0]["fails_lower"]


def test_rate_claim_counts_informative_intervals_and_needed_documents():
    rows = [_rate_row(90.0, rate_interval_informative=True,
                      t8_documents_needed={"hoeffding": 5000, "bernstein_projected": 1200}),
            _rate_row(95.0, t8_documents_needed={"bernstein_projected": 300}),
            _rate_row(96.0)]
    claim = _claim(rows, "rate_within_bounds")
    numbers = claim["numbers"]
    assert (numbers["rows"], numbers["failures"], numbers["informative_intervals"]) == (3, 0, 1)
    assert [c["documents_needed_bernstein_projected"] for c in numbers["checks"]] == \
        [1200, 300, None]
    assert numbers["checks"][0]["documents_needed_hoeffding"] == 5000
    assert "informative in 1 of 3 rows" in claim["reason"]
    assert "about 300–1,200 documents" in claim["reason"]
    assert numbers["smallest_headroom"] == pytest.approx(103.78 - 96.0)


# ----------------------------------------------------------------- the held-out bound
def _heldout_row(split, fit, shared, **statistics):
    disjoint = None if fit is None else {"fit_windows": fit, "shared_windows": shared}
    return _row(split, statistics={"heldout_rate_upper": 50.0, "heldout_rate_mean": 45.0,
                                   "heldout_disjoint": disjoint,
                                   "entropy_model": "factorized"} | statistics)


@pytest.mark.parametrize("fit, shared, status, met", [
    (10, 0, "PASS", True), (10, 5, "PASS", True),      # half shared: still independent
    (10, 6, "FAIL", False), (10, 10, "FAIL", False),
    (0, 0, "PASS", None), (None, None, "PASS", None),  # cannot tell: not a failure
])
def test_heldout_independence_boundary(fit, shared, status, met):
    claim = _claim([_heldout_row(1, fit, shared)], "heldout_rate_bound")
    assert claim["status"] == status and claim["gates"] and claim["kind"] == "bound"
    (hypothesis,) = [h for h in claim["hypotheses"] if "independent" in h["text"]]
    assert hypothesis["met"] is met
    assert claim["numbers"]["checks"][0]["independent"] is met


def test_heldout_numbers():
    rows = [_heldout_row(1, 10, 0, heldout_informative=True, confidence=0.9,
                         heldout_documents=12),
            _heldout_row(2, 10, 1), _row(3, statistics={"heldout_rate_mean": 1.0})]
    claim = _claim(rows, "heldout_rate_bound")
    numbers = claim["numbers"]
    assert (numbers["rows"], numbers["informative_rows"]) == (2, 1)
    assert numbers["delta"] == pytest.approx(0.1)
    assert numbers["checks"][0]["documents"] == 12
    assert "within 10 % of the mean in 1 of 2 rows" in claim["reason"]
    assert all(h["met"] is True for h in claim["hypotheses"])
    assert _claim(rows[1:2], "heldout_rate_bound")["numbers"]["delta"] == pytest.approx(0.05)
    mixed = _claim([rows[0], _heldout_row(2, None, None)], "heldout_rate_bound")
    assert [h["met"] for h in mixed["hypotheses"] if "independent" in h["text"]] == [None]
    assert _claim(rows[2:], "heldout_rate_bound") is None
    fixed = _heldout_row(4, 10, 10, entropy_model=None)     # fp16 and the like: skipped
    assert _claim([fixed], "heldout_rate_bound") is None


# ----------------------------------------------------------------- correlation claims
def _record(units, low=0.2, tautological=False):
    return {"architecture": "a", "statistic": "t10_prefix_jacobian", "group": "pooled",
            "n": 2 * units, "units": units, "pearson": 0.5, "pearson_ci": [0.1, 0.9],
            "spearman": 0.6, "spearman_ci": [low, 0.9], "confidence": 0.95, "n_boot": 100,
            "tautological": tautological}


def test_correlation_claim_boundary_on_independent_units():
    minimum = claims_module.MIN_CORRELATION_ROWS
    assert minimum == 4
    enough = claims_module._correlation_claim(_record(minimum))
    assert enough["status"] == "PASS" and enough["gates"] is False
    assert enough["kind"] == "statistic" and enough["hypotheses"][0]["met"] is True
    assert "from 4 splits" in enough["reason"]
    # too few splits says nothing either way: UNDECIDED, not FAIL (nor PASS), even with
    # an interval far above 0
    few = claims_module._correlation_claim(_record(minimum - 1, low=0.9))
    assert few["status"] == "UNDECIDED" and few["hypotheses"][0]["met"] is False
    assert few["gates"] is False
    assert "undecided: only 3 independent splits (need 4) over 6 rows" in few["reason"]
    for low in (0.0, -0.1, None):
        claim = claims_module._correlation_claim(_record(minimum, low=low))
        assert claim["status"] == "FAIL" and "does not lie above 0" in claim["reason"]
    rows_only = _record(minimum) | {"n": 5}
    del rows_only["units"]                              # a record without units: its rows
    assert claims_module._correlation_claim(rows_only)["numbers"]["units"] is None
    assert claims_module._correlation_claim(rows_only)["status"] == "PASS"


def test_correlation_claim_labels_near_tautological_statistics():
    label = "near-tautological"
    assert label in claims_module._correlation_claim(_record(5, tautological=True))["reason"]
    assert label not in claims_module._correlation_claim(_record(5))["reason"]
    assert label in claims_module._correlation_claim(_record(2, tautological=True))["reason"]


# ----------------------------------------------------------------- evaluate_claims input
def test_evaluate_claims_checks_the_coverage_list():
    rows = [_row(statistics={"gibbs_sample_floor": 1.0, "gibbs_sample_estimated": 2.0})]
    passed_on = {"name": "coverage[x]", "status": "PASS", "numbers": {}, "reason": "r",
                 "gates": True}
    claims = evaluate_claims({"runs": rows, "coverage": [passed_on]}, n_boot=50)
    assert [c["name"] for c in claims] == ["gibbs_sample_floor[a]", "coverage[x]"]
    assert evaluate_claims({"runs": rows, "coverage": None}, n_boot=50)[-1]["name"] == \
        "gibbs_sample_floor[a]"
    for bad in ("x", [passed_on, "x"], [{"name": "no status"}]):
        with pytest.raises(ValueError, match="'coverage' must be a list of claims"):
            evaluate_claims({"runs": rows, "coverage": bad}, n_boot=50)
    with pytest.raises(ValueError, match="results: expected a dict with a list 'runs'"):
        evaluate_claims({"runs": "x"})


def test_claims_are_made_per_architecture_in_order():
    rows = [_row(1, statistics={"gibbs_sample_floor": 1.0, "gibbs_sample_estimated": 2.0}),
            _row(2, t2_violations=0, t2_proven_violations=0, architecture="b",
                 statistics={"gibbs_sample_floor": 1.0, "gibbs_sample_estimated": 0.5})]
    names = [(c["name"], c["status"]) for c in evaluate_claims({"runs": rows}, n_boot=50)]
    assert names == [("gibbs_sample_floor[a]", "PASS"), ("gibbs_sample_floor[b]", "FAIL"),
                     ("t2_proven_length[b]", "PASS"), ("t2_working_form[b]", "PASS")]


# ----------------------------------------------------------------- found by a mutation run
def test_gibbs_estimate_exactly_at_the_tolerance_passes():
    floor = 2.0
    estimated = floor - claims_module.GIBBS_RELATIVE_TOLERANCE * max(1.0, abs(floor))
    claim = _claim([_row(statistics={"gibbs_sample_floor": floor,
                                     "gibbs_sample_estimated": estimated})],
                   "gibbs_sample_floor")
    assert claim["status"] == "PASS"
    assert claim["hypotheses"] == [{"text": claim["hypotheses"][0]["text"], "met": True}]
    assert "summing to 1" in claim["hypotheses"][0]["text"]


def test_failure_reasons_name_at_most_five_rows():
    rows = [_row(k, statistics={"gibbs_sample_floor": 5.0, "gibbs_sample_estimated": 4.0},
                 t2_violations=0, t2_proven_violations=1)
            for k in range(1, 8)]
    gibbs = _claim(rows, "gibbs_sample_floor")
    assert gibbs["numbers"]["failures"] == 7
    assert "split 5 " in gibbs["reason"] and "split 6 " not in gibbs["reason"]
    assert "(4.000 < 5.000)" in gibbs["reason"]
    t2 = _claim(rows, "t2_proven_length")
    assert t2["status"] == "FAIL" and t2["numbers"]["streams_violating"] == 7   # one each
    assert "exceeded by 7 streams" in t2["reason"]
    assert [h["met"] for h in t2["hypotheses"]] == [True]
    assert "constriction AnsCoder" in t2["hypotheses"][0]["text"]
    assert "split 5 " in t2["reason"] and "split 6 " not in t2["reason"]


def test_rate_failure_reason_shows_rate_floor_and_upper_limit():
    claim = _claim([_rate_row(90.0, gibbs_sample_floor=95.0)], "rate_within_bounds")
    assert "rate 90.0 vs floor 95.0 and upper 103.8" in claim["reason"]
    joint = _claim([_row(bits_per_token_actual=300.0, statistics={
        "entropy_model": "joint", "t3_logdet_diag": 100.0})], "rate_within_bounds")
    assert "vs floor none and upper 164.5" in joint["reason"]


def test_rate_reason_names_at_most_five_rows():
    rows = [_rate_row(200.0 + k) | {"split": k} for k in range(1, 8)]
    claim = _claim(rows, "rate_within_bounds")
    assert claim["numbers"]["failures"] == 7 and "7 of 7 measured rates" in claim["reason"]
    assert "split 5 " in claim["reason"] and "split 6 " not in claim["reason"]


def test_heldout_reason_names_at_most_five_rows():
    rows = [_heldout_row(k, 10, 10) for k in range(1, 8)]
    claim = _claim(rows, "heldout_rate_bound")
    assert claim["numbers"]["failures"] == 7
    assert "split 5 " in claim["reason"] and "split 6 " not in claim["reason"]
    assert "(10 of 10 fit windows among the eval windows)" in claim["reason"]


def test_heldout_reason_shows_the_first_three_rows():
    rows = [_heldout_row(k, 10, 0) for k in range(1, 5)]
    claim = _claim(rows, "heldout_rate_bound")
    assert claim["status"] == "PASS"
    assert "split 3 factorized-gaussian dce<=0.01: E rate <= 50.0 (mean 45.0)" in claim["reason"]
    assert "split 4 " not in claim["reason"]


def test_correlation_claims_come_from_the_pooled_records_only():
    rows = [_row(k, bits_per_token_actual=10.0 * k,
                 statistics={"entropy_model": "factorized", "t10_prefix_jacobian": 1.0 + k})
            for k in range(1, 6)]
    claims = [c for c in evaluate_claims({"runs": rows}, n_boot=50)
              if c["name"].startswith("correlation[")]
    assert [(c["name"], c["numbers"]["group"]) for c in claims] == [
        ("correlation[a, t10_prefix_jacobian]", claims_module.POOLED)]
    assert claims[0]["numbers"]["units"] == 5 and claims[0]["status"] == "PASS"


# ----------------------------------------------------------------- bootstrap_correlation
def _pairs(n=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    return x, x + rng.standard_normal(n)


def test_bootstrap_correlation_defaults_are_the_documented_ones():
    x, y = _pairs()
    default = bootstrap_correlation(x, y)
    assert default == bootstrap_correlation(x, y, n_boot=2000, seed=0, confidence=0.95)
    assert (default["n_boot"], default["confidence"], default["n"], default["units"]) == \
        (2000, 0.95, 12, 12)
    assert default != bootstrap_correlation(x, y, seed=1)


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5])
def test_bootstrap_correlation_confidence_must_lie_strictly_inside_0_1(confidence):
    x, y = _pairs()
    with pytest.raises(ValueError, match="confidence: expected a value in"):
        bootstrap_correlation(x, y, n_boot=10, confidence=confidence)


def test_bootstrap_correlation_of_pairs_does_not_depend_on_the_units():
    """Statistics in small units (×1e-3: denominators below 1) keep their correlation."""
    x, y = _pairs()
    small, unit = (bootstrap_correlation(1e-3 * x, 1e-3 * y, n_boot=200),
                   bootstrap_correlation(x, y, n_boot=200))
    for key in ("pearson", "spearman"):
        assert small[key] == pytest.approx(unit[key], rel=1e-9)
        assert small[f"{key}_ci"] == pytest.approx(unit[f"{key}_ci"], rel=1e-9)
    assert small["n_boot_valid"] == unit["n_boot_valid"] == 200


@pytest.mark.parametrize("scale", [1e-6, 1e6])
def test_clustered_bootstrap_does_not_depend_on_the_units(scale):
    """The cluster path's constant-resample test is relative to the values: the same
    data in units 1e±6 apart keeps every resample and the same intervals."""
    x, y = _pairs(12, seed=7)
    clusters = np.repeat(np.arange(6), 2)
    unit = bootstrap_correlation(x, y, n_boot=300, seed=2, clusters=clusters)
    scaled = bootstrap_correlation(scale * x, scale * y, n_boot=300, seed=2, clusters=clusters)
    for key in ("pearson_ci", "spearman_ci"):
        assert unit[key][0] is not None
        assert scaled[key] == pytest.approx(unit[key], rel=1e-6), key
    assert scaled["n_boot_valid"] == unit["n_boot_valid"]


def test_a_resample_constant_in_one_statistic_has_no_correlation():
    """A statistic that does not vary across its clusters gives no finite resample."""
    x = np.full(8, 3.0e5)
    y = np.arange(8.0)
    found = bootstrap_correlation(x, y, n_boot=50, clusters=np.repeat(np.arange(4), 2))
    assert found["n_boot_valid"] == 0 and found["pearson_ci"] == [None, None]


def test_pairs_and_one_pair_clusters_resample_alike():
    """Without clusters each pair is its own unit: the pairs path and the cluster path with
    one pair per cluster draw the same resamples and give the same intervals."""
    x, y = _pairs(10, seed=3)
    pairs = bootstrap_correlation(x, y, n_boot=300, seed=4)
    clusters = bootstrap_correlation(x, y, n_boot=300, seed=4, clusters=np.arange(10))
    for key in ("pearson_ci", "spearman_ci"):
        assert pairs[key] == pytest.approx(clusters[key], rel=1e-9), key
    assert pairs["n_boot_valid"] == clusters["n_boot_valid"]


@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_percentile_interval_of_the_pairs_bootstrap(confidence):
    """The interval is the (1 ± confidence)/2 percentiles of Pearson r over resamples of
    the pairs drawn by ``default_rng(seed)`` (numpy's corrcoef as the reference)."""
    x, y = _pairs(15, seed=5)
    found = bootstrap_correlation(x, y, n_boot=400, seed=6, confidence=confidence)
    index = np.random.default_rng(6).integers(0, 15, size=(400, 15))
    r = np.array([np.corrcoef(x[i], y[i])[0, 1] for i in index])
    tail = 50 * (1 - confidence)
    assert found["pearson_ci"] == pytest.approx(
        [np.percentile(r, tail), np.percentile(r, 100 - tail)], rel=1e-9)
    assert found["confidence"] == confidence


# ----------------------------------------------------------------- statistic_pairs
def _codec_rows(codec, splits, offset=0.0):
    return [_row(k, codec=codec, bits_per_token_actual=offset + 10.0 * (k or 0),
                 statistics={"entropy_model": "factorized", "t10_prefix_jacobian": 1.0 + (k or 0)})
            for k in splits]


def test_pooled_pairs_take_every_codec_with_two_rows_or_more():
    from rdgap.validation.correlation import statistic_pairs

    rows = _codec_rows("a", [1, 2, 3]) + _codec_rows("b", [1, 2], offset=500.0) \
        + _codec_rows("c", [4])
    groups, (x, y, splits) = statistic_pairs(rows, "t10_prefix_jacobian")
    assert sorted(groups) == ["a dce<=0.01", "b dce<=0.01", "c dce<=0.01"]
    assert x.size == y.size == 5                       # a's 3 rows and b's 2; c alone is out
    assert list(splits) == [1.0, 2.0, 3.0, 1.0, 2.0]
    assert np.allclose(x, y)                           # within-codec z-scores: offsets gone
    alone = statistic_pairs(_codec_rows("c", [4]), "t10_prefix_jacobian")[1]
    assert [a.size for a in alone] == [0, 0, 0]


def test_a_row_without_a_split_is_unit_zero():
    from rdgap.validation.correlation import statistic_pairs

    rows = _codec_rows("a", [None, 1, 2])
    _, (_, _, splits) = statistic_pairs(rows, "t10_prefix_jacobian")
    assert list(splits) == [0.0, 1.0, 2.0]


def test_correlation_records_need_three_rows_and_two_splits():
    from rdgap.validation.correlation import correlations

    def records(rows):
        return [(r["group"], r["n"], r["units"]) for r in correlations({"runs": rows}, n_boot=20)
                if r["statistic"] == "t10_prefix_jacobian"]

    three = records(_codec_rows("a", [1, 2, 3]))
    assert three == [("a dce<=0.01", 3, 3), (claims_module.POOLED, 3, 3)]
    assert records(_codec_rows("a", [1, 2])) == []                # 2 rows: no record
    flat = _codec_rows("a", [1, 2, 3])
    for r in flat:
        r["statistics"]["t10_prefix_jacobian"] = 7.0              # a constant statistic
    assert records(flat) == []
    one_split = _codec_rows("a", [2, 2]) + _codec_rows("b", [2, 2])
    for r in one_split[1::2]:                                     # varied, but one split
        r["statistics"]["t10_prefix_jacobian"] = 9.0
        r["bits_per_token_actual"] = 99.0
    assert [g for g, _, _ in records(one_split)] == []            # 4 rows, 1 unit
    two_splits = _codec_rows("a", [1, 2]) + _codec_rows("b", [1, 2])
    assert records(two_splits) == [(claims_module.POOLED, 4, 2)]


def test_a_small_but_varying_statistic_gets_a_record():
    from rdgap.validation.correlation import correlations

    rows = _codec_rows("a", [1, 2, 3])
    for k, r in enumerate(rows):
        r["statistics"]["t10_prefix_jacobian"] = 1.0 + 0.2 * k         # spread 0.4 < 1
    found = [r for r in correlations({"runs": rows}, n_boot=20)
             if r["statistic"] == "t10_prefix_jacobian"]
    assert [r["group"] for r in found] == ["a dce<=0.01", claims_module.POOLED]


def test_correlations_and_claims_default_to_2000_resamples_seed_0():
    from rdgap.validation.correlation import correlations

    results = {"runs": _codec_rows("a", list(range(1, 9)))}
    for r, bits in zip(results["runs"], [10.0, 30.0, 20.0, 40.0, 35.0, 80.0, 45.0, 60.0]):
        r["bits_per_token_actual"] = bits
    default = correlations(results)
    assert default == correlations(results, n_boot=2000, seed=0)
    assert default != correlations(results, n_boot=2000, seed=1)
    assert {r["n_boot"] for r in default} == {2000}
    claims = evaluate_claims(results)
    assert claims == evaluate_claims(results, n_boot=2000, seed=0)
    assert claims != evaluate_claims(results, n_boot=2000, seed=1)
    assert [c["numbers"]["n_boot"] for c in claims if c["name"].startswith("correlation")] \
        == [2000]


# ----------------------------------------------------------------- coverage claims
@pytest.fixture(scope="module")
def coverage_list():
    from rdgap.validation.coverage_claims import coverage_claims

    return coverage_claims(quick=True)


def test_every_coverage_claim_states_its_hypotheses_and_its_slack(coverage_list):
    assert len(coverage_list) >= 7
    for claim in coverage_list:
        assert claim["hypotheses"] and all(h["met"] is True for h in claim["hypotheses"]), \
            claim["name"]
        assert claim["gates"] is True and claim["status"] == "PASS"
        numbers = claim["numbers"]
        if "hits" in numbers:                           # a statistical experiment
            assert numbers["trials"] >= 10_000 and numbers["alpha"] == 0.01
            assert numbers["coverage"] == numbers["hits"] / numbers["trials"]
            # nearly tight: some trials miss, and the smallest slack is theirs (negative)
            assert (numbers["min_slack"] < 0) is (numbers["hits"] < numbers["trials"]), \
                claim["name"]


def test_betting_experiment_reports_its_mean_width(coverage_list):
    (claim,) = [c for c in coverage_list if c["name"].startswith("coverage[T8 betting")]
    # n = 50 fair coins at δ = 0.05: a two-sided interval about 0.4 wide (Hoeffding: 0.38)
    assert 0.3 < claim["numbers"]["mean_width"] < 0.6


def test_t4_experiments_check_the_plug_in_against_its_closed_form(monkeypatch):
    """A plug-in that lumps every fresh symbol into one (it sees only "zero or not") agrees
    with the closed form on an all-zero sample only: the experiment must refuse it."""
    import dataclasses

    from rdgap.validation import coverage_claims as module

    original = module.marginal_entropy_floor

    def lumped(symbols, *args, **kwargs):
        found = original(symbols, *args, **kwargs)
        share = float(np.mean(np.asarray(symbols) == 0))
        binary = 0.0 if share in (0.0, 1.0) else float(
            -share * np.log2(share) - (1 - share) * np.log2(1 - share))
        return dataclasses.replace(found, plugin_sum=binary)

    monkeypatch.setattr(module, "marginal_entropy_floor", lumped)
    with pytest.raises(RuntimeError, match="plug-in entropy disagrees with the closed form"):
        module.coverage_claims(quick=True)


def test_t4_experiments_say_what_their_tokens_are(coverage_list):
    t4 = {c["name"]: c for c in coverage_list if c["name"].startswith("coverage[T4")}
    single = t4["coverage[T4 marginal_entropy_floor (half-singleton law, M = 2000)]"]
    copies = t4["coverage[T4 marginal_entropy_floor (sequences of 2 equal tokens, N = 2000)]"]
    assert single["numbers"]["tokens_per_sequence"] == 1
    assert copies["numbers"]["tokens_per_sequence"] == 2
    assert [h["text"] for h in single["hypotheses"]] == ["tokens i.i.d. (m = 1)"]
    assert copies["hypotheses"][0]["text"].startswith("sequences i.i.d.; tokens inside")


def test_coverage_claims_sizes_and_input(coverage_list):
    from rdgap.validation.coverage_claims import coverage_claims

    def sizes(claims):
        return [c["numbers"].get("trials") or c["numbers"].get("cases") for c in claims]

    assert sizes(coverage_list) == [20_000, 20_000, 20_000, 20_000, 40, 20, 10_000]
    assert sizes(coverage_claims(quick=False)) == [20_000, 20_000, 20_000, 20_000, 150, 60,
                                                   10_000]
    with pytest.raises(ValueError, match="quick: expected True or False, got 'yes'"):
        coverage_claims(quick="yes")


def test_t3_experiment_is_near_tight(coverage_list):
    (t3,) = [c for c in coverage_list if c["name"].startswith("coverage[T3")]
    numbers = t3["numbers"]
    assert numbers["violations"] == 0 and 0 <= numbers["min_slack"] <= numbers["mean_slack"]
    assert numbers["mean_slack"] < 1.0        # bits: a vacuous bound would show far more


@pytest.mark.parametrize("sigma, step", [(1.0, 0.1), (2.0, 1.0), (0.5, 0.4)])
def test_t7_cell_error_is_the_exact_quantization_error(sigma, step):
    """``_gaussian_cell_error`` (the T7 check's exact ΔCE) against numerical integration of
    ``(y − step·round(y/step))²`` under N(0, σ²)."""
    from scipy import integrate, stats

    from rdgap.validation.coverage_claims import _gaussian_cell_error

    edges = np.arange(-12 * sigma // step - 1, 12 * sigma // step + 2) * step + step / 2
    total = sum(integrate.quad(lambda y, c=(lo + hi) / 2: (y - c) ** 2
                               * stats.norm.pdf(y, scale=sigma), lo, hi)[0]
                for lo, hi in zip(edges[:-1], edges[1:]))
    assert _gaussian_cell_error(sigma, step) == pytest.approx(total, rel=1e-6)
