"""`rdgap validate` end to end: the table, results.json and report.md."""

from __future__ import annotations

import json

import pytest

from rdgap.cli import main
from rdgap.validation.runner import spread_splits

REQUIRED = {"architecture", "split", "codec", "level", "bits_per_token_actual",
            "bits_per_token_estimated", "delta_ce_nats", "kl_nats", "top1_agreement"}


def _check_results(path, splits, codecs):
    results = json.loads(path.read_text())
    assert results["schema_version"] == 1 and results["generator"] == "rdgap"
    runs = results["runs"]
    assert {(r["split"], r["codec"]) for r in runs} == {(k, c) for k in splits for c in codecs}
    for row in runs:
        assert REQUIRED <= set(row)
        width = row["width"]
        # Raw fp16 costs 16 bits per channel plus the container, amortised over the window.
        if row["codec"] in ("fp16", "bf16"):
            assert row["bits_per_token_actual"] == pytest.approx(
                16 * width + row["container_bits_per_token"])
        if row["codec"] in ("fp16", "zstd-fp16"):
            assert row["top1_agreement"] > 0.99
        assert row["kl_nats"] >= 0 and 0 <= row["top1_agreement"] <= 1
    by = {(r["split"], r["codec"]): r for r in runs}
    for k in splits:  # identical reconstructions give identical distortion
        assert by[(k, "zstd-fp16")]["kl_nats"] == by[(k, "fp16")]["kl_nats"]
        assert by[(k, "zstd-fp16")]["bits_per_token_actual"] < \
            by[(k, "fp16")]["bits_per_token_actual"]
        assert by[(k, "int4-absmax")]["kl_nats"] > by[(k, "int8-absmax")]["kl_nats"]
    return results


def test_validate_on_a_local_folder(tiny_model_folder, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["validate", "--model", str(tiny_model_folder), "--splits", "1,3",
                 "--windows", "4", "--window-length", "32", "--out", str(out),
                 "--no-progress", "--variants", "none"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "bits/token" in printed and "int4-absmax" in printed
    _check_results(out / "results.json", [1, 3], ["fp16", "bf16", "int8-absmax",
                                                  "int4-absmax", "zstd-fp16"])
    assert "| split |" in (out / "report.md").read_text()
    # A re-run replaces rdgap's own files...
    assert main(["validate", "--model", str(tiny_model_folder), "--splits", "2",
                 "--windows", "2", "--window-length", "32", "--out", str(out),
                 "--no-progress", "--variants", "none"]) == 0
    assert json.loads((out / "results.json").read_text())["config"]["splits"] == [2]


def test_validate_never_overwrites_a_users_file(tiny_model_folder, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "results.json").write_text('{"my": "data"}')
    code = main(["validate", "--model", str(tiny_model_folder), "--splits", "1",
                 "--windows", "1", "--window-length", "16", "--out", str(out),
                 "--no-progress", "--variants", "none"])
    assert code == 2
    assert "not written by rdgap" in capsys.readouterr().err
    assert (out / "results.json").read_text() == '{"my": "data"}'


@pytest.mark.parametrize("argv, message", [
    (["--splits", "0"], "split: expected 0 < split < 4"),
    (["--splits", "4"], "split: expected 0 < split < 4"),
    (["--corpus", "/nonexistent/corpus.txt"], "corpus"),
    (["--windows", "0"], "--windows"),
    (["--levels", "0.05,x"], "--levels"),
    (["--levels", "-1"], "--levels"),
    (["--variants", "magic"], "variants: expected names"),
])
def test_validate_errors_are_clear(tiny_model_folder, tmp_path, capsys, argv, message):
    code = main(["validate", "--model", str(tiny_model_folder), "--out",
                 str(tmp_path / "o"), "--no-progress", "--variants", "none"] + argv)
    assert code == 2
    assert message in capsys.readouterr().err


def test_missing_model_folder(tmp_path, capsys):
    assert main(["validate", "--model", str(tmp_path / "none"), "--no-progress",
                 "--out", str(tmp_path / "o")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_empty_corpus_file(tiny_model_folder, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["validate", "--model", str(tiny_model_folder), "--corpus", str(empty),
                 "--out", str(tmp_path / "o"), "--no-progress", "--variants", "none"]) == 2
    assert "holds no text" in capsys.readouterr().err


def test_fitted_variants_are_calibrated_and_coded(tiny_model_folder, tmp_path):
    """Reference-codec variants are fitted on fit documents, calibrated to the level, and
    their rows carry the real rate next to the likelihood estimate within T2's working
    form (1 % here, plus the 64-bit per-stream constant amortised over a 64-token window)."""
    out = tmp_path / "fitted"
    assert main(["validate", "--model", str(tiny_model_folder), "--splits", "2",
                 "--windows", "3", "--window-length", "64", "--out", str(out),
                 "--no-progress", "--variants", "gaussian-fisher,klt-laplace",
                 "--levels", "0.2"]) == 0
    runs = json.loads((out / "results.json").read_text())["runs"]
    fitted = [r for r in runs if r["level"] == "dce<=0.2" and not r["codec"].startswith("zstd")]
    assert {r["codec"] for r in fitted} == {"gaussian-fisher", "klt-laplace"}
    by_codec = {r["codec"]: r for r in runs if r["level"] == "dce<=0.2"}
    zstd = by_codec["zstd-symbols[gaussian-fisher]"]  # same quantizer, so same distortion
    assert zstd["kl_nats"] == by_codec["gaussian-fisher"]["kl_nats"]
    assert zstd["bits_per_token_estimated"] is None
    for row in fitted:
        assert row["bits_per_token_estimated"] is not None and row["t2_violations"] == 0
        payload = row["bits_per_token_actual"] - row["container_bits_per_token"]
        assert payload <= 1.01 * row["bits_per_token_estimated"] + 64 / 64
        assert row["predicted_delta_ce_nats"] > 0 and row["fit_delta_ce_nats"] is not None
        assert row["saving_vs_fp16_percent"] > 50


def test_spread_splits():
    assert spread_splits(30, 3) == [8, 15, 22]
    assert spread_splits(4, 10) == [1, 2, 3]
    assert all(0 < k < 30 for k in spread_splits(30, 5)) and len(spread_splits(30, 5)) == 5


def test_validate_quick_on_the_embedded_default(tmp_path, capsys, smollm2):
    """The README's main job in its quick form: ≥3 splits of SmolLM2 on real news."""
    out = tmp_path / "quick"
    assert main(["validate", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "saving vs fp16" in printed
    results = _check_results(out / "results.json", [8, 15, 22],
                             ["fp16", "bf16", "int8-absmax", "int4-absmax", "zstd-fp16",
                              "gaussian-fisher", "zstd-symbols[gaussian-fisher]"])
    assert results["corpus"]["windows"] == 8
    for row in results["runs"]:
        assert row["width"] == 576 and row["tokens"] == 8 * 128
        if row["codec"] == "int8-absmax":
            assert row["saving_vs_fp16_percent"] > 49
        if row["codec"] == "gaussian-fisher":  # the reference codec beats every baseline
            assert row["saving_vs_fp16_percent"] > 80 and row["level"] == "dce<=0.05"
