"""The joint codecs (klt-context, klt-context-tokens) on the batched torch rANS coder:
the CPU codec's symbols and side latents exactly, its reconstruction to float rounding,
many windows per batch, mixed lengths, T2 per section, and clear errors on damaged,
truncated or foreign streams."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rdgap.bounds import rans_length_bounds
from rdgap.codecs.coders import ans, rans_torch
from rdgap.codecs.coders.container import BitstreamError, pack, unpack
from rdgap.codecs.entropy_models.context import ContextCodec
from rdgap.codecs.entropy_models.context_fit import fit_context_codec
from rdgap.codecs.entropy_models.factorized import ChannelStatistics
from rdgap.codecs.coders.torch_context import PRECISION, TorchContextCodec, integer_tables

from codec_data import assert_damage_is_detected, lm_like


def _sibling(name: str):
    """A test module of this folder (the suite imports in importlib mode: no package)."""
    spec = importlib.util.spec_from_file_location(f"_torch_context_{name}",
                                                  Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the synthetic data and fitted models of the CPU codecs' tests
scaled_tokens, fitted_context = (getattr(_sibling("test_context"), n)
                                 for n in ("scaled_tokens", "fitted"))
embedded_tokens, fitted_tokens = (getattr(_sibling("test_token_context"), n)
                                  for n in ("embedded_tokens", "fitted"))

# The decoded float32 values may differ from the CPU codec's by float64 rounding in the
# prediction m_t (different summation order in another BLAS or on another device), which
# can move the last float32 bit: tolerance 4 float32 ulps of each value, plus 1e-6 of the
# window's largest magnitude for values near zero (cancellation in mean + Ẑ·A⁻ᵀ). Drift
# cannot accumulate beyond rounding: the symbols are integers read from the stream.
RTOL = 4 * 2.0 ** -24


def assert_reconstruction(decoded: torch.Tensor, expected: torch.Tensor) -> None:
    atol = 1e-6 * float(expected.abs().max())
    assert torch.allclose(decoded, expected, rtol=RTOL, atol=atol), \
        float((decoded - expected).abs().max())


@pytest.fixture(scope="module")
def context():
    model = fitted_context(scaled_tokens(8, 64, seed=0), groups=2)[0]
    return model, TorchContextCodec(model, lanes=4)


@pytest.fixture(scope="module")
def tokens():
    model = fitted_tokens(lags=(0, 1), groups=2)[0]
    return model, TorchContextCodec(model, lanes=8)


def test_symbols_and_side_latents_are_the_cpu_codecs(context, tokens):
    x = scaled_tokens(4, 50, seed=7)
    x[1, 20, 3] = 1e6      # far outside every table: an escaped value
    x[2, 0, 5] = -3e7      # an escape at position 0
    model, codec = context
    q = codec.quantize(x)
    for b in range(len(x)):
        first, result, _ = model._code(x[b])
        assert np.array_equal(q.first[b].numpy(), first)
        assert np.array_equal(q.symbols[b].numpy(), result.symbols[0])
        assert np.array_equal(q.side[b].numpy(), result.side[0])
    assert bool((q.symbols.abs() > 1000).any())  # the escape is really exercised
    model, codec = tokens
    h, ids, _ = embedded_tokens(3, 40, seed=3)
    q = codec.quantize(h, ids)
    for b in range(len(h)):
        first, result, _ = model._code(h[b], model.offsets(ids[b].numpy()))
        assert np.array_equal(q.symbols[b].numpy(), result.symbols[0])
        assert np.array_equal(q.side[b].numpy(), result.side[0])
        assert np.array_equal(q.first[b].numpy(), first)


def test_batch_round_trip_is_the_cpu_reconstruction(context):
    model, codec = context
    x = scaled_tokens(6, 50, seed=11)
    x[3, 9, 0] = -5e6
    data = codec.encode_batch(x)
    assert len(data) == 6 and codec.encode_batch(x) == data   # deterministic
    decoded = codec.decode_batch(data)
    assert decoded.shape == x.shape and decoded.dtype == torch.float32
    for b in range(len(x)):
        assert_reconstruction(decoded[b], model.reconstruct(x[b]))
        assert codec.encode(x[b]) == data[b]                  # a batch of one: same bytes
        assert torch.equal(codec.decode(data[b]), decoded[b])


@settings(max_examples=20, deadline=None)
@given(length=st.integers(1, 30), seed=st.integers(0, 1000),
       outlier=st.floats(-1e7, 1e7, allow_nan=False), lanes=st.sampled_from([1, 3, 16]))
def test_round_trip_edge_shapes_escapes_and_lanes(context, length, seed, outlier, lanes):
    model = context[0]
    codec = _codec(model, lanes)
    x = scaled_tokens(2, length, seed)
    x[1, length // 2, 3] = outlier
    for window, decoded in zip(x, codec.decode_batch(codec.encode_batch(x))):
        assert_reconstruction(decoded, model.reconstruct(window))


_BY_LANES: dict = {}


def _codec(model, lanes):
    return _BY_LANES.setdefault((id(model), lanes), TorchContextCodec(model, lanes=lanes))


def test_token_ids_are_read_from_the_stream(tokens):
    model, codec = tokens
    h, ids, _ = embedded_tokens(4, 40, seed=9)
    data = codec.encode_batch(h, ids)
    decoded, decoded_ids = codec.decode_batch_with_ids(data)
    assert torch.equal(decoded_ids, ids)
    for b in range(len(h)):
        assert_reconstruction(decoded[b], model.reconstruct(h[b], input_ids=ids[b]))
    one, one_ids = codec.decode_with_ids(codec.encode(h[0, :1], input_ids=ids[0, :1]))
    assert one.shape == (1, h.shape[2]) and torch.equal(one_ids, ids[0, :1])
    with pytest.raises(ValueError, match="input_ids"):
        codec.encode_batch(h)
    with pytest.raises(ValueError, match="input_ids"):
        codec.encode_batch(h, ids[:, :5])
    with pytest.raises(ValueError, match="input_ids"):
        codec.encode_batch(h, ids + model.vocabulary)


def test_windows_of_different_lengths(context, tokens):
    model, codec = context
    windows = [scaled_tokens(1, n, seed=n)[0] for n in (30, 1, 7, 30, 2)]
    data = codec.encode_batch(windows)
    for window, stream, decoded in zip(windows, data, codec.decode_windows(data)):
        assert_reconstruction(decoded, model.reconstruct(window))
        assert stream == codec.encode(window)
    with pytest.raises(ValueError, match="one length per call"):
        codec.decode_batch(data)
    model, codec = tokens
    h, ids, _ = embedded_tokens(2, 20, seed=4)
    data = codec.encode_batch([h[0], h[1, :9]], [ids[0], ids[1, :9]])
    back = codec.decode_windows(data)
    assert_reconstruction(back[1], model.reconstruct(h[1, :9], input_ids=ids[1, :9]))


def test_real_hidden_states_of_the_tiny_model(tiny_model):
    """Both joint codecs fitted and calibrated by fit_codec / fit_token_codec on split 2 of
    the tiny Llama; 8 windows coded in one batch decode to the CPU codec's reconstruction."""
    from rdgap.codecs.fit import FitContext, fit_codec
    from rdgap.split import SplitModel
    from rdgap.codecs.entropy_models.token_fit import fit_token_codec

    ids = torch.randint(0, 128, (20, 48), generator=torch.Generator().manual_seed(0))
    split = SplitModel(tiny_model, 2)
    with torch.no_grad():
        hidden = split.prefix(ids)
    context = FitContext.build(split, ids[:12], hidden[:12])
    half = context.hidden.shape[0]
    for model, kwargs in ((fit_codec("klt-context", context, 0.02).codec, {}),
                          (fit_token_codec(context, ids[:half], 0.02).codec, {"ids": ids[12:]})):
        codec = TorchContextCodec(model)
        data = codec.encode_batch(hidden[12:], kwargs.get("ids"))
        decoded = codec.decode_batch(data)
        for b in range(8):
            extra = {"input_ids": ids[12 + b]} if kwargs else {}
            assert_reconstruction(decoded[b], model.reconstruct(hidden[12 + b], **extra))
            assert_t2(codec, hidden[12 + b], data[b], **extra)


def assert_t2(codec: TorchContextCodec, window, stream: bytes, **input_ids) -> None:
    """T2 per rANS section (rans_length_bounds, start "lower", 63-bit state, 32-bit words,
    P = PRECISION, the section's lanes) with I under the integer tables; and the working
    form against the float model: payload ≤ 1.005·Σ −log2 q + 64·lanes·sections + the
    section table (32 bits per section and the escape count) + < 8 bits of sign padding."""
    ids = input_ids.get("input_ids")
    q = codec.quantize(window[None], None if ids is None else torch.as_tensor(ids)[None])
    payload = unpack(stream, codec.codec_id, codec.digest).payload
    sections = codec.sections(q)
    lengths = struct.unpack_from(f"<{len(sections)}I", payload)
    for (values, table), section, length in zip(sections, codec._sections, lengths):
        index = values + section.widths[table]
        index = torch.where((index < 0) | (index > 2 * section.widths[table]),
                            2 * section.widths[table] + 1, index)
        freq = section.freq[table, index].double()
        information = float(torch.log2((1 << PRECISION) / freq).sum())
        bounds = rans_length_bounds(information, values.shape[1], PRECISION, 63, 32,
                                    lanes=codec.lanes)
        assert bounds.lower <= 8 * length <= bounds.upper
    estimate = codec.estimate_bits(window, **input_ids)
    overhead = 64 * codec.lanes * len(sections) + 32 * (len(sections) + 1) + 8
    assert 8 * len(payload) <= (1 + ans.RELATIVE_OVERHEAD) * estimate + overhead


@pytest.mark.parametrize("step", [0.05, 0.5, 4.0])
def test_t2_per_section(step):
    model = fitted_context(scaled_tokens(4, 40, seed=1), step=step)[0]
    codec = TorchContextCodec(model)
    for x in scaled_tokens(3, 60, seed=2):
        assert_t2(codec, x, codec.encode(x))
    model = fitted_tokens(step=step)[0]
    codec = TorchContextCodec(model, lanes=4)
    h, ids, _ = embedded_tokens(2, 60, seed=5)
    for window, window_ids in zip(h, ids):
        assert_t2(codec, window, codec.encode(window, input_ids=window_ids),
                  input_ids=window_ids)


def test_damaged_truncated_and_foreign_streams_raise(context, tokens):
    model, codec = context
    x = scaled_tokens(1, 20, seed=3)[0]
    x[4, 2] = 4e6
    data = codec.encode(x)
    assert_damage_is_detected(codec, data, cut_every=11, flips=30, seed=2)
    with pytest.raises(BitstreamError, match="klt-context-laplace-rans"):
        model.decode(data)                      # a torch stream given to the CPU codec
    with pytest.raises(BitstreamError, match="cannot be decoded by 'klt-context-laplace-rans'"):
        codec.decode(model.encode(x))           # and the other way round
    with pytest.raises(BitstreamError, match="parameters or tables differ"):
        _codec(model, 1).decode(data)           # other lanes: another hash
    # damage to the section table or a rANS section under a valid checksum: the coder's
    # own checks catch it (the raw escape values after the sections carry no redundancy)
    stream = unpack(data, codec.codec_id, codec.digest)
    coded = 12 + sum(struct.unpack_from("<2I", stream.payload))
    rng = np.random.default_rng(0)
    for _ in range(30):
        broken = bytearray(stream.payload)
        position = int(rng.integers(0, coded))
        broken[position] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(BitstreamError):
            codec.decode(pack(codec.codec_id, codec.digest, stream.shape, bytes(broken)))
    for cut in (0, 5, 12, len(stream.payload) - 1):
        with pytest.raises(BitstreamError):
            codec.decode(pack(codec.codec_id, codec.digest, stream.shape, stream.payload[:cut]))
    model, codec = tokens
    h, ids, _ = embedded_tokens(1, 20, seed=8)
    assert_damage_is_detected(codec, codec.encode(h[0], input_ids=ids[0]), cut_every=13,
                              flips=20, seed=3)


def test_clear_errors(context):
    model, codec = context
    with pytest.raises(ValueError, match="model"):
        TorchContextCodec(object())
    with pytest.raises(ValueError, match="lanes"):
        TorchContextCodec(model, lanes=0)
    with pytest.raises(ValueError, match="16 channels"):
        codec.encode_batch(torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="windows, tokens, channels"):
        codec.encode_batch(torch.zeros(5, 16))
    with pytest.raises(ValueError, match="NaN"):
        codec.encode_batch(torch.full((1, 3, 16), float("nan")))
    with pytest.raises(ValueError, match="does not code token ids"):
        codec.encode_batch(torch.zeros(1, 3, 16), torch.zeros(1, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="2\\^32 steps"):
        codec.encode_batch(scaled_tokens(1, 4, 0) * 1e30)
    with pytest.raises(ValueError, match="no token ids"):
        codec.decode_with_ids(codec.encode(scaled_tokens(1, 5, 1)[0]))
    with pytest.raises(ValueError, match="sequence of streams"):
        codec.decode_batch(codec.encode(scaled_tokens(1, 4, 0)[0]))


def test_integer_tables_are_deterministic_and_cover_every_index(context):
    model, codec = context
    body = codec._sections[-1]
    assert body.freq.shape[0] == len(model._offsets)  # one table per index in range
    assert torch.all(body.freq.sum(1) == 1 << PRECISION) and torch.all(body.freq >= 1)
    again = TorchContextCodec(model, lanes=4)
    assert all(torch.equal(a.freq, b.freq) for a, b in zip(codec._sections, again._sections))
    assert again.digest == codec.digest != model.digest
    freq, widths = integer_tables(model._first_tables)
    for row, width, table in zip(freq.numpy(), widths, model._first_tables):
        p = row[:2 * width + 2] / 2.0 ** PRECISION   # the quantized table is the float one
        assert np.allclose(p, table.probabilities, rtol=0.01, atol=2.0 ** -PRECISION * 2)
    assert rans_torch.DEFAULT_LANES == TorchContextCodec(model).lanes


def test_encoder_options_of_the_model_carry_over():
    """rdo (encoder-only) gives the CPU codec's symbols; a deep side density round trips."""
    fit = scaled_tokens(8, 64, seed=0)
    eye = np.eye(fit.shape[2])
    stats = ChannelStatistics.fit(fit, "laplace", analysis=eye)
    args = (fit, stats.mean, eye, eye, 0.5 * np.ones(fit.shape[2]), stats.first_mean,
            stats.first_scale, 0.5 * stats.first_scale)
    deep = fit_context_codec(*args, groups=2, side_density="deep")
    tuned = ContextCodec(**{**deep._constructor_arguments(), "rdo": 0.2})
    x = scaled_tokens(2, 40, seed=13)
    for model in (deep, tuned):
        codec = TorchContextCodec(model)
        q = codec.quantize(x)
        for b in range(2):
            _, result, _ = model._code(x[b])
            assert np.array_equal(q.symbols[b].numpy(), result.symbols[0])
        decoded = codec.decode_batch(codec.encode_batch(x))
        for b in range(2):
            assert_reconstruction(decoded[b], model.reconstruct(x[b]))


def test_property_suite_passes():
    """rdgap's property suite (round trip bit for bit against the CPU codec's reconstruct,
    determinism, T2 upper and lower per stream with the torch coder's constants,
    robustness to damaged streams) on the torch path of klt-context."""
    from rdgap.codecs.coders.container import header_size
    from rdgap.testing import FunctionCodec, check_codec

    fit = lm_like(6, 40, 12, seed=0)     # the suite's inputs look like these states
    eye = np.eye(12)
    stats = ChannelStatistics.fit(fit, "laplace", analysis=eye)
    model = fit_context_codec(fit, stats.mean, eye, eye, 0.4 * stats.scale, stats.first_mean,
                              stats.first_scale, 0.4 * stats.first_scale, groups=2)
    codec = TorchContextCodec(model, lanes=2)
    sections = 2
    declared = FunctionCodec(
        codec.encode, codec.decode, codec.estimate_bits, reconstruct=model.reconstruct,
        channels=model.channels, header_bits=8.0 * header_size(codec.codec_id, 2),
        decode_errors=(BitstreamError,), relative_overhead=ans.RELATIVE_OVERHEAD,
        # rans_length_bounds(start="lower"): ≤ 64 flush bits per lane and section, the
        # section table and escape count, < 8 bits of sign padding; lanes start at 2^31
        # (never shorter than the information) up to the 2^-24 table quantization
        stream_overhead_bits=64.0 * codec.lanes * sections + 32.0 * (sections + 1) + 8,
        lower_overhead_bits=64.0)
    report = check_codec(declared, max_examples=8, streams=12)
    assert {"round-trip", "determinism", "robustness", "T2-upper", "T2-lower"} \
        <= set(report.checked)


def test_float_differences_in_the_prediction_cannot_desynchronise_the_decoder(context):
    """A decoder whose causal loop runs in float32 (another device's arithmetic, made
    far coarser than any real device difference) decodes float64 streams without error:
    the symbols and side latents are read from the stream and select the same tables, and
    over 200 tokens the reconstruction moves by float32 rounding only — measured ≤ 2.3e-7
    of the window's largest value, i.e. a few float32 ulps, no drift (a bound of 1e-5)."""
    model, codec = context
    coarse = TorchContextCodec(model, lanes=codec.lanes, dtype=torch.float32)
    assert coarse.digest == codec.digest
    x = scaled_tokens(3, 200, seed=17)
    decoded = coarse.decode_batch(codec.encode_batch(x))
    for b in range(len(x)):
        expected = model.reconstruct(x[b])
        error = (decoded[b] - expected).abs().max() / expected[1:].abs().max()
        assert 0 < error < 1e-5, float(error)
    with pytest.raises(ValueError, match="dtype"):
        TorchContextCodec(model, dtype=torch.float16)
