"""`rdgap validate` end to end: the table, results.json (schema 2), report.md, plots,
claims and the exit status."""

from __future__ import annotations

import json

import pytest
import torch

from rdgap.cli import main
from rdgap.validation.runner import spread_splits

REQUIRED = {"job_id", "architecture", "split", "codec", "level", "bits_per_token_actual",
            "bits_per_token_estimated", "distortion_name", "distortion", "metrics",
            "delta_ce_nats", "kl_nats", "top1_agreement", "statistics"}
BASELINES = ["fp16", "bf16", "int8-absmax", "int4-absmax", "zstd-fp16"]


def _check_results(path, splits, codecs):
    results = json.loads(path.read_text())
    assert results["schema_version"] == 2 and results["generator"] == "rdgap"
    assert not results["partial"] and results["jobs_done"] == results["jobs"]
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
        assert row["distortion"] == row["delta_ce_nats"]
        assert row["metrics"]["kl_nats"]["mean"] == row["kl_nats"]
        assert row["statistics"]["rate_interval"] is not None  # T8 on every rate
    by = {(r["split"], r["codec"]): r for r in runs}
    for k in splits:  # identical reconstructions give identical distortion
        assert by[(k, "zstd-fp16")]["kl_nats"] == by[(k, "fp16")]["kl_nats"]
        assert by[(k, "zstd-fp16")]["bits_per_token_actual"] < \
            by[(k, "fp16")]["bits_per_token_actual"]
        assert by[(k, "int4-absmax")]["kl_nats"] > by[(k, "int8-absmax")]["kl_nats"]
    assert {c["status"] for c in results["claims"]} <= {"PASS", "FAIL"}
    assert any(c["name"].startswith("coverage[") for c in results["claims"])
    assert set(results["stages_s"]) >= {"load models", "hidden states", "code and evaluate",
                                        "statistics", "claims", "total"}
    for name in results["plots"]:
        assert (path.parent / name).stat().st_size > 1000
    return results


def test_validate_on_a_local_folder(tiny_model_folder, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["validate", "--model", str(tiny_model_folder), "--splits", "1,3",
                 "--windows", "4", "--window-length", "32", "--out", str(out),
                 "--no-progress", "--variants", "none", "--cache-dir", str(tmp_path / "c")])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "bits/token" in printed.out and "int4-absmax" in printed.out
    results = _check_results(out / "results.json", [1, 3], BASELINES)
    report = (out / "report.md").read_text()
    assert "| architecture | split |" in report and "## Claims" in report
    assert "## Time per stage" in report and "Every gating claim passed" in report
    assert "actual_vs_estimated.png" not in results["plots"]  # no likelihood model here
    assert results["cache"]["hidden_misses"] == 4  # eval and fit states at 2 splits
    # A re-run replaces rdgap's own files and reuses the cached hidden states.
    assert main(["validate", "--model", str(tiny_model_folder), "--splits", "1",
                 "--windows", "4", "--window-length", "32", "--out", str(out),
                 "--no-progress", "--variants", "none", "--cache-dir", str(tmp_path / "c")]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["architectures"][0]["splits"] == [1]
    assert again["cache"] == {"hidden_hits": 2, "hidden_misses": 0, "hidden_rejected": 0}
    first = {r["job_id"]: r for r in results["runs"]}
    for row in again["runs"]:  # the cached states give the same numbers
        assert row["kl_nats"] == first[row["job_id"]]["kl_nats"]
        assert row["bits_per_token_actual"] == first[row["job_id"]]["bits_per_token_actual"]


def test_validate_never_overwrites_a_users_file(tiny_model_folder, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "results.json").write_text('{"my": "data"}')
    code = main(["validate", "--model", str(tiny_model_folder), "--splits", "1",
                 "--windows", "2", "--window-length", "16", "--out", str(out),
                 "--no-progress", "--variants", "none", "--cache-dir", str(tmp_path / "c")])
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
    (["--shard", "2/2"], "--shard: expected 0 ≤ I < N"),
    (["--architectures", "smollm2-135m"], "--model: expected either"),
    (["--calibration-margin", "-1"], "--calibration-margin: expected a finite"),
    (["--calibration-margin", "nan"], "--calibration-margin: expected a finite"),
    (["--shift-guard", "magic"], "shift_guard: expected a fitted recipe"),
    (["--shift-guard", "klt-context-tokens"], "shift_guard: expected a fitted recipe"),
])
def test_validate_errors_are_clear(tiny_model_folder, tmp_path, capsys, argv, message):
    code = main(["validate", "--model", str(tiny_model_folder), "--out",
                 str(tmp_path / "o"), "--no-progress", "--variants", "none"] + argv)
    assert code == 2
    assert message in capsys.readouterr().err


def test_missing_model_folder(tmp_path, capsys):
    assert main(["validate", "--model", str(tmp_path / "none"), "--no-progress",
                 "--out", str(tmp_path / "o")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_empty_corpus_file(tiny_model_folder, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["validate", "--model", str(tiny_model_folder), "--corpus", str(empty),
                 "--out", str(tmp_path / "o"), "--no-progress", "--variants", "none"]) == 2
    assert "holds no text" in capsys.readouterr().err


def test_fitted_variants_are_calibrated_and_coded(tiny_model_folder, tmp_path):
    """Reference-codec variants are fitted on fit documents, calibrated to the level, and
    their rows carry the real rate next to the likelihood estimate within T2's working
    form (1 % here, plus the 64-bit per-stream constant amortised over a 64-token window),
    and the bound statistics of their codec."""
    out = tmp_path / "fitted"
    assert main(["validate", "--model", str(tiny_model_folder), "--splits", "2",
                 "--windows", "3", "--window-length", "64", "--out", str(out),
                 "--no-progress", "--variants", "gaussian-fisher,klt-laplace",
                 "--levels", "0.2", "--cache-dir", str(tmp_path / "c")]) in (0, 1)
    results = json.loads((out / "results.json").read_text())
    runs = results["runs"]
    fitted = [r for r in runs if r["level"] == "dce<=0.2" and not r["codec"].startswith("zstd")]
    assert {r["codec"] for r in fitted} == {"gaussian-fisher", "klt-laplace"}
    by_codec = {r["codec"]: r for r in runs if r["level"] == "dce<=0.2"}
    zstd = by_codec["zstd-symbols[gaussian-fisher]"]  # same quantizer, so same distortion
    assert zstd["kl_nats"] == by_codec["gaussian-fisher"]["kl_nats"]
    assert zstd["bits_per_token_estimated"] is None
    assert zstd["job_id"] == by_codec["gaussian-fisher"]["job_id"]  # one job, two rows
    assert zstd["job_id"].endswith("/split=2/gaussian-fisher/level=0.2")
    for row in fitted:
        assert row["bits_per_token_estimated"] is not None and row["t2_violations"] == 0
        assert row["t2_proven_violations"] == 0 and row["t2_proven_smallest_margin_bits"] > 0
        payload = row["bits_per_token_actual"] - row["container_bits_per_token"]
        assert payload <= 1.01 * row["bits_per_token_estimated"] + 64 / 64
        assert row["predicted_delta_ce_nats"] > 0 and row["fit_delta_ce_nats"] is not None
        assert row["saving_vs_fp16_percent"] > 50
        assert row["statistics"]["t3_logdet_diag"] is not None
        assert row["statistics"]["t10_prefix_jacobian"] > 0
    assert {c["name"].split("[")[0] for c in results["claims"]} >= {
        "rate_within_bounds", "t2_proven_length", "t2_working_form", "heldout_rate_bound"}
    assert "rd_" in " ".join(results["plots"])


def test_spread_splits():
    assert spread_splits(30, 3) == [8, 15, 22]
    assert spread_splits(4, 10) == [1, 2, 3]
    assert all(0 < k < 30 for k in spread_splits(30, 5)) and len(spread_splits(30, 5)) == 5


def test_validate_quick_on_the_shipped_architectures(tmp_path, capsys, smollm2):
    """The README's main job in its quick form: every shipped architecture at 3 splits,
    results.json, report.md and the plots."""
    out = tmp_path / "quick"
    code = main(["validate", "--quick", "--out", str(out), "--no-progress"])
    printed = capsys.readouterr()
    results = json.loads((out / "results.json").read_text())
    assert code == (1 if any(c["gates"] and c["status"] == "FAIL"
                             for c in results["claims"]) else 0), printed.err
    assert "saving vs fp16" in printed.out
    assert [a["name"] for a in results["architectures"]] == [
        "smollm2-135m", "all-minilm-l6-v2", "digits-vit"]
    lm = [r for r in results["runs"] if r["architecture"] == "smollm2-135m"]
    assert {(r["split"], r["codec"]) for r in lm} == {
        (k, c) for k in [8, 15, 22] for c in BASELINES + ["gaussian-fisher",
                                                         "zstd-symbols[gaussian-fisher]"]}
    for row in lm:
        assert row["width"] == 576 and row["tokens"] == 8 * 128
        if row["codec"] == "int8-absmax":
            assert row["saving_vs_fp16_percent"] > 49
        if row["codec"] == "gaussian-fisher":  # the reference codec beats every baseline
            assert row["saving_vs_fp16_percent"] > 80 and row["level"] == "dce<=0.05"
    for arch in results["architectures"]:
        assert len(arch["splits"]) == 3
        assert any(r["architecture"] == arch["name"] and r["codec"] == "gaussian-fisher"
                   for r in results["runs"])
    assert results["plots"] and all((out / name).is_file() for name in results["plots"])
    report = (out / "report.md").read_text()
    assert "# rdgap validate (quick run)" in report and "## Claims" in report


def test_results_are_readable_like_any_file_written_under_the_umask(tmp_path):
    import os
    import stat

    from rdgap.validation.report import _atomic_write

    umask = os.umask(0o022)
    try:
        _atomic_write(tmp_path / "results.json", "{}")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) == 0o644


@pytest.fixture(scope="module")
def loud_model_folder(tmp_path_factory, smollm2):
    """A tiny Llama whose residual stream goes beyond fp16's ±65504 (to ~1e5 and more), as
    Gemma-3's does: its embedding is scaled by 1e7 (RMSNorm keeps the logits sane)."""
    from rdgap.validation.models import tiny_llama

    folder = tmp_path_factory.mktemp("loud")
    model = tiny_llama(num_layers=3, hidden_size=32, vocab_size=len(smollm2.tokenizer), seed=2)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(1e7)
    model.save_pretrained(folder)
    smollm2.tokenizer.save_pretrained(folder)
    return folder


def test_a_codec_that_cannot_code_a_state_does_not_stop_the_run(loud_model_folder, tmp_path,
                                                                 capsys):
    out = tmp_path / "loud"
    code = main(["validate", "--model", str(loud_model_folder), "--splits", "1,2",
                 "--windows", "2", "--window-length", "16", "--out", str(out),
                 "--no-progress", "--variants", "none", "--cache-dir", str(tmp_path / "c")])
    printed = capsys.readouterr()
    assert code in (0, 1), printed.err
    results = json.loads((out / "results.json").read_text())
    refused = {(r["split"], r["codec"]): r["reason"] for r in results["refused"]}
    assert set(refused) == {(k, c) for k in (1, 2) for c in ("fp16", "zstd-fp16")}
    assert all("float16 range" in reason for reason in refused.values())
    assert {(r["split"], r["codec"]) for r in results["runs"]} == {
        (k, c) for k in (1, 2) for c in ("bf16", "int8-absmax", "int4-absmax")}
    assert "refused" in printed.err and "float16 range" in printed.err
    assert "## Codecs that could not code a state" in (out / "report.md").read_text()


def test_a_library_error_is_a_message_with_its_own_exit_status(tiny_model_folder, tmp_path,
                                                               capsys, monkeypatch):
    from rdgap import cli
    from rdgap.validation import runner

    def broken(*args, **kwargs):
        raise RuntimeError("the kernel ran out of memory")

    monkeypatch.setattr(runner, "run_validation", broken)
    argv = ["validate", "--model", str(tiny_model_folder), "--out", str(tmp_path / "o"),
            "--no-progress"]
    assert main(argv) == cli.EXIT_RUN_FAILED == 3
    err = capsys.readouterr().err
    assert "could not complete: RuntimeError: the kernel ran out of memory" in err
    assert "Traceback" not in err and "RDGAP_TRACEBACK=1" in err
    monkeypatch.setenv("RDGAP_TRACEBACK", "1")
    with pytest.raises(RuntimeError, match="out of memory"):
        main(argv)
    assert (cli.EXIT_CLAIM_FAILED, cli.EXIT_USAGE) == (1, 2)


def test_validate_picks_the_image_task_of_a_vit_folder(tmp_path, capsys):
    from tiny_architectures import build

    folder = tmp_path / "tiny-vit"
    build("vit").save_pretrained(folder)
    out = tmp_path / "vit"
    code = main(["validate", "--model", str(folder), "--splits", "2", "--windows", "2",
                 "--out", str(out), "--no-progress", "--variants", "none",
                 "--cache-dir", str(tmp_path / "c")])
    printed = capsys.readouterr()
    assert code in (0, 1), printed.err
    assert "tiny-vit: image classification (model_type 'vit'" in printed.out
    results = json.loads((out / "results.json").read_text())
    assert results["architectures"][0]["task"] == "image classification"
    assert {r["distortion_name"] for r in results["runs"]} == {"delta_ce_nats"}
    assert all("accuracy_change" in r["metrics"] for r in results["runs"])


def test_fit_on_news_evaluate_on_newsgroups(tiny_model_folder, tmp_path):
    """Domain shift: every fitted row names both corpora and says whether the evaluation
    documents met its level; report.md has the section."""
    out = tmp_path / "shift"
    assert main(["validate", "--model", str(tiny_model_folder), "--splits", "2",
                 "--windows", "3", "--window-length", "48", "--out", str(out),
                 "--no-progress", "--variants", "gaussian-std", "--levels", "0.2",
                 "--eval-corpus", "newsgroups", "--cache-dir", str(tmp_path / "c")]) in (0, 1)
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["eval_corpus"] == "newsgroups"
    assert results["architectures"][0]["corpora"] == {"fit": "lee_background",
                                                      "eval": "newsgroups"}
    fitted = [r for r in results["runs"] if r["level"]]
    assert fitted and all(r["level_target"] == 0.2 for r in fitted)
    for row in fitted:
        low, high = row["distortion_ci"]
        assert row["level_status"] == ("met" if high <= 0.2 else
                                       "missed" if low > 0.2 else "unresolved")
        assert (row["fit_corpus"], row["eval_corpus"]) == ("lee_background", "newsgroups")
    assert all(r["level_status"] is None for r in results["runs"] if not r["level"])
    assert "## Levels on evaluation documents" in (out / "report.md").read_text()


def test_a_row_whose_interval_lies_above_its_level_is_flagged():
    from rdgap.validation.levels import levels_section
    from rdgap.validation.runner import level_status

    assert level_status(0.05, 0.06, 0.08) == "missed"
    assert level_status(0.05, 0.01, 0.05) == "met"
    assert level_status(0.05, 0.04, 0.06) == "unresolved"
    assert level_status(0.05, None, None) == "unresolved"
    row = {"architecture": "a", "split": 2, "codec": "gaussian-std", "level_target": 0.05,
           "distortion_name": "delta_ce_nats", "distortion": 0.07, "distortion_ci": [0.06, 0.08],
           "fit_corpus": "lee_background", "eval_corpus": "newsgroups", "level_status": "missed"}
    text = "\n".join(levels_section({"runs": [row, row | {"level_status": "met"}]}))
    assert "| MISSED |" in text and "| met |" in text and "1 of 2 rows missed" in text


@pytest.mark.parametrize("name", ["falcon", "opt-project-in"])
def test_validate_fits_codecs_on_other_families(name, smollm2, tmp_path):
    """Falcon (layers return tuples) and OPT with project_in (embedding width 32 ≠ 64):
    folders load as causal LMs, their splits are exact, the Fisher and calibration run
    through the suffix, and the fitted rows are coded."""
    from tiny_architectures import build

    folder = tmp_path / name
    build(name, vocab_size=len(smollm2.tokenizer)).save_pretrained(folder)
    smollm2.tokenizer.save_pretrained(folder)
    out = tmp_path / "out"
    assert main(["validate", "--model", str(folder), "--splits", "2", "--windows", "2",
                 "--window-length", "32", "--out", str(out), "--no-progress",
                 "--variants", "gaussian-fisher", "--levels", "0.2",
                 "--cache-dir", str(tmp_path / "c")]) in (0, 1)
    results = json.loads((out / "results.json").read_text())
    assert results["architectures"][0]["task"] == "next-token prediction"
    by = {r["codec"]: r for r in results["runs"]}
    assert by["fp16"]["top1_agreement"] > 0.99
    assert by["gaussian-fisher"]["level_status"] in ("met", "missed", "unresolved")
    assert by["gaussian-fisher"]["bits_per_token_actual"] < by["int8-absmax"]["bits_per_token_actual"]


def test_windows_all_means_every_document_and_a_bad_count_is_named():
    """``--windows all`` (the full run's default) reaches the config as None (every
    evaluation document with a full window); a count overrides it; text that is neither
    is a usage error naming --windows."""
    from rdgap.cli import _validate_config, build_parser

    parser = build_parser()
    assert _validate_config(parser.parse_args(["validate", "--windows", "all"])).windows is None
    assert _validate_config(parser.parse_args(["validate"])).windows is None
    assert _validate_config(parser.parse_args(["validate", "--windows", "7"])).windows == 7
    quick = _validate_config(parser.parse_args(["validate", "--quick", "--windows", "all"]))
    assert quick.windows is None and quick.quick_run
    with pytest.raises(SystemExit):
        parser.parse_args(["validate", "--windows", "many"])
    with pytest.raises(ValueError, match="--windows"):
        _validate_config(parser.parse_args(["validate", "--windows", "0"]))


def test_a_calibration_margin_reaches_every_fitted_recipe_and_its_rows(tiny_model_folder,
                                                                      tmp_path):
    """``--calibration-margin Z`` (issue 19) calibrates every fitted recipe so that its probe
    ΔCE plus Z standard errors meets the level: the rows say Z and the probe's s.e., the
    criterion holds on them, and the step is finer than without the margin (more bits on the
    same windows; the tiny random model's ΔCE is too noisy to order). A config that asks for a negative or boolean
    margin is refused, naming the setting."""
    from rdgap.validation.runner import ValidateConfig

    rows = {}
    for margin in (0, 3):
        out = tmp_path / f"margin{margin}"
        assert main(["validate", "--model", str(tiny_model_folder), "--splits", "2",
                     "--windows", "3", "--window-length", "64", "--out", str(out),
                     "--no-progress", "--variants", "klt-laplace", "--levels", "0.002",
                     "--calibration-margin", str(margin), "--other-corpora", "none",
                     "--cache-dir", str(tmp_path / "c")]) in (0, 1)
        results = json.loads((out / "results.json").read_text())
        assert results["config"]["calibration_margin"] == margin
        (rows[margin],) = [r for r in results["runs"] if r["codec"] == "klt-laplace"]
    for margin, row in rows.items():
        assert row["calibration_margin"] == margin
        assert row["fit_delta_ce_stderr_nats"] is not None and row["fit_delta_ce_stderr_nats"] > 0
        assert row["fit_delta_ce_nats"] + margin * row["fit_delta_ce_stderr_nats"] <= 0.002 + 1e-12
    assert rows[3]["bits_per_token_actual"] > rows[0]["bits_per_token_actual"]
    for bad in (-0.5, True, float("inf")):
        with pytest.raises(ValueError, match="calibration_margin"):
            ValidateConfig(calibration_margin=bad).check()


def test_a_shift_guard_guards_every_other_fitted_recipe(tiny_model_folder, tmp_path):
    """``--shift-guard gaussian-fisher`` (issue 19) fits every other fitted recipe behind
    the shift guard: its row is named ``<recipe>-sg`` and codes with the guarded codec
    (stream id ``sg-…``), measured on the other texts like any fitted row; the fallback
    itself stays unguarded. ``fit_stage.guard_of`` leaves out the fallback only: recipes
    that code token ids and the window-controlled ones are guarded too."""
    from rdgap.validation.fit_stage import guard_of

    out = tmp_path / "guarded"
    assert main(["validate", "--model", str(tiny_model_folder), "--splits", "2",
                 "--windows", "3", "--window-length", "64", "--out", str(out),
                 "--no-progress", "--variants", "gaussian-fisher,klt-laplace",
                 "--levels", "0.05", "--shift-guard", "gaussian-fisher",
                 "--cache-dir", str(tmp_path / "c")]) in (0, 1)
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["shift_guard"] == "gaussian-fisher"
    fitted = {r["codec"]: r for r in results["runs"] if r["level"] == "dce<=0.05"}
    assert set(fitted) == {"gaussian-fisher", "zstd-symbols[gaussian-fisher]", "klt-laplace-sg"}
    guarded = fitted["klt-laplace-sg"]
    assert set(guarded["other_text"]) == {"newsgroups", "wikipedia"}
    assert guarded["bits_per_token_actual"] > 0 and guarded["t2_violations"] == 0
    assert guard_of("klt-laplace", "gaussian-fisher") == "gaussian-fisher"
    assert guard_of("gaussian-fisher", "gaussian-fisher") is None
    for name in ("klt-context-tokens", "klt-context-tokens-table", "klt-context-wc",
                 "klt-laplace-wc", "gaussian-fisher-wc"):
        assert guard_of(name, "gaussian-fisher") == "gaussian-fisher"
    with pytest.raises(ValueError, match="variant: expected one of"):
        guard_of("no-such-recipe", "gaussian-fisher")
    assert guard_of("klt-laplace", None) is None
