"""codec_statistics and split_statistics on sources whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rdgap.codecs.baselines import Float16Cast
from rdgap.codecs.transforms.fisher import FisherDiagonal
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
    assert s["t4_marginal_floor_lower"] <= s["t4_miller_madow_estimate"] <= s["rate_estimated"]
    assert s["t4_marginal_floor_status"] == "proven lower bound"
    assert s["rate_estimated"] - s["t4_miller_madow_estimate"] < 0.05 * len(SCALES)
    assert abs(s["rate_estimated"] - s["t3_logdet_diag"]) < 0.05 * len(SCALES)
    assert s["t3_dependency_headroom"] < 0.02
    low, high = s["rate_interval"]
    assert low <= s["rate_actual"] <= high and s["rate_interval_informative"]
    assert s["rate_interval_status"] == "informative" and 0 < low
    assert s["rate_document_mean"] == pytest.approx(s["rate_actual"])   # equal-length docs
    assert s["rate_document_mean"] <= s["rate_document_max"] <= s["rate_interval_bound"]
    assert s["entropy_model"] == "factorized" and "covariances on 16384" in s["subsampled"]


def test_exact_entropy_of_quantized_gaussian_is_inside(matched):
    """Σ_j H(round(Y_j/Δ_j)) at Δ = σ/2 is 4 × 3.0477 bits (T5, exact): the floor
    estimates must straddle it and the diagonal bound must exceed it."""
    from rdgap.bounds import quantized_entropy

    exact = len(SCALES) * quantized_entropy("gaussian", 1.0, 0.5)
    assert matched["t4_marginal_floor_lower"] <= exact <= matched["t3_logdet_diag"]
    assert abs(matched["t4_miller_madow_estimate"] - exact) < 0.03 * len(SCALES)


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
    assert s["t9_documents"] == WINDOWS                  # one fit window per fit document
    assert "t9_generalization_bound" not in s          # a statistic, never a bound
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
    # the rate of a fixed-size format is known: its interval is never "informative"
    assert s["rate_interval_status"] == "exact (fixed-size format)"
    assert s["rate_interval_informative"] is False


def test_zstd_of_symbols_is_a_generic_codec_with_the_quantizer_statistics(source):
    fit, evaluation = source
    codec = ZstdSymbols(fitted_codec(fit))
    bits = np.array([8.0 * len(codec.encode(w)) for w in evaluation[:30]])
    s = codec_statistics(codec, fit[:30], evaluation[:30], bits, np.arange(30))
    assert s["entropy_model"] == "generic" and s["t3_logdet_diag"] is not None
    assert s["t9_fit_rate"] is None   # no likelihood model: no fit rate


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
    for key in ("t3_logdet_diag", "t3_logdet_full", "t4_miller_madow_estimate", "mse"):
        assert s[key] == pytest.approx(reference[key], rel=1e-6)


def test_student_t_interval_agrees_with_the_rate(matched):
    low, high = matched["rate_ci_student_t"]
    assert low < matched["rate_actual"] < high
    assert matched["rate_interval"][0] <= low and high <= matched["rate_interval"][1]


# ----------------------------------------------------------------- Gibbs on the sample, T4, T8, T9
def _plugin_bits(columns: np.ndarray) -> float:
    """Σ_j plug-in entropy of the columns (bits), by scipy."""
    from scipy import stats as scipy_stats

    return float(sum(scipy_stats.entropy(np.unique(c, return_counts=True)[1], base=2)
                     for c in columns.T))


def test_gibbs_sample_floor_is_the_plugin_entropy_of_the_coded_symbols(source):
    """The floor is Σ_j Ĥ of exactly the symbols coded (scipy, independently), per token,
    and the codec's estimate of them is above it — here even for mis-specified tables."""
    fit, evaluation = source
    for scale_error in (1.0, 5.0):
        codec = fitted_codec(fit, scale_error=scale_error)
        s = run_statistics(codec, fit[:60], evaluation[:60])
        symbols = np.stack([codec.quantize(w) for w in evaluation[:60]])
        expected = (_plugin_bits(symbols[:, 0])
                    + _plugin_bits(symbols[:, 1:].reshape(-1, symbols.shape[2]))
                    * (TOKENS - 1)) / TOKENS
        assert s["gibbs_sample_floor"] == pytest.approx(expected, rel=1e-12)
        assert s["gibbs_sample_estimated"] == pytest.approx(s["rate_estimated"], rel=1e-12)
        assert s["gibbs_sample_estimated"] >= s["gibbs_sample_floor"]
        assert s["gibbs_sample_windows"] == 60


def test_gibbs_sample_floor_uses_the_kept_windows_when_subsampling(source):
    fit, evaluation = source
    codec = fitted_codec(fit)
    bits, estimated = measure(codec, evaluation[:40])
    s = codec_statistics(codec, fit[:40], evaluation[:40], bits, np.arange(40),
                         estimated_bits=estimated, max_tokens=10 * TOKENS)
    assert s["gibbs_sample_windows"] == 10
    chosen = np.sort(np.random.default_rng(0).choice(40, 10, replace=False))  # seed 0's draw
    assert s["gibbs_sample_estimated"] == pytest.approx(estimated[chosen].sum() / (10 * TOKENS))
    assert s["gibbs_sample_actual"] == pytest.approx(bits[chosen].sum() / (10 * TOKENS))
    assert s["gibbs_sample_estimated"] != pytest.approx(s["rate_estimated"], rel=1e-9)
    assert s["gibbs_sample_estimated"] >= s["gibbs_sample_floor"]


def test_gibbs_sample_floor_catches_tables_that_do_not_sum_to_one(source):
    """A bug: tables scaled by 4 (sum 4) make the estimate 2 bits per symbol too small —
    below the plug-in entropy of the symbols, which Gibbs forbids."""
    fit, evaluation = source
    codec = fitted_codec(fit)
    for table in codec._tables + codec._first_tables:
        table.neg_log2 = table.neg_log2 - 2.0
    s = run_statistics(codec, fit[:40], evaluation[:40])
    assert s["gibbs_sample_estimated"] < s["gibbs_sample_floor"]


def test_gibbs_sample_figures_are_none_without_own_symbols(source):
    fit, evaluation = source
    factorized = fitted_codec(fit)
    bits, _ = measure(factorized, evaluation[:20])
    s = codec_statistics(_PredictiveStub(factorized), fit[:20], evaluation[:20], bits,
                         np.arange(20), estimated_bits=0.99 * bits)
    assert s["gibbs_sample_floor"] is None and s["t4_marginal_floor_plugin"] is not None


def test_stream_bound_parts_sum_to_the_range_and_escapes_dominate(matched):
    parts = matched["rate_interval_bound_parts"]
    assert set(parts) == {"header", "flush", "position_0", "side", "in_table", "escape"}
    assert parts["side"] == 0.0                                  # no side latents
    assert sum(parts.values()) == pytest.approx(matched["rate_interval_bound"], rel=1e-12)
    assert parts["escape"] > parts["in_table"] > parts["position_0"]


def test_t8_documents_needed_reach_the_target_radius(source):
    from rdgap.bounds import hoeffding_radius

    fit, evaluation = source
    s = run_statistics(fitted_codec(fit), fit[:20], evaluation[:20])
    assert not s["rate_interval_informative"] or s["rate_interval"] is not None
    needed = s["t8_documents_needed"]
    bound, delta = s["rate_interval_bound"], 1 - s["confidence"]
    assert needed["epsilon"] == pytest.approx(0.1 * s["rate_actual"])
    n = needed["hoeffding"]
    assert hoeffding_radius(n, delta, bound) <= needed["epsilon"] < hoeffding_radius(
        n - 1, delta, bound)
    per_document = np.array([8.0 * len(fitted_codec(fit).encode(w)) for w in evaluation[:20]])
    variance, log_term = np.var(per_document / TOKENS, ddof=1), math.log(4 / delta)

    def radius(m):
        return math.sqrt(2 * variance * log_term / m) + 7 * bound * log_term / (3 * (m - 1))

    m = needed["bernstein_projected"]
    assert radius(m) <= needed["epsilon"] < radius(m - 1)
    assert m < n        # the range enters Bernstein linearly, Hoeffding squared


def test_t4_radius_shrinks_with_documents_only_and_needed_documents_reach_it(source):
    """One document per window: the document-level radius matches marginal_entropy_floor's
    on the same windows, and t4_documents_needed reaches 0.1 × the plug-in floor."""
    from rdgap.bounds import mcdiarmid_deviation

    fit, evaluation = source
    s = run_statistics(fitted_codec(fit), fit[:50], evaluation[:50])
    n, delta = len(SCALES), 1 - s["confidence"]
    doc = (mcdiarmid_deviation(n, 1, 50, delta / 2)
           + (TOKENS - 1) * mcdiarmid_deviation(n, TOKENS - 1, 50, delta / 2)) / TOKENS
    assert s["t4_marginal_floor_deviation"] == pytest.approx(doc, rel=1e-12)
    assert "t4_marginal_floor_lower_iid" not in s      # invalid under dependence: dropped
    k = s["t4_documents_needed"]

    def radius(m):
        return (mcdiarmid_deviation(n, 1, m, delta / 2)
                + (TOKENS - 1) * mcdiarmid_deviation(n, TOKENS - 1, m, delta / 2)) / TOKENS

    target = 0.1 * s["t4_marginal_floor_plugin"]
    assert radius(k) <= target < radius(k - 1) and s["t4_documents"] == 50


def test_t4_floor_is_reported_uninformative_instead_of_a_zero():
    """Few documents of many channels: the McDiarmid radius exceeds the plug-in; the proven
    floor is then None with a status that says so, never a 0 printed as a floor."""
    from rdgap.validation.statistics import _t4

    rng = np.random.default_rng(4)
    symbols = rng.integers(0, 3, size=(4, 8, 20))
    t4 = _t4(symbols, np.arange(4), 0.05)
    assert t4["t4_marginal_floor_deviation"] > t4["t4_marginal_floor_plugin"]
    assert t4["t4_marginal_floor_lower"] is None
    assert t4["t4_marginal_floor_status"].startswith("uninformative (radius ")
    assert f"{t4['t4_marginal_floor_plugin']:,.1f}" in t4["t4_marginal_floor_status"]


def test_heldout_bound_is_the_one_sided_betting_bound_on_document_rates(matched, source):
    from rdgap.bounds import betting_interval, betting_upper, empirical_bernstein_upper

    fit, evaluation = source
    codec = fitted_codec(fit)
    bits, _ = measure(codec, evaluation)
    s = matched
    per_document = bits / TOKENS
    delta, bound = 1 - s["confidence"], s["rate_interval_bound"]
    expected = min(bound, betting_upper(per_document, delta, bound))
    assert s["heldout_rate_upper"] == pytest.approx(expected, rel=1e-12)
    assert s["heldout_rate_interval"] == pytest.approx(
        list(betting_interval(per_document, delta, bound)), rel=1e-12)
    assert s["heldout_rate_upper_bernstein"] == pytest.approx(
        min(bound, empirical_bernstein_upper(per_document, delta, bound)), rel=1e-12)
    assert s["heldout_rate_range"] == bound and f"{bound:.6g}" in s["heldout_rate_method"]
    assert s["heldout_rate_mean"] == pytest.approx(per_document.mean())
    assert s["heldout_rate_mean"] < s["heldout_rate_upper"] < s["rate_interval"][1]
    assert s["heldout_documents"] == evaluation.shape[0]
    assert s["heldout_informative"] is bool(
        s["heldout_rate_upper"] - s["heldout_rate_mean"] <= 0.1 * s["heldout_rate_mean"])


@pytest.mark.parametrize("low, high, rate, exact, status", [
    (10.0, 20.0, 15.0, False, "informative"),
    (0.0, 20.0, 15.0, False, "uninformative (contains 0)"),
    (1.0, 20.0, 15.0, False, "uninformative (wider than the rate)"),
    (1.0, 16.0, 15.0, False, "informative"),          # width == rate: still informative
    (10.0, 20.0, 15.0, True, "exact (fixed-size format)"),
])
def test_interval_status(low, high, rate, exact, status):
    from rdgap.validation.statistics import interval_status

    assert interval_status(low, high, rate, exact=exact) == status


def test_split_logdet_is_half_the_log_det_over_the_nonzero_spectrum(matched):
    from rdgap.validation.statistics import split_logdet

    assert split_logdet([4.0, 16.0, 0.0]) == pytest.approx(0.5 * (2 + 4))
    assert split_logdet([1e-20, 1.0]) == pytest.approx(0.0)
    assert np.isfinite(matched["split_logdet_covariance"])


# ----------------------------------------------------------------- T10 of the context codec
def _context_codec(windows: int = 10, tokens: int = 32, channels: int = 6, seed: int = 3):
    """A tiny ContextCodec fitted on AR(1) Laplace tokens (identity transform)."""
    from rdgap.codecs.entropy_models.context_fit import fit_context_codec
    from rdgap.codecs.entropy_models.factorized import ChannelStatistics

    rng = np.random.default_rng(seed)
    noise = rng.laplace(0.0, 1.0, (2 * windows, tokens, channels)) * np.linspace(1, 4, channels)
    mixing = 0.6 * np.eye(channels) + 0.3 * rng.standard_normal((channels, channels)) / channels
    x = np.empty_like(noise)
    x[:, 0] = noise[:, 0]
    for t in range(1, tokens):
        x[:, t] = x[:, t - 1] @ mixing.T + noise[:, t]
    hidden = torch.from_numpy(x).float()
    fit, evaluation = hidden[:windows], hidden[windows:]
    eye = np.eye(channels)
    stats = ChannelStatistics.fit(fit, "laplace", analysis=eye)
    codec = fit_context_codec(fit, stats.mean, eye, eye, 0.5 * np.ones(channels),
                              stats.first_mean, stats.first_scale, 0.5 * stats.first_scale,
                              predicted=4)
    return codec, fit, evaluation


def test_context_codec_entropy_network_is_its_predictor():
    """entropy_network reproduces the codec's own prediction m_t = b + W Ẑ_{t-1} at the
    points entropy_network_inputs gives, and its power-iteration norm is ||W||_2 (exact
    SVD) — at 200 steps to 1e-6, and from below at the 20 steps the statistic uses."""
    from rdgap.bounds import jacobian_spectral_norm

    codec, fit, evaluation = _context_codec()
    points = codec.entropy_network_inputs(evaluation[0])
    assert points.shape == (evaluation.shape[1] - 1, evaluation.shape[2])
    assert torch.all(points[0] == 0)
    np.testing.assert_allclose(codec.entropy_network(points).numpy(),
                               codec._predict(points.numpy()), rtol=1e-12, atol=1e-12)
    exact = float(np.linalg.norm(codec.predictor, 2))
    assert exact > 0.1
    assert jacobian_spectral_norm(codec.entropy_network, points, iters=200) == pytest.approx(
        exact, rel=1e-6)
    bits = np.array([8.0 * len(codec.encode(w)) for w in evaluation])
    estimated = np.array([codec.estimate_bits(w) for w in evaluation])
    s = codec_statistics(codec, fit, evaluation, bits, np.arange(evaluation.shape[0]),
                         estimated_bits=estimated)
    assert s["entropy_model"] == "joint" and s["gibbs_sample_floor"] is None
    assert 0.98 * exact <= s["t10_entropy_model_lipschitz"] <= exact * (1 + 1e-9)


def test_context_codec_gets_a_t8_interval_from_its_worst_case():
    """B of the context codec: every symbol at its worst over all tables it may pick, side
    latents and position 0 included; every stream stays below it, T8 is reported."""
    from rdgap.codecs.entropy_models import context

    codec, fit, evaluation = _context_codec()
    bits = np.array([8.0 * len(codec.encode(w)) for w in evaluation])
    estimated = np.array([codec.estimate_bits(w) for w in evaluation])
    s = codec_statistics(codec, fit, evaluation, bits, np.arange(evaluation.shape[0]),
                         estimated_bits=estimated)
    parts, tokens = s["rate_interval_bound_parts"], evaluation.shape[1]
    every = [codec._table(i) for i in range(context.MIN_INDEX, context.MAX_INDEX + 1)]
    worst = max(max(t.neg_log2[:-1].max(), t.neg_log2[-1] + 40.0) + 1.0 for t in every)
    rest = 1.005 * (tokens - 1) * evaluation.shape[2] * worst / tokens
    assert parts["in_table"] + parts["escape"] == pytest.approx(rest, rel=1e-12)
    assert parts["side"] > 0 and parts["position_0"] > 0
    assert (bits / tokens).max() < s["rate_interval_bound"]
    low, high = s["rate_interval"]
    assert low <= s["rate_actual"] <= high and s["t8_documents_needed"]["hoeffding"] > 1
