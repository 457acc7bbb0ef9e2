"""Fisher shrinkage toward its diagonal (issue 19): the estimate it returns, and the
shifted source on which the shrunk fit holds the level and the plain fit misses it.

The loss of the shift test is the quadratic form ``½ eᵀ F e`` itself (THEORY.md T7 is
exact for a quadratic loss), so the test measures the mechanism of
``docs/domain-shift.md`` without a model: the other text keeps the Fisher *diagonal*
of the fit text but flips its correlation, so the direction where the fit's Fisher is
small (where the whitened KLT puts its error) is where the other text is sensitive.
"""

import numpy as np
import pytest
import torch

from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec
from rdgap.codecs.fit import KLT_RIDGE, FitContext, base_steps
from rdgap.codecs.transforms.fisher import FisherDiagonal, shrink_toward_diagonal

LEVEL = 0.05
CHANNELS = 6


def _fisher(correlation: float) -> np.ndarray:
    """Unit diagonal, ``correlation`` between channel pairs (0,1), (2,3), (4,5)."""
    block = np.array([[1.0, correlation], [correlation, 1.0]])
    return np.kron(np.eye(CHANNELS // 2), block)


def _estimate(matrix: np.ndarray) -> FisherDiagonal:
    return FisherDiagonal(rest=np.diag(matrix).copy(), first=np.ones(CHANNELS), tokens=64,
                          matrix=matrix)


def _windows(seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(CHANNELS, CHANNELS))
    return torch.from_numpy(rng.normal(size=(24, 64, CHANNELS)) @ mixing.T * 3.0)


def _loss(codec, windows: torch.Tensor, fisher: np.ndarray) -> float:
    """``½ mean_t eᵀ F e`` over positions ≥ 1: the ΔCE of a quadratic loss."""
    error = torch.stack([w - codec.reconstruct(w) for w in windows])[:, 1:].numpy()
    error = error.reshape(-1, CHANNELS)
    return 0.5 * float(((error @ fisher) * error).sum(1).mean())


def _calibrated(fisher: FisherDiagonal, windows: torch.Tensor, news: np.ndarray):
    """klt-laplace's transform from ``fisher`` (as rdgap.codecs.fit builds it), one step
    in the whitened domain scaled so that the news loss meets the level."""
    context = FitContext(split=None, hidden=windows, fisher=fisher, probe=None)
    stats, base, first_base, klt, family = base_steps("klt-laplace", context)
    scale = 0.1
    for _ in range(6):  # the loss is quadratic in the scale at high resolution
        codec = FactorizedCodec(stats, scale * base, scale * first_base, family,
                                analysis=klt.analysis, synthesis=klt.synthesis)
        scale *= np.sqrt(LEVEL / _loss(codec, windows, news))
    return FactorizedCodec(stats, scale * base, scale * first_base, family,
                           analysis=klt.analysis, synthesis=klt.synthesis)


def test_shrinkage_moves_the_matrix_toward_its_diagonal_only():
    estimate = _estimate(_fisher(0.9))
    assert np.array_equal(shrink_toward_diagonal(estimate, 0.0).matrix, estimate.matrix)
    full = shrink_toward_diagonal(estimate, 1.0)
    assert np.array_equal(full.matrix, np.eye(CHANNELS))
    half = shrink_toward_diagonal(estimate, 0.5)
    assert half.matrix[0, 1] == pytest.approx(0.45)
    assert half.shrinkage == 0.5 and estimate.shrinkage == 0.0
    assert np.array_equal(half.rest, estimate.rest) and np.array_equal(half.first, estimate.first)


@pytest.mark.parametrize("weight", [-0.1, 1.5, float("nan")])
def test_a_weight_outside_the_unit_interval_is_refused(weight):
    with pytest.raises(ValueError, match="weight"):
        shrink_toward_diagonal(_estimate(_fisher(0.5)), weight)


def test_an_estimate_without_its_matrix_or_already_shrunk_is_refused():
    with pytest.raises(ValueError, match="full matrix"):
        shrink_toward_diagonal(FisherDiagonal(np.ones(3), np.ones(3), 8), 0.5)
    with pytest.raises(ValueError, match="already shrunk"):
        shrink_toward_diagonal(shrink_toward_diagonal(_estimate(_fisher(0.5)), 0.5), 0.5)


def test_the_fit_whitens_the_shrunk_matrix():
    windows = _windows(0)
    shrunk = shrink_toward_diagonal(_estimate(_fisher(0.9)), 0.7)
    context = FitContext(split=None, hidden=windows, fisher=shrunk, probe=None)
    klt = base_steps("klt-laplace", context)[3]
    ridged = shrunk.matrix + KLT_RIDGE * np.trace(shrunk.matrix) / CHANNELS * np.eye(CHANNELS)
    assert np.allclose(klt.synthesis.T @ ridged @ klt.synthesis, np.eye(CHANNELS), atol=1e-8)


def test_on_a_shifted_source_the_shrunk_fit_holds_the_level_and_the_plain_fit_misses():
    news, other = _fisher(0.9), _fisher(-0.9)  # same diagonal, correlation flipped
    windows, shifted = _windows(0), _windows(1)
    plain = _calibrated(_estimate(news), windows, news)
    shrunk = _calibrated(shrink_toward_diagonal(_estimate(news), 1.0), windows, news)
    for codec in (plain, shrunk):  # both meet the level on the fit text
        assert _loss(codec, windows, news) == pytest.approx(LEVEL, rel=0.02)
    assert _loss(plain, shifted, other) > 3 * LEVEL  # the defect: the level triples
    assert _loss(shrunk, shifted, other) <= 1.1 * LEVEL  # the robust fit keeps it
    # and it pays for it in rate on the fit text (finer steps where the fit's Fisher is small)
    tokens = windows.shape[0] * windows.shape[1]
    bits = [sum(c.estimate_bits(w) for w in windows) / tokens for c in (plain, shrunk)]
    assert bits[1] > bits[0]


def test_the_fit_option_shrinks_the_estimated_fisher(tiny_model):
    """``FitContext.build(..., fisher_shrinkage=λ)`` on a tiny Llama: the context's Fisher
    is the estimate shrunk by ``λ`` (diagonal kept), and the default leaves it as it is."""
    from rdgap.split import SplitModel

    split = SplitModel(tiny_model, 2)
    ids = torch.randint(3, 128, (4, 48), generator=torch.Generator().manual_seed(3))
    hidden = split.prefix(ids)
    plain = FitContext.build(split, ids, hidden, statistics_windows=2)
    shrunk = FitContext.build(split, ids, hidden, statistics_windows=2, fisher=plain.fisher,
                              fisher_shrinkage=0.25)
    assert plain.fisher.shrinkage == 0.0 and shrunk.fisher.shrinkage == 0.25
    off = ~np.eye(plain.fisher.matrix.shape[0], dtype=bool)
    assert np.allclose(shrunk.fisher.matrix[off], 0.75 * plain.fisher.matrix[off])
    assert np.allclose(np.diag(shrunk.fisher.matrix), np.diag(plain.fisher.matrix))
