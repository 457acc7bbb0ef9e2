"""llama.cpp-style Q8_0 / Q4_0 and Hadamard int4: the format's error theorem, the rate,
the property kit, and bad streams refused."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.linalg import hadamard

from rdgap.codecs.baselines.blockwise import (BLOCK, ROTATION, BlockwiseInteger, HadamardInt4,
                                              blockwise_codecs, q4_0_quantize, q8_0_quantize)
from rdgap.codecs.coders.container import BitstreamError, header_size, pack
from rdgap.testing import PropertyNotChecked, check_codec

CODECS = blockwise_codecs()
IDS = [c.codec_id for c in CODECS]


def hidden_like(tokens: int, channels: int, seed: int = 0) -> torch.Tensor:
    """Heavy-tailed states with a massive first-token channel, like a real LM."""
    rng = np.random.default_rng(seed)
    x = rng.standard_t(3.0, (tokens, channels)) * np.exp(rng.standard_normal(channels))
    x[0, 0] = 2.5e4
    return torch.from_numpy(x).float()


def block_scales(x: np.ndarray, kind: str) -> np.ndarray:
    """Each element's block scale, recomputed from the format's definition (ggml)."""
    tokens, channels = x.shape
    out = np.empty_like(x)
    for start in range(0, channels, BLOCK):
        block = x[:, start:start + BLOCK]
        if kind == "q8_0":
            scale = np.abs(block).max(1) / 127.0
        else:
            scale = np.abs(block).max(1) / 8.0
        out[:, start:start + BLOCK] = scale[:, None]
    return out


@pytest.mark.parametrize("channels", [64, 45, 7])
def test_q8_0_error_is_within_half_the_block_scale(channels):
    x = hidden_like(19, channels, seed=channels).numpy()
    out = BlockwiseInteger("q8_0").decode(BlockwiseInteger("q8_0").encode(torch.from_numpy(x)))
    # the stored scale is the float16 at or above max|x|/127: at most 2^-10 relative above
    bound = 0.5 * block_scales(x, "q8_0") * (1 + 2.0 ** -10) + 1e-6 * np.abs(x)
    assert np.all(np.abs(out.numpy() - x) <= bound)


@pytest.mark.parametrize("channels", [64, 45, 7])
def test_q4_0_error_is_within_the_block_scale(channels):
    x = hidden_like(19, channels, seed=channels).numpy()
    codec = BlockwiseInteger("q4_0")
    out = codec.decode(codec.encode(torch.from_numpy(x))).numpy()
    d = block_scales(x, "q4_0")
    error = np.abs(out - x)
    assert np.all(error <= d * (1 + 2.0 ** -7) + 1e-6 * np.abs(x))
    # elements not clipped at symbol 15 are within half a step (one float16 ulp of slack)
    scale, symbols = q4_0_quantize(x)
    inner = (symbols < 15).reshape(len(x), -1)[:, :channels]
    assert np.all(error[inner] <= (0.5 * d * (1 + 2.0 ** -10) + 1e-6 * np.abs(x))[inner])


def test_hadamard_error_norm_per_rotation_run_is_bounded():
    x = hidden_like(23, 2 * ROTATION + 5).numpy()
    codec = HadamardInt4()
    out = codec.decode(codec.encode(torch.from_numpy(x))).numpy()
    padded = np.zeros((len(x), 3 * ROTATION), np.float32)
    padded[:, :x.shape[1]] = x
    rotated = (padded.reshape(len(x), 3, ROTATION) @ (hadamard(ROTATION) / 8.0)).reshape(len(x), -1)
    step = block_scales(rotated, "q4_0") * (1 + 2.0 ** -7)
    run_bound = np.sqrt((step ** 2).reshape(len(x), 3, ROTATION).sum(-1))
    error = np.zeros_like(padded)
    error[:, :x.shape[1]] = out - x
    run_error = np.linalg.norm(error.reshape(len(x), 3, ROTATION), axis=-1)
    assert np.all(run_error <= run_bound * (1 + 1e-5) + 1e-3)
    # the rotation spreads the massive channel: int4 of the rotated run loses less
    plain = BlockwiseInteger("q4_0")
    plain_out = plain.decode(plain.encode(torch.from_numpy(x))).numpy()
    assert np.mean((out - x)[1:] ** 2) < np.mean((plain_out - x)[1:] ** 2)


def test_rates_are_the_formats():
    tokens, channels = 10, 576
    x = hidden_like(tokens, channels)
    sizes = {c.codec_id: len(c.encode(x)) - header_size(c.codec_id, 2) for c in CODECS}
    assert sizes["q8_0"] == tokens * 18 * (2 + 32)            # 8.5 bits per element
    assert sizes["q4_0"] == tokens * 18 * (2 + 16)            # 4.5 bits per element
    assert sizes["hadamard-int4"] == tokens * 18 * (2 + 16)   # 576 = 9 runs of 64


def test_matches_ggml_reference_formulas():
    """Q4_0 symbols are ggml's ``min(15, (int8)(x·id + 8.5))`` with ``d = max / −8``."""
    x = hidden_like(3, 32).numpy()
    scale, symbols = q4_0_quantize(x)
    for t in range(3):
        block = x[t]
        peak = block[np.abs(block).argmax()]
        d = np.float32(np.float16(peak / -8.0))
        assert scale[t, 0] == np.float16(d)
        expected = np.minimum(15, np.trunc(block / d + 8.5)).astype(np.uint8)
        assert np.array_equal(symbols[t, 0], expected)
    scale8, symbols8 = q8_0_quantize(x)
    assert np.all(np.abs(symbols8) <= 127) and np.all(scale8.astype(np.float32) * 127
                                                       >= np.abs(x).max(1)[:, None])


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_passes_the_property_kit(codec):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PropertyNotChecked)
        report = check_codec(codec, max_examples=8, streams=12)
    assert {"round-trip", "determinism", "robustness", "crafted-headers"} <= set(report.checked)


@pytest.mark.parametrize("codec", CODECS, ids=IDS)
def test_truncated_flipped_and_forged_streams_raise(codec):
    x = hidden_like(8, 40)
    data = codec.encode(x)
    with pytest.raises(BitstreamError):
        codec.decode(data[:-3])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    with pytest.raises(BitstreamError):
        codec.decode(bytes(flipped))
    # a valid container whose payload is one byte short of the shape's
    payload = data[header_size(codec.codec_id, 2) - 4:-4]  # header_size counts the CRC
    with pytest.raises(BitstreamError, match="payload"):
        codec.decode(pack(codec.codec_id, codec.digest, (8, 40), payload[:-1]))
    # a non-finite float16 scale (the encoder never writes one)
    forged = bytearray(payload)
    forged[0:2] = np.float16(np.inf).tobytes()
    with pytest.raises(BitstreamError, match="finite"):
        codec.decode(pack(codec.codec_id, codec.digest, (8, 40), bytes(forged)))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="kind"):
        BlockwiseInteger("q5_1")
    with pytest.raises(ValueError, match="float16 range"):
        BlockwiseInteger("q8_0").encode(torch.full((2, 4), 1e7))
