"""The held-out rate bound with the betting interval (issue 14, items 2-4).

The statistics (:func:`rdgap.validation.rate_bounds._heldout`) and the report's
held-out section (:func:`rdgap.validation.report_claims._heldout_section`) on
per-document rates shaped like the real ones: informative with a small range
B, honestly uninformative with B the escape range.
"""

from __future__ import annotations

import numpy as np
import pytest

from rdgap.bounds import betting_interval, betting_upper, empirical_bernstein_upper
from rdgap.validation.rate_bounds import _heldout
from rdgap.validation.report_claims import _heldout_section


def _rates(documents: int, seed: int = 14) -> np.ndarray:
    return np.random.default_rng(seed).normal(1327.0, 66.0, size=documents).clip(0, None)


def _run(rates: np.ndarray, bound: float, codec: str) -> dict:
    statistics = {"entropy_model": "factorized", "confidence": 0.95, "tokens_per_window": 128,
                  "rate_ci_student_t": [rates.mean() - 13.0, rates.mean() + 13.0]}
    statistics.update(_heldout(rates, bound, 0.05))
    return {"architecture": "synthetic", "split": 3, "codec": codec, "statistics": statistics}


def test_heldout_statistics_are_the_betting_bounds_with_their_range():
    rates = _rates(100)
    s = _heldout(rates, 2656.0, 0.05)
    assert s["heldout_rate_upper"] == pytest.approx(betting_upper(rates, 0.05, 2656.0))
    assert s["heldout_rate_interval"] == pytest.approx(list(betting_interval(rates, 0.05,
                                                                              2656.0)))
    assert s["heldout_rate_upper_bernstein"] == pytest.approx(
        empirical_bernstein_upper(rates, 0.05, 2656.0))
    assert s["heldout_rate_range"] == 2656.0 and s["heldout_documents"] == 100
    assert "B = 2656" in s["heldout_rate_method"] and "100 documents" in s["heldout_rate_method"]
    # Issue 14's figure: within +-5 % at B = 2,656 with 100 documents, betting much tighter.
    low, high = s["heldout_rate_interval"]
    assert (high - low) / 2 < 0.05 * s["heldout_rate_mean"]
    assert s["heldout_informative"]
    assert s["heldout_rate_upper"] < s["heldout_rate_upper_bernstein"] - 100


def test_report_shows_proven_and_student_t_intervals_documents_and_range():
    small = _run(_rates(100), 2656.0, "capped")
    escape = _run(_rates(32), 35_314.0, "escape-range")
    text = "\n".join(_heldout_section([small, escape, {"statistics": {}}]))
    assert "## Held-out rate: proven interval and asymptotic interval" in text
    assert "Student-t (asymptotic)" in text and "not a guarantee" in text
    rows = [line for line in text.splitlines() if line.startswith("| synthetic |")]
    assert len(rows) == 2
    low, high = small["statistics"]["heldout_rate_interval"]
    assert f"| 100 × 128 | 2,656 |" in rows[0] and f"[{low:,.1f}, {high:,.1f}]" in rows[0]
    assert rows[0].endswith("| informative (±10 %) |")
    assert "| 32 × 128 | 35,314 |" in rows[1]
    assert rows[1].endswith("| uninformative: B is the escape range |")
    assert _heldout_section([{"statistics": {"entropy_model": None}}]) == []
