"""Scale-out of the validate job: the cache skips the forward pass, shards merge into the
same result as one run, bad merges are refused, torch.distributed with two gloo ranks,
and the exit status follows the gating claims."""

from __future__ import annotations

import json

import pytest

from rdgap.cli import main
from rdgap.validation.distributed import run_local
from rdgap.validation.runner import ValidateConfig, finalize, merge_results, run_validation
from rdgap.validation.tasks import CausalLMTask

#: Fields that depend on wall time, not on what was measured.
TIMED = ("encode_s", "decode_s")


def _config(folder, cache, **overrides) -> ValidateConfig:
    settings = {"architectures": (str(folder),), "splits": [1, 3], "windows": 3,
                "window_length": 16, "fit_windows": 4, "variants": (), "cache_dir": str(cache)}
    return ValidateConfig(**(settings | overrides))


def _measured(rows):
    return [{k: v for k, v in row.items() if k not in TIMED} for row in rows]


def _flat(value, path=""):
    if isinstance(value, dict):
        return [item for k in sorted(value) for item in _flat(value[k], f"{path}/{k}")]
    if isinstance(value, list):
        return [item for i, v in enumerate(value) for item in _flat(v, f"{path}/{i}")]
    return [(path, value)]


def _same_measurements(rows, others):
    """Equal up to float rounding: processes with other thread counts sum in other orders."""
    left, right = _flat(_measured(rows)), _flat(_measured(others))
    assert [p for p, _ in left] == [p for p, _ in right]
    for (path, a), (_, b) in zip(left, right):
        if isinstance(a, float) and isinstance(b, float):
            assert a == pytest.approx(b, rel=1e-6, abs=1e-9), path
        else:
            assert a == b, path


def test_a_rerun_takes_hidden_states_from_the_cache(tiny_model_folder, tmp_path, monkeypatch):
    calls = []
    forward = CausalLMTask.forward

    def counted(self, inputs, splits):
        calls.append(list(splits))
        return forward(self, inputs, splits)

    monkeypatch.setattr(CausalLMTask, "forward", counted)
    config = _config(tiny_model_folder, tmp_path)
    first = run_validation(config, progress=False)
    assert calls and first["cache"]["hidden_misses"] == 4
    calls.clear()
    second = run_validation(config, progress=False)
    assert calls == []  # no forward pass at all: every split came from the cache
    assert second["cache"] == {"hidden_hits": 4, "hidden_misses": 0, "hidden_rejected": 0}
    assert _measured(second["runs"]) == _measured(first["runs"])


def test_shards_merge_into_the_single_run(tiny_model_folder, tmp_path, capsys):
    base = ["validate", "--model", str(tiny_model_folder), "--splits", "1,3", "--windows", "3",
            "--window-length", "16", "--variants", "none", "--no-progress",
            "--cache-dir", str(tmp_path / "c")]
    for index in range(3):
        assert main(base + ["--shard", f"{index}/3", "--out", str(tmp_path / f"s{index}")]) == 0
    assert "partial-2-of-3.json" in capsys.readouterr().out
    partial = json.loads((tmp_path / "s0" / "partial-0-of-3.json").read_text())
    assert partial["partial"] and len(partial["jobs_done"]) == 4 and len(partial["jobs"]) == 10
    code = main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), str(tmp_path / "s2"),
                 "--out", str(tmp_path / "merged")])
    assert code == 0
    merged = json.loads((tmp_path / "merged" / "results.json").read_text())
    # the CLI fits on ValidateConfig's default number of fit windows (statistics such as
    # heldout_disjoint count them), so the single run uses the same
    single = finalize(run_validation(_config(tiny_model_folder, tmp_path / "c", variants=(),
                                             fit_windows=ValidateConfig.fit_windows),
                                     progress=False))
    assert merged["shards"] == 3 and not merged["partial"]
    assert [r["job_id"] for r in merged["runs"]] == [r["job_id"] for r in single["runs"]]
    assert _measured(merged["runs"]) == _measured(single["runs"])
    assert [c["name"] for c in merged["claims"]] == [c["name"] for c in single["claims"]]
    assert "## Claims" in (tmp_path / "merged" / "report.md").read_text()
    # work per codec adds up; per-split work (reference passes, T10) is repeated by shards
    merged_work, single_work = (r["work"][tiny_model_folder.name] for r in (merged, single))
    assert merged_work["coding"]["count"] == single_work["coding"]["count"] == 10
    assert merged_work["codec statistics"]["count"] == single_work["codec statistics"]["count"]
    assert merged_work["prefix jacobian"]["count"] == 6 > single_work["prefix jacobian"]["count"]


def test_the_run_counts_its_units_of_work(tiny_model_folder, tmp_path):
    """The cost model's counts follow from the configuration: per split and batch one
    reference pass and one pass per distinct reconstruction; metrics once per distinct
    reconstruction; coding once per codec; one calibration probe pass per trace point."""
    config = _config(tiny_model_folder, tmp_path, splits=[2], windows=6, batch_size=3,
                     window_length=32, fit_windows=8, variants=("gaussian-fisher",),
                     levels=(0.2,), zstd_symbols_of="gaussian-fisher")
    result = run_validation(config, progress=False)
    work = result["work"][tiny_model_folder.name]
    batches, codecs = 2, 5 + 2  # 5 baselines, the fitted variant and its zstd-of-symbols
    distinct = codecs - 2  # zstd-fp16 ≡ fp16, zstd-symbols ≡ its quantizer
    assert work["coding"]["count"] == batches * codecs
    assert work["metrics"]["count"] == batches * distinct
    assert work["suffix"]["count"] == batches * (1 + distinct)
    assert work["fit context"]["count"] == 1
    assert 1 <= work["calibration"]["count"] <= 6
    assert work["prefix jacobian"]["count"] == 1
    assert work["codec statistics"]["count"] == codecs
    assert all(unit["seconds"] >= 0 for unit in work.values())


def test_bad_merges_are_refused(tiny_model_folder, tmp_path, capsys):
    config = _config(tiny_model_folder, tmp_path / "c", splits=[2])
    shards = [run_validation(config, progress=False, shard=(i, 2)) for i in range(2)]
    with pytest.raises(ValueError, match="missing jobs"):
        merge_results(shards[:1])
    with pytest.raises(ValueError, match="duplicate jobs"):
        merge_results(shards + shards[:1])
    other = run_validation(_config(tiny_model_folder, tmp_path / "c", splits=[2], windows=2),
                           progress=False, shard=(1, 2))
    with pytest.raises(ValueError, match="the same 'config'"):
        merge_results([shards[0], other])
    newer = dict(shards[1], environment=dict(shards[1]["environment"], rdgap="99.0"))
    with pytest.raises(ValueError, match="one rdgap version"):
        merge_results([shards[0], newer])
    with pytest.raises(ValueError, match="merge the shards first"):
        finalize(shards[0])
    (tmp_path / "empty").mkdir()
    assert main(["merge", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "holds no partial-*-of-*.json" in capsys.readouterr().err
    (tmp_path / "partial-0-of-1.json").write_text(json.dumps(dict(shards[0], schema_version=1)))
    assert main(["merge", str(tmp_path / "partial-0-of-1.json"), "--out", str(tmp_path / "o")]) == 2
    assert "schema version 1" in capsys.readouterr().err


def test_a_failed_gating_claim_fails_the_run_and_the_report_says_why(
        tiny_model_folder, tmp_path, capsys, monkeypatch):
    failing = {"name": "stub[gate]", "status": "FAIL", "gates": True, "numbers": {"x": 1.5},
               "reason": "the stub measured 1.5 above its bound 1.0"}
    monkeypatch.setattr("rdgap.validation.claims.evaluate_claims", lambda results: [failing])
    out = tmp_path / "out"
    code = main(["validate", "--model", str(tiny_model_folder), "--splits", "1", "--windows",
                 "2", "--window-length", "16", "--variants", "none", "--no-progress",
                 "--out", str(out), "--cache-dir", str(tmp_path / "c")])
    assert code == 1
    assert "FAIL stub[gate]: the stub measured 1.5" in capsys.readouterr().err
    report = (out / "report.md").read_text()
    assert "1 gating claim(s) FAILED" in report and "the stub measured 1.5" in report
    assert json.loads((out / "results.json").read_text())["claims"] == [failing]
    # A failing claim that does not gate leaves the exit status at 0.
    monkeypatch.setattr("rdgap.validation.claims.evaluate_claims",
                        lambda results: [dict(failing, gates=False)])
    assert main(["validate", "--model", str(tiny_model_folder), "--splits", "1", "--windows",
                 "2", "--window-length", "16", "--variants", "none", "--no-progress",
                 "--out", str(out), "--cache-dir", str(tmp_path / "c")]) == 0


def test_two_gloo_ranks_give_the_single_run(tiny_model_folder, tmp_path):
    config = _config(tiny_model_folder, tmp_path / "c", splits=[2])
    gathered = run_local(config, processes=2)
    single = finalize(run_validation(config, progress=False))
    assert gathered["distributed"] == {"backend": "gloo", "world_size": 2}
    assert gathered["shards"] == 2
    _same_measurements(gathered["runs"], single["runs"])
