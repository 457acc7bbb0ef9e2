"""Baseline codecs: real bytes, exact round trips, and clear errors on bad streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rdgap.codecs.baselines import (AbsmaxInteger, BFloat16Cast, Float16Cast, ZstdFloat16,
                                    baseline_codecs)
from rdgap.codecs.coders.container import BitstreamError, header_size

CODECS = baseline_codecs()
IDS = [c.codec_id for c in CODECS]


def hidden_like(tokens: int, channels: int, seed: int = 0) -> torch.Tensor:
    """Heavy-tailed states with a massive first-token channel, like a real LM."""
    rng = np.random.default_rng(seed)  # seeded here: no dependence on other tests
    x = rng.standard_t(3.0, (tokens, channels)) * np.exp(rng.standard_normal(channels))
    x[0, 0] = 2.5e4
    return torch.from_numpy(x).float()


def expected_reconstruction(codec, x: torch.Tensor) -> torch.Tensor:
    """What each codec promises to return, computed independently of its payload code."""
    if isinstance(codec, (Float16Cast, ZstdFloat16)):
        return x.half().float()
    if isinstance(codec, BFloat16Cast):
        return x.bfloat16().float()
    levels = 2 ** (codec.bits - 1) - 1
    scale = x.abs().amax(1, keepdim=True) / levels
    return (torch.round(x / scale) * scale).float()


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_round_trip_is_what_the_codec_promises(codec):
    x = hidden_like(37, 45)
    data = codec.encode(x)
    torch.testing.assert_close(codec.decode(data), expected_reconstruction(codec, x),
                               rtol=1e-6, atol=1e-6 * float(x.abs().max()))
    assert codec.encode(x) == data  # deterministic


@settings(max_examples=25, deadline=None)
@given(tokens=st.integers(1, 9), channels=st.integers(1, 11), seed=st.integers(0, 99),
       index=st.integers(0, len(CODECS) - 1))
def test_round_trip_on_edge_shapes(tokens, channels, seed, index):
    codec = CODECS[index]
    x = hidden_like(tokens, channels, seed)
    out = codec.decode(codec.encode(x))
    assert out.shape == x.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, expected_reconstruction(codec, x),
                               rtol=1e-6, atol=1e-6 * float(x.abs().max()))


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_rate_counts_every_byte(codec):
    tokens, channels = 64, 48
    data = codec.encode(hidden_like(tokens, channels))
    payload = len(data) - header_size(codec.codec_id, 2)
    expected = {"fp16": 2 * tokens * channels, "bf16": 2 * tokens * channels,
                "int8-absmax": 4 * tokens + tokens * channels,
                "int4-absmax": 4 * tokens + tokens * channels // 2}
    if codec.codec_id in expected:
        assert payload == expected[codec.codec_id]
    else:  # zstd must beat the raw fp16 payload on compressible data
        assert payload < 2 * tokens * channels


def test_zero_token_row_in_absmax():
    x = torch.zeros(3, 8)
    x[1] = torch.arange(8.0)
    for bits in (8, 4):
        codec = AbsmaxInteger(bits)
        out = codec.decode(codec.encode(x))
        assert torch.equal(out[0], torch.zeros(8)) and torch.equal(out[2], torch.zeros(8))


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_every_truncation_is_detected(codec):
    data = codec.encode(hidden_like(5, 7))
    for cut in range(len(data)):
        with pytest.raises(BitstreamError):
            codec.decode(data[:cut])
    with pytest.raises(BitstreamError, match="truncated or padded"):
        codec.decode(data + b"\0")


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_every_bit_flip_is_detected(codec):
    data = bytearray(codec.encode(hidden_like(3, 5)))
    for position in range(len(data)):
        for bit in (0, 5):
            broken = bytearray(data)
            broken[position] ^= 1 << bit
            with pytest.raises(BitstreamError):
                codec.decode(bytes(broken))


def test_foreign_bytes_and_wrong_codec():
    x = hidden_like(4, 6)
    with pytest.raises(BitstreamError, match="not an rdgap stream"):
        Float16Cast().decode(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(BitstreamError, match="written by codec 'int8-absmax'"):
        AbsmaxInteger(4).decode(AbsmaxInteger(8).encode(x))
    with pytest.raises(BitstreamError, match="expected bytes"):
        Float16Cast().decode("not bytes")


def test_bad_hidden_states_name_the_argument():
    codec = Float16Cast()
    with pytest.raises(ValueError, match="hidden: contains NaN or Inf"):
        codec.encode(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match=r"hidden: expected shape \(tokens, channels\)"):
        codec.encode(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="floating-point"):
        codec.encode(torch.zeros(2, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="float16 range"):
        codec.encode(torch.full((2, 2), 1e6))
    assert BFloat16Cast().decode(BFloat16Cast().encode(torch.full((2, 2), 1e6))).max() > 9e5
    with pytest.raises(ValueError, match="bits"):
        AbsmaxInteger(3)


def test_numpy_input_is_accepted():
    x = hidden_like(4, 6)
    codec = Float16Cast()
    assert codec.encode(x.numpy()) == codec.encode(x)
    assert isinstance(np.asarray(codec.decode(codec.encode(x))), np.ndarray)
