"""codec_statistics and split_statistics on sources whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rdgap.codecs.baselines import Float16Cast
from rdgap.codecs.fisher import FisherDiagonal
from rdgap.codecs.symbol_zstd import ZstdSymbols
from rdgap.validation.statistics import codec_statistics, split_statistics

from .statistics_data import fitted_codec, gaussian_windows, measure, run_statistics

SCALES = [1.0, 3.0, 10.0, 0.5]
WINDOWS, TOKENS = 300, 64


@pytest.fixture(scope="module")
def source():
    rng = np.random.default_rng(0)
    return (gaussian_windows(rng, WINDOWS, TOKENS, SCALES),
            gaussian_windows(rng, WINDOWS, TOKENS, SCALES))


@pytest.fixture(scope="module")
def matched(source):
    fit, evaluation = source
    codec = fitted_codec(fit)
    inverse_variance = 1.0 / np.square(SCALES)   # T7 allocation Δ_j ∝ σ_j: the codec's
    fisher = FisherDiagonal(rest=inverse_variance, first=inverse_variance, tokens=TOKENS)
    return run_statistics(codec, fit, evaluation, fisher=fisher)


def test_rate_lies_between_floor_and_diagonal_bound(matched):
    """Independent Gaussian channels at step σ/2: the estimate sits just above the
    marginal entropy (T4) and at the diagonal Gaussian bound (T3), which is then
    also the full bound (no dependence: the corrected headroom is ~0)."""
    s = matched
    header = (s["rate_actual"] - s["rate_estimated"])
    assert 0 < header < 64 * 8 / TOKENS
    assert s["t4_marginal_floor_lower"] <= s["t4_marginal_floor"] <= s["rate_estimated"]
    assert s["rate_estimated"] - s["t4_marginal_floor"] < 0.05 * len(SCALES)
    assert abs(s["rate_estimated"] - s["t3_logdet_diag"]) < 0.05 * len(SCALES)
    assert s["t3_dependency_headroom"] < 0.02
    low, high = s["rate_interval"]
    assert low <= s["rate_actual"] <= high and s["rate_interval_informative"]
    assert s["entropy_model"] == "factorized" and "covariances on 16384" in s["subsampled"]


def test_exact_entropy_of_quantized_gaussian_is_inside(matched):
    """Σ_j H(round(Y_j/Δ_j)) at Δ = σ/2 is 4 × 3.0477 bits (T5, exact): the floor
    estimates must straddle it and the diagonal bound must exceed it."""
    from rdgap.bounds import quantized_entropy

    exact = len(SCALES) * quantized_entropy("gaussian", 1.0, 0.5)
    assert matched["t4_marginal_floor_lower"] <= exact <= matched["t3_logdet_diag"]
    assert abs(matched["t4_marginal_floor"] - exact) < 0.03 * len(SCALES)


def test_headroom_of_a_correlated_source_matches_the_exact_value():
    """Mixed channels: the exact Hadamard gap of K = Cov(Yhat) + Δ²/12 is known."""
    rng = np.random.default_rng(1)
    mixing = np.array([[1.0, 0.0, 0.0], [0.9, 0.5, 0.0], [0.3, 0.4, 0.8]])
    fit = gaussian_windows(rng, 200, 64, [2.0, 2.0, 2.0], mixing)
    evaluation = gaussian_windows(rng, 200, 64, [2.0, 2.0, 2.0], mixing)
    codec = fitted_codec(fit, step_factor=0.25)
    s = run_statistics(codec, fit, evaluation)
    cov = 4.0 * mixing @ mixing.T + np.diag(codec.step ** 2) / 12  # ≈ Cov(Yhat) + Δ²/12
    corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    exact = -0.5 * math.log2(np.linalg.det(corr)) * (64 - 1) / 64
    assert exact > 0.5
    assert abs(s["t3_dependency_headroom"] - exact) < 0.05 * exact
    assert s["t3_logdet_full"] < s["t3_logdet_diag"]


def test_t7_prediction_is_close_when_the_steps_are_fisher_allocated(matched):
    """F_jj = 1/σ_j² and steps σ_j/2 (the T7 allocation itself): the high-resolution
    prediction at the same ΔCE stays within 0.1 bit per channel of the estimate."""
    assert matched["t7_predicted_rate"] > 0
    assert abs(matched["t7_error"]) < 0.1 * len(SCALES)
    curve = matched["t7_curve"]
    assert np.all(np.diff(curve["rate"]) <= 0) and len(curve["delta_ce"]) == len(curve["rate"])


def test_t7_error_is_the_allocation_loss_for_identity_fisher(source):
    """F = I makes equal steps optimal; steps σ_j/2 lose exactly
    ½ Σ_j log2(mean_k Δ_k² / Δ_j²) bits at equal ΔCE (AM-GM), for positions >= 1."""
    fit, evaluation = source
    codec = fitted_codec(fit)
    ones = np.ones(len(SCALES))
    s = run_statistics(codec, fit, evaluation,
                       fisher=FisherDiagonal(rest=ones, first=ones, tokens=TOKENS))
    squares = codec.step ** 2
    loss = 0.5 * float(np.sum(np.log2(squares.mean() / squares))) * (TOKENS - 1) / TOKENS
    assert loss > 2.0
    assert abs(s["t7_error"] - loss) < 0.1 * len(SCALES)


def test_t9_figures_are_consistent(matched):
    s = matched
    assert 0 <= s["t9_rademacher_mc"] <= s["t9_rademacher_mc_upper"]
    assert s["t9_rademacher_massart"] > 0
    assert abs(s["t9_fit_rate"] - s["t9_eval_rate"]) < 0.1
    assert s["t9_generalization_bound"] > s["t9_fit_rate"]
    assert s["t10_entropy_model_lipschitz"] is None


def test_mis_specified_tables_raise_the_rate_above_the_diagonal_bound(source):
    fit, evaluation = source
    s = run_statistics(fitted_codec(fit, scale_error=40.0), fit, evaluation)
    assert s["rate_interval"][0] > s["t3_logdet_diag"] + 10


def test_codec_without_symbols_gets_rate_figures_only(source):
    fit, evaluation = source
    codec = Float16Cast()
    bits = np.array([8.0 * len(codec.encode(w)) for w in evaluation[:20]])
    s = codec_statistics(codec, fit[:20], evaluation[:20], bits, np.arange(20))
    assert s["entropy_model"] is None and s["t3_logdet_diag"] is None
    assert s["t9_rademacher_mc"] is None and s["t7_predicted_rate"] is None
    assert s["rate_interval"][0] <= 16 * len(SCALES) + 1 <= s["rate_interval"][1] + 2
    assert s["rate_interval_bound"] >= s["rate_actual"]


def test_zstd_of_symbols_is_a_generic_codec_with_the_quantizer_statistics(source):
    fit, evaluation = source
    codec = ZstdSymbols(fitted_codec(fit))
    bits = np.array([8.0 * len(codec.encode(w)) for w in evaluation[:30]])
    s = codec_statistics(codec, fit[:30], evaluation[:30], bits, np.arange(30))
    assert s["entropy_model"] == "generic" and s["t3_logdet_diag"] is not None
    assert s["t9_generalization_bound"] is None   # no likelihood model: no fit rate


def test_windows_of_one_document_are_one_unit(source):
    fit, evaluation = source
    codec = fitted_codec(fit)
    bits, estimated = measure(codec, evaluation[:40])
    s = codec_statistics(codec, fit[:40], evaluation[:40], bits, np.repeat(np.arange(20), 2),
                         estimated_bits=estimated)
    assert s["documents"] == 20 and s["windows"] == 40


def test_subsampling_is_said(source):
    fit, evaluation = source
    codec = fitted_codec(fit)
    bits, _ = measure(codec, evaluation[:40])
    s = codec_statistics(codec, fit[:40], evaluation[:40], bits, np.arange(40),
                         max_tokens=10 * TOKENS, max_cov_tokens=200)
    assert "10 of 40" in s["subsampled"] and "200 tokens" in s["subsampled"]


def test_learned_entropy_network_gets_its_jacobian_norm(source):
    fit, evaluation = source
    codec = fitted_codec(fit)
    matrix = torch.diag(torch.tensor([3.0, 1.0, 0.5, 0.2]))
    codec.entropy_network = lambda x: x @ matrix.T
    bits, _ = measure(codec, evaluation[:10])
    s = codec_statistics(codec, fit[:10], evaluation[:10], bits, np.arange(10))
    assert s["t10_entropy_model_lipschitz"] == pytest.approx(3.0, rel=1e-4)


@pytest.mark.parametrize("change, argument", [
    (dict(eval_bits=np.ones(3)), "eval_bits"),
    (dict(eval_documents=np.arange(3)), "eval_documents"),
    (dict(estimated_bits=-np.ones(10)), "estimated_bits"),
    (dict(confidence=1.5), "confidence"),
    (dict(fit_hidden=torch.zeros(10, 4)), "fit_hidden"),
])
def test_bad_input_names_the_argument(source, change, argument):
    fit, evaluation = source
    codec = fitted_codec(fit)
    arguments = dict(codec=codec, fit_hidden=fit[:10], eval_hidden=evaluation[:10],
                     eval_bits=np.ones(10), eval_documents=np.arange(10)) | change
    with pytest.raises(ValueError, match=argument):
        codec_statistics(**arguments)


def test_split_statistics_of_a_linear_prefix():
    """A per-token linear map A acting on each window: the spectral norm is ||A||_2."""
    a = torch.tensor([[2.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    x = torch.randn(3, 5, 2, dtype=torch.float64)
    s = split_statistics(lambda v: v @ a.T, x, iters=50)
    assert s["t10_prefix_jacobian"] == pytest.approx(float(torch.linalg.matrix_norm(a, 2)),
                                                    rel=1e-6)
    assert s["t10_prefix_jacobian_windows"] == 3
    with pytest.raises(ValueError, match="inputs_embeds_or_inputs"):
        split_statistics(lambda v: v, torch.ones(3, dtype=torch.long))


class _PredictiveStub:
    """A joint codec that exposes only its steps, means and transform (like ContextCodec)."""

    codec_id = "stub-joint"

    def __init__(self, factorized):
        self.step, self.first_step = factorized.step, factorized.first_step
        self.mean, self.first_mean = factorized.stats.mean, factorized.stats.first_mean
        self.analysis = self.synthesis = np.eye(factorized.step.size)

    def estimate_bits(self, hidden):
        return None


def test_codec_with_steps_only_is_measured_on_its_lattice(source):
    fit, evaluation = source
    factorized = fitted_codec(fit)
    bits, _ = measure(factorized, evaluation[:50])
    reference = codec_statistics(factorized, fit[:50], evaluation[:50], bits, np.arange(50))
    s = codec_statistics(_PredictiveStub(factorized), fit[:50], evaluation[:50], bits,
                         np.arange(50), estimated_bits=0.99 * bits)
    assert s["entropy_model"] == "joint" and s["rate_interval"] is None
    assert s["t9_rademacher_mc"] is None and s["t9_fit_rate"] is None  # stub: no estimate
    for key in ("t3_logdet_diag", "t3_logdet_full", "t4_marginal_floor", "mse"):
        assert s[key] == pytest.approx(reference[key], rel=1e-6)


def test_student_t_interval_agrees_with_the_rate(matched):
    low, high = matched["rate_ci_student_t"]
    assert low < matched["rate_actual"] < high
    assert matched["rate_interval"][0] <= low and high <= matched["rate_interval"][1]
