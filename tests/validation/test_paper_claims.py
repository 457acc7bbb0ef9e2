"""The paper's claims checked (validation.paper_claims): each verdict on results whose answer
is known — supported, contradicted, and undecided when the independent units are too few."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from rdgap.validation.paper_claims import VERDICTS, paper_claims

from .statistics_data import results_document

SUPPORTED, CONTRADICTED, UNDECIDED = VERDICTS


@pytest.fixture(scope="module")
def document():
    return results_document(np.random.default_rng(3))


def verdicts(results, scope="synthetic"):
    return {r["claim"]: r for r in paper_claims(results, n_boot=500) if r["scope"] == scope}


JOINT = {"klt-context"}


def _rows(rates: dict, statistic=None, estimate_excess: float = 0.0) -> dict:
    """One row per (codec, split): ``rates[codec][split - 1]``; ``klt-context`` is joint."""
    runs = []
    for codec, values in rates.items():
        for split, rate in enumerate(values, start=1):
            runs.append({"architecture": "x", "split": split, "codec": codec, "level": "l",
                         "tokens": 256, "windows": 1, "container_bits_per_token": 0.0,
                         "bits_per_token_actual": rate,
                         "bits_per_token_estimated": (rate - 64 / 256) / (1 + estimate_excess),
                         "distortion": 0.01,
                         "statistics": {"entropy_model": "joint" if codec in JOINT
                                        else "factorized",
                                        "t10_prefix_jacobian": None if statistic is None
                                        else statistic[split - 1]}})
    return {"config": {"variants": ["gaussian-std", "klt-laplace"]}, "runs": runs}


def test_depth_and_tracking_claims_are_supported_on_a_driven_rate(document):
    found = verdicts(document)
    assert found["the rate grows with split depth"]["verdict"] == SUPPORTED
    assert found["the rate grows with split depth"]["units"] == 5
    assert found["rates track the log-det covariance of the hidden states across splits"][
        "verdict"] == SUPPORTED


def test_a_falling_rate_contradicts_the_depth_claim_and_shuffled_splits_do_not_support_it(
        document):
    falling = copy.deepcopy(document)
    for r in falling["runs"]:
        r["split"] = 6 - r["split"]
    assert verdicts(falling)["the rate grows with split depth"]["verdict"] == CONTRADICTED
    shuffled = copy.deepcopy(document)
    for r, split in zip(shuffled["runs"], [3, 1, 5, 2, 4]):
        r["split"] = split
    assert verdicts(shuffled)["the rate grows with split depth"]["verdict"] != SUPPORTED


def test_too_few_splits_are_undecided(document):
    three = dict(document, runs=document["runs"][:3])
    found = verdicts(three)
    assert found["the rate grows with split depth"]["verdict"] == UNDECIDED
    assert found["the rate grows with split depth"]["units"] == 3
    assert all(r["verdict"] == UNDECIDED and r["units"] == 1
               for r in paper_claims(three, n_boot=100) if r["scope"] == "all"
               and r["units"] > 0)


def test_the_simplest_codec_beaten_everywhere_contradicts_the_claim():
    """Factorized (the simplest entropy model) against joint at each split."""
    claim = "the simplest codec is not beaten by the complex ones"
    simple = [100.0, 110.0, 120.0, 130.0, 140.0]
    better = _rows({"gaussian-std": simple, "klt-laplace": [2 * r for r in simple],
                    "klt-context": [1.1 * r for r in simple]})
    assert verdicts(better, "x")[claim]["verdict"] == SUPPORTED
    beaten = _rows({"gaussian-std": simple, "klt-context": [0.9 * r for r in simple]})
    record = verdicts(beaten, "x")[claim]
    assert record["verdict"] == CONTRADICTED
    assert "gaussian-std vs klt-context" in record["numbers"]
    mixed = _rows({"gaussian-std": simple,
                   "klt-context": [r * f for r, f in zip(simple, [0.9, 1.1, 0.9, 1.1, 1.0])]})
    assert verdicts(mixed, "x")[claim]["verdict"] == UNDECIDED
    alone = _rows({"gaussian-std": simple, "klt-laplace": [0.5 * r for r in simple]})
    record = verdicts(alone, "x")[claim]                 # no joint codec: nothing to compare
    assert record["verdict"] == UNDECIDED and record["units"] == 0


@pytest.mark.parametrize("excess, verdict", [(0.005, SUPPORTED), (0.03, CONTRADICTED)])
def test_bytes_near_the_estimate(excess, verdict):
    rows = _rows({"gaussian-std": [100.0, 110.0, 120.0, 130.0]}, estimate_excess=excess)
    record = verdicts(rows, "x")["real bytes are near the estimate"]
    assert record["verdict"] == verdict and record["units"] == 4
