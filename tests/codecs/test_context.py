"""The context / hyperprior codec: exact round trips, T2 per stream, damaged streams,
save/load, determinism, and a lower rate than the factorized model where tokens
differ in scale and depend on their predecessor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rdgap.codecs.coders import ans
from rdgap.codecs.coders.container import BitstreamError, header_size
from rdgap.codecs.entropy_models.context import ContextCodec, centroid_offset
from rdgap.codecs.entropy_models.context_fit import fit_context_codec, laplace_bits
from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec
from rdgap.codecs.entropy_models.tables import discretised_table
from rdgap.testing import check_codec

from codec_data import assert_damage_is_detected, lm_like

CHANNELS = 16


def scaled_tokens(windows: int, tokens: int, seed: int, memory: float = 0.8) -> torch.Tensor:
    """Laplace channels with spreads over a decade, a per-token gain over 10× and an
    AR(1) dependence on the previous token; a massive first token."""
    spread = np.exp(np.linspace(0.0, 2.3, CHANNELS))
    rng = np.random.default_rng(seed)
    gain = np.exp(rng.uniform(-1.15, 1.15, (windows, tokens, 1)))
    noise = rng.laplace(0.0, 1.0, (windows, tokens, CHANNELS)) * spread * gain
    x = np.empty_like(noise)
    x[:, 0] = noise[:, 0]
    for t in range(1, tokens):
        x[:, t] = memory * x[:, t - 1] + noise[:, t]
    x[:, 0, 0] = 2.5e4
    return torch.from_numpy(x).float()


def fitted(fit: torch.Tensor, step: float = 0.5, rounding: float = 0.4, groups: int = 1,
           ) -> tuple[ContextCodec, FactorizedCodec]:
    """A context codec and the factorized Laplace codec with the same steps (identity
    transform, so both quantize the same components)."""
    eye = np.eye(fit.shape[2])
    stats = ChannelStatistics.fit(fit, "laplace", analysis=eye)
    steps = step * np.ones(fit.shape[2])
    first = step * stats.first_scale
    context = fit_context_codec(fit, stats.mean, eye, eye, steps, stats.first_mean,
                                stats.first_scale, first, groups=groups, rounding=rounding)
    return context, FactorizedCodec(stats, steps, first, "laplace", analysis=eye, synthesis=eye)


@pytest.fixture(scope="module")
def codec() -> ContextCodec:
    return fitted(scaled_tokens(8, 64, seed=0), groups=2)[0]


def test_round_trip_is_exact_and_deterministic(codec):
    for x in scaled_tokens(3, 50, seed=7):
        data = codec.encode(x)
        assert torch.equal(codec.decode(data), codec.reconstruct(x))
        assert codec.encode(x) == data
    again = fitted(scaled_tokens(8, 64, seed=0), groups=2)[0]   # refitting gives the same codec
    assert again.digest == codec.digest
    assert again.encode(x) == data


@settings(max_examples=25, deadline=None)
@given(tokens=st.integers(1, 30), seed=st.integers(0, 1000),
       outlier=st.floats(-1e7, 1e7, allow_nan=False))
def test_round_trip_edge_shapes_and_escapes(codec, tokens, seed, outlier):
    x = scaled_tokens(1, tokens, seed)[0]
    x[tokens // 2, 3] = outlier  # far outside every table: coded through the escape
    assert torch.equal(codec.decode(codec.encode(x)), codec.reconstruct(x))


@settings(max_examples=25, deadline=None)
@given(tokens=st.integers(1, 80), seed=st.integers(0, 1000),
       step=st.sampled_from([0.05, 0.5, 4.0]))
def test_t2_per_stream(tokens, seed, step):
    """THEORY.md T2, working form of codecs/ans.py: payload ≤ 1.005·Σ −log2 q + 64 bits
    for the whole stream (side latents, position 0 and grouped symbols)."""
    codec = _CODECS.setdefault(step, fitted(scaled_tokens(4, 40, seed=1), step=step)[0])
    x = scaled_tokens(1, tokens, seed)[0]
    payload_bits = 8 * (len(codec.encode(x)) - header_size(codec.codec_id, 2))
    estimate = codec.estimate_bits(x)
    assert payload_bits <= (1 + ans.RELATIVE_OVERHEAD) * estimate + ans.STREAM_OVERHEAD_BITS


_CODECS: dict[float, ContextCodec] = {}


def test_damaged_streams_raise(codec):
    data = codec.encode(scaled_tokens(1, 20, seed=3)[0])
    assert_damage_is_detected(codec, data)
    other = fitted(scaled_tokens(8, 64, seed=5))[0]
    with pytest.raises(BitstreamError, match="hash"):
        other.decode(data)


def test_save_load_round_trip_and_hash_check(codec, tmp_path):
    folder = codec.save(tmp_path / "codec")
    loaded = ContextCodec.load(folder)
    x = scaled_tokens(1, 30, seed=11)[0]
    assert loaded.digest == codec.digest and loaded.encode(x) == codec.encode(x)
    from safetensors.numpy import load_file, save_file
    tensors = load_file(str(folder / "tensors.safetensors"))
    tensors["bias"] = tensors["bias"] + 1e-9
    save_file(tensors, str(folder / "tensors.safetensors"))
    with pytest.raises(ValueError, match="hash"):
        ContextCodec.load(folder)
    with pytest.raises(FileNotFoundError, match="config.json"):
        ContextCodec.load(tmp_path / "missing")


def test_beats_the_factorized_model_where_scales_vary_and_tokens_depend():
    """Same steps and plain rounding (ρ = ½): the context codec must spend clearly fewer
    bits on held-out windows, at no more distortion (centroid reconstruction only
    lowers the squared error of a cell)."""
    fit = scaled_tokens(8, 64, seed=0)
    context, factorized = fitted(fit, step=0.5, rounding=0.5)
    held_out = scaled_tokens(6, 64, seed=42)
    rate = {c: sum(8 * len(c.encode(x)) for x in held_out) for c in (context, factorized)}
    error = {c: sum(float(((c.reconstruct(x) - x)[1:] ** 2).sum()) for x in held_out)
             for c in (context, factorized)}
    assert rate[context] < 0.9 * rate[factorized], rate  # measured: 0.86
    assert error[context] <= 1.02 * error[factorized], error


def test_on_independent_tokens_the_predictor_switches_off():
    fit = scaled_tokens(8, 64, seed=0, memory=0.0)
    context, _ = fitted(fit)
    assert "ridge=inf" in context.label or np.abs(context.predictor).max() < 0.2


def test_dead_zone_tables_match_the_closed_form():
    """The dead-zone discretised Laplace table and the analytic code length of the
    fitting code are computed independently; they must agree symbol by symbol."""
    for scale in (0.1, 1.0, 7.0):
        for rounding in (0.5, 0.4, 0.3):
            width = 80
            table = discretised_table("laplace", 0.0, scale, width, rounding)
            symbols = np.arange(-6, 7)
            expected = np.exp2([-laplace_bits(np.array([s]), scale, rounding) for s in symbols])
            kept = expected > 2.0 ** -12  # well above the table floor of 2^-20
            got = table[symbols + width]
            # ratios to the zero symbol: the table's renormalisation after flooring cancels
            assert np.allclose((got / got[6])[kept], (expected / expected[6])[kept], rtol=1e-9)
            assert kept.sum() >= 3


def test_centroid_offset_is_the_conditional_mean_of_a_cell():
    rng = np.random.default_rng(0)
    for scale, rounding in ((0.3, 0.4), (2.0, 0.5), (8.0, 0.35)):
        x = np.abs(rng.laplace(0.0, scale, 2_000_000))
        k = 2
        cell = x[(x >= k - rounding) & (x < k + 1 - rounding)]
        assert abs((k - cell.mean()) - centroid_offset(scale, rounding)) < 0.01


def test_clear_errors(codec):
    with pytest.raises(ValueError, match="16 channels"):
        codec.encode(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="groups"):
        fitted(scaled_tokens(2, 8, seed=0), groups=0)
    with pytest.raises(ValueError, match="rounding"):
        fitted(scaled_tokens(2, 8, seed=0), rounding=0.7)
    with pytest.raises(ValueError, match="hidden"):
        fit_context_codec(torch.zeros(3, 1, CHANNELS), *([np.zeros(CHANNELS)] + [np.eye(16)] * 2
                                                        + [np.ones(CHANNELS)] * 4))


def test_property_suite_passes():
    fit = lm_like(6, 40, 12, seed=0)
    eye = np.eye(12)
    stats = ChannelStatistics.fit(fit, "laplace", analysis=eye)
    codec = fit_context_codec(fit, stats.mean, eye, eye, 0.4 * stats.scale, stats.first_mean,
                              stats.first_scale, 0.4 * stats.first_scale)
    report = check_codec(codec, max_examples=8, streams=12)
    assert {"round-trip", "determinism", "robustness", "T2-upper"} <= set(report.checked)


def test_fit_codec_registers_the_variant(tiny_model):
    """``klt-context`` is fitted and calibrated by fit_codec like every variant."""
    from rdgap.codecs.fit import VARIANTS, FitContext, fit_codec
    from rdgap.split import SplitModel

    assert "klt-context" in VARIANTS
    ids = torch.randint(0, 128, (12, 48), generator=torch.Generator().manual_seed(0))
    split = SplitModel(tiny_model, 2)
    with torch.no_grad():
        hidden = split.prefix(ids)
    context = FitContext.build(split, ids, hidden)
    fitted = fit_codec("klt-context", context, 0.02)
    assert isinstance(fitted.codec, ContextCodec) and fitted.calibration.met
    # the calibrated codec reproduces the calibration's ΔCE exactly: the side-density refit
    # at the chosen scale changes the rate only
    assert context.probe.delta_ce(fitted.codec.reconstruct) == fitted.calibration.delta_ce <= 0.02
    window = hidden[0]
    assert torch.equal(fitted.codec.decode(fitted.codec.encode(window)),
                       fitted.codec.reconstruct(window))


def test_without_context_the_codec_still_round_trips():
    fit = scaled_tokens(4, 32, seed=0)
    eye = np.eye(CHANNELS)
    stats = ChannelStatistics.fit(fit, "laplace", analysis=eye)
    codec = fit_context_codec(fit, stats.mean, eye, eye, 0.5 * np.ones(CHANNELS),
                              stats.first_mean, stats.first_scale, stats.first_scale,
                              predicted=0)
    assert codec.predicted == 0
    x = scaled_tokens(1, 20, seed=3)[0]
    assert torch.equal(codec.decode(codec.encode(x)), codec.reconstruct(x))


def test_rescaled_distortion_is_monotone_in_the_step_scale(codec):
    """The calibration only rescales one fitted codec: squared error on held-out windows
    must grow with the step scale (T7: ∝ α²) at every one of a fine grid of scales; a
    codec refitted at each scale is not bound to (its predictor and tables change)."""
    held_out = scaled_tokens(4, 64, seed=21)
    factors = np.exp(np.linspace(np.log(0.5), np.log(2.0), 13))
    errors = []
    for factor in factors:
        scaled = codec.rescaled(float(factor))
        errors.append(sum(float(((scaled.reconstruct(x) - x)[1:] ** 2).sum()) for x in held_out))
    errors = np.array(errors)
    assert np.all(np.diff(errors) > 0), errors
    ratio = errors[-1] / errors[0]  # 16× from α² over a 4× range of scales, within 40 %
    assert 16 / 1.4 < ratio < 16 * 1.4, ratio


def test_rescaling_keeps_the_model_and_side_refit_changes_only_the_rate(codec):
    from rdgap.codecs.entropy_models.context_fit import refit_side_density
    assert codec.rescaled(1.0).digest == codec.digest
    scaled = codec.rescaled(1.7)
    assert np.array_equal(scaled.predictor, codec.predictor)
    assert np.allclose(scaled.step, 1.7 * codec.step)
    refit = refit_side_density(scaled, scaled_tokens(8, 64, seed=0))
    x = scaled_tokens(1, 40, seed=9)[0]
    assert torch.equal(refit.reconstruct(x), scaled.reconstruct(x))
    assert torch.equal(refit.decode(refit.encode(x)), refit.reconstruct(x))
    assert refit.digest != scaled.digest
    with pytest.raises(ValueError, match="factor"):
        codec.rescaled(0.0)


def test_deep_side_density_round_trips_and_codes_side_latents_as_well_as_the_histogram():
    """The learned flexible density (rdgap.codecs.entropy_models.deep_density) as the side-latent model:
    exact round trips, the same reconstruction, and held-out side-latent bits no worse
    than the histogram's by more than 2 %."""
    fit = scaled_tokens(8, 64, seed=0)
    eye = np.eye(CHANNELS)
    stats = ChannelStatistics.fit(fit, "laplace", analysis=eye)
    args = (fit, stats.mean, eye, eye, 0.5 * np.ones(CHANNELS), stats.first_mean,
            stats.first_scale, 0.5 * stats.first_scale)
    histogram = fit_context_codec(*args, groups=2)
    deep = fit_context_codec(*args, groups=2, side_density="deep")
    held_out = scaled_tokens(6, 64, seed=42)
    side = histogram.analyse((held_out[:, 1:].double().numpy() - stats.mean)).side
    side_bits = {}
    for name, codec in (("histogram", histogram), ("deep", deep)):
        p = codec.side_probabilities
        side_bits[name] = float(-np.log2(p[np.arange(2), side + 12]).sum())
    assert side_bits["deep"] < 1.02 * side_bits["histogram"], side_bits  # measured: 0.99
    for x in held_out[:2]:
        assert torch.equal(deep.decode(deep.encode(x)), deep.reconstruct(x))
        assert torch.equal(deep.reconstruct(x), histogram.reconstruct(x))
    with pytest.raises(ValueError, match="density"):
        fit_context_codec(*args, side_density="gmm")


def test_rate_distortion_optimised_quantization_is_encoder_only(codec):
    """rdo > 0 moves symbols toward zero where ΔD + rdo·Δbits < 0: exact round trips with
    the unchanged decoder, fewer bits than rdo = 0 at the same steps at a comparable
    squared error (it can even fall: the dead zone's thresholds are not midway between
    centroid reconstructions), and only single steps toward zero."""
    from rdgap.codecs.entropy_models.context import rdo_symbols, table_scale
    tuned = ContextCodec(**{**codec._constructor_arguments(), "rdo": 0.2})
    assert tuned.digest == codec.digest  # the decoder does not depend on it
    held_out = scaled_tokens(4, 64, seed=31)
    bits = {c: sum(c.estimate_bits(x) for x in held_out) for c in (codec, tuned)}
    error = {c: sum(float(((c.reconstruct(x) - x)[1:] ** 2).sum()) for x in held_out)
             for c in (codec, tuned)}
    assert bits[tuned] < bits[codec] and error[tuned] < 1.1 * error[codec], (bits, error)
    for x in held_out[:2]:
        assert torch.equal(codec.decode(tuned.encode(x)), tuned.reconstruct(x))
    rng = np.random.default_rng(0)
    x = rng.laplace(0, 2.0, 4000)
    scale = table_scale(np.full(x.shape, 4))
    offset = centroid_offset(scale, 0.4)
    plain = np.sign(x) * np.floor(np.abs(x) + 0.4)
    moved = rdo_symbols(x, plain, scale, offset, 0.4, 0.2)
    assert np.all((moved == plain) | (moved == plain - np.sign(plain)))
    assert 0 < np.mean(moved != plain) < 0.5
    with pytest.raises(ValueError, match="rdo"):
        ContextCodec(**{**codec._constructor_arguments(), "rdo": -1.0})
