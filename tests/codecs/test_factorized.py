"""The factorized reference codec: exact round trips, T2 between bytes and estimate,
rates against exact entropies, and clear errors on bad streams and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rdgap.bounds import quantized_entropy, quantized_log_pmf
from rdgap.codecs.coders import ans
from rdgap.codecs.coders.container import BitstreamError, header_size
from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec

from codec_data import VARIANTS, assert_damage_is_detected, lm_like, make_codec


@pytest.mark.parametrize("family, transform", VARIANTS)
def test_round_trip_is_exact(family, transform):
    codec = make_codec(family, transform)
    for x in lm_like(3, 50, 24, seed=7):
        data = codec.encode(x)
        assert torch.equal(codec.decode(data), codec.reconstruct(x))
        assert codec.encode(x) == data


@settings(max_examples=30, deadline=None)
@given(tokens=st.integers(1, 40), seed=st.integers(0, 1000), variant=st.sampled_from(VARIANTS),
       outlier=st.floats(-1e7, 1e7, allow_nan=False))
def test_round_trip_edge_shapes_and_escapes(tokens, seed, variant, outlier):
    codec = make_codec(*variant)
    x = lm_like(1, tokens, 24, seed)[0]
    x[tokens // 2, 3] = outlier  # far outside every table: coded through the escape
    assert torch.equal(codec.decode(codec.encode(x)), codec.reconstruct(x))


@settings(max_examples=40, deadline=None)
@given(tokens=st.integers(1, 80), seed=st.integers(0, 1000), variant=st.sampled_from(VARIANTS),
       scale=st.sampled_from([0.05, 0.3, 1.0, 4.0]))
def test_t2_bytes_against_the_likelihood_estimate(tokens, seed, variant, scale):
    """THEORY.md T2 for the shipped ANS coder, in the working form codecs/ans.py states:
    payload ≤ 1.005·Σ −log2 q + 64 bits (the proven flush constant is 56 bits, plus
    the table quantization cost). constriction has no lower constant (its stack
    starts empty), so the lower side is the Kraft check of the known-entropy test."""
    codec = make_codec(*variant, scale=scale)
    x = lm_like(1, tokens, 24, seed)[0]
    payload_bits = 8 * (len(codec.encode(x)) - header_size(codec.codec_id, 2))
    estimate = codec.estimate_bits(x)
    assert payload_bits <= (1 + ans.RELATIVE_OVERHEAD) * estimate + ans.STREAM_OVERHEAD_BITS


def test_rate_on_a_source_with_known_entropy():
    """On i.i.d. Gaussian channels with known law:

    - no stream beats its ideal code length ``−log2 p(s)`` under the TRUE pmf by more
      than 20 bits: streams are self-delimiting (prefix-free), so by Kraft's inequality
      ``P(L < −log2 p(S) − c) ≤ 2^-c`` (competitive optimality, Cover & Thomas §5.11);
      over 60 streams this check fails by chance with probability ≤ 60·2^-20;
    - the mean rate exceeds the exact entropy ``H(S)`` (T5's exact quantized entropy)
      by at most the model-fit KL (T1), the flush and the container: ≤ 1 % + header + 96.
    """
    rng = np.random.default_rng(0)
    channels, tokens = 16, 200
    sigma = np.exp(rng.uniform(-1, 3, channels))
    draw = lambda n: torch.from_numpy(rng.normal(0, sigma, (n, tokens, channels)))  # noqa: E731
    stats = ChannelStatistics.fit(draw(40).float())
    step = 0.7 * sigma
    codec = FactorizedCodec(stats, step, step)
    streams = draw(60).float()
    entropy = tokens * sum(quantized_entropy("gaussian", s, d) for s, d in zip(sigma, step))
    lengths = []
    for x in streams:
        bits = 8.0 * len(codec.encode(x))
        symbols = codec.quantize(x)
        ideal = 0.0
        for j in range(channels):  # S = round((Y − μ̂)/Δ) with Y − μ̂ ~ N(−μ̂, σ²)
            first = symbols[:1, j]
            rest = symbols[1:, j]
            for column, mean in ((first, stats.first_mean[j]), (rest, stats.mean[j])):
                _, log_pmf = quantized_log_pmf("gaussian", sigma[j], step[j], -mean, column)
                ideal -= float(log_pmf.sum()) / np.log(2)
        assert bits >= ideal - 20
        lengths.append(bits)
    assert np.mean(lengths) <= 1.01 * entropy + 96 + 8 * header_size(codec.codec_id, 2)


@pytest.mark.parametrize("family, transform", VARIANTS)
def test_corrupted_and_truncated_streams_are_errors(family, transform):
    codec = make_codec(family, transform)
    assert_damage_is_detected(codec, codec.encode(lm_like(1, 6, 24, seed=3)[0]))


def test_a_codec_with_other_tables_refuses_the_stream():
    codec = make_codec(scale=0.5)
    other = make_codec(scale=0.6)
    data = codec.encode(lm_like(1, 5, 24)[0])
    with pytest.raises(BitstreamError, match="parameters or tables differ"):
        other.decode(data)
    with pytest.raises(BitstreamError, match="written by codec"):
        make_codec("laplace").decode(data)


def test_bad_input_names_the_argument():
    codec = make_codec()
    with pytest.raises(ValueError, match="hidden: expected 24 channels"):
        codec.encode(torch.zeros(3, 23))
    with pytest.raises(ValueError, match="hidden: contains NaN"):
        codec.encode(torch.full((2, 24), float("inf")))
    with pytest.raises(ValueError, match="step"):
        FactorizedCodec(codec.stats, np.zeros(24), np.ones(24))
    with pytest.raises(ValueError, match="first_step"):
        FactorizedCodec(codec.stats, np.ones(24), np.ones(3))
    with pytest.raises(ValueError, match="family"):
        FactorizedCodec(codec.stats, np.ones(24), np.ones(24), "cauchy")
    with pytest.raises(ValueError, match="windows"):
        ChannelStatistics.fit(torch.zeros(4, 24))


@pytest.mark.parametrize("family, transform", VARIANTS)
def test_save_and_load(tmp_path, family, transform):
    codec = make_codec(family, transform)
    codec.save(tmp_path / "codec")
    loaded = FactorizedCodec.load(tmp_path / "codec")
    x = lm_like(1, 9, 24, seed=5)[0]
    assert loaded.digest == codec.digest
    assert torch.equal(loaded.decode(codec.encode(x)), codec.reconstruct(x))


def test_load_rejects_tampered_or_foreign_files(tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = make_codec().save(tmp_path / "codec")
    arrays = load_file(str(folder / "tensors.safetensors"))
    arrays["step"] = arrays["step"] * 1.01
    save_file(arrays, str(folder / "tensors.safetensors"))
    with pytest.raises(ValueError, match="do not match the hash"):
        FactorizedCodec.load(folder)
    with pytest.raises(FileNotFoundError, match="config.json"):
        FactorizedCodec.load(tmp_path / "missing")
    (folder / "config.json").write_text('{"rdgap_codec": "other", "format_version": 1}')
    with pytest.raises(ValueError, match="expected 'factorized'"):
        FactorizedCodec.load(folder)


def test_first_position_has_its_own_model():
    """The massive first-token activation is coded cheaply and reconstructed closely."""
    codec = make_codec()
    x = lm_like(1, 64, 24, seed=11)[0]
    recon = codec.reconstruct(x)
    assert abs(float(recon[0, 0] - x[0, 0])) <= codec.first_step[0] / 2 + 1e-3
    # Around its own mean the massive value is a small symbol; under the statistics of
    # the other positions it would sit ~2.5e4 / Δ_0 steps out, far past every table.
    symbols = codec.quantize(x)
    assert abs(int(symbols[0, 0])) <= 8
    assert (x[0, 0] - codec.stats.mean[0]) / codec.step[0] > 10 * codec._tables[0].width


@pytest.mark.parametrize("family, transform", VARIANTS)
def test_zstd_of_the_symbols_decodes_the_same_reconstruction(family, transform):
    """The generic-compressor baseline quantizes exactly like the codec it wraps, and on
    data from the fitted law it cannot beat the matched entropy model by much (zstd
    has no model of the per-channel laws: Kraft/T1 for the ANS codec is within 1 %)."""
    from rdgap.codecs.symbol_zstd import ZstdSymbols

    codec = make_codec(family, transform)
    baseline = ZstdSymbols(codec)
    total_ans = total_zstd = 0
    for x in lm_like(4, 128, 24, seed=13):
        data = baseline.encode(x)
        assert torch.equal(baseline.decode(data), codec.reconstruct(x))
        total_zstd += len(data)
        total_ans += len(codec.encode(x))
    assert total_zstd > 0.9 * total_ans
    broken = bytearray(baseline.encode(lm_like(1, 8, 24)[0]))
    broken[-8] ^= 1
    with pytest.raises(BitstreamError):
        baseline.decode(bytes(broken))
    with pytest.raises(ValueError, match="quantizer"):
        ZstdSymbols(object())
