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


def test_the_fallback_is_fitted_once_per_split_and_level(monkeypatch):
    """Every guarded job at a split and level, and the fallback's own job, share one fit of
    the fallback (it was fitted again for each guarded recipe); another split or level
    fits its own, with the run's cap and margin and no token ids."""
    from types import SimpleNamespace

    from rdgap.codecs import recipes
    from rdgap.validation import fit_stage

    calls = []

    class Counting:
        def fit(self, context, input_ids, level, **settings):
            calls.append((context, input_ids, level, settings))
            return object()

    monkeypatch.setattr(recipes, "recipe", lambda name: Counting())
    arch = SimpleNamespace(fallbacks={}, fit_context=lambda split: f"context {split}")
    config = SimpleNamespace(shift_guard="gaussian-fisher", rate_cap=2.0,
                             calibration_margin=2.0)
    job = lambda split, level: SimpleNamespace(split=split, level=level)  # noqa: E731
    first = fit_stage.shared_fallback(arch, job(8, 0.05), config)
    assert fit_stage.shared_fallback(arch, job(8, 0.05), config) is first
    assert fit_stage.shared_fallback(arch, job(8, 0.01), config) is not first
    assert fit_stage.shared_fallback(arch, job(15, 0.05), config) is not first
    assert len(calls) == 3
    assert calls[0] == ("context 8", None, 0.05, {"cap": 2.0, "margin": 2.0})
