"""SZ3 and ZFP in the rdgap frame: the absolute error bound (a theorem of each format),
the property kit, and truncated, flipped, forged or over-expanding streams refused."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rdgap.codecs.baselines.float_compressors import SZ3Codec, ZFPCodec
from rdgap.codecs.coders.container import BitstreamError, header_size, pack
from rdgap.testing import PropertyNotChecked, check_codec

KINDS = [SZ3Codec, ZFPCodec]


def hidden_like(tokens: int, channels: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    x = rng.standard_t(3.0, (tokens, channels)) * np.exp(rng.standard_normal(channels))
    x[0, 0] = 2.5e3
    return torch.from_numpy(x).float()


@settings(max_examples=30, deadline=None)
@given(tokens=st.integers(1, 40), channels=st.integers(1, 70), seed=st.integers(0, 999),
       exponent=st.floats(-3.0, 1.0), kind=st.sampled_from(KINDS))
def test_every_element_is_within_the_error_bound(tokens, channels, seed, exponent, kind):
    """Tolerances ≥ 10^-3 on values up to 2.5·10^3 (ZFP's block floating point cannot
    meet bounds near float32's resolution of a block's largest value: 10^-6 fails)."""
    tolerance = 10.0 ** exponent
    codec = kind(tolerance)
    x = hidden_like(tokens, channels, seed)
    out = codec.decode(codec.encode(x))
    assert out.shape == x.shape and out.dtype == torch.float32
    # the bound of the format, up to float32's own resolution of the values
    slack = np.spacing(np.abs(x.numpy()))  # per element
    assert np.all(np.abs((out - x).numpy()) <= tolerance + slack)
    assert torch.equal(out, codec.reconstruct(x))


def test_zfp_snaps_its_tolerance_to_a_power_of_two():
    x = hidden_like(64, 64, 1)
    sizes = [len(ZFPCodec(t).encode(x)) for t in (0.26, 0.3, 0.49)]  # all 2^-2
    assert len(set(sizes)) == 1
    assert len(ZFPCodec(0.5).encode(x)) < sizes[0]


@pytest.mark.parametrize("kind", KINDS, ids=["sz3", "zfp"])
def test_a_looser_bound_costs_fewer_bytes(kind):
    x = hidden_like(128, 64, 2)
    assert len(kind(0.5).encode(x)) < len(kind(0.05).encode(x)) < len(kind(0.005).encode(x))


@pytest.mark.parametrize("kind", KINDS, ids=["sz3", "zfp"])
def test_passes_the_property_kit(kind):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PropertyNotChecked)
        report = check_codec(kind(0.05), max_examples=8, streams=12, sibling=kind(0.1))
    assert {"round-trip", "determinism", "robustness", "crafted-headers",
            "sibling-streams"} <= set(report.checked)


@pytest.mark.parametrize("kind", KINDS, ids=["sz3", "zfp"])
def test_truncated_flipped_and_forged_streams_raise(kind):
    codec = kind(0.05)
    x = hidden_like(16, 24, 3)
    data = codec.encode(x)
    with pytest.raises(BitstreamError):
        codec.decode(data[:-1])
    for position in (len(data) // 3, len(data) - 6):
        flipped = bytearray(data)
        flipped[position] ^= 0x04
        with pytest.raises(BitstreamError):
            codec.decode(bytes(flipped))
    payload = data[header_size(codec.codec_id, 2) - 4:-4]
    # the container says another shape than the compressor's own header: refused
    for shape in ((8, 24), (16, 25), (32, 24)):
        with pytest.raises(BitstreamError):
            codec.decode(pack(codec.codec_id, codec.digest, shape, payload))
    # a shape far beyond what the payload may expand to: refused before decompressing
    with pytest.raises(BitstreamError, match="expands at most"):
        codec.decode(pack(codec.codec_id, codec.digest, (1 << 20, 24), payload))
    # a payload of garbage behind a valid CRC
    garbage = np.random.default_rng(0).integers(0, 256, len(payload), dtype=np.uint8)
    with pytest.raises(BitstreamError):
        codec.decode(pack(codec.codec_id, codec.digest, (16, 24), garbage.tobytes()))


@pytest.mark.parametrize("kind", KINDS, ids=["sz3", "zfp"])
def test_states_that_would_expand_too_far_are_refused_at_encode(kind):
    with pytest.raises(ValueError, match="compresses these states"):
        kind(0.5).encode(torch.zeros(2048, 256))
    assert kind(0.5).decode(kind(0.5).encode(torch.zeros(64, 64))).abs().max() <= 0.5


@pytest.mark.parametrize("tolerance", [0.0, -1.0, math.inf, math.nan])
def test_bad_tolerance_is_named(tolerance):
    for kind in KINDS:
        with pytest.raises(ValueError, match="tolerance"):
            kind(tolerance)
