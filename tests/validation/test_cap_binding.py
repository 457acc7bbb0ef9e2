"""How often the rate cap binds and what it costs (issue 14, item 1).

Why the checks hold: a rate-capped stream flags the window where the cap bound
(``FLAG_CAP``), and only there is its reconstruction coarser than the uncapped codec's;
so the cost recorded for a window must equal the distortion of the capped
reconstruction minus that of the uncapped one, computed here independently from real
streams. A cap so high it never binds must report zero bound windows and no cost (the
defect "every window called bound" or "a cost on windows the cap left alone" fails).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec
from rdgap.codecs.quantizers.rate_cap import RateCappedCodec
from rdgap.validation import cap_binding
from rdgap.validation.coding import CodedCodec, code_windows
from rdgap.validation.config import ValidateConfig
from rdgap.validation.runner import run_validation


class _SquaredErrorTask:
    """Suffix = identity; metric = mean squared error per window (what ΔCE is to a LM)."""

    metrics_names = ("mse",)

    def suffix(self, split, inputs, hidden):
        return hidden

    def metrics(self, reference, output, inputs):
        return {"mse": ((output - reference) ** 2).mean(dim=(1, 2)).tolist()}


class _Fitted:
    def __init__(self, uncapped):
        self.uncapped = uncapped


def _windows(seed=0, count=8):
    rng = np.random.default_rng(seed)
    scales = np.linspace(0.5, 2.0, count)[:, None, None]  # the loud windows cost more bits
    return torch.from_numpy(rng.normal(size=(count, 24, 6)) * scales).float()


def _base(hidden):
    stats = ChannelStatistics.fit(hidden, "gaussian")
    return FactorizedCodec(stats, 0.2 * stats.scale, 0.2 * stats.first_scale, "gaussian")


def _measure(cap):
    hidden = _windows()
    base = _base(hidden)
    codec = RateCappedCodec(base, cap)
    coded = CodedCodec(codec, "capped", fitted=_Fitted(base))
    task = _SquaredErrorTask()
    recon = code_windows(coded, hidden)
    metrics = task.metrics(hidden, recon, {})
    bound = cap_binding.bound_windows(coded.cap_flags, len(hidden))
    cap_binding.binding_cost(coded, task, 0, {}, hidden, recon, hidden, metrics, bound)
    return hidden, base, codec, coded, recon, bound


def test_the_cost_is_capped_minus_uncapped_on_exactly_the_bound_windows():
    hidden = _windows()
    base = _base(hidden)
    rates = [8 * (len(RateCappedCodec(base, 1e12).encode(w))) / w.shape[0] for w in hidden]
    cap = float(np.median(rates))  # binds on the louder half
    hidden, base, codec, coded, recon, bound = _measure(cap)
    expected = [w for w, r in enumerate(rates) if r > cap]
    assert bound == expected and 0 < len(bound) < len(hidden)
    for w, cost in zip(bound, coded.cap_cost["mse"]):
        free = base.decode(base.encode(hidden[w]))
        independent = float(((recon[w] - hidden[w]) ** 2).mean() - ((free - hidden[w]) ** 2).mean())
        assert cost == pytest.approx(independent, rel=1e-5, abs=1e-9)
        assert cost > 0  # a coarser step: more error
    s = cap_binding.summary(coded)
    assert s["windows"] == len(hidden) and s["windows_bound"] == len(expected)
    assert s["cap_bits_per_token"] == cap
    assert s["cost"]["mse"]["mean_over_windows"] == pytest.approx(
        sum(coded.cap_cost["mse"]) / len(hidden))
    assert s["cost"]["mse"]["mean_over_bound_windows"] == pytest.approx(
        np.mean(coded.cap_cost["mse"]))


def test_a_cap_that_never_binds_reports_no_bound_window_and_no_cost():
    *_, coded, _, bound = _measure(1e9)
    assert bound == [] and coded.cap_cost == {}
    s = cap_binding.summary(coded)
    assert s["windows_bound"] == 0 and s["cost"] == {}


def test_an_uncapped_codec_has_no_cap_summary():
    hidden = _windows()
    coded = CodedCodec(_base(hidden), "plain")
    code_windows(coded, hidden)
    assert coded.cap_flags == [] and cap_binding.summary(coded) is None


# ----------------------------------------------------------------- through rdgap validate
def _config(folder, cache, **overrides) -> ValidateConfig:
    settings = {"architectures": (str(folder),), "splits": [2], "windows": 6,
                "window_length": 32, "fit_windows": 8, "variants": ("gaussian-fisher",),
                "levels": (0.01,), "cache_dir": str(cache), "jacobian_positions": 8,
                "other_corpora": ("wikipedia",), "zstd_symbols_of": None}
    return ValidateConfig(**(settings | overrides))


@pytest.mark.parametrize("cap", [1.05, None])
def test_validate_rows_and_report_say_how_often_the_cap_bound(tiny_model_folder, tmp_path,
                                                              cap):
    from rdgap.validation.report import report_markdown

    results = run_validation(_config(tiny_model_folder, tmp_path / "cache", rate_cap=cap),
                             progress=False)
    (row,) = [r for r in results["runs"] if r["level_target"] is not None]
    text = report_markdown(results)
    if cap is None:
        assert row["rate_cap"] is None and "## Rate cap" not in text
        return
    s = row["rate_cap"]
    assert s["windows"] == row["windows"] == 6
    assert 0 <= s["windows_bound"] <= 6 and s["windows_fallback"] <= s["windows_bound"]
    name = row["distortion_name"]
    if s["windows_bound"]:
        assert s["cost"][name]["mean_over_windows"] == pytest.approx(
            s["cost"][name]["mean_over_bound_windows"] * s["windows_bound"] / 6)
    else:
        assert s["cost"] == {}
    other = row["other_text"]["wikipedia"]["rate_cap"]
    assert other["windows"] == row["other_text"]["wikipedia"]["windows"]
    assert "## Rate cap" in text and f"| {s['windows_bound']} / 6 |" in text
