"""The shift-guard tables of docs/validate.md are the committed reports' numbers.

docs/validate.md, "A shift guard and a calibration margin", quotes six committed
``rdgap validate`` runs (validation/reports/shift-guard-*). This test rebuilds every row
of those tables from the reports' results.json, so a rerun that changes a report, or a
number typed into the docs by hand, fails here; it also checks the claim the section
makes: every fitted row within level + 2 s.e. on every text, every gating claim PASS.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "docs" / "validate.md").read_text(encoding="utf-8")
#: report folder, decimals of ΔCE in its table, whether the table has a split column
REPORTS = [("shift-guard-s15", 3, False), ("shift-guard-s8", 3, False),
           ("shift-guard-level0.01", 4, True), ("shift-guard-tokens-wc", 3, False),
           ("shift-guard-plain", 4, True), ("shift-guard-tokens-wc-s8", 3, False)]
TEXTS = ("newsgroups", "wikipedia")


def _cell(bits: float, mean: float, stderr: float, decimals: int) -> str:
    return f"{bits:,.0f} · {mean:.{decimals}f} ± {stderr:.{decimals}f}"


def _fitted_rows(name: str) -> list[dict]:
    results = json.loads((ROOT / "validation" / "reports" / name / "results.json").read_text())
    rows = [r for r in results["runs"] if r.get("level_target")
            and not r["codec"].startswith("zstd-symbols")]
    assert rows, name
    return rows, results


@pytest.mark.parametrize("name, decimals, with_split", REPORTS)
def test_the_docs_table_is_the_committed_report(name, decimals, with_split):
    rows, _ = _fitted_rows(name)
    for row in rows:
        cells = [f"`{row['codec']}`",
                 _cell(row["bits_per_token_actual"], row["delta_ce_nats"],
                       row["delta_ce_nats_stderr"], decimals)]
        cells += [_cell(row["other_text"][t]["bits_per_token_actual"],
                        row["other_text"][t]["distortion"],
                        row["other_text"][t]["distortion_stderr"], decimals) for t in TEXTS]
        line = "| " + (f"{row['split']} | " if with_split else "") + " | ".join(cells) + " |"
        assert line in DOCS, f"{name}: docs/validate.md lacks the row\n{line}"


@pytest.mark.parametrize("name", [name for name, _, _ in REPORTS])
def test_every_row_holds_and_every_gating_claim_passes(name):
    rows, results = _fitted_rows(name)
    for row in rows:
        assert row["delta_ce_nats"] <= row["level_target"] + 2 * row["delta_ce_nats_stderr"]
        assert all(row["other_text"][t]["within_level_2se"] for t in TEXTS), row["codec"]
    gating = [c for c in results["claims"] if c.get("gates")]
    assert gating and all(c["status"] == "PASS" for c in gating)
    assert results["config"]["shift_guard"] == "gaussian-fisher"
    assert results["config"]["calibration_margin"] == 2
