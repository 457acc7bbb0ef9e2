"""RDOQ (rdgap.codecs.quantizers.rdoq): encoder only, never worse in D + λR per symbol,
exactly the plain quantizer at λ = 0, and a level toward zero where the tables make it
cheaper; the ``-rdoq`` recipes reach it through the registry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from codec_data import lm_like, make_codec
from rdgap.codecs.coders import ans
from rdgap.codecs.entropy_models.factorized import FactorizedCodec, build_tables
from rdgap.codecs.quantizers import rdoq

WEIGHT = 0.2


def _with_rdoq(codec: FactorizedCodec, weight: float) -> FactorizedCodec:
    return FactorizedCodec(codec.stats, codec.step, codec.first_step, codec.family,
                           analysis=codec.analysis, synthesis=codec.synthesis, rdoq=weight)


def _cost(x, levels, bits, weight):
    return (x - levels) ** 2 + weight * bits(levels)


@pytest.fixture(scope="module")
def pair():
    plain = make_codec("laplace", transform=True, scale=0.5)
    return plain, _with_rdoq(plain, WEIGHT)


def test_the_plain_decoder_decodes_rdoq_streams_unchanged(pair):
    """Same format: the codec without RDOQ (same hash) decodes the RDOQ encoder's streams to
    what the RDOQ codec reconstructs, on the CPU coder and on the torch rANS coder; and the
    streams do differ from the plain encoder's (RDOQ changed symbols)."""
    from rdgap.codecs.coders.backend import torch_codec

    plain, tuned = pair
    assert tuned.digest == plain.digest and tuned.codec_id == plain.codec_id
    changed = 0
    for x in lm_like(3, 40, plain.channels, seed=5):
        stream = tuned.encode(x)
        assert torch.equal(plain.decode(stream), tuned.reconstruct(x))
        assert torch.equal(tuned.decode(stream), tuned.reconstruct(x))
        changed += stream != plain.encode(x)
        coder, plain_coder = torch_codec(tuned, lanes=4), torch_codec(plain, lanes=4)
        assert torch.equal(plain_coder.decode(coder.encode(x)), tuned.reconstruct(x))
    assert changed == 3


def test_rdoq_never_increases_d_plus_lambda_r_per_symbol():
    """On random values under random Laplace tables, every chosen level's cost is the least
    of the three candidates' (so never above round-to-nearest's), exactly."""
    rng = np.random.default_rng(0)
    tables = build_tables("laplace", np.exp(rng.uniform(np.log(0.05), np.log(20.0), 64)))
    x = rng.laplace(0.0, 1.0, (300, 64)) * np.array([t.width / 10 + 0.3 for t in tables])
    x[::17, ::5] *= 40  # some escapes
    nearest = np.rint(x).astype(np.int64)
    for weight in (0.05, WEIGHT, 1.0, 5.0):
        chosen = rdoq.quantize_columns(x, nearest, tables, weight)
        for j, table in enumerate(tables):
            bits = rdoq.table_bits(table)
            costs = np.stack([_cost(x[:, j], k, bits, weight) for k in
                              (nearest[:, j], nearest[:, j] - np.sign(nearest[:, j]),
                               np.zeros_like(nearest[:, j]))])
            own = _cost(x[:, j], chosen[:, j], bits, weight)
            assert np.all(own <= costs[0]) and np.array_equal(own, costs.min(0))
        assert np.all(np.abs(chosen) <= np.abs(nearest))
        assert np.any(chosen != nearest)


def test_table_bits_are_the_coders_estimate():
    table = build_tables("laplace", np.array([1.5]))[0]
    levels = np.array([0, 1, -3, table.width + 2, -table.width - 9])
    assert rdoq.table_bits(table)(levels).sum() == pytest.approx(
        ans.estimate_bits([levels], [table]), rel=1e-12)


def test_zero_weight_gives_the_plain_quantizers_symbols(pair):
    plain, _ = pair
    zero = _with_rdoq(plain, 0.0)
    for x in lm_like(2, 30, plain.channels, seed=9):
        assert np.array_equal(zero.quantize(x), plain.quantize(x))
        assert zero.encode(x) == plain.encode(x)
    x = np.array([0.5, 1.5, -2.5, 0.49])
    nearest = np.rint(x).astype(np.int64)
    assert np.array_equal(rdoq.choose_levels(x, nearest, lambda k: 100.0 * np.abs(k), 0.0),
                          nearest)


def test_a_constructed_case_where_the_level_toward_zero_wins():
    """x = 2.45 rounds to 2; one level toward zero costs 1.45² − 0.45² = 1.9 more squared
    steps, and the table makes it 8 bits cheaper: with c = 0.3 (2.4 > 1.9) RDOQ writes 1,
    with c = 0.2 (1.6 < 1.9) it keeps 2; zero (6.0 squared steps) loses to both."""
    bits = lambda k: np.select([k == 0, np.abs(k) == 1], [1.0, 2.0], 10.0)  # noqa: E731
    x, nearest = np.array([2.45, -2.45]), np.array([2, -2])
    assert rdoq.choose_levels(x, nearest, bits, 0.3).tolist() == [1, -1]
    assert rdoq.choose_levels(x, nearest, bits, 0.2).tolist() == [2, -2]
    # and inside a codec: a value just over half a step, under a narrow table, goes to 0
    table = build_tables("laplace", np.array([0.2]))[0]
    assert rdoq.quantize_columns(np.array([[0.55]]), np.array([[1]]), [table],
                                 0.1).tolist() == [[0]]


def test_rdoq_trades_distortion_for_fewer_bits_at_the_same_steps(pair):
    plain, tuned = pair
    windows = lm_like(4, 48, plain.channels, seed=21)
    bits = {c: sum(c.estimate_bits(x) for x in windows) for c in pair}
    error = {c: sum(float(((c.quantize(x)[1:] - (((x.double().numpy()[1:] - c.stats.mean)
                                                  @ c.analysis.T) / c.step)) ** 2).sum())
                    for x in windows) for c in pair}
    assert bits[tuned] < bits[plain] and error[tuned] > error[plain]
    # the quantity RDOQ minimises is lower in total
    assert error[tuned] + WEIGHT * bits[tuned] < error[plain] + WEIGHT * bits[plain]


def test_weight_is_checked_and_saved(pair, tmp_path):
    plain, tuned = pair
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="rdoq"):
            _with_rdoq(plain, bad)
    tuned.save(tmp_path / "codec")
    loaded = FactorizedCodec.load(tmp_path / "codec")
    assert loaded.rdoq == WEIGHT and loaded.digest == tuned.digest
    x = lm_like(1, 20, plain.channels, seed=3)[0]
    assert loaded.encode(x) == tuned.encode(x)
    path = tmp_path / "codec" / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps(config | {"rdoq": 5.0}))
    with pytest.raises(ValueError, match="edited"):
        FactorizedCodec.load(tmp_path / "codec")
    plain.save(tmp_path / "plain")  # a codec without RDOQ writes no field for it
    assert "rdoq" not in json.loads((tmp_path / "plain" / "config.json").read_text())


@pytest.mark.parametrize("name, base, option", [("klt-laplace-rdoq", "klt-laplace", "rdoq"),
                                                ("klt-context-rdoq", "klt-context", "rdo")])
def test_the_rdoq_recipes_fit_through_the_pipeline(name, base, option):
    """The recipe's weight reaches its codec at the calibrated scale; the base recipe's codec
    at the same steps (same hash) decodes its streams."""
    from codec_data import tiny_fit_context
    from rdgap.codecs.recipes import RDOQ_WEIGHT, recipe

    _, ids, hidden, context = tiny_fit_context(12, 48, 6, model_seed=0, ids_seed=0)
    fitted = recipe(name).fit(context, ids[:6], 1e-3, cap=None)
    codec = fitted.codec
    assert getattr(codec, option) == RDOQ_WEIGHT > 0
    plain = type(codec)(**{**codec._constructor_arguments(), "rdo": 0.0}) \
        if option == "rdo" else _with_rdoq(codec, 0.0)
    assert plain.digest == codec.digest
    x = hidden[-1]
    assert torch.equal(plain.decode(codec.encode(x)), codec.reconstruct(x))
    assert codec.encode(x) != plain.encode(x)


def test_the_sweeps_stacked_computation_is_the_codecs():
    """benchmarks/rdoq_sweep.py codes all windows at once: the same symbols as the codec
    (its own check), the codec's Σ −log2 q, and T7's D of the whitened error."""
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        import rdoq_sweep
    finally:
        sys.path.pop(0)
    plain = make_codec("laplace", transform=True, scale=0.5)
    tuned = _with_rdoq(plain, WEIGHT)
    windows = lm_like(3, 20, plain.channels, seed=13)
    fisher = SimpleNamespace(first=np.full(plain.channels, 2.0))
    rdoq_sweep.check_against_codec(tuned, windows[0])
    point = rdoq_sweep.curve_point(tuned, windows.double().numpy(), fisher)
    bits = sum(tuned.estimate_bits(x) for x in windows)
    assert point["bits_per_token"] == pytest.approx(bits / 60, rel=1e-9)
    error = 0.0
    for x in windows:
        y = x.double().numpy()
        e = y - tuned.reconstruct(x).double().numpy()
        error += float(((e[1:] @ tuned.analysis.T) ** 2).sum() + (2.0 * e[0] ** 2).sum())
    assert point["predicted_delta_ce_nats"] == pytest.approx(error / 120, rel=1e-4)
    broken = _with_rdoq(plain, 5.0)  # the codec's symbols are not the sweep's at c = 0.2
    broken.rdoq = WEIGHT
    broken._quantize = lambda hidden: plain._quantize(hidden)
    with pytest.raises(AssertionError, match="differ"):
        rdoq_sweep.check_against_codec(broken, windows[0])


def test_the_curve_codes_one_model_at_equal_steps_with_and_without_rdoq(tmp_path):
    """benchmarks/rdoq_curve.py: the two codecs at a scale differ only in the weight (same
    hash, so the same decoder), and its figure is written from a result."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        import rdoq_curve
    finally:
        sys.path.pop(0)
    plain = make_codec("laplace", transform=True, scale=1.0)
    model = lambda alpha: _with_rdoq(make_codec("laplace", True, scale=alpha), 0.0)  # noqa: E731
    for name, option in (("klt-laplace", "rdoq"),):
        a, b = (rdoq_curve.codec_at(name, model, 0.5, w) for w in (0.0, WEIGHT))
        assert (getattr(a, option), getattr(b, option)) == (0.0, WEIGHT)
        assert a.digest == b.digest != plain.digest
    rows = [{"model": "klt-laplace", "weight": w, "bits_per_token_actual": 100.0 + i,
             "delta_ce_nats": 0.01 * i, "delta_ce_nats_stderr": 0.001, "kl_nats": 0.02 * i}
            for w in (0.0, WEIGHT) for i in (1, 2)]
    result = {"rdoq_against_plain": {"klt-laplace": {}}, "weight": WEIGHT, "rows": rows,
              "split": 15, "evaluation_windows": 2}
    rdoq_curve.plot(result, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000
