"""The prefix as a differentiable map of the embeddings (for T10's Jacobian norm)."""

from __future__ import annotations

import pytest
import torch

from rdgap.bounds import jacobian_spectral_norm
from rdgap.split import SplitModel
from rdgap.validation.prefix_map import causal_lm_prefix_map, prefix_map


class _Task:
    def __init__(self, model):
        self.model = model


def test_prefix_map_matches_the_split_prefix_and_has_a_jacobian(tiny_model):
    ids = torch.randint(0, 128, (2, 9), generator=torch.Generator().manual_seed(0))
    fn, embeddings = prefix_map(_Task(tiny_model), 3, {"input_ids": ids})
    expected = SplitModel(tiny_model, 3).prefix(ids)
    assert torch.allclose(fn(embeddings), expected, atol=1e-5)
    before = tiny_model.config._attn_implementation
    norms = jacobian_spectral_norm(fn, embeddings, iters=3, batched=True)
    assert tiny_model.config._attn_implementation == before
    assert norms.shape == (2,) and (norms > 0).all()


def test_no_prefix_without_a_model_or_token_inputs(tiny_model):
    assert prefix_map(object(), 1, {"input_ids": torch.zeros(1, 2, dtype=torch.long)}) is None
    assert prefix_map(_Task(tiny_model), 1, {"images": torch.zeros(1, 3)}) is None
    with pytest.raises(ValueError, match="k: expected 0 < k < 5"):
        causal_lm_prefix_map(tiny_model, 5)
