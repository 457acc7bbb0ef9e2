"""The public strategies produce what they promise: edge shapes, outlier channels, a massive
first token, valid symbols, and sources whose stated entropy is their entropy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import find, given, settings
from hypothesis import strategies as st

from rdgap.testing import strategies
from rdgap.validation.synthetic import DiscreteSource, MarkovSource

FIND = settings(database=None, max_examples=300, deadline=None)


@pytest.mark.parametrize("condition", [
    lambda x: x.shape[0] == 1,
    lambda x: x.shape[1] == 1,
    lambda x: x.shape[0] == 512,
    lambda x: float(x.abs().max()) == strategies.MASSIVE_ACTIVATION,
], ids=["one token", "one channel", "long sequence", "massive first token"])
def test_hidden_states_reach_the_edge_cases(condition):
    found = find(strategies.hidden_states(), condition, settings=FIND)
    assert condition(found)


def test_outlier_channels_are_about_a_thousand_times_the_typical_scale():
    def ratio(x):
        scale = x.abs().median(dim=0).values
        return float(scale.max() / scale.median())

    found = find(strategies.hidden_states(channels=16, max_tokens=64),
                 lambda x: x.shape[0] >= 32 and ratio(x) > 100, settings=FIND)
    assert ratio(found) > 100


@settings(max_examples=40, deadline=None)
@given(x=strategies.hidden_states(channels=5))
def test_hidden_states_are_finite_float32_in_range(x):
    assert x.dtype == torch.float32 and x.shape[1] == 5
    assert torch.isfinite(x).all() and float(x.abs().max()) <= strategies.DEFAULT_MAX_ABS


@settings(max_examples=40, deadline=None)
@given(data=st.data(), symbol_range=strategies.symbol_ranges(-300, 300))
def test_symbol_tensors_stay_in_their_range(data, symbol_range):
    s = data.draw(strategies.symbol_tensors(symbol_range, channels=3))
    assert s.dtype == np.int64 and s.shape[1] == 3
    assert symbol_range[0] <= s.min() and s.max() <= symbol_range[1]


@settings(max_examples=6, deadline=None)
@given(source=strategies.known_entropy_sources(channels=4))
def test_known_entropy_is_the_mean_information(source):
    """Monte Carlo: mean −log2 p(x) over streams is the stated entropy, within 5 standard errors."""
    rng = np.random.default_rng(0)
    info = [source.information_bits(source.sample(rng)) for _ in range(60)]
    assert abs(np.mean(info) - source.entropy_bits) <= 5 * np.std(info) / np.sqrt(60) + 1e-9
    assert max(info) <= source.units * source.unit_bound_bits + 1e-9


def test_truncated_scalar_keeps_the_range_and_is_a_pmf():
    law = strategies.truncated_scalar("laplace", 5.0, -3, 40)
    assert law.support.min() >= -3 and law.support.max() <= 40
    assert law.probabilities.sum() == pytest.approx(1.0)
    assert law.entropy_bits == pytest.approx(-np.sum(law.probabilities * np.log2(law.probabilities)))


def test_column_source_adds_the_entropies_of_its_columns():
    coin, die = DiscreteSource([0.5, 0.5]), DiscreteSource(np.full(6, 1 / 6))
    source = strategies.column_source([coin, die], [die, die], tokens=4)
    assert source.entropy_bits == pytest.approx(1 + np.log2(6) * 7)
    s = source.sample(np.random.default_rng(1))
    assert s.shape == (4, 2) and source.information_bits(s) == pytest.approx(source.entropy_bits)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="source"):
        strategies.KnownEntropySource.iid(MarkovSource([[0.5, 0.5], [0.5, 0.5]], 3), 2, 2)
    with pytest.raises(ValueError, match="symbol_range"):
        strategies.symbol_tensors((5, 1))
    with pytest.raises(ValueError, match="max_abs"):
        strategies.hidden_states(max_abs=0.0)
    with pytest.raises(ValueError, match="first, rest"):
        strategies.column_source([], [], tokens=2)
    with pytest.raises(ValueError, match="tokens"):
        strategies.shapes(max_tokens=0)
