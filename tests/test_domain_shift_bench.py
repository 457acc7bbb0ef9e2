"""`benchmarks/domain_shift.py`: its decomposition of the error adds up, on a tiny model.

The per-component error energies in the Fisher-whitened KLT domain must sum to T7's
quadratic form ``eᵀ F e`` with the Fisher the transform whitens, the excess shares
must sum to one, and a ΔCE of an unchanged state must be exactly zero.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec
from rdgap.split import SplitModel
from rdgap.codecs.transforms.fisher import FisherDiagonal, fisher_diagonal
from rdgap.codecs.transforms.klt import fisher_klt
from rdgap.validation.models import tiny_llama

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "domain_shift.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("domain_shift_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def tiny():
    """A tiny Llama split after layer 2, states of 6 windows × 48 tokens, its Fisher
    (full), the whitened KLT of those states and a uniform codec in that domain."""
    model = tiny_llama(num_layers=4, hidden_size=32, vocab_size=64, seed=3)
    split = SplitModel(model, 2)
    ids = torch.randint(3, 64, (6, 48), generator=torch.Generator().manual_seed(0))
    hidden = split.prefix(ids)
    fisher = fisher_diagonal(split, hidden, full=True)
    rest = hidden[:, 1:].reshape(-1, 32).double().numpy()
    klt = fisher_klt(np.cov(rest, rowvar=False), fisher.matrix, ridge=1e-4)
    stats = ChannelStatistics.fit(hidden, "laplace", analysis=klt.analysis)
    step = 0.5 * np.sqrt(np.median(klt.variances))
    codec = FactorizedCodec(stats, np.full(32, step), 0.1 * stats.first_scale, "laplace",
                            analysis=klt.analysis, synthesis=klt.synthesis)
    return split, ids, hidden, fisher, klt, codec


def test_component_energies_sum_to_t7_quadratic_form(bench, tiny):
    split, ids, hidden, fisher, klt, codec = tiny
    recon = bench.reconstruct(codec, hidden)
    errors = bench.whitened_errors(hidden, recon, klt.analysis)
    assert errors.shape == (6, 47, 32)
    # A whitens exactly the (ridged) Fisher Aᵀ A: Σ_j e_j² per token is eᵀ (AᵀA) e
    whitened_fisher = FisherDiagonal(fisher.rest, np.zeros(32), hidden.shape[1],
                                     klt.analysis.T @ klt.analysis)
    per_window = bench.t7_per_window(hidden, recon, whitened_fisher)
    expected = 0.5 * (errors ** 2).sum((1, 2)) / hidden.shape[1]
    np.testing.assert_allclose(per_window, expected, rtol=1e-10)
    # ... and the per-component energies are a decomposition of that total
    energy = (errors ** 2).reshape(-1, 32).mean(0)
    assert energy.sum() * 47 * 6 == pytest.approx((errors ** 2).sum(), rel=1e-12)
    # the estimated Fisher differs from AᵀA by the ridge only: T7 agrees within it
    t7 = bench.t7_per_window(hidden, recon, FisherDiagonal(fisher.rest, np.zeros(32),
                                                           hidden.shape[1], fisher.matrix))
    np.testing.assert_allclose(t7, expected, rtol=2e-3)
    # a different quadratic form (the identity) does not agree: the check can fail
    other = bench.t7_per_window(hidden, recon, FisherDiagonal(fisher.rest, np.zeros(32),
                                                              hidden.shape[1], np.eye(32)))
    assert not np.allclose(other, expected, rtol=1e-2)


def test_t7_diagonal_fallback_and_first_position(bench, tiny):
    _, _, hidden, fisher, _, _ = tiny
    recon = hidden.clone()
    recon[:, 0, 0] += 2.0  # only position 0, channel 0 moves
    diagonal = FisherDiagonal(fisher.rest, fisher.first, hidden.shape[1])
    expected = 0.5 * 4.0 * fisher.first[0] / hidden.shape[1]
    np.testing.assert_allclose(bench.t7_per_window(hidden, recon, diagonal), expected,
                               rtol=1e-6)


def test_unchanged_state_has_zero_delta_ce(bench, tiny):
    split, ids, hidden, _, _, codec = tiny
    exact_ce = torch.cat([bench.next_token_cross_entropy(split.suffix(hidden[i:i + 2]),
                                                         ids[i:i + 2]) for i in range(0, 6, 2)])
    text = bench.Text("t", ids, np.arange(6), {2: hidden}, exact_ce)
    assert np.all(bench.window_delta_ce(split, text, hidden) == 0.0)
    coarse = bench.window_delta_ce(split, text, bench.reconstruct(codec, hidden))
    assert coarse.shape == (6,) and np.any(coarse != 0.0)


def test_zero_fraction_follows_the_step(bench, tiny):
    _, _, hidden, _, klt, codec = tiny
    fine = FactorizedCodec(codec.stats, codec.step * 1e-3, codec.first_step, "laplace",
                           analysis=klt.analysis, synthesis=klt.synthesis)
    coarse = FactorizedCodec(codec.stats, codec.step * 1e3, codec.first_step, "laplace",
                             analysis=klt.analysis, synthesis=klt.synthesis)
    assert bench.zero_fraction(fine, hidden).max() < 0.05
    assert bench.zero_fraction(coarse, hidden).min() == 1.0
    middle = bench.zero_fraction(codec, hidden)
    assert middle.shape == (32,) and 0.0 < middle.mean() < 1.0


def test_excess_by_rank_shares(bench):
    variance = np.array([10.0, 5.0, 1.0, 0.1, 0.01, 0.001])
    news = np.array([0.08, 0.08, 0.08, 0.05, 0.01, 0.001])
    other = news + np.array([0.0, 0.0, 0.01, 0.03, 0.05, 0.01])
    out = bench.excess_by_rank(news, other, variance, cell=0.083, bands=3)
    assert out["total_excess"] == pytest.approx(0.1)
    assert sum(out["band_share"]) == pytest.approx(1.0)
    assert out["band_share"] == pytest.approx([0.0, 0.4, 0.6])
    assert out["quiet_components"] == 2  # news variances 0.01 and 0.001 are below Δ²/12
    assert out["quiet_share"] == pytest.approx(0.6)
    assert out["band_ranks"] == [[0, 1], [2, 3], [4, 5]]
    assert out["energy"]["other_quiet"] - out["energy"]["news_quiet"] == pytest.approx(0.06)
    assert out["energy"]["other_active"] - out["energy"]["news_active"] == pytest.approx(0.04)


def test_factors_multiply_to_the_measured_ratio(bench):
    news = {"delta_ce_nats": 0.05, "t7_news_fisher_nats": 0.045, "t7_text_fisher_nats": 0.05}
    other = {"delta_ce_nats": 0.12, "t7_news_fisher_nats": 0.06, "t7_text_fisher_nats": 0.09}
    f = bench.factors(news, other)
    assert f["measured"] == pytest.approx(2.4)
    assert f["error_growth"] == pytest.approx(0.06 / 0.045)
    assert f["error_growth"] * f["sensitivity"] * f["beyond_t7"] == pytest.approx(2.4)


def test_tiny_run_writes_a_consistent_document(bench, tmp_path):
    out = tmp_path / "shift.json"
    document = bench.main(["--tiny", "--splits", "2", "--windows", "4", "--statistics-windows",
                           "5", "--probe-windows", "4", "--no-oracle", "--level", "0.005",
                           "--out", str(out)])
    assert out.is_file() and out.with_suffix(".png").is_file()
    result = document["results"][0]
    assert {r["codec"] for r in result["rows"]} == set(bench.CODECS)
    assert {r["text"] for r in result["rows"]} == {"news", "other"}
    for key, f in result["factors"].items():
        assert f["error_growth"] * f["sensitivity"] * f["beyond_t7"] == pytest.approx(
            f["measured"]), key
    for name, comp in result["components"].items():
        # klt-laplace's error in its own whitened domain: T7 with the news Fisher is
        # ½ Σ_j E[e_j²] over positions ≥ 1 plus position 0's term (≥ 0), ridge aside
        row = next(r for r in result["rows"] if r["text"] == name and r["codec"] == "klt-laplace")
        rest = 0.5 * sum(comp["energy"]["klt-laplace"]) * 63 / 64
        assert rest <= row["t7_news_fisher_nats"] * 1.01
        assert len(comp["zero_fraction"]["klt-laplace"]) == 64
