"""Tables, the ANS wrapper, the Fisher-whitened transform, the Fisher estimate and the
rate–distortion knob, each against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from rdgap.codecs.coders import ans
from rdgap.codecs.quantizers.calibrate import DistortionProbe, calibrate_scale
from rdgap.codecs.coders.container import BitstreamError
from rdgap.codecs.transforms.fisher import fisher_diagonal
from rdgap.split import SplitModel
from rdgap.codecs.entropy_models.tables import PROBABILITY_FLOOR, discretised_table, half_width
from rdgap.codecs.transforms.klt import fisher_klt


@pytest.mark.parametrize("family, law", [("gaussian", stats.norm),
                                         ("laplace", stats.laplace)])
@pytest.mark.parametrize("scale", [0.01, 0.7, 5.0, 300.0])
def test_tables_match_scipy(family, law, scale):
    width = int(half_width(np.array([scale]))[0])
    table = discretised_table(family, 0.0, scale, width)
    k = np.arange(-width, width + 1)
    exact = law.cdf(k + 0.5, scale=scale) - law.cdf(k - 0.5, scale=scale)
    escape = 2 * law.sf(width + 0.5, scale=scale)
    raw = np.maximum(np.append(exact, escape), PROBABILITY_FLOOR)
    np.testing.assert_allclose(table, raw / raw.sum(), rtol=1e-9, atol=1e-15)
    assert table.min() >= PROBABILITY_FLOOR / 1.01 and table.sum() == pytest.approx(1, abs=1e-12)


def test_table_arguments():
    with pytest.raises(ValueError, match="family"):
        discretised_table("cauchy", 0, 1, 3)
    with pytest.raises(ValueError, match="scale"):
        discretised_table("gaussian", 0, 0.0, 3)


def test_ans_round_trip_and_escape_payload():
    rng = np.random.default_rng(3)
    tables = [ans.ChannelTable(discretised_table("laplace", 0, s, 4), 4) for s in (0.3, 2.0)]
    columns = [rng.integers(-6, 7, 50), np.array([0, 5, -70000, 3, 1 << 31])]
    data = ans.encode(columns, tables)
    out = ans.decode(data, [50, 5], tables)
    assert all(np.array_equal(a, b) for a, b in zip(out, columns))
    # Each escaped value costs the escape symbol plus 33 bits (sign + 32-bit excess).
    escapes = sum(int((np.abs(c) > 4).sum()) for c in columns)
    plain = ans.estimate_bits([np.clip(c, -4, 4) for c in columns], tables)
    assert ans.estimate_bits(columns, tables) > plain + 33 * escapes - 1e-9
    with pytest.raises(BitstreamError, match="whole 32-bit words"):
        ans.decode(data[:-1], [50, 5], tables)
    with pytest.raises(BitstreamError, match="more data"):
        ans.decode(data, [49, 5], tables)  # stops before the stream is used up
    with pytest.raises(ValueError, match="too large"):
        ans.encode([np.array([1 << 33])], tables[:1])


def test_fisher_klt_whitens_and_decorrelates():
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(6, 6))
    cov = mix @ mix.T + 0.1 * np.eye(6)
    root = rng.normal(size=(6, 6))
    fisher = root @ root.T + 0.5 * np.eye(6)
    t = fisher_klt(cov, fisher, ridge=0.0)
    np.testing.assert_allclose(t.analysis @ cov @ t.analysis.T, np.diag(t.variances), atol=1e-9)
    np.testing.assert_allclose(t.synthesis.T @ fisher @ t.synthesis, np.eye(6), atol=1e-9)
    np.testing.assert_allclose(t.analysis @ t.synthesis, np.eye(6), atol=1e-9)
    assert np.all(np.diff(t.variances) <= 0)
    # det C · det F is invariant: Σ log λ = log det C + log det F (the T3/T7 rate term).
    assert np.sum(np.log(t.variances)) == pytest.approx(
        np.linalg.slogdet(cov)[1] + np.linalg.slogdet(fisher)[1])
    with pytest.raises(ValueError, match="fisher: expected a positive-definite"):
        fisher_klt(cov, -np.eye(6), ridge=0.0)
    with pytest.raises(ValueError, match="covariance, fisher"):
        fisher_klt(cov, np.eye(5))


def test_calibrate_finds_the_largest_scale_meeting_the_target():
    def measure(alpha):  # ΔCE = 0.3 α², so the target 0.03 is met up to α = 0.316
        return 0.3 * alpha ** 2

    result = calibrate_scale(measure, 0.03, initial=2.0, evaluations=12, ratio=1.05)
    assert result.met and result.delta_ce <= 0.03
    assert np.sqrt(0.1) / 1.05 <= result.scale <= np.sqrt(0.1)
    unreachable = calibrate_scale(lambda a: 1.0, 0.03, initial=1.0, evaluations=4)
    assert not unreachable.met and len(unreachable.trace) == 4
    with pytest.raises(ValueError, match="target"):
        calibrate_scale(measure, 0.0, 1.0)


def test_fisher_predicts_small_distortions(tiny_model):
    """T7 to second order: for small independent uniform noise, the mean KL(full‖split)
    per token is ½ E[eᵀ F e] = Σ_j F_jj Δ²/24 (the model-sampled Fisher is the Hessian of
    that KL at e = 0). Checked within 25 % (the Fisher is itself a Monte-Carlo estimate)."""
    split = SplitModel(tiny_model, 2)
    ids = torch.randint(3, 128, (8, 24), generator=torch.Generator().manual_seed(0))
    hidden = split.prefix(ids)
    fisher = fisher_diagonal(split, hidden, samples=16, full=True)
    np.testing.assert_allclose(np.diag(fisher.matrix), fisher.rest, rtol=1e-9)
    step = 0.02
    predicted = fisher.predicted_delta_ce(np.full(64, step), np.full(64, step))
    g = torch.Generator().manual_seed(1)
    exact = torch.log_softmax(split.suffix(hidden).double(), -1)
    kls = []
    for _ in range(20):
        noisy = hidden + (torch.rand(hidden.shape, generator=g) - 0.5) * step
        log_q = torch.log_softmax(split.suffix(noisy).double(), -1)
        kls.append(float((exact.exp() * (exact - log_q)).sum(-1).mean()))
    assert np.mean(kls) == pytest.approx(predicted, rel=0.25)


def test_distortion_probe_is_zero_for_the_identity(tiny_model):
    split = SplitModel(tiny_model, 3)
    ids = torch.randint(3, 128, (3, 10), generator=torch.Generator().manual_seed(2))
    probe = DistortionProbe(split, ids, split.prefix(ids))
    assert probe.delta_ce(lambda h: h) == 0.0
    assert probe.delta_ce(lambda h: h + 0.5) != 0.0
