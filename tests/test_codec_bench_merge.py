"""`benchmarks/codec_bench.py --merge-from`: rows of earlier runs merge into the committed
file only when they were measured on the same model and evaluation windows."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "codec_bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("codec_bench_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(codec, level, bits, dce):
    return {"split": 15, "codec": codec, "level": level, "bits_per_token_actual": bits,
            "bits_per_token_estimated": bits - 1, "delta_ce_nats": dce,
            "delta_ce_nats_stderr": 0.001, "kl_nats": dce, "encode_s": 0.1, "decode_s": 0.1}


def _document(path, rows, windows=32):
    path.write_text(json.dumps({
        "model": {"name": "m", "width": 4, "num_layers": 2},
        "corpus": {"evaluation_windows": windows, "window_length": 256},
        "runs": [{"variants": sorted({r["codec"] for r in rows})}], "rows": rows}))
    return path


def test_merge_replaces_same_key_keeps_others_and_refuses_other_windows(bench, tmp_path):
    out = _document(tmp_path / "out.json", [_row("gaussian-std", "dce<=0.05", 1400.0, 0.04),
                                            _row("a", "dce<=0.05", 900.0, 0.05)])
    new = _document(tmp_path / "new.json", [_row("a", "dce<=0.05", 650.0, 0.03)])
    bench.merge_files([new], out)
    merged = json.loads(out.read_text())
    bits = {(r["codec"], r["level"]): r["bits_per_token_actual"] for r in merged["rows"]}
    assert bits == {("gaussian-std", "dce<=0.05"): 1400.0, ("a", "dce<=0.05"): 650.0}
    assert merged["runs"][-1]["merged_from"] == "new.json"
    # 650 + 2·0.001 ≤ 0.05 and ≤ 700: the stricter target summary finds it
    assert merged["targets"]["0.05"]["best_two_se"]["bits"] == 650.0
    other = _document(tmp_path / "other.json", [_row("b", "dce<=0.05", 600.0, 0.03)], windows=8)
    before = out.read_text()
    with pytest.raises(ValueError, match="--merge-from: .*other evaluation windows"):
        bench.merge_files([other], out)
    assert out.read_text() == before  # nothing the user had is overwritten on refusal
