"""Shared fixtures: tiny random models for fast tests, the embedded model once per session."""

from __future__ import annotations

import pytest
import torch

from rdgap.validation.models import load_default_model, tiny_llama


@pytest.fixture(scope="session")
def smollm2():
    """The embedded SmolLM2-135M (built into the rdgap cache on first use, then ≈0.2 s)."""
    return load_default_model()


@pytest.fixture(scope="session")
def tiny_model():
    return tiny_llama(num_layers=5, hidden_size=64, vocab_size=128, seed=0)


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory, smollm2):
    """A saved tiny Llama that uses the SmolLM2 tokenizer (so it reads real text)."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    model = tiny_llama(num_layers=4, hidden_size=32, vocab_size=len(smollm2.tokenizer), seed=1)
    model.save_pretrained(folder)
    smollm2.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)
