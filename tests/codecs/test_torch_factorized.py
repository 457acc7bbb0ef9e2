"""The factorized model on the torch rANS coder: exact, deterministic, within T2, and
refusing corrupted streams."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rdgap.codecs.coders import rans_torch
from rdgap.codecs.coders.container import BitstreamError, header_size
from rdgap.codecs.coders.torch_factorized import TorchFactorizedCodec

from codec_data import VARIANTS, assert_damage_is_detected, lm_like, make_codec


@settings(max_examples=25, deadline=None)
@given(tokens=st.integers(1, 40), seed=st.integers(0, 1000), variant=st.sampled_from(VARIANTS),
       outlier=st.floats(-1e7, 1e7, allow_nan=False), lanes=st.sampled_from([1, 4, 16]))
def test_round_trip_is_the_models_reconstruction(tokens, seed, variant, outlier, lanes):
    model = make_codec(*variant)
    codec = TorchFactorizedCodec(model, lanes=lanes)
    x = lm_like(1, tokens, 24, seed)[0]
    x[tokens // 2, 5] = outlier  # escaped when far outside the table
    data = codec.encode(x)
    assert torch.equal(codec.decode(data), model.reconstruct(x))
    assert TorchFactorizedCodec(model, lanes=lanes).encode(x) == data  # deterministic


@pytest.mark.parametrize("variant", VARIANTS)
def test_t2_for_the_torch_coder(variant):
    """rans_length_bounds(start="lower"): payload ≤ I + m·ε + 64·lanes with I the
    information under the integer tables; against the float-model estimate we allow the
    table quantization (≤ 0.5 % here, precision 2^20) and the 32-bit escape count."""
    model = make_codec(*variant)
    codec = TorchFactorizedCodec(model)
    for x in lm_like(6, 96, 24, seed=21):
        payload = 8 * (len(codec.encode(x)) - header_size(codec.codec_id, 2))
        assert payload <= 1.005 * codec.estimate_bits(x) + 64 * codec.lanes + 32
        assert payload >= codec.estimate_bits(x) - 64 * codec.lanes  # lanes start at 2^31


def test_corrupted_streams_are_errors():
    codec = TorchFactorizedCodec(make_codec())
    data = codec.encode(lm_like(1, 12, 24, seed=4)[0])
    assert_damage_is_detected(codec, data, cut_every=7, flips=40, seed=5)
    with pytest.raises(BitstreamError, match="parameters or tables differ"):
        TorchFactorizedCodec(make_codec(), lanes=4).decode(data)


def test_integer_tables_are_exact_and_shared():
    codec = TorchFactorizedCodec(make_codec("laplace", True))
    assert torch.all(codec.freq.sum(1) == 1 << 20) and torch.all(codec.freq >= 1)
    again = TorchFactorizedCodec(make_codec("laplace", True))
    assert torch.equal(codec.freq, again.freq) and codec.digest == again.digest
    with pytest.raises(ValueError, match="model"):
        TorchFactorizedCodec(object())
    with pytest.raises(ValueError, match="hidden: contains NaN"):
        codec.estimate_bits(torch.full((3, 24), float("nan")))
    assert rans_torch.DEFAULT_LANES == codec.lanes
