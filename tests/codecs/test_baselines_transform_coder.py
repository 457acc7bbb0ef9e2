"""The KVTC-style transform coder: exact DP bit allocation (against brute force), the
quantizer's error theorem, the knob, the property kit, and bad streams refused."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rdgap.codecs.baselines.transform_coder import (MAX_BITS, TransformCoder, allocate_bits,
                                                    fit_transform_coder)
from rdgap.codecs.coders.container import BitstreamError, header_size, pack
from rdgap.testing import PropertyNotChecked, check_codec, strategies

CHANNELS = 12


def windows(count: int = 6, tokens: int = 40, seed: int = 0) -> torch.Tensor:
    """Correlated Student-t states with a massive token 0."""
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((CHANNELS, CHANNELS)) * 10.0 ** rng.uniform(-1, 1, CHANNELS)
    x = rng.standard_t(5.0, (count, tokens, CHANNELS)) @ mixing
    x[:, 0, 1] += 2.0e3
    return torch.from_numpy(x.astype(np.float32))


FIT = fit_transform_coder(windows())


def brute_force(table: np.ndarray, budget: int) -> float:
    best = np.inf
    for bits in itertools.product(range(table.shape[1]), repeat=table.shape[0]):
        if sum(bits) <= budget:
            best = min(best, sum(table[i, b] for i, b in enumerate(bits)))
    return best


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), components=st.integers(1, 4), widths=st.integers(1, 4),
       budget=st.integers(0, 12))
def test_dp_allocation_equals_brute_force(seed, components, widths, budget):
    rng = np.random.default_rng(seed)
    # arbitrary tables, not only convex decreasing ones: the DP must not rely on shape
    table = rng.uniform(0.0, 10.0, (components, widths))
    bits = allocate_bits(table, budget)
    assert bits.sum() <= budget and np.all((0 <= bits) & (bits < widths))
    assert table[np.arange(components), bits].sum() == pytest.approx(brute_force(table, budget))


def test_dp_spends_where_the_variance_is():
    table = np.array([[100.0 * 4.0 ** -b for b in range(9)], [1.0 * 4.0 ** -b for b in range(9)]])
    assert allocate_bits(table, 4).tolist() == [4, 0] or allocate_bits(table, 4)[0] >= 3
    assert allocate_bits(table, 0).tolist() == [0, 0]


def test_bad_allocation_arguments_are_named():
    with pytest.raises(ValueError, match="budget"):
        allocate_bits(np.ones((2, 3)), -1)
    with pytest.raises(ValueError, match="table"):
        allocate_bits(np.full((2, 3), np.nan), 3)
    with pytest.raises(ValueError, match="bits_per_token"):
        FIT.at_budget(MAX_BITS * CHANNELS + 1)
    with pytest.raises(ValueError, match="hidden"):
        fit_transform_coder(torch.zeros(4, 8))


def test_coefficients_within_range_are_within_half_a_cell():
    codec = FIT.at_budget(40)
    x = windows(1, 60, seed=3)[0]
    out = codec.decode(codec.encode(x)).numpy().astype(np.float64)
    assert np.array_equal(out[0], x[0].numpy().astype(np.float16).astype(np.float64))  # sink
    coefficient = (x[1:].double().numpy() - FIT.mean) @ FIT.basis
    error = (out[1:] - FIT.mean) @ FIT.basis - coefficient
    width = 2.0 * FIT.ranges / 2.0 ** codec.bits
    inside = np.abs(coefficient) <= FIT.ranges
    kept = codec.bits > 0
    assert np.all(np.abs(error)[:, kept][inside[:, kept]]
                  <= (width / 2)[None, kept].repeat(len(error), 0)[inside[:, kept]] * (1 + 1e-4)
                  + 1e-3)
    # a dropped component decodes to the mean (coefficient 0)
    assert np.allclose(((out[1:] - FIT.mean) @ FIT.basis)[:, ~kept], 0.0, atol=1e-2)


def test_more_budget_less_error_and_the_rate_follows():
    x = windows()[2]  # a fit window: no coefficient beyond the fitted ranges (no clipping)
    errors, sizes = [], []
    for budget in (0, 12, 36, 72):
        codec = FIT.at_budget(budget)
        data = codec.encode(x)
        errors.append(float(((codec.decode(data) - x)[1:] ** 2).mean()))
        sizes.append(len(data))
        assert codec.bits.sum() <= budget
    assert errors == sorted(errors, reverse=True) and sizes == sorted(sizes)
    assert errors[-1] < 0.05 * errors[0]


def test_passes_the_property_kit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PropertyNotChecked)
        report = check_codec(FIT.at_budget(36), max_examples=8, streams=12,
                             inputs=strategies.hidden_states(channels=CHANNELS),
                             sibling=fit_transform_coder(windows(seed=1)).at_budget(36))
    assert {"round-trip", "determinism", "robustness", "crafted-headers",
            "sibling-streams"} <= set(report.checked)


def test_truncated_flipped_and_forged_streams_raise():
    codec = FIT.at_budget(36)
    x = windows(1, 30, seed=5)[0]
    data = codec.encode(x)
    with pytest.raises(BitstreamError):
        codec.decode(data[:-5])
    flipped = bytearray(data)
    flipped[-10] ^= 0x01
    with pytest.raises(BitstreamError):
        codec.decode(bytes(flipped))
    payload = data[header_size(codec.codec_id, 2) - 4:-4]
    with pytest.raises(BitstreamError, match="channels"):
        codec.decode(pack(codec.codec_id, codec.digest, (30, CHANNELS + 1), payload))
    with pytest.raises(BitstreamError):  # a valid frame for fewer tokens than declared
        codec.decode(pack(codec.codec_id, codec.digest, (31, CHANNELS), payload))
    with pytest.raises(BitstreamError, match="sink"):
        codec.decode(pack(codec.codec_id, codec.digest, (30, CHANNELS), payload[:5]))
    # another allocation is another codec: its streams are refused
    with pytest.raises(BitstreamError):
        FIT.at_budget(35).decode(data)


def test_single_token_windows_hold_only_the_sink():
    codec = FIT.at_budget(20)
    x = windows(1, 1, seed=6)[0]
    assert isinstance(codec, TransformCoder)
    assert torch.equal(codec.decode(codec.encode(x)), x.half().float())
