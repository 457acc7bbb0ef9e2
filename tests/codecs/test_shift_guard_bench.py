"""benchmarks/shift_guard_bench.py on the tiny random model: every codec evaluated on every
text, each guarded row made of its primary's windows where the detector passes them and
the fallback's where it flags them (both occur: slack 1), the rate cost on news against
the guard's own primary, and the detector-only mode's counts."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--tiny", "--split", "2", "--windows", "4", "--statistics-windows", "8",
        "--probe-windows", "6", "--slack", "1"]  # slack 1: some tiny windows are flagged


def _bench():
    spec = importlib.util.spec_from_file_location("shift_guard_bench_under_test",
                                                  ROOT / "benchmarks" / "shift_guard_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sg") / "sg.json"
    _bench().main(TINY + ["--out", str(out)])
    return json.loads(out.read_text()), out


def test_every_codec_on_every_text_and_the_figure(run):
    document, out = run
    rows = {(r["codec"], r["text"]): r for r in document["rows"]}
    codecs = ["gaussian-fisher", "klt-laplace", "klt-laplace-sg", "klt-context",
              "klt-context-sg"]
    assert set(rows) == {(c, t) for c in codecs for t in ("news", "other")}
    assert out.with_suffix(".png").stat().st_size > 0


def test_a_guarded_row_is_its_primary_where_passed_and_the_fallback_where_flagged(run):
    document, _ = run
    rows = {(r["codec"], r["text"]): r for r in document["rows"]}
    seen = set()
    for guarded, detector in document["detectors"].items():
        primary = guarded.removesuffix("-sg")
        threshold = detector["detector_threshold"]
        for text in ("news", "other"):
            flagged = np.array(detector["texts"][text]["scores"]) > threshold
            expected = np.where(flagged, rows["gaussian-fisher", text]["per_window_delta_ce"],
                                rows[primary, text]["per_window_delta_ce"])
            assert np.allclose(rows[guarded, text]["per_window_delta_ce"], expected,
                               rtol=0, atol=2e-5)  # rounded to 5 decimals in the JSON
            seen.update(flagged.tolist())
        # the rate cost on news is against the guard's own primary
        assert rows[guarded, "other"]["news_rate_cost_bits"] == pytest.approx(
            rows[guarded, "news"]["bits_per_token"] - rows[primary, "news"]["bits_per_token"])
    assert seen == {True, False}  # both paths of the guard were measured


def test_detector_only_counts_flagged_windows(tmp_path):
    out = tmp_path / "det.json"
    document = _bench().main(TINY + ["--detector-only", "--chosen-on", "2", "--out", str(out)])
    assert json.loads(out.read_text())["texts"] == document["texts"]
    for text in document["texts"].values():
        scores = np.array(text["scores"])
        flagged = scores > document["detector"]["detector_threshold"]
        assert text["flagged_first"] + text["flagged_rest"] == flagged.sum()
        assert (text["first"], text["rest"]) == (2, len(scores) - 2)
