"""The split harness: suffix(prefix(x)) is the full model, bit for bit."""

from __future__ import annotations

import pytest
import torch

from rdgap.split import logits_and_hidden
from rdgap.split import SplitModel, position_ids_from_mask


def _batch(vocab: int, generator: torch.Generator):
    ids = torch.randint(3, vocab, (3, 19), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, :6] = 0   # left padding
    mask[2, 13:] = 0  # right padding
    return ids, mask


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_suffix_of_prefix_is_full_model_exactly_tiny(tiny_model, rng, k):
    ids, mask = _batch(128, rng)
    split = SplitModel(tiny_model, k)
    full = split.full(ids, mask)
    assert torch.equal(split.suffix(split.prefix(ids, mask), mask), full)
    # ...and `full` is the model's own forward with the same positions.
    reference = tiny_model(input_ids=ids, attention_mask=mask,
                           position_ids=position_ids_from_mask(mask)).logits
    assert torch.equal(full, reference)


def test_model_is_restored_after_suffix(tiny_model, rng):
    ids, mask = _batch(128, rng)
    layers_before = list(tiny_model.model.layers)
    split = SplitModel(tiny_model, 3)
    hidden = split.prefix(ids, mask)

    def fail(module, args, output):
        raise RuntimeError("a suffix layer failed")

    handle = tiny_model.model.layers[3].register_forward_hook(fail)
    try:
        with pytest.raises(RuntimeError, match="suffix layer failed"):
            split.suffix(hidden, mask)  # fails while layers 0..2 are swapped out
    finally:
        handle.remove()
    assert list(tiny_model.model.layers) == layers_before
    assert torch.equal(split.full(ids, mask), split.suffix(split.prefix(ids, mask), mask))


def test_padding_does_not_change_real_tokens(tiny_model, rng):
    """A padded row's real positions get the logits of the row run alone
    (up to float rounding: the batch shapes differ)."""
    ids, mask = _batch(128, rng)
    split = SplitModel(tiny_model, 2)
    batched = split.full(ids, mask)
    alone_left = split.full(ids[1:2, 6:])[0]
    alone_right = split.full(ids[2:3, :13])[0]
    torch.testing.assert_close(batched[1, 6:], alone_left, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched[2, :13], alone_right, atol=1e-5, rtol=1e-5)


def test_transform_at_the_split_changes_the_output(tiny_model, rng):
    ids, mask = _batch(128, rng)
    split = SplitModel(tiny_model, 2)
    same = split.full_with_transform(ids, lambda h: h, mask)
    assert torch.equal(same, split.full(ids, mask))
    zeroed = split.full_with_transform(ids, torch.zeros_like, mask)
    assert not torch.allclose(zeroed, same)


def test_capture_matches_prefix_at_every_split(tiny_model, rng):
    ids, mask = _batch(128, rng)
    logits, hidden = logits_and_hidden(tiny_model, ids, mask, [1, 2, 4])
    assert torch.equal(logits, SplitModel(tiny_model, 1).full(ids, mask))
    for k, state in hidden.items():
        assert torch.equal(state, SplitModel(tiny_model, k).prefix(ids, mask))


@pytest.mark.parametrize("k", [0, 5, -1, 7])
def test_split_out_of_range_is_a_clear_error(tiny_model, k):
    with pytest.raises(ValueError, match=r"split: expected 0 < split < 5"):
        SplitModel(tiny_model, k)


def test_split_must_be_an_int(tiny_model):
    with pytest.raises(TypeError, match="split"):
        SplitModel(tiny_model, 2.0)


def test_bad_inputs_name_the_argument(tiny_model):
    split = SplitModel(tiny_model, 2)
    with pytest.raises(ValueError, match="input_ids"):
        split.prefix(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask"):
        split.prefix(torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 5))
    with pytest.raises(ValueError, match="NaN or Inf"):
        split.suffix(torch.full((1, 4, 64), float("nan")))
    with pytest.raises(ValueError, match="floating-point"):
        split.suffix(torch.zeros(1, 4, 64, dtype=torch.long))


def test_not_a_decoder_model():
    with pytest.raises(TypeError, match="model"):
        SplitModel(torch.nn.Linear(3, 3), 1)


@pytest.mark.parametrize("k", [1, 15, 29])
def test_suffix_of_prefix_is_full_model_exactly_smollm2(smollm2, k):
    text = "The split harness must reproduce the full model exactly, token for token."
    ids = torch.tensor([smollm2.tokenizer(text)["input_ids"]] * 2)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    split = SplitModel(smollm2.model, k)
    assert torch.equal(split.suffix(split.prefix(ids, mask), mask), split.full(ids, mask))
