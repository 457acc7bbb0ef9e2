"""The rate prediction from fit statistics (validation/rate_prediction.py): the
cross-entropy formula against the codec's own tables, the prediction against
measured rates of real codecs on synthetic sources, and the claim with its defect."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from rdgap.codecs.coders.ans import ESCAPE_BITS
from rdgap.codecs.entropy_models.context_fit import fit_context_codec
from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec
from rdgap.codecs.entropy_models.tables import discretised_table, half_width
from rdgap.codecs.transforms.klt import fisher_klt
from rdgap.validation import rate_prediction as rp
from rdgap.validation import rate_prediction_claim as rpc
from rdgap.validation.claims import evaluate_claims


def _table_cross_entropy(family, data, model, rounding=0.5):
    """Independent computation: the data law's cell masses by scipy.stats, coded with the
    codec's own table (tables.py, floor included) over the codec's alphabet, the rest
    escaped (the escape's table cost + ESCAPE_BITS)."""
    width = int(half_width(np.array([model]))[0])
    k = np.arange(-width, width + 1)
    law = stats.norm(scale=data) if family == "gaussian" else stats.laplace(scale=data)
    upper = np.where(k >= 0, k + 1 - rounding, k + rounding)
    lower = np.where(k > 0, k - rounding, k - 1 + rounding)
    p = law.cdf(upper) - law.cdf(lower)
    table = discretised_table(family, 0.0, model, width, rounding)
    escape = law.sf(width + 1 - rounding) + law.cdf(-width - 1 + rounding)
    return float(-(p * np.log2(table[:-1])).sum()
                 + escape * (-np.log2(table[-1]) + ESCAPE_BITS))


@pytest.mark.parametrize("family, rounding", [("gaussian", 0.5), ("laplace", 0.5),
                                              ("laplace", 0.4)])
@pytest.mark.parametrize("data, model", [(0.05, 0.05), (0.3, 0.5), (1.0, 1.0), (2.5, 1.7),
                                         (9.0, 12.0), (30.0, 30.0), (4.0, 0.08),
                                         (40.0, 9.0)])
def test_cross_entropy_matches_the_codec_tables(family, rounding, data, model):
    got = float(rp.discretised_cross_entropy(family, data, model, rounding))
    assert got == pytest.approx(_table_cross_entropy(family, data, model, rounding),
                                abs=2e-3)


def test_cross_entropy_is_the_entropy_at_equal_scales_and_gibbs_otherwise():
    scales = np.array([0.5, 0.7, 3.0, 40.0])
    for family in ("gaussian", "laplace"):
        own = rp.discretised_cross_entropy(family, scales, scales)
        for wrong in (0.6, 1.7):  # Gibbs: a wrong model costs more
            assert np.all(rp.discretised_cross_entropy(family, scales, wrong * scales) > own)
    # high resolution: T5's h - log2(step) (step 1), the Gaussian h = ½ log2(2πe σ²)
    assert float(rp.discretised_cross_entropy("gaussian", 40.0, 40.0)) == pytest.approx(
        0.5 * np.log2(2 * np.pi * np.e * 1600), abs=1e-3)


@pytest.mark.parametrize("args, name", [(("cauchy", 1.0, 1.0), "family"),
                                        (("gaussian", -1.0, 1.0), "data_scale"),
                                        (("laplace", 1.0, np.inf), "data_scale"),
                                        (("laplace", 1.0, 1.0, 0.7), "rounding")])
def test_bad_input_names_the_argument(args, name):
    with pytest.raises(ValueError, match=name):
        rp.discretised_cross_entropy(*args)


def _measured(codec, hidden):
    return sum(codec.estimate_bits(w) for w in hidden) / (hidden.shape[0] * hidden.shape[1])


@pytest.fixture(scope="module")
def correlated():
    """Laplace tokens in 24 correlated channels, an AR(1) over positions (rho 0.8)."""
    rng = np.random.default_rng(3)
    windows, tokens, width = 24, 64, 24
    mixing = rng.normal(size=(width, width)) * np.exp(-np.arange(width) / 6.0)
    innovations = rng.laplace(size=(windows, tokens, width))
    z = np.empty_like(innovations)
    z[:, 0] = innovations[:, 0]
    for t in range(1, tokens):
        z[:, t] = 0.8 * z[:, t - 1] + 0.6 * innovations[:, t]
    return torch.from_numpy((z @ mixing.T).astype(np.float32))


def _klt(fit, family):
    rest = fit[:, 1:].reshape(-1, fit.shape[2]).double().numpy()
    klt = fisher_klt(np.cov(rest, rowvar=False), np.eye(fit.shape[2]), ridge=1e-4)
    return klt, ChannelStatistics.fit(fit, family, analysis=klt.analysis)


@pytest.mark.parametrize("transform", [False, True])
@pytest.mark.parametrize("family", ["gaussian", "laplace"])
def test_factorized_prediction_is_close_to_the_measured_rate(correlated, transform, family):
    fit, evaluation = correlated[:12], correlated[12:]
    statistics = ChannelStatistics.fit(fit[:6], family)
    analysis = synthesis = None
    if transform:
        klt, statistics = _klt(fit[:6], family)
        analysis, synthesis = klt.analysis, klt.synthesis
    for factor in (0.3, 1.5):  # most channels fine, then most below one step
        step = factor * np.full(24, float(np.median(statistics.scale)))
        codec = FactorizedCodec(statistics, step, statistics.first_scale, family,
                                analysis=analysis, synthesis=synthesis)
        measured = _measured(codec, evaluation)
        found = rp.rate_prediction(codec, fit, evaluation.shape[1], measured)
        assert abs(found["rate_prediction_relative_error"]) < 0.05, (factor, found)
        curve = found["rate_prediction_curve"]
        assert curve["rate"][rp.CURVE_FACTORS.index(1.0)] == found["rate_predicted"]
        assert np.all(np.diff(curve["rate"]) < 0)  # coarser steps, fewer bits


def test_held_out_scales_correct_the_in_sample_klt(correlated):
    """With few statistics tokens per dimension the in-sample KLT scales under-state the
    rate; the held-out fit windows' scales are what makes the prediction close."""
    fit, evaluation = correlated[:8], correlated[8:]
    klt, statistics = _klt(fit[:4], "laplace")  # 252 AR(1) tokens for 24 dimensions
    step = np.full(24, float(np.median(statistics.scale)))
    codec = FactorizedCodec(statistics, step, statistics.first_scale, "laplace",
                            analysis=klt.analysis, synthesis=klt.synthesis)
    measured = _measured(codec, evaluation)
    found = rp.rate_prediction(codec, fit, evaluation.shape[1], measured,
                               statistics_windows=4)
    in_sample = (found["rate_predicted_in_sample"] - measured) / measured
    assert abs(found["rate_prediction_relative_error"]) < 0.03
    assert in_sample < -0.05 and abs(in_sample) > 2 * abs(found["rate_prediction_relative_error"])


def test_context_prediction_sees_the_lag1_gain(correlated):
    fit, evaluation = correlated[:12], correlated[12:]
    klt, statistics = _klt(fit[:6], "laplace")
    step = np.full(24, 0.5 * float(np.median(statistics.scale)))
    codec = fit_context_codec(fit[:6], statistics.mean, klt.analysis, klt.synthesis, step,
                              statistics.first_mean, statistics.first_scale,
                              statistics.first_scale)
    measured = _measured(codec, evaluation)
    found = rp.rate_prediction(codec, fit, evaluation.shape[1], measured)
    assert abs(found["rate_prediction_relative_error"]) < 0.10, found
    plain = FactorizedCodec(statistics, step, statistics.first_scale, "laplace",
                            analysis=klt.analysis, synthesis=klt.synthesis)
    without_context = rp.rate_prediction(plain, fit, evaluation.shape[1], None)
    assert found["rate_predicted"] < 0.85 * without_context["rate_predicted"]
    assert "hyperprior" in found["rate_prediction_model"]


def test_context_prediction_follows_the_hyperprior_on_token_energies():
    """Tokens whose scale varies (lognormal gain per token): the hyperprior codes each
    token at its own scale; the prediction follows it, a flat residual law does not."""
    rng = np.random.default_rng(5)
    gain = np.exp(1.2 * rng.standard_normal((24, 64, 1)))
    hidden = torch.from_numpy((gain * rng.laplace(size=(24, 64, 16))
                               * np.linspace(3.0, 0.3, 16)).astype(np.float32))
    fit, evaluation = hidden[:12], hidden[12:]
    klt, statistics = _klt(fit[:6], "laplace")
    step = np.full(16, 0.5 * float(np.median(statistics.scale)))
    codec = fit_context_codec(fit[:6], statistics.mean, klt.analysis, klt.synthesis, step,
                              statistics.first_mean, statistics.first_scale,
                              statistics.first_scale)
    measured = _measured(codec, evaluation)
    plan = rp.prediction_plan(codec, fit)
    predicted = rp.plan_rate(plan, evaluation.shape[1])
    flat = rp.plan_rate({**plan, "context": None}, evaluation.shape[1])
    assert abs(predicted - measured) < 0.08 * measured, (predicted, measured)
    assert flat > 1.15 * measured  # without the per-token scales: far off (+23 %)
    assert flat - measured > 3 * abs(predicted - measured)


def test_escapes_of_a_too_narrow_table_are_predicted(correlated):
    fit, evaluation = correlated[:12], correlated[12:]
    statistics = ChannelStatistics.fit(fit[:6], "gaussian")
    narrow = statistics.scale.copy()
    narrow[:3] /= 40.0  # three tables far too narrow: their symbols escape
    wrong = ChannelStatistics(statistics.mean, narrow, statistics.first_mean,
                              statistics.first_scale)
    codec = FactorizedCodec(wrong, 0.5 * statistics.scale, statistics.first_scale)
    measured = _measured(codec, evaluation)
    found = rp.rate_prediction(codec, fit, evaluation.shape[1], measured)
    assert abs(found["rate_prediction_relative_error"]) < 0.05, found


def test_window_controlled_codec_is_predicted_as_its_base(correlated):
    from rdgap.codecs.quantizers.window_control import WindowControlledCodec

    base = FactorizedCodec(ChannelStatistics.fit(correlated[:4]), np.ones(24), np.ones(24))
    wrapped = WindowControlledCodec(base, np.eye(24), np.ones(24), level=0.05, margin=1.0,
                                    cap_bits_per_token=1e4)
    plan, plain = rp.prediction_plan(wrapped, correlated[:8]), rp.prediction_plan(
        base, correlated[:8])
    assert rp.plan_rate(plan, 64) == rp.plan_rate(plain, 64)
    assert "window-controlled" in plan["model"]


def test_codecs_without_steps_and_bad_windows(correlated):
    assert rp.rate_prediction(object(), correlated, 64, 1.0)["rate_predicted"] is None
    codec = FactorizedCodec(ChannelStatistics.fit(correlated[:4]), np.ones(24), np.ones(24))
    with pytest.raises(ValueError, match="statistics_windows"):
        rp.prediction_plan(codec, correlated[:4], statistics_windows=4)
    with pytest.raises(ValueError, match="fit_hidden"):
        rp.prediction_plan(codec, correlated[:1])


def _row(predicted, measured=1000.0, split=1, level="dce<=0.05", predicted_dce=0.0125):
    curve = {"factor": list(rp.CURVE_FACTORS),
             "rate": [predicted * f ** -0.5 for f in rp.CURVE_FACTORS]}
    return {"architecture": "lm", "split": split, "codec": "gaussian-fisher", "level": level,
            "predicted_delta_ce_nats": predicted_dce, "bits_per_token_actual": measured,
            "statistics": {"rate_actual": measured, "rate_predicted": predicted,
                           "rate_prediction_curve": curve, "rate_prediction_model": "m"}}


def test_prediction_at_level_moves_to_t7s_step():
    # T7's step for the level is twice the codec's (0.05 / 0.0125 = 4 = 2²)
    assert rpc.prediction_at_level(_row(1000.0)) == pytest.approx(1000.0 * 2 ** -0.5)
    assert rpc.prediction_at_level(_row(1000.0, predicted_dce=0.05)) == pytest.approx(1000.0)
    assert rpc.prediction_at_level(_row(1000.0, predicted_dce=1e-6)) is None  # off the curve
    assert rpc.prediction_at_level(_row(1000.0, level=None)) is None


def _claim(rows):
    found = [c for c in evaluate_claims({"runs": rows}) if c["name"] == "rate_prediction[lm]"]
    assert len(found) == 1
    return found[0]


def test_claim_passes_within_tolerance_and_fails_on_an_injected_error():
    good = [_row(1000.0 * (1 + e), split=s) for s, e in enumerate((0.02, -0.05, 0.09))]
    claim = _claim(good)
    assert claim["status"] == "PASS" and not claim["gates"] and claim["kind"] == "prediction"
    assert claim["numbers"]["worst_relative_error"] == pytest.approx(0.09)
    assert "split 2" in claim["reason"]
    defect = good + [_row(1000.0 * 1.2, split=7)]  # one row predicted 20 % high
    claim = _claim(defect)
    assert claim["status"] == "FAIL" and claim["numbers"]["outside_tolerance"] == 1
    assert "+20.0% at split 7" in claim["reason"]
