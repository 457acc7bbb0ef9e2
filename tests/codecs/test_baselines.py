"""Baseline codecs: real bytes, exact round trips, and clear errors on bad streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from rdgap.codecs.baselines import (AbsmaxInteger, BFloat16Cast, Float16Cast, ZstdFloat16,
                                    baseline_codecs, zstd_limit)
from rdgap.codecs.coders.container import BitstreamError, header_size, pack

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


# -- bounded decoding (issue 17): crafted streams with valid checksums ----------------------

def _crafted(codec, shape, payload: bytes) -> bytes:
    """A stream of ``codec`` with any header shape and payload, checksum recomputed."""
    return pack(codec.codec_id, codec.digest, shape, payload)


def test_a_zstd_bomb_is_refused_before_decompressing():
    """16 KB of zstd declaring an (11.2M, 24) fp16 tensor decoded to 1.9–3.0 GB before."""
    codec = ZstdFloat16()
    tokens = 200_000  # 9.6 MB of zeros in ~300 bytes of zstd: ratio ≈ 30,000
    payload = zstandard.ZstdCompressor(level=19).compress(bytes(2 * tokens * 24))
    assert 2 * tokens * 24 > zstd_limit(len(payload))
    with pytest.raises(BitstreamError, match="expands at most 64×"):
        codec.decode(_crafted(codec, (tokens, 24), payload))


def test_a_zstd_frame_declaring_another_size_than_the_shape_is_refused():
    """python-zstandard allocates the frame's declared content size, whatever
    max_output_size says: the frame's size is checked against the shape first."""
    codec = ZstdFloat16()
    payload = zstandard.ZstdCompressor(level=3).compress(bytes(1 << 22))
    with pytest.raises(BitstreamError, match=f"frame declares {1 << 22} bytes"):
        codec.decode(_crafted(codec, (8, 24), payload))


def test_zstd_encoders_refuse_states_their_decoders_would_refuse():
    constant = torch.zeros(40_000, 24)  # 1.9 MB of fp16 zeros, > 10,000:1
    with pytest.raises(ValueError, match="hidden: zstd compresses these states"):
        ZstdFloat16().encode(constant)
    small = torch.zeros(1_000, 24)  # below ZSTD_FREE_BYTES: any ratio is accepted
    assert torch.equal(ZstdFloat16().decode(ZstdFloat16().encode(small)), small)


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
@pytest.mark.parametrize("shape", [(0, 24), (5, 0)])
def test_zero_tokens_or_channels_is_a_bitstream_error(codec, shape):
    with pytest.raises(BitstreamError, match="at least one token and one channel"):
        codec.decode(_crafted(codec, shape, b""))


@pytest.mark.parametrize("codec, bits, what", [
    (Float16Cast(), 0x7C00, "float16"), (Float16Cast(), 0x7E00, "float16"),
    (BFloat16Cast(), 0x7F80, "bfloat16"), (BFloat16Cast(), 0xFFC0, "bfloat16"),
], ids=["fp16-inf", "fp16-nan", "bf16-inf", "bf16-nan"])
def test_nan_or_inf_in_a_cast_payload_is_refused(codec, bits, what):
    values = np.zeros((3, 4), dtype="<u2")
    values[1, 2] = bits
    with pytest.raises(BitstreamError, match=f"{what} value at token 1, channel 2 is NaN or Inf"):
        codec.decode(_crafted(codec, (3, 4), values.tobytes()))


@pytest.mark.parametrize("bits", [8, 4])
def test_a_finite_scale_times_symbol_that_overflows_is_refused(bits):
    codec = AbsmaxInteger(bits)
    scales = np.array([1.0, np.finfo(np.float32).max], dtype="<f4")
    symbols = np.full((2, 4), 7, dtype=np.int8)
    raw = symbols.tobytes() if bits == 8 else np.full((2, 2), 15 | 15 << 4, np.uint8).tobytes()
    with pytest.raises(BitstreamError, match="scale × symbol value at token 1"):
        codec.decode(_crafted(codec, (2, 4), scales.tobytes() + raw))


def test_bf16_refuses_finite_values_that_round_to_inf():
    x = torch.ones(2, 3)
    x[1, 1] = float(np.finfo(np.float32).max)
    with pytest.raises(ValueError, match="hidden: .* rounds to Inf in bfloat16"):
        BFloat16Cast().encode(x)


@pytest.mark.parametrize("make, kind", [
    (lambda: torch.empty(4, 3, device="meta"), "a meta tensor"),
    (lambda: torch.eye(4).to_sparse(), "layout torch.sparse_coo"),
    (lambda: torch.eye(4).to_sparse_csr(), "layout torch.sparse_csr"),
])
@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_meta_and_sparse_inputs_name_the_argument(codec, make, kind):
    with pytest.raises(ValueError, match=f"hidden: expected a dense tensor with data, got {kind}"):
        codec.encode(make())
