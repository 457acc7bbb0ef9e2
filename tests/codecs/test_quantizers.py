"""The quantizers of ``codecs/quantizers/`` (uniform; dead zone + centroid): each against
its definition, the same symbols from numpy and torch, and the codecs that use them."""

from __future__ import annotations

import importlib
import re

import numpy as np
import pytest
import torch

from rdgap.codecs import recipes
from rdgap.codecs.coders import ans
from rdgap.codecs.quantizers import deadzone, uniform


def _values(seed=0, size=4000):
    """Values in steps, half of them on the ties and cell edges the rules decide."""
    rng = np.random.default_rng(seed)
    ties = rng.integers(-6, 7, size // 2) + rng.choice([-0.5, 0.5, -0.4, 0.4, 0.6, -0.6],
                                                       size // 2)
    return np.concatenate([rng.normal(0, 3, size - size // 2), ties])


def test_uniform_rounds_to_the_nearest_step_within_half_a_step():
    x = _values()
    step = np.full(x.shape, 0.37)
    symbols = uniform.quantize(x, step)
    assert symbols.dtype == np.int64
    error = np.abs(x - uniform.dequantize(symbols, step))
    assert error.max() <= 0.37 / 2 + 1e-12
    np.testing.assert_array_equal(symbols, np.rint(x / 0.37).astype(np.int64))


def test_deadzone_cells_and_centroid_reconstruction():
    x = _values()
    rounding = 0.3
    s = deadzone.quantize(x, rounding)
    # cell k ≥ 1 is [k − ρ, k + 1 − ρ), the zero cell (−(1 − ρ), 1 − ρ)
    a = np.abs(s)
    assert np.all(np.abs(x)[a == 0] < 1 - rounding)
    assert np.all((a[a > 0] - rounding <= np.abs(x)[a > 0])
                  & (np.abs(x)[a > 0] < a[a > 0] + 1 - rounding))
    assert np.all(np.sign(s[a > 0]) == np.sign(x[a > 0]))
    offset = np.full(x.shape, 0.1)
    x_hat = deadzone.dequantize(s, offset)
    assert np.all(x_hat[a == 0] == 0)
    np.testing.assert_allclose(np.abs(x_hat[a > 0]), a[a > 0] - 0.1)
    # ρ = ½ is plain rounding (away from ties)
    plain = _values(1)[:2000]
    np.testing.assert_array_equal(deadzone.quantize(plain, 0.5), np.rint(plain))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_numpy_and_torch_give_the_same_symbols(dtype):
    """The torch coders quantize with the same functions as the CPU codecs."""
    t = torch.from_numpy(_values(2)).to(dtype)
    x = t.numpy()  # the same values, in the same float type
    step = 0.5
    assert torch.equal(uniform.quantize(t, step), torch.from_numpy(uniform.quantize(x, step)))
    for rounding in (0.3, 0.4, 0.5):
        np.testing.assert_array_equal(deadzone.quantize(t, rounding).numpy(),
                                      deadzone.quantize(x, rounding))
    s = deadzone.quantize(x, 0.4)
    offset = deadzone.centroid_offset(np.full(x.shape, 1.3), 0.4).astype(x.dtype)
    np.testing.assert_allclose(
        deadzone.dequantize(torch.from_numpy(s), torch.from_numpy(offset)).numpy(),
        deadzone.dequantize(s, offset), rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_a_symbol_beyond_the_coder_range_is_an_error_not_a_wrapped_integer(kind):
    limit = ans.MAX_MAGNITUDE
    for bad in (5e9, -5e9, np.inf, np.nan):
        x = np.array([0.0, bad])
        x = torch.from_numpy(x) if kind == "torch" else x
        with pytest.raises(ValueError, match=r"hidden: .* 2\^32 steps from its mean"):
            uniform.quantize(x, 1.0, limit)
        with pytest.raises(ValueError, match="hidden"):
            uniform.check_range(deadzone.quantize(x, 0.4), limit)
    edge = np.array([float(limit)])
    edge = torch.from_numpy(edge) if kind == "torch" else edge
    assert int(uniform.quantize(edge, 1.0, limit)[0]) == limit
    empty = np.zeros((0, 3))
    uniform.check_range(torch.from_numpy(empty) if kind == "torch" else empty, limit)


def test_rdo_moves_a_symbol_only_when_it_lowers_the_cost():
    rng = np.random.default_rng(4)
    x = rng.laplace(0, 2.0, 3000)
    scale = np.full(x.shape, 2.0)
    offset = deadzone.centroid_offset(scale, 0.4)
    plain = deadzone.quantize(x, 0.4)
    assert np.array_equal(deadzone.rdo_symbols(x, plain, scale, offset, 0.4, 0.0), plain)
    moved = deadzone.rdo_symbols(x, plain, scale, offset, 0.4, 0.5)
    assert np.all((moved == plain) | (np.abs(moved) == np.abs(plain) - 1))
    assert np.any(moved != plain)


def test_every_recipe_quantizer_names_a_module_of_codecs_quantizers():
    """The registry's ``quantizer`` key of every recipe names a real module."""
    used = {r.quantizer for r in recipes.RECIPES.values()}
    assert {"uniform", "deadzone-centroid"} <= used
    for key in used:
        names = re.findall(r"rdgap\.codecs\.quantizers\.(\w+)", recipes.QUANTIZERS[key])
        assert names, f"QUANTIZERS[{key!r}] names no module of rdgap.codecs.quantizers"
        importlib.import_module(f"rdgap.codecs.quantizers.{names[0]}")


def _spy(monkeypatch, module, name, calls):
    original = getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(f"{module.__name__.rpartition('.')[2]}.{name}")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)


def test_the_codecs_quantize_through_the_quantizer_modules(monkeypatch):
    """FactorizedCodec, ContextCodec and the torch coders call the quantizer modules (a
    spy sees each call), so the recipe's ``quantizer`` key names the code that runs."""
    from codec_data import lm_like, make_codec

    from rdgap.codecs.coders.backend import torch_codec
    from rdgap.codecs.entropy_models.context_fit import fit_context_codec
    from rdgap.codecs.entropy_models.factorized import ChannelStatistics

    fit = lm_like(4, 24, 8, seed=0)
    window = lm_like(1, 12, 8, seed=1)[0]
    eye = np.eye(8)
    stats = ChannelStatistics.fit(fit, "laplace", analysis=eye)
    context = fit_context_codec(fit, stats.mean, eye, eye, 0.5 * np.ones(8), stats.first_mean,
                                stats.first_scale, 0.5 * stats.first_scale)
    factorized = make_codec(channels=8)
    calls: list[str] = []
    for module, name in ((uniform, "to_symbols"), (uniform, "dequantize"),
                         (deadzone, "quantize"), (deadzone, "dequantize")):
        _spy(monkeypatch, module, name, calls)

    for codec in (factorized, torch_codec(factorized, device="cpu", lanes=4)):
        calls.clear()
        codec.decode(codec.encode(window))
        assert set(calls) == {"uniform.to_symbols", "uniform.dequantize"}, type(codec)
    for codec in (context, torch_codec(context, device="cpu", lanes=4)):
        calls.clear()
        codec.decode(codec.encode(window))
        assert set(calls) == {"uniform.to_symbols", "uniform.dequantize", "deadzone.quantize",
                              "deadzone.dequantize"}, type(codec)
