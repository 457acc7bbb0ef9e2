"""Fitted codecs measured on other text (issue 19): the runner's measurement, the gating
prediction ``level_holds_on_other_text``, its report section and the CLI option."""

from __future__ import annotations

import argparse
import copy

import pytest

from rdgap.cli import _validate_config
from rdgap.validation.corpus import load_documents, split_documents
from rdgap.validation.other_text import other_corpora
from rdgap.validation.other_text_claim import level_on_other_text_claim
from rdgap.validation.report_claims import other_text_section
from rdgap.validation.runner import ValidateConfig, finalize, merge_results, run_validation

CORPORA = ["newsgroups", "wikipedia"]


# ----------------------------------------------------------------- which corpora
def test_the_default_is_every_named_corpus_but_the_fit_and_evaluation_ones():
    assert other_corpora(None, "lee_background", "lee_background") == tuple(CORPORA)
    assert other_corpora(None, "lee_background", "newsgroups") == ("wikipedia",)
    assert other_corpora(None, "corpus.txt", "corpus.txt") == \
        ("lee_background", "newsgroups", "wikipedia")
    assert other_corpora((), "lee_background", "lee_background") == ()
    assert ValidateConfig().resolved_other_corpora() == tuple(CORPORA)
    assert ValidateConfig(fit_corpus="wikipedia").resolved_other_corpora() == \
        ("newsgroups",)  # the evaluation corpus is still lee_background


def test_bad_other_corpora_are_clear_errors():
    with pytest.raises(ValueError, match="other_corpora: 'lee_background' is the run's fit"):
        other_corpora(("lee_background",), "lee_background", "lee_background")
    with pytest.raises(ValueError, match="evaluation corpus"):
        other_corpora(("newsgroups",), "lee_background", "newsgroups")
    with pytest.raises(ValueError, match="each corpus once"):
        other_corpora(("wikipedia", "wikipedia"), "lee_background", "lee_background")
    with pytest.raises(ValueError, match="tuple of corpus names"):
        other_corpora("wikipedia", "lee_background", "lee_background")
    with pytest.raises(ValueError, match="other_corpora"):
        ValidateConfig(other_corpora=("lee_background",)).check()


def _args(**given):
    """The validate command's parsed defaults (from the real parser, so a new option
    never goes missing here), with ``given`` on top."""
    from rdgap.cli import build_parser

    parsed = vars(build_parser().parse_args(["validate"]))
    return argparse.Namespace(**(parsed | given))


def test_the_cli_option():
    assert _validate_config(_args(other_corpora="wikipedia")).other_corpora == ("wikipedia",)
    assert _validate_config(_args(other_corpora="none")).other_corpora == ()
    assert _validate_config(_args()).other_corpora is None
    with pytest.raises(ValueError, match="--other-corpora"):
        _validate_config(_args(other_corpora=" , "))


# ----------------------------------------------------------------- the claim
def _row(split=2, codec="klt-context", level=0.05, mean=0.048, stderr=0.005, other=None,
         skipped=None):
    row = {"architecture": "lm", "split": split, "codec": codec, "level": f"dce<={level:g}",
           "level_target": level, "distortion_name": "delta_ce_nats", "distortion": mean,
           "metrics": {"delta_ce_nats": {"mean": mean, "stderr": stderr}},
           "bits_per_token_actual": 700.0, "eval_corpus": "lee_background",
           "fit_corpus": "lee_background", "other_text_skipped": skipped,
           "other_text": {} if other is None else other}
    return row


def _measured(mean, stderr=0.005, level=0.05, bits=800.0):
    return {"distortion_name": "delta_ce_nats", "distortion": mean, "distortion_stderr": stderr,
            "distortion_ci": [mean - 2 * stderr, mean + 2 * stderr], "level_target": level,
            "within_level_2se": mean <= level + 2 * stderr, "bits_per_token_actual": bits,
            "bits_per_token_estimated": bits - 5, "windows": 32, "documents": 32,
            "tokens": 8192}


def _holding_rows():
    return [_row(other={"newsgroups": _measured(0.05), "wikipedia": _measured(0.055)}),
            _row(split=8, codec="gaussian-fisher", other={"newsgroups": _measured(0.045),
                                                          "wikipedia": _measured(0.05)}),
            {"architecture": "lm", "split": 2, "codec": "fp16", "level": None,
             "level_target": None}]


def test_the_claim_passes_when_every_level_holds():
    claim = level_on_other_text_claim("lm", _holding_rows(), CORPORA)
    assert claim["status"] == "PASS" and claim["gates"] and claim["kind"] == "prediction"
    numbers = claim["numbers"]
    assert numbers["rows"] == 2 and numbers["checks"] == 6 and numbers["other_text_checks"] == 4
    worst = numbers["worst"]
    assert (worst["split"], worst["codec"], worst["corpus"]) == (2, "klt-context", "wikipedia")
    assert worst["excess"] == pytest.approx(0.055 - 0.05 - 0.01)
    assert "predicted from the calibration" in claim["hypotheses"][0]["text"]


def test_a_level_that_doubles_on_other_text_fails_the_claim():
    """The issue's case: calibrated to 0.05 on news, 0.10 ± 0.007 on encyclopedic text."""
    rows = _holding_rows()
    rows[0]["other_text"]["wikipedia"] = _measured(0.10, stderr=0.007)
    claim = level_on_other_text_claim("lm", rows, CORPORA)
    assert claim["status"] == "FAIL" and claim["gates"]
    worst = claim["numbers"]["worst"]
    assert (worst["split"], worst["codec"], worst["level"], worst["corpus"]) == \
        (2, "klt-context", "dce<=0.05", "wikipedia")
    assert worst["distortion"] == 0.10 and worst["stderr"] == 0.007
    assert "split 2 klt-context dce<=0.05 on wikipedia: 0.1 ± 0.007 vs level 0.05" in \
        claim["reason"]
    # ... and just inside level + 2 s.e. it holds
    rows[0]["other_text"]["wikipedia"] = _measured(0.05 + 2 * 0.007 - 1e-9, stderr=0.007)
    assert level_on_other_text_claim("lm", rows, CORPORA)["status"] == "PASS"


def test_a_missed_level_on_the_evaluation_documents_fails_too():
    rows = _holding_rows()
    rows[1]["distortion"] = 0.08
    claim = level_on_other_text_claim("lm", rows, CORPORA)
    assert claim["status"] == "FAIL"
    assert claim["numbers"]["worst"]["corpus"] == "evaluation: lee_background"


def test_a_missing_or_refused_measurement_fails():
    rows = _holding_rows()
    del rows[1]["other_text"]["newsgroups"]
    claim = level_on_other_text_claim("lm", rows, CORPORA)
    assert claim["status"] == "FAIL" and "not measured on this corpus" in claim["reason"]
    rows = _holding_rows()
    rows[0]["other_text"]["newsgroups"] = {"refused": "value out of range"}
    claim = level_on_other_text_claim("lm", rows, CORPORA)
    assert claim["status"] == "FAIL" and "refused this text: value out of range" in claim["reason"]


def test_no_other_text_is_undecided_never_pass():
    rows = _holding_rows()
    for corpora in ([], None):  # --other-corpora none; a document from before the measurement
        claim = level_on_other_text_claim("lm", rows, corpora)
        assert claim["status"] == "UNDECIDED" and not claim["gates"]
        assert "no other corpus was evaluated" in claim["reason"]
    images = [_row(skipped="vit (image classification) does not read text")]
    claim = level_on_other_text_claim("vit", images, CORPORA)
    assert claim["status"] == "UNDECIDED" and "does not read text" in claim["reason"]
    one_document = _holding_rows()
    one_document[0]["other_text"]["newsgroups"] = dict(_measured(0.01),
                                                       distortion_stderr=None)
    claim = level_on_other_text_claim("lm", one_document, CORPORA)
    assert claim["status"] == "UNDECIDED" and "no standard error" in claim["reason"]
    assert level_on_other_text_claim("lm", rows[2:], CORPORA) is None  # no fitted row


def test_the_report_section_puts_each_corpus_beside_the_evaluation():
    rows = _holding_rows()
    rows[0]["other_text"]["wikipedia"] = _measured(0.12, stderr=0.007, bits=838.0)
    lines = other_text_section({"other_corpora": CORPORA, "runs": rows})
    text = "\n".join(lines)
    assert "## The level on other text" in text
    assert "| architecture | split | codec | level | evaluation (lee_background) | newsgroups " \
           "| wikipedia |" in text
    assert "**838.0 · 0.12 ± 0.007** ✗ (N = 32)" in text
    assert "700.0 · 0.048 ± 0.005 |" in text
    assert len([line for line in lines if line.startswith("| lm |")]) == 2  # no baseline
    assert other_text_section({"other_corpora": CORPORA, "runs": rows[2:]}) == []


# ----------------------------------------------------------------- the real measurement
def _config(folder, cache, **overrides) -> ValidateConfig:
    settings = {"architectures": (str(folder),), "splits": [2], "windows": 3,
                "window_length": 32, "fit_windows": 8, "variants": ("gaussian-fisher",),
                "levels": (0.01,), "cache_dir": str(cache), "jacobian_positions": 8}
    return ValidateConfig(**(settings | overrides))


@pytest.fixture(scope="module")
def tiny_run(tiny_model_folder, tmp_path_factory):
    cache = tmp_path_factory.mktemp("other-text-cache")
    return _config(tiny_model_folder, cache), run_validation(
        _config(tiny_model_folder, cache), progress=False)


def test_every_fitted_row_is_measured_on_each_other_corpus(tiny_run):
    config, results = tiny_run
    assert results["other_corpora"] == CORPORA
    fitted = [r for r in results["runs"] if r["level_target"] is not None]
    assert {r["codec"] for r in fitted} == {"gaussian-fisher", "zstd-symbols[gaussian-fisher]"}
    assert len(fitted) == 2
    for row in results["runs"]:
        if row["level_target"] is None:
            assert "other_text" not in row  # baselines are not measured again
            continue
        assert row["other_text_skipped"] is None and set(row["other_text"]) == set(CORPORA)
        for corpus, found in row["other_text"].items():
            assert found["windows"] == found["documents"] == config.windows
            assert found["tokens"] == config.windows * config.window_length
            assert found["bits_per_token_actual"] > 0 and found["level_target"] == 0.01
            assert found["distortion_stderr"] is not None and found["distortion"] != \
                row["distortion"]
    by = {(r["split"], r["codec"]): r for r in fitted}
    for split in (2,):  # the zstd companion has the same reconstruction, other bytes
        plain = by[(split, "gaussian-fisher")]["other_text"]["wikipedia"]
        zstd = by[(split, "zstd-symbols[gaussian-fisher]")]["other_text"]["wikipedia"]
        assert zstd["distortion"] == plain["distortion"]
        assert zstd["bits_per_token_actual"] != plain["bits_per_token_actual"]
        assert plain["bits_per_token_estimated"] is not None
    work = results["work"][results["architectures"][0]["name"]]
    batches, codecs = 1, 2
    assert work["other text coding"]["count"] == len(CORPORA) * batches * codecs
    assert work["coding"]["count"] == 5 + codecs  # the main evaluation's count is kept
    assert results["stages_s"]["other text"] > 0


def test_other_text_windows_are_evaluation_documents_of_that_corpus(tiny_run, monkeypatch):
    """The other corpus's windows come from the evaluation part of its split (never the
    documents a codec of that corpus would be fitted on), one per document, and reach the
    hidden-state cache (a second run makes no forward pass for them)."""
    from rdgap.validation import other_text

    config, results = tiny_run
    seen = {}
    windows = other_text.other_windows

    def recorded(task, corpus, count, length):
        seen[corpus] = windows(task, corpus, count, length)
        return seen[corpus]

    monkeypatch.setattr(other_text, "other_windows", recorded)
    again = run_validation(config, progress=False)
    assert again["cache"]["hidden_misses"] == 0
    for corpus in CORPORA:
        _, evaluation = split_documents(len(load_documents(corpus)), seed=config.seed)
        documents = seen[corpus].document.tolist()
        assert len(set(documents)) == len(documents) == config.windows
        assert set(documents) <= set(evaluation)
    assert [r.get("other_text") for r in again["runs"]] == \
        [r.get("other_text") for r in results["runs"]]


def test_the_claim_and_the_report_on_the_real_run(tiny_run):
    _, results = tiny_run
    done = finalize(copy.deepcopy(results), progress=False)
    (claim,) = [c for c in done["claims"] if c["name"].startswith("level_holds_on_other_text[")]
    assert claim["status"] in ("PASS", "FAIL") and claim["gates"]
    assert claim["numbers"]["other_text_checks"] == 2 * len(CORPORA)
    from rdgap.validation.report import report_markdown

    assert "## The level on other text" in report_markdown(done)


def test_no_other_corpora_measures_nothing_and_leaves_the_claim_undecided(tiny_model_folder,
                                                                        tiny_run):
    config, _ = tiny_run
    results = run_validation(_config(tiny_model_folder, config.cache_dir, other_corpora=()),
                             progress=False)
    assert results["other_corpora"] == [] and "other text coding" not in \
        results["work"][results["architectures"][0]["name"]]
    assert all(r["other_text"] == {} and r["other_text_skipped"] == "no other corpus requested"
               for r in results["runs"] if r["level_target"] is not None)
    done = finalize(results, progress=False)
    (claim,) = [c for c in done["claims"] if c["name"].startswith("level_holds_on_other_text[")]
    assert claim["status"] == "UNDECIDED" and not claim["gates"]


def test_shards_carry_the_other_text_rows(tiny_model_folder, tiny_run):
    config, single = tiny_run
    shards = [run_validation(config, progress=False, shard=(i, 2)) for i in range(2)]
    merged = merge_results(shards)
    assert merged["other_corpora"] == CORPORA
    assert {r["job_id"] + r["codec"]: r.get("other_text") for r in merged["runs"]} == \
        {r["job_id"] + r["codec"]: r.get("other_text") for r in single["runs"]}
