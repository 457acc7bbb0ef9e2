"""The learned scale hyperprior (klt-hyperprior): exact round trips whose reconstruction is
klt-context's, T2 per stream, an integer hyper-synthesis that numpy, torch and the
quantization-aware training forward compute identically, a decoder that never runs the
float hyper-analysis, a lower rate than the closed-form hyperprior where the scale varies
per token *and* per group of components, damaged or foreign streams, save/load, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdgap.codecs.coders import ans
from rdgap.codecs.coders.container import BitstreamError, header_size
from rdgap.codecs.entropy_models.context import ContextCodec
from rdgap.codecs.entropy_models.context_fit import fit_context_codec
from rdgap.codecs.entropy_models.factorized import ChannelStatistics
from rdgap.codecs.entropy_models.hyperprior import (DELTA_LIMIT, FRACTION_BITS, HyperpriorCodec,
                                     integer_synthesis)
from rdgap.codecs.entropy_models.hyperprior_fit import HyperpriorNetworks, fit_hyperprior

from codec_data import assert_damage_is_detected

CHANNELS, HALVES = 48, 2


def two_gain_states(windows: int, tokens: int, seed: int) -> torch.Tensor:
    """Laplace components whose scale has a latent per-token gain for each half of the
    components (independent log-uniform over ±1.5 nats), spreads 3 → 0.5, a massive first
    token. One closed-form gain per token sees only the average of the two gains."""
    rng = np.random.default_rng(seed)
    gain = np.repeat(np.exp(rng.uniform(-1.5, 1.5, (windows, tokens, HALVES))),
                     CHANNELS // HALVES, axis=2)
    x = rng.laplace(0.0, 1.0, (windows, tokens, CHANNELS)) * gain * np.linspace(3, 0.5, CHANNELS)
    x[:, 0, 0] = 2.5e4
    return torch.from_numpy(x).float()


def context_codec(fit: torch.Tensor | None = None, step: float = 0.5,
                  relative: bool = False) -> ContextCodec:
    """klt-context (identity transform) on ``fit`` (default: two-gain states), steps
    ``step`` (times each channel's scale if ``relative``)."""
    fit = two_gain_states(16, 64, seed=0) if fit is None else fit
    eye = np.eye(fit.shape[-1])
    stats = ChannelStatistics.fit(fit, "laplace", analysis=eye)
    steps = step * (stats.scale if relative else np.ones(fit.shape[-1]))
    return fit_context_codec(fit, stats.mean, eye, eye, steps, stats.first_mean,
                             stats.first_scale, step * stats.first_scale)


@pytest.fixture(scope="module")
def trained():
    plain = context_codec()
    result = fit_hyperprior(plain, two_gain_states(16, 64, seed=0), latents=8,
                            float_steps=300, quantized_steps=100, batch=512, progress=False)
    return plain, result


def test_round_trip_is_exact_and_reconstructs_as_klt_context(trained):
    plain, result = trained
    codec = result.codec
    for window in two_gain_states(3, 40, seed=7):
        data = codec.encode(window)
        decoded = codec.decode(data)
        assert torch.equal(decoded, codec.reconstruct(window))
        assert torch.equal(decoded, plain.reconstruct(window))  # only the rate differs
        assert codec.encode(window) == data
    one = two_gain_states(1, 1, seed=8)[0]
    assert torch.equal(codec.decode(codec.encode(one)), plain.reconstruct(one))


def test_t2_per_stream(trained):
    codec = trained[1].codec
    for window in two_gain_states(4, 64, seed=2):
        payload = 8 * (len(codec.encode(window)) - header_size(codec.codec_id, 2))
        assert payload <= (1 + ans.RELATIVE_OVERHEAD) * codec.estimate_bits(window) \
            + ans.STREAM_OVERHEAD_BITS


def test_cheaper_than_the_closed_form_hyperprior_on_held_out_windows(trained):
    """Expected: the closed form codes one gain per token (the mean over components),
    so a component in the half with the larger gain is coded with too small a scale and
    the other half with too large a one; learned latents that carry both gains cost a few
    bits per token and save more. Measured on held-out windows, whole streams."""
    plain, result = trained
    held = two_gain_states(8, 64, seed=42)
    learned = sum(8 * len(result.codec.encode(w)) for w in held)
    closed = sum(8 * len(plain.encode(w)) for w in held)
    assert learned < 0.985 * closed, (learned, closed)
    assert result.bits_per_token_after < result.bits_per_token_before
    assert result.seconds > 0


def test_integer_synthesis_is_identical_in_numpy_and_torch_and_in_training(trained):
    codec = trained[1].codec
    rng = np.random.default_rng(0)
    side = rng.integers(-12, 13, size=(500, 1 + codec.latents))
    numpy_delta = codec.index_corrections(side)
    torch_delta = codec.index_corrections(torch.from_numpy(side))
    assert torch_delta.dtype == torch.int64
    assert np.array_equal(numpy_delta, torch_delta.numpy())
    assert np.abs(numpy_delta).max() <= DELTA_LIMIT and np.unique(numpy_delta).size > 3
    # the quantization-aware float64 forward of training is the integer network exactly
    nets = HyperpriorNetworks(CHANNELS, 1, 4, 8, 16)
    with torch.no_grad():
        nets.weight2.normal_(0.0, 3.0)
        nets.bias2.normal_(0.0, 3.0)
    v = torch.from_numpy(rng.integers(-12, 13, size=(2000, 5))).double()
    with torch.no_grad():
        trained_delta = nets.corrections(v, quantized=True)
    weights = nets.integer_weights()
    integer = integer_synthesis(v.long(), *[weights[name].long() for name in (
        "synthesis_weight1", "synthesis_bias1", "synthesis_weight2", "synthesis_bias2")])
    assert torch.equal(trained_delta.long(), integer)
    assert trained_delta.abs().max() > 0


def test_the_decoder_never_runs_the_float_hyper_analysis(trained, monkeypatch):
    """Any latents the encoder picks (here: float-perturbed h_a, standing in for another
    device's float arithmetic) give a stream that decodes to the same reconstruction, and
    decoding does not call h_a at all."""
    codec = trained[1].codec
    window = two_gain_states(1, 50, seed=5)[0]
    honest = codec.encode(window)
    original = codec.hyper_analysis
    monkeypatch.setattr(codec, "hyper_analysis", lambda f: original(f + 0.37 * np.sin(7 * f)))
    perturbed = codec.encode(window)
    assert perturbed != honest  # other latents, other tables, other bytes

    def forbidden(features):
        raise AssertionError("the decoder ran h_a")

    monkeypatch.setattr(codec, "hyper_analysis", forbidden)
    assert torch.equal(codec.decode(perturbed), codec.decode(honest))
    assert torch.equal(codec.decode(honest), trained[0].reconstruct(window))


def test_damaged_and_foreign_streams_raise(trained):
    plain, result = trained
    window = two_gain_states(1, 20, seed=3)[0]
    assert_damage_is_detected(result.codec, result.codec.encode(window))
    with pytest.raises(BitstreamError):
        result.codec.decode(plain.encode(window))
    with pytest.raises(BitstreamError):
        plain.decode(result.codec.encode(window))


def test_save_load_round_trip_and_hash_covers_the_integer_weights(trained, tmp_path):
    codec = trained[1].codec
    folder = codec.save(tmp_path / "codec")
    loaded = HyperpriorCodec.load(folder)
    window = two_gain_states(1, 30, seed=12)[0]
    assert loaded.digest == codec.digest and loaded.latents == codec.latents
    assert loaded.encode(window) == codec.encode(window)
    from safetensors.numpy import load_file, save_file
    tensors = load_file(str(folder / "tensors.safetensors"))
    tensors["synthesis_weight2"] = tensors["synthesis_weight2"] + 1
    save_file(tensors, str(folder / "tensors.safetensors"))
    with pytest.raises(ValueError, match="hash"):
        HyperpriorCodec.load(folder)
    arguments = codec._constructor_arguments()
    arguments["synthesis_bias2"] = arguments["synthesis_bias2"] + (1 << (2 * FRACTION_BITS))
    with pytest.raises(BitstreamError, match="hash"):
        HyperpriorCodec(**arguments).decode(codec.encode(window))


def test_rescaled_keeps_the_networks_and_klt_contexts_reconstruction(trained):
    plain, result = trained
    scaled = result.codec.rescaled(1.5)
    assert isinstance(scaled, HyperpriorCodec)
    assert np.array_equal(scaled.synthesis_weight2, result.codec.synthesis_weight2)
    window = two_gain_states(1, 40, seed=9)[0]
    assert torch.equal(scaled.decode(scaled.encode(window)),
                       plain.rescaled(1.5).reconstruct(window))


def test_bad_arguments_raise_naming_the_argument(trained):
    plain, result = trained
    fit = two_gain_states(2, 8, seed=0)
    with pytest.raises(ValueError, match="codec"):
        fit_hyperprior(result.codec, fit)
    with pytest.raises(ValueError, match="hidden"):
        fit_hyperprior(plain, fit[:, :, :5])
    with pytest.raises(ValueError, match="latents"):
        fit_hyperprior(plain, fit, latents=0)
    with pytest.raises(ValueError, match="^quantized_steps:"):
        fit_hyperprior(plain, fit, quantized_steps=0)
    with pytest.raises(ValueError, match="^float_steps:"):
        fit_hyperprior(plain, fit, float_steps=-1)
    arguments = result.codec._constructor_arguments()
    for name, value in (("synthesis_weight1", arguments["synthesis_weight1"] + 0.5),
                        ("synthesis_weight2", arguments["synthesis_weight2"][:, :-1]),
                        ("synthesis_bias1", np.full_like(arguments["synthesis_bias1"], 2 ** 30)),
                        ("analysis_weight1", arguments["analysis_weight1"][:, :-1]),
                        ("hyper_side_probabilities", 2 * arguments["hyper_side_probabilities"])):
        with pytest.raises(ValueError, match=name):
            HyperpriorCodec(**{**arguments, name: value})


def test_the_variant_reconstructs_as_the_calibrated_klt_context(tiny_model):
    """fit_hyperprior_codec calibrates klt-context, then trains on every fit window: its
    ΔCE on the probe is klt-context's, exactly, and its streams round-trip."""
    from rdgap.codecs.fit import FitContext, fit_codec
    from rdgap.codecs.entropy_models.hyperprior_fit import VARIANT, fit_hyperprior_codec
    from rdgap.split import SplitModel

    ids = torch.randint(0, 128, (12, 48), generator=torch.Generator().manual_seed(0))
    split = SplitModel(tiny_model, 2)
    with torch.no_grad():
        hidden = split.prefix(ids)
    context = FitContext.build(split, ids, hidden)
    fitted = fit_hyperprior_codec(context, ids[:6], 0.02, latents=2, float_steps=20,
                                  quantized_steps=10, batch=64, progress=False)
    plain = fit_codec("klt-context", context, 0.02)
    assert fitted.variant == VARIANT and isinstance(fitted.codec, HyperpriorCodec)
    assert fitted.calibration.scale == plain.calibration.scale
    assert context.probe.delta_ce(fitted.codec.reconstruct) == plain.calibration.delta_ce
    window = hidden[-1]
    assert torch.equal(fitted.codec.decode(fitted.codec.encode(window)),
                       plain.codec.reconstruct(window))



def test_property_suite_passes():
    from codec_data import lm_like
    from rdgap.testing import check_codec

    fit = lm_like(6, 40, 12, seed=0)  # the suite's inputs look like these
    codec = fit_hyperprior(context_codec(fit, 0.4, relative=True), fit, latents=2,
                           float_steps=40, quantized_steps=20, batch=128, progress=False).codec
    report = check_codec(codec, max_examples=8, streams=12)
    assert {"round-trip", "determinism", "robustness", "T2-upper"} <= set(report.checked)


def test_training_that_fails_restores_the_thread_count(monkeypatch):
    """fit_hyperprior trains on one thread; an error inside training gives the caller's
    thread count back."""
    import rdgap.codecs.entropy_models.hyperprior_fit as hyperprior_fit

    def broken(*args, **kwargs):
        raise RuntimeError("broken rate")

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(hyperprior_fit, "_rate", broken)
        fit = two_gain_states(4, 8, seed=0)
        with pytest.raises(RuntimeError, match="broken rate"):
            fit_hyperprior(context_codec(fit), fit, float_steps=1, quantized_steps=1,
                           progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
