"""The learned deep factorized density of the side latents: it must fit a density a
single Laplace cannot, and its integer tables must code exactly and deterministically."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdgap.codecs.coders import ans
from rdgap.codecs.entropy_models.deep_density import PRECISION, DeepFactorizedDensity, fit_deep_density
from rdgap.codecs.entropy_models.tables import discretised_table

LIMIT = 12


def mixture(n: int, seed: int) -> np.ndarray:
    """Two columns: a bimodal mixture of discretised Laplace laws, and a narrow skewed law."""
    rng = np.random.default_rng(seed)
    left, right = np.rint(rng.laplace(-5, 1.0, n)), np.rint(rng.laplace(4, 1.5, n))
    bimodal = np.where(rng.random(n) < 0.4, left, right)
    skewed = np.rint(rng.exponential(2.0, n) - 1)
    return np.clip(np.stack([bimodal, skewed], 1), -LIMIT, LIMIT).astype(np.int64)


def bits(table: np.ndarray, symbols: np.ndarray) -> float:
    return float(-np.log2(table[symbols + LIMIT]).mean())


@pytest.fixture(scope="module")
def tables() -> np.ndarray:
    return fit_deep_density(mixture(4000, seed=0), LIMIT)


def test_beats_a_single_laplace_and_nears_the_entropy_on_held_out_data(tables):
    test = mixture(50_000, seed=1)
    for g in range(2):
        column = test[:, g]
        counts = np.bincount(column + LIMIT, minlength=2 * LIMIT + 1) / column.size
        entropy = float(-(counts[counts > 0] * np.log2(counts[counts > 0])).sum())
        laplace = min(bits(discretised_table("laplace", m, s, LIMIT, 0.5), column)
                      for m in np.arange(-6, 6.01, 0.25) for s in np.exp(np.linspace(-1, 2.5, 36)))
        learned = bits(tables[g], column)
        assert learned < entropy + 0.03, (g, learned, entropy)  # measured: +0.01
        if g == 0:  # bimodal: the best single Laplace is ~0.8 bit worse (measured)
            assert learned < laplace - 0.5, (learned, laplace)


def test_integer_tables_are_exact_and_code_exactly(tables):
    counts = tables * 2 ** PRECISION
    assert np.array_equal(counts, np.rint(counts)) and counts.min() >= 1
    assert np.all(counts.sum(1) == 2 ** PRECISION)
    assert np.array_equal(fit_deep_density(mixture(4000, seed=0), LIMIT), tables)  # deterministic
    symbols = mixture(3000, seed=2)
    channel_tables = [ans.ChannelTable(row, LIMIT) for row in tables]
    columns = [np.ascontiguousarray(symbols[:, g]) for g in range(2)]
    data = ans.encode(columns, channel_tables)
    decoder = ans.Decoder(data)
    decoded = decoder.columns([symbols.shape[0]] * 2, channel_tables)
    decoder.finish()
    assert all(np.array_equal(a, b) for a, b in zip(decoded, columns))
    assert 8 * len(data) <= 1.01 * ans.estimate_bits(columns, channel_tables) + 64


def test_the_cumulative_is_monotone_and_spans_zero_to_one():
    density = DeepFactorizedDensity(3)
    with torch.no_grad():
        for parameter in density.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=torch.Generator()
                                        .manual_seed(parameter.numel()), dtype=torch.float64))
        x = torch.linspace(-200, 200, 4001, dtype=torch.float64).expand(3, 1, -1)
        c = torch.sigmoid(density.logits(x))[:, 0]
    assert torch.all(torch.diff(c, dim=1) >= 0)
    assert torch.all(c[:, 0] < 1e-3) and torch.all(c[:, -1] > 1 - 1e-3)


def test_clear_errors():
    with pytest.raises(ValueError, match="samples"):
        fit_deep_density(np.zeros((5, 1)), LIMIT)
    with pytest.raises(ValueError, match="limit"):
        fit_deep_density(np.full((5, 1), 20), LIMIT)
    with pytest.raises(ValueError, match="channels"):
        DeepFactorizedDensity(0)
