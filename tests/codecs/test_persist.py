"""Saved codecs (codecs/persist.py): every edit of a saved folder is refused by a ValueError
naming the file and the field, or is harmless (issue 17, defect 6)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from rdgap.codecs import persist
from rdgap.codecs.entropy_models.context import ContextCodec
from rdgap.codecs.entropy_models.context_fit import fit_context_codec
from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec

CHANNELS = 6


@pytest.fixture(scope="module")
def windows() -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.laplace(0.0, 1.0, (4, 32, CHANNELS))).float()


@pytest.fixture(scope="module")
def factorized(windows) -> FactorizedCodec:
    stats = ChannelStatistics.fit(windows, "laplace")
    return FactorizedCodec(stats, 0.5 * stats.scale, 0.5 * stats.first_scale, "laplace")


@pytest.fixture(scope="module")
def context(windows) -> ContextCodec:
    eye = np.eye(CHANNELS)
    stats = ChannelStatistics.fit(windows, "laplace", analysis=eye)
    steps = 0.5 * np.ones(CHANNELS)
    return fit_context_codec(windows, stats.mean, eye, eye, steps, stats.first_mean,
                             stats.first_scale, 0.5 * stats.first_scale)


def _edit_config(folder, change) -> None:
    path = folder / persist.CONFIG
    config = json.loads(path.read_text())
    path.write_text(json.dumps(change(config)))


def test_save_load_round_trip_keeps_the_codec(factorized, context, tmp_path, windows):
    for codec, cls in ((factorized, FactorizedCodec), (context, ContextCodec)):
        loaded = cls.load(codec.save(tmp_path / cls.__name__))
        assert loaded.digest == codec.digest
        assert loaded.encode(windows[0]) == codec.encode(windows[0])


def test_an_edited_rdo_is_refused(context, tmp_path):
    """rdo = 1e6 loaded silently and tripled the encode error before."""
    folder = context.save(tmp_path / "context")
    _edit_config(folder, lambda c: c | {"rdo": 1e6})
    with pytest.raises(ValueError, match=r"config_digest does not match\); the config was edited"):
        ContextCodec.load(folder)


def test_a_folder_without_config_digest_still_loads(factorized, tmp_path):
    folder = factorized.save(tmp_path / "old")
    _edit_config(folder, lambda c: {k: v for k, v in c.items() if k != "config_digest"})
    assert FactorizedCodec.load(folder).digest == factorized.digest


@pytest.mark.parametrize("name", ["mean", "first_scale"])
def test_a_nan_array_is_refused_at_load(factorized, tmp_path, name):
    """A NaN mean failed later with 'magnitude 9223372036854775808' before."""
    folder = factorized.save(tmp_path / "nan")
    arrays = load_file(str(folder / persist.TENSORS))
    arrays[name] = arrays[name].copy()
    arrays[name][1] = np.nan
    save_file(arrays, str(folder / persist.TENSORS))
    with pytest.raises(ValueError, match=f"array '{name}' of tensors.safetensors holds NaN"):
        FactorizedCodec.load(folder)


@pytest.mark.parametrize("damage, message", [
    (lambda c: {k: v for k, v in c.items() if k not in ("family", "config_digest")},
     "lacks the field 'family'"),
    (lambda c: [c], "holds a JSON list, expected an object"),
    (lambda c: c | {"family": ["laplace"]}, "field 'family' .* expected str"),
    (lambda c: c | {"channels": True}, "field 'channels' .* expected int"),
])
def test_config_damage_is_a_value_error_naming_the_field(factorized, tmp_path, damage, message):
    folder = factorized.save(tmp_path / "damaged")
    _edit_config(folder, damage)
    with pytest.raises(ValueError, match=message):
        FactorizedCodec.load(folder)


def test_deeply_nested_or_invalid_json_is_a_value_error(factorized, tmp_path):
    folder = factorized.save(tmp_path / "nested")
    path = folder / persist.CONFIG
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="not valid JSON \\(too deeply nested\\)"):
        FactorizedCodec.load(folder)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        FactorizedCodec.load(folder)
    path.write_text(" " * (persist.MAX_CONFIG_BYTES + 1))
    with pytest.raises(ValueError, match="more than the 1048576"):
        FactorizedCodec.load(folder)


def test_a_damaged_tensors_file_is_a_value_error(factorized, tmp_path):
    folder = factorized.save(tmp_path / "tensors")
    path = folder / persist.TENSORS
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        FactorizedCodec.load(folder)


def test_an_extra_array_is_refused_by_name(factorized, context, tmp_path):
    for codec, cls in ((factorized, FactorizedCodec), (context, ContextCodec)):
        folder = codec.save(tmp_path / cls.__name__)
        arrays = load_file(str(folder / persist.TENSORS))
        arrays["smuggled"] = np.zeros(3)
        save_file(arrays, str(folder / persist.TENSORS))
        with pytest.raises(ValueError, match=r"holds arrays \['smuggled'\]"):
            cls.load(folder)
