"""The hidden-state cache: keys, round trip, and corrupt or mismatched entries rejected."""

from __future__ import annotations

import torch

from rdgap.validation.cache import CACHE_FORMAT, HiddenCache, entry_key, model_digest, tensor_digest


def _hidden(seed: int = 0) -> torch.Tensor:
    return torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(seed))


def test_keys_change_with_everything_that_determines_the_states(tiny_model):
    inputs = {"input_ids": torch.arange(12).reshape(2, 6)}
    other_inputs = {"input_ids": torch.arange(12).reshape(2, 6) + 1}
    digest = model_digest(tiny_model)
    base = entry_key("m", digest, inputs, 2)
    assert base == entry_key("m", digest, {"input_ids": inputs["input_ids"].clone()}, 2)
    assert len({base, entry_key("m", digest, inputs, 3), entry_key("m2", digest, inputs, 2),
                entry_key("m", "other", inputs, 2), entry_key("m", digest, other_inputs, 2),
                entry_key("m", digest, inputs, 2, {"part": "fit"})}) == 6
    changed = {name: value.clone() for name, value in tiny_model.state_dict().items()}
    name = next(iter(changed))
    changed[name].view(-1)[0] += 1.0
    assert tensor_digest(changed) != digest


def test_round_trip_and_counters(tmp_path):
    cache = HiddenCache(tmp_path)
    key = "a" * 64
    assert cache.get(key) is None and cache.misses == 1
    path = cache.put(key, _hidden())
    assert path.parent == tmp_path / "hidden" and path.is_file()
    assert torch.equal(cache.get(key), _hidden()) and cache.hits == 1


def test_corrupted_entry_is_rejected_deleted_and_recomputable(tmp_path):
    cache = HiddenCache(tmp_path)
    key = "b" * 64
    path = cache.put(key, _hidden())
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # one bit of the tensor bytes
    path.write_bytes(bytes(data))
    assert cache.get(key) is None and cache.rejected == 1 and not path.exists()
    cache.put(key, _hidden())
    path.write_bytes(path.read_bytes()[:40])  # truncated
    assert cache.get(key) is None and cache.rejected == 2
    path.write_bytes(b"not a safetensors file")
    assert cache.get(key) is None and cache.rejected == 3


def test_entry_under_another_key_or_version_is_rejected(tmp_path, monkeypatch):
    cache = HiddenCache(tmp_path)
    source = cache.put("c" * 64, _hidden())
    cache.path("d" * 64).write_bytes(source.read_bytes())  # file copied to a wrong key
    assert cache.get("d" * 64) is None and cache.rejected == 1
    monkeypatch.setattr("rdgap.validation.cache.CACHE_FORMAT", CACHE_FORMAT + 1)
    assert cache.get("c" * 64) is None and cache.rejected == 2
