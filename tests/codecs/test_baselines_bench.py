"""The published baselines in `benchmarks/codec_bench.py` and their docs table: the knob is
calibrated to the level like rdgap's step scale, baseline rows never count for the
targets, and the table puts each next to rdgap's cheapest codec at its level."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_under_test",
                                                  ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load("codec_bench")


@pytest.fixture(scope="module")
def tables():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return _load("readme_tables")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


class MseProbe:
    """A stand-in for the ΔCE probe: ΔCE = mean squared error / 10 on fixed windows."""

    def __init__(self, hidden):
        self.hidden, self.calls = hidden, 0

    def estimate(self, reconstruct):
        self.calls += 1
        error = torch.stack([reconstruct(w) - w for w in self.hidden])
        return float((error ** 2).mean()) / 10.0, 1e-4


def fake_context(seed=0):
    rng = np.random.default_rng(seed)
    hidden = torch.from_numpy((rng.standard_normal((6, 32, 16))
                               @ rng.standard_normal((16, 16))).astype(np.float32))
    fisher = SimpleNamespace(predicted_delta_ce=lambda step, first: float(np.mean(step ** 2))
                             / 120.0)
    return SimpleNamespace(hidden=hidden, fisher=fisher, probe=MseProbe(hidden[3:]))


@pytest.mark.parametrize("name", ["sz3", "zfp", "kvtc"])
def test_the_knob_is_calibrated_to_the_level(bench, name):
    context = fake_context()
    level = 0.002
    codec, calibration = bench.calibrated_baseline(name, context, level)
    assert calibration.met and calibration.delta_ce <= level
    assert context.probe.calls <= 6
    # re-measured: the chosen codec meets the level on the probe windows
    assert context.probe.estimate(codec.reconstruct)[0] <= level
    # and is not needlessly fine: a knob twice as coarse would miss the level or be close
    if name == "sz3":
        assert context.probe.estimate(type(codec)(4 * codec.tolerance).reconstruct)[0] > level
    with pytest.raises(ValueError, match="name"):
        bench.calibrated_baseline("fpzip", context, level)


def _row(codec, level, bits, dce, **extra):
    return {"split": 15, "codec": codec, "level": level, "bits_per_token_actual": bits,
            "bits_per_token_estimated": None if extra.get("baseline") else bits - 1,
            "delta_ce_nats": dce, "delta_ce_nats_stderr": 0.001, "kl_nats": dce,
            "encode_s": 0.1, "decode_s": 0.1, "statistics_windows": 22, "fit_windows": 54,
            **extra}


def test_baseline_rows_never_count_for_the_targets(bench, capsys):
    rows = [_row("klt-context", "dce<=0.05", 722.0, 0.045),
            _row("sz3", "dce<=0.05", 500.0, 0.03, baseline=True, knob=0.1)]
    _, targets = bench.summarise(rows)
    assert targets["0.05"]["best"]["codec"] == "klt-context"
    assert targets["0.05"]["best_two_se"]["codec"] == "klt-context"
    rows[1].pop("baseline")  # the same row unmarked would have won: the mark is what matters
    assert bench.summarise(rows)[1]["0.05"]["best"]["codec"] == "sz3"


def test_the_docs_table_puts_each_baseline_next_to_rdgap(tables):
    document = {"rows": [_row("klt-context", "dce<=0.05", 700.0, 0.049),
                         _row("gaussian-std", "dce<=0.05", 1400.0, 0.04),
                         _row("sz3", "dce<=0.05", 1400.0, 0.045, baseline=True, knob=0.125),
                         _row("kvtc", "dce<=0.05", 1050.0, 0.05, baseline=True, knob=1500),
                         _row("q4_0", None, 2593.0, 0.2, baseline=True)]}
    table = tables.published_baseline_table(document)
    lines = table.splitlines()[2:]
    assert lines[0].startswith("| 15 | q4_0 | — | fixed rate | 2593 |") and lines[0].endswith("| — | — |")
    assert "| kvtc | dce<=0.05 | budget 1500 bits | 1050 |" in lines[1] and "1.50×" in lines[1]
    assert "| sz3 | dce<=0.05 | ±0.125 | 1400 |" in lines[2]
    assert "klt-context 700 (0.0490) | 2.00× |" in lines[2]
    # the fitted-codec table leaves the baselines out (they have no estimate)
    fitted = tables.codec_bench_table(document)
    assert "sz3" not in fitted and "klt-context" in fitted

