"""``rdgap validate --shift-guard`` guards the recipes it once left out (issue 19): those
that code token ids and the window-controlled ones, end to end on the tiny model."""

from __future__ import annotations

import json

from rdgap.cli import main


def test_a_shift_guard_guards_token_id_and_window_controlled_recipes(tiny_model_folder,
                                                                     tmp_path):
    """``--shift-guard gaussian-fisher`` with ``klt-context-tokens`` and ``klt-context-wc``
    (issue 19): both rows are guarded (``<recipe>-sg``, streams ``sg-…``), the token row's
    codec takes each window's ids (its streams decode, T2 holds) and both are measured on
    the other texts."""
    out = tmp_path / "guarded"
    assert main(["validate", "--model", str(tiny_model_folder), "--splits", "2",
                 "--windows", "3", "--window-length", "64", "--out", str(out),
                 "--no-progress", "--variants", "klt-context-tokens,klt-context-wc",
                 "--levels", "0.05", "--shift-guard", "gaussian-fisher",
                 "--cache-dir", str(tmp_path / "c")]) in (0, 1)
    results = json.loads((out / "results.json").read_text())
    fitted = {r["codec"]: r for r in results["runs"] if r["level"] == "dce<=0.05"}
    assert {"klt-context-tokens-sg", "klt-context-wc-sg"} <= set(fitted)
    assert not {"klt-context-tokens", "klt-context-wc"} & set(fitted)
    for name in ("klt-context-tokens-sg", "klt-context-wc-sg"):
        row = fitted[name]
        assert set(row["other_text"]) == {"newsgroups", "wikipedia"}
        assert row["bits_per_token_actual"] > 0 and row["t2_violations"] == 0
