"""benchmarks/other_text_bench.py: its windows are never fit windows, and its criterion.

Each check could fail: news windows drawn from the fit documents, another text's windows
not starting with its evaluation documents, or a two-s.e. criterion with the wrong sign
or factor.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
spec = importlib.util.spec_from_file_location("other_text_bench",
                                              ROOT / "benchmarks" / "other_text_bench.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def characters(text: str) -> dict:
    """A stand-in tokenizer: one id per character."""
    return {"input_ids": [ord(c) % 97 for c in text]}


@pytest.mark.parametrize("name", ["lee_background", "newsgroups"])
def test_windows_come_from_documents_the_fit_never_sees(name):
    from rdgap.validation.corpus import DEFAULT_CORPUS, load_documents, split_documents

    windows = bench.text_windows(name, characters, 6)
    documents = windows.document.tolist()
    fit, evaluation = split_documents(len(load_documents(name)), seed=0)
    assert len(documents) == 6 and windows.input_ids.shape[1] == bench.codec_bench.WINDOW_LENGTH
    # news: codec_bench's evaluation documents; other text: its evaluation documents first
    assert set(documents) <= set(evaluation)
    if name == DEFAULT_CORPUS:
        assert not set(documents) & set(fit)


def test_the_criterion_is_two_standard_errors_under_the_level():
    row = {"delta_ce_nats": 0.04, "delta_ce_nats_stderr": 0.0049}
    assert bench.row_level(row, 0.05)["meets_two_se"]
    assert not bench.row_level(row | {"delta_ce_nats_stderr": 0.0051}, 0.05)["meets_two_se"]
    assert bench.row_level(row, 0.05)["delta_ce_upper_two_se"] == pytest.approx(0.0498)


@pytest.mark.parametrize("fallback", ["klt-context-tokens", "no-such-recipe"])
def test_a_shift_guard_fallback_that_codes_ids_or_does_not_exist_is_refused(fallback, capsys):
    # the guard passes token ids to its primary only: a fallback needing them cannot decode
    with pytest.raises(SystemExit):
        bench.main(["--split", "8", "--variants", "klt-context", "--shift-guard", fallback])
    assert "--shift-guard" in capsys.readouterr().err
