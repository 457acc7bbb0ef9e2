"""benchmarks/context_screen.py and context_predictors.py: the non-trivial parts of the screen.

Each check could fail: a wrong closed form of the quantized-Laplace entropy (against a
direct sum over symbols), a predictor that reads a later decoded state or a later token
(every family: changing them must never move an earlier prediction, while changing an
earlier input must), and a prediction swap that does not reproduce the codec's own
estimate (the screen's rate must be the codec's ``estimate_bits`` when the swapped-in
prediction is the codec's own).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


screen = _load("context_screen")
cp = _load("context_predictors")


@pytest.mark.parametrize("scale", [0.05, 0.3, 1.0, 4.0, 40.0])
@pytest.mark.parametrize("rounding", [0.4, 0.5])
def test_quantized_laplace_entropy_is_the_direct_sum(scale, rounding):
    k = np.arange(1, 200000)
    p0 = 1 - np.exp(-(1 - rounding) / scale)
    # P(S = ±k): the Laplace mass of [k − ρ, k + 1 − ρ) on each side
    pk = 0.5 * (np.exp(-(k - rounding) / scale) - np.exp(-(k + 1 - rounding) / scale))
    assert p0 + 2 * pk.sum() == pytest.approx(1.0, abs=1e-9)
    p = np.concatenate([[p0], pk, pk])
    p = p[p > 0]
    direct = float(-(p * np.log2(p)).sum())
    assert float(screen.quantized_laplace_entropy(scale, rounding)) == pytest.approx(
        direct, rel=1e-7, abs=1e-9)


def test_quantized_laplace_entropy_refuses_bad_arguments():
    with pytest.raises(ValueError, match="scale, rounding"):
        screen.quantized_laplace_entropy(np.array([1.0, 0.0]), 0.4)
    with pytest.raises(ValueError, match="scale, rounding"):
        screen.quantized_laplace_entropy(1.0, 0.7)


def test_lagged_moves_rows_later_and_pads_with_zeros():
    values = np.arange(12, dtype=float).reshape(1, 4, 3)
    moved = cp.lagged(values, 2)
    assert np.array_equal(moved[0, :2], np.zeros((2, 3)))
    assert np.array_equal(moved[0, 2:], values[0, :2])
    assert np.array_equal(cp.lagged(values, 9), np.zeros_like(values))
    with pytest.raises(ValueError, match="lag"):
        cp.lagged(values, -1)


def _data(seed, windows=12, tokens=12, channels=6, vocabulary=20, width=4):
    """Synthetic windows where Z depends on the previous Z and the token's embedding."""
    rng = np.random.default_rng(seed)
    embedding = rng.normal(size=(vocabulary, width)).astype(np.float32)
    ids = rng.integers(0, vocabulary, size=(windows, tokens))
    mix = rng.normal(size=(channels, width))
    z = np.zeros((windows, tokens - 1, channels))
    for i in range(tokens - 1):
        previous = z[:, i - 1] if i else 0.0
        z[:, i] = 0.6 * previous + embedding[ids[:, i + 1]] @ mix.T \
            + 0.3 * rng.laplace(size=(windows, channels))
    step = np.full(channels, 0.2)
    zhat, _ = cp.decoded_states(z, step, 0.4)
    return embedding, (z, zhat, ids), step


def _families(embedding):
    base = cp.Ridge(cp.Features(embedding, (1,), (0,), 6))
    mlp = cp.MLP(base, embedding, hidden=16)
    attention = cp.Attention(base, embedding, dim=8, layers=1, heads=2, positions=32)
    for network in (mlp, attention):
        network.EPOCHS, network.PATIENCE = 3, 3
    return {"ridge lags": cp.Ridge(cp.Features(embedding, (1, 2), (0, 1, 2), 6)),
            "base": base, "table": cp.IdTable(base), "mlp": mlp, "attention": attention}


@pytest.mark.parametrize("family", ["ridge lags", "table", "mlp", "attention"])
def test_no_prediction_reads_a_later_state_or_token(family):
    embedding, data, step = _data(0)
    z, zhat, ids = data
    train = tuple(a[:9] for a in data)
    valid = tuple(a[9:] for a in data)
    families = _families(embedding)
    families["base"].fit(train, valid, step, 0.4)
    predictor = families[family].fit(train, valid, step, 0.4)
    before = predictor.predict(zhat, ids)
    rng = np.random.default_rng(1)
    for i in (0, 4, 9):
        changed_z, changed_ids = zhat.copy(), ids.copy()
        changed_z[:, i:] += rng.normal(size=changed_z[:, i:].shape)  # index i onwards
        changed_ids[:, i + 2:] = rng.integers(0, 20, size=changed_ids[:, i + 2:].shape)
        after = predictor.predict(changed_z, changed_ids)
        np.testing.assert_allclose(after[:, :i + 1], before[:, :i + 1], rtol=0, atol=1e-5)
    # and the inputs it may read do move it (the check above could fail)
    changed_ids = ids.copy()
    changed_ids[:, 5] = (ids[:, 5] + 1) % 20  # the token of index 4
    assert not np.allclose(predictor.predict(zhat, changed_ids)[:, 4], before[:, 4])
    if family != "table":
        changed_z = zhat.copy()
        changed_z[:, 3] += 5.0  # the state before index 4
        assert not np.allclose(predictor.predict(changed_z, ids)[:, 4], before[:, 4])


def test_sequential_timing_runs_every_family_on_one_window():
    embedding, data, step = _data(2)
    train = tuple(a[:9] for a in data)
    valid = tuple(a[9:] for a in data)
    families = _families(embedding)
    families["base"].fit(train, valid, step, 0.4)
    for predictor in families.values():
        predictor.fit(train, valid, step, 0.4)
        assert cp.sequential_seconds(predictor, data[1][:1], data[2][:1]) > 0


def test_swapped_prediction_reproduces_the_codecs_own_estimate():
    from rdgap.codecs.entropy_models.context_fit import fit_context_codec

    torch.manual_seed(0)
    channels = 8
    hidden = torch.randn(6, 16, channels, dtype=torch.float64)
    hidden[:, 1:] += 0.8 * torch.roll(hidden[:, 1:], 1, dims=1)
    eye = np.eye(channels)
    codec = fit_context_codec(hidden.float(), np.zeros(channels), eye, eye,
                              np.full(channels, 0.3), np.zeros(channels),
                              np.ones(channels), np.full(channels, 0.3), predicted=0)
    from rdgap.codecs.entropy_models.context import ContextCodec

    # the codec's own tables, its prediction (the bias: no lag term) swapped in as offsets
    model = ContextCodec(**{**codec._constructor_arguments(), "predictor": np.zeros((0, 0)),
                            "bias": np.zeros(channels)})
    prediction = np.broadcast_to(codec.bias, (6, 15, channels)).copy()
    got = screen.coded_bits(model, hidden.float(), prediction)
    want = [codec.estimate_bits(hidden.float()[w]) for w in range(6)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # a better prediction (the true previous token's share) must cost fewer bits
    z = hidden[:, 1:].numpy()
    better = codec.bias + 0.8 * np.concatenate([np.zeros((6, 1, channels)),
                                                z[:, :-1] - codec.bias], 1) * 0.5
    refitted = screen.rate_model(codec, z, better)
    assert screen.coded_bits(refitted, hidden.float(), better).sum() < sum(want)


def test_closed_loop_streams_decode_to_the_encoders_reconstruction():
    from rdgap.codecs.entropy_models.token_context import fit_token_context_codec

    closed = _load("context_closed_loop")
    rng = np.random.default_rng(3)
    channels, vocabulary, tokens = 6, 20, 12
    embedding = rng.normal(size=(vocabulary, channels)).astype(np.float32)
    ids = rng.integers(0, vocabulary, size=(10, tokens))
    hidden = np.zeros((10, tokens, channels))
    for t in range(1, tokens):
        hidden[:, t] = 0.5 * hidden[:, t - 1] + embedding[ids[:, t]] \
            + 0.3 * rng.laplace(size=(10, channels))
    hidden = torch.from_numpy(hidden).float()
    eye = np.eye(channels)
    codec = fit_token_context_codec(hidden[:8], torch.from_numpy(ids[:8]), embedding,
                                    np.zeros(channels), eye, eye, np.full(channels, 0.2),
                                    np.zeros(channels), np.ones(channels),
                                    np.full(channels, 0.2), predicted=channels)
    z = hidden.double().numpy()[:, 1:]
    zhat, _ = cp.decoded_states(z, codec.step, codec.rounding)
    data = (z, zhat, ids)
    train, valid = tuple(a[:6] for a in data), tuple(a[6:8] for a in data)
    base = cp.Ridge(cp.Features(embedding, (1,), (0,), channels)).fit(train, valid,
                                                                      codec.step, 0.4)
    table = cp.IdTable(base).fit(train, valid, codec.step, 0.4)
    weights, bias, tokens_part = closed.linear_parts(table, channels)
    # the split into W, b and g reproduces the predictor
    np.testing.assert_allclose(
        bias + np.concatenate([np.zeros((2, 1, channels)), zhat[8:, :-1] @ weights.T], 1)
        + tokens_part(ids[8:]), table.predict(zhat[8:], ids[8:]), atol=1e-9)
    model = closed.closed_loop_model(codec, weights, bias, valid[0], tokens_part(valid[2]))
    for w in (8, 9):
        size, recon = closed.code_window(model, codec, hidden[w], ids[w], tokens_part)
        assert size > 0 and recon.shape == hidden[w].shape
    # a decoder that forms other offsets than the encoder's is caught
    with pytest.raises(AssertionError, match="does not decode"):
        calls = []

        def drifting(values):
            calls.append(1)
            return tokens_part(values) + (0.5 if len(calls) > 1 else 0.0)

        closed.code_window(model, codec, hidden[8], ids[8], drifting)
    with pytest.raises(ValueError, match="state lag"):
        closed.linear_parts(cp.Ridge(cp.Features(embedding, (1, 2), (0,), channels)), channels)
