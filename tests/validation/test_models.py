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
