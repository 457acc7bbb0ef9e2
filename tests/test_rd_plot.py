"""benchmarks/rd_plot.py: the rate–distortion picture of issue 20 reads, never measures.

Each check could fail: a row of the split left out or one from another split let in, a
fitted codec drawn as a baseline, the CE converted with the wrong base, a missing split
accepted silently, and the committed figure's JSON gone stale against codec_bench.json.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("rd_plot", ROOT / "benchmarks" / "rd_plot.py")
rd_plot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rd_plot)


def _row(split, codec, level, bits, dce, se=0.001, baseline=None):
    row = {"split": split, "codec": codec, "level": level, "bits_per_token_actual": bits,
           "delta_ce_nats": dce, "delta_ce_nats_stderr": se}
    if baseline is not None:
        row["baseline"] = baseline
    return row


@pytest.fixture
def files(tmp_path):
    bench = {"rows": [_row(15, "fp16", None, 9216.0, 0.0),
                      _row(15, "klt-context", "dce<=0.05", 722.0, 0.05),
                      _row(15, "sz3", "dce<=0.05", 1444.0, 0.053, baseline=True),
                      _row(8, "klt-context", "dce<=0.05", 800.0, 0.04),
                      _row(15, "broken", "dce<=0.05", 1.0, None)]}
    shift = {"results": [{"split": 15, "texts": {"news": {"exact_ce_nats": 3.0}}}]}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    (tmp_path / "shift.json").write_text(json.dumps(shift))
    return tmp_path


def test_every_measured_row_of_the_split_and_only_those(files):
    out = files / "rd.png"
    document = rd_plot.main(["--split", "15", "--bench", str(files / "bench.json"),
                             "--domain-shift", str(files / "shift.json"), "--out", str(out)])
    got = {(p["codec"], p["baseline"], p["bits_per_token"]) for p in document["points"]}
    assert got == {("fp16", True, 9216.0), ("klt-context", False, 722.0),
                   ("sz3", True, 1444.0)}
    assert document["model_ce_bits_per_token"] == pytest.approx(3.0 / math.log(2))
    assert "shift.json" in document["model_ce_source"]
    assert out.stat().st_size > 1000 and json.loads(out.with_suffix(".json").read_text()) \
        == document


def test_a_given_ce_and_bad_input_are_clear(files):
    args = ["--bench", str(files / "bench.json"), "--out", str(files / "rd.png")]
    document = rd_plot.main(args + ["--model-ce-nats", str(math.log(2) * 5)])
    assert document["model_ce_bits_per_token"] == pytest.approx(5.0)
    assert document["model_ce_source"] == "--model-ce-nats"
    with pytest.raises(SystemExit, match="--model-ce-nats"):
        rd_plot.main(args + ["--model-ce-nats", "-1"])
    with pytest.raises(ValueError, match=r"split: no measured row at split 22.*\[8, 15\]"):
        rd_plot.main(args + ["--split", "22", "--model-ce-nats", "3"])


def test_the_committed_figure_matches_codec_bench():
    committed = json.loads((ROOT / "benchmarks/results/rd_all_codecs.json").read_text())
    bench = json.loads((ROOT / "benchmarks/results/codec_bench.json").read_text())
    assert committed["points"] == rd_plot.points(bench, committed["split"]), \
        "stale: run python benchmarks/rd_plot.py"
    assert {p["codec"] for p in committed["points"] if p["baseline"]} >= \
        {"q8_0", "q4_0", "hadamard-int4", "kvtc", "sz3", "zfp"}
