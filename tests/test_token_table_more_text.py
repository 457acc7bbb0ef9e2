"""benchmarks/token_table_more_text.py: the reference rows it borrows from codec_bench.json
and the two-point BD-rates it writes (the figures are measured by codec_bench.py)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "token_table_more_text", ROOT / "benchmarks" / "token_table_more_text.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(split, codec, level, dce, bits, kl=None, statistics=22):
    return {"split": split, "codec": codec, "level": f"dce<={level:g}", "delta_ce_nats": dce,
            "kl_nats": dce * 2 if kl is None else kl, "bits_per_token_actual": bits,
            "statistics_windows": statistics}


def test_reference_rows_fill_in_only_what_the_file_lacks(bench):
    own = [_row(8, "klt-context-tokens-table-gen", 0.05, 0.05, 450)]
    borrowed = [_row(8, "klt-context", 0.05, 0.05, 800), _row(8, "klt-context", 0.01, 0.01, 1300),
                _row(8, "klt-context-tokens-table-gen", 0.05, 0.04, 999),  # the file has it
                _row(15, "klt-context", 0.05, 0.05, 700),  # another split
                _row(8, "klt-context-tokens", 0.05, 0.05, 600, statistics=16),  # other fit
                _row(8, "gaussian-std", 0.05, 0.05, 2000)]  # not a part
    rows = bench.reference_rows(own, borrowed, [8])
    assert [(r["codec"], r["bits_per_token_actual"]) for r in rows] == [
        ("klt-context-tokens-table-gen", 450), ("klt-context", 800), ("klt-context", 1300)]
    assert rows[0]["source"].startswith("codec_bench --no-merge")
    assert rows[1]["source"] == "benchmarks/results/codec_bench.json"


def test_bd_rate_is_the_constant_rate_ratio_and_none_without_both_levels(bench):
    rows = [_row(8, "klt-context", 0.01, 0.01, 1200), _row(8, "klt-context", 0.05, 0.05, 700),
            # the same ΔCE at 10 % fewer bits at both levels: −10 % in ΔCE and in KL
            _row(8, "klt-context-tokens", 0.01, 0.01, 1080),
            _row(8, "klt-context-tokens", 0.05, 0.05, 630),
            _row(8, "klt-context-tokens-table", 0.05, 0.05, 500)]  # one level only
    result = bench.bd_rates(rows, [8])["8"]
    assert math.isclose(result["klt-context-tokens"]["delta_ce"], -10.0, abs_tol=1e-9)
    assert math.isclose(result["klt-context-tokens"]["kl"], -10.0, abs_tol=1e-9)
    assert result["klt-context-tokens-table"] == {"delta_ce": None, "kl": None}
    assert "klt-context-tokens" not in bench.bd_rates(rows, [8], "klt-context-tokens")["8"]
